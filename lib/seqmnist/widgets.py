"""Interactive explorers for the Task 2 and Task 3 notebooks (ipywidgets).

Each explorer *is* its widget box (an ``ipywidgets.VBox``): ``display(PredictionExplorer(...))`` in
a live notebook. All the logic runs in plain Python on the controls' values, so tests drive an
explorer without a kernel: set a control's ``.value`` or call ``.button.click()`` and read
``.image.value`` (PNG bytes of the current figure) and ``.status.value`` (an HTML line). The notebooks
build them only when asked to (``interactive=True``).

* ``PredictionExplorer`` (Task 2): a test image, how many of its pixels are observed, how far to
  continue and how many samples; the *Sample* button draws continuations from the model.
* ``InpaintingExplorer`` (Task 3): a test image and a missing window (position, size up to 3x3);
  the *In-paint* button computes the exact posterior over the 2^|M| fillings and shows the most
  probable filling, the ground truth and p(x = 1) of each missing pixel.
* ``DrawingPad`` (draw your own digit): a 28 x 28 canvas (ipycanvas), the classifier's belief
  after each row read, *Complete* (keep the rows above a line, sample the rest) and *In-paint*
  (the pixels marked missing, exactly or by Gibbs sampling); the logic is ``seqmnist.drawing``.

Figures are shown at their own pixel size (a stretched PNG is blurry and runs off the screen), and
an explorer's first figure has the layout of those after a click, so nothing jumps. In a static
export (nbconvert HTML offline, PDF) a widget view is empty: ``display``ing a widget here also
leaves a PNG of its state and the line ``LIVE_NOTE``; once a live front end shows the widget, that
copy folds into one line (kept up to date, for an export of the live session).
"""

from __future__ import annotations

import base64
import io
import struct

import ipywidgets as widgets
import numpy as np
import torch

from . import drawing, plots
from .data import PIXELS, SIDE
from .errors import ConfigError, SeqMnistError
from .generate import binary_cross_entropy, check_predictor, complete, log_prob
from .inpaint import MISSING, exact_posterior

#: the continuation lengths offered by PredictionExplorer (0 = to the end of the image)
HORIZONS = (("1 pixel", 1), ("10 pixels", 10), ("one row (28)", 28), ("to the end", 0))
MAX_WINDOW = 3
#: what a static export shows under a widget's image
LIVE_NOTE = "Interactive: needs a live kernel (a static image of its state)."
LABELS = {"description_width": "initial"}  # a slider's whole label, not "observed ..."


def figure_png(fig, dpi: int = 90) -> bytes:
    """The PNG bytes of a matplotlib figure (for an ``ipywidgets.Image``)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) in pixels, from the PNG header."""
    if bytes(png[:8]) != b"\x89PNG\r\n\x1a\n":
        raise ConfigError("not a PNG image")
    return struct.unpack(">II", bytes(png[16:24]))


def show_png(image: widgets.Image, png: bytes) -> None:
    """Put ``png`` into ``image`` at its own pixel size (not stretched to the output's width)."""
    width, height = png_size(png)
    image.value = png
    image.layout.width, image.layout.height = f"{width}px", f"{height}px"


def noted_png(png: bytes, note: str = LIVE_NOTE, dpi: int = 90) -> bytes:
    """``png`` with ``note`` written under it: the one image a PDF export keeps of a widget."""
    import matplotlib.pyplot as plt

    pixels = plt.imread(io.BytesIO(bytes(png)), format="png")
    height, width = pixels.shape[:2]
    band = 24
    fig = plt.figure(figsize=(width / dpi, (height + band) / dpi), dpi=dpi)
    fig.figimage(pixels, 0, band)
    fig.text(0.01, band / 2 / (height + band), note, fontsize=8, style="italic", va="center")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return buffer.getvalue()


