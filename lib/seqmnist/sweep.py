"""Learning-rate sweep: short runs of one model at several rates, scored on the validation split.

Each rate is a task of the campaign's engine (cluster.py: a LocalCluster of ``workers`` processes
by default, a running Dask scheduler, or SLURM jobs), whose process trains that rate's candidate
run (``sweep --candidate-dir``) and leaves its outcome in the run folder, beside the checkpoint:
the results come back through files. Each candidate is an ordinary resumable run (so an interrupted
sweep continues where it stopped); the record ``<out_dir>/<task>-<arch>.json`` keeps every
candidate's validation curve for the notebooks to plot. It is written as each rate's run ends,
and that rate's folder deleted, so a sweep stopped or failing midway keeps the rates it finished.
Sweeping again with more rates extends the record: rates already recorded are not retrained. A
record names its model's parameter count, so a record of a model whose code has changed since is
refused, not extended.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import shutil
import statistics
from pathlib import Path

from . import cluster
from .data import atomic_write_bytes
from .errors import CheckpointError, ConfigError, TrainingDiverged
from .models import build_model, parameter_count
from .notebook import progress as progress_bar
from .paths import weights_dir
from .train import TrainConfig, train

DEFAULT_RATES = (1e-3, 2e-3, 4e-3, 8e-3)
OUTCOME_NAME = "outcome.json"   # in a candidate's run folder: what its task's process found
LOG_NAME = "train.log"          # in a candidate's run folder: its process's output


def sweep_dir() -> Path:
    return weights_dir() / "sweeps"


def sweep(task: str, arch: str, rates=DEFAULT_RATES, epochs: int = 2, out_dir: Path | None = None,
          progress: bool = False, *, workers: int = 1, threads: int | None = None,
          gpu_slots: int = 0, scheduler: str | None = None, slurm: cluster.SlurmJobs | None = None,
          retries: int = 2, device: str = "auto", **config_overrides) -> dict:
    """Train ``task``/``arch`` for ``epochs`` at each rate not yet in the record, one engine task
    per rate (``cluster.engine``'s options; by default one local worker, so one rate at a time,
    in ``training_order``); writes the record as each rate ends and returns it (all its rates,
    in increasing order). A rate whose run diverges is recorded as such (``diverged``, no
    validation scores), not raised nor retried."""
    out_dir = Path(out_dir) if out_dir is not None else sweep_dir()
    recipe = TrainConfig(task=task, arch=arch, epochs=epochs, **config_overrides)
    parameters = parameter_count(build_model(recipe.task, recipe.arch, recipe.dropout, recipe.init))
    record = load_sweep(recipe.task, recipe.arch, out_dir) or {
        "task": recipe.task, "arch": recipe.arch, "epochs": epochs, "parameters": parameters,
        "candidates": []}
    for candidate in record["candidates"]:
        _check_same_recipe(TrainConfig(**candidate["config"]), recipe, out_dir)
    if record.get("parameters", parameters) != parameters:   # the code's model changed since
        raise ConfigError(
            f"the sweep record {out_dir / (recipe.name + '.json')} was made for a "
            f"{record['parameters']:,}-parameter {recipe.arch}, not this code's {parameters:,}: "
            "move it away to sweep the new model")
    record["parameters"] = parameters
    recorded = {candidate["lr"] for candidate in record["candidates"]}
    configs = [dataclasses.replace(recipe, lr=lr) for lr in training_order(rates, recorded)]
    unwritten = []   # rates ended but not yet in the written record (all diverged so far)

    def keep(config: TrainConfig, outcome: dict) -> None:
        """Record a rate as soon as its run ends, so that a sweep stopped or failing later keeps
        it (and sweeping again does not retrain it)."""
        if "diverged" in outcome:   # a rate too high is a finding of the sweep
            print(outcome["diverged"], flush=True)
        record["candidates"].append({"lr": config.lr, "config": config.to_dict(), **outcome})
        unwritten.append(config)
        if _write_record(record, out_dir / f"{recipe.name}.json"):
            for done in unwritten:   # the record keeps what matters; other sweeps' runs stay
                shutil.rmtree(candidate_dir(out_dir, done), ignore_errors=True)
            unwritten.clear()
            with contextlib.suppress(OSError):
                (out_dir / "runs").rmdir()

    if configs:   # else no cluster starts
        cluster.check_engine(workers, threads, gpu_slots, retries, scheduler, slurm)
        with cluster.engine(workers, gpu_slots, threads, scheduler, slurm) as (client, threads):
            train_candidates(client, configs, out_dir, threads, device, retries, gpu_slots, slurm,
                             progress, keep)
    if "best_lr" not in record:   # keep wrote no record: every rate diverged
        raise TrainingDiverged(f"{recipe.name}: every swept rate diverged; sweep lower rates")
    return record


def training_order(rates, recorded=()) -> list[float]:
    """The rates still to train, middle of the grid first (on a log scale): a sweep cut short
    then holds the rates around its centre, which bracket a best rate soonest, not one end."""
    centre = statistics.median(math.log(float(lr)) for lr in rates)
    return sorted({float(lr) for lr in rates} - set(recorded),
                  key=lambda lr: (round(abs(math.log(lr) - centre), 6), lr))


def _write_record(record: dict, path: Path) -> bool:
    """Write ``record`` with its candidates in increasing rate and its best rate; False (and
    nothing written) while every candidate has diverged, as there is no best rate yet."""
    record["candidates"].sort(key=lambda c: c["lr"])
    sound = [c for c in record["candidates"] if c["best_val_loss"] is not None]
    if not sound:
        return False
    record["best_lr"] = min(sound, key=lambda c: c["best_val_loss"])["lr"]
    text = json.dumps(record, indent=1)
    atomic_write_bytes(path, lambda handle: handle.write(text.encode()))
    return True


def candidate_dir(out_dir: Path, config: TrainConfig) -> Path:
    return Path(out_dir).resolve() / "runs" / f"{config.name}-lr{config.lr:g}"


def train_candidates(client, configs, out_dir: Path, threads: int | None, device: str,
                     retries: int, gpu_slots: int, slurm, progress: bool, keep) -> None:
    """Train each config's candidate by a task on ``client``, calling ``keep(config, outcome)``
    as each ends. Every task ends before this returns or raises: a failed task (after its
    retries) is raised once the others have ended; SIGTERM or Ctrl-C stops them all, each with a
    checkpoint."""
    from distributed import as_completed

    folders = [candidate_dir(out_dir, config) for config in configs]
    results = {}
    with cluster.stop_event(client) as stop:
        futures = [cluster.submit_run(client, folder.name, candidate_command(config, folder, device,
                                                                             progress),
                                      folder, folder / LOG_NAME, threads, stop, retries, gpu_slots,
                                      slurm)
                   for config, folder in zip(configs, folders)]
        try:
            for future in progress_bar(as_completed(futures), enabled=progress, total=len(futures),
                                       unit="rate", desc=f"sweep {configs[0].name}"):
                index = futures.index(future)
                results[index] = _outcome(future, folders[index])
                if not isinstance(results[index], BaseException):
                    keep(configs[index], results[index])
        except KeyboardInterrupt:
            print("sweep stopping: each rate's run checkpoints at its next batch", flush=True)
            cluster.stop_tasks(stop, futures, folders)
            raise
    for index in sorted(results):
        if isinstance(results[index], BaseException):
            raise results[index]


def _outcome(future, folder: Path) -> dict | BaseException:
    """What a rate's finished task left in its run folder, or the error to raise for a task that
    did not finish."""
    try:
        status = future.result()
    except cluster.RunFailed as error:
        return error
    except Exception as error:  # KilledWorker: the engine gave up on it
        return cluster.RunFailed(f"{folder.name} failed: {error} ({folder / LOG_NAME})")
    if status["status"] == "locked":
        return CheckpointError(f"{folder}: run folder in use by another process, training there "
                               "now; wait for it to end or stop it")
    if status["status"] == "stopped":   # its process was stopped by a signal, after a checkpoint
        return KeyboardInterrupt()
    return json.loads((folder / OUTCOME_NAME).read_text())


def candidate_command(config: TrainConfig, folder: Path, device: str, progress: bool) -> list[str]:
    """The ``python -m seqmnist`` arguments that train one rate's candidate in ``folder``: the
    sweep command itself, with that one rate and every field of the recipe."""
    recipe = [f"--{field.replace('_', '-')}={value}" for field, value in config.to_dict().items()
              if field not in ("task", "arch", "lr")]
    return ["sweep", config.task, config.arch, f"--lrs={config.lr!r}", f"--candidate-dir={folder}",
            f"--device={device}", *recipe, *([] if progress else ["--quiet"])]


def train_candidate(config: TrainConfig, folder: Path, device: str = "auto",
                    progress: bool = False) -> dict:
    """Train (or resume) one rate's candidate run in ``folder`` and write its outcome there (the
    process of a sweep task): its history and best validation scores, or how it diverged."""
    folder = Path(folder)
    try:
        state = train(config, folder, device=device, progress=progress)
        outcome = {"history": state.history, "best_val_loss": state.best_validation["loss"],
                   "best_validation": state.best_validation}
    except TrainingDiverged as error:
        outcome = {"history": error.history, "best_val_loss": None, "best_validation": None,
                   "diverged": str(error)}
    text = json.dumps(outcome)
    atomic_write_bytes(folder / OUTCOME_NAME, lambda handle: handle.write(text.encode()))
    return outcome


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
    "highest" (the grid should extend that way before the rate is trusted), or "only" (a sweep
    cut short after its first rate)."""
    rates = [candidate["lr"] for candidate in record["candidates"]]
    if len(set(rates)) == 1:
        return "only"
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

