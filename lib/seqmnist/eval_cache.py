"""Scores of weights files on the full splits, looked up before they are computed.

``evaluate_file`` takes each split's metrics from the first of: the committed metrics.json beside
the file's folder (written by ``python -m seqmnist evaluate``, so that a fresh checkout need not
re-evaluate), the local cache ``build/eval-cache/metrics.json``, and ``evaluate.evaluate``. Both
records count only for exactly this file, data and evaluation code: they are keyed by the sha256
of the weights file, of the binarized data and of the modules that compute the numbers
(``evaluation_code_sha256``), so a retrained file, other data or changed code is scored afresh,
and an old cache entry of the same path is dropped when the new one is written. The committed
record comes first, so that scoring again on another machine or thread count (float32 sums in
another order move a loss by up to about 6e-6 relative) never rewrites a committed figure. Every
file, the whole-image baselines included, is an ordinary "classify" or "predict" model:
``load_weights`` rebuilds it and ``evaluate`` scores it; a file that ``load_weights`` refuses (no
or unreadable sidecar, another task, damaged tensors) raises its ``SeqMnistError``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from functools import lru_cache
from pathlib import Path

from .evaluate import METRIC_NAMES, SPLITS, evaluate, file_sha256, split_tensors

EVAL_CACHE_VERSION = 2
CACHE_FILE = "metrics.json"
# The modules whose code decides the numbers: a change to any of them re-evaluates everything.
# (This module and the tables that present them, metrics_report.py, are left out: changing how
# numbers are cached or shown re-scores nothing.)
EVALUATION_MODULES = ("evaluate.py", "models.py", "fused_gru.py", "baselines.py")


@lru_cache(maxsize=None)
def evaluation_code_sha256() -> str:
    """sha256 of the modules that compute the metrics (names and bytes, in a fixed order)."""
    digest = hashlib.sha256()
    for name in EVALUATION_MODULES:
        digest.update(name.encode() + b"\0" + (Path(__file__).parent / name).read_bytes())
    return digest.hexdigest()


def default_cache_dir() -> Path:
    from .paths import build_dir

    return build_dir() / "eval-cache"


def _read_cache(path: Path) -> dict:
    empty = {"version": EVAL_CACHE_VERSION, "entries": {}}
    if not path.exists():
        return empty
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        print(f"ignoring unreadable evaluation cache {path} ({error})", file=sys.stderr)
        return empty
    if (not isinstance(cache, dict) or cache.get("version") != EVAL_CACHE_VERSION
            or not isinstance(cache.get("entries"), dict)):
        return empty
    return cache


def _write_cache(path: Path, cache: dict) -> None:
    from .data import atomic_write_bytes

    text = json.dumps(cache, indent=1, sort_keys=True)
    atomic_write_bytes(path, lambda handle: handle.write(text.encode()))


def shipped_metrics(path: Path, weights_sha256: str, data_sha256: str) -> dict:
    """Full-split metrics recorded for exactly this file in the committed ``metrics.json`` beside
    its folder (written by ``python -m seqmnist evaluate``), so that a fresh checkout need not
    re-evaluate: the record counts only when the weights', the data's and the evaluation code's
    sha256 all match."""
    record = path.parent.parent / "metrics.json"
    try:
        report = json.loads(record.read_text())
    except (OSError, ValueError):
        return {}
    if (not isinstance(report, dict) or report.get("data_sha256") != data_sha256
            or report.get("evaluation_code_sha256") != evaluation_code_sha256()
            or report.get("limit") is not None):
        return {}
    for row in report.get("rows", []):
        if row.get("weights_sha256") != weights_sha256:
            continue
        splits = {}
        for split, images in (row.get("images") or {}).items():
            metrics = {name: row[f"{split}_{name}"] for name in METRIC_NAMES
                       if f"{split}_{name}" in row}
            if "loss" in metrics:
                splits[split] = {**metrics, "images": images}
        return splits
    return {}


def evaluate_file(weights_path, splits=SPLITS, cache_dir=None, use_cache: bool = True,
                  progress: bool = False, mnist=None, limit: int | None = None) -> dict:
    """Metrics of a shipped weights file on the full ``splits`` (train 55,000 / test 10,000).

    Returns {"path", "task", "architecture", "weights_sha256", "data_sha256", "limit",
    "splits": {split: metrics}, "cache": "hit" | "miss" | "partial" | "off"}. ``use_cache=False``
    recomputes everything and then refreshes the cache entry. ``limit`` scores only the first
    ``limit`` images of each split (a separate cache entry; for quick checks). ``mnist`` defaults
    to ``load_mnist()``. Raises the ``SeqMnistError`` of ``load_weights`` for a file it refuses
    (missing, no or unreadable sidecar, a task other than "classify"/"predict", damaged tensors).
    """
    from .data import load_mnist
    from .weights import load_weights

    path = Path(weights_path)
    model, meta = load_weights(path)
    task = meta["task"]
    splits = tuple(splits)
    mnist = mnist if mnist is not None else load_mnist()
    for split in splits:
        split_tensors(mnist, split)  # ValueError for unknown names
    sha = file_sha256(path)
    key = (f"{sha}+{mnist.data_sha256}+{evaluation_code_sha256()}"
           + (f"+first{limit}" if limit else ""))
    cache_path = Path(cache_dir if cache_dir is not None else default_cache_dir()) / CACHE_FILE
    cached = {}
    if use_cache:
        if limit is None:
            shipped = shipped_metrics(path, sha, mnist.data_sha256)
            cached = {s: shipped[s] for s in splits if s in shipped}
        entry = _read_cache(cache_path)["entries"].get(key, {}).get("splits", {})
        cached.update({s: entry[s] for s in splits if s in entry and s not in cached})
    todo = [s for s in splits if s not in cached]
    results = dict(cached)
    if todo:
        for split in todo:
            pixels, labels = split_tensors(mnist, split)
            if limit:
                pixels, labels = pixels[:limit], labels[:limit]
            results[split] = evaluate(model, pixels, labels, progress=progress)
        cache = _read_cache(cache_path)  # re-read: keep entries written meanwhile
        resolved = str(path.resolve())
        entries = {k: v for k, v in cache["entries"].items()
                   if not (v.get("path") == resolved and v.get("limit") == limit and k != key)}
        previous = entries.get(key, {}).get("splits", {})
        entries[key] = {"path": resolved, "task": task, "weights_sha256": sha,
                        "data_sha256": mnist.data_sha256, "limit": limit,
                        "splits": {**previous, **results}}
        cache["entries"] = entries
        _write_cache(cache_path, cache)
    status = "off" if not use_cache else ("hit" if not todo else
                                          "miss" if not cached else "partial")
    return {"path": str(path), "task": task, "architecture": meta.get("architecture"),
            "weights_sha256": sha, "data_sha256": mnist.data_sha256, "limit": limit,
            "splits": {s: results[s] for s in splits}, "cache": status}
