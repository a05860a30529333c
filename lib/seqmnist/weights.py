"""Shipped weights: a safetensors file (no pickle) beside a JSON sidecar that describes it.

The sidecar records what a reader needs to trust the file: task, architecture, hyperparameters,
data source hash, epochs, history, validation metrics, wall time, hardware, code version, and
``tensors_sha256``, a hash of the tensors' content (see ``tensors_sha256``). ``load_weights``
refuses a file whose tensors are not finite, differ from that hash, or do not fit the sidecar's
model, so a damaged or swapped file never scores silently. The same weights always give the same
file bytes, so caches keyed by a file's sha256 stay valid.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from pathlib import Path

import torch
from safetensors import deserialize
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes

from .data import atomic_write_bytes
from .errors import CheckpointError, ConfigError, DataError
from .models import TASKS, build_model, canonical_arch
from .paths import ROOT

HASH_KEY = "tensors_sha256"
# The header holds one metadata entry: safetensors writes its metadata map in random order, and
# a single key keeps the file bytes the same from one save to the next.
HEADER_KEY = "model"


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


def tensors_sha256(data: bytes) -> str:
    """sha256 of the tensors in safetensors bytes ``data``: for each tensor, by name, its name,
    dtype, shape and raw bytes. The header's layout and metadata do not count, so a file written
    by another safetensors version with the same tensors has the same hash."""
    digest = hashlib.sha256()
    for name, info in sorted(deserialize(bytes(data)), key=lambda item: item[0]):
        raw = bytes(info["data"])
        digest.update(json.dumps([name, info["dtype"], list(info["shape"]), len(raw)]).encode())
        digest.update(b"\n" + raw)
    return digest.hexdigest()


def save_weights(model: torch.nn.Module, path: Path, metadata: dict) -> None:
    """Write ``path`` (.safetensors) and its sidecar atomically; the sidecar is written last.

    The same model gives the same bytes. Non-finite weights are refused (they could not be
    loaded back); a write that fails raises CheckpointError and leaves no temporary file.
    """
    path = Path(path)
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous()
               for k, v in model.state_dict().items()}
    _check_finite(path, tensors)
    header = {HEADER_KEY: json.dumps({"architecture": model.arch.name, "task": model.task},
                                     sort_keys=True)}
    try:
        data = save_bytes(tensors, metadata=header)
    except (RuntimeError, ValueError) as error:
        raise CheckpointError(f"{path}: cannot serialize the weights ({error})") from None
    _write(path, data)
    meta = {"task": model.task, "architecture": model.arch.name, **metadata,
            HASH_KEY: tensors_sha256(data)}
    _write_sidecar(path, meta)


def write_sidecar(path: Path, model: torch.nn.Module, metadata: dict) -> None:
    """Rewrite the sidecar of the weights already at ``path`` (the same weights, a longer
    history): their ``tensors_sha256`` is kept from the old sidecar, or computed from the file
    when that one has none."""
    path = Path(path)
    meta = {"task": model.task, "architecture": model.arch.name, **metadata}
    try:
        recorded = read_sidecar(path).get(HASH_KEY)
    except CheckpointError:  # none yet, or unreadable: it is being replaced
        recorded = None
    if isinstance(recorded, str):
        meta[HASH_KEY] = recorded
    elif path.exists():
        data = _read(path)
        _parse(path, data)  # a damaged file gets no hash
        meta[HASH_KEY] = tensors_sha256(data)
    _write_sidecar(path, meta)


def read_sidecar(path: Path) -> dict:
    """The sidecar of ``path``, checked to be a JSON object naming a known task and an
    architecture of that task (it need not have a weights file beside it: campaign records)."""
    side = sidecar_path(path)
    if not side.exists():
        raise CheckpointError(f"{path}: no sidecar {side.name} beside it")
    meta = _read_json(side)
    if not isinstance(meta, dict):
        raise CheckpointError(f"{side}: sidecar is a JSON {type(meta).__name__}, not an object")
    task, arch = meta.get("task"), meta.get("architecture")
    if task not in TASKS:
        raise CheckpointError(f"{side}: sidecar names unknown task {task!r} "
                              f"(known: {', '.join(TASKS)})")
    if not isinstance(arch, str):
        raise CheckpointError(f"{side}: sidecar has no architecture name (found {arch!r})")
    try:
        canonical_arch(arch, task)
    except ConfigError as error:
        raise CheckpointError(f"{side}: sidecar's architecture: {error}") from None
    return meta


def load_weights(path: str | Path, task: str | None = None, arch: str | None = None,
                 device="cpu") -> tuple[torch.nn.Module, dict]:
    """Rebuild the model stored at ``path``; checks it is the ``task``/``arch`` asked for, that
    the file fits its sidecar (model and tensors' hash) and that every weight is finite."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such weights file")
    meta = read_sidecar(path)
    saved_arch = canonical_arch(meta["architecture"], meta["task"])
    differences = []
    if task is not None and meta["task"] != task:
        differences.append(f"task {meta['task']!r} (asked for {task!r})")
    if arch is not None and saved_arch != canonical_arch(arch, meta["task"]):
        differences.append(f"architecture {meta['architecture']!r} (asked for {arch!r})")
    if differences:
        raise CheckpointError(f"{path}: holds {', '.join(differences)}")
    recorded = meta.get(HASH_KEY)
    if not isinstance(recorded, str):
        raise CheckpointError(
            f"{sidecar_path(path)}: records no {HASH_KEY}, so the tensors cannot be verified; if "
            f"you trust {path}, record it: python -c \"from seqmnist.weights import "
            f"record_tensors_sha256; record_tensors_sha256('{path}')\"")
    data = _read(path)
    model, tensors = _verified(path, meta, data)
    if tensors_sha256(data) != recorded:
        raise CheckpointError(f"{path}: tensors differ from the {HASH_KEY} its sidecar records "
                              f"(damaged, or a sidecar of other weights)")
    model.load_state_dict(tensors)
    return model.to(device).eval(), meta


def record_tensors_sha256(path: str | Path) -> str:
    """Add ``tensors_sha256`` to the sidecar of a trusted weights file that lacks it (sidecars
    written before weights were hashed), after every other load check; keeps every other field.
    Returns the hash. A sidecar that records another hash is refused."""
    path = Path(path)
    meta = read_sidecar(path)
    data = _read(path)
    _verified(path, meta, data)
    digest = tensors_sha256(data)
    if meta.get(HASH_KEY, digest) != digest:
        raise CheckpointError(f"{path}: tensors differ from the {HASH_KEY} its sidecar records")
    if HASH_KEY not in meta:
        _write_sidecar(path, {**meta, HASH_KEY: digest})
    return digest


def _verified(path: Path, meta: dict, data: bytes) -> tuple[torch.nn.Module, dict]:
    """The model of ``meta`` and the tensors of ``data``, checked against each other, against
    the file's header and for finite values (everything but the hash)."""
    tensors, header = _parse(path, data)
    task, arch = meta["task"], canonical_arch(meta["architecture"], meta["task"])
    if header != (task, arch):
        raise CheckpointError(f"{path}: its header records {header[0]} {header[1]}, its sidecar "
                              f"{task} {arch}")
    config = meta.get("config") or {}
    if not isinstance(config, dict):
        raise CheckpointError(f"{sidecar_path(path)}: sidecar's config is not an object")
    try:
        model = build_model(task, arch, dropout=config.get("dropout", 0.0), init="default")
    except (ConfigError, TypeError) as error:
        raise CheckpointError(f"{sidecar_path(path)}: {error}") from None
    expected = model.state_dict()
    if set(tensors) != set(expected) or any(tensors[k].shape != v.shape for k, v in expected.items()):
        raise CheckpointError(f"{path}: tensors do not match a {task} {arch}")
    _check_finite(path, tensors)
    return model, tensors


def _parse(path: Path, data: bytes) -> tuple[dict, tuple]:
    """Tensors and header's (task, architecture) of safetensors bytes; CheckpointError if damaged.
    Headers hold one JSON entry ``model`` (or, before files were deterministic, two entries)."""
    try:
        tensors = load_bytes(data)
        size = int.from_bytes(data[:8], "little")
        metadata = json.loads(data[8:8 + size]).get("__metadata__") or {}
        if HEADER_KEY in metadata:
            metadata = json.loads(metadata[HEADER_KEY])
        header = (metadata.get("task"), metadata.get("architecture"))
    except Exception as error:  # safetensors raises its own error types, JSON ValueError
        raise CheckpointError(f"{path}: damaged safetensors file ({error})") from None
    if not all(isinstance(part, str) for part in header):
        raise CheckpointError(f"{path}: its header records no task and architecture")
    if header[0] in TASKS:
        try:
            header = (header[0], canonical_arch(header[1], header[0]))
        except ConfigError:
            pass  # left as written: the comparison with the sidecar names it
    return tensors, header


def _check_finite(path: Path, tensors: dict) -> None:
    bad = [name for name, t in sorted(tensors.items())
           if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise CheckpointError(f"{path}: non-finite weights (NaN or inf) in {', '.join(bad)}")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise CheckpointError(f"{path}: cannot read ({error.strerror or error})") from None


def _read_json(side: Path):
    try:
        return json.loads(side.read_text())
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{side}: unreadable sidecar ({error})") from None


def _write(path: Path, data: bytes) -> None:
    """``atomic_write_bytes`` (unique temporary file, removed on failure) with CheckpointError."""
    try:
        atomic_write_bytes(path, lambda handle: handle.write(data))
    except DataError as error:
        raise CheckpointError(str(error)) from None


def _write_sidecar(path: Path, meta: dict) -> None:
    _write(sidecar_path(path), json.dumps(meta, indent=1, sort_keys=True, default=float).encode())
