"""Paired comparison of classifiers on the same test images, and what each costs per image.

Two classifiers scored on the same images are compared through the images they disagree on:
McNemar's exact test asks whether "A right, B wrong" (b images) and "A wrong, B right" (c images)
are equally likely, and a paired bootstrap gives a 95 % interval for accuracy(A) - accuracy(B).
The cost of a model is its parameter count, its multiply-adds per image (counted from the modules
the forward pass actually runs, so the count cannot disagree with the model) and a measured forward
time per image (machine-dependent, secondary). The same pass keeps each image's logits (for the
calibration) and a recurrent classifier's reading after every pixel (``reading``).
"""

from __future__ import annotations

import time
from math import comb
from pathlib import Path

import numpy as np
import torch
from torch import nn

# -- predictions and measured time ------------------------------------------------------------


@torch.no_grad()
def predict(model, pixels: torch.Tensor, batch_size: int | None = None, labels=None) -> dict:
    """One forward pass of a classifier over ``pixels`` (N, 784), batched and ordered by first
    ink pixel as ``evaluate.evaluate`` does (the batch shares its all-zero prefix), after a small
    warm-up batch.

    Returns, in the images' order, "predicted" int64 (N,), "logits" float32 (N, 10) and
    "seconds": the time of the plain forward pass alone (core and head on the last output).
    With ``labels``, a recurrent classifier's pass also reads its head after every pixel (see
    ``reading``), outside the timed part: "reading" holds "correct" (784,), the number of
    images right after each pixel, and "settling" (N,), each image's settling step; else None.
    """
    from . import reading
    from .data import first_ink_steps
    from .evaluate import eval_batch_size
    from .models import Classifier, leading_zero_steps

    model.eval()
    device = next(model.parameters()).device
    batch_size = batch_size or eval_batch_size(model)
    reads = labels is not None and isinstance(model, Classifier)
    labels = None if labels is None else torch.as_tensor(np.asarray(labels))
    count, steps = len(pixels), pixels.shape[1]
    predicted = torch.empty(count, dtype=torch.int64)
    logits = torch.empty(count, 10, dtype=torch.float32)
    correct = np.zeros(steps, dtype=np.int64)
    settling = np.zeros(count, dtype=np.int64)
    if count == 0:
        return {"predicted": predicted.numpy(), "logits": logits.numpy(), "seconds": 0.0,
                "reading": {"correct": correct, "settling": settling} if reads else None}
    order = torch.from_numpy(first_ink_steps(pixels.cpu().numpy())).argsort(stable=True)
    model(pixels[:8].to(device, torch.float32).t().unsqueeze(-1))  # warm-up: allocator, oneDNN
    seconds = 0.0
    for first in range(0, count, batch_size):
        index = order[first:first + batch_size]
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        x = pixels[index].to(device, torch.float32).t().unsqueeze(-1)
        if reads:   # model(x), keeping the core's output at every step
            outputs, _ = model.core(x)
            batch_logits = model.head(model.dropout(outputs[-1])).cpu()
        else:
            batch_logits = model(x).cpu()
        seconds += time.perf_counter() - start
        logits[index] = batch_logits.float()
        predicted[index] = batch_logits.argmax(1)
        if reads:
            beliefs = reading.step_predictions(model.head, outputs, leading_zero_steps(x))
            beliefs[-1] = predicted[index]   # the last step is the pass's own prediction
            correct += (beliefs.long() == labels[index]).sum(1).numpy()
            settling[index.numpy()] = reading.settling_steps(beliefs.numpy())
    return {"predicted": predicted.numpy(), "logits": logits.numpy(), "seconds": seconds,
            "reading": {"correct": correct, "settling": settling} if reads else None}


def shipped_predictions(weights_path, pixels: torch.Tensor, labels=None, device: str = "cpu",
                        use_cache: bool = True, cache_dir=None, model=None) -> dict:
    """``predict`` of a shipped classifier on ``pixels`` (a split's images, or their first
    ``limit`` in quick mode), cached by seqmnist.memo (keyed by the weights file, the images, the
    labels, the device and the package's source): the one pass that the paired comparison, the
    reading curves (with ``labels``) and the calibration (its logits) share.

    ``model``: the file's model if the caller has already loaded it (else loaded on a cache miss).
    Returns ``predict``'s "predicted", "logits" and "reading", with "ms_per_image" (the plain
    forward pass), "threads", "device" and "batch_size".
    """
    from . import memo
    from .evaluate import eval_batch_size
    from .weights import load_weights

    def compute():
        nonlocal model
        if model is None:
            model, _ = load_weights(weights_path, task="classify", device=device)
        batch_size = eval_batch_size(model)
        run = predict(model, pixels, batch_size, labels)
        return {"predicted": run["predicted"], "logits": run["logits"], "reading": run["reading"],
                "ms_per_image": 1000 * run["seconds"] / max(len(pixels), 1),
                "threads": torch.get_num_threads(), "device": device, "batch_size": batch_size}

    arrays = [pixels.numpy()] + ([] if labels is None else [np.asarray(labels)])
    return memo.cached("predictions", compute, files=[Path(weights_path)], arrays=arrays,
                       params={"device": device, "labels": labels is not None},
                       cache_dir=cache_dir, enabled=use_cache)


# -- multiply-adds ----------------------------------------------------------------------------


def _recurrent_step_macs(core) -> int:
    """Multiply-adds of one time step of a RecurrentCore as its forward runs it: the input affine
    is folded into layer 0's input weights (one column per input feature), every other weight
    matrix multiplies its input once per step."""
    rnn, total = core.rnn, 0
    for layer in range(rnn.num_layers):
        w_ih = getattr(rnn, f"weight_ih_l{layer}")
        w_hh = getattr(rnn, f"weight_hh_l{layer}")
        inputs = core.input.in_features if layer == 0 else w_ih.shape[1]
        total += w_ih.shape[0] * inputs + w_hh.numel()
    return total


