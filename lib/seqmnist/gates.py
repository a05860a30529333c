"""Executable theory: what LSTM and GRU gates can and cannot do, checked on real torch cells.

Everything here drives ``torch.nn.LSTMCell`` / ``torch.nn.GRUCell`` with PyTorch's conventions
(``W_ih`` rows stacked gate by gate, in the order below):

* LSTM, gates ``i, f, g, o``::

      i = sigmoid(W_ii x + b_ii + W_hi h + b_hi)      f = sigmoid(W_if x + b_if + W_hf h + b_hf)
      g = tanh(W_ig x + b_ig + W_hg h + b_hg)         o = sigmoid(W_io x + b_io + W_ho h + b_ho)
      c' = f * c + i * g                              h' = o * tanh(c')

* GRU, gates ``r, z, n``::

      r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)      z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
      n = tanh(W_in x + b_in + r * (W_hn h + b_hn))   h' = (1 - z) * n + z * h

A gate is *saturated* to 0 or 1 by a bias of magnitude ``saturation`` that dominates the rest of its
pre-activation; a sigmoid never reaches 0 or 1 exactly, so every demonstration reports the measured
gate deviation and the resulting error instead of assuming it away.  Demonstrations run in float64 so
that these small errors are measured rather than rounded to zero.

The question answered by the counterexample (is the GRU a special case of the LSTM?) rests on
:func:`lstm_flip_bound`: for *any* LSTM (any weights, any size, any initial state) and every unit,
``c_{t-1} >= 0`` implies ``h_t >= -tanh(1)`` (and symmetrically), because
``c_t = f c_{t-1} + i g >= i g >= -1``.  A GRU output can jump from near +1 to near -1 in one step.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import ConfigError

LSTM_GATES = ("i", "f", "g", "o")
GRU_GATES = ("r", "z", "n")
SATURATION = 20.0
TANH1 = math.tanh(1.0)
DTYPE = torch.float64



def one_thread(fn):
    """Run ``fn`` with torch on one thread: these problems are tiny, and on a busy CPU extra
    threads only fight each other (measured: a 70x slowdown beside a training job)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        threads = torch.get_num_threads()
        if threads == 1:
            return fn(*args, **kwargs)
        torch.set_num_threads(1)
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(threads)
    return wrapper


# -- notebook parameters ------------------------------------------------------------------------
# -- building cells -------------------------------------------------------------------------------
def _gate_rows(cell: nn.Module, gate: str) -> slice:
    names = LSTM_GATES if isinstance(cell, nn.LSTMCell) else GRU_GATES
    if gate not in names:
        raise ConfigError(f"unknown gate {gate!r} for {type(cell).__name__}: use one of {names}")
    k, hidden = names.index(gate), cell.hidden_size
    return slice(k * hidden, (k + 1) * hidden)


def random_cell(kind: str, input_size: int, hidden_size: int, *, seed: int = 0,
                weight_scale: float = 0.5, dtype=DTYPE) -> nn.Module:
    """A real ``nn.LSTMCell``/``nn.GRUCell`` with every weight and bias drawn N(0, weight_scale^2)."""
    if kind not in ("lstm", "gru"):
        raise ConfigError(f"unknown cell {kind!r}: use 'lstm' or 'gru'")
    cls = nn.LSTMCell if kind == "lstm" else nn.GRUCell
    cell = cls(input_size, hidden_size).to(dtype)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in cell.parameters():
            p.copy_(weight_scale * torch.randn(p.shape, generator=gen, dtype=dtype))
    return cell


