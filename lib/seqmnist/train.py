"""The training loop, with checkpoints that make any run resumable.

A run lives in a folder: ``checkpoint.pt`` (model, optimizer, RNG state, epoch, position in the
epoch, history) is replaced atomically every few minutes and at each epoch end, so a run killed at
any moment continues from its last checkpoint when the same command is run again. The epoch's batch
order is a function of (seed, epoch), and the learning rate a function of the step, so a resumed run
takes exactly the steps an uninterrupted one would have taken.

The best weights by validation loss are exported to ``weights_path`` (safetensors + JSON sidecar)
at every epoch that improves on them.

One process at a time trains in a run folder (a lock on ``<run_dir>/.lock``), and a run never
writes over weights it did not make: from scratch, an existing weights file is refused; resumed,
only weights whose sidecar records this run's config. Both folders are checked writable before
any data is read. A stop by SIGINT or SIGTERM checkpoints, then raises ``TrainingStopped``.

A run may be extended (``extend=True``): its checkpoint then resumes under a config that differs
only by more epochs. The cosine schedule continues from the learning rate it had reached and decays
to the same floor over the new total (no jump), and the state records the extension.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import math
import os
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .data import atomic_write_bytes, load_mnist, shift_images
from .devices import resolve_device
from .errors import CheckpointError, ConfigError, DataError, TrainingDiverged
from .evaluate import evaluate
from .models import TASKS, build_model, canonical_arch
from .weights import (code_version, hardware, hardware_summary, read_sidecar, save_weights,
                      sidecar_path, write_sidecar)

OPTIMIZERS = ("adam", "adamw", "sgd")   # adamw: weight decay decoupled from the Adam step
SCHEDULES = ("constant", "cosine")


@dataclass
class TrainConfig:
    """Everything that defines a run; two runs with equal configs take identical steps on CPU."""

    task: str
    arch: str
    epochs: int = 20
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float = 2e-3
    momentum: float = 0.9          # SGD only
    weight_decay: float = 0.0
    ema: float = 0.0               # decay of an exponential moving average of the weights, which
                                   # is validated and shipped instead of the raw weights (0: off)
    schedule: str = "cosine"       # cosine decays to lr * min_lr_ratio over all epochs
    warmup_steps: int = 200
    min_lr_ratio: float = 0.02
    clip: float = 1.0              # gradient-norm clip; 0 disables
    dropout: float = 0.0
    shift: int = 0                 # augmentation: translate each training image by up to this many
                                   # pixels in each direction (0: none)
    select: str = "loss"           # the epoch whose weights ship: lowest validation "loss", or
                                   # highest validation "accuracy" (classifiers; ties: lower loss)
    init: str = "chrono"
    seed: int = 0
    train_size: int = 0            # 0: all 55,000 training images; else the first N (sweeps, tests)
    val_size: int = 0              # 0: all 5,000 validation images

    def __post_init__(self):
        if self.task not in TASKS:
            raise ConfigError(f"unknown task {self.task!r}: use one of {', '.join(TASKS)}")
        self.arch = canonical_arch(self.arch, self.task)
        checks = [
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}"),
            (math.isfinite(self.lr) and 0 < self.lr < 10, "lr must be in (0, 10)"),
            (0 <= self.momentum < 1, "momentum must be in [0, 1)"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (0 <= self.ema < 1, "ema must be in [0, 1)"),
            (self.warmup_steps >= 0, "warmup_steps must be >= 0"),
            (0 <= self.min_lr_ratio <= 1, "min_lr_ratio must be in [0, 1]"),
            (self.clip >= 0, "clip must be >= 0"),
            (0 <= self.dropout < 1, "dropout must be in [0, 1)"),
            (0 <= self.shift < 28, "shift must be in [0, 28)"),
            (self.select == "loss" or (self.select == "accuracy" and self.task == "classify"),
             "select must be 'loss', or 'accuracy' for a classifier"),
            (self.init in ("chrono", "default"), "init must be 'chrono' or 'default'"),
            (self.train_size >= 0 and self.val_size >= 0, "train_size and val_size must be >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"{message} (config for {self.task}-{self.arch})")

    @property
    def name(self) -> str:
        return f"{self.task}-{self.arch}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def full_config(meta: dict) -> dict:
    """The whole config of a sidecar's run: TrainConfig's defaults fill the fields that older
    sidecars lack, so runs recorded before an option existed compare equal to runs without it."""
    return TrainConfig(**{"task": meta["task"], "arch": meta["architecture"],
                          **meta["config"]}).to_dict()


def recipe_without_seed(meta: dict) -> dict:
    """The full config of a sidecar's run without its seed: two runs of one recipe compare equal."""
    config = full_config(meta)
    config.pop("seed")
    return config


