"""The metrics report of the shipped models: weights/metrics.json and weights/metrics.md.

``evaluate_all`` scores every shipped weights file with ``eval_cache.evaluate_file`` and
records, beside each model's figures, the test figures of every seed run of its recipe
(``results.seed_runs``), so that the report's spread is in the committed record too. Presenting
the numbers lives here, apart from the code that computes them: the sha256 of evaluate.py and
the models keys the committed and cached scores, and a change to these tables must not re-score
anything.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from .eval_cache import evaluate_file, evaluation_code_sha256
from .evaluate import CHECK_IMAGES, METRIC_NAMES, SPLITS
from .notebook import markdown_table

WEIGHT_FOLDERS = ("classify", "predict", "baselines")


def _sort_key(row: dict):
    order = {"classify": 0, "predict": 1}
    match = re.match(r"^(lstm|gru)-(\d+)x(\d+)$", str(row["model"]))
    cells = {"lstm": 0, "gru": 1}  # the assignment's table order: LSTMs, then GRUs
    arch = (cells[match[1]], int(match[2]), int(match[3])) if match else (2, 0, 0)
    return (order.get(row["task"], 2), row["task"], arch, str(row["model"]), row["file"])


def _row(path: Path, root: Path, meta: dict, result: dict) -> dict:
    row = {"model": meta.get("name") or meta.get("architecture") or path.stem,
           "task": meta.get("task"), "file": str(path.relative_to(root)),
           "epochs": meta.get("epochs_trained"), "best_epoch": meta.get("best_epoch"),
           "planned_epochs": (meta.get("config") or {}).get("epochs"),
           "training_hours": (meta["wall_seconds"] / 3600 if meta.get("wall_seconds") is not None
                              else None),
           "hardware": meta.get("hardware"), "weights_sha256": result["weights_sha256"],
           "images": {s: m.get("images") for s, m in result["splits"].items()}}
    for split, metrics in result["splits"].items():
        for name in METRIC_NAMES:
            if name in metrics:
                row[f"{split}_{name}"] = metrics[name]
    return row


def recorded_seeds(task: str, arch: str, root: Path) -> list[dict]:
    """The seed runs of a shipped model's recipe (``results.seed_runs``) as metrics.json keeps
    them: seed, folder, whether it ships, and its validation and test figures (no history)."""
    from .results import seed_runs

    return [{key: run[key] for key in ("seed", "folder", "ships", "validation", "test")}
            for run in seed_runs(task, arch, root)]


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _columns(metrics: dict, seed_metric: str, seed_title: str) -> list:
    """A task's columns: the model, ``metrics`` ({title: (row key, format)}), its seeds' summary."""
    from .tables import seed_summary

    def cell(key, spec):
        return lambda r: _pct(r.get(key)) if spec == "%" else _fmt(r.get(key), spec)

    return ([("model", lambda r: r["model"])]
            + [(title, cell(key, spec)) for title, (key, spec) in metrics.items()]
            + [(seed_title, lambda r: seed_summary(r.get("seeds") or [], seed_metric))])


TASK_COLUMNS = {
    "classify": ("Classification (cross-entropy per image, accuracy)", _columns(
        {"train loss": ("train_loss", ".4f"), "test loss": ("test_loss", ".4f"),
         "train accuracy": ("train_accuracy", "%"), "test accuracy": ("test_accuracy", "%")},
        "accuracy", "test accuracy over seeds (%)")),
    "predict": ("Next-pixel prediction (binary cross-entropy per predicted pixel and per image, "
                "783 predicted pixels)", _columns(
        {"train loss / pixel": ("train_loss", ".5f"), "test loss / pixel": ("test_loss", ".5f"),
         "train loss / image": ("train_loss_per_image", ".2f"),
         "test loss / image": ("test_loss_per_image", ".2f")},
        "loss", "test loss / pixel over seeds")),
}


def metrics_markdown(rows: list[dict], limit: int | None = None) -> str:
    """The metrics table(s) in Markdown: one table per task."""
    scope = (f"Only the first {limit} images of each split (a quick check, not the reported "
             f"numbers)." if limit else "Full splits: train 55,000 images, test 10,000.")
    lines = ["# Metrics of the shipped models", "",
             f"Written by `python -m seqmnist evaluate`. {scope} Binarized MNIST (threshold "
             f"0.1); losses in nats. Epochs are trained/planned (fewer: the campaign "
             f"has not finished the run); each model ships the weights of its epoch with the "
             f"lowest validation loss, or the highest validation accuracy where its config "
             f"says `select: accuracy`. \"Over seeds\": mean ± sd (min to max) on test of the "
             f"runs of the model's recipe that differ only by their seed (the shipped one "
             f"among them), from their campaign folders.", ""]

    def epochs(r):   # trained/planned: weights of an unfinished run are visibly partial
        planned = r.get("planned_epochs")
        return _fmt(r.get("epochs"), "d") + (f"/{planned}" if planned is not None else "")

    for task in dict.fromkeys(row["task"] for row in rows):
        title, columns = TASK_COLUMNS.get(task, (task, TASK_COLUMNS["classify"][1]))
        columns = columns + [
            ("epochs", epochs), ("training hours", lambda r: _fmt(r.get("training_hours"), ".2f")),
            ("hardware", lambda r: r.get("hardware") or "-")]
        table = [[cell(r) for _, cell in columns] for r in rows if r["task"] == task]
        lines += [f"## {title}", "", markdown_table([name for name, _ in columns], table), ""]
    if not rows:
        lines += ["No weights found.", ""]
    return "\n".join(lines)


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.2f} %"


def evaluate_all(weights_dir=None, use_cache: bool = True, progress: bool = False,
                 cache_dir=None, write: bool = True, splits=SPLITS, mnist=None,
                 limit: int | None = None) -> dict:
    """Evaluate every ``*.safetensors`` under weights/{classify,predict,baselines}.

    Returns {"rows": [...], "skipped": [{"file", "reason"}], ...} and, with ``write``, writes
    ``metrics.md`` and ``metrics.json`` into ``weights_dir`` (default ``paths.weights_dir()``).
    A file that fails its checks is skipped and the others are still scored (their results are
    cached), but then nothing is written and CheckpointError names the refused files: the
    committed metrics never lose a model's row to a damaged file.
    """
    from .data import atomic_write_bytes, load_mnist
    from .errors import CheckpointError, ConfigError
    from .paths import weights_dir as default_weights_dir
    from .weights import read_sidecar

    root = Path(weights_dir) if weights_dir is not None else default_weights_dir()
    mnist = mnist if mnist is not None else load_mnist()
    rows, skipped = [], []
    files = [p for folder in WEIGHT_FOLDERS for p in sorted((root / folder).glob("*.safetensors"))]
    for path in files:
        relative = str(path.relative_to(root))
        try:  # a file that load_weights refuses is skipped (a cache write error still raises)
            meta = read_sidecar(path)
            if progress:
                print(f"evaluating {relative}", file=sys.stderr)
            result = evaluate_file(path, splits, cache_dir, use_cache, progress, mnist, limit)
        except (CheckpointError, ConfigError) as error:
            skipped.append({"file": relative, "reason": str(error)})
            continue
        rows.append(_row(path, root, meta, result))
    for row in rows:
        row["seeds"] = recorded_seeds(row["task"], row["model"], root)
    rows.sort(key=_sort_key)
    report = {"data_sha256": mnist.data_sha256, "evaluation_code_sha256": evaluation_code_sha256(),
              "check_images": CHECK_IMAGES, "limit": limit, "rows": rows, "skipped": skipped}
    if write and skipped:
        refused = "; ".join(f"{s['file']}: {s['reason']}" for s in skipped)
        raise CheckpointError(f"{len(skipped)} weights file(s) refused, metrics not written: "
                              f"{refused}")
    if write:
        text = json.dumps(report, indent=1, sort_keys=True)
        atomic_write_bytes(root / "metrics.json", lambda handle: handle.write(text.encode()))
        markdown = metrics_markdown(rows, limit)
        atomic_write_bytes(root / "metrics.md", lambda handle: handle.write(markdown.encode()))
    return report
