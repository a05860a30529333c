"""Sampling from a next-pixel predictor with carried state: O(T) per continuation.

Conventions (0-based reading positions, 784 pixels per image):

* ``model(x[:t])`` returns logits whose step ``t-1`` is the logit of ``p(x_t = 1 | x_0..x_{t-1})``;
  pixel 0 has no prediction (there is no "before"), so a prefix must hold at least one pixel and
  at most 783 (pixel 783 is the last one that can be predicted).
* A prefix is run **once**; its final state is repeated over the samples (image-major: row
  ``i * samples + s`` is sample ``s`` of image ``i``) and each new pixel costs one recurrent step.
  Re-running the whole prefix at every step would cost O(T^2).
* ``probs`` returned with generated pixels are the model's own ``p(x_t = 1 | generated history)``
  at temperature 1, so ``-log p(sample | prefix)`` needs no second pass (``Continuation.nll``).
* Randomness comes only from the ``torch.Generator`` passed in (uniforms ``u``; a pixel is 1 where
  ``u < p``), so a seeded generator reproduces the same samples for the same inputs and batch.
* Greedy mode takes ``x_t = 1`` where ``p > 0.5`` (a tie at exactly 0.5 gives 0).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from .errors import ConfigError
from .models import SEQUENCE_LENGTH

MODES = ("sample", "greedy")
#: steps per recurrent call in long scans: bounds the (steps, batch, units) output in memory
TIME_CHUNK = 64
#: value of the pixels a completion leaves unknown (the in-painting sets' "missing")
NOT_GENERATED = -1.0


# --------------------------------------------------------------------------- checks and tensors


def check_predictor(model) -> None:
    """ConfigError unless ``model`` is a next-pixel predictor (task 'predict')."""
    task = getattr(model, "task", None)
    if task != "predict":
        raise ConfigError(f"generation and in-painting need a next-pixel predictor (task "
                          f"'predict'), got a model with task {task!r}")


def model_dtype_device(model) -> tuple[torch.dtype, torch.device]:
    parameter = next(model.parameters())
    return parameter.dtype, parameter.device


def as_pixels(pixels, model, name: str = "pixels", ndim: int = 2) -> torch.Tensor:
    """``pixels`` (numpy or torch) as a tensor of the model's dtype and device, checked binary."""
    dtype, device = model_dtype_device(model)
    tensor = torch.as_tensor(np.asarray(pixels) if not torch.is_tensor(pixels) else pixels)
    if tensor.dim() != ndim:
        raise ConfigError(f"{name} must have {ndim} dimensions, got shape {tuple(tensor.shape)}")
    tensor = tensor.to(device=device, dtype=dtype)
    if tensor.numel() and not bool(((tensor == 0) | (tensor == 1)).all()):
        raise ConfigError(f"{name} must hold only 0 and 1")
    return tensor


def _check_prefix_length(k: int) -> None:
    if k < 1:
        raise ConfigError("a prefix needs at least 1 pixel: the model predicts pixel t+1 from "
                          "pixels 1..t, and pixel 1 has nothing before it")
    if k > SEQUENCE_LENGTH - 1:
        raise ConfigError(f"a prefix of {k} pixels leaves nothing to predict (at most "
                          f"{SEQUENCE_LENGTH - 1})")


def _check_steps(k: int, n_steps: int) -> None:
    if n_steps < 1:
        raise ConfigError(f"n_steps must be at least 1, got {n_steps}")
    if k + n_steps > SEQUENCE_LENGTH:
        raise ConfigError(f"a prefix of {k} pixels plus {n_steps} steps overruns the "
                          f"{SEQUENCE_LENGTH}-pixel image (at most {SEQUENCE_LENGTH - k} steps)")


def inference(fn):
    """Run ``fn(model, ...)`` without gradients and with ``model`` in evaluation mode (no
    dropout), restoring its mode afterwards."""

    @functools.wraps(fn)
    def wrapper(model, *args, **kwargs):
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                return fn(model, *args, **kwargs)
        finally:
            model.train(was_training)

    return wrapper


# --------------------------------------------------------------------------- recurrent state


def state_select(state, index: torch.Tensor):
    """The sequences ``index`` of a state (LSTM (h, c) tuple or GRU tensor, batch on dim 1)."""
    if isinstance(state, tuple):
        return tuple(s.index_select(1, index) for s in state)
    return state.index_select(1, index)


def state_repeat(state, repeats: int):
    """Each sequence's state repeated ``repeats`` times, image-major (i0, i0, ..., i1, i1, ...)."""
    if repeats == 1:
        return state
    if isinstance(state, tuple):
        return tuple(s.repeat_interleave(repeats, dim=1) for s in state)
    return state.repeat_interleave(repeats, dim=1)


