"""`train` on bad input loses nothing: it refuses up front with one line, or stops with a
checkpoint and the shell's exit code for the signal."""

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import seqmnist.train as train_module
from seqmnist.errors import CheckpointError, ConfigError
from seqmnist.paths import weights_dir
from seqmnist.train import TrainConfig, save_checkpoint, train

TINY = dict(task="classify", arch="lstm-1x8", epochs=1, train_size=256, val_size=128, batch_size=64)
TINY_ARGS = ["--epochs", "1", "--train-size", "256", "--val-size", "128", "--batch-size", "64",
             "--quiet"]


def cli_train(arch, *args, wait=True):
    command = [sys.executable, "-m", "seqmnist", "train", "classify", arch, *TINY_ARGS, *args]
    env = dict(os.environ, SEQMNIST_NO_REEXEC="1", OMP_NUM_THREADS="1")
    if not wait:
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), (
        result.returncode, result.stdout, result.stderr)
    return lines[0]


@pytest.fixture
def no_compute(monkeypatch):
    """Fail the test if train reads the data or builds the model."""
    def forbidden(*args, **kwargs):
        raise AssertionError("train computed before refusing")

    monkeypatch.setattr(train_module, "load_mnist", forbidden)
    monkeypatch.setattr(train_module, "build_model", forbidden)


def test_from_scratch_over_another_models_weights_is_refused(tmp_path):
    """The reported probe: a 1x16 run from scratch named a shipped 1x32's weights."""
    shipped = weights_dir() / "classify" / "lstm-1x32.safetensors"
    weights = tmp_path / "lstm-1x32.safetensors"
    for suffix in (".safetensors", ".json"):
        weights.with_suffix(suffix).write_bytes(shipped.with_suffix(suffix).read_bytes())
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    result = cli_train("lstm-1x16", "--run-dir", str(tmp_path / "R"), "--weights", str(weights))
    line = one_error_line(result)
    assert str(weights) in line and "classify-lstm-1x32" in line and "no checkpoint" in line
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no run folder either


def test_a_resumed_run_writes_only_over_its_own_weights(tmp_path, mnist):
    config = TrainConfig(**{**TINY, "epochs": 2})
    train(config, tmp_path / "a", tmp_path / "a.safetensors", progress=False, mnist=mnist)
    kept = (tmp_path / "a.safetensors").read_bytes(), (tmp_path / "a.json").read_bytes()
    # another config's run, resumed with the first run's weights path
    other = TrainConfig(**{**TINY, "epochs": 2, "lr": 1e-3})
    train(other, tmp_path / "b", until_epoch=1, progress=False, mnist=mnist)
    with pytest.raises(CheckpointError, match="another config"):
        train(other, tmp_path / "b", tmp_path / "a.safetensors", progress=False, mnist=mnist)
    # the same config, but another run (one batch in) than the one that made the 2-epoch weights
    train(config, tmp_path / "c", deadline=time.time(), progress=False, mnist=mnist)
    with pytest.raises(CheckpointError, match="another run's"):
        train(config, tmp_path / "c", tmp_path / "a.safetensors", progress=False, mnist=mnist)
    assert ((tmp_path / "a.safetensors").read_bytes(), (tmp_path / "a.json").read_bytes()) == kept
    # its own run, extended, goes on writing them
    longer = TrainConfig(**{**TINY, "epochs": 3})
    state = train(longer, tmp_path / "a", tmp_path / "a.safetensors", progress=False, mnist=mnist,
                  extend=True)
    assert state.epoch == 3 and (tmp_path / "a.json").read_bytes() != kept[1]


def test_a_run_folder_in_use_is_refused(tmp_path):
    run = tmp_path / "R"
    run.mkdir()
    with open(run / ".lock", "a+") as lock:  # as a training process holds it
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock.write("4242\n")
        lock.flush()
        result = cli_train("lstm-1x8", "--run-dir", str(run),
                           "--weights", str(tmp_path / "w.safetensors"))
    line = one_error_line(result)
    assert str(run) in line and "in use by process 4242" in line
    assert sorted(p.name for p in run.iterdir()) == [".lock"]
    assert not (tmp_path / "w.safetensors").exists()


def test_a_checkpoint_never_touches_another_writers_temporary_file(tmp_path, mnist):
    """Temporary names are unique: a second writer (the old shared ``.checkpoint.pt.tmp``) is left
    alone, and the checkpoint is whole."""
    config = TrainConfig(**TINY)
    model = train_module.build_model(config.task, config.arch)
    optimizer = train_module.make_optimizer(config, model)
    other = tmp_path / ".checkpoint.pt.tmp"
    other.write_bytes(b"another process is writing this")
    save_checkpoint(tmp_path / "checkpoint.pt", config, model, optimizer, train_module.RunState())
    assert other.read_bytes() == b"another process is writing this"
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["config"] == config.to_dict()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".checkpoint.pt.tmp", "checkpoint.pt"]


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_with_a_checkpoint_and_the_shells_exit_code(tmp_path, sig, code):
    run = tmp_path / "R"
    # a long run, a checkpoint after every batch: stopped after its first
    proc = cli_train("lstm-1x8", "--run-dir", str(run), "--checkpoint-minutes", "0",
                     "--epochs", "50", wait=False)
    checkpoint = run / "checkpoint.pt"
    started = time.time()
    while not checkpoint.exists() and proc.poll() is None and time.time() - started < 120:
        time.sleep(0.05)
    running = proc.poll() is None
    proc.send_signal(sig)
    output, _ = proc.communicate(timeout=120)
    assert running, output
    assert proc.returncode == code and "checkpoint saved" in output, (proc.returncode, output)
    state = torch.load(checkpoint, weights_only=True)["state"]
    assert 1 <= state["step"] < 50 * 4
    assert not list(run.glob("*.tmp"))


