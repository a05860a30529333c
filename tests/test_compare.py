"""Paired comparison of classifiers: McNemar's exact test, the paired bootstrap interval, counted
multiply-adds, cached predictions, and the comparison paragraph that the numbers choose."""

from math import comb

import numpy as np
import pytest
import torch

from seqmnist import compare, tables
from seqmnist.baselines import WholeImageClassifier
from seqmnist.models import Classifier
from seqmnist.results import comparison_paragraph

N = 10_000


def paired(only_a: int, only_b: int, both_wrong: int = 0, n: int = N):
    """Made-up correctness vectors with the given discordant and both-wrong counts."""
    a, b = np.ones(n, bool), np.ones(n, bool)
    b[:only_a] = False
    a[only_a:only_a + only_b] = False
    a[only_a + only_b:only_a + only_b + both_wrong] = False
    b[only_a + only_b:only_a + only_b + both_wrong] = False
    return a, b


# -- McNemar ----------------------------------------------------------------------------------

@pytest.mark.parametrize("only_a, only_b, expected", [
    (0, 10, 2 * 0.5 ** 10),
    (10, 0, 2 * 0.5 ** 10),
    (1, 9, 2 * (comb(10, 0) + comb(10, 1)) / 2 ** 10),
    (15, 5, 2 * sum(comb(20, k) for k in range(6)) / 2 ** 20),
    (7, 7, 1.0),
    (0, 0, 1.0),
])
def test_mcnemar_exact_p_values(only_a, only_b, expected):
    a, b = paired(only_a, only_b, both_wrong=3, n=100)
    result = compare.mcnemar(a, b)
    assert (result["b"], result["c"]) == (only_a, only_b)
    assert result["p_value"] == pytest.approx(expected, rel=1e-12)


def test_mcnemar_handles_hundreds_of_discordant_pairs():
    result = compare.mcnemar(*paired(300, 200))
    assert 0 < result["p_value"] < 1e-5   # 500 coin flips, 300 heads


def test_paired_results_must_have_one_length():
    with pytest.raises(ValueError, match="one length"):
        compare.mcnemar(np.ones(5, bool), np.ones(6, bool))


# -- bootstrap --------------------------------------------------------------------------------

def test_bootstrap_is_deterministic_and_contains_the_observed_difference():
    a, b = paired(60, 30, both_wrong=40)
    low, high = compare.bootstrap_difference(a, b, seed=3)
    assert (low, high) == compare.bootstrap_difference(a, b, seed=3)
    assert low < (a.mean() - b.mean()) < high
    assert 0 < low  # 60 against 30: clearly apart


def test_bootstrap_covers_the_true_difference_of_simulated_classifiers():
    rng = np.random.default_rng(0)
    a, b = rng.random(N) < 0.99, rng.random(N) < 0.98   # true difference 0.01
    low, high = compare.bootstrap_difference(a, b)
    assert low < 0.01 < high and high - low < 0.01


def test_bootstrap_matches_resampling_image_indices():
    """The multinomial draw is the index bootstrap's distribution: both give the same interval."""
    a, b = paired(25, 15, both_wrong=10, n=400)
    rng = np.random.default_rng(1)
    index = rng.integers(0, 400, size=(20_000, 400))
    direct = np.percentile(a[index].mean(1) - b[index].mean(1), [2.5, 97.5])
    assert compare.bootstrap_difference(a, b, resamples=20_000) == pytest.approx(direct, abs=0.003)


def test_bootstrap_of_identical_results_is_zero():
    a, _ = paired(0, 0, both_wrong=20, n=500)
    assert compare.bootstrap_difference(a, a) == (0.0, 0.0)


# -- multiply-adds ----------------------------------------------------------------------------

def test_multiply_adds_of_a_gru_classifier_by_hand():
    # per step: input folded into 3*4 weights on the pixel, 3*4*4 recurrent; head 4->4->10
    assert compare.multiply_adds(Classifier("gru-1x4")) == 784 * (3 * 4 + 3 * 4 * 4) + 4 * 4 + 4 * 10


def test_multiply_adds_of_a_stacked_lstm_follows_its_modules():
    # layer 0: 4*3 on the pixel + 4*3*3 recurrent; layer 1: 4*3*3 input + 4*3*3 recurrent
    model = Classifier("lstm-2x3", head_units=7)
    assert compare.multiply_adds(model) == 784 * (12 + 36 + 36 + 36) + 3 * 7 + 7 * 10


def test_multiply_adds_of_the_baselines_by_hand():
    conv = 28 * 28 * 32 * (1 * 9) + 14 * 14 * 64 * (32 * 9) + 14 * 14 * 64 * (64 * 9)
    assert compare.multiply_adds(WholeImageClassifier("cnn")) == conv + 64 * 7 * 7 * 128 + 128 * 10
    assert compare.multiply_adds(WholeImageClassifier("mlp")) == 784 * 512 + 512 * 512 + 512 * 10


