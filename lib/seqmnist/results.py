"""The numbers the notebooks show, gathered from the shipped weights (evaluation is cached).

Quick mode (``limit``) scores only the first ``limit`` images of each split, so that tests run in
seconds; both go through ``eval_cache.evaluate_file``.
"""

from __future__ import annotations

import json
from pathlib import Path

from .eval_cache import evaluate_file
from .evaluate import file_sha256
from .notebook import resolve
from .weights import load_weights, read_sidecar, shipped_path

BASELINE_NAMES = {"cnn": "CNN (whole image)", "mlp": "MLP (whole image)"}
SHORT_NAMES = {"cnn": "CNN", "mlp": "MLP"}   # in prose and the comparison tables


def weights_file(task: str, arch: str, weights_dir: str | Path = "weights") -> Path:
    return shipped_path(task, arch, resolve(weights_dir))


def model_results(task: str, arch: str, weights_dir="weights", limit: int | None = None,
                  progress: bool = False, mnist=None) -> dict | None:
    """``{"train": metrics, "test": metrics, "meta": sidecar}``, or None without shipped weights."""
    path = weights_file(task, arch, weights_dir)
    if not path.exists():
        return None
    metrics = evaluate_file(path, progress=progress, mnist=mnist, limit=limit)["splits"]
    return {"train": metrics["train"], "test": metrics["test"], "meta": read_sidecar(path)}


def classification_results(archs, weights_dir="weights", limit=None, progress=False,
                           mnist=None) -> dict:
    return {arch: model_results("classify", arch, weights_dir, limit, progress, mnist)
            for arch in archs}


def prediction_results(archs, weights_dir="weights", limit=None, progress=False,
                       mnist=None) -> dict:
    return {arch: model_results("predict", arch, weights_dir, limit, progress, mnist)
            for arch in archs}


def training_histories(task: str, archs, weights_dir="weights") -> dict:
    """Run name -> epoch history, from the sidecars of the shipped weights that exist."""
    histories = {}
    for arch in archs:
        path = weights_file(task, arch, weights_dir)
        if path.exists():
            histories[arch] = read_sidecar(path).get("history", [])
    return histories


def campaign_runs(task: str, archs, weights_dir="weights") -> dict:
    """Architecture -> [(campaign number, sidecar, ships)] for each campaign that trained the
    model. A campaign's folder, weights/sweeps/campaign<N>/, is laid out like weights/ and keeps
    every run's sidecar (the record of how the shipped recipe was chosen); ``ships`` marks the run
    whose sidecar is the shipped one. A run still under way there is not a record yet."""
    root = resolve(weights_dir)
    folders = sorted((root / "sweeps").glob("campaign*"), key=lambda p: (len(p.name), p.name))
    runs = {}
    for arch in archs:
        path = weights_file(task, arch, weights_dir)
        shipped = read_sidecar(path) if path.exists() else None
        runs[arch] = []
        for folder in folders:
            record = weights_file(task, arch, folder).with_suffix(".json")
            if record.exists():
                meta = json.loads(record.read_text())
                if meta.get("epochs_trained") != meta.get("config", {}).get("epochs"):
                    continue
                runs[arch].append((folder.name.removeprefix("campaign"), meta,
                                   meta == shipped))
    return runs


def lowest_validation_loss(sidecars: dict) -> str | None:
    """The model whose sidecar records the lowest validation loss (the best predictor): chosen
    without looking at the test set. ``sidecars`` maps a name to its sidecar."""
    return min(sidecars, key=lambda name: sidecars[name]["validation"]["loss"], default=None)


def best_of(results: dict, archs) -> str | None:
    """The architecture with the highest validation accuracy (from its sidecar) among those
    evaluated: chosen without looking at the test set."""
    scored = [a for a in archs if results.get(a)]
    return max(scored, key=lambda a: results[a]["meta"]["validation"]["accuracy"], default=None)



