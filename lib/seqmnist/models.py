"""The assignment's models: input affine -> LSTM/GRU stack -> classifier or next-pixel head.

Sequences are time-major float tensors of shape (T, B, 1) holding binary pixels. Two exact speed
tricks keep the parameters and outputs those of the plain specification:

* folded input: the input is one scalar per step, so ``W_ih (a x + b) + b_ih`` is the affine map
  ``(W_ih a) x + (W_ih b + b_ih)``; the fused recurrent op gets these composed weights (input size 1),
  and autograd carries gradients back to ``a``, ``b``, ``W_ih`` and ``b_ih``;
* shared zero prefix: every image's state is identical until its first ink pixel, so the leading
  steps where the whole batch is zero run once at batch size 1 and are broadcast.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .errors import ConfigError

CELLS = ("lstm", "gru")
TASKS = ("classify", "predict")
SEQUENCE_LENGTH = 784
NUM_CLASSES = 10
_NAME = re.compile(r"^(lstm|gru)-(\d+)x(\d+)$")


@dataclass(frozen=True)
class Architecture:
    """A recurrent core named like ``lstm-1x128`` or ``gru-3x32`` (cell-layers x units)."""

    cell: str
    layers: int
    units: int

    def __post_init__(self):
        if self.cell not in CELLS:
            raise ConfigError(f"unknown cell {self.cell!r}: use one of {', '.join(CELLS)}")
        if not (1 <= self.layers <= 8 and 1 <= self.units <= 4096):
            raise ConfigError(f"nonsensical size {self.layers}x{self.units}")

    @classmethod
    def parse(cls, name: str) -> "Architecture":
        match = _NAME.match(str(name).strip().lower())
        if not match:
            raise ConfigError(f"unknown model name {name!r}: expected e.g. lstm-1x128 or gru-3x32")
        return cls(match[1], int(match[2]), int(match[3]))

    @property
    def name(self) -> str:
        return f"{self.cell}-{self.layers}x{self.units}"


def leading_zero_steps(x: torch.Tensor) -> int:
    """How many leading time steps are zero for every sequence of the batch."""
    active = x.reshape(x.shape[0], -1).any(dim=1)
    if not bool(active.any()):
        return x.shape[0]
    return int(active.to(torch.int8).argmax())


class RecurrentCore(nn.Module):
    """Input affine (1 -> units) followed by an LSTM or GRU stack; returns every step's output."""

    def __init__(self, arch: Architecture, dropout: float = 0.0, share_zero_prefix: bool = True):
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {dropout}")
        self.arch = arch
        self.input = nn.Linear(1, arch.units)
        rnn_class = nn.LSTM if arch.cell == "lstm" else nn.GRU
        self.rnn = rnn_class(arch.units, arch.units, arch.layers,
                             dropout=dropout if arch.layers > 1 else 0.0)
        self.share_zero_prefix = share_zero_prefix

    # -- state helpers ---------------------------------------------------------------------
    def initial_state(self, batch: int, device=None, dtype=None):
        zeros = torch.zeros(self.arch.layers, batch, self.arch.units, device=device, dtype=dtype)
        return (zeros, zeros.clone()) if self.arch.cell == "lstm" else zeros

    @staticmethod
    def expand_state(state, batch: int):
        if isinstance(state, tuple):
            return tuple(s.expand(-1, batch, -1).contiguous() for s in state)
        return state.expand(-1, batch, -1).contiguous()

    # -- forward ---------------------------------------------------------------------------
    def folded_weights(self):
        """Flat recurrent weights with the input affine composed into layer 0."""
        weights = list(self.rnn._flat_weights)
        w_ih, b_ih = weights[0], weights[2]
        weights[0] = w_ih @ self.input.weight  # (G*H, 1)
        weights[2] = w_ih @ self.input.bias + b_ih
        return weights

    def _run(self, x: torch.Tensor, state):
        if state is None:
            state = self.initial_state(x.shape[1], x.device, x.dtype)
        rnn = self.rnn
        if x.is_cuda:  # cuDNN wants its own flat weight buffer: use the plain modules there
            return rnn(self.input(x), state)
        weights = self.folded_weights()
        dropout = rnn.dropout if self.training else 0.0
        if self.arch.cell == "lstm":
            out, h, c = torch.lstm(x, state, weights, True, rnn.num_layers, dropout,
                                   self.training, False, False)
            return out, (h, c)
        if dropout == 0.0:  # eval, or no inter-layer dropout: whole-sequence GRU, fused backward
            from .fused_gru import fused_gru

            return fused_gru(x, state, weights, rnn.num_layers)
        out, h = torch.gru(x, state, weights, True, rnn.num_layers, dropout,
                           self.training, False, False)
        return out, h

    def forward(self, x: torch.Tensor, state=None):
        """x: (T, B, 1) pixels; returns (outputs (T, B, units), final state)."""
        if x.dim() == 2:
            x = x.unsqueeze(-1)
        steps, batch = x.shape[0], x.shape[1]
        if state is None and self.share_zero_prefix and batch > 1 and steps > 0:
            k = leading_zero_steps(x)
            if k > 0:
                prefix_out, prefix_state = self._run(x[:k, :1], None)
                prefix_out = prefix_out.expand(k, batch, -1)
                state = self.expand_state(prefix_state, batch)
                if k == steps:
                    return prefix_out, state
                rest_out, state = self._run(x[k:], state)
                return torch.cat([prefix_out, rest_out]), state
        return self._run(x, state)

    def plain_forward(self, x: torch.Tensor, state=None):
        """The specification, step for step, with no speed trick (for tests and references)."""
        if x.dim() == 2:
            x = x.unsqueeze(-1)
        if state is None:
            state = self.initial_state(x.shape[1], x.device, x.dtype)
        return self.rnn(self.input(x), state)


