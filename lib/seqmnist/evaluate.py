"""Forward-only metrics of a classifier or predictor on a set of images.

Units: classifiers report mean cross-entropy in nats per image and accuracy; predictors report mean
binary cross-entropy in nats per predicted pixel (783 per image) and in nats per image.

``evaluate`` scores a model on given tensors (the training loop uses it); ``evaluate_file`` scores
a shipped weights file on the full splits, with an on-disk cache. ``metrics_report`` runs it over
every shipped file and writes weights/metrics.json and metrics.md (``python -m seqmnist evaluate``).
"""

from __future__ import annotations

import hashlib
import json
import sys
from functools import lru_cache
from pathlib import Path

import torch
from torch.nn import functional as F

from .data import first_ink_steps
from .models import SEQUENCE_LENGTH

# Forward-only batch by cell type, from benchmarks/bench_batch.py (2 threads, jemalloc): oneDNN's
# LSTM peaks at 256-500 images and loses 5-15 % from 1000 on (cache); the GRU's per-step loop is
# overhead-bound below 500 and flat from 500 to 1000.
EVAL_BATCH = {"lstm": 256, "gru": 1000}
DEFAULT_EVAL_BATCH = 1000
# On a GPU, memory rather than speed sets the batch: a GPU campaign runs 16-22 workers on one card
# (22 ran an 80 GB H100 out of memory), and the activations of a validation batch over 784 steps
# grow with its size.
CUDA_EVAL_BATCH = 256


def eval_batch_size(model) -> int:
    parameter = next(model.parameters(), None)
    if parameter is not None and parameter.is_cuda:
        return CUDA_EVAL_BATCH
    cell = getattr(getattr(model, "arch", None), "cell", None)
    return EVAL_BATCH.get(cell, DEFAULT_EVAL_BATCH)


@torch.no_grad()
def evaluate(model, pixels: torch.Tensor, labels: torch.Tensor | None = None,
             batch_size: int | None = None, progress: bool = False) -> dict:
    """Metrics of ``model`` on ``pixels`` (N, 784) in {0, 1} (and ``labels`` for classifiers).

    Images go through in order of their first ink pixel: a batch then shares a longer all-zero
    prefix, which the recurrent core computes once (the sums are the same in any order).
    """
    batch_size = batch_size or eval_batch_size(model)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total_loss, correct, count = 0.0, 0, 0
    order = torch.from_numpy(first_ink_steps(pixels.cpu().numpy())).argsort(stable=True)
    pixels = pixels[order]
    labels = labels[order] if labels is not None else None
    starts = range(0, len(pixels), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="evaluate", unit="batch", leave=False)
    for start in starts:
        batch = pixels[start:start + batch_size].to(device, torch.float32)
        x = batch.t().unsqueeze(-1)
        if model.task == "classify":
            target = labels[start:start + batch_size].to(device)
            logits = model(x)
            total_loss += float(F.cross_entropy(logits, target, reduction="sum"))
            correct += int((logits.argmax(1) == target).sum())
        else:
            logits, _ = model(x)
            total_loss += float(F.binary_cross_entropy_with_logits(
                logits[:-1], x[1:].squeeze(-1), reduction="sum"))
        count += len(batch)
    model.train(was_training)
    if model.task == "classify":
        return {"loss": total_loss / count, "accuracy": correct / count, "images": count}
    per_image = total_loss / count
    return {"loss": per_image / (SEQUENCE_LENGTH - 1), "loss_per_image": per_image, "images": count}


# --------------------------------------------------------------------------- shipped weights
#
# ``evaluate_file`` scores one shipped weights file on the full train (55,000) and test (10,000)
# splits, and on the first CHECK_IMAGES test images (a fingerprint that a test recomputes for every
# shipped model), and caches the result in ``build/eval-cache/metrics.json``, keyed by the sha256
# of the weights file, of the binarized data and of the evaluation code (``evaluation_code_sha256``):
# a retrained file, other data or changed code misses the cache, and an old entry of the same path
# is dropped when the new one is written. Every file, the whole-image baselines included, is an
# ordinary "classify" or "predict" model: ``load_weights`` rebuilds it and ``evaluate`` scores it.
# A file that ``load_weights`` refuses (no or unreadable sidecar, another task, damaged tensors)
# raises its ``SeqMnistError``.

EVAL_CACHE_VERSION = 2
CACHE_FILE = "metrics.json"
CHECK_IMAGES = 500
CHECK = f"test_first{CHECK_IMAGES}"   # the fingerprint's name, used like a split's
SPLITS = ("train", "test", CHECK)
METRIC_NAMES = ("loss", "accuracy", "loss_per_image")
# The modules whose code decides the numbers: a change to any of them re-evaluates everything.
# (The tables that present them, metrics_report.py, are left out: reformatting them re-scores
# nothing.)
EVALUATION_MODULES = ("evaluate.py", "models.py", "fused_gru.py", "baselines.py")


@lru_cache(maxsize=None)
def evaluation_code_sha256() -> str:
    """sha256 of the modules that compute the metrics (names and bytes, in a fixed order)."""
    digest = hashlib.sha256()
    for name in EVALUATION_MODULES:
        digest.update(name.encode() + b"\0" + (Path(__file__).parent / name).read_bytes())
    return digest.hexdigest()


def split_tensors(mnist, split: str):
    """(pixels, labels) of ``split``: "train", "validation", "test" or the fingerprint CHECK."""
    if split == CHECK:
        pixels, labels = mnist.test.tensors()
        return pixels[:CHECK_IMAGES], labels[:CHECK_IMAGES]
    return mnist.split(split).tensors()  # ValueError for unknown names


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
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
        entry = _read_cache(cache_path)["entries"].get(key, {})
        cached = {s: entry["splits"][s] for s in splits if s in entry.get("splits", {})}
        if limit is None:
            shipped = shipped_metrics(path, sha, mnist.data_sha256)
            cached.update({s: shipped[s] for s in splits if s in shipped and s not in cached})
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