# -- predictions ------------------------------------------------------------------------------

def test_predict_keeps_the_images_order(mnist):
    torch.manual_seed(0)
    model = Classifier("gru-1x8").eval()
    pixels, _ = mnist.test.tensors()
    pixels = pixels[:150]
    run = compare.predict(model, pixels, batch_size=32)  # sorted, batched inside
    with torch.no_grad():
        expected = model(pixels.t().unsqueeze(-1))
    assert run["predicted"].dtype == np.int64 and run["seconds"] > 0
    np.testing.assert_array_equal(run["predicted"], expected.argmax(1).numpy())
    assert run["logits"].dtype == np.float32
    np.testing.assert_allclose(run["logits"], expected.numpy(), atol=1e-5)
    assert run["reading"] is None   # no labels: predictions and logits only


def test_predict_of_a_baseline_reads_nothing(mnist):
    torch.manual_seed(0)
    model = WholeImageClassifier("mlp").eval()
    pixels, labels = mnist.test.tensors()
    run = compare.predict(model, pixels[:40], labels=labels[:40])
    with torch.no_grad():
        expected = model(pixels[:40].t().unsqueeze(-1)).argmax(1).numpy()
    np.testing.assert_array_equal(run["predicted"], expected)
    assert run["reading"] is None   # a whole-image model has no steps to read


def test_shipped_predictions_match_evaluate_and_are_cached(mnist, tmp_path, monkeypatch):
    from seqmnist.evaluate import evaluate
    from seqmnist.weights import load_weights

    path = "weights/classify/gru-1x32.safetensors"
    pixels, labels = mnist.test.tensors()
    pixels, labels = pixels[:200], labels[:200]
    first = compare.shipped_predictions(path, pixels, labels, cache_dir=tmp_path)
    model, _ = load_weights(path)
    scored = evaluate(model, pixels, labels)
    assert (first["predicted"] == labels.numpy()).mean() == scored["accuracy"]
    cross_entropy = torch.nn.functional.cross_entropy(torch.from_numpy(first["logits"]), labels)
    assert float(cross_entropy) == pytest.approx(scored["loss"], rel=1e-5)
    assert first["reading"]["correct"][-1] == (first["predicted"] == labels.numpy()).sum()
    assert first["ms_per_image"] > 0 and first["threads"] >= 1

    def forbidden(*args, **kwargs):
        raise AssertionError("recomputed despite the cache")

    monkeypatch.setattr(compare, "predict", forbidden)
    again = compare.shipped_predictions(path, pixels, labels, cache_dir=tmp_path)
    np.testing.assert_array_equal(again["predicted"], first["predicted"])
    np.testing.assert_array_equal(again["reading"]["settling"], first["reading"]["settling"])
    assert again["ms_per_image"] == first["ms_per_image"]
    with pytest.raises(AssertionError, match="recomputed"):  # other images: a new entry
        compare.shipped_predictions(path, pixels[:100], labels[:100], cache_dir=tmp_path)
    with pytest.raises(AssertionError, match="recomputed"):  # without labels: another pass
        compare.shipped_predictions(path, pixels, cache_dir=tmp_path)


def test_paired_comparison_reuses_the_shared_passes(mnist, tmp_path, monkeypatch):
    """The notebook makes one cached pass per classifier (classifier_passes) and hands it to the
    comparison, which then runs no pass of its own."""
    from seqmnist import results

    pixels, labels = mnist.test.tensors()
    pixels, labels = pixels[:60], labels[:60]
    passes = results.classifier_passes(["lstm-1x32", "mlp", "lstm-9x9"], pixels, labels,
                                       use_cache=False)
    assert set(passes) == {"lstm-1x32", "mlp"}   # no weights for lstm-9x9: left out
    assert passes["lstm-1x32"]["reading"]["settling"].shape == (60,)
    assert passes["mlp"]["reading"] is None

    def forbidden(*args, **kwargs):
        raise AssertionError("a second pass")

    monkeypatch.setattr(compare, "shipped_predictions", forbidden)
    scored = {name: {"meta": {"validation": {"accuracy": 0.9}}} for name in ("lstm-1x32", "mlp")}
    comparison = results.paired_comparison(scored, ["lstm-1x32"], ["mlp"], mnist=mnist, limit=60,
                                           passes=passes)
    for name in ("lstm-1x32", "mlp"):
        np.testing.assert_array_equal(comparison["models"][name]["correct"],
                                      passes[name]["predicted"] == labels.numpy())
    with pytest.raises(AssertionError, match="second pass"):   # without them it makes its own
        results.paired_comparison(scored, ["lstm-1x32"], ["mlp"], mnist=mnist, limit=60)


# -- the paragraph, from made-up results --------------------------------------------------------