def learning_rate(config: TrainConfig, step: int, total_steps: int,
                  anchor: tuple[int, float] | None = None) -> float:
    """Linear warm-up, then constant or cosine decay to ``lr * min_lr_ratio``.

    ``anchor = (step0, decay0)`` (set when a run is extended) restarts the cosine at ``step0`` from
    the decay factor ``decay0`` it had reached there, down to the same floor at ``total_steps``.
    """
    warm = min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else 1.0
    if config.schedule == "constant":
        return config.lr * warm
    return config.lr * warm * cosine_decay(config, step, total_steps, anchor)


def cosine_decay(config: TrainConfig, step: int, total_steps: int,
                 anchor: tuple[int, float] | None = None) -> float:
    """The cosine schedule's factor in [min_lr_ratio, 1] at ``step`` (see ``learning_rate``)."""
    start, top = anchor if anchor else (0, 1.0)
    progress = min(1.0, max(0, step - start) / max(1, total_steps - start))
    floor = config.min_lr_ratio
    return floor + (top - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def make_optimizer(config: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                           weight_decay=config.weight_decay, nesterov=True)


def epoch_order(config: TrainConfig, epoch: int, count: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
    return torch.randperm(count, generator=generator)


def batch_shifts(config: TrainConfig, epoch: int, position: int, count: int) -> torch.Tensor:
    """The (count, 2) translations of one batch: a function of (seed, epoch, batch), like the
    order, so that a resumed run draws the same ones."""
    generator = torch.Generator().manual_seed((config.seed * 1_000 + epoch) * 1_000_003 + position)
    return torch.randint(-config.shift, config.shift + 1, (count, 2), generator=generator)


@dataclass
class RunState:
    epoch: int = 0            # completed epochs
    position: int = 0         # completed batches within the current epoch
    step: int = 0             # completed optimizer steps
    epoch_loss: float = 0.0   # running sums of the current epoch
    epoch_correct: int = 0
    epoch_samples: int = 0
    epoch_seconds: float = 0.0
    wall_seconds: float = 0.0
    best_epoch: int = -1
    best_validation: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    schedule_anchor: list | None = None   # [step, decay factor] where an extension restarted it
    extensions: list = field(default_factory=list)


def weights_average(config: TrainConfig, model: torch.nn.Module):
    """The moving average of ``model``'s weights that ``config.ema`` asks for (torch's
    AveragedModel, updated after each optimizer step), or None."""
    if not config.ema:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema))


def save_checkpoint(path: Path, config, model, optimizer, state: RunState, average=None) -> None:
    """torch.save through ``atomic_write_bytes`` (a temporary file of its own, then an atomic
    rename): never a half-written checkpoint. A failed write (disk full, folder gone) raises
    CheckpointError naming ``path``, leaving the previous checkpoint and no temporary file."""
    path = Path(path)
    payload = {"config": config.to_dict(), "model": model.state_dict(),
               "optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state(),
               "state": dataclasses.asdict(state)}
    if average is not None:
        payload["average"] = average.state_dict()
    try:
        atomic_write_bytes(path, lambda handle: torch.save(payload, handle))
    except (DataError, RuntimeError) as error:  # a full disk: RuntimeError from torch
        raise CheckpointError(f"{path}: cannot write the checkpoint ({error}); the previous "
                              f"checkpoint is intact") from None


