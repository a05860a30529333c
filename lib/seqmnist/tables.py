"""Result tables in the assignment's own layout, as Markdown (it renders in the PDF).

``metrics`` arguments map an architecture name to ``{"train": {...}, "test": {...}}`` as returned by
the evaluation functions, or to None for a model that has no shipped weights yet.
"""

from __future__ import annotations

import re

from .notebook import markdown_table

SIZES = ("1x32", "1x64", "1x128", "3x32")
SIZE_HEADERS = ("1 layer, 32 units", "1 layer, 64 units", "1 layer, 128 units", "3 layers, 32 units")


def _cell(metrics, split: str, key: str, percent: bool = False, digits: int = 4) -> str:
    if not metrics or split not in metrics or key not in metrics[split]:
        return "n/a"
    value = metrics[split][key]
    return f"{100 * value:.2f} %" if percent else f"{value:.{digits}f}"


def classification_table(cell: str, metrics: dict, seeds: dict | None = None) -> str:
    """Rows Testing Loss, Training Loss, Testing Accuracy, Training Accuracy (of the shipped
    weights); columns by size. ``seeds`` (architecture -> ``results.seed_runs``) adds the test
    accuracy's mean ± sd and range over the seeds of each model's recipe."""
    rows = []
    for label, split, key, percent in (("Testing Loss", "test", "loss", False),
                                       ("Training Loss", "train", "loss", False),
                                       ("Testing Accuracy", "test", "accuracy", True),
                                       ("Training Accuracy", "train", "accuracy", True)):
        rows.append([label] + [_cell(metrics.get(f"{cell}-{size}"), split, key, percent)
                               for size in SIZES])
    if seeds is not None:
        rows.append(seed_row(cell, seeds, "accuracy"))
    return markdown_table([f"Model: {cell.upper()}", *SIZE_HEADERS], rows)


def prediction_table(cell: str, metrics: dict, seeds: dict | None = None) -> str:
    """Rows Testing Loss, Training Loss (nats per predicted pixel, and per image) of the shipped
    weights; ``seeds`` adds the test loss per pixel over the seeds of each model's recipe."""
    rows = []
    for label, split in (("Testing Loss", "test"), ("Training Loss", "train")):
        rows.append([f"{label} (nats/pixel)"] + [_cell(metrics.get(f"{cell}-{s}"), split, "loss")
                                                 for s in SIZES])
        rows.append([f"{label} (nats/image)"] + [
            _cell(metrics.get(f"{cell}-{s}"), split, "loss_per_image", digits=1) for s in SIZES])
    if seeds is not None:
        rows.append(seed_row(cell, seeds, "loss"))
    return markdown_table([f"Model: {cell.upper()}", *SIZE_HEADERS], rows)


def short_hardware(text: str) -> str:
    """'cuda: NVIDIA H200 + cpu: x86_64, 2 cores' -> 'NVIDIA H200 + 2-core CPU' (narrow columns)."""
    parts = []
    for part in text.split(" + "):
        cores = re.fullmatch(r"cpu: .*, (\d+) cores", part)
        parts.append(f"{cores[1]}-core CPU" if cores else part.removeprefix("cuda: "))
    return " + ".join(parts)


def training_table(sidecars: dict) -> str:
    """Epochs, the kept epoch (whose weights ship), training time and hardware of each shipped
    model, from its sidecar."""
    rows = []
    for name, meta in sidecars.items():
        if meta is None:
            rows.append([name, "not trained yet", "", "", "", ""])
            continue
        config = meta.get("config", {})
        rows.append([name, f"{meta.get('epochs_trained', 0)}/{config.get('epochs', '?')}",
                     meta.get("best_epoch", "?"), f"{config.get('lr', 0):g}",
                     f"{meta.get('wall_seconds', 0) / 3600:.2f}",
                     short_hardware(meta.get("hardware", "?"))])
    return markdown_table(["model", "epochs", "kept epoch", "lr", "train hours", "hardware"], rows)