class StaticCopy:
    """Mixin for a widget box: ``display`` shows the widget and, as a second output, a PNG of
    its state with ``LIVE_NOTE``, which is what a static export keeps (nbconvert's HTML always
    picks the widget view of an output that has one, and renders it empty offline). When a live
    front end shows the widget (ipywidgets' view count rises), the copy folds into one line."""

    _copy = None  # the copy's DisplayHandle once displayed

    def static_png(self) -> bytes:
        raise NotImplementedError

    def _track_views(self) -> None:
        self._view_count = 0  # None would not count the views
        self.observe(lambda change: self.refresh_copy(), names="_view_count")

    def copy_bundle(self) -> dict:
        png = self.static_png()
        img = (f'<img src="data:image/png;base64,{base64.b64encode(png).decode()}" '
               f'alt="static image of the widget"/>')
        if self._view_count:  # a live view exists: keep the copy out of the way
            html = f"<details><summary><i>{LIVE_NOTE}</i></summary>{img}</details>"
        else:
            html = f"{img}<p><i>{LIVE_NOTE}</i></p>"
        return {"text/html": html, "image/png": base64.b64encode(noted_png(png)).decode(),
                "text/plain": LIVE_NOTE}

    def refresh_copy(self) -> None:
        if self._copy is not None:
            self._copy.update(self.copy_bundle(), raw=True)

    def _ipython_display_(self):
        from IPython.display import display

        bundle = self._repr_mimebundle_()
        bundle["text/plain"] = LIVE_NOTE  # not the repr of every child
        display(bundle, raw=True)
        self._copy = display(self.copy_bundle(), raw=True, display_id=True)


def _images(images) -> np.ndarray:
    array = np.asarray(images.cpu() if torch.is_tensor(images) else images, np.float32)
    array = array.reshape(len(array), -1)
    if array.ndim != 2 or array.shape[1] != PIXELS or len(array) < 1:
        raise ConfigError(f"images must be (N, {PIXELS}), got {array.shape}")
    if not np.all((array == 0) | (array == 1)):
        raise ConfigError("images must be binary (0 and 1)")
    return array


class _Explorer(StaticCopy, widgets.VBox):
    """What both explorers share: two rows of controls, a status line and a figure."""

    def __init__(self, model, images, top, bottom):
        check_predictor(model)
        self.model = model
        self.images = _images(images)
        self.index = widgets.IntSlider(value=0, min=0, max=len(self.images) - 1,
                                       description="test image", style=LABELS)
        self.image = widgets.Image(format="png")
        self.status = widgets.HTML()
        super().__init__([widgets.HBox([self.index, *top]), widgets.HBox(bottom),
                          self.status, self.image])
        self._track_views()

    def show(self, fig, status: str) -> None:
        show_png(self.image, figure_png(fig))
        self.status.value = status
        self.refresh_copy()

    def static_png(self) -> bytes:
        return bytes(self.image.value)