def _with_defaults(saved: dict, config: TrainConfig) -> dict:
    """A saved config (checkpoint, sidecar) with each field added since it was saved at its
    default: the run did without it."""
    defaults = TrainConfig(task=saved.get("task", config.task), arch=saved.get("arch", config.arch))
    return {**defaults.to_dict(), **saved}


def load_checkpoint(path: Path, config: TrainConfig, model, optimizer, batches: int = 0,
                    extend: bool = False, average=None) -> RunState:
    """Restore a run. With ``extend``, a checkpoint whose config differs only by fewer epochs is
    accepted and its schedule re-anchored (``batches`` per epoch locate the old schedule)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        saved = payload["config"]
        # a field dropped since the checkpoint was made is ignored
        known = {f.name for f in dataclasses.fields(RunState)}
        state = RunState(**{k: v for k, v in payload["state"].items() if k in known})
    except Exception as error:
        reason = str(error).split("\n")[0].split(". ")[0]   # torch's messages run to paragraphs
        raise CheckpointError(f"{path}: damaged checkpoint ({type(error).__name__}: {reason}); "
                              "delete it to train this run from the start") from None
    requested = config.to_dict()
    saved = _with_defaults(saved, config)
    diff = {k: (saved.get(k), v) for k, v in requested.items() if saved.get(k) != v}
    if set(diff) == {"epochs"} and extend and config.epochs > saved["epochs"]:
        old = TrainConfig(**saved)
        anchor = tuple(state.schedule_anchor) if state.schedule_anchor else None
        decay = cosine_decay(old, state.step, batches * old.epochs, anchor)
        state.schedule_anchor = [state.step, decay]
        state.extensions.append({"at_step": state.step, "at_epoch": state.epoch,
                                 "from_epochs": old.epochs, "to_epochs": config.epochs})
    elif diff:
        hint = " (more epochs: resume with extend)" if set(diff) == {"epochs"} and not extend else ""
        raise CheckpointError(f"{path}: checkpoint was made with another config; "
                              f"differences (saved, requested): {diff}{hint}")
    try:
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        if average is not None:
            average.load_state_dict(payload["average"])
    except (RuntimeError, ValueError, KeyError) as error:
        raise CheckpointError(f"{path}: does not fit {config.name} ({error})") from None
    torch.set_rng_state(payload["torch_rng"])
    return state


class TrainingStopped(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped the run after its checkpoint was saved: the same command resumes
    it. A KeyboardInterrupt, so that callers stop as on Ctrl-C; ``exit_code`` is the shell's
    128 + signal (130, 143), so that ``train && next`` does not go on."""

    def __init__(self, signum: int, state: RunState):
        super().__init__(f"stopped by signal {signum}; the checkpoint is saved")
        self.signum = signum
        self.state = state

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class _StopRequest:
    requested: int = 0   # the signal number that asked the run to stop, 0 while none has


@contextlib.contextmanager
def _stop_on_signals(signals=(signal.SIGINT, signal.SIGTERM)):
    """While training, SIGINT (Ctrl-C) and SIGTERM stop the run at the next batch boundary with a
    checkpoint, so that nothing is lost and the resumed run stays exact. (Main thread only.) A
    second Ctrl-C acts as usual; a second SIGTERM is ignored, since a stop sent both to a process
    group and by a parent that forwards it arrives twice (SIGKILL still kills)."""
    stop = _StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {}

    def handler(signum, frame):
        stop.requested = signum
        signal.signal(signum, previous[signum] if signum == signal.SIGINT else signal.SIG_IGN)

    for sig in signals:
        previous[sig] = signal.signal(sig, handler)
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def train(config: TrainConfig, run_dir: str | Path, weights_path: str | Path | None = None,
          until_epoch: int | None = None, deadline: float | None = None, device: str = "auto",
          checkpoint_minutes: float = 5.0, progress: bool = True, mnist=None,
          extend: bool = False) -> RunState:
    """Train (or resume) the run in ``run_dir`` up to ``until_epoch`` (default: all epochs).

    ``deadline`` is a ``time.time()`` after which the run checkpoints and returns early; SIGINT or
    SIGTERM checkpoint and raise ``TrainingStopped``. ``extend`` lets a checkpoint made with fewer
    epochs continue to ``config.epochs``. The device, both folders and the run folder's lock are
    checked before any data is read; ``weights_path`` is written only by the run that made it (see
    ``_refuse_to_overwrite``).
    """
    run_dir = Path(run_dir)
    weights_path = Path(weights_path) if weights_path is not None else None
    device = resolve_device(device)
    if weights_path is not None:
        if weights_path.is_dir():
            raise ConfigError(f"{weights_path} is a folder: name the .safetensors file to write")
        _check_writable(weights_path.parent, "weights folder")
        if not (run_dir / "checkpoint.pt").exists():  # at once, leaving no run folder behind
            _refuse_to_overwrite(weights_path, config, run_dir, None, extend)  # (again, locked)
    with _run_dir_lock(run_dir):
        return _train_locked(config, run_dir, weights_path, until_epoch, deadline, device,
                             checkpoint_minutes, progress, mnist, extend)


