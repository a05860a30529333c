"""fused_gru against torch.gru: outputs, final states and every gradient, in float64."""

import pytest
import torch

from seqmnist.fused_gru import _WORKSPACE, clear_workspace, fused_gru

TOL = dict(rtol=1e-10, atol=1e-10)


def make_case(steps, batch, inputs, hidden, layers, dtype=torch.float64, seed=0):
    generator = torch.Generator().manual_seed(seed)

    def rand(*shape, scale=2.0 / hidden ** 0.5):  # a bit above PyTorch's init: gates not saturated
        return (torch.randn(*shape, generator=generator, dtype=dtype) * scale).requires_grad_()

    weights = []
    for layer in range(layers):
        size = inputs if layer == 0 else hidden
        weights += [rand(3 * hidden, size), rand(3 * hidden, hidden), rand(3 * hidden), rand(3 * hidden)]
    x = rand(steps, batch, inputs, scale=1.0)
    h0 = rand(layers, batch, hidden)
    return x, h0, weights


def reference(x, h0, weights, layers):
    return torch.gru(x, h0, weights, True, layers, 0.0, False, False, False)


def outputs_and_grads(fn, x, h0, weights, layers, seed=1):
    """(output, h_n, gradients of a random linear functional w.r.t. x, h0 and every weight)."""
    out, h_n = fn(x, h0, weights, layers)
    generator = torch.Generator().manual_seed(seed)
    a = torch.randn(out.shape, generator=generator, dtype=out.dtype)
    b = torch.randn(h_n.shape, generator=generator, dtype=out.dtype)
    inputs = [t for t in [x, h0, *weights] if t.requires_grad]
    grads = torch.autograd.grad((out * a).sum() + (h_n * b).sum(), inputs)
    return out.detach(), h_n.detach(), grads


CASES = {
    "1 layer, input size 1": (50, 4, 1, 16, 1),
    "1 layer, input size H": (50, 4, 16, 16, 1),
    "3 layers, input size 1": (50, 4, 1, 16, 3),
    "2 layers, input size 5": (40, 3, 5, 8, 2),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_matches_torch_gru(case):
    steps, batch, inputs, hidden, layers = CASES[case]
    x, h0, weights = make_case(steps, batch, inputs, hidden, layers)
    out, h_n, grads = outputs_and_grads(fused_gru, x, h0, weights, layers)
    ref_out, ref_h_n, ref_grads = outputs_and_grads(reference, x, h0, weights, layers)
    assert out.shape == (steps, batch, hidden) and h_n.shape == (layers, batch, hidden)
    torch.testing.assert_close(out, ref_out, **TOL)
    torch.testing.assert_close(h_n, ref_h_n, **TOL)
    names = ["x", "h0"] + [f"{n}_l{i}" for i in range(layers) for n in ("w_ih", "w_hh", "b_ih", "b_hh")]
    assert len(grads) == len(names)
    for name, g, ref in zip(names, grads, ref_grads):
        torch.testing.assert_close(g, ref, **TOL, msg=lambda m: f"gradient w.r.t. {name}: {m}")


def test_only_weights_require_grad():
    """As in the models: pixels and initial state are constants, only the weights learn."""
    x, h0, weights = make_case(30, 4, 1, 8, 2)
    x, h0 = x.detach(), h0.detach()
    _, _, grads = outputs_and_grads(fused_gru, x, h0, weights, 2)
    _, _, ref_grads = outputs_and_grads(reference, x, h0, weights, 2)
    for g, ref in zip(grads, ref_grads):
        torch.testing.assert_close(g, ref, **TOL)


def test_without_autograd_matches():
    x, h0, weights = make_case(75, 4, 1, 16, 2)  # more steps than one evaluation chunk
    ref_out, ref_h_n = reference(x, h0, weights, 2)
    with torch.no_grad():
        out, h_n = fused_gru(x, h0, weights, 2)
    assert not out.requires_grad
    torch.testing.assert_close(out, ref_out.detach(), **TOL)
    torch.testing.assert_close(h_n, ref_h_n.detach(), **TOL)


def test_float32():
    x, h0, weights = make_case(60, 4, 1, 16, 2, dtype=torch.float32)
    out, h_n, grads = outputs_and_grads(fused_gru, x, h0, weights, 2)
    ref_out, ref_h_n, ref_grads = outputs_and_grads(reference, x, h0, weights, 2)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(h_n, ref_h_n, rtol=1e-5, atol=1e-5)
    for g, ref in zip(grads, ref_grads):
        torch.testing.assert_close(g, ref, rtol=1e-4, atol=1e-4)


def test_recycled_work_buffers_give_the_same_results():
    """Big enough for the buffer pool: repeated calls reuse (dirty) buffers, and shorter
    sequences take a prefix of a longer buffer."""
    clear_workspace()
    x, h0, weights = make_case(100, 16, 1, 96, 1)
    ref = outputs_and_grads(reference, x, h0, weights, 1)
    for steps in (100, 100, 90):
        got = outputs_and_grads(fused_gru, x[:steps], h0, weights, 1)
        want = ref if steps == 100 else outputs_and_grads(reference, x[:steps], h0, weights, 1)
        for g, r in zip([got[0], got[1], *got[2]], [want[0], want[1], *want[2]]):
            torch.testing.assert_close(g, r, **TOL)
    assert sum(len(v) for v in _WORKSPACE._free.values()) >= 1
    clear_workspace()


def test_backward_twice_with_retained_graph():
    """Backward leaves the saved buffers intact (gradcheck and retain_graph rely on it)."""
    x, h0, weights = make_case(20, 3, 1, 8, 2)
    out, h_n = fused_gru(x, h0, weights, 2)
    loss = out.square().sum() + h_n.sum()
    first = torch.autograd.grad(loss, [x, h0, *weights], retain_graph=True)
    second = torch.autograd.grad(loss, [x, h0, *weights])
    for a, b in zip(first, second):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_gradcheck():
    x, h0, weights = make_case(6, 2, 3, 4, 2)
    layers = 2

    def fn(x, h0, *weights):
        return fused_gru(x, h0, list(weights), layers)

    assert torch.autograd.gradcheck(fn, (x, h0, *weights), eps=1e-6, atol=1e-7)
