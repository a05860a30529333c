"""Uncertainty maps: where a next-pixel predictor is unsure (in bits), and whether it errs there.

A binary pixel with p = p(x = 1) carries h(p) = -p log2 p - (1 - p) log2 (1 - p) bits of
uncertainty: 0 when the model is sure, 1 at p = 0.5.

* Task 2 (``continuation_entropy``): along each sampled continuation the model predicts pixel t
  from the prefix and its own sampled past; h(p_t) averaged over the samples at each pixel gives a
  28x28 map of where the continuation is open. Its mean over the pixels estimates the entropy
  of the model's continuation distribution per pixel, as the sample NLL does, with less noise
  (E[-log p(sample)] = E[sum_t h(p_t)] in nats).
* Task 3: ``marginal_entropy`` h(p(x_m = 1 | x_rest)) of each missing pixel, and
  ``posterior_entropy`` H(x_M | x_rest) = -sum_f p(f) log2 p(f) over the 2^|M| fillings (at most
  |M| bits; the marginal entropies sum to at least this). ``error_by_entropy`` bins images by the
  latter and asks how often the most probable filling is wrong in each bin, beside the error the
  model expects there, 1 - p(most probable filling).

The figures draw an entropy in a colour map (viridis: dark 0 bits, yellow 1 bit) over the known
pixels in dimmed gray, built on ``plots.image_table`` / ``plots.image_grid``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from . import plots
from .continuation import Task2Result
from .data import SIDE
from .errors import ConfigError
from .inpaint import Posterior, paint
from .masks import MISSING
from .models import SEQUENCE_LENGTH
from .notebook import markdown_table

#: bin edges (bits) of the posterior entropy for ``error_by_entropy``; the last bin is closed
ENTROPY_EDGES = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 4.0)
ENTROPY_CMAP = "viridis"


def binary_entropy(p) -> np.ndarray:
    """h(p) in bits, elementwise (NaN stays NaN)."""
    p = torch.as_tensor(np.asarray(p, np.float64))
    return ((torch.special.entr(p) + torch.special.entr(1 - p)) / math.log(2)).numpy()


# --------------------------------------------------------------------------- Task 2


def continuation_entropy(result: Task2Result, horizon: int) -> np.ndarray:
    """(N, 784) bits: h(p(x_t = 1 | prefix, sampled past)) averaged over the sampled
    continuations of ``horizon`` pixels, at those pixels; NaN elsewhere."""
    if horizon not in result.probabilities:
        raise ConfigError(f"horizon {horizon} has no stored probabilities (ran {result.horizons})")
    probs = result.probabilities[horizon]
    k = result.prefix_length
    out = np.full((len(probs), SEQUENCE_LENGTH), np.nan)
    out[:, k:k + horizon] = binary_entropy(probs).mean(axis=1)
    return out


def sample_entropy(result: Task2Result, horizon: int, position: int) -> np.ndarray:
    """(S, 784) bits: h(p_t) along each sampled continuation of image ``position`` (NaN
    elsewhere)."""
    probs = result.probabilities[horizon][position]
    k = result.prefix_length
    out = np.full((len(probs), SEQUENCE_LENGTH), np.nan)
    out[:, k:k + horizon] = binary_entropy(probs)
    return out


def continuation_summary(result: Task2Result, horizon: int) -> dict:
    """Per image, the map's mean (bits per generated pixel, ``image_entropy`` (N,)); over the set,
    that mean and the sample NLL in bits per pixel (two estimates of the same entropy), and the
    correlation across images of ``image_entropy`` with the mean ink distance and with the
    samples' pairwise disagreement."""
    at = result.horizons.index(horizon)
    per_image = np.nanmean(continuation_entropy(result, horizon), axis=1)
    sample_bits = result.sample_nll[:, :, at].mean() / horizon / math.log(2)

    def corr(other):
        return float(np.corrcoef(per_image, other)[0, 1]) if len(per_image) > 2 else math.nan

    return {"image_entropy": per_image, "mean_entropy": float(per_image.mean()),
            "sample_nll_bits": float(sample_bits),
            "corr_ink_distance": corr(result.ink_distance[:, :, at].mean(axis=1)),
            "corr_pairwise": corr(np.nan_to_num(result.pairwise[:, at]))}


def continuation_figure(result: Task2Result, examples: dict, horizon: int = 300,
                        samples: int = 5, cell: float = 1.0):
    """Two rows per example of ``continuation.task2_examples``: the ground truth and ``samples``
    continuations of ``horizon`` pixels; below each sample its h(p_t), and the mean over all the
    result's samples (``continuation_entropy``) in the last column."""
    rows, labels = [], []
    for name, example in examples.items():
        position, truth = example["position"], example["truth"]
        completions = example["completions"][horizon][:samples]
        masked = example["masked"]
        shown = truth.copy()
        shown[result.prefix_length + horizon:] = MISSING
        drawn = plots.partial_fill_rgb(np.repeat(masked[None], len(completions), 0), completions)
        rows.append([plots.partial_fill_rgb(masked, shown)[0], *drawn, None])
        own = entropy_rgb(sample_entropy(result, horizon, position)[:samples], completions)
        mean = entropy_rgb(continuation_entropy(result, horizon)[position], masked)
        rows.append([None, *own, mean[0]])
        labels += [name.replace("_", " "), "entropy"]
    columns = (["ground truth"] + [f"sample {s + 1}" for s in range(samples)]
               + [f"mean of {result.samples}"])
    return plots.image_table(rows, row_labels=labels, col_labels=columns, cell=cell)