def sweep_table(record: dict) -> str:
    """A learning-rate sweep record (seqmnist.sweep): each rate's best validation loss (and, for a
    classifier, accuracy), the lowest loss marked, a diverged rate said so."""
    classifier = record["task"] == "classify"
    rows = []
    for candidate in record["candidates"]:
        if candidate["best_val_loss"] is None:
            rows.append([f"{candidate['lr']:g}", "diverged", *(["-"] if classifier else []), ""])
            continue
        row = [f"{candidate['lr']:g}", f"{candidate['best_val_loss']:.4f}"]
        if classifier:
            row.append(f"{100 * candidate['best_validation'].get('accuracy', float('nan')):.2f} %")
        rows.append(row + ["yes" if candidate["lr"] == record["best_lr"] else ""])
    headers = ["lr", "best val loss", *(["best val accuracy"] if classifier else []), "lowest loss"]
    return markdown_table(headers, rows)


def sweep_overview(records: dict, shipped_rates: dict) -> str:
    """One row per swept model (``sweep.load_sweeps``): the grid, the budget, the best rate and
    whether the grid brackets it, beside the peak rate of the shipped run (``shipped_rates``:
    architecture -> rate, None without shipped weights)."""
    from .sweep import best_position

    rows = []
    for arch, record in records.items():
        rates = [candidate["lr"] for candidate in record["candidates"]]
        best = next(c for c in record["candidates"] if c["lr"] == record["best_lr"])
        shipped = shipped_rates.get(arch)
        rows.append([arch, f"{len(rates)}: {min(rates):.3g} to {max(rates):.3g}",
                     str(record["epochs"]), f"{record['best_lr']:.3g}",
                     f"{best['best_val_loss']:.4f}",
                     {"inside": "yes", "lowest": "no (lowest rate)", "highest": "no (highest rate)",
                      "only": "no (one rate)"}[best_position(record)],
                     "n/a" if shipped is None else f"{shipped:.3g}",
                     "n/a" if shipped is None else f"{shipped / record['best_lr']:.2g}"])
    return markdown_table(["model", "rates swept", "epochs per rate", "best rate",
                           "its val loss", "bracketed", "shipped rate", "shipped / best"], rows)


def recipe_words(config: dict, seed: bool = True) -> str:
    """A run's recipe in a table cell: 'lr 0.0141, 40 epochs, shift 2, dropout 0.25, seed 0'."""
    words = [f"lr {config['lr']:.3g}", f"{config['epochs']} epochs"]
    if config.get("optimizer", "adam") != "adam":
        words.append(config["optimizer"])
    words += [f"{key.replace('_', ' ')} {config[key]:g}"
              for key in ("shift", "dropout", "weight_decay", "ema") if config.get(key)]
    return ", ".join(words + ([f"seed {config.get('seed', 0)}"] if seed else []))


def model_summary(task: str, sidecars: dict, sweeps: dict, seeds: dict) -> str:
    """Per model, one row: the shipped run's recipe, its learning-rate sweep (the best rate of
    the grid, or that none was run), and the test figure over the seeds of that recipe
    (``sidecars``, ``sweeps``, ``seeds`` map an architecture to its shipped sidecar or None,
    ``sweep.load_sweeps`` record, ``results.seed_runs``)."""
    from .sweep import best_position

    metric = "accuracy" if task == "classify" else "loss"
    rows = []
    for arch, meta in sidecars.items():
        if meta is None:
            rows.append([arch, "not trained yet", "", ""])
            continue
        record = sweeps.get(arch)
        position = record and best_position(record)
        swept = "not swept yet" if record is None else (
            f"best {record['best_lr']:.3g} of {len(record['candidates'])} rates, "
            f"{record['epochs']} epochs" + {"inside": "", "only": " (one rate so far)"}.get(
                position, f" (at the {position} end)"))
        rows.append([arch, recipe_words(meta["config"]), swept,
                     seed_summary(seeds.get(arch) or [], metric)])
    unit = "accuracy (%)" if metric == "accuracy" else "loss (nats/pixel)"
    return markdown_table(["model", "shipped recipe", "learning-rate sweep",
                           f"test {unit} over seeds"], rows)


