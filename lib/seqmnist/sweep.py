"""Learning-rate sweep: short runs of one model at several rates, scored on the validation split.

Each candidate is an ordinary resumable run (so an interrupted sweep continues where it stopped);
the record ``<out_dir>/<task>-<arch>.json`` keeps every candidate's validation curve for the
notebooks to plot, and the candidates' checkpoints are deleted once it is written.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .data import atomic_write_bytes
from .paths import weights_dir
from .train import TrainConfig, train

DEFAULT_RATES = (1e-3, 2e-3, 4e-3, 8e-3)


def sweep_dir() -> Path:
    return weights_dir() / "sweeps"


def sweep(task: str, arch: str, rates=DEFAULT_RATES, epochs: int = 2, out_dir: Path | None = None,
          progress: bool = False, **config_overrides) -> dict:
    """Train ``task``/``arch`` for ``epochs`` at each rate; returns and writes the record."""
    out_dir = Path(out_dir) if out_dir is not None else sweep_dir()
    record = {"task": task, "arch": arch, "epochs": epochs, "candidates": []}
    for lr in rates:
        config = TrainConfig(task=task, arch=arch, epochs=epochs, lr=float(lr), **config_overrides)
        run_dir = out_dir / "runs" / f"{config.name}-lr{lr:g}"
        state = train(config, run_dir, progress=progress)
        record["candidates"].append({
            "lr": float(lr),
            "config": config.to_dict(),
            "history": state.history,
            "best_val_loss": state.best_validation["loss"],
            "best_validation": state.best_validation,
        })
    best = min(record["candidates"], key=lambda c: c["best_val_loss"])
    record["best_lr"] = best["lr"]
    text = json.dumps(record, indent=1)
    atomic_write_bytes(out_dir / f"{task}-{arch}.json", lambda handle: handle.write(text.encode()))
    shutil.rmtree(out_dir / "runs", ignore_errors=True)  # the record keeps what matters
    return record


def load_sweep(task: str, arch: str, out_dir: Path | None = None) -> dict | None:
    path = (Path(out_dir) if out_dir is not None else sweep_dir()) / f"{task}-{arch}.json"
    return json.loads(path.read_text()) if path.exists() else None


