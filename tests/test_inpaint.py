"""Exact posteriors agree with brute force; Gibbs uses the exact conditionals."""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from seqmnist import masks
from seqmnist.errors import ConfigError
from seqmnist.generate import image_nll, log_prob
from seqmnist.gibbs import compare_gibbs_to_exact, gibbs_inpaint
from seqmnist.inpaint import MISSING, exact_posterior, past_only_cross_entropy
from seqmnist.models import build_model


@pytest.fixture(scope="module")
def model():
    return build_model("predict", "lstm-1x4", seed=0).double().eval()


@pytest.fixture(scope="module")
def window(mnist):
    full = masks.window_set(mnist, count=40, size=2)
    return masks.InpaintingSet(full.masked[:5], full.truth[:5], full.indices[:5], name="2x2")


@torch.no_grad()
def image_nlls(model, images: np.ndarray) -> np.ndarray:
    """NLL of pixels 1..783 of each image by plain full forward passes (batched)."""
    x = torch.as_tensor(np.asarray(images).reshape(-1, 784), dtype=torch.float64).t()
    logits, _ = model(x.unsqueeze(-1))
    return F.binary_cross_entropy_with_logits(logits[:-1], x[1:], reduction="none").sum(0).numpy()


def brute_force(model, masked: np.ndarray, truth: np.ndarray):
    """Log posterior and image NLLs over all fillings: 2^|M| full forward passes per image."""
    out = []
    for row, true in zip(masked, truth):
        where = np.flatnonzero(row == MISSING)
        images = np.repeat(true[None], 2 ** len(where), axis=0)
        for filling in range(2 ** len(where)):
            images[filling, where] = (filling >> np.arange(len(where))) & 1
        nlls = image_nlls(model, images)
        scores = -nlls - (-nlls).max()
        out.append((scores - np.log(np.exp(scores).sum()), nlls))
    return out


@pytest.mark.parametrize("arch", ["lstm-1x4", "lstm-3x4", "gru-3x4"])  # own / shared branch point
def test_exact_posterior_equals_brute_force(window, arch):
    model = build_model("predict", arch, seed=2).double()
    post = exact_posterior(model, window, batch_sequences=40)  # 2 images per chunk
    assert post.log_posterior.shape == (5, 16)
    for i, (log_post, nlls) in enumerate(brute_force(model, window.masked, window.truth)):
        np.testing.assert_allclose(post.log_posterior[i], log_post, atol=1e-10)
        np.testing.assert_allclose(post.image_nll(np.full(5, 0))[i], nlls[0], rtol=1e-12)
        np.testing.assert_allclose(post.prefix_nll[i] + post.suffix_nll[i], nlls, rtol=1e-12)
    np.testing.assert_allclose(post.posterior.sum(1), 1, atol=1e-12)


def test_uneven_masks_pixel_zero_and_last_pixel(mnist, model):
    """Different |M| per image, pixel 0 missing (uniform prior) and pixel 783 missing."""
    truth = mnist.test.x[:4].astype(np.float32)
    masked = truth.copy()
    masked[0, [0, 1, 300]] = MISSING
    masked[1, [783]] = MISSING
    masked[2, [200, 201, 228, 229, 783]] = MISSING
    masked[3, [0]] = MISSING
    post = exact_posterior(model, masked, truth, batch_sequences=8)
    assert post.log_posterior.shape == (4, 32) and list(post.counts) == [3, 1, 5, 1]
    assert np.all(post.log_posterior[1, 2:] == -np.inf) and np.isnan(post.marginals[1, 1:]).all()
    for i, (log_post, nlls) in enumerate(brute_force(model, masked, truth)):
        size = 2 ** post.counts[i]
        np.testing.assert_allclose(post.log_posterior[i, :size], log_post, atol=1e-10)
        np.testing.assert_allclose(post.image_nll(np.zeros(4, int))[i], nlls[0], rtol=1e-12)
    np.testing.assert_allclose(post.posterior[3, :2].sum(), 1, atol=1e-12)
    assert np.array_equal(post.fill(post.truth_filling), truth)