def set_gate(cell: nn.Module, gate: str, *, weight_ih=None, weight_hh=None, bias=None) -> None:
    """Overwrite one gate's input weights, recurrent weights and/or bias (scalars broadcast).

    ``bias`` goes into ``bias_ih``; the gate's ``bias_hh`` is then zeroed so ``bias`` is the total.
    For the GRU candidate ``n`` this also zeroes ``b_hn`` (the bias inside the reset product).
    """
    rows = _gate_rows(cell, gate)
    with torch.no_grad():
        if weight_ih is not None:
            cell.weight_ih[rows] = torch.as_tensor(weight_ih, dtype=cell.weight_ih.dtype)
        if weight_hh is not None:
            cell.weight_hh[rows] = torch.as_tensor(weight_hh, dtype=cell.weight_hh.dtype)
        if bias is not None:
            cell.bias_ih[rows] = torch.as_tensor(bias, dtype=cell.bias_ih.dtype)
            cell.bias_hh[rows] = 0.0


def saturate(cell: nn.Module, gate: str, value: float, saturation: float = SATURATION) -> None:
    """Drive a sigmoid gate to ``value``.

    ``value`` 0 or 1: bias ``-saturation`` / ``+saturation``, weights left as they are (the bias just
    has to dominate them).  ``0 < value < 1``: a constant gate (zero weights, bias ``logit(value)``).
    """
    if gate in ("g", "n"):
        raise ConfigError(f"gate {gate!r} is a tanh candidate, not a sigmoid gate")
    if value in (0, 1):
        set_gate(cell, gate, bias=saturation if value == 1 else -saturation)
    elif 0 < value < 1:
        set_gate(cell, gate, weight_ih=0.0, weight_hh=0.0, bias=math.log(value / (1 - value)))
    else:
        raise ConfigError(f"a sigmoid gate value must lie in [0, 1], got {value}")


# -- running cells --------------------------------------------------------------------------------
def _check(name: str, ours: torch.Tensor, torchs: torch.Tensor) -> None:
    tol = 1e-10 if ours.dtype == torch.float64 else 1e-5
    if not torch.allclose(ours, torchs, rtol=tol, atol=tol):
        raise RuntimeError(f"gate reconstruction of {name} disagrees with the torch cell "
                           f"(max diff {float((ours - torchs).abs().max()):.3g})")


def _as_sequence(cell: nn.Module, x) -> torch.Tensor:
    x = torch.as_tensor(x, dtype=cell.weight_ih.dtype)
    if x.dim() == 1:
        x = x[:, None, None]
    elif x.dim() == 2:
        x = x[:, None, :]
    return x


@one_thread
@torch.no_grad()
def run_lstm(cell: nn.LSTMCell, x, h0=None, c0=None) -> dict:
    """Run ``cell`` over ``x`` (T, B, in); return states ``h, c`` and gates ``i, f, g, o`` (T, B, H).

    The states come from the torch cell itself; the gate activations are recomputed from its
    parameters and checked against it (``c' = f c + i g`` and ``h' = o tanh(c')``).
    """
    x = _as_sequence(cell, x)
    steps, batch = x.shape[:2]
    zeros = torch.zeros(batch, cell.hidden_size, dtype=x.dtype)
    h = zeros if h0 is None else torch.as_tensor(h0, dtype=x.dtype).expand_as(zeros).clone()
    c = zeros if c0 is None else torch.as_tensor(c0, dtype=x.dtype).expand_as(zeros).clone()
    out = {k: [] for k in ("h", "c") + LSTM_GATES}
    for t in range(steps):
        pre = x[t] @ cell.weight_ih.T + cell.bias_ih + h @ cell.weight_hh.T + cell.bias_hh
        i, f, g, o = pre.chunk(4, dim=-1)
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        c_ours = f * c + i * g
        h, c = cell(x[t], (h, c))
        _check("c' = f c + i g", c_ours, c)
        _check("h' = o tanh(c')", o * torch.tanh(c), h)
        for k, v in zip(("h", "c", "i", "f", "g", "o"), (h, c, i, f, g, o)):
            out[k].append(v)
    return {k: torch.stack(v) for k, v in out.items()}


