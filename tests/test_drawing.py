"""Draw your own digit: the logic behind the drawing widget, on real test digits."""

import numpy as np
import pytest
import torch

from seqmnist import drawing
from seqmnist.errors import ConfigError
from seqmnist.gibbs import gibbs_inpaint
from seqmnist.inpaint import exact_posterior
from seqmnist.models import build_model


@pytest.fixture(scope="module")
def classifier():
    return build_model("classify", "lstm-1x8", seed=0).eval()


@pytest.fixture(scope="module")
def predictor():
    return build_model("predict", "gru-1x8", seed=0).eval()


@pytest.fixture(scope="module")
def digit(mnist):
    return mnist.test.x[0].reshape(28, 28).astype(np.float32)


def test_a_drawing_is_binarized_as_the_data_are():
    ink = drawing.blank()
    ink[3, 4], ink[3, 5], ink[3, 6] = 0.1, 0.11, 1.0
    image = drawing.as_image(ink).reshape(28, 28)
    assert image[3, 4] == 0 and image[3, 5] == 1 and image[3, 6] == 1 and image.sum() == 2
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        drawing.as_image(np.full((28, 28), 2.0))


def test_a_stroke_is_continuous_soft_edged_and_erasable():
    ink = drawing.stroke(drawing.blank(), [(2.5, 2.5), (2.5, 25.5)])  # two far-apart events
    assert (ink[2:26, 2] == 1).all()  # no gaps between the events
    assert 0 < ink[10, 3] < 1 and ink[10, 5] == 0  # a soft edge, then nothing
    drawing.stroke(ink, [(2.5, 10.5), (2.5, 12.5)], erase=True)
    assert (ink[10:13, 2] == 0).all() and ink[20, 2] == 1


def test_pixels_on_marks_the_cells_a_path_crosses():
    mask = drawing.pixels_on([(0.2, 0.2), (3.9, 0.2)])
    assert mask[0, :4].all() and mask.sum() == 4
    assert drawing.pixels_on([(40, 40)]).sum() == 0  # off the canvas


def test_reading_beliefs_are_the_head_at_each_row_end(classifier, digit):
    beliefs = drawing.reading_beliefs(classifier, digit)
    x = torch.as_tensor(digit.reshape(784, 1, 1))
    with torch.no_grad():  # the whole classifier on each prefix of 28 k pixels
        direct = torch.stack([torch.softmax(classifier(x[:28 * k]), -1)[0]
                              for k in range(1, 29)]).numpy()
    assert beliefs.shape == (28, 10)
    np.testing.assert_allclose(beliefs, direct, atol=1e-5)
    np.testing.assert_allclose(beliefs.sum(1), 1, atol=1e-9)


def test_the_reading_needs_a_recurrent_classifier(predictor, digit):
    with pytest.raises(ConfigError, match="classifier"):
        drawing.reading_beliefs(predictor, digit)
    with pytest.raises(ConfigError, match="whole image"):
        drawing.reading_beliefs(build_model("classify", "mlp", seed=0), digit)


def test_complete_keeps_the_rows_above_the_line(predictor, digit):
    samples = drawing.complete_below(predictor, digit, 10, samples=3,
                                     generator=torch.Generator().manual_seed(1))
    image = drawing.as_image(digit)
    assert samples.shape == (3, 784)
    assert (samples[:, :280] == image[:280]).all()
    assert set(np.unique(samples[:, 280:])) <= {0.0, 1.0}
    again = drawing.complete_below(predictor, digit, 10, samples=3,
                                   generator=torch.Generator().manual_seed(1))
    assert np.array_equal(samples, again)


def test_inpainting_up_to_12_pixels_is_the_exact_posterior(predictor, digit):
    region = drawing.region_mask(*drawing.inkiest_window(digit, 3))
    infill = drawing.inpaint_region(predictor, digit, region)
    masked = np.where(region, -1.0, drawing.as_image(digit)).astype(np.float32)
    post = exact_posterior(predictor, masked[None])
    assert infill.method == "exact" and infill.missing == 9
    assert np.array_equal(infill.filled, post.map_images[0])
    np.testing.assert_allclose(infill.marginals, post.marginal_images[0])
    assert infill.probability == pytest.approx(float(post.map_probability[0]))
    assert (infill.filled[~region] == drawing.as_image(digit)[~region]).all()


def test_larger_regions_are_sampled_by_gibbs(predictor, digit):
    region = drawing.region_mask(*drawing.inkiest_window(digit, 4))
    infill = drawing.inpaint_region(predictor, digit, region, sweeps=3,
                                    generator=torch.Generator().manual_seed(2))
    masked = np.where(region, -1.0, drawing.as_image(digit)).astype(np.float32)
    gibbs = gibbs_inpaint(predictor, masked[None], sweeps=3, burn_in=1,
                          generator=torch.Generator().manual_seed(2))
    assert infill.method == "gibbs" and infill.missing == 16 and infill.probability is None
    assert np.array_equal(infill.filled, gibbs.mode_images[0])
    assert set(np.unique(infill.filled[region])) <= {0.0, 1.0}
    assert ((infill.marginals[region] >= 0) & (infill.marginals[region] <= 1)).all()


@pytest.mark.parametrize("case, message", [
    ("empty", "canvas is empty"), ("whole", "whole image"), ("none", "mark the missing"),
    ("large", "too large"), ("classifier", "next-pixel predictor")])
def test_bad_input_gives_one_line(case, message, predictor, classifier, digit):
    image, region, model = digit, np.zeros(784, bool), predictor
    region[300:305] = True
    if case == "empty":
        image = drawing.blank()
    elif case == "whole":
        region[:] = True
    elif case == "none":
        region[:] = False
    elif case == "large":
        region[:drawing.MAX_REGION + 1] = True
    else:
        model = classifier
    with pytest.raises(ConfigError, match=message):
        drawing.inpaint_region(model, image, region)
    if case in ("empty", "classifier"):
        with pytest.raises(ConfigError, match=message):
            drawing.complete_below(model, image, 14)


def test_example_figure_is_made_by_the_same_functions(classifier, predictor, digit):
    fig, parts = drawing.example_figure(classifier, predictor, digit, rows=12, samples=2,
                                        sweeps=2)
    np.testing.assert_allclose(parts["beliefs"], drawing.reading_beliefs(classifier, digit))
    assert parts["samples"].shape == (2, 784) and parts["exact"].method == "exact"
    assert parts["gibbs"].method == "gibbs" and parts["gibbs"].missing == 16
    assert len(fig.axes) == 2 + 3 + 3 + 3


def test_the_settled_row_is_where_the_answer_stops_changing():
    from seqmnist.drawing import settled_row

    beliefs = np.zeros((28, 10))
    beliefs[:, 7] = 1.0
    assert settled_row(beliefs) == 0          # the same answer from the first row
    beliefs[5, 3] = 2.0                        # row 5 says 3, every later row 7
    assert settled_row(beliefs) == 6
    beliefs[27, 1] = 3.0                       # the answer changes at the last row
    assert settled_row(beliefs) == 27