def made_up(rnn_errors, cnn_errors, rnn_macs=12_000_000, mlp_errors=None):
    """gru-3x32 against a CNN (and an MLP) with the given sets of wrong test images."""
    def correct(wrong):
        c = np.ones(N, bool)
        c[list(wrong)] = False
        return c

    models = {"gru-3x32": {"correct": correct(rnn_errors), "parameters": 20_000,
                           "multiply_adds": rnn_macs, "ms_per_image": 1.25},
              "cnn": {"label": "CNN", "correct": correct(cnn_errors), "parameters": 400_000,
                      "multiply_adds": 4_000_000, "ms_per_image": 0.5}}
    baselines = ["cnn"]
    if mlp_errors is not None:
        models["mlp"] = {"label": "MLP", "correct": correct(mlp_errors), "parameters": 600_000,
                         "multiply_adds": 600_000, "ms_per_image": None}
        baselines.append("mlp")
    return compare.summarize(models, ["gru-3x32"], baselines, threads=[1], trailing_blank=120.0)


def p_text(a_errors, b_errors):
    a, b = np.ones(N, bool), np.ones(N, bool)
    a[list(a_errors)], b[list(b_errors)] = False, False
    p = compare.mcnemar(a, b)["p_value"]
    return f"p = {p:.1e}" if p < 0.001 else f"p = {p:.3f}"


def test_paragraph_when_the_recurrent_reader_is_significantly_better():
    rnn, cnn = range(50), range(100, 220)   # 50 against 120 errors, none shared
    text = comparison_paragraph(made_up(rnn, cnn))
    assert "gru-3x32 is significantly more accurate on this test set" in text
    assert "99.50 %" in text and "98.80 %" in text and "70 more test images right" in text
    assert "only gru-3x32 is right on 120 of them, only the CNN on 50" in text
    assert p_text(rnn, cnn) in text and "rejects equal accuracy" in text and "excludes 0" in text
    assert "possible reason" not in text and "not distinguishable" not in text
    assert "20.0 times fewer" in text and "3.0 times as many" in text
    assert "gru-3x32's higher accuracy costs more multiply-adds" in text


def test_paragraph_when_the_cnn_is_significantly_better():
    rnn, cnn = range(100, 220), range(50)
    text = comparison_paragraph(made_up(rnn, cnn))
    assert "the CNN is significantly more accurate on this test set" in text
    assert "98.80 %" in text and "99.50 %" in text and "the CNN gets 70 more test images right" in text
    assert p_text(rnn, cnn) in text and "excludes 0" in text
    assert "A possible reason" in text and "120 blank pixels (median)" in text
    assert "The CNN is both more accurate and cheaper in multiply-adds" in text


def test_paragraph_when_the_difference_is_not_significant():
    rnn, cnn = range(0, 100), range(40, 143)   # 100 against 103 errors, 60 shared
    text = comparison_paragraph(made_up(rnn, cnn))
    assert "not distinguishable on this test set" in text
    assert "does not reject equal accuracy" in text and "contains 0" in text
    assert "gru-3x32** gets 3 more test images right" in text and "99.00 %" in text
    assert p_text(rnn, cnn) in text
    assert "significantly more accurate" not in text and "possible reason" not in text
    assert "the CNN is the cheaper model in multiply-adds" in text
    cheap = comparison_paragraph(made_up(rnn, cnn, rnn_macs=1_000_000))
    assert "gru-3x32 is the cheaper model in multiply-adds" in cheap and "4.0 times fewer" in cheap


def test_paragraph_summarises_the_other_pairs_and_the_tables_show_the_numbers():
    comparison = made_up(range(100), range(40, 143), mlp_errors=range(300, 600))
    text = comparison_paragraph(comparison)
    assert "Over all 2 pairs" in text and "1 differs significantly" in text
    assert "gru-3x32 vs MLP" in text and "gru-3x32 ahead" in text
    costs = tables.cost_table(comparison)
    assert "| gru-3x32 | 99.00 % | 100 | 20,000 | 12.00 M | 1.250 |" in costs
    assert "| MLP | 97.00 % | 300 | 600,000 | 0.60 M | n/a |" in costs
    pairs = tables.paired_table(comparison)
    low, high = comparison["pairs"][0]["interval"]
    assert f"| gru-3x32 | CNN | 43 | 40 | {p_text(range(100), range(40, 143))[4:]} | +0.03 | " \
           f"{100 * low:+.2f} to {100 * high:+.2f} |" in pairs


def test_paragraph_without_models():
    assert "needs shipped weights" in comparison_paragraph(None)


def test_summarize_refuses_unpaired_results():
    models = {"a": {"correct": np.ones(5, bool)}, "b": {"correct": np.ones(6, bool)}}
    with pytest.raises(ValueError, match="different numbers of images"):
        compare.summarize(models, ["a"], ["b"])