@one_thread
@torch.no_grad()
def run_gru(cell: nn.GRUCell, x, h0=None) -> dict:
    """Run ``cell`` over ``x`` (T, B, in); return state ``h`` and gates ``r, z, n`` (T, B, H)."""
    x = _as_sequence(cell, x)
    steps, batch = x.shape[:2]
    zeros = torch.zeros(batch, cell.hidden_size, dtype=x.dtype)
    h = zeros if h0 is None else torch.as_tensor(h0, dtype=x.dtype).expand_as(zeros).clone()
    out = {k: [] for k in ("h",) + GRU_GATES}
    for t in range(steps):
        gi = x[t] @ cell.weight_ih.T + cell.bias_ih
        gh = h @ cell.weight_hh.T + cell.bias_hh
        (ir, iz, in_), (hr, hz, hn) = gi.chunk(3, dim=-1), gh.chunk(3, dim=-1)
        r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
        n = torch.tanh(in_ + r * hn)
        h_ours = (1 - z) * n + z * h
        h = cell(x[t], h)
        _check("h' = (1-z) n + z h", h_ours, h)
        for k, v in zip(("h", "r", "z", "n"), (h, r, z, n)):
            out[k].append(v)
    return {k: torch.stack(v) for k, v in out.items()}


# -- Q1: store the current input -----------------------------------------------------------------
def store_input_cell(kind: str, size: int, *, scale: float = 1.0, saturation: float = SATURATION,
                     seed: int = 0, weight_scale: float = 0.5) -> nn.Module:
    """A cell whose state after step t is ``tanh(scale * x_t)``, whatever came before.

    LSTM: ``f = 0, i = 1, o = 1`` and a candidate ``g = tanh(scale x)`` that ignores ``h``, so
    ``c_t = g_t`` and ``h_t = tanh(g_t)``.  GRU: ``z = 0, r = 0`` and ``W_in = scale I`` so
    ``h_t = n_t = tanh(scale x_t)`` (``r = 0`` cancels ``W_hn h + b_hn``, left random on purpose).
    """
    cell = random_cell(kind, size, size, seed=seed, weight_scale=weight_scale)
    eye = scale * torch.eye(size, dtype=DTYPE)
    if kind == "lstm":
        saturate(cell, "f", 0, saturation)
        saturate(cell, "i", 1, saturation)
        saturate(cell, "o", 1, saturation)
        set_gate(cell, "g", weight_ih=eye, weight_hh=0.0, bias=0.0)
    else:
        saturate(cell, "z", 0, saturation)
        saturate(cell, "r", 0, saturation)
        with torch.no_grad():
            cell.weight_ih[_gate_rows(cell, "n")] = eye
            cell.bias_ih[_gate_rows(cell, "n")] = 0.0
    return cell


@one_thread
def store_input_demo(kind: str, *, steps: int = 50, size: int = 4, scale: float = 1.0,
                     saturation: float = SATURATION, seed: int = 0) -> dict:
    """Feed U(-2, 2) inputs to :func:`store_input_cell`; measure how exactly the state holds x_t.

    Returned errors (max over steps and units):

    * ``stored_error``: state vs ``tanh(scale x_t)`` (the state is ``c`` for the LSTM, ``h`` for the GRU);
    * ``decoded_error``: ``x_t`` recovered from the exposed output ``h_t`` by the known inverse
      (LSTM ``atanh(atanh(h))/scale``, GRU ``atanh(h)/scale``) vs ``x_t``;
    * ``history_error``: ``h_t`` vs one step of the same cell from a random state on input ``x_t``
      (how much of anything older than ``x_t`` leaks into ``h_t``);
    * ``gate_deviation``: the largest distance of a saturated gate from its target value.
    """
    gen = torch.Generator().manual_seed(seed + 1)
    x = 4 * torch.rand(steps, 1, size, generator=gen, dtype=DTYPE) - 2
    cell = store_input_cell(kind, size, scale=scale, saturation=saturation, seed=seed)
    expected = torch.tanh(scale * x)
    states = torch.randn(steps, size, generator=gen, dtype=DTYPE)
    if kind == "lstm":
        tr = run_lstm(cell, x)
        stored, decoded = tr["c"], torch.atanh(torch.atanh(tr["h"])) / scale
        with torch.no_grad():
            one_step, _ = cell(x[:, 0], (torch.tanh(states), states))
        deviation = max(float(tr["f"].abs().max()), float((1 - tr["i"]).abs().max()),
                        float((1 - tr["o"]).abs().max()))
    else:
        tr = run_gru(cell, x)
        stored, decoded = tr["h"], torch.atanh(tr["h"]) / scale
        with torch.no_grad():
            one_step = cell(x[:, 0], torch.tanh(states))
        deviation = max(float(tr["z"].abs().max()), float(tr["r"].abs().max()))
    return {
        "kind": kind, "x": x[:, 0], "stored": stored[:, 0], "h": tr["h"][:, 0], "trace": tr,
        "stored_error": float((stored - expected).abs().max()),
        "decoded_error": float((decoded - x).abs().max()),
        "history_error": float((one_step - tr["h"][:, 0]).abs().max()),
        "gate_deviation": deviation,
        "max_abs_h": float(tr["h"].abs().max()),
    }