@pytest.mark.parametrize("batch_sequences", [256, 512])  # one image per chunk, or both
def test_branching_fillings_over_scattered_pixels(mnist, batch_sequences):
    """Eight missing pixels far apart: fillings branch off each other at every one of them."""
    model = build_model("predict", "lstm-3x4", seed=5).double()
    truth = mnist.test.x[10:12].astype(np.float32)
    masked = truth.copy()
    masked[0, [150, 151, 260, 300, 301, 420, 600, 783]] = MISSING
    masked[1, [0, 90, 91, 92, 500, 501, 640, 700]] = MISSING
    post = exact_posterior(model, masked, truth, batch_sequences=batch_sequences)
    for i, (log_post, nlls) in enumerate(brute_force(model, masked, truth)):
        np.testing.assert_allclose(post.log_posterior[i], log_post, atol=1e-10)
        np.testing.assert_allclose(post.prefix_nll[i] + post.suffix_nll[i], nlls, rtol=1e-12)


def test_posterior_metrics(window, model):
    post = exact_posterior(model, window)
    bits = post.truth_bits
    expected_ce = [float(F.binary_cross_entropy(torch.as_tensor(post.marginals[i]),
                                                torch.as_tensor(bits[i], dtype=torch.float64)))
                   for i in range(5)]
    np.testing.assert_allclose(post.marginal_ce, expected_ce, rtol=1e-12)
    map_bits = post.bits(post.map_filling)
    np.testing.assert_allclose(post.map_error, (map_bits != bits).mean(1))
    np.testing.assert_allclose(post.truth_probability,
                               post.posterior[np.arange(5), post.truth_filling])
    np.testing.assert_allclose(post.truth_nll, image_nlls(model, window.truth), rtol=1e-12)
    np.testing.assert_allclose(post.map_nll, image_nlls(model, post.map_images), rtol=1e-12)
    assert np.all(post.map_nll <= post.truth_nll + 1e-9)  # the MAP filling is the likeliest image
    summary = post.summary()
    assert summary["images"] == 5 and 0 <= summary["map_error"] <= 1
    # batching does not change anything
    other = exact_posterior(model, window, batch_sequences=16, time_chunk=7)
    np.testing.assert_allclose(other.log_posterior, post.log_posterior, atol=1e-12)


def test_posterior_errors(window, model):
    with pytest.raises(ConfigError, match="at most 12"):
        masked = window.truth[:1].copy()
        masked[0, 100:113] = MISSING
        exact_posterior(model, masked, window.truth[:1])
    with pytest.raises(ConfigError, match="no missing pixel"):
        exact_posterior(model, window.truth[:2])
    with pytest.raises(ConfigError, match="predictor"):
        exact_posterior(build_model("classify", "lstm-1x4", seed=0), window)
    with pytest.raises(ConfigError, match="only 0, 1 and -1"):
        exact_posterior(model, np.full((1, 784), 0.5))


def test_gibbs_uses_exact_conditionals(window, model):
    post = exact_posterior(model, window)
    masked = window.truth.copy()
    masked[np.arange(5), post.positions[:, 2]] = MISSING
    one = masks.InpaintingSet(masked, window.truth, name="one")
    single = gibbs_inpaint(model, one, sweeps=2, burn_in=0,
                           generator=torch.Generator().manual_seed(0))
    exact_single = exact_posterior(model, one)
    np.testing.assert_allclose(single.conditionals[:, :, 0],
                               exact_single.posterior[:, 1:2].repeat(2, 1), atol=1e-10)
    # four missing pixels: every recorded conditional is the exact posterior ratio given the
    # other pixels' current values (earlier pixels from this sweep, later ones from the last)
    gibbs = gibbs_inpaint(model, window, sweeps=4, burn_in=0,
                          generator=torch.Generator().manual_seed(1), batch_sequences=4)
    for i in range(5):
        for sweep in range(1, 4):
            for j in range(4):
                current = np.concatenate([gibbs.samples[i, sweep, :j],
                                          gibbs.samples[i, sweep - 1, j:]]).astype(int)
                with_one, with_zero = current.copy(), current.copy()
                with_one[j], with_zero[j] = 1, 0
                index = lambda b: int((b << np.arange(4)).sum())  # noqa: E731
                p1 = post.posterior[i, index(with_one)]
                p0 = post.posterior[i, index(with_zero)]
                assert abs(gibbs.conditionals[i, sweep, j] - p1 / (p0 + p1)) < 1e-9


