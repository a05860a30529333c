"""A whole-sequence GRU with a hand-written backward pass, for CPU training.

``fused_gru(x, h0, weights, num_layers)`` has exactly the semantics of
``torch.gru(x, h0, weights, True, num_layers, 0.0, False, False, False)`` (up to rounding):
time-major input ``(T, B, I)``, biases present, PyTorch's gate order (r, z, n) and its formulas

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
    z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    h' = (1 - z) * n + z * h = n + z * (h - n)

On CPU ``torch.gru`` is not fused (LSTM is, by oneDNN) and autograd records about a dozen small nodes
per step. Here each layer is one ``torch.autograd.Function`` over the whole sequence:

* forward: the input projections of all steps are one matmul written into a work buffer; the
  recurrent loop overwrites them in place with the gate activations (8 small ops per step, two of
  them matmuls; tanh(a) is computed as 2 sigmoid(2a) - 1, the sigmoid kernel being about four
  times faster than tanh's on this CPU);
* backward: a hand-written BPTT loop (9 small ops per step, one of them the recurrent matmul) turns
  each step's saved activations into the gate gradients; the weight, bias and input gradients are
  then a few large matmuls and one column sum over the whole gradient buffer.

Per step, the forward buffer holds five (B, H) slots and the backward buffer six, laid out so that
each group of elementwise operations is a single call on adjacent slots:

    slot:      0            1            2     3     4        5
    forward:   W_hn h+b_hn  h_{t-1} - n  r     z     n
    backward:  d r_pre      d z_pre      dghn  dh z  d n_pre  dh (gradient w.r.t. h_t)

where ``x_pre`` is a gate's pre-activation and ``dghn`` the gradient w.r.t. ``W_hn h + b_hn``; so
backward slots 0..2 are the gradient w.r.t. ``W_hh h + b_hh`` in PyTorch's (r, z, n) order and
slots 0, 1, 4 the gradient w.r.t. ``W_ih x + b_ih``. Backward leaves the forward buffer intact
(``retain_graph`` and ``gradcheck`` work). Both buffers are recycled through a small pool (the
forward one when its graph node is freed, the backward one at the end of backward), since
page-faulting a few hundred MB per batch cost as much as the arithmetic here; ``clear_workspace()``
releases the pool.

Without autograd (evaluation), the input projections are computed in chunks of steps and nothing is
saved, so memory stays near the size of the output.
"""

from __future__ import annotations

import threading
import weakref

import torch

__all__ = ["fused_gru", "gru_layer", "clear_workspace"]

_EVAL_CHUNK = 32  # time steps per input-projection chunk when no gradient is needed
_SAVED = 5   # slots per step saved by forward: W_hn h + b_hn, h - n, r, z, n
_GRADS = 6   # slots per step of backward: d r_pre, d z_pre, dghn, dh z, d n_pre, dh


class _Workspace:
    """Reusable flat work buffers per (dtype, device), so that big buffers are not page-faulted on
    every batch. A request takes the smallest free buffer that holds it (and is at most twice its
    size); new buffers get some headroom, since the number of steps varies from batch to batch (the
    shared zero prefix). A buffer is handed back when the backward pass that needed it is done."""

    MIN_BYTES = 1 << 20   # smaller requests are plain allocations
    HEADROOM = 1.25

    def __init__(self, per_key: int = 4):
        self.per_key = per_key
        self._free: dict = {}
        self._lock = threading.Lock()

    def take(self, numel: int, like: torch.Tensor) -> torch.Tensor:
        """A flat tensor of exactly ``numel`` elements (a prefix of a pooled buffer)."""
        if numel * like.element_size() < self.MIN_BYTES:
            return torch.empty(numel, dtype=like.dtype, device=like.device)
        key = (like.dtype, like.device)
        with self._lock:
            free = self._free.get(key, [])
            fits = [i for i, b in enumerate(free) if numel <= b.numel() <= 2 * numel]
            if fits:  # (by index: list.remove would compare tensors elementwise)
                best = free.pop(min(fits, key=lambda i: free[i].numel()))
                return best[:numel]
        size = int(numel * self.HEADROOM)
        return torch.empty(size, dtype=like.dtype, device=like.device)[:numel]

    def give(self, flat: torch.Tensor) -> None:
        base = flat._base if flat._base is not None else flat
        if base.numel() * base.element_size() < self.MIN_BYTES:
            return
        key = (base.dtype, base.device)
        with self._lock:
            free = self._free.setdefault(key, [])
            if any(b is base for b in free):
                return
            free.append(base)
            if len(free) > self.per_key:  # keep the largest ones
                free.pop(min(range(len(free)), key=lambda i: free[i].numel()))

    def clear(self) -> None:
        with self._lock:
            self._free.clear()