# -- Q2: keep the previous state, ignore the input ------------------------------------------------
def keep_state_cell(kind: str, size: int, *, saturation: float = SATURATION, seed: int = 0,
                    weight_scale: float = 0.5) -> nn.Module:
    """LSTM ``f = 1, i = 0, o = 1`` / GRU ``z = 1``; all other weights stay random (and non-zero)."""
    cell = random_cell(kind, size, size, seed=seed, weight_scale=weight_scale)
    if kind == "lstm":
        saturate(cell, "f", 1, saturation)
        saturate(cell, "i", 0, saturation)
        saturate(cell, "o", 1, saturation)
    else:
        saturate(cell, "z", 1, saturation)
    return cell


@one_thread
def keep_state_demo(kind: str, *, steps: int = 100, size: int = 4, saturation: float = SATURATION,
                    seed: int = 0, input_std: float = 1.0) -> dict:
    """Store a random state, then feed ``steps`` N(0, input_std^2) inputs under the keep setting.

    ``stored`` is ``c`` (LSTM) or ``h`` (GRU), with the initial state as row 0; ``drift[t]`` is the
    largest ``|stored_t - stored_0|``; ``bound`` is the triangle-inequality bound from the measured
    gates (LSTM: sum of ``(1-f)|c| + i|g|``; GRU: sum of ``(1-z)|n - h|``), which the drift must obey.
    """
    gen = torch.Generator().manual_seed(seed + 2)
    x = input_std * torch.randn(steps, 1, size, generator=gen, dtype=DTYPE)
    cell = keep_state_cell(kind, size, saturation=saturation, seed=seed)
    if kind == "lstm":
        c0 = torch.randn(1, size, generator=gen, dtype=DTYPE)
        tr = run_lstm(cell, x, h0=torch.tanh(c0), c0=c0)
        stored = torch.cat([c0[None], tr["c"]])
        step_bound = (1 - tr["f"]) * stored[:-1].abs() + tr["i"] * tr["g"].abs()
        deviation = max(float((1 - tr["f"]).max()), float(tr["i"].max()))
    else:
        h0 = 1.8 * torch.rand(1, size, generator=gen, dtype=DTYPE) - 0.9
        tr = run_gru(cell, x, h0=h0)
        stored = torch.cat([h0[None], tr["h"]])
        step_bound = (1 - tr["z"]) * (tr["n"] - stored[:-1]).abs()
        deviation = float((1 - tr["z"]).max())
    drift = (stored[1:] - stored[0]).abs().amax(dim=(1, 2))
    bound = step_bound.amax(dim=(1, 2)).cumsum(0)
    return {"kind": kind, "saturation": saturation, "x": x[:, 0], "stored": stored[:, 0],
            "drift": drift, "bound": bound, "max_drift": float(drift.max()),
            "gate_deviation": deviation, "input_range": float(x.abs().max())}


@one_thread
def keep_drift_curve(kind: str, saturations, *, steps: int = 100, seed: int = 0) -> np.ndarray:
    """Largest drift over ``steps`` steps of the keep setting, for each gate bias magnitude."""
    return np.array([keep_state_demo(kind, steps=steps, saturation=float(s), seed=seed)["max_drift"]
                     for s in saturations])


