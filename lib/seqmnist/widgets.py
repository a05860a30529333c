"""Interactive explorers for the Task 2 and Task 3 notebooks (ipywidgets).

Each explorer *is* its widget box (an ``ipywidgets.VBox``): ``display(PredictionExplorer(...))`` in
a live notebook. All the logic runs in plain Python on the controls' values, so tests drive an
explorer without a kernel: set a control's ``.value`` or call ``.button.click()`` and read
``.image.value`` (PNG bytes of the current figure) and ``.status.value`` (an HTML line). Exported
PDFs only show a text form of a widget; the notebooks build the explorers only when asked to.

* ``PredictionExplorer`` (Task 2): a test image, how many of its pixels are observed, how far to
  continue and how many samples; the *Sample* button draws continuations from the model.
* ``InpaintingExplorer`` (Task 3): a test image and a missing window (position, size up to 3x3);
  the *In-paint* button computes the exact posterior over the 2^|M| fillings and shows the most
  probable filling, the ground truth and p(x = 1) of each missing pixel.
"""

from __future__ import annotations

import io

import ipywidgets as widgets
import numpy as np
import torch

from . import plots
from .data import PIXELS, SIDE
from .errors import ConfigError
from .generate import binary_cross_entropy, check_predictor, complete, log_prob
from .inpaint import MISSING, exact_posterior

#: the continuation lengths offered by PredictionExplorer (0 = to the end of the image)
HORIZONS = (("1 pixel", 1), ("10 pixels", 10), ("one row (28)", 28), ("to the end", 0))
MAX_WINDOW = 3


