"""The fast paths compute exactly the plain specification: same losses, same gradients."""

import pytest
import torch
from torch.nn import functional as F

from seqmnist.errors import ConfigError
from seqmnist.models import Architecture, build_model, leading_zero_steps

ARCHS = ["lstm-1x8", "gru-1x8", "lstm-3x8", "gru-3x8", "lstm-1x32", "gru-1x32"]


def plain_loss(model, x, y):
    out, _ = model.core.plain_forward(x)
    if model.task == "classify":
        return F.cross_entropy(model.head(out[-1]), y)
    logits = model.head(out).squeeze(-1)
    return F.binary_cross_entropy_with_logits(logits[:-1], x[1:].squeeze(-1))


@pytest.mark.parametrize("task", ["classify", "predict"])
@pytest.mark.parametrize("arch", ARCHS)
def test_fast_path_matches_plain_lstm_gru(mnist, task, arch):
    pixels, labels = mnist.train.tensors()
    x = pixels[:6].double().t().unsqueeze(-1)
    model = build_model(task, arch, seed=1).double()
    assert leading_zero_steps(x) > 0  # the shared-prefix path is exercised
    fast, _ = model.loss(x, labels[:6])
    reference = plain_loss(model, x, labels[:6])
    params = list(model.parameters())
    grads_fast = torch.autograd.grad(fast, params)
    grads_ref = torch.autograd.grad(reference, params)
    assert abs(fast.item() - reference.item()) < 1e-12
    for a, b in zip(grads_fast, grads_ref):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_carried_state_equals_full_sequence(mnist):
    pixels, _ = mnist.test.tensors()
    x = pixels[:4].t().unsqueeze(-1).double()
    model = build_model("predict", "lstm-3x8", seed=2).double().eval()
    full, _ = model(x)
    first, state = model(x[:300])
    second, _ = model(x[300:], state)
    torch.testing.assert_close(torch.cat([first, second]), full, rtol=1e-10, atol=1e-12)


def test_all_zero_batch():
    model = build_model("predict", "gru-1x8", seed=0).double()
    x = torch.zeros(20, 3, 1, dtype=torch.float64)
    logits, state = model(x)
    assert logits.shape == (20, 3) and state.shape == (1, 3, 8)
    assert torch.allclose(logits[:, 0], logits[:, 2])


def test_names_and_bad_input():
    assert Architecture.parse("LSTM-3x32").name == "lstm-3x32"
    for bad in ["rnn-1x32", "lstm-32", "gru-0x32", "lstm-1x0", ""]:
        with pytest.raises(ConfigError):
            Architecture.parse(bad)
    with pytest.raises(ConfigError):
        build_model("regress", "lstm-1x8")
    with pytest.raises(ConfigError):
        build_model("classify", "lstm-1x8", dropout=1.5)


def test_chrono_init_sets_long_memory():
    model = build_model("classify", "lstm-1x16", seed=0)
    forget = model.core.rnn.bias_ih_l0[16:32]
    assert (forget >= 0).all() and forget.max() > 3  # log U(1, 783)
    torch.testing.assert_close(model.core.rnn.bias_ih_l0[:16], -forget)