# -- Q3: the GRU is not a special case of the LSTM ------------------------------------------------
def lstm_from_input_driven_gru(gru: nn.GRUCell, saturation: float = 30.0) -> nn.LSTMCell:
    """The LSTM that shares a GRU's coupled gates: ``f = z``, ``i = 1 - z``, ``g = n``, ``o = 1``.

    Only possible when the GRU's gates read the input alone (``W_hh = 0`` and ``b_hn = 0``, so ``r``
    is irrelevant).  Then ``c_t`` equals the GRU's ``h_t`` exactly (``1 - sigmoid(a) = sigmoid(-a)``)
    but the LSTM exposes ``h_t = o tanh(c_t)``, not ``c_t``.
    """
    n_rows = _gate_rows(gru, "n")
    if bool(gru.weight_hh.abs().max() > 0) or bool(gru.bias_hh[n_rows].abs().max() > 0):
        raise ConfigError("only a GRU whose gates read the input alone (W_hh = 0, b_hn = 0) "
                          "has an LSTM with the same coupled gates")
    hid, inp = gru.hidden_size, gru.input_size
    lstm = nn.LSTMCell(inp, hid).to(gru.weight_ih.dtype)
    z_rows = _gate_rows(gru, "z")
    w_z, b_z = gru.weight_ih[z_rows], gru.bias_ih[z_rows] + gru.bias_hh[z_rows]
    for gate, w, b in (("f", w_z, b_z), ("i", -w_z, -b_z),
                       ("g", gru.weight_ih[n_rows], gru.bias_ih[n_rows]),
                       ("o", 0.0, saturation)):
        set_gate(lstm, gate, weight_ih=w, weight_hh=0.0, bias=b)
    return lstm


@one_thread
def correspondence_demo(*, steps: int = 50, size: int = 4, seed: int = 0) -> dict:
    """Run an input-driven GRU and :func:`lstm_from_input_driven_gru` on the same inputs."""
    gru = random_cell("gru", size, size, seed=seed, weight_scale=1.0)
    with torch.no_grad():
        gru.weight_hh.zero_()
        gru.bias_hh[_gate_rows(gru, "n")] = 0.0
    lstm = lstm_from_input_driven_gru(gru)
    gen = torch.Generator().manual_seed(seed + 3)
    x = torch.randn(steps, 1, size, generator=gen, dtype=DTYPE)
    h0 = 1.8 * torch.rand(1, size, generator=gen, dtype=DTYPE) - 0.9
    g, lt = run_gru(gru, x, h0=h0), run_lstm(lstm, x, h0=torch.tanh(h0), c0=h0)
    return {"c_vs_gru_h": float((lt["c"] - g["h"]).abs().max()),
            "f_vs_z": float((lt["f"] - g["z"]).abs().max()),
            "i_vs_1_minus_z": float((lt["i"] - (1 - g["z"])).abs().max()),
            "g_vs_n": float((lt["g"] - g["n"]).abs().max()),
            "h_vs_gru_h": float((lt["h"] - g["h"]).abs().max()),
            "h_vs_tanh_gru_h": float((lt["h"] - torch.tanh(g["h"])).abs().max())}


@one_thread
def gru_alternating_targets(amplitudes, *, steps: int = 8, saturation: float = SATURATION):
    """Inputs ``x_t = +1, -1, +1, ...`` and, per amplitude A, the output of a real 1-unit GRU.

    The GRU is the store-input setting (``z = 0, r = 0``) with ``W_in = atanh(A)``, so its output is
    ``h_t = tanh(atanh(A) x_t) = +-A``: it jumps between +A and -A at every step.  ``W_hn = 1`` and
    ``b_hn = 1`` are deliberately non-zero (``r = 0`` removes them).  Returns ``x`` (T,), ``y`` (K, T).
    """
    x = torch.tensor([(-1.0) ** t for t in range(steps)], dtype=DTYPE)
    ys = []
    for a in amplitudes:
        if not 0 < a < 1:
            raise ConfigError(f"a GRU output amplitude must lie in (0, 1), got {a}")
        cell = random_cell("gru", 1, 1)
        saturate(cell, "z", 0, saturation)
        saturate(cell, "r", 0, saturation)
        with torch.no_grad():
            rows = _gate_rows(cell, "n")
            cell.weight_ih[rows], cell.bias_ih[rows] = math.atanh(a), 0.0
            cell.weight_hh[rows], cell.bias_hh[rows] = 1.0, 1.0
        ys.append(run_gru(cell, x)["h"][:, 0, 0])
    return x, torch.stack(ys)


