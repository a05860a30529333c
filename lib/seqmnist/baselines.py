"""Whole-image baselines (as in Assignment 1): models that see all 784 pixels at once.

They take the same time-major input (784, B, 1) as the recurrent classifiers, so the same training
loop, checkpoints, weights files and evaluation serve them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

BASELINES = ("mlp", "cnn")


@dataclass(frozen=True)
class BaselineArch:
    name: str


def images_from_sequence(x: torch.Tensor) -> torch.Tensor:
    """(784, B, 1) time-major pixels -> (B, 1, 28, 28) images."""
    return x.squeeze(-1).t().reshape(-1, 1, 28, 28)


def conv_bn_relu(inputs: int, outputs: int) -> list[nn.Module]:
    """A 3x3 convolution that keeps the size, batch norm (which makes its bias redundant), ReLU."""
    return [nn.Conv2d(inputs, outputs, 3, padding=1, bias=False), nn.BatchNorm2d(outputs), nn.ReLU()]


class WholeImageClassifier(nn.Module):
    task = "classify"

    def __init__(self, name: str, dropout: float = 0.0):
        super().__init__()
        self.arch = BaselineArch(name)
        if name == "mlp":  # 784-512-512-10 with ReLU
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Dropout(dropout),
                                     nn.Linear(512, 512), nn.ReLU(), nn.Dropout(dropout),
                                     nn.Linear(512, 10))
        else:  # three batch-normalized 3x3 convolutions in two pooled blocks, a small dense head
            self.net = nn.Sequential(
                *conv_bn_relu(1, 32), nn.MaxPool2d(2),
                *conv_bn_relu(32, 64), *conv_bn_relu(64, 64), nn.MaxPool2d(2),
                nn.Flatten(), nn.Dropout(dropout), nn.Linear(64 * 7 * 7, 128), nn.ReLU(),
                nn.Dropout(dropout), nn.Linear(128, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(images_from_sequence(x))

    def loss(self, x: torch.Tensor, labels: torch.Tensor):
        logits = self(x)
        return F.cross_entropy(logits, labels), {"correct": (logits.argmax(1) == labels).sum()}
