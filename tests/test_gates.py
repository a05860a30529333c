"""The theory claims of notebooks/theory.ipynb, checked on real torch cells via seqmnist.gates."""

import math

import pytest
import torch
from torch import nn

from seqmnist import gates
from seqmnist.errors import ConfigError

TANH1 = math.tanh(1.0)


# -- gate reconstruction --------------------------------------------------------------------------
def test_run_helpers_follow_torch_conventions():
    """The gates recomputed by run_lstm/run_gru reproduce multi-step nn.LSTM / nn.GRU."""
    x = torch.randn(7, 3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for kind, module_cls in (("lstm", nn.LSTM), ("gru", nn.GRU)):
        cell = gates.random_cell(kind, 2, 5, seed=1)
        module = module_cls(2, 5).to(torch.float64)
        with torch.no_grad():
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(module, f"{name}_l0").copy_(getattr(cell, name))
            expected, _ = module(x)
        trace = gates.run_lstm(cell, x) if kind == "lstm" else gates.run_gru(cell, x)
        assert torch.allclose(trace["h"], expected, atol=1e-12)
        if kind == "lstm":
            assert torch.allclose(trace["c"][1:], trace["f"][1:] * trace["c"][:-1]
                                  + trace["i"][1:] * trace["g"][1:], atol=1e-12)


def test_saturate_and_set_gate():
    cell = gates.random_cell("gru", 1, 2)
    gates.saturate(cell, "z", 1)
    gates.saturate(cell, "r", 0.25)
    trace = gates.run_gru(cell, torch.randn(4, 1, 1, dtype=torch.float64))
    assert float((1 - trace["z"]).max()) < 1e-7
    assert torch.allclose(trace["r"], torch.full_like(trace["r"], 0.25))
    with pytest.raises(ConfigError, match="tanh candidate"):
        gates.saturate(cell, "n", 1)
    with pytest.raises(ConfigError, match="unknown gate"):
        gates.set_gate(cell, "f", bias=0.0)


# -- Q1: store the current input ------------------------------------------------------------------
def test_lstm_store_input_holds_tanh_of_input():
    d = gates.store_input_demo("lstm", steps=50, size=4, seed=0)
    assert d["gate_deviation"] < 1e-6
    assert d["stored_error"] < 1e-6          # c_t = tanh(x_t)
    assert d["decoded_error"] < 1e-4         # x_t = artanh(artanh(h_t))
    assert d["history_error"] < 1e-6         # nothing older than x_t reaches h_t
    assert d["max_abs_h"] < TANH1            # the double squashing confines the output
    x, c = d["x"], d["trace"]["c"][:, 0]
    assert torch.allclose(torch.atanh(c), x, atol=1e-5)


def test_gru_store_input_holds_tanh_of_input():
    d = gates.store_input_demo("gru", steps=50, size=4, seed=0)
    assert d["gate_deviation"] < 1e-6
    assert d["stored_error"] < 1e-6          # h_t = tanh(x_t)
    assert d["decoded_error"] < 1e-5
    assert d["history_error"] < 1e-6
    assert d["max_abs_h"] > TANH1            # one squashing: the full range (-1, 1)


# -- Q2: keep the state ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_keep_setting_preserves_state_over_100_steps(kind):
    d = gates.keep_state_demo(kind, steps=100, size=4, seed=0)
    assert len(d["drift"]) == 100
    assert d["x"].std() > 0.5                 # the inputs really vary
    assert d["max_drift"] < 1e-3
    assert bool((d["drift"] <= d["bound"] + 1e-12).all())
    leaky = gates.keep_state_demo(kind, steps=100, size=4, seed=0, saturation=2.0)
    assert leaky["max_drift"] > 0.1           # the measurement would see a leak


def test_drift_shrinks_with_saturation():
    curve = gates.keep_drift_curve("lstm", [4, 12, 20], steps=50)
    assert curve[0] > curve[1] > curve[2]


# -- Q3: the GRU is not a special case of the LSTM -------------------------------------------------
def test_coupled_gate_lstm_reproduces_gru_state_in_its_cell_only():
    d = gates.correspondence_demo(steps=30, size=3, seed=0)
    assert max(d["c_vs_gru_h"], d["f_vs_z"], d["i_vs_1_minus_z"], d["g_vs_n"]) < 1e-12
    assert d["h_vs_tanh_gru_h"] < 1e-10
    assert d["h_vs_gru_h"] > 0.05
    gru = gates.random_cell("gru", 2, 2)
    with pytest.raises(ConfigError, match="read the input alone"):
        gates.lstm_from_input_driven_gru(gru)


def test_flip_bound_values():
    a = 0.99
    assert gates.lstm_flip_bound([a, -a])["max_abs"] == pytest.approx(a - TANH1)
    assert gates.lstm_flip_bound([a, -a, a, -a])["mse"] == pytest.approx((a - TANH1) ** 2 / 2)
    assert gates.lstm_flip_bound([0.5, -0.5, 0.5])["max_abs"] == 0.0
    assert gates.lstm_flip_bound([0.9, 0.95, 0.9])["max_abs"] == 0.0


def test_one_step_property_holds_on_random_lstms():
    d = gates.random_lstm_flip_check(trials=8, steps=30, seed=0)
    assert d["violations"] == 0
    assert d["margin"] >= 0.0
    assert d["pairs"] > 1000


def test_counterexample_residual_is_bounded_away_from_zero():
    demo = gates.counterexample_demo([0.5, 0.99], steps=8, restarts=4, fit_steps=150, seed=0)
    y = demo["y"]
    assert bool((y[1, 1:] * y[1, :-1] < 0).all())           # the GRU output flips every step
    assert float(y[1].abs().min()) > 0.99 - 1e-6
    control, counter = demo["rows"]
    assert control["bound_max_abs"] == 0.0
    assert control["fit_max_abs"] < 0.05                    # the optimiser can fit when it is possible
    assert counter["bound_max_abs"] == pytest.approx(0.99 - TANH1, abs=1e-6)
    assert counter["bound_max_abs"] > 0.2
    assert counter["fit_max_abs"] >= counter["bound_max_abs"] - 1e-12
    assert counter["fit_mse"] >= counter["bound_mse"] - 1e-12
    assert demo["fit"]["extraction_error"] < 1e-10


def test_saturated_handmade_lstm_cannot_beat_the_bound():
    """A hand-set LSTM that tries hardest to follow +-A: f=0, i=1, o=1, g=tanh(big * x)."""
    x, y = gates.gru_alternating_targets([0.99], steps=6)
    cell = gates.random_cell("lstm", 1, 1)
    gates.saturate(cell, "f", 0, 30.0)
    gates.saturate(cell, "i", 1, 30.0)
    gates.saturate(cell, "o", 1, 30.0)
    gates.set_gate(cell, "g", weight_ih=50.0, weight_hh=0.0, bias=0.0)
    h = gates.run_lstm(cell, x)["h"][:, 0, 0]
    err = float((h - y[0]).abs().max())
    assert err >= gates.lstm_flip_bound(y[0])["max_abs"] - 1e-12
    assert err == pytest.approx(0.99 - TANH1, abs=1e-6)


# -- reporting ------------------------------------------------------------------------------------
def test_markdown_table_formats_numbers():
    table = gates.markdown_table(["a", "b"], [["x", 1.23456], ["y", 1e-9]])
    # the separator's dashes follow the widest cell: pandoc's relative column widths in the PDF
    assert table.splitlines() == ["| a | b |", "|---|--------|", "| x | 1.235 |", "| y | 1.00e-09 |"]