_WORKSPACE = _Workspace()


def clear_workspace() -> None:
    """Release the recycled work buffers (they are otherwise kept for the next batch)."""
    _WORKSPACE.clear()


def _input_projection(x2d: torch.Tensor, w_ih: torch.Tensor, bias: torch.Tensor, out: torch.Tensor):
    """out = x2d @ w_ih.T + bias, for (N, I) rows; a broadcast product when I == 1."""
    if x2d.shape[1] == 1:
        torch.addcmul(bias, x2d, w_ih.reshape(1, -1), out=out)
    else:
        torch.addmm(bias, x2d, w_ih.t(), out=out)


def _projection_weights(w_ih: torch.Tensor, b_ih: torch.Tensor, b_hh: torch.Tensor, hidden: int):
    """(W, b) such that x @ W.T + b = (r, z, n) input parts as the loop wants them: b_hr and b_hz
    added (b_hn must stay inside r * (W_hn h + b_hn)) and the n rows doubled, since
    tanh(a) = 2 sigmoid(2 a) - 1 is computed with the (much faster) sigmoid kernel."""
    h2 = 2 * hidden
    scale = torch.ones_like(b_ih)
    scale[h2:] = 2.0
    bias = b_ih.clone()
    bias[:h2] += b_hh[:h2]
    return w_ih * scale.unsqueeze(1), bias.mul_(scale)


