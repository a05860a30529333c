"""Which torch device a command or notebook runs on, checked before any compute starts.

``device`` is a user setting (``--device``, a notebook parameter): a typo or ``cuda`` on a
CPU-only torch should stop at once with one line, not as a torch error minutes later.
"""

from __future__ import annotations

import torch

from .errors import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"`` (CUDA when available, else the CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Raises ConfigError for anything else, and for a CUDA device this torch cannot use.
    """
    if not isinstance(name, str):
        raise ConfigError(f"device must be a string such as 'cpu' or 'cuda', got {name!r}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"unknown device {name!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"unsupported device {name!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r}: this torch ({torch.__version__}) sees no CUDA "
                              f"GPU; use 'cpu' or 'auto'")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r}: only {torch.cuda.device_count()} CUDA "
                              f"device(s) here")
        # Plain float32 on the GPU too: cuDNN may otherwise round the recurrent matmuls' inputs
        # to TF32 (10-bit mantissa) on Ampere and newer, over 784 steps, which CPU runs never do.
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    return device