def seed_runs(task: str, arch: str, weights_dir="weights") -> list[dict]:
    """Every finished run of the shipped model's recipe that differs from it only by its seed,
    with its test figures: the campaigns' runs (weights/sweeps/campaign<N>/) and the baselines'
    seed runs (weights/sweeps/baselines/seed<N>/), each folder scored by ``python -m seqmnist
    evaluate --weights-dir FOLDER [--splits test]``. A run without a score of its very file there
    (the weights' sha256) is left out.

    Returns [{"seed", "folder", "validation" (the sidecar's, at the kept epoch), "test"
    ({"loss", and "accuracy" for a classifier}), "history" (the sidecar's), "ships"}], in folder
    order."""
    from .campaign import BASELINE_SEEDS_DIR
    from .train import recipe_without_seed

    root = resolve(weights_dir)
    shipped = shipped_path(task, arch, root)
    if not shipped.exists():
        return []
    recipe, shipped_bytes = recipe_without_seed(read_sidecar(shipped)), shipped.read_bytes()
    campaigns = sorted((root / "sweeps").glob("campaign*"), key=lambda p: (len(p.name), p.name))
    runs, seeds = [], set()
    for folder in campaigns + sorted((root / BASELINE_SEEDS_DIR).glob("seed*")):
        path, metrics = shipped_path(task, arch, folder), folder / "metrics.json"
        if not path.exists() or not metrics.exists():
            continue
        meta = read_sidecar(path)
        if (meta.get("epochs_trained") != meta["config"].get("epochs")
                or recipe_without_seed(meta) != recipe or meta["config"]["seed"] in seeds):
            continue
        row = next((r for r in json.loads(metrics.read_text())["rows"]
                    if r["file"] == str(path.relative_to(folder))), None)
        if row is None or "test_loss" not in row or row.get("weights_sha256") != file_sha256(path):
            continue   # not scored, or scored before the file was retrained
        seeds.add(meta["config"]["seed"])
        test = {key: row[f"test_{key}"] for key in ("loss", "accuracy") if f"test_{key}" in row}
        runs.append({"seed": meta["config"]["seed"], "folder": str(folder.relative_to(root)),
                     "validation": meta["validation"], "test": test,
                     "history": meta.get("history", []),
                     "ships": path.read_bytes() == shipped_bytes})
    return runs


def ranked(results: dict, archs) -> list[str]:
    """The evaluated architectures, best validation accuracy first (never the test set)."""
    scored = [a for a in archs if results.get(a)]
    return sorted(scored, key=lambda a: -results[a]["meta"]["validation"]["accuracy"])


def classifier_passes(names, pixels, labels=None, weights_dir="weights", device: str = "cpu",
                      use_cache: bool = True, progress: bool = False) -> dict:
    """Name -> ``compare.shipped_predictions`` on ``pixels`` for each classifier in ``names`` with
    shipped weights: the one cached pass per model and split whose predictions, logits and (with
    ``labels``) reading the comparison, the reading curves and the calibration share."""
    from . import compare
    from .notebook import progress as bar

    passes = {}
    for name in bar(list(names), progress, desc="classifiers"):
        path = weights_file("classify", name, weights_dir)
        if path.exists():
            passes[name] = compare.shipped_predictions(path, pixels, labels, device=device,
                                                       use_cache=use_cache)
    return passes


def paired_comparison(results: dict, archs, baselines, weights_dir="weights", mnist=None,
                      limit: int | None = None, device: str = "cpu", count: int = 3,
                      use_cache: bool = True, passes: dict | None = None) -> dict | None:
    """The ``count`` best recurrent readers and the whole-image baselines on the same test images
    (the first ``limit`` in quick mode): their paired predictions (cached), the paired tests of
    each reader against each baseline, and each model's cost per image (``compare.summarize``).
    ``passes``: ``classifier_passes`` on those test images and labels, when already made.
    None when there is not at least one of each with shipped weights."""
    import numpy as np

    from . import compare
    from .data import first_ink_steps, load_mnist
    from .models import parameter_count

    recurrent, whole = ranked(results, archs)[:count], ranked(results, baselines)
    if not recurrent or not whole:
        return None
    mnist = mnist or load_mnist()
    pixels, labels = mnist.test.tensors()
    if limit:
        pixels, labels = pixels[:limit], labels[:limit]
    models, threads = {}, set()
    for name in recurrent + whole:
        path = weights_file("classify", name, weights_dir)
        model, _ = load_weights(path, task="classify", device=device)
        run = (passes or {}).get(name) or compare.shipped_predictions(
            path, pixels, labels, device=device, use_cache=use_cache, model=model)
        threads.add(run["threads"])
        models[name] = {"label": SHORT_NAMES.get(name, name),
                        "correct": run["predicted"] == labels.numpy(),
                        "parameters": parameter_count(model),
                        "multiply_adds": compare.multiply_adds(model),
                        "ms_per_image": run["ms_per_image"]}
    trailing = float(np.median(first_ink_steps(pixels.numpy()[:, ::-1])))
    return compare.summarize(models, recurrent, whole, limit=limit, device=device,
                             threads=sorted(threads), trailing_blank=trailing)