class _GRULayer(torch.autograd.Function):
    """One GRU layer over a whole sequence: (x (T,B,I), h0 (B,H), weights) -> (out (T,B,H), h_n (B,H))."""

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh):
        steps, batch, _ = x.shape
        hidden = h0.shape[-1]
        h2, h3 = 2 * hidden, 3 * hidden
        flat = _WORKSPACE.take(steps * batch * _SAVED * hidden, x)
        # the buffer goes back to the pool when this graph node is freed (backward keeps it intact,
        # so that retain_graph, gradcheck and the like work)
        weakref.finalize(ctx, _WORKSPACE.give, flat).atexit = False
        work = flat.view(steps, batch, _SAVED * hidden)
        # slots 2..4 <- input projections (r, z parts with both biases)
        _input_projection(x.reshape(steps * batch, -1), *_projection_weights(w_ih, b_ih, b_hh, hidden),
                          work.view(steps * batch, _SAVED * hidden)[:, h2:h2 + h3])
        w_rz_t = w_hh[:h2].t()
        w_n_t = w_hh[h2:].t()
        b_hn = b_hh[h2:]
        out = x.new_empty(steps, batch, hidden)
        minus_one = torch.full((), -1.0, dtype=x.dtype, device=x.device)
        h = h0
        slots = work.view(steps, batch, _SAVED, hidden)
        for ghn, hmn, rz, r, z, n, o in zip(slots[:, :, 0].unbind(0), slots[:, :, 1].unbind(0),
                                            work[:, :, h2:2 * h2].unbind(0), slots[:, :, 2].unbind(0),
                                            slots[:, :, 3].unbind(0), slots[:, :, 4].unbind(0),
                                            out.unbind(0)):
            rz.addmm_(h, w_rz_t).sigmoid_()
            torch.addmm(b_hn, h, w_n_t, out=ghn)
            n.addcmul_(r, ghn, value=2.0).sigmoid_()
            torch.add(minus_one, n, alpha=2.0, out=n)        # tanh(a) = 2 sigmoid(2a) - 1
            torch.sub(h, n, out=hmn)
            torch.addcmul(n, z, hmn, out=o)
            h = o
        ctx.save_for_backward(x, h0, w_ih, w_hh, out)
        ctx.work = flat
        h_n = out[-1].clone() if steps else h0.clone()
        return out, h_n

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out, grad_hn):
        x, h0, w_ih, w_hh, out = ctx.saved_tensors
        saved = ctx.work
        steps, batch, _ = x.shape
        hidden = h0.shape[-1]
        h2, h3 = 2 * hidden, 3 * hidden
        need_x, need_h0, need_wih, need_whh, need_bih, need_bhh = ctx.needs_input_grad
        if steps == 0:  # h_n = h0; nothing else depends on the inputs
            return None, grad_hn if need_h0 else None, None, None, None, None

        fwd = saved.view(steps, batch, _SAVED, hidden)
        flat = _WORKSPACE.take(steps * batch * _GRADS * hidden, x)
        bwd = flat.view(steps, batch, _GRADS, hidden)
        bwd_2d = flat.view(steps, batch, _GRADS * hidden)
        one = torch.ones((), dtype=x.dtype, device=x.device)
        ghn_hmn = fwd[:, :, 0:2].unbind(0)                   # (ghn, h - n)
        r_z = fwd[:, :, 2:4].unbind(0)                       # (r, z)
        n_steps = fwd[:, :, 4].unbind(0)
        z_steps = fwd[:, :, 3].unbind(0)
        d_rz = bwd[:, :, 0:2].unbind(0)                      # (d r_pre, d z_pre)
        d_ghn_hz = bwd[:, :, 2:4].unbind(0)                  # (dghn, dh z)
        d_n_h = bwd[:, :, 4:6].unbind(0)                     # (d n_pre, dh)
        d_n = bwd[:, :, 4].unbind(0)
        d_h = bwd[:, :, 5].unbind(0)
        d_hz = bwd[:, :, 3].unbind(0)
        d_gh = bwd_2d[:, :, :h3].unbind(0)                   # (B, 3H): d(W_hh h + b_hh)
        grad_steps = grad_out.unbind(0)

        torch.add(grad_steps[steps - 1], grad_hn, out=d_h[steps - 1])
        grad_h0 = None
        for t in range(steps - 1, -1, -1):
            dn, n = d_n[t], n_steps[t]
            torch.addcmul(one, n, n, value=-1.0, out=dn)     # 1 - n^2
            dn.mul_(d_h[t]).addcmul_(dn, z_steps[t], value=-1.0)  # dh (1 - n^2)(1 - z) = d n_pre
            drz, rz, mult = d_rz[t], r_z[t], d_n_h[t]
            torch.mul(ghn_hmn[t], mult, out=drz)             # (ghn d n_pre, (h - n) dh)
            drz.mul_(rz).addcmul_(drz, rz, value=-1.0)       # * (r (1 - r), z (1 - z))
            torch.mul(rz, mult, out=d_ghn_hz[t])             # (r d n_pre, z dh)
            # the gradient w.r.t. h_{t-1}: grad_out[t-1] + dh z + d(W_hh h + b_hh) @ W_hh
            if t > 0:
                prev = d_h[t - 1]
                torch.add(grad_steps[t - 1], d_hz[t], out=prev)
                prev.addmm_(d_gh[t], w_hh)
            elif need_h0:
                grad_h0 = torch.addmm(d_hz[0], d_gh[0], w_hh)

        rows = bwd_2d.view(steps * batch, _GRADS * hidden)
        grad_x = grad_wih = grad_whh = grad_bih = grad_bhh = None
        if need_bih or need_bhh:
            sums = rows.sum(0)
            if need_bhh:
                grad_bhh = sums[:h3].clone()
            if need_bih:
                grad_bih = torch.cat([sums[:h2], sums[2 * h2:2 * h2 + hidden]])
        if need_whh:
            d_gh_rows = rows[:, :h3]
            # sum_t d_gh[t].T @ h_{t-1}: h_{t-1} is out[t-1], or h0 for t = 0
            grad_whh = d_gh_rows[:batch].t() @ h0
            if steps > 1:
                grad_whh.addmm_(d_gh_rows[batch:].t(), out[:-1].reshape(-1, hidden))
        if need_wih or need_x:
            d_rz_rows = rows[:, :h2]                         # d r_pre, d z_pre
            d_n_rows = rows[:, 2 * h2:2 * h2 + hidden]       # d n_pre
            x2d = x.reshape(steps * batch, -1)
            if need_wih:
                grad_wih = torch.cat([d_rz_rows.t() @ x2d, d_n_rows.t() @ x2d])
            if need_x:
                grad_x = torch.addmm(d_n_rows @ w_ih[h2:], d_rz_rows, w_ih[:h2]).view(x.shape)
        _WORKSPACE.give(flat)
        return grad_x, grad_h0, grad_wih, grad_whh, grad_bih, grad_bhh