def _state_like(state):
    if isinstance(state, tuple):
        return tuple(torch.zeros_like(s) for s in state)
    return torch.zeros_like(state)


def _state_copy_into(target, source, index: torch.Tensor) -> None:
    if isinstance(target, tuple):
        for t, s in zip(target, source):
            t[:, index] = s[:, index]
    else:
        target[:, index] = source[:, index]


class Stepper:
    """The recurrent core of a predictor outside ``model.forward``: one step at a time for
    generation loops (``__call__``), or known inputs over many steps (``run``).

    On CPU the LSTM step is written out (one matmul per layer into a gate buffer, then the cell's
    elementwise update in place, tanh computed as 2 sigmoid(2a) - 1), and a single step is the
    same loop run once (see benchmarks/bench_generate.py for the sampling time); a GRU calls
    ``torch.gru`` with the input affine folded in. Elsewhere it defers to ``model(x, state)``.
    The logits are those of ``model`` in evaluation mode (no dropout) up to rounding.
    """

    def __init__(self, model):
        check_predictor(model)
        self.model = model
        core = model.core
        self.direct = not next(model.parameters()).is_cuda
        if self.direct:
            with torch.no_grad():
                self.weights = [w.detach() for w in core.folded_weights()]
            self.layers = core.rnn.num_layers
            self.lstm = core.arch.cell == "lstm"
            self.head_weight = model.head.weight.detach()
            self.head_bias = model.head.bias.detach()
            if self.lstm:
                self.cells = [self._lstm_layer(*self.weights[4 * i:4 * i + 4])
                              for i in range(self.layers)]

    @staticmethod
    def _lstm_layer(w_ih, w_hh, b_ih, b_hh):
        """(weights, bias) of one layer for ``run``: W^T with the cell-input rows doubled (gate order
        i, f, g, o). A scalar-input layer (the first, input affine folded in) stacks W_hh^T over
        the input row, so that one matmul of [h, x] takes both; others keep (W_ih^T, W_hh^T)."""
        hidden = w_hh.shape[1]
        scale = torch.ones(4 * hidden, dtype=w_hh.dtype)
        scale[2 * hidden:3 * hidden] = 2.0
        w_in_t, w_hh_t = (w_ih * scale[:, None]).t(), (w_hh * scale[:, None]).t()
        weights = (torch.cat([w_hh_t, w_in_t]).contiguous() if w_ih.shape[1] == 1
                   else (w_in_t.contiguous(), w_hh_t.contiguous()))
        return weights, (b_ih + b_hh) * scale

    @property
    def written_out(self) -> bool:
        """True when ``run`` loops the written-out LSTM step (short calls cost no more per step)."""
        return self.direct and self.lstm

    @torch.no_grad()
    def run(self, inputs: torch.Tensor, state):
        """inputs (T, B) pixels from ``state`` -> (logits (T, B), state after them).

        A CPU LSTM runs the written-out step in a loop over buffers allocated once per call: at
        about a thousand sequences its matmul nears the core's peak, and full passes run about
        1.5x faster than through the fused ``torch.lstm`` call (benchmarks/bench_generate.py, the
        last two naive baselines). Anything else calls ``model``.
        """
        if not self.written_out:
            return self.model(inputs.unsqueeze(-1), state)
        steps, batch = inputs.shape
        h_all, c_all = state
        hidden = h_all.shape[-1]
        logits = inputs.new_empty(steps, batch)
        if steps == 0:
            return logits, state
        gates = inputs.new_empty(batch, 4 * hidden)
        squashed = inputs.new_empty(batch, hidden)
        # a layer's h is read by the next step after the layer above has used it: two buffers per
        # layer, written alternately (no per-step or per-call (T, B, H) allocation: page faults).
        # The first layer's buffers carry one more column, the pixel its next step reads.
        spare = [inputs.new_empty(2, batch, hidden + (layer == 0)) for layer in range(self.layers)]
        spare[0][1, :, :hidden] = h_all[0]
        spare[0][1, :, hidden] = inputs[0]
        head = self.head_weight[0]
        hs = [spare[0][1]] + list(h_all.unbind(0))[1:]
        cs = [c.clone() for c in c_all.unbind(0)]
        for t in range(steps):
            for layer, (weights, bias) in enumerate(self.cells):
                if layer == 0:
                    torch.addmm(bias, hs[0], weights, out=gates)   # [h, x] @ [W_hh; W_in]
                else:
                    torch.addmm(bias, hs[layer], weights[1], out=gates)
                    gates.addmm_(layer_input, weights[0])
                gates.sigmoid_()
                i, f, g, o = gates.split(hidden, dim=1)
                # c = f c + i tanh(a_g) with tanh(a) = 2 sigmoid(2a) - 1 (the g rows are doubled)
                c = cs[layer].mul_(f).addcmul_(i, g, value=2.0).sub_(i)
                torch.mul(c, 2.0, out=squashed).sigmoid_().mul_(2.0).sub_(1.0)
                buffer = spare[layer][t % 2]
                h = torch.mul(o, squashed, out=buffer[:, :hidden])
                if layer == 0:
                    if t + 1 < steps:
                        buffer[:, hidden] = inputs[t + 1]
                    hs[0] = buffer
                else:
                    hs[layer] = h
                layer_input = h
            torch.mv(layer_input, head, out=logits[t])
        logits += self.head_bias
        hs[0] = hs[0][:, :hidden]
        return logits, (torch.stack(hs), torch.stack(cs))

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, state):
        """x (N,) pixels and the state before them -> (logits (N,) of the next pixels, state)."""
        if not self.direct:
            out, state = self.model(x.view(1, -1, 1), state)
            return out[0], state
        if self.lstm:
            logits, state = self.run(x.view(1, -1), state)
            return logits[0], state
        out, state = torch.gru(x.view(1, -1, 1), state, self.weights, True, self.layers, 0.0,
                               False, False, False)
        return F.linear(out[0], self.head_weight, self.head_bias)[:, 0], state