# --------------------------------------------------------------------------- Task 3


def marginal_entropy(post: Posterior) -> np.ndarray:
    """(N, K) bits: h(p(x_m = 1 | known pixels)) of each missing pixel (NaN padded)."""
    return binary_entropy(post.marginals)


def marginal_entropy_images(post: Posterior) -> np.ndarray:
    """(N, 784) bits at the missing pixels, NaN elsewhere (for maps)."""
    return paint(post.masked, post.positions, marginal_entropy(post), background=np.nan)


def posterior_entropy(post: Posterior) -> np.ndarray:
    """(N,) bits: entropy of the whole posterior over each image's fillings."""
    entr = torch.special.entr(torch.as_tensor(post.posterior)).numpy()  # 0 at padded fillings
    return entr.sum(axis=1) / math.log(2)


def top_fillings(post: Posterior, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(fillings (N, k), probabilities (N, k)): each image's k most probable fillings, most
    probable first (lowest filling index on ties); -1 and 0 past an image's 2^|M| fillings."""
    if k < 1:
        raise ConfigError(f"k must be at least 1, got {k}")
    order = np.argsort(-post.log_posterior, axis=1, kind="stable")[:, :k]
    probs = np.take_along_axis(post.posterior, order, axis=1)
    valid = order < (2 ** post.counts)[:, None]
    return np.where(valid, order, -1), np.where(valid, probs, 0.0)


def truth_rank(post: Posterior) -> np.ndarray:
    """(N,) rank of the ground-truth filling in the posterior (1 = the most probable)."""
    truth = post.log_posterior[np.arange(len(post.counts)), post.truth_filling]
    return (post.log_posterior > truth[:, None]).sum(axis=1) + 1


def error_by_entropy(entropy, wrong, expected=None, edges=ENTROPY_EDGES) -> list[dict]:
    """Rows per non-empty entropy bin [low, high) (the last one closed): the cases, their mean
    entropy, the share ``wrong`` and, given, the mean ``expected`` error (e.g. 1 - p(MAP))."""
    entropy, wrong = np.asarray(entropy, np.float64), np.asarray(wrong, bool)
    edges = np.asarray(edges, np.float64)
    if entropy.shape != wrong.shape or (expected is not None and np.shape(expected) != wrong.shape):
        raise ConfigError("entropy, wrong and expected need one value per case")
    if np.any(entropy < edges[0] - 1e-9) or np.any(entropy > edges[-1] + 1e-9):
        raise ConfigError(f"entropies outside the bins {edges[0]}..{edges[-1]}")
    index = np.clip(np.searchsorted(edges, entropy, side="right") - 1, 0, len(edges) - 2)
    rows = []
    for b in range(len(edges) - 1):
        inside = index == b
        if not inside.any():
            continue
        row = {"low": float(edges[b]), "high": float(edges[b + 1]), "count": int(inside.sum()),
               "mean_entropy": float(entropy[inside].mean()),
               "error_rate": float(wrong[inside].mean())}
        if expected is not None:
            row["expected_error"] = float(np.asarray(expected)[inside].mean())
        rows.append(row)
    return rows


def map_is_wrong(post: Posterior) -> np.ndarray:
    """(N,) True where the most probable filling is not the ground truth's."""
    return post.map_filling != post.truth_filling


def error_vs_entropy(post: Posterior, edges=ENTROPY_EDGES) -> list[dict]:
    """``error_by_entropy`` of the most probable filling against the posterior entropy."""
    return error_by_entropy(posterior_entropy(post), map_is_wrong(post),
                            1 - post.map_probability, edges)


def separation(entropy, wrong) -> float:
    """P(a wrong case is more uncertain than a right one), ties counted half (the ROC AUC of
    entropy as a detector of errors; 0.5 = no better than chance). NaN without both kinds."""
    entropy, wrong = np.asarray(entropy, np.float64), np.asarray(wrong, bool)
    bad, good = entropy[wrong], entropy[~wrong]
    if not len(bad) or not len(good):
        return float("nan")
    diff = bad[:, None] - good[None, :]
    return float((diff > 0).mean() + 0.5 * (diff == 0).mean())


def error_entropy_table(rows_by_set: dict) -> str:
    """Markdown: one block of ``error_vs_entropy`` rows per set."""
    body = []
    for name, rows in rows_by_set.items():
        for i, r in enumerate(rows):
            closing = "]" if i == len(rows) - 1 and r["high"] == ENTROPY_EDGES[-1] else ")"
            body.append([name, f"[{r['low']:g}, {r['high']:g}{closing}", f"{r['count']:,}",
                         f"{r['mean_entropy']:.3f}", f"{100 * r['error_rate']:.1f} %",
                         f"{100 * r['expected_error']:.1f} %"])
    return markdown_table(["set", "posterior entropy (bits)", "images", "mean entropy (bits)",
                           "most probable filling wrong", "expected, 1 - p(most probable)"], body)


# --------------------------------------------------------------------------- figures


def entropy_rgb(entropy, known) -> np.ndarray:
    """(N, 28, 28, 3): ``entropy`` (bits, 0..1) in the colour map where it is finite, elsewhere
    the ``known`` image in dimmed gray (-1, missing and not mapped, in pure red)."""
    import matplotlib

    entropy = plots.as_images(entropy)
    known = plots.as_images(known)
    if known.shape[0] == 1 and entropy.shape[0] > 1:
        known = np.repeat(known, len(entropy), axis=0)
    rgb = plots.inpainting_rgb(known)
    gray = known != MISSING
    rgb[gray] = 0.2 + 0.6 * rgb[gray]  # dimmed, so that the map stands out
    mapped = np.isfinite(entropy)
    colours = matplotlib.colormaps[ENTROPY_CMAP](np.clip(np.nan_to_num(entropy), 0, 1))[..., :3]
    rgb[mapped] = colours[mapped]
    return rgb


def zoom(images: np.ndarray, centres, size: int = 14) -> np.ndarray:
    """(N, 28, 28, 3): the ``size`` x ``size`` pixels around each centre (reading position),
    kept inside the image and enlarged to 28 x 28 (``size`` must divide 28)."""
    if SIDE % size:
        raise ConfigError(f"zoom size must divide {SIDE}, got {size}")
    out = []
    for image, centre in zip(images, centres):
        row, col = divmod(int(centre), SIDE)
        top = min(max(row - size // 2, 0), SIDE - size)
        left = min(max(col - size // 2, 0), SIDE - size)
        crop = image[top:top + size, left:left + size]
        out.append(np.repeat(np.repeat(crop, SIDE // size, axis=0), SIDE // size, axis=1))
    return np.stack(out)


def _centres(post: Posterior) -> np.ndarray:
    """Reading position at the middle of each image's missing pixels."""
    rows, cols = np.divmod(np.where(post.positions >= 0, post.positions, 0), SIDE)
    valid = post.positions >= 0
    mean_row = (rows * valid).sum(1) / valid.sum(1)
    mean_col = (cols * valid).sum(1) / valid.sum(1)
    return np.round(mean_row).astype(int) * SIDE + np.round(mean_col).astype(int)


def posterior_entropy_figure(posteriors: dict, shown: int = 10, cell: float = 1.1):
    """One row per set (``posteriors`` maps a set name to its Posterior): the first ``shown``
    images zoomed around the missing pixels, each coloured by its marginal entropy; titles give
    the posterior entropy over the fillings."""
    images, titles = [], []
    for name, post in posteriors.items():
        count = min(shown, len(post.masked))
        maps = entropy_rgb(marginal_entropy_images(post)[:count], post.masked[:count])
        images.append(zoom(maps, _centres(post)[:count]))
        titles += [f"{name}: {h:.2f} bits" for h in posterior_entropy(post)[:count]]
    return plots.image_grid(np.concatenate(images), titles=titles, ncols=shown, cell=cell,
                            title_size=7)


def top_fillings_figure(post: Posterior, shown: int = 10, k: int = 3, cell: float = 1.1):
    """One column per image (the first ``shown``), zoomed around the window: the masked input,
    its ``k`` most probable fillings with their posterior probabilities, the ground truth and
    the rank of the ground truth's filling."""
    count = min(shown, len(post.masked))
    fillings, probs = top_fillings(post, k)
    ranks = truth_rank(post)
    centres = _centres(post)[:count]
    rows = [zoom(plots.inpainting_rgb(post.masked[:count]), centres)]
    titles = [f"image {i + 1}" for i in range(count)]
    for rank in range(k):
        filled = post.fill(np.maximum(fillings[:, rank], 0))[:count]
        rows.append(zoom(plots.inpainting_rgb(post.masked[:count], filled), centres))
        titles += [f"#{rank + 1}: p {p:.3f}" for p in probs[:count, rank]]
    rows.append(zoom(plots.inpainting_rgb(post.masked[:count], post.truth[:count]), centres))
    titles += [f"truth: #{r}" for r in ranks[:count]]
    return plots.image_grid(np.concatenate(rows), titles=titles, ncols=count, cell=cell,
                            title_size=7)


__all__ = ["binary_entropy", "continuation_entropy", "sample_entropy", "continuation_summary",
           "continuation_figure", "marginal_entropy", "marginal_entropy_images",
           "posterior_entropy", "top_fillings", "truth_rank",
           "error_by_entropy", "error_vs_entropy", "map_is_wrong", "separation",
           "error_entropy_table", "entropy_rgb", "zoom", "posterior_entropy_figure",
           "top_fillings_figure", "ENTROPY_EDGES"]