class PredictionExplorer(_Explorer):
    """Continue a test image from its first pixels with a next-pixel predictor (Task 2)."""

    def __init__(self, model, images, seed: int = 0, observed: int = 392, samples: int = 4,
                 max_samples: int = 10, horizon: int = 0):
        self.generator = torch.Generator().manual_seed(seed)
        self.observed = widgets.IntSlider(value=observed, min=1, max=PIXELS - 1,
                                          description="observed px", style=LABELS)
        self.samples = widgets.IntSlider(value=min(samples, max_samples), min=1, max=max_samples,
                                         description="samples", style=LABELS)
        self.horizon = widgets.Dropdown(options=HORIZONS, value=horizon, description="continue", style=LABELS)
        self.button = widgets.Button(description="Sample", button_style="primary",
                                     tooltip="draw new continuations")
        super().__init__(model, images, [self.observed], [self.samples, self.horizon, self.button])
        self.last = None  # (samples, 784) completions of the last click
        for control in (self.index, self.observed, self.horizon, self.samples):
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
        """Show the observed pixels and the ground truth in the layout of the samples to come
        (their places red until drawn), so the figure does not change size at the first click."""
        masked, n = self.masked(), self.steps()
        placeholders = np.repeat(masked[None], self.samples.value, 0)
        self.show(plots.horizon_samples(masked, self.images[self.index.value],
                                        {n: placeholders}, cell=1.4), (
            f"Test image {self.index.value}: the first {self.observed.value} pixels are "
            f"observed. Press <b>Sample</b> to continue it by {n} pixels."))

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
        self.size = widgets.IntSlider(value=size, min=1, max=MAX_WINDOW, description="window", style=LABELS)
        self.row = widgets.IntSlider(value=min(row, SIDE - size), min=0, max=SIDE - size,
                                     description="top row", style=LABELS)
        self.col = widgets.IntSlider(value=min(col, SIDE - size), min=0, max=SIDE - size,
                                     description="left col", style=LABELS)
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
        """The window, in the layout of the posterior to come (its columns red until then)."""
        masked, truth = self.masked(), self.images[self.index.value]
        missing = int((masked == MISSING).sum())
        self.show(self._columns(masked, masked, truth, masked),
                  f"Test image {self.index.value}: {missing} missing pixel(s); press "
                  f"<b>In-paint</b> to score all {2 ** missing} fillings.")

    @staticmethod
    def _columns(masked, best, truth, marginals):
        return plots.inpainting_columns(masked[None], {
            "most probable": best[None], "ground truth": truth[None], "p(x = 1)": marginals[None]},
            cell=1.6)

    def inpaint(self):
        """Compute, show and return the exact posterior (an ``inpaint.Posterior``)."""
        masked, truth = self.masked(), self.images[self.index.value]
        post = exact_posterior(self.model, masked[None], truth[None],
                               batch_sequences=self.batch_sequences)
        fig = self._columns(masked, post.map_images[0], truth, post.marginal_images[0])
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