@dataclass
class Scan:
    """Result of ``scan``: logits (T, B), the final state and optional per-sequence snapshots."""

    logits: torch.Tensor
    state: object
    snapshots: object = None


@inference
def scan(model, inputs: torch.Tensor, state=None, snap_at: torch.Tensor | None = None,
         time_chunk: int = TIME_CHUNK) -> Scan:
    """Run ``inputs`` (T, B) through ``model`` from ``state`` (None: the zero state).

    ``logits[t, b]`` predicts the pixel after ``inputs[t, b]``. With ``snap_at`` (B,) integers in
    0..T, ``snapshots`` holds, for each sequence b, the state after consuming
    ``inputs[:snap_at[b]]``
    (so ``snap_at = 0`` gives the starting state). Long scans run in chunks of ``time_chunk``
    steps with the state carried, which is exact and keeps memory at one chunk's outputs.
    """
    steps, batch = inputs.shape
    run = Stepper(model).run
    if state is None:
        state = model.core.initial_state(batch, inputs.device, inputs.dtype)
    logits = inputs.new_empty(steps, batch)
    cuts = set(range(0, steps, max(1, time_chunk))) | {steps}
    snaps = None
    if snap_at is not None:
        snap_at = torch.as_tensor(snap_at, device=inputs.device).long()
        if snap_at.shape != (batch,) or bool((snap_at < 0).any()) or bool((snap_at > steps).any()):
            raise ValueError(f"snap_at must be ({batch},) integers in 0..{steps}")
        cuts |= set(int(v) for v in snap_at.unique())
        snaps = _state_like(state)
        zero = torch.nonzero(snap_at == 0).flatten()
        if len(zero):
            _state_copy_into(snaps, state, zero)
    cuts = sorted(cuts)
    for t0, t1 in zip(cuts[:-1], cuts[1:]):
        out, state = run(inputs[t0:t1], state)
        logits[t0:t1] = out
        if snap_at is not None:
            hit = torch.nonzero(snap_at == t1).flatten()
            if len(hit):
                _state_copy_into(snaps, state, hit)
    return Scan(logits, state, snaps)


@inference
def prefix_state(model, prefixes: torch.Tensor):
    """Run the prefixes (B, k) once.

    Returns (logit of pixel k (B,), the state after pixel k-1, all logits (k, B)).
    """
    check_predictor(model)
    prefixes = as_pixels(prefixes, model, "prefixes")
    _check_prefix_length(prefixes.shape[1])
    logits, state = model(prefixes.t().unsqueeze(-1))
    return logits[-1], state, logits


# --------------------------------------------------------------------------- continuation


@dataclass
class Continuation:
    """Generated pixels (B, S, n) and the model's p(pixel = 1) at each step (B, S, n)."""

    pixels: torch.Tensor
    probs: torch.Tensor
    prefix_length: int

    @property
    def n_steps(self) -> int:
        return self.pixels.shape[-1]

    def nll(self) -> torch.Tensor:
        """(B, S): -log p(generated pixels | prefix) in nats (temperature-1 model probabilities)."""
        return binary_cross_entropy(self.probs, self.pixels).sum(-1)


