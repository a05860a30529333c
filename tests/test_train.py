"""Training is resumable: a run killed with SIGKILL and re-run ends with the uninterrupted weights."""

import dataclasses
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from seqmnist.errors import CheckpointError, ConfigError, TrainingDiverged
from seqmnist.train import TrainConfig, learning_rate, train
from seqmnist.weights import load_weights

TINY = dict(task="classify", arch="lstm-1x8", epochs=2, batch_size=16, train_size=96, val_size=64,
            warmup_steps=2, lr=5e-3, dropout=0.0)


def cli_train(run_dir, weights, extra=()):
    command = [sys.executable, "-m", "seqmnist", "train", TINY["task"], TINY["arch"],
               "--run-dir", str(run_dir), "--weights", str(weights), "--quiet",
               "--checkpoint-minutes", "0", *extra]
    for key in ("epochs", "batch_size", "train_size", "val_size", "warmup_steps", "lr"):
        command += [f"--{key.replace('_', '-')}", str(TINY[key])]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return command, env


def final_state(run_dir):
    return torch.load(run_dir / "checkpoint.pt", weights_only=True)["model"]


def test_killed_and_resumed_run_matches_uninterrupted(tmp_path, mnist):
    command, env = cli_train(tmp_path / "a", tmp_path / "a.safetensors")
    subprocess.run(command, env=env, check=True, capture_output=True)

    command, env = cli_train(tmp_path / "b", tmp_path / "b.safetensors")
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = tmp_path / "b" / "checkpoint.pt"
    while not checkpoint.exists() and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)  # somewhere in the middle of the run
    killed = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert killed, "the run finished before it could be killed: make it longer"
    subprocess.run(command, env=env, check=True, capture_output=True)

    a, b = final_state(tmp_path / "a"), final_state(tmp_path / "b")
    for key in a:
        assert torch.equal(a[key], b[key]), key
    wa, wb = load_file(tmp_path / "a.safetensors"), load_file(tmp_path / "b.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_sigterm_stops_at_a_batch_boundary_with_a_checkpoint(tmp_path, mnist):
    command, env = cli_train(tmp_path / "a", tmp_path / "a.safetensors")
    subprocess.run(command, env=env, check=True, capture_output=True)

    command, env = cli_train(tmp_path / "b", tmp_path / "b.safetensors")
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    checkpoint = tmp_path / "b" / "checkpoint.pt"
    while not checkpoint.exists() and proc.poll() is None:
        time.sleep(0.05)
    running = proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate()
    assert running, "the run finished before it could be stopped: make it longer"
    assert proc.returncode == 143 and "stopped by signal" in output, output
    state = torch.load(checkpoint, weights_only=True)["state"]
    assert state["step"] < 2 * (TINY["train_size"] // TINY["batch_size"])
    subprocess.run(command, env=env, check=True, capture_output=True)
    a, b = final_state(tmp_path / "a"), final_state(tmp_path / "b")
    assert all(torch.equal(a[key], b[key]) for key in a)


def test_a_repeated_sigterm_is_ignored_while_a_second_ctrl_c_acts_as_usual():
    """A stop sent to a process group and forwarded by its parent arrives twice: the second SIGTERM
    must not kill the run before its checkpoint; an impatient second Ctrl-C still interrupts."""
    from seqmnist.train import _stop_on_signals

    calls = []
    previous = {sig: signal.signal(sig, lambda signum, frame: calls.append(signum))
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with _stop_on_signals() as stop:
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)
            assert stop.requested == signal.SIGTERM and calls == []
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
            assert calls == [signal.SIGINT]
        os.kill(os.getpid(), signal.SIGTERM)  # the run is over: the previous handler is back
        assert calls == [signal.SIGINT, signal.SIGTERM]
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def test_deadline_stops_and_resume_continues(tmp_path, mnist):
    config = TrainConfig(**TINY)
    state = train(config, tmp_path / "run", deadline=time.time(), progress=False, mnist=mnist)
    assert state.step == 1 and state.epoch == 0
    state = train(config, tmp_path / "run", tmp_path / "w.safetensors", progress=False, mnist=mnist)
    assert state.epoch == 2 and len(state.history) == 2
    assert state.step == 2 * (TINY["train_size"] // TINY["batch_size"])
    model, meta = load_weights(tmp_path / "w.safetensors", task="classify", arch="lstm-1x8")
    assert meta["epochs_trained"] == 2 and len(meta["history"]) == 2
    assert meta["data_source_sha256"] == mnist.source_hash
    assert {"val_loss", "val_accuracy", "train_loss", "samples_per_s"} <= set(meta["history"][0])


def test_checkpoint_errors(tmp_path, mnist):
    config = TrainConfig(**TINY)
    train(config, tmp_path / "run", tmp_path / "w.safetensors", until_epoch=1, progress=False,
          mnist=mnist)
    other = TrainConfig(**{**TINY, "arch": "gru-1x8"})
    with pytest.raises(CheckpointError, match="another config"):
        train(other, tmp_path / "run", progress=False, mnist=mnist)
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="damaged checkpoint"):
        train(config, tmp_path / "run", progress=False, mnist=mnist)
    with pytest.raises(CheckpointError, match="architecture"):
        load_weights(tmp_path / "w.safetensors", arch="lstm-1x16")
    (tmp_path / "w.json").unlink()
    with pytest.raises(CheckpointError, match="no sidecar"):
        load_weights(tmp_path / "w.safetensors")


@pytest.mark.parametrize("bad", [dict(lr=-1.0), dict(epochs=0), dict(optimizer="rmsprop"),
                                 dict(schedule="step"), dict(clip=-1.0), dict(arch="lstm-x"),
                                 dict(task="regress"), dict(shift=-1), dict(select="f1"),
                                 dict(task="predict", select="accuracy")])
def test_nonsensical_config_is_refused(bad):
    with pytest.raises(ConfigError):
        TrainConfig(**{**TINY, **bad})


def test_schedule_warms_up_and_decays():
    config = TrainConfig(**{**TINY, "warmup_steps": 10, "min_lr_ratio": 0.1})
    rates = [learning_rate(config, s, 100) for s in range(101)]
    assert rates[0] == pytest.approx(config.lr / 10)
    assert max(rates) == pytest.approx(config.lr, rel=0.03)
    assert rates[-1] == pytest.approx(config.lr * 0.1)


def test_cli_reports_bad_input_in_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "seqmnist", "train", "classify", "lstm-1x0",
                             "--run-dir", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error:") and len(result.stderr.strip().splitlines()) == 1


def test_extension_continues_the_schedule_without_a_jump(tmp_path, mnist):
    short = TrainConfig(**TINY)
    train(short, tmp_path / "run", tmp_path / "w.safetensors", until_epoch=1, progress=False,
          mnist=mnist)
    longer = TrainConfig(**{**TINY, "epochs": 4})
    with pytest.raises(CheckpointError, match="resume with extend"):
        train(longer, tmp_path / "run", progress=False, mnist=mnist)

    state = train(longer, tmp_path / "run", tmp_path / "w.safetensors", progress=False, mnist=mnist,
                  extend=True)
    batches = TINY["train_size"] // TINY["batch_size"]
    assert state.epoch == 4 and state.step == 4 * batches and len(state.history) == 4
    assert state.extensions == [{"at_step": batches, "at_epoch": 1, "from_epochs": 2, "to_epochs": 4}]
    anchor = tuple(state.schedule_anchor)
    assert anchor[0] == batches
    # continuous at the extension, monotone after it, and down to the same floor at the new end
    before = learning_rate(short, batches, 2 * batches)
    after = [learning_rate(longer, s, 4 * batches, anchor) for s in range(batches, 4 * batches + 1)]
    assert after[0] == pytest.approx(before)
    assert all(a >= b for a, b in zip(after, after[1:]))
    assert after[-1] == pytest.approx(longer.lr * longer.min_lr_ratio)
    assert state.history[1]["lr"] < before  # the recorded rates follow the new schedule
    _, meta = load_weights(tmp_path / "w.safetensors")
    assert meta["config"]["epochs"] == 4 and meta["extensions"] == state.extensions

    fewer = TrainConfig(**{**TINY, "epochs": 3})
    with pytest.raises(CheckpointError, match="another config"):
        train(fewer, tmp_path / "run", progress=False, mnist=mnist, extend=True)


def test_a_run_without_checkpoint_does_not_overwrite_trained_weights(tmp_path, mnist):
    config = TrainConfig(**TINY)
    train(config, tmp_path / "run", tmp_path / "w.safetensors", until_epoch=1, progress=False,
          mnist=mnist)
    shipped = (tmp_path / "w.safetensors").read_bytes()
    (tmp_path / "run" / "checkpoint.pt").unlink()
    with pytest.raises(CheckpointError, match="no checkpoint to resume"):
        train(config, tmp_path / "run", tmp_path / "w.safetensors", progress=False, mnist=mnist)
    assert (tmp_path / "w.safetensors").read_bytes() == shipped


def test_each_epoch_records_its_hardware_and_older_epochs_take_the_sidecars(tmp_path, mnist):
    """A run resumed on other hardware (CPU, then a GPU) names both in its sidecar."""
    import json

    from seqmnist.weights import hardware

    config = TrainConfig(**TINY)
    run, weights = tmp_path / "run", tmp_path / "w.safetensors"
    train(config, run, weights, until_epoch=1, progress=False, mnist=mnist)
    # make the run look as if its first epoch was trained before epochs named their hardware
    payload = torch.load(run / "checkpoint.pt", weights_only=True)
    for record in payload["state"]["history"]:
        del record["hardware"]
    torch.save(payload, run / "checkpoint.pt")
    side = weights.with_suffix(".json")
    side.write_text(json.dumps(dict(json.loads(side.read_text()), hardware="cpu: an older machine")))
    train(config, run, weights, progress=False, mnist=mnist)
    _, meta = load_weights(weights)
    assert [r["hardware"] for r in meta["history"]] == ["cpu: an older machine", hardware("cpu")]
    assert meta["hardware"] == f"cpu: an older machine + {hardware('cpu')}"


def test_augmented_run_resumes_exactly_and_old_checkpoints_take_new_fields_defaults(tmp_path, mnist):
    """Shifted batches are drawn from (seed, epoch, batch), so a stopped and resumed run with
    ``shift`` ends where an uninterrupted one does; a checkpoint saved before ``shift`` existed
    resumes as shift 0, ignoring state fields dropped since."""
    config = TrainConfig(**dict(TINY, shift=2))
    whole = train(config, tmp_path / "a", progress=False, mnist=mnist)
    train(config, tmp_path / "b", deadline=time.time(), progress=False, mnist=mnist)
    resumed = train(config, tmp_path / "b", progress=False, mnist=mnist)
    assert resumed.step == whole.step
    a, b = final_state(tmp_path / "a"), final_state(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)
    plain = train(TrainConfig(**TINY), tmp_path / "c", progress=False, mnist=mnist)
    assert plain.history[-1]["train_loss"] != whole.history[-1]["train_loss"]

    old = TrainConfig(**dict(TINY, epochs=1))
    train(old, tmp_path / "d", progress=False, mnist=mnist)
    payload = torch.load(tmp_path / "d" / "checkpoint.pt", weights_only=True)
    del payload["config"]["shift"]
    payload["state"]["best_val_loss"] = 0.5  # a RunState field since dropped
    torch.save(payload, tmp_path / "d" / "checkpoint.pt")
    state = train(TrainConfig(**TINY), tmp_path / "d", progress=False, mnist=mnist, extend=True)
    assert state.epoch == 2
    with pytest.raises(CheckpointError, match="shift"):
        train(TrainConfig(**dict(TINY, shift=1, epochs=3)), tmp_path / "d", progress=False,
              mnist=mnist, extend=True)


def test_the_shipped_epoch_is_the_best_by_the_selected_validation_metric():
    from seqmnist.train import _improves

    best = {"loss": 0.20, "accuracy": 0.980}
    later = {"loss": 0.25, "accuracy": 0.985}   # overfitting: loss up, accuracy up
    tie = {"loss": 0.19, "accuracy": 0.980}
    by_loss, by_accuracy = TrainConfig(**TINY), TrainConfig(**dict(TINY, select="accuracy"))
    assert not _improves(by_loss, later, best) and _improves(by_accuracy, later, best)
    assert _improves(by_loss, tie, best) and _improves(by_accuracy, tie, best)
    assert not _improves(by_accuracy, {"loss": 0.21, "accuracy": 0.980}, best)
    assert _improves(by_accuracy, later, {})  # the first epoch always ships


def test_sweep_records_every_rate_and_picks_the_lowest_validation_loss(tmp_path):
    from seqmnist.sweep import load_sweep, sweep

    tiny = {k: v for k, v in TINY.items() if k not in ("task", "arch", "epochs", "lr")}
    record = sweep("classify", "lstm-1x8", rates=(1e-3, 3e-2), epochs=1, out_dir=tmp_path, threads=1,
                   **tiny)
    losses = {c["lr"]: c["best_val_loss"] for c in record["candidates"]}
    assert sorted(losses) == [1e-3, 3e-2] and len(set(losses.values())) == 2
    assert record["best_lr"] == min(losses, key=losses.get)
    assert all(c["best_val_loss"] == c["best_validation"]["loss"] for c in record["candidates"])
    assert load_sweep("classify", "lstm-1x8", tmp_path) == record
    assert not (tmp_path / "runs").exists()


def test_the_sweep_command_trains_every_rate_with_the_recipe_it_is_given(tmp_path, monkeypatch):
    """``sweep --dropout 0.25 --shift 2 ...``: the baselines' recipe reaches each rate's run."""
    from seqmnist.__main__ import main
    from seqmnist.sweep import load_sweep

    monkeypatch.setenv("SEQMNIST_WEIGHTS", str(tmp_path))
    assert main(["sweep", "classify", "mlp", "--lrs", "0.001", "--epochs", "1", "--quiet",
                 "--dropout", "0.25", "--shift", "2", "--warmup-steps", "2", "--batch-size", "16",
                 "--train-size", "96", "--val-size", "64", "--threads", "1"]) == 0
    [candidate] = load_sweep("classify", "mlp", tmp_path / "sweeps")["candidates"]
    assert {k: candidate["config"][k] for k in ("dropout", "shift", "warmup_steps", "train_size")} \
        == {"dropout": 0.25, "shift": 2, "warmup_steps": 2, "train_size": 96}


def test_sweeping_more_rates_extends_the_record_without_retraining(tmp_path):
    from seqmnist.sweep import sweep

    tiny = {k: v for k, v in TINY.items() if k not in ("task", "arch", "epochs", "lr")}
    first = sweep("predict", "gru-1x8", rates=(3e-2,), epochs=1, out_dir=tmp_path, threads=1, **tiny)
    extended = sweep("predict", "gru-1x8", rates=(1e-3, 3e-2), epochs=1, out_dir=tmp_path, threads=1,
                     **tiny)
    assert [c["lr"] for c in extended["candidates"]] == [1e-3, 3e-2]
    assert extended["candidates"][1] == first["candidates"][0]  # kept, not retrained
    assert extended["best_lr"] == min(extended["candidates"], key=lambda c: c["best_val_loss"])["lr"]
    with pytest.raises(ConfigError, match="epochs=1"):
        sweep("predict", "gru-1x8", rates=(1e-2,), epochs=2, out_dir=tmp_path, **tiny)


def test_a_sweep_refuses_to_extend_a_record_of_a_model_the_code_has_changed_since(tmp_path):
    """The record names its model's parameter count: the same recipe on a changed network (as
    when the CNN gained a convolution) must not keep the old network's rates as recorded."""
    import json

    from seqmnist.models import build_model, parameter_count
    from seqmnist.sweep import sweep

    tiny = {k: v for k, v in TINY.items() if k not in ("task", "arch", "epochs", "lr")}
    record = sweep("predict", "gru-1x8", rates=(3e-2,), epochs=1, out_dir=tmp_path, threads=1, **tiny)
    assert record["parameters"] == parameter_count(build_model("predict", "gru-1x8"))
    path = tmp_path / "predict-gru-1x8.json"
    changed = json.loads(path.read_text())
    changed["parameters"] += 1
    path.write_text(json.dumps(changed))
    with pytest.raises(ConfigError, match=f"{changed['parameters']:,}-parameter gru-1x8"):
        sweep("predict", "gru-1x8", rates=(1e-3, 3e-2), epochs=1, out_dir=tmp_path, **tiny)
    assert json.loads(path.read_text()) == changed   # refused, not rewritten


def test_a_sweep_trains_the_middle_of_its_grid_first_and_skips_recorded_rates():
    from seqmnist.sweep import training_order

    grid = (0.016, 0.001, 0.004, 0.002, 0.008)
    assert training_order(grid) == [0.004, 0.002, 0.008, 0.001, 0.016]
    assert training_order(grid, recorded={0.004, 0.001}) == [0.002, 0.008, 0.016]
    assert training_order((0.03, 0.01, 0.1, 0.003)) == [0.01, 0.03, 0.003, 0.1]
    assert training_order((0.01,), recorded={0.01}) == []


def test_a_sweep_keeps_the_rates_that_ended_when_another_rate_fails(tmp_path):
    """Each rate is recorded as its run ends: a rate whose run fails (here a damaged checkpoint in
    its folder) loses nothing of the others, and sweeping again trains only the failed rate."""
    import shutil

    from seqmnist import cluster
    from seqmnist.sweep import candidate_dir, load_sweep, sweep

    tiny = {k: v for k, v in TINY.items() if k not in ("task", "arch", "epochs", "lr")}
    recipe = TrainConfig(task="predict", arch="gru-1x8", epochs=1, **tiny)
    damaged = candidate_dir(tmp_path, dataclasses.replace(recipe, lr=3e-2))
    damaged.mkdir(parents=True)
    (damaged / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(cluster.RunFailed, match=r"lr0.03 exited .*: error: .*damaged checkpoint "
                                                 r"\(UnpicklingError: Weights only load failed\)"):
        sweep("predict", "gru-1x8", rates=(1e-3, 3e-2), epochs=1, out_dir=tmp_path, threads=1,
              retries=0, **tiny)
    kept = load_sweep("predict", "gru-1x8", tmp_path)
    assert [c["lr"] for c in kept["candidates"]] == [1e-3] and kept["best_lr"] == 1e-3
    assert not candidate_dir(tmp_path, dataclasses.replace(recipe, lr=1e-3)).exists()
    shutil.rmtree(damaged)
    resumed = sweep("predict", "gru-1x8", rates=(1e-3, 3e-2), epochs=1, out_dir=tmp_path, threads=1,
                    **tiny)
    assert [c["lr"] for c in resumed["candidates"]] == [1e-3, 3e-2]
    assert resumed["candidates"][0] == kept["candidates"][0]   # kept, not retrained
    assert not (tmp_path / "runs").exists()


def test_a_diverging_run_stops_with_a_clear_error_and_keeps_its_last_sound_checkpoint(
        tmp_path, mnist, monkeypatch):
    import seqmnist.train as train_module

    config = TrainConfig(**TINY)
    run, weights = tmp_path / "run", tmp_path / "w.safetensors"
    train(config, run, weights, until_epoch=1, progress=False, mnist=mnist)
    checkpoint, sidecar = (run / "checkpoint.pt").read_bytes(), weights.with_suffix(".json").read_text()

    def diverging_model(*args, **kwargs):  # the loss turns NaN, as at too high a learning rate
        model = build_model(*args, **kwargs)
        sound_loss = model.loss

        def nan_loss(x, y):
            loss, extra = sound_loss(x, y)
            return loss * float("nan"), extra

        model.loss = nan_loss
        return model

    build_model = train_module.build_model
    monkeypatch.setattr(train_module, "build_model", diverging_model)
    with pytest.raises(TrainingDiverged, match=r"diverged at epoch 2, batch 1 \(loss nan"):
        # a checkpoint after every batch: the diverged step must not reach the disk
        train(config, run, weights, progress=False, mnist=mnist, checkpoint_minutes=0)
    assert (run / "checkpoint.pt").read_bytes() == checkpoint
    assert weights.with_suffix(".json").read_text() == sidecar


def test_a_sweep_records_a_diverged_rate_instead_of_failing(tmp_path):
    """SGD under a huge weight decay: sound at 1e-4, NaN in the second epoch at 9.9. The rate's
    task reports it (through its run folder) and is not retried."""
    from seqmnist import tables
    from seqmnist.sweep import sweep

    recipe = dict(batch_size=16, train_size=64, val_size=32, optimizer="sgd", weight_decay=1000.0,
                  clip=0.0, schedule="constant", warmup_steps=0)
    record = sweep("classify", "lstm-1x8", rates=(1e-4, 9.9), epochs=2, out_dir=tmp_path,
                   threads=1, **recipe)
    diverged = record["candidates"][1]
    assert diverged["lr"] == 9.9 and diverged["best_val_loss"] is None
    assert "training diverged at epoch 2" in diverged["diverged"]
    assert [epoch["epoch"] for epoch in diverged["history"]] == [1]   # the epoch before it
    assert record["best_lr"] == 1e-4
    assert "| 9.9 | diverged | - |" in tables.sweep_table(record)
    with pytest.raises(TrainingDiverged, match="every swept rate diverged"):
        sweep("classify", "lstm-1x8", rates=(9.9,), epochs=2, out_dir=tmp_path / "other",
              threads=1, **recipe)
    log = (tmp_path / "other" / "runs" / "classify-lstm-1x8-lr9.9" / "train.log").read_text()
    assert log.count("training diverged") == 1


def test_an_averaged_run_ships_the_moving_average_of_its_weights_and_resumes_exactly(tmp_path, mnist):
    """With ``ema``, the average follows a <- d a + (1 - d) p after each step (the first step
    copies p), does not change the raw trajectory, is validated and shipped, and a stopped run
    resumes it exactly; ``adamw`` decouples the weight decay."""
    config = TrainConfig(**dict(TINY, ema=0.5, optimizer="adamw", weight_decay=0.01))
    checkpoint = tmp_path / "steps" / "checkpoint.pt"
    train(config, tmp_path / "steps", deadline=time.time(), progress=False, mnist=mnist)
    first = torch.load(checkpoint, weights_only=True)
    train(config, tmp_path / "steps", deadline=time.time(), progress=False, mnist=mnist)
    second = torch.load(checkpoint, weights_only=True)
    assert second["state"]["step"] == 2
    for name, raw in second["model"].items():
        one, two = first["model"][name], raw
        assert torch.equal(first["average"][f"module.{name}"], one)
        assert torch.allclose(second["average"][f"module.{name}"], 0.5 * one + 0.5 * two)

    whole = train(config, tmp_path / "whole", tmp_path / "w.safetensors", progress=False,
                  mnist=mnist)
    resumed = train(config, tmp_path / "steps", progress=False, mnist=mnist)
    assert resumed.step == whole.step
    a, b = (torch.load(p / "checkpoint.pt", weights_only=True) for p in
            (tmp_path / "whole", tmp_path / "steps"))
    for part in ("model", "average"):
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part])
    plain = train(TrainConfig(**dict(TINY, optimizer="adamw", weight_decay=0.01)),
                  tmp_path / "plain", progress=False, mnist=mnist)
    raw = final_state(tmp_path / "plain")
    assert all(torch.equal(raw[k], a["model"][k]) for k in raw)   # the average only watches
    assert plain.history[-1]["val_loss"] != whole.history[-1]["val_loss"]   # it is validated
    shipped = load_file(tmp_path / "w.safetensors")
    averaged = {k.removeprefix("module."): v for k, v in a["average"].items() if k != "n_averaged"}
    assert whole.best_epoch == whole.epoch   # improves to the end: ships the last average
    assert all(torch.equal(v, averaged[k]) for k, v in shipped.items())


def test_the_average_of_a_batch_normalized_cnn_carries_running_statistics(tmp_path, mnist):
    """The average keeps the raw model's buffers (AveragedModel's default): the shipped CNN's
    batch norms hold statistics of the training images, not their initial mean 0 and variance 1,
    and the weights load back with them."""
    config = TrainConfig(**dict(TINY, arch="cnn", epochs=1, ema=0.9))
    train(config, tmp_path / "run", tmp_path / "cnn.safetensors", progress=False, mnist=mnist)
    shipped = load_file(tmp_path / "cnn.safetensors")
    means = [v for k, v in shipped.items() if k.endswith("running_mean")]
    variances = [v for k, v in shipped.items() if k.endswith("running_var")]
    assert len(means) == 3 and all(m.abs().max() > 1e-3 for m in means)
    assert all(not torch.allclose(v, torch.ones_like(v)) for v in variances)
    model, _ = load_weights(tmp_path / "cnn.safetensors")
    assert torch.equal(model.net[1].running_mean, means[0])
