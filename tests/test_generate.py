"""Generation with carried state equals the full-sequence model, step for step."""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from seqmnist.errors import ConfigError
from seqmnist.generate import (Stepper, binary_cross_entropy, complete, continuation_grid,
                               continue_sequences, fill_out, log_prob, one_step_predictions,
                               scan)
from seqmnist.models import build_model


@pytest.fixture(scope="module")
def images(mnist):
    pixels, _ = mnist.test.tensors()
    return pixels[:6].double()


@pytest.fixture(scope="module")
def lstm():
    return build_model("predict", "lstm-1x4", seed=0).double().eval()


def full_probs(model, sequences):
    """p(x_t = 1 | x_<t) for t = 1..T-1 by one plain forward pass: (B, T-1)."""
    logits, _ = model(sequences.t().unsqueeze(-1))
    return torch.sigmoid(logits[:-1]).t()


@pytest.mark.parametrize("arch", ["lstm-1x4", "gru-3x4"])
def test_greedy_continuation_is_argmax_of_full_forward(images, arch):
    model = build_model("predict", arch, seed=1).double()
    k, n = 400, 60
    cont = continue_sequences(model, images[:, :k], n, samples=2, mode="greedy")
    assert cont.pixels.shape == cont.probs.shape == (6, 2, n)
    generated = torch.cat([images[:, :k], cont.pixels[:, 0]], dim=1)
    probs = full_probs(model, generated)[:, k - 1:k - 1 + n]
    torch.testing.assert_close(cont.probs[:, 0], probs, rtol=0, atol=1e-12)
    assert torch.equal(cont.pixels[:, 0], (probs > 0.5).double())
    assert torch.equal(cont.pixels[:, 0], cont.pixels[:, 1])


def test_sampled_continuation_matches_full_forward(images, lstm):
    cont = continue_sequences(lstm, images[:, :300], 40, samples=3,
                              generator=torch.Generator().manual_seed(0))
    for s in range(3):
        generated = torch.cat([images[:, :300], cont.pixels[:, s]], dim=1)
        torch.testing.assert_close(cont.probs[:, s], full_probs(lstm, generated)[:, 299:339],
                                   rtol=0, atol=1e-12)
    assert not torch.equal(cont.pixels[:, 0], cont.pixels[:, 1])  # independent samples


def test_stepper_matches_model(images):
    for arch in ["lstm-3x4", "gru-1x4"]:
        model = build_model("predict", arch, seed=3).double().eval()
        step = Stepper(model)
        _, state = model(images[:, :100].t().unsqueeze(-1))
        logit, _ = step(images[:, 100], state)
        reference, _ = model(images[:, 100:101].t().unsqueeze(-1), state)
        torch.testing.assert_close(logit, reference[0], rtol=0, atol=1e-13)


@pytest.mark.parametrize("arch", ["lstm-1x4", "lstm-3x4", "gru-2x4"])
def test_stepper_run_matches_model_over_many_steps(images, arch):
    model = build_model("predict", arch, seed=4).double().eval()
    _, state = model(images[:, :100].t().unsqueeze(-1))
    chunk = images[:, 100:400].t()
    logits, final = Stepper(model).run(chunk, state)
    reference, reference_final = model(chunk.unsqueeze(-1), state)
    torch.testing.assert_close(logits, reference, rtol=0, atol=1e-12)
    pairs = zip(final, reference_final) if arch.startswith("lstm") else [(final, reference_final)]
    for ours, theirs in pairs:  # (h, c) of an LSTM, h of a GRU
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)
    assert Stepper(model).written_out == arch.startswith("lstm")


def test_seeded_sampling_is_reproducible(images, lstm):
    draw = lambda seed: continue_sequences(lstm, images[:, :200], 30, samples=2,  # noqa: E731
                                           generator=torch.Generator().manual_seed(seed)).pixels
    assert torch.equal(draw(5), draw(5))
    assert not torch.equal(draw(5), draw(6))


def test_sample_frequencies_match_probabilities(images, lstm):
    """Two-step samples: the four outcomes' counts against p(x_k) p(x_k+1 | x_k) (chi-square)."""
    k, samples = 350, 4000
    cont = continue_sequences(lstm, images[:2, :k], 2, samples=samples,
                              generator=torch.Generator().manual_seed(1))
    outcomes = torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=torch.float64)
    for i in range(2):
        expected = torch.exp(log_prob(lstm, images[i:i + 1, :k].expand(4, -1), outcomes))
        assert abs(float(expected.sum()) - 1) < 1e-12
        codes = (cont.pixels[i, :, 0] * 2 + cont.pixels[i, :, 1]).long()
        observed = torch.bincount(codes, minlength=4).double()
        chi2 = float(((observed - samples * expected) ** 2 / (samples * expected)).sum())
        assert chi2 < 16.3  # 3 degrees of freedom: p = 0.001