def binary_cross_entropy(probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Elementwise -[y log p + (1-y) log(1-p)] in nats, logs clamped at -100 like PyTorch's."""
    probs = torch.as_tensor(probs)
    targets = torch.as_tensor(targets, dtype=probs.dtype)
    log_p = torch.log(probs).clamp(min=-100)
    log_q = torch.log1p(-probs).clamp(min=-100)
    return -(targets * log_p + (1 - targets) * log_q)


@inference
def continue_from_state(model, logit: torch.Tensor, state, n_steps: int, samples: int = 1,
                        mode: str = "sample", generator: torch.Generator | None = None,
                        temperature: float = 1.0, prefix_length: int = 0) -> Continuation:
    """Generate ``n_steps`` pixels for each of B states, ``samples`` times each.

    ``logit`` (B,) is the logit of the first pixel to generate and ``state`` the recurrent state
    after the pixel before it (as returned by ``prefix_state``). The state is repeated, not
    recomputed; each step is one recurrent step on B * samples sequences.
    """
    check_predictor(model)
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
    if not temperature > 0:
        raise ConfigError(f"temperature must be positive, got {temperature}")
    if samples < 1:
        raise ConfigError(f"samples must be at least 1, got {samples}")
    if n_steps < 1:
        raise ConfigError(f"n_steps must be at least 1, got {n_steps}")
    step_fn = Stepper(model)
    batch = logit.shape[0]
    total = batch * samples
    logit = logit.repeat_interleave(samples)
    state = state_repeat(state, samples)
    pixels = logit.new_empty(n_steps, total)
    probs = logit.new_empty(n_steps, total)
    for step in range(n_steps):
        p = torch.sigmoid(logit)
        probs[step] = p
        if mode == "greedy":
            x = (p > 0.5).to(p.dtype)
        else:
            p_draw = p if temperature == 1.0 else torch.sigmoid(logit / temperature)
            gen_device = generator.device if generator is not None else p.device
            u = torch.rand(total, generator=generator, dtype=p.dtype, device=gen_device)
            x = (u.to(p.device) < p_draw).to(p.dtype)
        pixels[step] = x
        if step + 1 < n_steps:
            logit, state = step_fn(x, state)
    shape = (batch, samples, n_steps)
    return Continuation(pixels.t().reshape(shape), probs.t().reshape(shape), prefix_length)


@inference
def continue_sequences(model, prefixes, n_steps: int, samples: int = 1, mode: str = "sample",
                       generator: torch.Generator | None = None,
                       temperature: float = 1.0) -> Continuation:
    """Continue each prefix (B, k) by ``n_steps`` pixels, ``samples`` times: (B, S, n) pixels.

    The prefix runs once; then one recurrent step per generated pixel on all B * S sequences.
    ConfigError for a classifier, an empty prefix, a prefix longer than 783 pixels or
    ``k + n_steps > 784``.
    """
    check_predictor(model)
    prefixes = as_pixels(prefixes, model, "prefixes")
    k = prefixes.shape[1]
    _check_prefix_length(k)
    _check_steps(k, n_steps)
    logit, state, _ = prefix_state(model, prefixes)
    return continue_from_state(model, logit, state, n_steps, samples, mode, generator,
                               temperature, prefix_length=k)


@inference
def one_step_predictions(model, pixels, batch_size: int = 1000,
                         first_pixel: float = 0.5) -> torch.Tensor:
    """(N, 784) p(x_t = 1 | true x_0..x_{t-1}) for every pixel: one forward pass per batch.

    Pixel 0 has no prediction; its column is ``first_pixel`` (0.5, a uniform guess; pass
    ``float('nan')`` to mark it).
    """
    check_predictor(model)
    pixels = as_pixels(pixels, model)
    if pixels.shape[1] < 2:
        raise ConfigError("one-step predictions need sequences of at least 2 pixels")
    out = pixels.new_empty(pixels.shape)
    out[:, 0] = first_pixel
    for start in range(0, len(pixels), batch_size):
        batch = pixels[start:start + batch_size]
        logits, _ = model(batch.t().unsqueeze(-1))
        out[start:start + batch_size, 1:] = torch.sigmoid(logits[:-1]).t()
    return out


@inference
def log_prob(model, prefixes, continuations) -> torch.Tensor:
    """log p(continuation | prefix) in nats, summed over the continuation.

    ``prefixes`` (B, k); ``continuations`` (B, n) -> (B,), or (B, S, n) -> (B, S) (S continuations
    of each prefix, scored from the prefix state repeated S times). One forward pass over
    prefix + continuation (the prefix once).
    """
    check_predictor(model)
    prefixes = as_pixels(prefixes, model, "prefixes")
    squeeze = len(tuple(continuations.shape)) == 2
    conts = as_pixels(continuations, model, "continuations", ndim=2 if squeeze else 3)
    if squeeze:
        conts = conts.unsqueeze(1)
    batch, k = prefixes.shape
    if conts.shape[0] != batch:
        raise ConfigError(f"{batch} prefixes but {conts.shape[0]} continuations")
    _check_prefix_length(k)
    _check_steps(k, conts.shape[-1])
    samples, n = conts.shape[1], conts.shape[2]
    logit, state, _ = prefix_state(model, prefixes)
    flat = conts.reshape(batch * samples, n)
    logits = [logit.repeat_interleave(samples).unsqueeze(0)]
    if n > 1:
        logits.append(scan(model, flat[:, :-1].t(), state_repeat(state, samples)).logits)
    logits = torch.cat(logits)  # (n, B*S)
    nll = F.binary_cross_entropy_with_logits(logits, flat.t(), reduction="none").sum(0)
    out = -nll.reshape(batch, samples)
    return out[:, 0] if squeeze else out


def image_nll(model, images) -> torch.Tensor:
    """-sum_{t=1}^{783} log p(x_t | x_<t) of each whole image (N, 784), in nats per image."""
    images = as_pixels(images, model, "images")
    probs = one_step_predictions(model, images)
    return binary_cross_entropy(probs[:, 1:], images[:, 1:]).sum(1)


# --------------------------------------------------------------------------- completions


@dataclass
class Completion:
    """Images (N, S, 784) = true prefix, ``n_steps`` generated pixels, then ``rest`` (-1)."""

    images: torch.Tensor
    probs: torch.Tensor  # (N, S, 784): p(x_t = 1) at generated pixels, NaN elsewhere
    prefix_length: int
    n_steps: int
    mode: str


@inference
def complete(model, images, prefix_length: int, n_steps: int | None = None, samples: int = 1,
             mode: str = "sample", generator: torch.Generator | None = None,
             temperature: float = 1.0, rest: float = NOT_GENERATED) -> Completion:
    """Keep the first ``prefix_length`` pixels of each image (N, 784) and generate ``n_steps``
    more (None: fill out the image to pixel 783); later pixels are set to ``rest``."""
    check_predictor(model)
    images = torch.as_tensor(images)
    if images.dim() != 2 or images.shape[1] != SEQUENCE_LENGTH:
        raise ConfigError(f"images must be (N, {SEQUENCE_LENGTH}), got {tuple(images.shape)}")
    _check_prefix_length(prefix_length)
    prefixes = as_pixels(images[:, :prefix_length], model, "image prefixes")
    if n_steps is None:
        n_steps = SEQUENCE_LENGTH - prefix_length
    _check_steps(prefix_length, n_steps)
    cont = continue_sequences(model, prefixes, n_steps, samples, mode, generator, temperature)
    count = len(prefixes)
    out = prefixes.new_full((count, samples, SEQUENCE_LENGTH), rest)
    out[:, :, :prefix_length] = prefixes[:, None, :]
    end = prefix_length + n_steps
    out[:, :, prefix_length:end] = cont.pixels
    probs = prefixes.new_full((count, samples, SEQUENCE_LENGTH), float("nan"))
    probs[:, :, prefix_length:end] = cont.probs
    return Completion(out, probs, prefix_length, n_steps, mode)


def continuation_grid(model, images, prefix_length: int, horizons=(10, 28, None),
                      samples: int = 1, mode: str = "sample",
                      generator: torch.Generator | None = None) -> dict:
    """{horizon: Completion} for each horizon (None = fill out the image), drawn independently:
    the 10-step and one-row (28-step) continuations and the whole-image fill of the assignment."""
    grid = {}
    for horizon in horizons:
        key = SEQUENCE_LENGTH - prefix_length if horizon is None else horizon
        grid[key] = complete(model, images, prefix_length, key, samples, mode, generator)
    return grid


def fill_out(model, images, prefix_length: int, samples: int = 1, mode: str = "sample",
             generator: torch.Generator | None = None) -> Completion:
    """Generate every pixel after the first ``prefix_length`` (to the end of the image)."""
    return complete(model, images, prefix_length, None, samples, mode, generator)


__all__ = ["check_predictor", "inference", "Stepper", "state_select", "state_repeat", "scan", "prefix_state",
           "Continuation", "binary_cross_entropy", "continue_from_state", "continue_sequences",
           "one_step_predictions", "log_prob", "Completion", "complete", "continuation_grid",
           "fill_out", "MODES", "NOT_GENERATED"]