def chrono_init_(core: RecurrentCore, max_steps: int = SEQUENCE_LENGTH, generator=None) -> None:
    """Chrono initialization (Tallec & Ollivier 2018): gate biases whose time scales cover 1..T.

    LSTM: forget bias log U(1, T-1), input bias its negative. GRU: update-gate bias log U(1, T-1),
    so that z = sigmoid(b) keeps the state for about the drawn number of steps.
    """
    units = core.arch.units
    with torch.no_grad():
        for layer in range(core.arch.layers):
            b_ih = getattr(core.rnn, f"bias_ih_l{layer}")
            b_hh = getattr(core.rnn, f"bias_hh_l{layer}")
            scales = torch.empty(units).uniform_(1, max_steps - 1, generator=generator).log()
            b_hh.zero_()
            if core.arch.cell == "lstm":  # gate order i, f, g, o
                b_ih.zero_()
                b_ih[units:2 * units] = scales
                b_ih[:units] = -scales
            else:  # gate order r, z, n
                b_ih.zero_()
                b_ih[units:2 * units] = scales


class Classifier(nn.Module):
    """Many-to-one: last output -> linear -> ReLU -> linear -> 10 logits (softmax in the loss)."""

    task = "classify"

    def __init__(self, arch: Architecture | str, dropout: float = 0.0, head_units: int | None = None):
        super().__init__()
        arch = Architecture.parse(arch) if isinstance(arch, str) else arch
        self.arch = arch
        head_units = head_units or arch.units
        self.core = RecurrentCore(arch, dropout)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Sequential(nn.Linear(arch.units, head_units), nn.ReLU(),
                                  nn.Linear(head_units, NUM_CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (T, B, 1) -> class logits (B, 10)."""
        out, _ = self.core(x)
        return self.head(self.dropout(out[-1]))

    def loss(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict]:
        logits = self(x)
        loss = F.cross_entropy(logits, labels)
        correct = (logits.argmax(1) == labels).sum()
        return loss, {"correct": correct}


class NextPixelPredictor(nn.Module):
    """Many-to-many: at step t, from x_1..x_t, the logit of p(x_{t+1} = 1) (sigmoid gives it)."""

    task = "predict"

    def __init__(self, arch: Architecture | str, dropout: float = 0.0):
        super().__init__()
        arch = Architecture.parse(arch) if isinstance(arch, str) else arch
        self.arch = arch
        self.core = RecurrentCore(arch, dropout)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(arch.units, 1)

    def forward(self, x: torch.Tensor, state=None):
        """x: (T, B, 1) -> (logits (T, B) for pixels 2..T+1, final state)."""
        out, state = self.core(x, state)
        return self.head(self.dropout(out)).squeeze(-1), state

    def loss(self, x: torch.Tensor, labels=None) -> tuple[torch.Tensor, dict]:
        """Mean binary cross-entropy in nats per predicted pixel (783 per image)."""
        logits, _ = self(x)
        targets = x[1:].squeeze(-1)
        loss = F.binary_cross_entropy_with_logits(logits[:-1], targets)
        return loss, {}


MODEL_CLASSES = {"classify": Classifier, "predict": NextPixelPredictor}


def canonical_arch(name: str, task: str) -> str:
    """The canonical name of a recurrent core (``lstm-1x128``) or, for classifiers, a baseline."""
    from .baselines import BASELINES

    if task == "classify" and str(name).strip().lower() in BASELINES:
        return str(name).strip().lower()
    return Architecture.parse(name).name


def build_model(task: str, arch: Architecture | str, dropout: float = 0.0, init: str = "chrono",
                seed: int | None = None) -> nn.Module:
    """A classifier or predictor for ``task``; ``init`` is 'chrono' or 'default' (PyTorch's).

    ``arch`` names a recurrent core, or for ``task="classify"`` a whole-image baseline
    ('mlp' or 'cnn', see baselines.py).
    """
    if task not in MODEL_CLASSES:
        raise ConfigError(f"unknown task {task!r}: use one of {', '.join(TASKS)}")
    if init not in ("chrono", "default"):
        raise ConfigError(f"unknown init {init!r}: use 'chrono' or 'default'")
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"dropout must be in [0, 1), got {dropout}")
    name = canonical_arch(arch.name if isinstance(arch, Architecture) else arch, task)
    if seed is not None:
        torch.manual_seed(seed)
    if not _NAME.match(name):
        from .baselines import WholeImageClassifier

        return WholeImageClassifier(name, dropout=dropout)
    model = MODEL_CLASSES[task](name, dropout=dropout)
    if init == "chrono":
        chrono_init_(model.core)
    return model


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["Architecture", "RecurrentCore", "Classifier", "NextPixelPredictor", "build_model",
           "canonical_arch", "chrono_init_", "leading_zero_steps", "parameter_count", "CELLS", "TASKS"]