def _train_locked(config, run_dir, weights_path, until_epoch, deadline, device,
                  checkpoint_minutes, progress, mnist, extend) -> RunState:
    """``train`` once its checks have passed and it holds the run folder."""
    mnist = mnist or load_mnist()
    x_train, y_train = mnist.train.tensors()
    x_val, y_val = mnist.validation.tensors()
    if config.train_size:
        x_train, y_train = x_train[:config.train_size], y_train[:config.train_size]
    if config.val_size:
        x_val, y_val = x_val[:config.val_size], y_val[:config.val_size]
    x_train, y_train = x_train.to(device), y_train.to(device)

    model = build_model(config.task, config.arch, config.dropout, config.init, seed=config.seed)
    model.to(device).train()
    optimizer = make_optimizer(config, model)
    average = weights_average(config, model)
    checkpoint = run_dir / "checkpoint.pt"
    batches = len(x_train) // config.batch_size
    if batches == 0:
        raise ConfigError(f"batch_size {config.batch_size} exceeds the {len(x_train)} training images")
    resumed = checkpoint.exists()
    state = (load_checkpoint(checkpoint, config, model, optimizer, batches, extend, average)
             if resumed else RunState())
    _refuse_to_overwrite(weights_path, config, run_dir, state if resumed else None, extend)
    if resumed:
        _backfill_hardware(state, weights_path)
    total_steps = batches * config.epochs
    target = min(config.epochs, until_epoch or config.epochs)
    with _stop_on_signals() as stop:
        last_save = time.time()
        while state.epoch < target:
            order = epoch_order(config, state.epoch, len(x_train)).to(device)
            bar = None
            if progress:
                from tqdm.auto import tqdm

                bar = tqdm(total=batches, initial=state.position, unit="batch", leave=False,
                           desc=f"{config.name} epoch {state.epoch + 1}/{config.epochs}")
            while state.position < batches:
                started = time.time()
                index = order[state.position * config.batch_size:(state.position + 1) * config.batch_size]
                pixels = x_train[index]
                if config.shift:
                    shifts = batch_shifts(config, state.epoch, state.position, len(index))
                    pixels = shift_images(pixels, shifts, config.shift)
                x = pixels.t().unsqueeze(-1)
                lr = learning_rate(config, state.step, total_steps,
                                   tuple(state.schedule_anchor) if state.schedule_anchor else None)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                loss, extra = model.loss(x, y_train[index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                norm = (torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
                        if config.clip else None)
                optimizer.step()
                if average is not None:
                    average.update_parameters(model)
                value = loss.item()
                if not math.isfinite(value) or (norm is not None and not math.isfinite(norm.item())):
                    # stop before anything is saved: the last checkpoint and weights stay sound
                    if bar is not None:
                        bar.close()
                    raise TrainingDiverged(
                        f"{config.name}: training diverged at epoch {state.epoch + 1}, batch "
                        f"{state.position + 1} (loss {value:.4g}, gradient norm "
                        f"{'-' if norm is None else f'{norm.item():.4g}'}); nothing was saved "
                        f"after the last checkpoint. Lower the learning rate (lr {config.lr:g}).",
                        state.history)
                elapsed = time.time() - started
                state.position += 1
                state.step += 1
                state.epoch_loss += value * len(index)
                state.epoch_correct += int(extra.get("correct", 0))
                state.epoch_samples += len(index)
                state.epoch_seconds += elapsed
                state.wall_seconds += elapsed
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{state.epoch_loss / state.epoch_samples:.4f}",
                                    samples_s=f"{state.epoch_samples / state.epoch_seconds:.0f}")
                now = time.time()
                if (deadline is not None and now >= deadline) or stop.requested:
                    save_checkpoint(checkpoint, config, model, optimizer, state, average)
                    if bar is not None:
                        bar.close()
                    if stop.requested:
                        print(f"{config.name}: stopped by signal {stop.requested} at epoch "
                              f"{state.epoch + 1}, batch {state.position}; checkpoint saved",
                              flush=True)
                        raise TrainingStopped(stop.requested, state)
                    return state
                if now - last_save >= checkpoint_minutes * 60:
                    save_checkpoint(checkpoint, config, model, optimizer, state, average)
                    last_save = now
            if bar is not None:
                bar.close()
            shipped = model if average is None else average.module   # validated and saved
            _finish_epoch(config, shipped, optimizer, state, x_val, y_val, weights_path, mnist,
                          device)
            save_checkpoint(checkpoint, config, model, optimizer, state, average)
            last_save = time.time()
            print(_epoch_line(config, state.history[-1]), flush=True)
            if stop.requested:
                print(f"{config.name}: stopped by signal {stop.requested} after epoch "
                      f"{state.epoch}; checkpoint saved", flush=True)
                raise TrainingStopped(stop.requested, state)
        return state


LOCK_NAME = ".lock"   # in the run folder; holds the pid of the process training there


def _check_writable(folder: Path, what: str) -> None:
    """Create ``folder`` if need be and write a probe file in it, so that a folder that cannot
    take the checkpoint or the weights stops the run before any data is read, not after an epoch
    of compute. (A real write, not os.access: root passes any permission check.)"""
    if folder.exists() and not folder.is_dir():
        raise CheckpointError(f"{folder}: the {what} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CheckpointError(f"{folder}: cannot create the {what} "
                              f"({error.strerror or error})") from None
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-probe-"):
            pass
    except OSError as error:
        raise CheckpointError(f"{folder}: the {what} is not writable "
                              f"({error.strerror or error})") from None


@contextlib.contextmanager
def _run_dir_lock(run_dir: Path):
    """Hold an exclusive lock on ``run_dir`` while training there: a second process (the same
    command twice, or another config) is refused at once rather than race on the checkpoint. The
    kernel drops the lock when the process ends, even by SIGKILL, so no stale lock is left."""
    _check_writable(run_dir, "run folder")
    path = run_dir / LOCK_NAME
    try:
        handle = open(path, "a+")
    except OSError as error:
        raise CheckpointError(f"{path}: cannot open the run folder's lock "
                              f"({error.strerror or error})") from None
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip()
            who = f"process {owner}" if owner.isdigit() else "another process"
            raise CheckpointError(f"{run_dir}: run folder in use by {who}, training there now; "
                                  f"wait for it to end or stop it") from None
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
        except OSError as error:
            raise CheckpointError(f"{path}: cannot write the run folder's lock "
                                  f"({error.strerror or error})") from None
        yield


def _refuse_to_overwrite(weights_path: Path | None, config: TrainConfig, run_dir: Path,
                         resumed: RunState | None, extend: bool) -> None:
    """A run writes weights only over its own. From scratch, any existing weights file is refused.
    Resuming, the sidecar must record this config (epochs aside when extending) and no more epochs
    than the checkpoint has trained (one more: stopped between the weights and the checkpoint)."""
    if weights_path is None or not (weights_path.exists() or sidecar_path(weights_path).exists()):
        return
    try:
        meta = read_sidecar(weights_path)
        trained = meta.get("epochs_trained") or 0
        holds = f"weights of {meta['task']}-{meta['architecture']} after {trained} epoch(s)"
        saved = _with_defaults(meta["config"], config)
    except (CheckpointError, ConfigError, KeyError, TypeError, AttributeError):
        meta, holds = None, "weights without a readable sidecar"
    move = "move or delete them, or pass another weights path"
    if resumed is None:
        raise CheckpointError(f"{weights_path} already holds {holds}, but {run_dir} has no "
                              f"checkpoint to resume; {move} to train from scratch")
    if meta is None:
        raise CheckpointError(f"{weights_path} holds {holds}, not this run's; {move}")
    diff = {k: (saved.get(k), v) for k, v in config.to_dict().items() if saved.get(k) != v}
    if extend:
        diff.pop("epochs", None)
    if diff:
        raise CheckpointError(f"{weights_path} holds {holds} of another config than the run in "
                              f"{run_dir} (saved, requested: {diff}); {move}")
    if trained > resumed.epoch + 1:
        raise CheckpointError(f"{weights_path} holds {holds}, more than the {resumed.epoch} of the "
                              f"run in {run_dir}: another run's; {move}")


def _improves(config: TrainConfig, val: dict, best: dict) -> bool:
    """Whether this epoch's validation metrics beat the shipped epoch's, by ``config.select``."""
    if not best:
        return True
    if config.select == "accuracy":
        return (val["accuracy"], -val["loss"]) > (best["accuracy"], -best["loss"])
    return val["loss"] < best["loss"]


def _backfill_hardware(state: RunState, weights_path) -> None:
    """Epochs recorded before the history named its hardware took the sidecar's one value."""
    if weights_path is None or all("hardware" in r for r in state.history):
        return
    if sidecar_path(weights_path).exists():
        earlier = read_sidecar(weights_path).get("hardware")
        for record in state.history:
            record.setdefault("hardware", earlier)


def _epoch_line(config: TrainConfig, record: dict) -> str:
    text = (f"{config.name} epoch {record['epoch']}/{config.epochs}: train loss "
            f"{record['train_loss']:.4f}, val loss {record['val_loss']:.4f}")
    if "val_accuracy" in record:
        text += f", val acc {record['val_accuracy']:.4f}"
    return text + f", {record['samples_per_s']:.0f} samples/s, lr {record['lr']:.2e}"


def _finish_epoch(config, model, optimizer, state, x_val, y_val, weights_path, mnist, device):
    val = evaluate(model, x_val.to(device), y_val.to(device))
    record = {
        "epoch": state.epoch + 1,
        "train_loss": state.epoch_loss / state.epoch_samples,
        "val_loss": val["loss"],
        "lr": optimizer.param_groups[0]["lr"],
        "samples_per_s": state.epoch_samples / max(state.epoch_seconds, 1e-9),
        "epoch_seconds": state.epoch_seconds,
        "wall_seconds": state.wall_seconds,
        "hardware": hardware(device),
    }
    if config.task == "classify":
        record["train_accuracy"] = state.epoch_correct / state.epoch_samples
        record["val_accuracy"] = val["accuracy"]
    if device.type == "cuda":  # sizes a GPU campaign's worker count (many workers share one card)
        record["gpu_peak_mib"] = torch.cuda.max_memory_reserved(device) / 2**20
    state.history.append(record)
    state.epoch += 1
    state.position = 0
    state.epoch_loss = state.epoch_seconds = 0.0
    state.epoch_correct = state.epoch_samples = 0
    improved = _improves(config, val, state.best_validation)
    if improved:
        state.best_epoch = state.epoch
        state.best_validation = dict(val)
    if weights_path is None:
        return
    metadata = {
        "config": config.to_dict(),
        "data_source_sha256": mnist.source_hash,
        "epochs_trained": state.epoch,
        "best_epoch": state.best_epoch,
        "validation": state.best_validation,
        "history": state.history,
        "extensions": state.extensions,
        "wall_seconds": state.wall_seconds,
        "hardware": hardware_summary(state.history),
        "torch": torch.__version__,
        "code_version": code_version(),
    }
    if improved or not Path(weights_path).exists():
        save_weights(model, Path(weights_path), metadata)
    else:  # same weights, longer history
        write_sidecar(Path(weights_path), model, metadata)
