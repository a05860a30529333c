"""Draw your own digit: what the models make of a drawing, as plain functions.

A drawing is a (28, 28) array of ink in [0, 1] (a soft brush, as a scanned digit has soft edges).
Every model reads it binarized as the data were (``data.binarize``: a pixel is 1 where 0.1 < ink).
Three questions, each one function here and one button of ``widgets.DrawingPad``:

* ``reading_beliefs``: the classifier's class probabilities after each row it has read (its head
  applied to the recurrent output at t = 28, 56, ..., 784; the head was trained on t = 784 only);
* ``complete_below``: keep the rows above a line and sample the rest with a next-pixel predictor;
* ``inpaint_region``: the missing pixels' posterior, exact (``inpaint.exact_posterior``) for up to
  12 pixels, Gibbs sampling (``gibbs.gibbs_inpaint``) beyond, with p(x = 1) per pixel.

Bad input (an empty drawing, a region covering the image, the wrong kind of model) raises a
one-line ConfigError, which the widget shows in its status line.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import plots
from .data import PIXELS, SIDE, binarize
from .errors import ConfigError
from .generate import check_predictor, complete, inference, model_dtype_device
from .gibbs import gibbs_inpaint
from .inpaint import MAX_EXACT_MISSING, MISSING, exact_posterior

BRUSH_RADIUS = 1.0   # pixels: a stroke two to three pixels wide, as MNIST's
MAX_REGION = 64      # missing pixels for Gibbs: each costs two passes to the image's end per sweep
GIBBS_SWEEPS = 8     # per in-painting (a quarter of them burn-in): seconds, not minutes, live


# --------------------------------------------------------------------------- the drawing


def blank() -> np.ndarray:
    return np.zeros((SIDE, SIDE), np.float32)


def _dense(points) -> np.ndarray:
    """(K, 2) the polyline ``points`` sampled every half pixel: a fast stroke's mouse events
    are far apart."""
    points = np.asarray(points, np.float64).reshape(-1, 2)
    if len(points) < 2:
        return points
    return np.concatenate([np.linspace(a, b, int(np.ceil(np.hypot(*(b - a)) * 2)) + 2)
                           for a, b in zip(points[:-1], points[1:])])


def pixels_on(points) -> np.ndarray:
    """(28, 28) bool: the pixels the polyline ``points`` ((x, y) in pixel units) passes over."""
    cells = np.floor(_dense(points)).astype(int)
    inside = ((cells >= 0) & (cells < SIDE)).all(axis=1)
    mask = np.zeros((SIDE, SIDE), bool)
    mask[cells[inside, 1], cells[inside, 0]] = True
    return mask


def stroke(drawing: np.ndarray, points, radius: float = BRUSH_RADIUS, erase: bool = False
           ) -> np.ndarray:
    """Ink (or erase) along the polyline ``points`` ((x, y) in pixel units, x to the right):
    a disc of ``radius`` whose edge fades over one pixel. Modifies and returns ``drawing``."""
    points = _dense(points)
    centres = np.arange(SIDE) + 0.5
    dx = centres[None, None, :] - points[:, 0, None, None]
    dy = centres[None, :, None] - points[:, 1, None, None]
    ink = np.clip(radius + 0.5 - np.hypot(dx, dy), 0.0, 1.0).max(axis=0).astype(np.float32)
    if erase:
        np.minimum(drawing, 1.0 - ink, out=drawing)
    else:
        np.maximum(drawing, ink, out=drawing)
    return drawing


def as_image(drawing) -> np.ndarray:
    """(784,) the drawing binarized as the data are (ink > 0.1)."""
    array = np.asarray(drawing, np.float32)
    if array.size != PIXELS:
        raise ConfigError(f"a drawing has {PIXELS} pixels (28 x 28), got shape {array.shape}")
    if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
        raise ConfigError("a drawing holds ink values in [0, 1]")
    return binarize(array.reshape(PIXELS))


def check_drawn(image: np.ndarray) -> None:
    if not image.any():
        raise ConfigError("the canvas is empty: draw a digit first")


# --------------------------------------------------------------------------- the classifier's reading


def check_classifier(model) -> None:
    """ConfigError unless ``model`` is a recurrent classifier (a head over a core's outputs)."""
    if getattr(model, "task", None) != "classify":
        raise ConfigError(f"the reading needs a classifier (task 'classify'), got a model with "
                          f"task {getattr(model, 'task', None)!r}")
    if not hasattr(model, "core"):
        raise ConfigError("this classifier sees the whole image at once: the row-by-row reading "
                          "needs a recurrent one")


@inference
def reading_beliefs(classifier, image) -> np.ndarray:
    """(28, 10) softmax of the classifier's head after each row: row r is what it believes
    having read rows 0..r (the head on the core's output at step 28 (r + 1))."""
    check_classifier(classifier)
    dtype, device = model_dtype_device(classifier)
    x = torch.as_tensor(as_image(image), dtype=dtype, device=device).view(PIXELS, 1, 1)
    outputs, _ = classifier.core(x)
    logits = classifier.head(outputs[SIDE - 1::SIDE, 0])
    return torch.softmax(logits.double(), dim=-1).cpu().numpy()


def settled_row(beliefs) -> int:
    """The first row (0-based) from which the reader's answer no longer changes: the settling
    step of ``reading.settling_steps``, counted in rows."""
    from .reading import settling_steps

    return int(settling_steps(np.asarray(beliefs).argmax(1)[:, None])[0]) - 1


# --------------------------------------------------------------------------- the predictor's guesses


def complete_below(predictor, image, rows: int, samples: int = 4,
                   generator: torch.Generator | None = None) -> np.ndarray:
    """(samples, 784): the first ``rows`` rows of ``image`` kept, the rest sampled."""
    check_predictor(predictor)
    image = as_image(image)
    check_drawn(image)
    if not 1 <= rows <= SIDE - 1:
        raise ConfigError(f"keep between 1 and {SIDE - 1} rows, got {rows}")
    if samples < 1:
        raise ConfigError(f"draw at least one sample, got {samples}")
    completion = complete(predictor, image[None], rows * SIDE, samples=samples,
                          generator=generator)
    return completion.images[0].cpu().numpy()


@dataclass
class Infill:
    """An in-painted region: the most probable filling (exact) or the most frequent (Gibbs)."""

    method: str               # "exact" or "gibbs"
    masked: np.ndarray        # (784,) -1 at the missing pixels
    filled: np.ndarray        # (784,) the image with the filling in place
    marginals: np.ndarray     # (784,) p(x = 1 | the other pixels) at missing pixels, 0 elsewhere
    probability: float | None  # posterior probability of the exact filling (None for Gibbs)
    sweeps: int = 0

    @property
    def missing(self) -> int:
        return int((self.masked == MISSING).sum())


def region_mask(top: int, left: int, height: int, width: int) -> np.ndarray:
    """(784,) bool: a rectangle of missing pixels (rows top.., columns left..)."""
    mask = np.zeros((SIDE, SIDE), bool)
    mask[top:top + height, left:left + width] = True
    return mask.reshape(PIXELS)


def inkiest_window(image, size: int) -> tuple[int, int, int, int]:
    """(top, left, size, size): the square window holding the most ink (the first, in reading
    order, on ties), where in-painting has something to do."""
    ink = as_image(image).reshape(SIDE, SIDE)
    sums = np.lib.stride_tricks.sliding_window_view(ink, (size, size)).sum(axis=(2, 3))
    top, left = np.unravel_index(np.argmax(sums), sums.shape)
    return int(top), int(left), size, size


def inpaint_region(predictor, image, missing, sweeps: int = GIBBS_SWEEPS,
                   generator: torch.Generator | None = None) -> Infill:
    """Fill the pixels where ``missing`` (784 or 28 x 28 bools) is set, given all the others."""
    check_predictor(predictor)
    image = as_image(image)
    check_drawn(image)
    missing = np.asarray(missing, bool).reshape(-1)
    if missing.size != PIXELS:
        raise ConfigError(f"the region is a mask of {PIXELS} pixels, got {missing.size}")
    count = int(missing.sum())
    if count == 0:
        raise ConfigError("no region to in-paint: mark the missing pixels first")
    if count == PIXELS:
        raise ConfigError("the region covers the whole image: nothing is left to condition on")
    if count > MAX_REGION:
        raise ConfigError(f"a region of {count} pixels is too large: at most {MAX_REGION} "
                          f"(Gibbs sampling costs two passes per pixel and sweep)")
    masked = np.where(missing, MISSING, image).astype(np.float32)
    if count <= MAX_EXACT_MISSING:
        post = exact_posterior(predictor, masked[None])
        return Infill("exact", masked, post.map_images[0], post.marginal_images[0],
                      float(post.map_probability[0]))
    if sweeps < 2:
        raise ConfigError(f"Gibbs sampling needs at least 2 sweeps, got {sweeps}")
    gibbs = gibbs_inpaint(predictor, masked[None], sweeps=sweeps, burn_in=max(1, sweeps // 4),
                          generator=generator)
    return Infill("gibbs", masked, gibbs.mode_images[0], gibbs.marginal_images[0], None, sweeps)


# --------------------------------------------------------------------------- figures


def _image_axes(ax, rgb, title: str) -> None:
    ax.imshow(rgb, interpolation="nearest", vmin=0, vmax=1, cmap="gray")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=8)


def reading_panel(fig, image, beliefs) -> None:
    """Into ``fig`` (a Figure or SubFigure): the binarized drawing beside the 28 x 10 strip of
    the classifier's beliefs, one row per image row read."""
    image = as_image(image).reshape(SIDE, SIDE)
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 10 / SIDE * 1.6]})
    _image_axes(left, image, "drawing (binarized)")
    right.imshow(beliefs, cmap="Blues", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    best = beliefs.argmax(axis=1)
    right.scatter(best, np.arange(SIDE), s=4, c="tab:red")
    right.set_xticks(range(10))
    right.set_yticks(range(0, SIDE, 4))
    right.tick_params(labelsize=7)
    right.set_xlabel("class", fontsize=8)
    right.set_ylabel("rows read", fontsize=8)
    right.set_title(f"belief per row: {best[-1]} at the end ({beliefs[-1].max():.2f})",
                    fontsize=8)


def completion_panel(fig, image, rows: int, samples: np.ndarray) -> None:
    """Into ``fig``: the kept rows (the rest red) and each sampled completion (red-tinted)."""
    masked = as_image(image).copy()
    masked[rows * SIDE:] = MISSING
    rgbs = [plots.inpainting_rgb(masked)[0]]
    rgbs += list(plots.inpainting_rgb(np.repeat(masked[None], len(samples), 0), samples))
    titles = [f"rows 0-{rows - 1} kept"] + [f"sample {k + 1}" for k in range(len(samples))]
    for ax, rgb, title in zip(np.atleast_1d(fig.subplots(1, len(rgbs))), rgbs, titles):
        _image_axes(ax, rgb, title)


def inpainting_panel(fig, infill: Infill) -> None:
    """Into ``fig``: the region (red), the filling and p(x = 1) of each missing pixel."""
    label = ("most probable" if infill.method == "exact"
             else f"most frequent ({infill.sweeps} Gibbs sweeps)")
    if infill.probability is not None:
        label += f", p = {infill.probability:.2f}"
    rgbs = [plots.inpainting_rgb(infill.masked)[0],
            plots.inpainting_rgb(infill.masked, infill.filled)[0],
            plots.inpainting_rgb(infill.masked, infill.marginals)[0]]
    titles = [f"{infill.missing} px missing", label, "p(x = 1)"]
    for ax, rgb, title in zip(fig.subplots(1, 3), rgbs, titles):
        _image_axes(ax, rgb, title)


def state_figure(image, beliefs=None, rows: int | None = None, samples=None,
                 infill: Infill | None = None, note: str | None = None):
    """One figure of what is known about a drawing: the reading, then a completion and an
    in-painting where given. The widget draws this; so does ``example_figure``."""
    import matplotlib.pyplot as plt

    parts = [p for p in ("reading", "completion", "inpainting")
             if {"reading": beliefs, "completion": samples, "inpainting": infill}[p] is not None]
    if not parts:
        parts = ["drawing"]
    heights = {"reading": 2.4, "completion": 1.6, "inpainting": 1.7, "drawing": 2.0}
    width = max(4.6, 1.2 * (1 + (len(samples) if samples is not None else 0)))
    fig = plt.figure(figsize=(width, sum(heights[p] for p in parts) + (0.3 if note else 0)),
                     layout="constrained")
    subfigs = np.atleast_1d(fig.subfigures(len(parts), 1,
                                           height_ratios=[heights[p] for p in parts]))
    for sub, part in zip(subfigs, parts):
        if part == "reading":
            reading_panel(sub, image, beliefs)
        elif part == "completion":
            completion_panel(sub, image, rows, samples)
        elif part == "inpainting":
            inpainting_panel(sub, infill)
        else:
            _image_axes(sub.subplots(), as_image(image).reshape(SIDE, SIDE), "drawing")
    if note:
        fig.suptitle(note, fontsize=8, style="italic")
    plt.close(fig)
    return fig


def example_figure(classifier, predictor, image, rows: int = 14, samples: int = 4,
                   exact_region=None, gibbs_region=None, sweeps: int = GIBBS_SWEEPS,
                   seed: int = 0):
    """The static example of the drawing tool (for the report): a test digit taken as the
    drawing, read row by row, completed below row ``rows`` and in-painted twice, exactly in
    ``exact_region`` (top, left, height, width; default the inkiest 3 x 3 window) and by Gibbs
    sampling in ``gibbs_region`` (default the inkiest 4 x 4 window: 16 pixels, past exact reach).
    Returns (figure, {"beliefs", "samples", "exact", "gibbs"})."""
    import matplotlib.pyplot as plt

    exact_region = exact_region or inkiest_window(image, 3)
    gibbs_region = gibbs_region or inkiest_window(image, 4)
    generator = torch.Generator().manual_seed(seed)
    beliefs = reading_beliefs(classifier, image)
    drawn = complete_below(predictor, image, rows, samples, generator)
    exact = inpaint_region(predictor, image, region_mask(*exact_region))
    gibbs = inpaint_region(predictor, image, region_mask(*gibbs_region), sweeps, generator)
    fig = plt.figure(figsize=(max(4.6, 1.2 * (samples + 1)), 2.4 + 1.6 + 2 * 1.7),
                     layout="constrained")
    top, middle, low, bottom = fig.subfigures(4, 1, height_ratios=[2.4, 1.6, 1.7, 1.7])
    reading_panel(top, image, beliefs)
    completion_panel(middle, image, rows, drawn)
    inpainting_panel(low, exact)
    inpainting_panel(bottom, gibbs)
    plt.close(fig)
    return fig, {"beliefs": beliefs, "samples": drawn, "exact": exact, "gibbs": gibbs}


__all__ = ["blank", "stroke", "pixels_on", "as_image", "check_drawn", "check_classifier", "reading_beliefs",
           "complete_below", "Infill", "region_mask", "inkiest_window", "inpaint_region", "reading_panel",
           "completion_panel", "inpainting_panel", "state_figure", "example_figure",
           "BRUSH_RADIUS", "MAX_REGION", "GIBBS_SWEEPS"]