def test_gibbs_against_exact(window, model):
    report = compare_gibbs_to_exact(model, window, sweeps=30, burn_in=5, seed=0)
    assert report["marginal_abs_error"] < 0.02
    assert 0 <= report["total_variation"] <= 1 and 0 <= report["mode_equals_map"] <= 1
    assert abs(report["gibbs"]["marginal_ce"] - report["exact"]["marginal_ce"]) < 0.02
    with pytest.raises(ConfigError, match="burn_in"):
        gibbs_inpaint(model, window, sweeps=3, burn_in=3)


def test_image_nll_equals_plain_forward_and_log_prob(model, window):
    got = image_nll(model, window.truth).numpy()
    np.testing.assert_allclose(got, image_nlls(model, window.truth), rtol=1e-12)
    truth = torch.as_tensor(window.truth, dtype=torch.float64)
    np.testing.assert_allclose(got, -log_prob(model, truth[:, :1], truth[:, 1:]).numpy(), rtol=1e-12)


def test_marginal_and_filled_images_put_values_at_the_missing_pixels(model, window):
    post = exact_posterior(model, window)
    missing = window.missing
    marg = post.marginal_images
    assert np.all(marg[~missing] == 0)
    np.testing.assert_allclose(np.sort(marg[missing]), np.sort(post.marginals[post.positions >= 0]),
                               rtol=1e-6)
    filled = post.map_images
    np.testing.assert_array_equal(filled[~missing], window.truth[~missing])
    assert set(np.unique(filled[missing])) <= {0.0, 1.0}
    gibbs = gibbs_inpaint(model, window, sweeps=4, burn_in=1,
                          generator=torch.Generator().manual_seed(0))
    np.testing.assert_array_equal(gibbs.mode_images[~missing], window.truth[~missing])
    assert np.all(gibbs.marginal_images[~missing] == 0)


def test_past_only_cross_entropy_is_the_one_step_loss_of_the_missing_pixels(model, mnist):
    full = masks.window_set(mnist, count=10, size=1)
    ones = masks.InpaintingSet(full.masked[:4], full.truth[:4], name="1x1")
    truth = torch.as_tensor(ones.truth, dtype=torch.float64)
    where = ones.missing.argmax(axis=1)
    expected = [-float(log_prob(model, truth[i:i + 1, :m], truth[i:i + 1, m:m + 1]))
                for i, m in enumerate(where)]
    assert past_only_cross_entropy(model, ones) == pytest.approx(np.mean(expected), rel=1e-10)


@pytest.mark.parametrize("arch", ["lstm-1x8", "lstm-3x4"])
def test_shrinking_prefix_pass_equals_one_prefix_pass_per_image(mnist, arch):
    """All images' prefixes in shrinking batches (several blocks, a start at 0 and repeated
    starts) give each image the state, first logit and prefix NLL of its own pass."""
    from seqmnist.branching import prefix_pass, shrinking_prefix_pass

    net = build_model("predict", arch, seed=3).double().eval()
    x = torch.as_tensor(mnist.test.x[:7], dtype=torch.float64)
    starts = torch.tensor([300, 0, 412, 300, 1, 650, 2])
    (h, c), logit, nll = shrinking_prefix_pass(net, x, starts, block=3)
    for i in range(len(x)):
        (h1, c1), logit1, nll1 = prefix_pass(net, x[i:i + 1], starts[i:i + 1], time_chunk=64)
        assert torch.allclose(h[:, i], h1[:, 0], atol=1e-12)
        assert torch.allclose(c[:, i], c1[:, 0], atol=1e-12)
        assert torch.allclose(logit[i], logit1[0], atol=1e-12)
        assert torch.allclose(nll[i], nll1[0], atol=1e-10)