def _points(fraction: float) -> str:
    return f"{100 * fraction:+.2f}"


def _p(value: float) -> str:
    return f"p = {value:.1e}" if value < 0.001 else f"p = {value:.3f}"


def _times(x: float, y: float) -> str:
    """'3.2 times as many' / '2.0 times fewer' / 'about as many'."""
    ratio = x / y if y else float("inf")
    if 0.95 <= ratio <= 1.05:
        return "about as many"
    return f"{ratio:.1f} times as many" if ratio > 1 else f"{1 / ratio:.1f} times fewer"


SIGNIFICANCE = 0.05


def comparison_paragraph(comparison: dict | None) -> str:
    """What the paired comparison says, every conclusion chosen by its numbers: which of the best
    recurrent reader and the best whole-image model (both by validation accuracy) is more
    accurate and by how many test images, whether McNemar's exact test and the bootstrap interval
    call that significant at 5 %, and what each costs per image."""
    if not comparison:
        return ("*The comparison needs shipped weights for at least one recurrent and one "
                "whole-image model.*")
    models, n = comparison["models"], comparison["images"]
    rnn_name, base_name = comparison["recurrent"][0], comparison["baselines"][0]
    rnn, base = models[rnn_name], models[base_name]
    pair = next(p for p in comparison["pairs"]
                if p["model_a"] == rnn_name and p["model_b"] == base_name)
    low, high = pair["interval"]
    significant = pair["p_value"] < SIGNIFICANCE
    excludes_zero = low > 0 or high < 0
    rnn_ahead = pair["only_a"] > pair["only_b"]
    gap = abs(pair["only_a"] - pair["only_b"])
    scope = (f"On the first {n:,} test images (quick mode: a check, not the reported numbers)"
             if comparison.get("limit") else f"On the {n:,} test images")
    if gap == 0:
        lead = "both get the same number of images right"
    else:
        leader = f"**{rnn_name}**" if rnn_ahead else f"the {base['label']}"
        lead = f"{leader} gets {gap:,} more test image{'s' if gap > 1 else ''} right"
    text = [
        f"{scope}, the best recurrent reader (by validation accuracy), **{rnn_name}**, classifies "
        f"{100 * rnn['accuracy']:.2f} % correctly ({rnn['errors']:,} errors) and the best "
        f"whole-image model, the **{base['label']}**, {100 * base['accuracy']:.2f} % "
        f"({base['errors']:,} errors): {lead}. They disagree on "
        f"{pair['only_a'] + pair['only_b']:,} images; only {rnn_name} is right on "
        f"{pair['only_a']:,} of them, only the {base['label']} on {pair['only_b']:,}."]
    interval = (f"the paired bootstrap 95 % interval of the accuracy difference ({rnn_name} minus "
                f"{base['label']}), {_points(low)} to {_points(high)} points, "
                f"{'excludes' if excludes_zero else 'contains'} 0")
    if significant:
        better = rnn_name if rnn_ahead else f"the {base['label']}"
        text.append(f"McNemar's exact test rejects equal accuracy at the 5 % level "
                    f"({_p(pair['p_value'])}) and {interval}: {better} is significantly more "
                    f"accurate on this test set.")
    else:
        text.append(f"McNemar's exact test does not reject equal accuracy at the 5 % level "
                    f"({_p(pair['p_value'])}) and {interval}: the two are not distinguishable on "
                    f"this test set.")
    if significant != excludes_zero:
        text.append(f"The two criteria disagree, so the difference is at the edge of what "
                    f"{n:,} images can resolve.")
    if significant and not rnn_ahead:
        features = (" and translation-invariant features for free" if base_name == "cnn" else "")
        text.append(
            f"A possible reason: seeing the image at once gives the {base['label']} the 2-D "
            f"neighbourhood of every pixel{features}, while the recurrent reader must carry "
            f"everything through up to 784 state updates; vertically adjacent pixels reach it 28 "
            f"steps apart" + (f", and after the last ink pixel of a test image come "
                              f"{comparison['trailing_blank']:.0f} blank pixels (median) that its "
                              f"state must survive." if "trailing_blank" in comparison else "."))
    rnn_costlier = rnn["multiply_adds"] > base["multiply_adds"]
    cost = (f"{rnn_name} has {rnn['parameters']:,} parameters against the {base['label']}'s "
            f"{base['parameters']:,} ({_times(rnn['parameters'], base['parameters'])}) and "
            f"needs {rnn['multiply_adds'] / 1e6:.2f} M multiply-adds per image against "
            f"{base['multiply_adds'] / 1e6:.2f} M "
            f"({_times(rnn['multiply_adds'], base['multiply_adds'])})")
    if rnn.get("ms_per_image") is not None and base.get("ms_per_image") is not None:
        threads = comparison.get("threads") or ["?"]
        cost += (f"; a batched forward pass measured on this machine ({_device_words(comparison)}, "
                 f"{'/'.join(map(str, threads))} thread{'s' if threads != [1] else ''}) takes "
                 f"{rnn['ms_per_image']:.3f} ms against {base['ms_per_image']:.3f} ms per image")
    text.append(cost + ".")
    if not significant:
        cheaper = f"the {base['label']}" if rnn_costlier else rnn_name
        verdict = (f"At accuracies this test set cannot tell apart, {cheaper} is the cheaper "
                   f"model in multiply-adds.")
    elif rnn_ahead:
        verdict = (f"{rnn_name}'s higher accuracy costs more multiply-adds per image."
                   if rnn_costlier else
                   f"{rnn_name} is both more accurate and cheaper in multiply-adds.")
    else:
        verdict = (f"The {base['label']} is both more accurate and cheaper in multiply-adds."
                   if rnn_costlier else
                   f"{rnn_name} is cheaper in multiply-adds but less accurate.")
    text.append(verdict)
    text.append(_other_pairs(comparison))
    return " ".join(t for t in text if t)


