"""Shipped weights: a safetensors file (no pickle) beside a JSON sidecar that describes it.

The sidecar records what a reader needs to trust the file: task, architecture, hyperparameters,
data source hash, epochs, history, validation metrics, wall time, hardware and code version.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .data import atomic_write_bytes
from .errors import CheckpointError
from .models import build_model, canonical_arch
from .paths import ROOT


def shipped_path(task: str, arch: str, weights_dir: str | Path | None = None) -> Path:
    """Where the campaign ships a model: weights/<task>/<arch>.safetensors, or for the
    whole-image baselines weights/baselines/<arch>.safetensors."""
    from .baselines import BASELINES
    from .paths import weights_dir as default_weights_dir

    root = Path(weights_dir) if weights_dir is not None else default_weights_dir()
    folder = "baselines" if arch in BASELINES else task
    return root / folder / f"{arch}.safetensors"


def sidecar_path(path: Path) -> Path:
    return Path(path).with_suffix(".json")


def code_version() -> str:
    """``git describe`` of the repository, or 'unknown' outside a checkout."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT,
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def hardware(device: torch.device | str | None = None) -> str:
    """What ``device`` is (default: CUDA if available, else the CPU), in words."""
    kind = torch.device(device).type if device is not None else (
        "cuda" if torch.cuda.is_available() else "cpu")
    if kind == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def hardware_summary(history: list[dict]) -> str:
    """The distinct hardware of a run's epochs, in order ("cpu: ... + cuda: ..." for a run that
    moved to a GPU)."""
    seen = [record["hardware"] for record in history if record.get("hardware")]
    return " + ".join(dict.fromkeys(seen)) or "unknown"


def save_weights(model: torch.nn.Module, path: Path, metadata: dict) -> None:
    """Write ``path`` (.safetensors) and its sidecar atomically; the sidecar is written last."""
    path = Path(path)
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous()
               for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp), metadata={"task": model.task, "architecture": model.arch.name})
    os.replace(tmp, path)
    write_sidecar(path, model, metadata)


def write_sidecar(path: Path, model: torch.nn.Module, metadata: dict) -> None:
    meta = {"task": model.task, "architecture": model.arch.name, **metadata}
    text = json.dumps(meta, indent=1, sort_keys=True, default=float)
    atomic_write_bytes(sidecar_path(path), lambda handle: handle.write(text.encode()))


def read_sidecar(path: Path) -> dict:
    side = sidecar_path(path)
    if not side.exists():
        raise CheckpointError(f"{path}: no sidecar {side.name} beside it")
    try:
        return json.loads(side.read_text())
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{side}: unreadable sidecar ({error})") from None


def load_weights(path: str | Path, task: str | None = None, arch: str | None = None,
                 device="cpu") -> tuple[torch.nn.Module, dict]:
    """Rebuild the model stored at ``path``; checks it is the ``task``/``arch`` asked for."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such weights file")
    meta = read_sidecar(path)
    differences = []
    if task is not None and meta.get("task") != task:
        differences.append(f"task {meta.get('task')!r} (asked for {task!r})")
    if arch is not None and meta.get("architecture") != canonical_arch(arch, meta.get("task")):
        differences.append(f"architecture {meta.get('architecture')!r} (asked for {arch!r})")
    if differences:
        raise CheckpointError(f"{path}: holds {', '.join(differences)}")
    try:
        tensors = load_file(str(path))
    except Exception as error:
        raise CheckpointError(f"{path}: damaged safetensors file ({error})") from None
    config = meta.get("config", {})
    model = build_model(meta["task"], meta["architecture"], dropout=config.get("dropout", 0.0),
                        init="default")
    expected = model.state_dict()
    if set(tensors) != set(expected) or any(tensors[k].shape != v.shape for k, v in expected.items()):
        raise CheckpointError(f"{path}: tensors do not match a {meta['task']} {meta['architecture']}")
    model.load_state_dict(tensors)
    return model.to(device).eval(), meta
