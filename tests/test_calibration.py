"""Calibration: the expected calibration error against direct calculations, temperature scaling
on miscalibrated and on real logits, and a shipped predictor's p(next pixel = 1)."""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from seqmnist import calibration
from seqmnist.weights import load_weights


def naive_ece(probability, outcome, bins=15):
    """The definition, one bin at a time: (k/B, (k+1)/B], 0 counted in the first bin."""
    total = 0.0
    for k in range(bins):
        low, high = k / bins, (k + 1) / bins
        inside = [(p, o) for p, o in zip(probability, outcome)
                  if low < p <= high or (k == 0 and p == 0)]
        if inside:
            mean = sum(p for p, _ in inside) / len(inside)
            frequency = sum(o for _, o in inside) / len(inside)
            total += len(inside) / len(probability) * abs(mean - frequency)
    return total


def test_ece_of_a_hand_computed_case():
    # bins of 0.25: (0, .25] holds .1, .2 (mean .15, none happen), (.5, .75] holds .6, .7
    # (mean .65, half happen), (.75, 1] holds .9, .95 (mean .925, both happen)
    probability = [0.1, 0.2, 0.6, 0.7, 0.9, 0.95]
    outcome = [0, 0, 1, 0, 1, 1]
    expected = (2 * 0.15 + 2 * 0.15 + 2 * 0.075) / 6
    assert calibration.expected_calibration_error(probability, outcome, bins=4) == \
        pytest.approx(expected)
    table = calibration.reliability(probability, outcome, bins=4)
    np.testing.assert_array_equal(table["count"], [2, 0, 2, 2])
    np.testing.assert_allclose(table["frequency"][[0, 2, 3]], [0, 0.5, 1])
    assert np.isnan(table["mean"][1])


def test_ece_bin_edges_belong_to_the_lower_bin():
    # 0.25 falls in (0, .25] with 0.0; 0.5 in (.25, .5]
    table = calibration.reliability([0.0, 0.25, 0.5, 1.0], [0, 1, 1, 1], bins=4)
    np.testing.assert_array_equal(table["count"], [2, 1, 0, 1])


def test_ece_matches_the_definition_on_random_forecasts():
    rng = np.random.default_rng(0)
    probability = rng.beta(5, 1, size=2000)
    outcome = rng.random(2000) < probability ** 1.5     # over-confident forecasts
    ece = calibration.expected_calibration_error(probability, outcome)
    assert ece == pytest.approx(naive_ece(probability, outcome), rel=1e-10)
    assert ece > 0.03
    calibrated = rng.random(2000) < probability
    assert calibration.expected_calibration_error(probability, calibrated) < ece


def test_forecasts_of_classes_and_of_pixels():
    logits = np.log(np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]]))
    confidence, correct = calibration.forecasts(logits, [0, 1])
    np.testing.assert_allclose(confidence, [0.7, 0.6])
    np.testing.assert_array_equal(correct, [True, False])
    softened, _ = calibration.forecasts(logits, [0, 1], temperature=2.0)
    assert (softened < confidence).all()
    p, x = calibration.forecasts(np.array([[0.0, 2.0]]), np.array([[1, 0]]))   # binary: p(x = 1)
    np.testing.assert_allclose(p, [[0.5, 1 / (1 + np.exp(-2))]])
    np.testing.assert_array_equal(x, [[1.0, 0.0]])


def synthetic(scale, n=4000, seed=0):
    """Labels drawn from softmax(z), and the logits of a model that says ``scale`` * z."""
    generator = torch.Generator().manual_seed(seed)
    z = 2.0 * torch.randn(n, 10, generator=generator, dtype=torch.float64)
    labels = torch.multinomial(torch.softmax(z, -1), 1, generator=generator).squeeze(1)
    return (scale * z).numpy(), labels.numpy()


@pytest.mark.parametrize("scale", [3.0, 0.5])
def test_temperature_undoes_a_known_miscalibration(scale):
    logits, labels = synthetic(scale)
    temperature = calibration.fit_temperature(logits, labels)
    assert temperature == pytest.approx(scale, rel=0.1)
    before = calibration.negative_log_likelihood(logits, labels)
    after = calibration.negative_log_likelihood(logits, labels, temperature)
    assert after < before - 0.05
    word = calibration.confidence_word({"temperature": temperature})
    assert word == ("over-confident" if scale > 1 else "under-confident")
    test_logits, test_labels = synthetic(scale, seed=1)   # and it carries over to new data
    result = calibration.calibrate(test_logits, test_labels, logits, labels)
    assert result["ece_scaled"] < result["ece"] and result["nll_scaled"] < result["nll"]


def test_binary_temperature_undoes_a_known_miscalibration():
    generator = torch.Generator().manual_seed(0)
    z = 3 * torch.randn(20_000, generator=generator, dtype=torch.float64)
    targets = (torch.rand(20_000, generator=generator, dtype=torch.float64) < torch.sigmoid(z))
    logits, targets = (2.5 * z).numpy(), targets.double().numpy()
    assert calibration.fit_temperature(logits, targets) == pytest.approx(2.5, rel=0.1)


