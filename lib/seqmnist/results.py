"""The numbers the notebooks show, gathered from the shipped weights (evaluation is cached).

Quick mode (``limit``) scores only the first ``limit`` images of each split, so that tests run in
seconds; both go through ``evaluate_file``'s cache.
"""

from __future__ import annotations

import json
from pathlib import Path

from .evaluate import evaluate_file
from .notebook import resolve
from .weights import load_weights, read_sidecar, shipped_path

BASELINE_NAMES = {"cnn": "CNN (whole image)", "mlp": "MLP (whole image)"}


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


def comparison_paragraph(results: dict, archs, baselines, mnist=None) -> str:
    """The answer to 'how does this compare with a model that sees the whole image?', computed."""
    import numpy as np

    from .data import first_ink_steps, load_mnist

    mnist = mnist or load_mnist()
    trailing = float(np.median(first_ink_steps(mnist.test.x[:, ::-1])))
    best_rnn = best_of(results, archs)
    best_base = best_of(results, baselines)
    if best_rnn is None or best_base is None:
        return "*The comparison needs shipped weights for at least one recurrent and one whole-image model.*"
    rnn, base = results[best_rnn]["test"], results[best_base]["test"]
    rnn_err, base_err = 1 - rnn["accuracy"], 1 - base["accuracy"]
    worst_rnn = min((a for a in archs if results.get(a)), key=lambda a: results[a]["test"]["accuracy"])
    worst = results[worst_rnn]["test"]
    relation = "fewer" if rnn_err < base_err else "more"
    ratio = rnn_err / base_err if base_err > 0 else float("inf")
    return (
        f"The best recurrent reader, **{best_rnn}**, classifies {100 * rnn['accuracy']:.2f} % of the "
        f"test images correctly (test cross-entropy {rnn['loss']:.4f} nats); the best whole-image "
        f"model, the **{BASELINE_NAMES.get(best_base, best_base)}**, reaches {100 * base['accuracy']:.2f} % "
        f"({base['loss']:.4f} nats). The recurrent model makes {relation} errors "
        f"({ratio:.2f} times as many), and the weakest recurrent reader ({worst_rnn}) reaches "
        f"{100 * worst['accuracy']:.2f} %. Seeing the image at once gives the convolutional "
        f"network the 2-D neighbourhood of every pixel and translation-invariant features for free; "
        f"the recurrent reader must carry everything it has seen through up to 784 state updates, "
        f"vertically adjacent pixels arrive 28 steps apart, and after the last ink pixel of a test "
        f"image come {trailing:.0f} blank pixels (median) that the state must survive unchanged."
    )


def misclassified(arch: str, weights_dir="weights", mnist=None, count: int = 20, limit=None,
                  device: str = "cpu"):
    """Up to ``count`` misclassified test images of ``arch`` and 'prediction / label' titles."""
    import torch

    from .data import load_mnist

    mnist = mnist or load_mnist()
    model, _ = load_weights(weights_file("classify", arch, weights_dir), task="classify",
                            device=device)
    pixels, labels = mnist.test.tensors()
    if limit:
        pixels, labels = pixels[:limit], labels[:limit]
    images, titles = [], []
    with torch.no_grad():
        for start in range(0, len(pixels), 1000):
            batch = pixels[start:start + 1000]
            predicted = model(batch.t().unsqueeze(-1).to(device)).argmax(1).cpu()
            wrong = (predicted != labels[start:start + 1000]).nonzero().flatten()
            for i in wrong.tolist():
                images.append(batch[i].numpy())
                titles.append(f"{int(predicted[i])} / {int(labels[start + i])}")
            if len(images) >= count:
                break
    return images[:count], titles[:count]