def test_log_prob_is_one_forward_pass(images, lstm):
    k, n = 500, 84
    expected = -F.binary_cross_entropy_with_logits(
        lstm(images.t().unsqueeze(-1))[0][k - 1:k - 1 + n], images[:, k:k + n].t(),
        reduction="none").sum(0)
    torch.testing.assert_close(log_prob(lstm, images[:, :k], images[:, k:k + n]), expected)
    cont = continue_sequences(lstm, images[:, :k], n, samples=3,
                              generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(log_prob(lstm, images[:, :k], cont.pixels), -cont.nll())
    torch.testing.assert_close(log_prob(lstm, images[:, :k], cont.pixels[:, 1]), -cont.nll()[:, 1])


def test_one_step_predictions(images, lstm):
    probs = one_step_predictions(lstm, images, batch_size=4)
    assert probs.shape == (6, 784) and torch.all(probs[:, 0] == 0.5)
    torch.testing.assert_close(probs[:, 1:], full_probs(lstm, images))


def test_scan_snapshots_equal_separate_runs(images, lstm):
    snap_at = torch.tensor([0, 5, 64, 65, 200, 783])
    result = scan(lstm, images[:, :783].t(), snap_at=snap_at, time_chunk=50)
    full, _ = lstm(images[:, :783].t().unsqueeze(-1))
    torch.testing.assert_close(result.logits, full, rtol=0, atol=1e-12)
    for b, t in enumerate(snap_at.tolist()):
        if t == 0:
            expected = lstm.core.initial_state(1, dtype=torch.float64)
        else:
            _, expected = lstm(images[b:b + 1, :t].t().unsqueeze(-1))
        for got, want in zip(result.snapshots, expected):
            torch.testing.assert_close(got[:, b:b + 1], want, rtol=0, atol=1e-12)


def test_completions_and_grids(images, lstm):
    masked = images.clone()
    masked[:, 484:] = -1
    done = complete(lstm, masked, 484, 28, samples=2, generator=torch.Generator().manual_seed(0))
    assert done.images.shape == (6, 2, 784)
    assert torch.equal(done.images[:, :, :484], images[:, None, :484].expand(-1, 2, -1))
    assert torch.all(done.images[:, :, 512:] == -1)
    assert torch.isnan(done.probs[:, :, :484]).all()
    assert not torch.isnan(done.probs[:, :, 484:512]).any()
    grid = continuation_grid(lstm, images[:2], 392, horizons=(10, 28, None), mode="greedy")
    assert sorted(grid) == [10, 28, 392]
    assert torch.equal(grid[28].images[:, :, 392:402], grid[10].images[:, :, 392:402])  # greedy
    whole = fill_out(lstm, images[:2], 100)
    assert whole.n_steps == 684 and set(whole.images.unique().tolist()) <= {0.0, 1.0}


def test_binary_cross_entropy_matches_torch():
    probs = torch.tensor([0.0, 1e-30, 0.2, 0.5, 0.9, 1.0, 1.0, 0.0], dtype=torch.float64)
    targets = torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(binary_cross_entropy(probs, targets),
                               F.binary_cross_entropy(probs, targets, reduction="none"))


def test_bad_input(images, lstm):
    classifier = build_model("classify", "lstm-1x4", seed=0).double()
    with pytest.raises(ConfigError, match="predictor"):
        continue_sequences(classifier, images[:, :10], 5)
    with pytest.raises(ConfigError, match="predictor"):
        one_step_predictions(classifier, images)
    with pytest.raises(ConfigError, match="at least 1 pixel"):
        continue_sequences(lstm, images[:, :0], 5)
    with pytest.raises(ConfigError, match="nothing to predict"):
        continue_sequences(lstm, images, 1)
    with pytest.raises(ConfigError, match="overruns"):
        continue_sequences(lstm, images[:, :700], 85)
    with pytest.raises(ConfigError, match="overruns"):
        log_prob(lstm, images[:, :700], torch.zeros(6, 85, dtype=torch.float64))
    with pytest.raises(ConfigError, match="at least 1"):
        continue_sequences(lstm, images[:, :700], 0)
    with pytest.raises(ConfigError, match="mode"):
        continue_sequences(lstm, images[:, :700], 3, mode="beam")
    with pytest.raises(ConfigError, match="only 0 and 1"):
        continue_sequences(lstm, np.full((2, 10), 0.5), 3)
    with pytest.raises(ConfigError, match="temperature"):
        continue_sequences(lstm, images[:, :10], 3, temperature=0)
