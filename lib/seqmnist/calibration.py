"""Can the probabilities be trusted? Reliability, expected calibration error, temperature scaling.

A forecast probability p is calibrated when, among all forecasts of about p, the event happens a
fraction p of the time. Forecasts are grouped into 15 equal-width bins of p (bin k holds
k/15 < p <= (k+1)/15, p = 0 in the first); the expected calibration error is the gap between the
mean forecast and the observed frequency of each bin, weighted by the bin's share of forecasts:

    ECE = sum_k n_k / n * | mean p in bin k - frequency of the event in bin k |.

For a classifier the forecast is its top-label confidence (the largest class probability) and the
event "the top label is right"; for a next-pixel predictor, p(next pixel = 1) and the event
"the pixel is 1". Temperature scaling divides the logits by one number T, fitted on the validation
split by minimising the negative log-likelihood: T > 1 softens over-confident probabilities,
T < 1 sharpens under-confident ones, and the predicted labels do not change.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

BINS = 15


def reliability(probability, outcome, bins: int = BINS) -> dict:
    """Per bin of ``probability``: "count", "mean" forecast and observed "frequency" of
    ``outcome`` (NaN in an empty bin), with the bin "edges" (bins + 1,)."""
    probability = np.asarray(probability, dtype=np.float64).ravel()
    outcome = np.asarray(outcome, dtype=np.float64).ravel()
    if probability.shape != outcome.shape:
        raise ValueError(f"{probability.shape} forecasts for {outcome.shape} outcomes")
    index = np.clip(np.ceil(probability * bins).astype(np.int64) - 1, 0, bins - 1)
    count = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(index, probability, minlength=bins) / count
        frequency = np.bincount(index, outcome, minlength=bins) / count
    return {"count": count, "mean": mean, "frequency": frequency,
            "edges": np.linspace(0.0, 1.0, bins + 1)}


def expected_calibration_error(probability, outcome, bins: int = BINS) -> float:
    """ECE: the bins' gaps |mean forecast - frequency|, weighted by their share of forecasts."""
    table = reliability(probability, outcome, bins)
    filled = table["count"] > 0
    weights = table["count"][filled] / table["count"].sum()
    return float(np.sum(weights * np.abs(table["mean"][filled] - table["frequency"][filled])))


def _class_logits(logits: torch.Tensor, targets) -> bool:
    """Class logits (N, C) with labels (N,), not binary logits shaped like their 0/1 targets."""
    return np.ndim(targets) == logits.dim() - 1


