"""Result tables in the assignment's own layout, as Markdown (it renders in the PDF).

``metrics`` arguments map an architecture name to ``{"train": {...}, "test": {...}}`` as returned by
the evaluation functions, or to None for a model that has no shipped weights yet.
"""

from __future__ import annotations

from .notebook import markdown_table

SIZES = ("1x32", "1x64", "1x128", "3x32")
SIZE_HEADERS = ("1 layer, 32 units", "1 layer, 64 units", "1 layer, 128 units", "3 layers, 32 units")


def _cell(metrics, split: str, key: str, percent: bool = False, digits: int = 4) -> str:
    if not metrics or split not in metrics or key not in metrics[split]:
        return "n/a"
    value = metrics[split][key]
    return f"{100 * value:.2f} %" if percent else f"{value:.{digits}f}"


def classification_table(cell: str, metrics: dict) -> str:
    """Rows Testing Loss, Training Loss, Testing Accuracy, Training Accuracy; columns by size."""
    rows = []
    for label, split, key, percent in (("Testing Loss", "test", "loss", False),
                                       ("Training Loss", "train", "loss", False),
                                       ("Testing Accuracy", "test", "accuracy", True),
                                       ("Training Accuracy", "train", "accuracy", True)):
        rows.append([label] + [_cell(metrics.get(f"{cell}-{size}"), split, key, percent)
                               for size in SIZES])
    return markdown_table([f"Model: {cell.upper()}", *SIZE_HEADERS], rows)


def prediction_table(cell: str, metrics: dict) -> str:
    """Rows Testing Loss, Training Loss (nats per predicted pixel, and per image)."""
    rows = []
    for label, split in (("Testing Loss", "test"), ("Training Loss", "train")):
        rows.append([f"{label} (nats/pixel)"] + [_cell(metrics.get(f"{cell}-{s}"), split, "loss")
                                                 for s in SIZES])
        rows.append([f"{label} (nats/image)"] + [
            _cell(metrics.get(f"{cell}-{s}"), split, "loss_per_image", digits=1) for s in SIZES])
    return markdown_table([f"Model: {cell.upper()}", *SIZE_HEADERS], rows)


def training_table(sidecars: dict) -> str:
    """Epochs, best epoch, training time and hardware of each shipped model, from its sidecar."""
    rows = []
    for name, meta in sidecars.items():
        if meta is None:
            rows.append([name, "not trained yet", "", "", "", ""])
            continue
        config = meta.get("config", {})
        rows.append([name, f"{meta.get('epochs_trained', 0)}/{config.get('epochs', '?')}",
                     meta.get("best_epoch", "?"), f"{config.get('lr', 0):g}",
                     f"{meta.get('wall_seconds', 0) / 3600:.2f}", meta.get("hardware", "?")])
    return markdown_table(["model", "epochs", "best epoch", "lr", "train hours", "hardware"], rows)


def baseline_table(results: dict, archs, baselines) -> str:
    """Whole-image models beside the best LSTM and the best GRU reader (test and train)."""
    from .results import BASELINE_NAMES, best_of

    picks = [(BASELINE_NAMES.get(b, b), b) for b in baselines]
    for cell in ("lstm", "gru"):
        best = best_of(results, [a for a in archs if a.startswith(cell)])
        if best:
            picks.append((f"best {cell.upper()}: {best}", best))
    rows = [[label, _cell(results.get(a), "test", "accuracy", True), _cell(results.get(a), "test", "loss"),
             _cell(results.get(a), "train", "accuracy", True), _cell(results.get(a), "train", "loss")]
            for label, a in picks]
    return markdown_table(["model", "test accuracy", "test loss", "train accuracy", "train loss"], rows)