def rate_verdict(records: dict, shipped_rates: dict) -> str:
    """Whether the sweeps confirm the rates the shipped runs use, in words for the notebooks
    (``records``: architecture -> ``load_sweeps`` record; ``shipped_rates``: architecture -> the
    shipped run's peak rate). Only a sweep whose grid brackets its best rate counts; a rate
    within one step of a factor-2 grid of the shipped one agrees with it."""
    step = 2.05   # a factor of 2, with room for rates rounded to three digits
    ratios = {arch: record["best_lr"] / shipped_rates[arch] for arch, record in records.items()
              if shipped_rates.get(arch) and best_position(record) == "inside"}
    open_ended = sorted(arch for arch, record in records.items()
                        if shipped_rates.get(arch) and best_position(record) != "inside")
    tail = ("" if not open_ended else
            f" Not counted, as their best rate lies at an end of the grid swept so far: "
            f"{', '.join(open_ended)}.")
    if not ratios:
        return "No sweep brackets its best rate yet, so none can confirm a shipped rate." + tail
    median = statistics.median(ratios.values())
    agree = [arch for arch, ratio in ratios.items() if 1 / step <= ratio <= step]
    epochs = sorted({records[arch]["epochs"] for arch in ratios})
    budget = " or ".join(str(e) for e in epochs)
    facts = (f"{len(agree) or 'None'} of {len(ratios)} sweeps put their best rate after {budget} epochs "
             f"within a factor of 2 of the shipped run's rate; the best rate is {median:.2g} "
             f"times the shipped one at the median ({min(ratios.values()):.2g} to "
             f"{max(ratios.values()):.2g}). ")
    if 1 / step <= median <= step:
        others = sorted(set(ratios) - set(agree))
        verdict = ("The sweeps confirm the shipped rates to within one step of their grid"
                   + ("." if not others else
                      f", except for {', '.join(f'{a} ({ratios[a]:.2g} times)' for a in others)}."))
    else:
        direction = "faster" if median > 1 else "slower"
        verdict = (f"The sweeps do not confirm the shipped rates: they point to {direction} ones. "
                   "A sweep this short rewards a fast start, not where a whole run's schedule "
                   "ends, so whole runs at the sweeps' rates must settle the recipe.")
    return facts + verdict + tail
