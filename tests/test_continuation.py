"""Task 2's continuation experiment: its metrics, its probabilities and its example picks."""

import numpy as np
import pytest
import torch

from seqmnist import masks
from seqmnist.continuation import PICK_RULE, pick_examples, task2_examples, task2_experiment
from seqmnist.errors import ConfigError
from seqmnist.generate import log_prob, one_step_predictions
from seqmnist.masks import MISSING
from seqmnist.models import build_model


@pytest.fixture(scope="module")
def model():
    return build_model("predict", "lstm-1x4", seed=0).double().eval()


@pytest.fixture(scope="module")
def task2(mnist):
    full = masks.task2_set(mnist)
    return masks.InpaintingSet(full.masked[:8], full.truth[:8], full.indices[:8], name="task2")


def test_task2_experiment(task2, model):
    result = task2_experiment(model, task2, horizons=(1, 10, 300), samples=4, seed=3)
    assert result.prefix_length == 484 and result.sample_nll.shape == (8, 4, 3)
    truth = torch.as_tensor(task2.truth, dtype=torch.float64)
    for h_index, horizon in enumerate((1, 10, 300)):
        gt = -log_prob(model, truth[:, :484], truth[:, 484:484 + horizon])
        np.testing.assert_allclose(result.gt_nll[:, h_index], gt.numpy(), rtol=1e-12)
        samples = torch.as_tensor(result.continuations[horizon], dtype=torch.float64)
        nll = -log_prob(model, truth[:, :484], samples)
        np.testing.assert_allclose(result.sample_nll[:, :, h_index], nll.numpy(), rtol=1e-12)
        differ = samples != truth[:, None, 484:484 + horizon]
        np.testing.assert_allclose(result.disagreement[:, :, h_index],
                                   differ.double().mean(-1).numpy())
    draws = result.continuations[300].astype(float)  # pairwise disagreement, brute force
    pairs = [(a, b) for a in range(4) for b in range(a + 1, 4)]
    brute = np.mean([(draws[:, a] != draws[:, b]).mean(-1) for a, b in pairs], axis=0)
    np.testing.assert_allclose(result.pairwise[:, 2], brute)
    assert result.picks == pick_examples(result.ink_distance[:, :, 2], result.pairwise[:, 2],
                                         task2.truth[:, 484:])
    assert len(set(result.picks.values())) == 3 and "MIN_INK" in PICK_RULE
    rows = result.summary()
    assert [r["horizon"] for r in rows] == [1, 10, 300] and "| 300 |" in result.table()
    again = task2_experiment(model, task2, horizons=(1, 10, 300), samples=4, seed=3)
    assert np.array_equal(again.continuations[300], result.continuations[300])
    examples = task2_examples(result, horizons=(10, 300), samples=3)
    success = examples["success"]
    assert success["test_index"] == task2.indices[result.picks["success"]]
    assert success["completions"][10].shape == (3, 784)
    assert np.all(success["completions"][10][:, 494:] == MISSING)
    assert np.array_equal(success["completions"][300][:, 484:],
                          result.continuations[300][result.picks["success"], :3])


def test_pick_rule():
    distance = np.array([[0.5, 0.5], [0.1, 0.2], [0.9, 0.8], [0.1, 0.2], [0.0, 0.0]])
    pairwise = np.array([0.3, 0.1, 0.2, 0.4, 0.9])
    ink = np.zeros((5, 300))
    ink[:4, :25] = 1  # image 4 has too little ink to count as a success or failure
    assert pick_examples(distance, pairwise, ink) == {"success": 1, "failure": 2,
                                                      "high_variance": 4}


def test_task2_errors(task2, model, mnist):
    window = masks.window_set(mnist, count=5, size=2)   # a Task 3 set, not Task 2's
    with pytest.raises(ConfigError, match="horizons"):
        task2_experiment(model, task2, horizons=(301,))
    with pytest.raises(ConfigError, match="same last pixels"):
        task2_experiment(model, window)
    with pytest.raises(ConfigError, match="predictor"):
        task2_experiment(build_model("classify", "gru-1x4", seed=0), task2)


def test_probabilities_are_the_predictions_along_each_sampled_path(task2, model):
    """The stored p(x_t = 1) are the model's one-step predictions of the completed image (true
    prefix, then the sample), and the sample NLL is their cross-entropy with the sample."""
    result = task2_experiment(model, task2, horizons=(10, 300), samples=2, seed=1)
    k = result.prefix_length
    for h_index, horizon in enumerate((10, 300)):
        pixels, probs = result.continuations[horizon], result.probabilities[horizon]
        assert probs.shape == pixels.shape == (8, 2, horizon) and probs.dtype == np.float32
        images = np.repeat(task2.truth[:, None], 2, axis=1).copy()
        images[:, :, k:k + horizon] = pixels
        expected = one_step_predictions(model, images.reshape(-1, 784)).numpy().reshape(8, 2, 784)
        np.testing.assert_allclose(probs, expected[:, :, k:k + horizon], atol=1e-6)
        p = probs.astype(np.float64)
        nll = -(pixels * np.log(p) + (1 - pixels) * np.log1p(-p)).sum(-1)
        np.testing.assert_allclose(result.sample_nll[:, :, h_index], nll, rtol=1e-5)
