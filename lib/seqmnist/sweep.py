"""Learning-rate sweep: short runs of one model at several rates, scored on the validation split.

Each candidate is an ordinary resumable run (so an interrupted sweep continues where it stopped);
the record ``<out_dir>/<task>-<arch>.json`` keeps every candidate's validation curve for the
notebooks to plot, and the candidates' checkpoints are deleted once it is written. Sweeping again
with more rates extends the record: rates already recorded are not retrained.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

from .data import atomic_write_bytes
from .errors import ConfigError, TrainingDiverged
from .paths import weights_dir
from .train import TrainConfig, train

DEFAULT_RATES = (1e-3, 2e-3, 4e-3, 8e-3)


def sweep_dir() -> Path:
    return weights_dir() / "sweeps"


def sweep(task: str, arch: str, rates=DEFAULT_RATES, epochs: int = 2, out_dir: Path | None = None,
          progress: bool = False, **config_overrides) -> dict:
    """Train ``task``/``arch`` for ``epochs`` at each rate not yet in the record; returns and
    writes the record (all its rates, in increasing order). A rate whose run diverges is recorded
    as such (``diverged``, no validation scores), not raised."""
    out_dir = Path(out_dir) if out_dir is not None else sweep_dir()
    recipe = TrainConfig(task=task, arch=arch, epochs=epochs, **config_overrides)
    record = load_sweep(recipe.task, recipe.arch, out_dir) or {
        "task": recipe.task, "arch": recipe.arch, "epochs": epochs, "candidates": []}
    for candidate in record["candidates"]:
        _check_same_recipe(TrainConfig(**candidate["config"]), recipe, out_dir)
    recorded = {candidate["lr"] for candidate in record["candidates"]}
    for lr in sorted({float(lr) for lr in rates} - recorded):
        config = dataclasses.replace(recipe, lr=lr)
        run_dir = out_dir / "runs" / f"{config.name}-lr{lr:g}"
        try:
            state = train(config, run_dir, progress=progress)
            outcome = {"history": state.history, "best_val_loss": state.best_validation["loss"],
                       "best_validation": state.best_validation}
        except TrainingDiverged as error:  # a rate too high is a finding of the sweep
            print(error, flush=True)
            outcome = {"history": error.history, "best_val_loss": None, "best_validation": None,
                       "diverged": str(error)}
        record["candidates"].append({"lr": float(lr), "config": config.to_dict(), **outcome})
    record["candidates"].sort(key=lambda c: c["lr"])
    sound = [c for c in record["candidates"] if c["best_val_loss"] is not None]
    if not sound:
        raise TrainingDiverged(f"{recipe.name}: every swept rate diverged; sweep lower rates")
    record["best_lr"] = min(sound, key=lambda c: c["best_val_loss"])["lr"]
    text = json.dumps(record, indent=1)
    atomic_write_bytes(out_dir / f"{recipe.name}.json", lambda handle: handle.write(text.encode()))
    shutil.rmtree(out_dir / "runs", ignore_errors=True)  # the record keeps what matters
    return record


def load_sweep(task: str, arch: str, out_dir: Path | None = None) -> dict | None:
    path = (Path(out_dir) if out_dir is not None else sweep_dir()) / f"{task}-{arch}.json"
    return json.loads(path.read_text()) if path.exists() else None


def load_sweeps(task: str, out_dir: Path | None = None) -> dict:
    """Every sweep record of ``task`` under ``out_dir``, by architecture (in name order)."""
    folder = Path(out_dir) if out_dir is not None else sweep_dir()
    records = (json.loads(path.read_text()) for path in sorted(folder.glob(f"{task}-*.json")))
    return {record["arch"]: record for record in records}


def best_position(record: dict) -> str:
    """Where the best rate lies in the swept grid: "inside" (the sweep brackets it), "lowest" or
    "highest" (the grid should extend that way before the rate is trusted)."""
    rates = [candidate["lr"] for candidate in record["candidates"]]
    if record["best_lr"] == min(rates):
        return "lowest"
    if record["best_lr"] == max(rates):
        return "highest"
    return "inside"


def _check_same_recipe(recorded: TrainConfig, recipe: TrainConfig, out_dir: Path) -> None:
    """Rates compare only under one recipe: refuse to extend a record made with another."""
    differ = [field for field, value in dataclasses.asdict(recipe).items()
              if field != "lr" and getattr(recorded, field) != value]
    if differ:
        raise ConfigError(
            f"the sweep record {out_dir / (recipe.name + '.json')} was made with other settings "
            f"({', '.join(f'{f}={getattr(recorded, f)!r}' for f in differ)}); move it away to "
            "sweep this recipe")
