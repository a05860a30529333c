"""Uncertainty maps against direct computations with a real predictor on real in-painting sets."""

import matplotlib
import numpy as np
import pytest

from seqmnist import masks, uncertainty
from seqmnist.continuation import task2_examples, task2_experiment
from seqmnist.errors import ConfigError
from seqmnist.generate import image_nll, one_step_predictions
from seqmnist.inpaint import exact_posterior
from seqmnist.masks import MISSING
from seqmnist.results import weights_file
from seqmnist.weights import load_weights


@pytest.fixture(scope="module")
def model():
    net, _ = load_weights(weights_file("predict", "lstm-1x32"), task="predict")
    return net.double().eval()


@pytest.fixture(scope="module")
def sets(mnist):
    return masks.load_sets(mnist)


def subset(full, count):
    return masks.InpaintingSet(full.masked[:count], full.truth[:count], full.indices[:count],
                               name=full.name)


def bits(p):
    """Binary entropy written out, in bits (0 log 0 = 0)."""
    p = np.asarray(p, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = [np.where(q > 0, -q * np.log2(q), 0.0) for q in (p, 1 - p)]
    return terms[0] + terms[1]


def enumerated_posterior(model, row, truth):
    """p(filling | known pixels) of every filling by scoring each filled image in full."""
    where = np.flatnonzero(row == MISSING)
    images = np.repeat(truth[None], 2 ** len(where), axis=0)
    for filling in range(len(images)):
        images[filling, where] = (filling >> np.arange(len(where))) & 1
    scores = -image_nll(model, images).numpy()
    weights = np.exp(scores - scores.max())
    return weights / weights.sum()


def test_entropy_maps_on_the_one_pixel_set_equal_enumerated_fillings(model, sets):
    ones = subset(sets["1x1"], 6)
    post = exact_posterior(model, ones)
    maps = uncertainty.marginal_entropy_images(post)
    for i in range(len(ones)):
        p = enumerated_posterior(model, ones.masked[i], ones.truth[i])
        (m,) = np.flatnonzero(ones.missing[i])
        assert maps[i, m] == pytest.approx(bits(p[1]), abs=1e-6)  # float32 maps
        assert np.isnan(np.delete(maps[i], m)).all()
        assert uncertainty.marginal_entropy(post)[i, 0] == pytest.approx(bits(p[1]), abs=1e-9)
        assert uncertainty.posterior_entropy(post)[i] == pytest.approx(bits(p[1]), abs=1e-9)


def test_posterior_entropy_and_top_fillings_on_the_window_set(model, sets):
    windows = subset(sets["2x2"], 4)
    post = exact_posterior(model, windows)
    fillings, probs = uncertainty.top_fillings(post, 3)
    marginal = uncertainty.marginal_entropy(post)
    for i in range(len(windows)):
        p = enumerated_posterior(model, windows.masked[i], windows.truth[i])
        entropy = -(p[p > 0] * np.log2(p[p > 0])).sum()
        assert uncertainty.posterior_entropy(post)[i] == pytest.approx(entropy, abs=1e-8)
        # the joint entropy is at most the sum of the marginal ones
        assert entropy <= marginal[i].sum() + 1e-9
        order = np.argsort(-p, kind="stable")[:3]
        np.testing.assert_array_equal(fillings[i], order)
        np.testing.assert_allclose(probs[i], p[order], atol=1e-9)
        assert np.all(np.diff(probs[i]) <= 0)
        truth_filling = int((windows.truth[i, windows.missing[i]] * 2 ** np.arange(4)).sum())
        assert uncertainty.truth_rank(post)[i] == 1 + (p > p[truth_filling]).sum()
    # an image with fewer fillings than asked for: the extra ranks are -1 with probability 0
    one = exact_posterior(model, subset(sets["1x1"], 2))
    fillings, probs = uncertainty.top_fillings(one, 2)
    assert fillings.shape == (2, 2) and np.allclose(probs.sum(1), 1)


def test_error_by_entropy_bins_against_a_direct_count(model, sets):
    windows = subset(sets["2x2"], 40)
    post = exact_posterior(model, windows)
    entropy = uncertainty.posterior_entropy(post)
    wrong = post.map_filling != post.truth_filling
    rows = uncertainty.error_vs_entropy(post)
    edges = uncertainty.ENTROPY_EDGES
    expected_rows = []
    for b, (low, high) in enumerate(zip(edges[:-1], edges[1:])):
        last = b == len(edges) - 2
        inside = (entropy >= low) & ((entropy <= high) if last else (entropy < high))
        if inside.any():
            expected_rows.append((low, inside.sum(), wrong[inside].mean(),
                                  (1 - post.map_probability[inside]).mean()))
    assert [(r["low"], r["count"]) for r in rows] == [(e[0], e[1]) for e in expected_rows]
    np.testing.assert_allclose([r["error_rate"] for r in rows], [e[2] for e in expected_rows])
    np.testing.assert_allclose([r["expected_error"] for r in rows], [e[3] for e in expected_rows])
    assert sum(r["count"] for r in rows) == 40
    pairs = [(a, b) for a in entropy[wrong] for b in entropy[~wrong]]
    direct = np.mean([1.0 if a > b else 0.5 if a == b else 0.0 for a, b in pairs])
    assert uncertainty.separation(entropy, wrong) == pytest.approx(direct)
    table = uncertainty.error_entropy_table({"2x2": rows})
    assert table.count("\n| 2x2 |") == len(rows)
    with pytest.raises(ConfigError, match="outside the bins"):
        uncertainty.error_by_entropy([5.0], [True])


def test_continuation_entropy_map_from_the_sampled_paths(model, sets):
    task2 = subset(sets["task2"], 6)
    result = task2_experiment(model, task2, horizons=(10, 300), samples=3, seed=2)
    k = result.prefix_length
    for horizon in (10, 300):
        images = np.repeat(task2.truth[:, None], 3, axis=1).copy()
        images[:, :, k:k + horizon] = result.continuations[horizon]
        probs = one_step_predictions(model, images.reshape(-1, 784)).numpy().reshape(6, 3, 784)
        direct = bits(probs[:, :, k:k + horizon]).mean(axis=1)
        got = uncertainty.continuation_entropy(result, horizon)
        np.testing.assert_allclose(got[:, k:k + horizon], direct, atol=1e-5)
        assert np.isnan(got[:, :k]).all() and np.isnan(got[:, k + horizon:]).all()
        own = uncertainty.sample_entropy(result, horizon, 4)
        np.testing.assert_allclose(own[:, k:k + horizon], bits(probs[4, :, k:k + horizon]),
                                   atol=1e-5)
    summary = uncertainty.continuation_summary(result, 300)
    np.testing.assert_allclose(summary["image_entropy"],
                               np.nanmean(uncertainty.continuation_entropy(result, 300), axis=1))
    with pytest.raises(ConfigError, match="horizon 28"):
        uncertainty.continuation_entropy(result, 28)
    examples = task2_examples(result, horizons=(300,), samples=2)
    fig = uncertainty.continuation_figure(result, examples, samples=2)
    assert len(fig.axes) == 2 * len(examples) * 4  # truth, 2 samples, mean; two rows each


def test_entropy_colours_and_zoom():
    known = np.zeros(784, np.float32)
    known[:28] = 1
    known[700:] = MISSING
    entropy = np.full(784, np.nan)
    entropy[700:750] = 0.25
    rgb = uncertainty.entropy_rgb(entropy, known)[0].reshape(784, 3)
    colour = matplotlib.colormaps[uncertainty.ENTROPY_CMAP](0.25)[:3]
    np.testing.assert_allclose(rgb[700:750], np.repeat([colour], 50, 0), atol=1e-6)
    np.testing.assert_allclose(rgb[750:], np.repeat([[1.0, 0, 0]], 34, 0))  # not mapped: red
    np.testing.assert_allclose(rgb[:28], 0.8)  # ink, dimmed
    np.testing.assert_allclose(rgb[28:700], 0.2)
    image = np.arange(784 * 3, dtype=float).reshape(1, 28, 28, 3)
    zoomed = uncertainty.zoom(image, [0], size=14)  # a corner: the crop stays inside
    np.testing.assert_array_equal(zoomed[0, ::2, ::2], image[0, :14, :14])
    zoomed = uncertainty.zoom(image, [15 * 28 + 20], size=14)
    np.testing.assert_array_equal(zoomed[0, 1::2, 1::2], image[0, 8:22, 13:27])
    with pytest.raises(ConfigError, match="divide"):
        uncertainty.zoom(image, [0], size=5)