class DrawingPad(StaticCopy, widgets.VBox):
    """Draw a digit; see what a classifier believes row by row and what a predictor makes of it.

    The canvas (ipycanvas) has three tools: *pen* and *eraser* (a soft brush, binarized as the
    data are) and *missing*, which marks the pixels *In-paint* fills. *Complete* keeps the rows
    above the yellow line and samples the rest. ``images`` (optional, e.g. the test set) can be
    loaded as a starting drawing. Tests and notebooks drive it without a browser: ``stroke``
    calls the very callbacks the canvas calls, ``load`` and the buttons' ``click`` the rest.
    """

    SCALE = 10  # canvas pixels per image pixel

    def __init__(self, classifier, predictors, images=None, seed: int = 0, rows: int = 14,
                 samples: int = 4, sweeps: int = drawing.GIBBS_SWEEPS):
        self.classifier = classifier
        self.predictors = predictors if isinstance(predictors, dict) else {"predictor": predictors}
        self.images = None if images is None else _images(images)
        self.generator = torch.Generator().manual_seed(seed)
        self.ink = drawing.blank()
        self.missing = np.zeros((SIDE, SIDE), bool)
        self.beliefs = self.samples_drawn = self.infill = None
        self._pen = None  # the last point of the stroke under way, in image pixels

        import ipycanvas

        size = SIDE * self.SCALE
        self.canvas = ipycanvas.Canvas(width=size, height=size,
                                       layout=widgets.Layout(width=f"{size}px", height=f"{size}px"))
        self.canvas.on_mouse_down(self.pen_down)
        self.canvas.on_mouse_move(self.pen_move)
        self.canvas.on_mouse_up(self.pen_up)
        self.canvas.on_mouse_out(self.pen_up)
        self.tool = widgets.ToggleButtons(options=["pen", "eraser", "missing"], value="pen",
                                          description="tool", style=LABELS)
        self.clear = widgets.Button(description="Clear", tooltip="an empty canvas")
        self.clear_region = widgets.Button(description="Clear missing",
                                           tooltip="unmark the missing pixels")
        self.rows = widgets.IntSlider(value=rows, min=1, max=SIDE - 1, style=LABELS,
                                      description="keep rows above")
        self.samples = widgets.IntSlider(value=samples, min=1, max=8, description="samples",
                                         style=LABELS)
        self.predictor = widgets.Dropdown(options=list(self.predictors), description="predictor",
                                          style=LABELS)
        self.complete_button = widgets.Button(description="Complete", button_style="primary",
                                              tooltip="sample the rows below the line")
        self.sweeps = widgets.IntSlider(value=sweeps, min=2, max=40, style=LABELS,
                                        description="Gibbs sweeps")
        self.inpaint_button = widgets.Button(description="In-paint", button_style="primary",
                                             tooltip="fill the pixels marked missing")
        self.beliefs_image = widgets.Image(format="png")
        self.result = widgets.Image(format="png")
        self.status = widgets.HTML()
        controls = [widgets.HBox([self.tool, self.clear, self.clear_region])]
        if self.images is not None:
            self.index = widgets.BoundedIntText(value=0, min=0, max=len(self.images) - 1,
                                                description="test image", style=LABELS,
                                                layout=widgets.Layout(width="180px"))
            self.load_button = widgets.Button(description="Load", tooltip="draw a test image")
            self.load_button.on_click(lambda button: self.load(self.index.value))
            controls[0].children += (self.index, self.load_button)
        controls += [widgets.HBox([self.rows, self.samples, self.predictor, self.complete_button]),
                     widgets.HBox([self.sweeps, self.inpaint_button])]
        super().__init__([widgets.HBox([self.canvas, self.beliefs_image]), *controls,
                          self.status, self.result])
        self.clear.on_click(lambda button: self.reset())
        self.clear_region.on_click(lambda button: self.mark_missing(None))
        self.complete_button.on_click(lambda button: self.complete())
        self.inpaint_button.on_click(lambda button: self.inpaint())
        self.rows.observe(lambda change: self.redraw(), names="value")
        self._track_views()
        self.reset()

    # -- the canvas ------------------------------------------------------------------------
    def redraw(self) -> None:
        """Paint the state on the canvas: ink in gray, missing pixels red, the line yellow."""
        gray = 255 * (1.0 - self.ink)  # dark ink on white, as on paper
        rgb = np.repeat(gray[..., None], 3, axis=-1)
        rgb[self.missing] = (230, 30, 30)
        big = np.kron(rgb, np.ones((self.SCALE, self.SCALE, 1)))
        big[::self.SCALE, :] = big[:, ::self.SCALE] = 0.85 * big[::self.SCALE, :].mean()
        line = self.rows.value * self.SCALE
        big[max(0, line - 1):line + 1, :] = (230, 180, 0)
        self.canvas.put_image_data(big.astype(np.uint8))

    def _point(self, x, y) -> tuple[float, float]:
        return float(x) / self.SCALE, float(y) / self.SCALE

    def pen_down(self, x, y) -> None:
        self._pen = self._point(x, y)
        self._apply([self._pen])

    def pen_move(self, x, y) -> None:
        if self._pen is not None:
            point = self._point(x, y)
            self._apply([self._pen, point])
            self._pen = point

    def pen_up(self, x=None, y=None) -> None:
        """The stroke ends: read the drawing again."""
        if self._pen is not None:
            self._pen = None
            if self.tool.value == "missing":
                self._say(f"{int(self.missing.sum())} pixel(s) marked missing.")
            else:
                self.read()

    def _apply(self, points) -> None:
        if self.tool.value == "missing":
            self.mark_missing(points, redraw=False)
        else:
            drawing.stroke(self.ink, points, erase=self.tool.value == "eraser")
        self.redraw()

    def stroke(self, points) -> None:
        """One stroke through ``points`` (canvas pixels), as the mouse would give it."""
        points = list(points)
        self.pen_down(*points[0])
        for point in points[1:]:
            self.pen_move(*point)
        self.pen_up(*points[-1])

    def mark_missing(self, points, redraw: bool = True) -> None:
        """Mark the pixels the polyline ``points`` (image pixels) crosses; None unmarks all."""
        if points is None:
            self.missing[:] = False
        else:
            self.missing |= drawing.pixels_on(points)
        if redraw:
            self.redraw()
            self._say(f"{int(self.missing.sum())} pixel(s) marked missing.")

    def load(self, index: int) -> None:
        """Start from test image ``index`` (its pixels as ink)."""
        self.ink = self.images[index].reshape(SIDE, SIDE).copy()
        self.missing[:] = False
        self.redraw()
        self.read()

    def reset(self) -> None:
        self.ink, self.beliefs, self.samples_drawn, self.infill = drawing.blank(), None, None, None
        self.missing[:] = False
        self.redraw()
        self.beliefs_image.value = self.result.value = b""
        self._say("Draw a digit (hold the mouse button down), then <b>Complete</b> it or mark "
                  "pixels <i>missing</i> and <b>In-paint</b> them.")
        self.refresh_copy()

    # -- the models ------------------------------------------------------------------------
    def _say(self, text: str, error: bool = False) -> None:
        self.status.value = (f'<span style="color:#b00">{text}</span>' if error else text)

    def _try(self, action):
        """Run ``action``; a user mistake (SeqMnistError) becomes the status line."""
        try:
            return action()
        except SeqMnistError as error:
            self._say(str(error), error=True)
            return None

    def read(self) -> np.ndarray | None:
        """The classifier's belief after each row of the drawing, shown beside the canvas."""
        def run():
            image = drawing.as_image(self.ink)
            drawing.check_drawn(image)
            self.beliefs = drawing.reading_beliefs(self.classifier, image)
            fig = drawing.state_figure(image, self.beliefs)
            show_png(self.beliefs_image, figure_png(fig))
            best = int(self.beliefs[-1].argmax())
            settled = drawing.settled_row(self.beliefs)
            self._say(f"The classifier reads a <b>{best}</b> (p = {self.beliefs[-1, best]:.2f} "
                      f"after the last row), its answer from row {settled} on.")
            self.refresh_copy()
            return self.beliefs

        return self._try(run)

    def complete(self) -> np.ndarray | None:
        """Keep the rows above the line, sample the rest; returns (samples, 784)."""
        def run():
            model = self.predictors[self.predictor.value]
            rows = self.rows.value
            self._say("Sampling ...")
            self.samples_drawn = drawing.complete_below(model, self.ink, rows, self.samples.value,
                                                        self.generator)
            image = drawing.as_image(self.ink)
            show_png(self.result, figure_png(drawing.state_figure(
                image, rows=rows, samples=self.samples_drawn)))
            self._say(f"{self.samples.value} completion(s) of rows {rows}-27 by "
                      f"<b>{self.predictor.value}</b>, from the {rows} rows above the line.")
            self.refresh_copy()
            return self.samples_drawn

        return self._try(run)

    def inpaint(self) -> drawing.Infill | None:
        """Fill the pixels marked missing: exact posterior up to 12, Gibbs beyond."""
        def run():
            model = self.predictors[self.predictor.value]
            self._say("In-painting ...")
            self.infill = drawing.inpaint_region(model, self.ink, self.missing, self.sweeps.value,
                                                 self.generator)
            show_png(self.result, figure_png(drawing.state_figure(
                drawing.as_image(self.ink), infill=self.infill)))
            how = (f"exact posterior over all {2 ** self.infill.missing} fillings; the most "
                   f"probable has p = {self.infill.probability:.3f}"
                   if self.infill.method == "exact" else
                   f"more than 12 pixels: Gibbs sampling, {self.infill.sweeps} sweeps; the most "
                   f"frequent filling and the averaged p(x = 1) of each pixel")
            self._say(f"{self.infill.missing} missing pixel(s) in-painted by "
                      f"<b>{self.predictor.value}</b>: {how}.")
            self.refresh_copy()
            return self.infill

        return self._try(run)

    def static_png(self) -> bytes:
        return figure_png(drawing.state_figure(
            drawing.as_image(self.ink), self.beliefs, self.rows.value, self.samples_drawn,
            self.infill))


__all__ = ["PredictionExplorer", "InpaintingExplorer", "DrawingPad", "StaticCopy", "figure_png",
           "png_size", "show_png", "noted_png", "HORIZONS", "LIVE_NOTE"]