def test_unwritable_folders_are_refused_before_any_compute(tmp_path, no_compute):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    config = TrainConfig(**TINY)
    with pytest.raises(CheckpointError, match="run folder"):
        train(config, blocker / "run", progress=False)
    with pytest.raises(CheckpointError, match="weights folder"):
        train(config, tmp_path / "run", blocker / "w" / "w.safetensors", progress=False)
    with pytest.raises(CheckpointError, match="run folder is a file"):
        train(config, blocker, progress=False)
    with pytest.raises(ConfigError, match="is a folder"):
        train(config, tmp_path / "run", tmp_path, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]  # nothing made, not even run/


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through any permission")
def test_a_read_only_run_folder_is_refused_before_any_compute(tmp_path, no_compute):
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(CheckpointError, match="not writable|cannot create"):
            train(TrainConfig(**TINY), tmp_path / "run", progress=False)
    finally:
        tmp_path.chmod(0o700)


def test_an_unwritable_run_folder_from_the_command_line(tmp_path):
    (tmp_path / "a-file").write_text("")
    line = one_error_line(cli_train("lstm-1x8", "--run-dir", str(tmp_path / "a-file" / "R")))
    assert str(tmp_path / "a-file" / "R") in line


@pytest.mark.parametrize("failure", [RuntimeError("[enforce fail at inline_container.cc:603] . "
                                                  "unexpected pos 64 vs 0"),
                                     OSError(28, "No space left on device")])
def test_a_full_disk_names_the_checkpoint_and_leaves_no_temporary_file(tmp_path, mnist,
                                                                      monkeypatch, failure):
    config = TrainConfig(**{**TINY, "epochs": 2})
    run = tmp_path / "run"
    train(config, run, until_epoch=1, progress=False, mnist=mnist)
    before = (run / "checkpoint.pt").read_bytes()

    def full_disk(payload, f, *args, **kwargs):
        is_path = isinstance(f, (str, os.PathLike))
        with open(f, "ab") if is_path else contextlib.nullcontext(f) as out:
            out.write(b"partial")   # what got out before the disk filled
        raise failure

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(CheckpointError, match=str(run / "checkpoint.pt")):
        train(config, run, progress=False, mnist=mnist)
    assert (run / "checkpoint.pt").read_bytes() == before
    assert sorted(p.name for p in run.iterdir()) == [".lock", "checkpoint.pt"]


@pytest.mark.parametrize("device", ["banana", "cuda:99"])
def test_a_bad_device_is_refused_before_anything_is_read_or_written(tmp_path, device, no_compute):
    with pytest.raises(ConfigError, match="device"):
        train(TrainConfig(**TINY), tmp_path / "run", tmp_path / "w.safetensors", device=device,
              progress=False)
    assert not list(tmp_path.iterdir())


def test_a_bad_device_from_the_command_line(tmp_path):
    result = cli_train("lstm-1x8", "--run-dir", str(tmp_path / "R"), "--device", "banana")
    line = one_error_line(result)
    assert "banana" in line and not list(tmp_path.iterdir())


def test_a_stopped_sweep_exits_143_and_records_nothing_until_resumed(tmp_path):
    """A sweep stopped mid-candidate must not record it as swept: the record stays unwritten and
    the candidate's checkpoint waits for the rerun. (The candidate trains in a task's process,
    whose progress bar goes to the log in its run folder.)"""
    env = dict(os.environ, SEQMNIST_NO_REEXEC="1", OMP_NUM_THREADS="1",
               SEQMNIST_WEIGHTS=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-m", "seqmnist", "sweep", "classify", "lstm-1x8",
                             "--lrs", "1e-3", "--epochs", "1", "--threads", "1"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    log = tmp_path / "sweeps" / "runs" / "classify-lstm-1x8-lr0.001" / "train.log"
    end = time.time() + 120
    # the progress bar: training has begun
    while proc.poll() is None and time.time() < end and not (
            log.exists() and "batch" in log.read_text(errors="replace")):
        time.sleep(0.1)
    running = proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    output, errors = proc.communicate(timeout=120)
    assert running and proc.returncode == 143, (proc.returncode, output, errors)
    assert not (tmp_path / "sweeps" / "classify-lstm-1x8.json").exists()
    assert list((tmp_path / "sweeps" / "runs").glob("*/checkpoint.pt"))