def forecasts(logits, targets, temperature: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(forecast, event) that calibration scores, from ``logits`` / T: for class logits (N, C)
    and labels, the top-label confidence and whether the top label is right; for binary logits
    and 0/1 targets of the same shape, p(x = 1) and whether x = 1."""
    logits = torch.as_tensor(np.asarray(logits), dtype=torch.float64) / temperature
    if _class_logits(logits, targets):
        confidence, predicted = torch.softmax(logits, -1).max(-1)
        return confidence.numpy(), predicted.numpy() == np.asarray(targets)
    return torch.sigmoid(logits).numpy(), np.asarray(targets, dtype=np.float64)


def negative_log_likelihood(logits, targets, temperature: float = 1.0) -> float:
    """Mean NLL in nats of ``targets`` under ``logits`` / T: cross-entropy for class logits
    (N, C) and integer labels, binary cross-entropy for logits of p(x = 1) (any shape) and 0/1
    targets."""
    logits = torch.as_tensor(np.asarray(logits), dtype=torch.float64) / temperature
    if _class_logits(logits, targets):
        return float(F.cross_entropy(logits, torch.as_tensor(np.asarray(targets)).long()))
    targets = torch.as_tensor(np.asarray(targets), dtype=torch.float64)
    return float(F.binary_cross_entropy_with_logits(logits, targets))


def fit_temperature(logits, targets) -> float:
    """The temperature T > 0 that minimises the NLL of ``targets`` under ``logits`` / T (class
    logits (N, C) with labels, or binary logits with 0/1 targets, as ``negative_log_likelihood``).

    L-BFGS on log T: the NLL is convex in 1/T, so the one minimum is found from T = 1.
    """
    logits = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    binary = not _class_logits(logits, targets)
    targets = torch.as_tensor(np.asarray(targets), dtype=torch.float64 if binary else torch.long)
    loss_of = F.binary_cross_entropy_with_logits if binary else F.cross_entropy
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=1.0, max_iter=100, tolerance_grad=1e-10,
                                  tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = loss_of(logits / log_t.exp(), targets)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp())


def calibrate(test_logits, test_targets, validation_logits, validation_targets,
              bins: int = BINS) -> dict:
    """Calibration of one model on test, before and after the temperature fitted on validation
    (class logits with labels, or binary logits with 0/1 targets, as ``forecasts``):
    "temperature", "ece"/"ece_scaled", "reliability"/"reliability_scaled", "nll"/"nll_scaled"
    (test), "validation_nll"/"validation_nll_scaled", and the unscaled test means of the forecast,
    "confidence", and of the event, "accuracy" (for pixels: mean p(x = 1) and share of 1s)."""
    temperature = fit_temperature(validation_logits, validation_targets)
    result = {"temperature": temperature}
    for suffix, t in (("", 1.0), ("_scaled", temperature)):
        forecast, event = forecasts(test_logits, test_targets, t)
        result["ece" + suffix] = expected_calibration_error(forecast, event, bins)
        result["reliability" + suffix] = reliability(forecast, event, bins)
        result["nll" + suffix] = negative_log_likelihood(test_logits, test_targets, t)
        result["validation_nll" + suffix] = negative_log_likelihood(
            validation_logits, validation_targets, t)
        if not suffix:
            result["confidence"], result["accuracy"] = float(forecast.mean()), float(event.mean())
    return result


@torch.no_grad()
def next_pixel_logits(model, pixels, batch_size: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """(logits, targets), both (N, 783): a predictor's logit of p(x_{t+1} = 1) after each true
    pixel t = 1..783 of the images ``pixels`` (N, 784), and the pixels x_2..x_784 it predicts."""
    model.eval()
    parameter = next(model.parameters())
    pixels = torch.as_tensor(np.asarray(pixels), dtype=torch.float32)
    logits = torch.empty(len(pixels), pixels.shape[1] - 1, dtype=torch.float32)
    for start in range(0, len(pixels), batch_size):
        batch = pixels[start:start + batch_size].to(parameter.device, parameter.dtype)
        out, _ = model(batch.t().unsqueeze(-1))
        logits[start:start + batch_size] = out[:-1].t().float().cpu()
    return logits.numpy(), pixels[:, 1:].numpy()


def predictor_calibration(weights_path, test_pixels, validation_pixels, device: str = "cpu",
                          use_cache: bool = True, cache_dir=None, model=None) -> dict:
    """``calibrate`` of a shipped next-pixel predictor over every predicted pixel of the
    given test and validation images (a stated subset: 783 forecasts per image), cached by
    seqmnist.memo; the logits themselves are not kept. ``model``: the file's model if already
    loaded (else loaded on a cache miss)."""
    from pathlib import Path

    from . import memo
    from .weights import load_weights

    def compute():
        nonlocal model
        if model is None:
            model, _ = load_weights(weights_path, task="predict", device=device)
        return calibrate(*next_pixel_logits(model, test_pixels),
                         *next_pixel_logits(model, validation_pixels))

    return memo.cached("predictor_calibration", compute, files=[Path(weights_path)],
                       arrays=[np.asarray(test_pixels), np.asarray(validation_pixels)],
                       params={"device": device}, cache_dir=cache_dir, enabled=use_cache)


# -- what the table and the paragraph say -------------------------------------------------------


def calibration_table(calibrations: dict, event: str = "accuracy") -> str:
    """One row per model: mean forecast and observed frequency on test, ECE before and after the
    fitted temperature, T, and the validation NLL before and after. ``event`` names the observed
    frequency ("accuracy" for classifiers, "share of 1s" for pixels)."""
    from .notebook import markdown_table

    forecast = "mean confidence" if event == "accuracy" else "mean p(x = 1)"
    header = ["model", forecast, event, "ECE (%)", "T (fitted on validation)", "ECE after T (%)",
              "validation NLL", "after T"]
    rows = [[name, f"{100 * c['confidence']:.2f} %", f"{100 * c['accuracy']:.2f} %",
             f"{100 * c['ece']:.2f}", f"{c['temperature']:.3f}", f"{100 * c['ece_scaled']:.2f}",
             f"{c['validation_nll']:.4f}", f"{c['validation_nll_scaled']:.4f}"]
            for name, c in calibrations.items()]
    return markdown_table(header, rows)


def confidence_word(calibration: dict) -> str:
    """'over-confident' when the fitted temperature softens the probabilities (T > 1),
    'under-confident' when it sharpens them (T < 1), 'well calibrated' within 2 %."""
    t = calibration["temperature"]
    if abs(t - 1) <= 0.02:
        return "well calibrated"
    return "over-confident" if t > 1 else "under-confident"


def calibration_paragraph(calibrations: dict, kind: str = "classifier",
                          scope: str = "the test images") -> str:
    """Which models are over- or under-confident, by their fitted temperatures and (classifiers)
    their mean confidence against accuracy, and what scaling does to their test ECE; every number
    computed. ``kind``: "classifier" or "predictor"; ``scope`` names the test images scored."""
    if not calibrations:
        return f"*No {kind} with shipped weights: no calibration.*"
    groups = {}
    for name, c in calibrations.items():
        groups.setdefault(confidence_word(c), []).append(f"{name} (T = {c['temperature']:.2f})")
    if len(groups) == 1:
        t = {name: c["temperature"] for name, c in calibrations.items()}
        low, high = min(t, key=t.get), max(t, key=t.get)
        word = next(iter(groups))
        parts = [f"{'both' if len(t) == 2 else f'all {len(t)}'} models are {word}" + (
            f" (T from {t[low]:.2f} for {low} to {t[high]:.2f} for {high})" if len(t) > 1
            else f" (T = {t[low]:.2f})")]
    else:
        parts = [f"{', '.join(names)} {'is' if len(names) == 1 else 'are'} {word}"
                 for word, names in sorted(groups.items())]
    text = [f"A temperature T > 1 fitted on the validation split says the model's probabilities "
            f"are too sharp (over-confident), T < 1 too soft (under-confident), within 2 % of 1 "
            f"well calibrated. By that measure "
            f"{'; '.join(parts)}."]
    if kind == "classifier":
        above = [n for n, c in calibrations.items() if c["confidence"] > c["accuracy"]]
        text.append(f"On {scope}, the mean top-label confidence exceeds the accuracy for "
                    f"{len(above)} of {len(calibrations)} models"
                    + (f" ({', '.join(above)})" if 0 < len(above) < len(calibrations) else "")
                    + ".")
        words = {n: confidence_word(c) for n, c in calibrations.items()}
        softer = [n for n in calibrations if words[n] == "over-confident" and n not in above]
        sharper = [n for n in above if words[n] == "under-confident"]
        if softer:
            text.append(f"{', '.join(softer)} {'is' if len(softer) == 1 else 'are'} less "
                        f"confident than accurate on average and yet fitted T > 1: the likelihood "
                        f"that fits T weighs the few errors made with high confidence most.")
        if sharper:
            text.append(f"{', '.join(sharper)} {'is' if len(sharper) == 1 else 'are'} more "
                        f"confident than accurate on average and yet fitted T < 1: sharper "
                        f"probabilities gain more likelihood on the images read right than they "
                        f"lose on the errors.")
    else:
        gaps = {n: c["confidence"] - c["accuracy"] for n, c in calibrations.items()}
        text.append(f"On {scope}, the mean forecast p(x = 1) lies within "
                    f"{100 * max(abs(g) for g in gaps.values()):.2f} points of the share of 1s "
                    f"for every model.")
    lowered = [n for n, c in calibrations.items() if c["ece_scaled"] < c["ece"]]
    worst = max(calibrations, key=lambda n: calibrations[n]["ece"])
    before, after = (100 * calibrations[worst][key] for key in ("ece", "ece_scaled"))
    text.append(f"Scaling lowers the test ECE of {len(lowered)} of {len(calibrations)} models; "
                f"the largest before scaling is {worst}'s, {before:.2f} % ({after:.2f} % after).")
    return " ".join(text)


__all__ = ["BINS", "reliability", "expected_calibration_error", "forecasts",
           "negative_log_likelihood", "fit_temperature", "calibrate", "next_pixel_logits",
           "predictor_calibration",
           "calibration_table", "confidence_word", "calibration_paragraph"]