def lstm_flip_bound(y) -> dict:
    """Lower bounds on how far ANY LSTM's output (one unit, h_1..h_T) must be from target ``y``.

    For consecutive targets of opposite sign with ``|y_{t-1}|, |y_t| > tanh(1)``, every LSTM has
    ``max(|h_{t-1} - y_{t-1}|, |h_t - y_t|) >= min(|y_{t-1}|, |y_t|) - tanh(1)``.  Proof (y_{t-1} > 0
    > y_t; the other sign is symmetric): if ``c_{t-1} >= 0`` then ``c_t = f c_{t-1} + i g >= -1``
    (f >= 0, 0 <= i <= 1, |g| <= 1), so ``h_t = o tanh(c_t) >= -tanh(1)``; if ``c_{t-1} < 0`` then
    ``h_{t-1} = o tanh(c_{t-1}) <= 0``.  Weights, size and initial state play no role.

    Returns ``max_abs`` (bound on the largest error) and ``mse`` (bound on the mean squared error,
    from disjoint such pairs taken greedily).
    """
    y = [float(v) for v in torch.as_tensor(y).reshape(-1)]
    margins = [min(abs(a), abs(b)) - TANH1 if a * b < 0 else 0.0 for a, b in zip(y, y[1:])]
    margins = [max(m, 0.0) for m in margins]
    total, t = 0.0, 0
    while t < len(margins):
        if margins[t] > 0:
            total += margins[t] ** 2
            t += 2
        else:
            t += 1
    return {"max_abs": max(margins, default=0.0), "mse": total / max(len(y), 1)}


def flip_bound_curve(amplitudes, *, steps: int = 8) -> np.ndarray:
    """:func:`lstm_flip_bound` (largest-error bound) of the GRU targets, per amplitude."""
    _, y = gru_alternating_targets(amplitudes, steps=steps)
    return np.array([lstm_flip_bound(row)["max_abs"] for row in y])


@one_thread
def random_lstm_flip_check(*, trials: int = 40, steps: int = 40, size: int = 8, seed: int = 0) -> dict:
    """Test the one-step property behind :func:`lstm_flip_bound` on random real LSTM cells.

    Weights of scale 0.5 to 32, initial states ``c_0 ~ N(0, 5^2)``, inputs ``N(0, 3^2)``.  Reports the
    smallest ``h_t`` seen after ``c_{t-1} >= 0``, the largest ``h_t`` after ``c_{t-1} <= 0``, how many
    step pairs were examined, how many violated ``h_t >= -tanh(1)`` (resp. ``<= tanh(1)``), and the
    smallest ``margin`` to the bound (``>= 0`` when the property holds; 0 when an extreme reaches it).
    """
    gen = torch.Generator().manual_seed(seed + 4)
    scales = (0.5, 2.0, 8.0, 32.0)
    low, high, pairs, violations = math.inf, -math.inf, 0, 0
    for trial in range(trials):
        cell = random_cell("lstm", 3, size, seed=seed * 1000 + trial,
                           weight_scale=scales[trial % len(scales)])
        c0 = 5 * torch.randn(4, size, generator=gen, dtype=DTYPE)
        h0 = 2 * torch.rand(4, size, generator=gen, dtype=DTYPE) - 1
        x = 3 * torch.randn(steps, 4, 3, generator=gen, dtype=DTYPE)
        tr = run_lstm(cell, x, h0=h0, c0=c0)
        c_prev, h = torch.cat([c0[None], tr["c"][:-1]]), tr["h"]
        after_pos, after_neg = h[c_prev >= 0], h[c_prev <= 0]
        if after_pos.numel():
            low = min(low, float(after_pos.min()))
        if after_neg.numel():
            high = max(high, float(after_neg.max()))
        pairs += h.numel()
        violations += int((after_pos < -TANH1).sum()) + int((after_neg > TANH1).sum())
    return {"min_h_after_nonneg_c": low, "max_h_after_nonpos_c": high, "pairs": pairs,
            "violations": violations, "margin": min(low + TANH1, TANH1 - high)}


