"""The notebooks' explorers run without a kernel: set a control, click a button, see the change."""

import numpy as np
import pytest

from seqmnist.errors import ConfigError
from seqmnist.models import build_model
from seqmnist.widgets import InpaintingExplorer, PredictionExplorer, figure_png


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