def figure_png(fig, dpi: int = 90) -> bytes:
    """The PNG bytes of a matplotlib figure (for an ``ipywidgets.Image``)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def _images(images) -> np.ndarray:
    array = np.asarray(images.cpu() if torch.is_tensor(images) else images, np.float32)
    array = array.reshape(len(array), -1)
    if array.ndim != 2 or array.shape[1] != PIXELS or len(array) < 1:
        raise ConfigError(f"images must be (N, {PIXELS}), got {array.shape}")
    if not np.all((array == 0) | (array == 1)):
        raise ConfigError("images must be binary (0 and 1)")
    return array


class _Explorer(widgets.VBox):
    """What both explorers share: two rows of controls, a status line and a figure."""

    def __init__(self, model, images, top, bottom):
        check_predictor(model)
        self.model = model
        self.images = _images(images)
        self.index = widgets.IntSlider(value=0, min=0, max=len(self.images) - 1,
                                       description="test image")
        self.image = widgets.Image(format="png")
        self.status = widgets.HTML()
        super().__init__([widgets.HBox([self.index, *top]), widgets.HBox(bottom),
                          self.status, self.image])

    def show(self, fig, status: str) -> None:
        self.image.value = figure_png(fig)
        self.status.value = status

    def show_pair(self, masked: np.ndarray, label: str, status: str) -> None:
        """Show ``masked`` (missing pixels red) beside the current test image."""
        truth = self.images[self.index.value]
        self.show(plots.image_table([[plots.inpainting_rgb(masked)[0],
                                      plots.inpainting_rgb(masked, truth)[0]]],
                                    col_labels=[label, "ground truth"], cell=1.6), status)


class PredictionExplorer(_Explorer):
    """Continue a test image from its first pixels with a next-pixel predictor (Task 2)."""

    def __init__(self, model, images, seed: int = 0, observed: int = 392, samples: int = 4,
                 max_samples: int = 10, horizon: int = 0):
        self.generator = torch.Generator().manual_seed(seed)
        self.observed = widgets.IntSlider(value=observed, min=1, max=PIXELS - 1,
                                          description="observed px")
        self.samples = widgets.IntSlider(value=min(samples, max_samples), min=1, max=max_samples,
                                         description="samples")
        self.horizon = widgets.Dropdown(options=HORIZONS, value=horizon, description="continue")
        self.button = widgets.Button(description="Sample", button_style="primary",
                                     tooltip="draw new continuations")
        super().__init__(model, images, [self.observed], [self.samples, self.horizon, self.button])
        self.last = None  # (samples, 784) completions of the last click
        for control in (self.index, self.observed, self.horizon):
            control.observe(lambda change: self.show_input(), names="value")
        self.button.on_click(lambda button: self.sample())
        self.show_input()

    def steps(self) -> int:
        """Pixels to generate: the chosen horizon, cut at the end of the image."""
        rest = PIXELS - self.observed.value
        return rest if self.horizon.value == 0 else min(self.horizon.value, rest)

    def masked(self) -> np.ndarray:
        out = self.images[self.index.value].copy()
        out[self.observed.value:] = MISSING
        return out

    def show_input(self) -> None:
        """Show the observed pixels (missing ones red) and the ground truth."""
        self.show_pair(self.masked(), "observed",
                       f"Test image {self.index.value}: the first {self.observed.value} pixels "
                       f"are observed. Press <b>Sample</b> to continue it by {self.steps()} "
                       f"pixels.")

    def sample(self) -> np.ndarray:
        """Draw the continuations, show them and return them ((samples, 784), -1 after them)."""
        truth = self.images[self.index.value]
        k, n, count = self.observed.value, self.steps(), self.samples.value
        completion = complete(self.model, truth[None], k, n, samples=count,
                              generator=self.generator)
        images = completion.images[0].cpu().numpy()
        probs = completion.probs[0, :, k:k + n].cpu()
        sample_nll = binary_cross_entropy(probs, completion.images[0, :, k:k + n].cpu()).sum(-1)
        truth_t = torch.as_tensor(truth)
        gt_nll = -float(log_prob(self.model, truth_t[None, :k], truth_t[None, k:k + n])[0])
        self.show(plots.horizon_samples(self.masked(), truth, {n: images}, cell=1.4), (
            f"Test image {self.index.value}, {k} observed pixels, {count} sample(s) of {n} "
            f"pixels: -log p(ground truth | prefix) = {gt_nll:.2f} nats; mean -log p(sample | "
            f"prefix) = {float(sample_nll.mean()):.2f} nats."))
        self.last = images
        return images


class InpaintingExplorer(_Explorer):
    """The exact posterior over a missing window of a test image (Task 3)."""

    def __init__(self, model, images, index: int = 0, size: int = 2, row: int = 12,
                 col: int = 12, batch_sequences: int | None = None):
        self.batch_sequences = batch_sequences
        self.size = widgets.IntSlider(value=size, min=1, max=MAX_WINDOW, description="window")
        self.row = widgets.IntSlider(value=min(row, SIDE - size), min=0, max=SIDE - size,
                                     description="top row")
        self.col = widgets.IntSlider(value=min(col, SIDE - size), min=0, max=SIDE - size,
                                     description="left col")
        self.button = widgets.Button(description="In-paint", button_style="primary",
                                     tooltip="exact posterior over all fillings")
        super().__init__(model, images, [self.size], [self.row, self.col, self.button])
        self.index.value = index
        self.posterior = None  # the Posterior of the last click
        self.size.observe(self._resize, names="value")
        for control in (self.index, self.row, self.col):
            control.observe(lambda change: self.show_mask(), names="value")
        self.button.on_click(lambda button: self.inpaint())
        self.show_mask()

    def _resize(self, change) -> None:
        limit = SIDE - self.size.value
        self.row.value, self.col.value = min(self.row.value, limit), min(self.col.value, limit)
        self.row.max = self.col.max = limit
        self.show_mask()

    def masked(self) -> np.ndarray:
        """(784,) the chosen test image with the window set to -1."""
        image = self.images[self.index.value].reshape(SIDE, SIDE).copy()
        r, c, s = self.row.value, self.col.value, self.size.value
        image[r:r + s, c:c + s] = MISSING
        return image.reshape(PIXELS)

    def show_mask(self) -> None:
        masked = self.masked()
        missing = int((masked == MISSING).sum())
        self.show_pair(masked, "masked",
                       f"Test image {self.index.value}: {missing} missing pixel(s); press "
                       f"<b>In-paint</b> to score all {2 ** missing} fillings.")

    def inpaint(self):
        """Compute, show and return the exact posterior (an ``inpaint.Posterior``)."""
        masked, truth = self.masked(), self.images[self.index.value]
        post = exact_posterior(self.model, masked[None], truth[None],
                               batch_sequences=self.batch_sequences)
        fig = plots.inpainting_columns(masked[None], {
            "most probable": post.map_images, "ground truth": truth[None],
            "p(x = 1)": post.marginal_images}, cell=1.6)
        summary = post.summary()
        self.show(fig, (
            f"Test image {self.index.value}, {int(post.counts[0])} missing pixel(s): p(most probable "
            f"filling) = {summary['map_probability']:.3f}, p(ground-truth filling) = "
            f"{summary['truth_probability']:.3f} (-log p = {summary['truth_joint_nll']:.3f} "
            f"nats); pixel error of the most probable filling {100 * summary['map_error']:.0f} %; "
            f"image NLL {summary['truth_image_nll']:.2f} nats with the ground truth, "
            f"{summary['map_image_nll']:.2f} with the most probable filling."))
        self.posterior = post
        return post


__all__ = ["PredictionExplorer", "InpaintingExplorer", "figure_png", "HORIZONS"]