def recipe_table(runs: dict) -> str:
    """Every campaign's run of each model, on the validation split: epochs, shift augmentation, the
    epoch kept (and, for classifiers, whether chosen by validation loss or accuracy), the last
    epoch's training loss, the kept epoch's validation loss (and accuracy), and which run ships.
    ``runs`` maps an architecture to [(campaign, sidecar, ships)] (``results.campaign_runs``)."""
    rows, classifier_columns = [], []
    for arch, records in runs.items():
        for campaign, meta, ships in records:
            history = meta.get("history") or [{}]
            validation = meta.get("validation", {})
            config = meta.get("config", {})
            accuracy = validation.get("accuracy")
            classifier_columns.append(None if accuracy is None else
                                      (config.get("select", "loss"), f"{100 * accuracy:.2f} %"))
            rows.append([arch, campaign, str(meta.get("epochs_trained", "?")),
                         str(config.get("shift", 0)), str(meta.get("best_epoch", "?")),
                         f"{history[-1].get('train_loss', float('nan')):.4f}",
                         f"{validation.get('loss', float('nan')):.4f}",
                         "yes" if ships else ""])
    # short headers: eleven columns must fit the PDF's page width
    headers = ["model", "campaign", "epochs", "shift (px)", "kept epoch", "last train loss",
               "val loss", "ships"]
    if any(columns is not None for columns in classifier_columns):
        headers[5:5] = ["kept by"]
        headers.insert(8, "val accuracy")
        for row, columns in zip(rows, classifier_columns):
            select, accuracy = columns or ("-", "-")
            row[5:5] = [select]
            row.insert(8, accuracy)
    return markdown_table(headers, rows)


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


def task2_table(summaries: dict) -> str:
    """Task 2 in-painting, one row per model and horizon.

    ``summaries`` maps a model name to ``Task2Result.summary()`` rows (or None: no weights).
    Columns: -log p(ground truth | prefix) and the mean -log p(sample | prefix), in nats in total
    (mean ± standard error over the images) and per in-painted pixel, and the fraction of pixels
    where a sample differs from the ground truth and from another sample.
    """
    rows = []
    for name, summary in summaries.items():
        if not summary:
            rows.append([name, "n/a", "n/a", "n/a", "n/a", "n/a", "n/a", "n/a"])
            continue
        for r in summary:
            rows.append([name, r["horizon"], f"{r['gt_nll']:.2f} ± {r['gt_nll_sem']:.2f}",
                         f"{r['gt_nll_per_pixel']:.4f}",
                         f"{r['sample_nll']:.2f} ± {r['sample_nll_sem']:.2f}",
                         f"{r['sample_nll_per_pixel']:.4f}", f"{r['disagreement']:.4f}",
                         f"{r['pairwise_disagreement']:.4f}"])
    return markdown_table(["model", "pixels in-painted", "GT NLL (nats)", "GT NLL / pixel",
                           "sample NLL (nats)", "sample NLL / pixel", "sample vs GT differ",
                           "sample vs sample differ"], rows)


def inpainting_table(summaries: dict) -> str:
    """Task 3 cross-entropies, one row per (model, set).

    ``summaries`` maps (model, set name) to ``Posterior.summary()`` (with ground truth) or None.
    """
    rows = []
    for (name, set_name), s in summaries.items():
        if not s:
            rows.append([name, set_name] + ["n/a"] * 7)
            continue
        rows.append([name, set_name, s["images"], f"{s['marginal_ce']:.4f}",
                     f"{s['truth_joint_nll']:.4f}", f"{100 * s['map_error']:.2f} %",
                     f"{s['truth_image_nll']:.2f}", f"{s['map_image_nll']:.2f}",
                     f"{s['truth_image_nll'] - s['map_image_nll']:.3f}"])
    return markdown_table(["model", "mask", "images", "marginal CE (nats / missing px)",
                           "-log p(GT filling given the rest) (nats)", "MAP pixel error",
                           "image NLL, GT filling", "image NLL, MAP filling",
                           "difference (nats / image)"], rows)


def gibbs_table(rows: list[dict]) -> str:
    """Exact enumeration against Gibbs sampling: one row per (mask, method).

    Each row: mask, method, images, missing (pixels per image), marginal_ce, map_error, and
    optionally truth_image_nll / filled_image_nll (nats per image) and seconds.
    """
    def number(row, key, fmt):
        return format(row[key], fmt) if row.get(key) is not None else "n/a"

    body = [[r["mask"], r["method"], r["images"], f"{r['missing']:g}",
             number(r, "marginal_ce", ".4f"),
             f"{100 * r['map_error']:.2f} %" if r.get("map_error") is not None else "n/a",
             number(r, "truth_image_nll", ".2f"), number(r, "filled_image_nll", ".2f"),
             number(r, "seconds", ".1f")] for r in rows]
    return markdown_table(["mask", "method", "images", "missing px", "marginal CE (nats / px)",
                           "pixel error of the most probable filling", "image NLL, GT",
                           "image NLL, most probable filling", "seconds"], body)