def test_temperature_scaling_lowers_the_validation_nll_of_a_real_classifier(mnist):
    from seqmnist import compare

    model, _ = load_weights("weights/classify/lstm-1x32.safetensors")
    pixels, labels = mnist.validation.tensors()
    logits = compare.predict(model, pixels[:300])["logits"]
    temperature = calibration.fit_temperature(logits, labels[:300].numpy())
    nll = [calibration.negative_log_likelihood(logits, labels[:300].numpy(), t)
           for t in (1.0, temperature)]
    grid = min(calibration.negative_log_likelihood(logits, labels[:300].numpy(), t)
               for t in np.geomspace(0.2, 5, 200))
    assert nll[1] < nll[0] and nll[1] <= grid + 1e-6   # the fit finds the grid's best, or better
    expected = float(F.cross_entropy(torch.from_numpy(logits).double(), labels[:300]))
    assert nll[0] == pytest.approx(expected)


def test_predictor_calibration_on_real_pixels(mnist, tmp_path, monkeypatch):
    from seqmnist.evaluate import evaluate

    path = "weights/predict/lstm-1x32.safetensors"
    test, validation = mnist.test.x[:20], mnist.validation.x[:20]
    model, _ = load_weights(path)
    logits, targets = calibration.next_pixel_logits(model, test, batch_size=8)
    assert logits.shape == targets.shape == (20, 783)
    np.testing.assert_array_equal(targets, test[:, 1:])
    result = calibration.predictor_calibration(path, test, validation, cache_dir=tmp_path)
    loss = evaluate(model, torch.as_tensor(test, dtype=torch.float32))["loss"]
    assert result["nll"] == pytest.approx(loss, rel=1e-5)   # nats per predicted pixel
    assert result["validation_nll_scaled"] <= result["validation_nll"]
    assert result["accuracy"] == pytest.approx(test[:, 1:].mean())
    assert 0 <= result["ece"] < 0.05 and result["reliability"]["count"].sum() == 20 * 783
    monkeypatch.setattr(calibration, "calibrate",
                        lambda *a: pytest.fail("recomputed despite the cache"))
    again = calibration.predictor_calibration(path, test, validation, cache_dir=tmp_path)
    assert again["temperature"] == result["temperature"]


def test_the_paragraph_and_table_follow_the_numbers():
    def made_up(t, confidence, accuracy, ece, ece_scaled):
        return {"temperature": t, "confidence": confidence, "accuracy": accuracy, "ece": ece,
                "ece_scaled": ece_scaled, "validation_nll": 0.1, "validation_nll_scaled": 0.09}

    calibrations = {"gru-3x32": made_up(1.6, 0.985, 0.99, 0.012, 0.004),
                    "lstm-1x32": made_up(1.3, 0.99, 0.97, 0.02, 0.01),
                    "CNN": made_up(0.8, 0.95, 0.99, 0.03, 0.035),
                    "MLP": made_up(1.01, 0.99, 0.99, 0.001, 0.002)}
    text = calibration.calibration_paragraph(calibrations)
    assert "gru-3x32 (T = 1.60), lstm-1x32 (T = 1.30) are over-confident" in text
    assert "CNN (T = 0.80) is under-confident" in text
    assert "MLP (T = 1.01) is well calibrated" in text
    assert "exceeds the accuracy for 1 of 4 models (lstm-1x32)" in text
    assert "gru-3x32 is less confident than accurate on average and yet fitted T > 1" in text
    assert "fitted T < 1" not in text
    calibrations["CNN"]["confidence"] = 0.995    # above its accuracy, and yet T < 1
    assert "CNN is more confident than accurate on average and yet fitted T < 1" in \
        calibration.calibration_paragraph(calibrations)
    calibrations["CNN"]["confidence"] = 0.95
    assert "lowers the test ECE of 2 of 4 models" in text and "CNN's, 3.00 % (3.50 % after)" in text
    table = calibration.calibration_table(calibrations)
    assert "| CNN | 95.00 % | 99.00 % | 3.00 | 0.800 | 3.50 | 0.1000 | 0.0900 |" in table
    assert "No predictor" in calibration.calibration_paragraph({}, kind="predictor")
    pixels = {"gru-1x32": made_up(1.01, 0.163, 0.162, 0.002, 0.002),
              "lstm-1x32": made_up(0.99, 0.160, 0.162, 0.003, 0.002)}
    text = calibration.calibration_paragraph(pixels, kind="predictor", scope="the first 9 images")
    assert "both models are well calibrated (T from 0.99 for lstm-1x32 to 1.01 for gru-1x32)" \
        in text
    assert "On the first 9 images, the mean forecast p(x = 1) lies within 0.20 points" in text