@torch.no_grad()
def _gru_layer_inference(x, h0, w_ih, w_hh, b_ih, b_hh):
    steps, batch, _ = x.shape
    hidden = h0.shape[-1]
    h2 = 2 * hidden
    w_rz_t = w_hh[:h2].t()
    w_n_t = w_hh[h2:].t()
    b_hn = b_hh[h2:]
    w_ih, bias = _projection_weights(w_ih, b_ih, b_hh, hidden)
    out = x.new_empty(steps, batch, hidden)
    ghn = x.new_empty(batch, hidden)
    minus_one = torch.full((), -1.0, dtype=x.dtype, device=x.device)
    buffer = x.new_empty(min(steps, _EVAL_CHUNK) * batch * 3 * hidden)
    h = h0
    for start in range(0, steps, _EVAL_CHUNK):
        chunk = x[start:start + _EVAL_CHUNK]
        gates = buffer[:chunk.shape[0] * batch * 3 * hidden].view(chunk.shape[0], batch, 3 * hidden)
        _input_projection(chunk.reshape(-1, chunk.shape[-1]), w_ih, bias, gates.view(-1, 3 * hidden))
        for g, o in zip(gates.unbind(0), out[start:start + _EVAL_CHUNK].unbind(0)):
            rz = g[:, :h2]
            n = g[:, h2:]
            rz.addmm_(h, w_rz_t).sigmoid_()
            torch.addmm(b_hn, h, w_n_t, out=ghn)
            n.addcmul_(rz[:, :hidden], ghn, value=2.0).sigmoid_()
            torch.add(minus_one, n, alpha=2.0, out=n)        # tanh(a) = 2 sigmoid(2a) - 1
            torch.lerp(n, h, rz[:, hidden:], out=o)     # n + z (h - n)
            h = o
    h_n = out[-1].clone() if steps else h0.clone()
    return out, h_n


def gru_layer(x, h0, w_ih, w_hh, b_ih, b_hh):
    """One GRU layer: x (T, B, I), h0 (B, H) -> (output (T, B, H), h_n (B, H))."""
    tensors = (x, h0, w_ih, w_hh, b_ih, b_hh)
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return _GRULayer.apply(*tensors)
    return _gru_layer_inference(*tensors)


def fused_gru(x: torch.Tensor, h0: torch.Tensor, weights, num_layers: int):
    """``torch.gru(x, h0, weights, True, num_layers, 0.0, False, False, False)`` with a fused backward.

    x: (T, B, I) time-major; h0: (num_layers, B, H); weights: [w_ih, w_hh, b_ih, b_hh] per layer
    (PyTorch's flat order; layer 0's input size may be 1). Returns (output (T, B, H),
    h_n (num_layers, B, H)). No dropout between layers: use torch.gru for that.
    """
    weights = list(weights)
    if len(weights) != 4 * num_layers:
        raise ValueError(f"expected {4 * num_layers} weight tensors (with biases), got {len(weights)}")
    if x.dim() != 3 or h0.dim() != 3 or h0.shape[0] != num_layers or h0.shape[1] != x.shape[1]:
        raise ValueError(f"bad shapes: x {tuple(x.shape)}, h0 {tuple(h0.shape)}")
    layer_input = x
    finals = []
    for layer in range(num_layers):
        w_ih, w_hh, b_ih, b_hh = weights[4 * layer:4 * layer + 4]
        layer_input, h_n = gru_layer(layer_input, h0[layer], w_ih, w_hh, b_ih, b_hh)
        finals.append(h_n)
    return layer_input, torch.stack(finals)