@one_thread
def fit_lstm_outputs(x, targets, *, restarts: int = 8, steps: int = 1000, lr: float = 0.05,
                     seed: int = 0, progress: bool = False) -> dict:
    """Best 1-unit LSTM (weights AND initial state free) for each target output sequence.

    All ``K * restarts`` independent 1-unit LSTMs train at once as one ``nn.LSTMCell(1, K*restarts)``
    whose recurrent matrix is kept diagonal within each gate (so unit j only sees its own h_j); Adam on
    the mean squared error.  The best restart per target is then copied into a standalone
    ``nn.LSTMCell(1, 1)`` and re-run: ``extraction_error`` is the largest difference (should be ~0).
    Returns per target: ``mse``, ``max_abs``, ``outputs`` (K, T), plus ``cells`` and ``initial``.
    """
    x = torch.as_tensor(x, dtype=DTYPE).reshape(-1, 1, 1)
    y = torch.as_tensor(targets, dtype=DTYPE)
    n_targets, n_steps = y.shape
    units = n_targets * restarts
    gen = torch.Generator().manual_seed(seed)
    cell = nn.LSTMCell(1, units).to(DTYPE)
    mask = torch.eye(units, dtype=DTYPE).repeat(4, 1)
    with torch.no_grad():
        for p in cell.parameters():
            p.copy_(2 * torch.rand(p.shape, generator=gen, dtype=DTYPE) - 1)
        cell.weight_hh.mul_(mask)
    cell.weight_hh.register_hook(lambda grad: grad * mask)
    h0 = nn.Parameter(torch.zeros(1, units, dtype=DTYPE))
    c0 = nn.Parameter(torch.randn(1, units, generator=gen, dtype=DTYPE))
    y_units = y.repeat_interleave(restarts, dim=0)
    opt = torch.optim.Adam(list(cell.parameters()) + [h0, c0], lr=lr)

    def forward():
        h, c, outs = h0, c0, []
        for t in range(n_steps):
            h, c = cell(x[t], (h, c))
            outs.append(h[0])
        return torch.stack(outs, dim=1)

    for step in range(steps):
        opt.zero_grad()
        loss = ((forward() - y_units) ** 2).mean(dim=1).sum()
        loss.backward()
        opt.step()
        if progress and (step + 1) % max(steps // 4, 1) == 0:
            print(f"fit step {step + 1}/{steps}: summed MSE {float(loss):.4g}")
    with torch.no_grad():
        err = forward() - y_units
    mse = (err ** 2).mean(dim=1).reshape(n_targets, restarts)
    best = mse.argmin(dim=1)
    out = {"mse": [], "max_abs": [], "outputs": [], "cells": [], "initial": []}
    extraction = 0.0
    for k in range(n_targets):
        j = k * restarts + int(best[k])
        single = nn.LSTMCell(1, 1).to(DTYPE)
        rows = [g * units + j for g in range(4)]
        with torch.no_grad():
            single.weight_ih.copy_(cell.weight_ih[rows])
            single.weight_hh.copy_(cell.weight_hh[rows, j:j + 1])
            single.bias_ih.copy_(cell.bias_ih[rows])
            single.bias_hh.copy_(cell.bias_hh[rows])
        init = (float(h0.detach()[0, j]), float(c0.detach()[0, j]))
        h = run_lstm(single, x, h0=init[0], c0=init[1])["h"][:, 0, 0]
        extraction = max(extraction, float((h - (err[j] + y_units[j])).abs().max()))
        e = h - y[k]
        out["mse"].append(float((e ** 2).mean()))
        out["max_abs"].append(float(e.abs().max()))
        out["outputs"].append(h)
        out["cells"].append(single)
        out["initial"].append(init)
    out["outputs"] = torch.stack(out["outputs"])
    out["extraction_error"] = extraction
    return out


@one_thread
def counterexample_demo(amplitudes, *, steps: int = 8, restarts: int = 8, fit_steps: int = 1000,
                        seed: int = 0, progress: bool = False) -> dict:
    """GRU targets (:func:`gru_alternating_targets`), their provable LSTM bounds and best LSTM fits."""
    x, y = gru_alternating_targets(amplitudes, steps=steps)
    fit = fit_lstm_outputs(x, y, restarts=restarts, steps=fit_steps, seed=seed, progress=progress)
    bounds = [lstm_flip_bound(row) for row in y]
    rows = []
    for k, a in enumerate(amplitudes):
        rows.append({"amplitude": float(a), "gru_min_abs_output": float(y[k].abs().min()),
                     "bound_max_abs": bounds[k]["max_abs"], "fit_max_abs": fit["max_abs"][k],
                     "bound_mse": bounds[k]["mse"], "fit_mse": fit["mse"][k]})
    return {"x": x, "y": y, "fit": fit, "rows": rows}


# -- reporting ------------------------------------------------------------------------------------
def _fmt(value) -> str:
    if isinstance(value, bool) or not isinstance(value, (float, np.floating)):
        return str(value)
    value = float(value)
    if value == 0 or 1e-3 <= abs(value) < 1e4:
        return f"{value:.4g}"
    return f"{value:.2e}"


def markdown_table(headers, rows) -> str:
    """A Markdown table with numbers in a compact format (see ``seqmnist.notebook``)."""
    from .notebook import markdown_table as table

    return table(list(headers), [[_fmt(v) for v in row] for row in rows])


# -- figures --------------------------------------------------------------------------------------
def plot_keep(demos: dict, curves: dict, saturations):
    """Left: stored value (unit 0) vs time per demo; right: largest drift vs gate bias magnitude."""
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    for label, d in demos.items():
        ax1.plot(d["stored"][:, 0].numpy(), label=label)
    ax1.set(xlabel="step t", ylabel="stored value (unit 0)", title="state under varying inputs")
    ax1.legend(fontsize=8)
    for label, curve in curves.items():
        ax2.semilogy(saturations, curve, marker="o", label=label)
    ax2.set(xlabel="gate bias magnitude s", ylabel="max drift over the run",
            title="drift vs saturation")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_counterexample(demo: dict, bound_grid, bound_values):
    """Left: GRU target vs best LSTM fit (largest amplitude); right: residual vs amplitude + bound."""
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    steps = range(1, demo["y"].shape[1] + 1)
    ax1.plot(steps, demo["y"][-1].numpy(), "o-", label="GRU output (target)")
    ax1.plot(steps, demo["fit"]["outputs"][-1].numpy(), "s--", label="best 1-unit LSTM")
    for sign in (1, -1):
        ax1.axhline(sign * TANH1, color="grey", lw=0.8, ls=":")
    ax1.set(xlabel="step t", ylabel="output h_t", title="largest amplitude")
    ax1.legend(fontsize=8)
    amps = [r["amplitude"] for r in demo["rows"]]
    ax2.plot(bound_grid, bound_values, color="grey", label="proved lower bound")
    ax2.plot(amps, [r["fit_max_abs"] for r in demo["rows"]], "o", label="best LSTM fit (max error)")
    ax2.axvline(TANH1, color="grey", lw=0.8, ls=":")
    ax2.set(xlabel="GRU output amplitude A", ylabel="max |h_t - y_t|",
            title="no LSTM reaches the GRU output")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return fig
