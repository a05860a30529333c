"""The notebooks' explorers and the drawing pad run without a kernel: set a control, click a
button, send a canvas event, see the change."""

import base64

import numpy as np
import pytest

from seqmnist import drawing
from seqmnist.errors import ConfigError
from seqmnist.models import build_model
from seqmnist.widgets import (LIVE_NOTE, DrawingPad, InpaintingExplorer, PredictionExplorer,
                              figure_png, png_size)


@pytest.fixture(scope="module")
def model():
    return build_model("predict", "lstm-1x4", seed=0).eval()


@pytest.fixture(scope="module")
def images(mnist):
    return mnist.test.x[:5]


def test_prediction_explorer_samples_and_follows_its_controls(model, images):
    explorer = PredictionExplorer(model, images, seed=0, observed=700, samples=3)
    first = explorer.image.value
    assert bytes(first).startswith(b"\x89PNG") and "700" in explorer.status.value
    explorer.index.value = 2
    assert explorer.image.value != first and "Test image 2" in explorer.status.value
    explorer.horizon.value = 10
    assert explorer.steps() == 10
    before = explorer.image.value
    explorer.button.click()
    drawn = explorer.last
    assert drawn.shape == (3, 784) and explorer.image.value != before
    assert "-log p(ground truth | prefix)" in explorer.status.value
    truth = np.asarray(images[2], np.float32)
    assert np.array_equal(drawn[:, :700], np.repeat(truth[None, :700], 3, 0))
    assert set(np.unique(drawn[:, 700:710])) <= {0.0, 1.0} and (drawn[:, 710:] == -1).all()
    explorer.samples.value = 5
    explorer.horizon.value = 0  # to the end: 84 pixels after 700
    assert explorer.steps() == 84
    explorer.button.click()
    assert explorer.last.shape == (5, 784) and not (explorer.last == -1).any()


def test_prediction_explorer_new_clicks_draw_new_samples(model, images):
    explorer = PredictionExplorer(model, images, seed=0, observed=400, samples=4)
    a = explorer.sample()
    b = explorer.sample()
    assert not np.array_equal(a, b)  # the generator moves on between clicks
    again = PredictionExplorer(model, images, seed=0, observed=400, samples=4).sample()
    assert np.array_equal(a, again)  # and a seed reproduces


def test_inpainting_explorer_posterior(model, images):
    explorer = InpaintingExplorer(model, images, index=0, size=2, row=10, col=10)
    shown = explorer.image.value
    assert "4 missing pixel(s)" in explorer.status.value
    explorer.size.value = 3
    assert "9 missing pixel(s)" in explorer.status.value and explorer.image.value != shown
    explorer.col.value = 25
    assert explorer.col.value == 25 and explorer.col.max == 25
    explorer.size.value = 1
    assert explorer.col.max == 27 and (explorer.masked() == -1).sum() == 1
    explorer.size.value = 3
    explorer.row.value, explorer.col.value = 12, 12
    before = explorer.image.value
    explorer.button.click()
    post = explorer.posterior
    assert post is not None and post.log_posterior.shape == (1, 512)
    assert np.isclose(post.posterior.sum(), 1.0)
    assert explorer.image.value != before and "p(most probable filling)" in explorer.status.value
    masked = explorer.masked().reshape(28, 28)
    assert (masked[12:15, 12:15] == -1).all() and (masked == -1).sum() == 9


def test_explorers_check_their_inputs(model, images):
    with pytest.raises(ConfigError):
        PredictionExplorer(model, np.full((2, 784), 0.5))
    with pytest.raises(ConfigError):
        InpaintingExplorer(build_model("classify", "lstm-1x4", seed=0), images)


def test_figure_png():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    assert figure_png(fig).startswith(b"\x89PNG")
    plt.close(fig)


def test_explorers_draw_at_the_figures_own_size_without_a_jump(model, images):
    """The figure is shown at its PNG's pixel size (not stretched to the output's width), the
    first figure has the size of those after a click, and slider labels are not cut."""
    for explorer in (InpaintingExplorer(model, images, size=2),
                     PredictionExplorer(model, images, observed=700, samples=3, horizon=10)):
        first = png_size(explorer.image.value)
        assert explorer.image.layout.width == f"{first[0]}px"
        explorer.button.click()
        assert png_size(explorer.image.value) == first
        assert explorer.image.layout.width == f"{first[0]}px"
        sliders = [c for box in explorer.children[:2] for c in box.children
                   if hasattr(c, "style") and hasattr(c.style, "description_width")]
        assert sliders and all(s.style.description_width == "initial" for s in sliders)