def _device_words(comparison: dict) -> str:
    device = comparison.get("device", "cpu")
    return "CPU" if device == "cpu" else device


def _other_pairs(comparison: dict) -> str:
    """One sentence over the rest of the paired table (uncorrected p-values)."""
    pairs = comparison["pairs"]
    if len(pairs) < 2:
        return ""
    significant = [p for p in pairs if p["p_value"] < SIGNIFICANCE]
    label = {name: m["label"] for name, m in comparison["models"].items()}

    def winner(p):
        return p["model_a"] if p["only_a"] > p["only_b"] else label[p["model_b"]]

    readers = len(comparison["recurrent"])
    which = (f"each of the {readers} best recurrent readers" if readers > 1
             else "the best recurrent reader")
    head = (f"Over all {len(pairs)} pairs of the table ({which} against each whole-image model; "
            f"p-values not corrected for multiple comparisons), ")
    if not significant:
        return head + "none differs significantly at the 5 % level."
    listed = "; ".join(f"{p['model_a']} vs {label[p['model_b']]} ({_p(p['p_value'])}, "
                       f"{winner(p)} ahead)" for p in significant)
    return head + f"{len(significant)} differ{'s' if len(significant) == 1 else ''} " \
                  f"significantly at the 5 % level: {listed}."


def misclassified(pixels, labels, predicted, count: int = 20):
    """Up to ``count`` misclassified images, in their order, and 'prediction / label' titles, from
    a pass's predictions (``classifier_passes``): no second forward pass."""
    import numpy as np

    pixels, labels, predicted = (np.asarray(a) for a in (pixels, labels, predicted))
    wrong = np.flatnonzero(predicted != labels)[:count]
    return ([pixels[i] for i in wrong],
            [f"{int(predicted[i])} / {int(labels[i])}" for i in wrong])