@torch.no_grad()
def multiply_adds(model: nn.Module, steps: int = 784) -> int:
    """Multiply-adds of the weight products for one image (``steps`` pixels, one at a time for a
    recurrent model), counted by hooks on the modules that one forward pass calls: linear and
    convolution layers, and recurrent cores per step. Biases, batch norm (element-wise at
    inference), gate arithmetic, nonlinearities and pooling are not counted."""
    from .models import RecurrentCore

    cores = [m for m in model.modules() if isinstance(m, RecurrentCore)]
    inside = {id(m) for core in cores for m in core.modules() if m is not core}
    counts = []

    def hook(module, inputs, output):
        if isinstance(module, RecurrentCore):
            x = inputs[0]
            counts.append(x.shape[0] * x.shape[1] * _recurrent_step_macs(module))
        elif isinstance(module, nn.Linear):
            counts.append(output.numel() * module.in_features)
        elif isinstance(module, nn.Conv2d):
            kernel = module.in_channels // module.groups * int(np.prod(module.kernel_size))
            counts.append(output.numel() * kernel)

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if id(m) not in inside and isinstance(m, (RecurrentCore, nn.Linear, nn.Conv2d))]
    was_training = model.training
    try:
        model.eval()
        parameter = next(model.parameters())
        model(torch.zeros(steps, 1, 1, device=parameter.device, dtype=parameter.dtype))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return int(sum(counts))


# -- paired tests -----------------------------------------------------------------------------


def _correct_pair(correct_a, correct_b) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired results need two vectors of one length, got {a.shape} and {b.shape}")
    return a, b


def mcnemar(correct_a, correct_b) -> dict:
    """Exact two-sided McNemar test: under 'A and B are equally accurate' the b images only A gets
    right and the c images only B gets right split like fair coin flips, so the p-value is twice
    the binomial tail P(X <= min(b, c)), X ~ Bin(b + c, 1/2) (capped at 1; 1 when b + c = 0).

    Returns {"b", "c", "p_value"}.
    """
    a, b = _correct_pair(correct_a, correct_b)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    n = only_a + only_b
    tail = sum(comb(n, k) for k in range(min(only_a, only_b) + 1))
    p_value = min(1.0, 2 * tail / 2 ** n)  # exact integers; one rounding at the division
    return {"b": only_a, "c": only_b, "p_value": p_value}


def bootstrap_difference(correct_a, correct_b, resamples: int = 10_000, seed: int = 0,
                         level: float = 0.95) -> tuple[float, float]:
    """Paired percentile bootstrap interval of accuracy(A) - accuracy(B).

    Resampling the N images with replacement only matters through how many of the drawn images
    are "only A right" (+1), "only B right" (-1) or neither (0): those counts are multinomial with
    the observed fractions, so they are drawn directly (the same distribution as resampling
    indices, without an N x resamples index array)."""
    a, b = _correct_pair(correct_a, correct_b)
    n = len(a)
    if n == 0:
        raise ValueError("no images to compare")
    diff = a.astype(np.int8) - b.astype(np.int8)
    fractions = [np.mean(diff == 1), np.mean(diff == -1), np.mean(diff == 0)]
    counts = np.random.default_rng(seed).multinomial(n, fractions, size=resamples)
    differences = (counts[:, 0] - counts[:, 1]) / n
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(differences, [tail, 100 - tail])
    return float(low), float(high)


def compare_pair(name_a: str, correct_a, name_b: str, correct_b, resamples: int = 10_000,
                 seed: int = 0) -> dict:
    """Everything the comparison table and paragraph say about A against B: images, "only_a" and
    "only_b" (the discordant counts), the McNemar "p_value", the accuracy "difference" A - B and
    its bootstrap "interval"."""
    a, b = _correct_pair(correct_a, correct_b)
    test = mcnemar(a, b)
    return {"model_a": name_a, "model_b": name_b, "images": len(a),
            "only_a": test["b"], "only_b": test["c"], "p_value": test["p_value"],
            "difference": float(a.mean() - b.mean()),
            "interval": bootstrap_difference(a, b, resamples, seed)}


def summarize(models: dict, recurrent, baselines, resamples: int = 10_000, seed: int = 0,
              **context) -> dict:
    """The comparison that the tables and the paragraph show, from paired test results.

    ``models`` maps a name to {"correct": bool (N,) over the same N test images, "parameters",
    "multiply_adds", "ms_per_image" (or None)} and optionally a display "label"; ``recurrent`` and
    ``baselines`` name them, best first (chosen on the validation split). Every recurrent model is
    compared with every baseline. ``context`` (e.g. ``limit``, ``threads``, ``trailing_blank``) is
    kept as it is for the paragraph.
    """
    images = {len(np.asarray(m["correct"])) for m in models.values()}
    if len(images) != 1:
        raise ValueError(f"the models were scored on different numbers of images: {sorted(images)}")
    summary = {}
    for name, model in models.items():
        correct = np.asarray(model["correct"], dtype=bool)
        summary[name] = {"label": name, **model, "correct": correct,
                         "accuracy": float(correct.mean()), "errors": int((~correct).sum())}
    pairs = [compare_pair(a, summary[a]["correct"], b, summary[b]["correct"], resamples, seed)
             for a in recurrent for b in baselines]
    return {"images": images.pop(), "models": summary, "recurrent": list(recurrent),
            "baselines": list(baselines), "pairs": pairs, **context}


__all__ = ["predict", "shipped_predictions", "multiply_adds", "mcnemar", "bootstrap_difference",
           "compare_pair", "summarize"]