def cost_table(comparison: dict) -> str:
    """Accuracy beside cost per image for the models of a paired comparison
    (``results.paired_comparison``): recurrent readers first, then the whole-image models."""
    rows = []
    for name in comparison["recurrent"] + comparison["baselines"]:
        m = comparison["models"][name]
        ms = m.get("ms_per_image")
        rows.append([m["label"], f"{100 * m['accuracy']:.2f} %", f"{m['errors']:,}",
                     f"{m['parameters']:,}", f"{m['multiply_adds'] / 1e6:.2f} M",
                     "n/a" if ms is None else f"{ms:.3f}"])
    return markdown_table(["model", "test accuracy", "errors", "parameters",
                           "multiply-adds / image", "ms / image (measured)"], rows)


def paired_table(comparison: dict) -> str:
    """Each recurrent reader against each whole-image model on the same test images: the images
    only one of them gets right, McNemar's exact p-value and the accuracy difference with its
    paired bootstrap 95 % interval, in percentage points."""
    label = {name: m["label"] for name, m in comparison["models"].items()}
    rows = [[p["model_a"], label[p["model_b"]], f"{p['only_a']:,}", f"{p['only_b']:,}",
             f"{p['p_value']:.1e}" if p["p_value"] < 0.001 else f"{p['p_value']:.3f}",
             f"{100 * p['difference']:+.2f}",
             f"{100 * p['interval'][0]:+.2f} to {100 * p['interval'][1]:+.2f}"]
            for p in comparison["pairs"]]
    return markdown_table(["A", "B", "only A right", "only B right", "McNemar p",
                           "A - B (points)", "95 % interval (points)"], rows)


def seed_summary(seeds: list[dict], metric: str) -> str:
    """'98.21 ± 0.30 (97.90 to 98.50, 3 seeds)' of a model's seed runs (``results.seed_runs``) on
    the test ``metric`` ("accuracy" in percent, "loss" in nats); "1 run" or "n/a" without a spread."""
    import numpy as np

    values = np.array([run["test"][metric] for run in seeds if metric in run["test"]])
    if len(values) < 2:
        return "1 run" if len(values) else "n/a"
    scale, digits = (100, 2) if metric == "accuracy" else (1, 4)
    low, high = scale * values.min(), scale * values.max()
    return (f"{scale * values.mean():.{digits}f} ± {scale * values.std(ddof=1):.{digits}f} "
            f"({low:.{digits}f} to {high:.{digits}f}, {len(values)} seeds)")


def seed_row(cell: str, seeds: dict, metric: str) -> list[str]:
    """The row of a result table in the assignment's layout (``classification_table``,
    ``prediction_table``) that gives each size's test ``metric`` over the seeds of its recipe."""
    label = "Testing Accuracy over seeds (%)" if metric == "accuracy" else "Testing Loss over seeds"
    return [label] + [seed_summary(seeds.get(f"{cell}-{size}") or [], metric) for size in SIZES]


def seed_table(runs: dict, task: str = "classify") -> str:
    """Each model's seed runs (``results.seed_runs``; ``runs`` maps a name to them): validation and
    test figures per seed, the test figure's mean ± sd and range, and the seed that ships (a
    classifier by accuracy in percent, a predictor by loss in nats per pixel)."""
    import numpy as np

    metric, scale, digits = ("accuracy", 100, 2) if task == "classify" else ("loss", 1, 4)
    rows = []
    for name, seeds in runs.items():
        if not seeds:
            continue
        test = np.array([run["test"][metric] for run in seeds])
        shipped = [run["seed"] for run in seeds if run["ships"]]
        rows.append([name, ", ".join(str(run["seed"]) for run in seeds),
                     " / ".join(f"{scale * run['validation'][metric]:.{digits}f}" for run in seeds),
                     " / ".join(f"{scale * value:.{digits}f}" for value in test),
                     f"{scale * test.mean():.{digits}f} ± {scale * test.std(ddof=1):.{digits}f}"
                     if len(test) > 1 else f"{scale * test[0]:.{digits}f}",
                     f"{scale * test.min():.{digits}f} to {scale * test.max():.{digits}f}",
                     ", ".join(map(str, shipped)) or "none"])
    unit = "(%)" if task == "classify" else "(nats/pixel)"
    return markdown_table(["model", "seeds", f"validation {metric} {unit}", f"test {metric} {unit}",
                           f"test mean ± sd {unit}", f"test min to max {unit}", "shipped seed"],
                          rows)