@pytest.fixture
def shell():
    from IPython.core.interactiveshell import InteractiveShell

    return InteractiveShell.instance()


def test_display_leaves_a_static_copy_that_folds_once_a_view_is_live(shell, model, images):
    from IPython.display import display
    from IPython.utils.capture import capture_output

    explorer = InpaintingExplorer(model, images)
    with capture_output() as captured:
        display(explorer)
    view, copy = [output.data for output in captured.outputs]
    assert "application/vnd.jupyter.widget-view+json" in view and view["text/plain"] == LIVE_NOTE
    png = base64.b64decode(copy["image/png"])
    width, height = png_size(png)
    assert width >= png_size(explorer.image.value)[0] and height > png_size(explorer.image.value)[1]
    assert "<details>" not in copy["text/html"] and copy["text/plain"] == LIVE_NOTE
    assert explorer.static_png() == explorer.image.value
    explorer._view_count = 1  # what JupyterLab sends when it shows the widget
    live = explorer.copy_bundle()
    assert "<details>" in live["text/html"] and LIVE_NOTE in live["text/html"]


@pytest.fixture(scope="module")
def classifier():
    return build_model("classify", "lstm-1x4", seed=0).eval()


def canvas_event(pad, event, x, y):
    """What ipycanvas's front end sends for a mouse event."""
    pad.canvas._handle_frontend_event(pad.canvas, {"event": event, "x": x, "y": y}, [])


def test_drawing_pad_reads_completes_and_inpaints(model, classifier, images):
    pad = DrawingPad(classifier, {"lstm-1x4": model}, images=images, seed=0, rows=12, samples=2,
                     sweeps=2)
    canvas_event(pad, "mouse_down", 140, 40)
    canvas_event(pad, "mouse_move", 140, 240)  # a vertical stroke, column 14, rows 4..24
    assert pad.beliefs is None  # the stroke is not finished
    canvas_event(pad, "mouse_up", 140, 240)
    image = drawing.as_image(pad.ink).reshape(28, 28)
    assert image[4:24, 14].all() and image[:, :12].sum() == 0
    np.testing.assert_allclose(pad.beliefs, drawing.reading_beliefs(classifier, pad.ink))
    assert bytes(pad.beliefs_image.value).startswith(b"\x89PNG") and "reads a" in pad.status.value
    pad.complete_button.click()
    assert pad.samples_drawn.shape == (2, 784)
    assert (pad.samples_drawn[:, :12 * 28] == image.reshape(-1)[:12 * 28]).all()
    assert "2 completion(s)" in pad.status.value
    pad.tool.value = "missing"
    pad.stroke([(141, 101), (141, 131)])  # column 14, rows 10..13: 4 pixels
    assert pad.missing.sum() == 4 and pad.missing[10:14, 14].all()
    assert (drawing.as_image(pad.ink).reshape(28, 28) == image).all()  # marking keeps the ink
    pad.inpaint_button.click()
    assert pad.infill.method == "exact" and "16 fillings" in pad.status.value
    pad.stroke([(50, 150), (200, 150)])  # row 15, columns 5..20: now 20 pixels
    pad.inpaint_button.click()
    assert pad.infill.method == "gibbs" and pad.infill.missing == 20
    assert "Gibbs" in pad.status.value
    png = pad.static_png()
    assert png_size(png)[1] > png_size(pad.beliefs_image.value)[1]  # reading + in-painting
    pad.load(3)
    assert np.array_equal(drawing.as_image(pad.ink), images[3].astype(np.float32))
    assert pad.missing.sum() == 0 and pad.beliefs is not None


def test_drawing_pad_bad_input_is_a_message_not_a_traceback(model, classifier, images):
    pad = DrawingPad(classifier, {"not a predictor": classifier}, images=images)
    pad.load(0)
    pad.complete_button.click()
    assert "next-pixel predictor" in pad.status.value and pad.samples_drawn is None
    pad = DrawingPad(classifier, model, images=images)
    pad.complete_button.click()
    assert "canvas is empty" in pad.status.value and pad.samples_drawn is None
    pad.load(0)
    pad.inpaint_button.click()
    assert "mark the missing pixels" in pad.status.value
    pad.missing[:] = True
    pad.inpaint_button.click()
    assert "covers the whole image" in pad.status.value and pad.infill is None
    pad = DrawingPad(model, model)  # a predictor where the classifier goes
    pad.stroke([(100, 100), (100, 200)])
    assert "needs a classifier" in pad.status.value
