"""The campaign: its recipes and plans, a miniature campaign run to completion, resumed, stopped
by a signal and packed by the GPU script, and the shipping of final weights (the Dask runner
itself: tests/test_cluster.py)."""

import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from seqmnist import campaign, cluster
from seqmnist.errors import ConfigError

TINY = dict(epochs=2, batch_size=16, train_size=64, val_size=32, warmup_steps=1)


@pytest.fixture
def mini_campaign(tmp_path, monkeypatch, mnist):
    runs = [dict(task="classify", arch="lstm-1x4", **TINY), dict(task="predict", arch="gru-1x4", **TINY)]
    spec = tmp_path / "campaign.json"
    spec.write_text(json.dumps(runs))
    monkeypatch.setenv("SEQMNIST_CAMPAIGN_FILE", str(spec))
    monkeypatch.setenv("SEQMNIST_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return tmp_path


def test_declared_campaign_covers_the_assignment(monkeypatch):
    monkeypatch.delenv("SEQMNIST_CAMPAIGN_FILE", raising=False)
    names = {c.name for c in campaign.campaign_configs()}
    for cell in ("lstm", "gru"):
        for size in ("1x32", "1x64", "1x128", "3x32"):
            assert f"classify-{cell}-{size}" in names
    for cell in ("lstm", "gru"):
        assert {f"predict-{cell}-{s}" for s in ("1x32", "1x64", "1x128", "3x32")} <= names
    assert {"classify-cnn", "classify-mlp"} <= names


def test_a_stale_checkpoint_beside_a_finished_run_does_not_train_it_again(mini_campaign):
    """An older archive unpacked over a campaign folder leaves a checkpoint beside the finished
    run: the sidecar says finished, so the run is not trained again from that epoch."""
    import shutil

    campaign.train_one("classify-lstm-1x4", until_epoch=1, deadline=None)
    checkpoint = mini_campaign / "weights" / "checkpoints" / "classify-lstm-1x4" / "checkpoint.pt"
    shutil.copy(checkpoint, mini_campaign / "epoch1.pt")
    campaign.train_one("classify-lstm-1x4", until_epoch=None, deadline=None)
    shipped = mini_campaign / "weights" / "classify" / "lstm-1x4.safetensors"
    before = shipped.read_bytes()
    assert not checkpoint.exists()   # finished: its checkpoint folder is removed
    checkpoint.parent.mkdir(parents=True)
    shutil.copy(mini_campaign / "epoch1.pt", checkpoint)
    assert campaign.progress_of(campaign.find_config("classify-lstm-1x4")).finished
    spec = mini_campaign / "campaign.json"
    spec.write_text(json.dumps(json.loads(spec.read_text())[:1]))
    cluster.run_campaign(budget_minutes=5, workers=1, log_dir=mini_campaign / "logs")
    assert shipped.read_bytes() == before
    assert not (mini_campaign / "logs" / "classify-lstm-1x4.log").exists()   # nothing queued
    assert campaign.status_table().count("| 2/2 |") == 1


def test_more_epochs_for_a_finished_run_never_retrain_over_its_weights(mini_campaign, capsys):
    campaign.train_one("classify-lstm-1x4", until_epoch=None, deadline=None)
    shipped = mini_campaign / "weights" / "classify" / "lstm-1x4.safetensors"
    before = shipped.read_bytes()
    spec = mini_campaign / "campaign.json"
    runs = json.loads(spec.read_text())
    runs[0]["epochs"] = 3
    spec.write_text(json.dumps(runs[:1]))
    cluster.run_campaign(budget_minutes=5, workers=1, log_dir=mini_campaign / "logs", retries=0)
    assert shipped.read_bytes() == before
    assert "no checkpoint to resume" in (mini_campaign / "logs" / "classify-lstm-1x4.log").read_text()
    assert "classify-lstm-1x4 failed: classify-lstm-1x4 exited with code 2" in capsys.readouterr().out


def test_sigterm_stops_the_campaign_with_checkpoints(mini_campaign):
    spec = mini_campaign / "campaign.json"
    spec.write_text(json.dumps([dict(task="classify", arch="lstm-1x4", epochs=50, batch_size=16,
                                     train_size=128, val_size=32, warmup_steps=1)]))
    runner = subprocess.Popen([sys.executable, "-m", "seqmnist", "campaign", "run", "--budget-minutes",
                               "10", "--workers", "1"], env=dict(os.environ), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    first_epoch = mini_campaign / "weights" / "classify" / "lstm-1x4.json"
    started = time.time()
    while not first_epoch.exists() and runner.poll() is None and time.time() - started < 120:
        time.sleep(0.1)
    runner.send_signal(signal.SIGTERM)
    output, _ = runner.communicate(timeout=120)
    assert runner.returncode == 0 and "[campaign] stopped" in output, output
    assert "exited with code" not in output, output   # a clean stop, not a failed run
    checkpoint = mini_campaign / "weights" / "checkpoints" / "classify-lstm-1x4" / "checkpoint.pt"
    state = torch.load(checkpoint, weights_only=True)["state"]
    assert 1 <= state["epoch"] < 50
    assert "/50" in (mini_campaign / "weights" / "campaign_status.md").read_text()


def test_each_shipped_model_is_its_best_recorded_run_and_matches_the_declared_recipe(monkeypatch):
    """campaign.SHIPPED_CAMPAIGN is a hand-made decision: check it against the committed records
    (every run's sidecar in weights/sweeps/campaign<N>/, the shipped one among them)."""
    from seqmnist.paths import ROOT
    from seqmnist.results import campaign_runs
    from seqmnist.train import TrainConfig

    monkeypatch.delenv("SEQMNIST_CAMPAIGN_FILE", raising=False)
    defaults = TrainConfig(task="classify", arch="lstm-1x32").to_dict()
    for task, archs in campaign.RECURRENT_MODELS:
        for arch, records in campaign_runs(task, archs, weights_dir=ROOT / "weights").items():
            name = f"{task}-{arch}"
            shipped = [(number, meta) for number, meta, ships in records if ships]
            assert [number for number, _ in shipped] == [str(campaign.SHIPPED_CAMPAIGN[name])], name
            best = shipped[0][1]["validation"]
            for number, meta, ships in records:
                other = meta["validation"]
                key = "loss" if task == "predict" else "accuracy"
                better = other[key] < best[key] if key == "loss" else other[key] > best[key]
                assert not better, f"{name}: campaign {number} is better by validation {key}"
            config = {**defaults, **shipped[0][1]["config"]}
            declared = campaign.recipe(task, arch)
            assert {key: config[key] for key in declared} == declared, name


def test_campaign_plans_give_each_campaign_its_recipe_and_match_the_recorded_runs():
    from seqmnist.paths import ROOT

    def by_name(plan):
        return {f"{run['task']}-{run['arch']}": run for run in plan}

    third = by_name(campaign.campaign_plan(3))
    assert len(third) == 16
    assert third["classify-gru-3x32"]["select"] == "accuracy"
    assert third["predict-gru-1x128"]["epochs"] == 2 * campaign.recipe("predict", "gru-1x128", 2)["epochs"]
    assert campaign.recipe("classify", "lstm-1x64", 1)["epochs"] < campaign.recipe("classify", "lstm-1x64", 2)["epochs"]
    seeded = by_name(campaign.campaign_plan(4))
    assert all(seeded[name] == {**run, "seed": 1} for name, run in third.items())
    regularized = by_name(campaign.campaign_plan(campaign.REGULARIZED))
    assert sorted(regularized) == sorted(f"classify-{arch}" for arch in campaign.REGULARIZED_ARCHS)
    for name, run in regularized.items():
        assert run == {**third[name], **campaign.REGULARIZED_FIELDS}, name
    with pytest.raises(ConfigError):
        campaign.campaign_plan(3, ["classify-lstm-9x9"])
    with pytest.raises(ConfigError):
        campaign.recipe("classify", "lstm-1x64", max(campaign.CAMPAIGNS) + 1)
    sweep_best = by_name(campaign.campaign_plan(campaign.SWEEP_BEST))
    factor = campaign.SWEEP_BEST_LR["classify"] / campaign.SWEPT_LR["classify"]
    for name, run in third.items():
        faster = sweep_best[name]
        if name.startswith("classify"):
            assert faster["lr"] == pytest.approx(factor * run["lr"], rel=1e-2), name
        assert {**faster, "lr": run["lr"]} == run, name
    own_rate = by_name(campaign.campaign_plan(campaign.OWN_RATE))
    assert sorted(own_rate) == sorted(name for name in third if name.startswith("predict"))
    for name, run in own_rate.items():
        record = json.loads((ROOT / "weights" / "sweeps" / f"{name}.json").read_text())
        assert run == {**third[name], "lr": record["best_lr"]}, name
    averaged = by_name(campaign.campaign_plan(campaign.AVERAGED))
    assert sorted(averaged) == sorted([*own_rate, *regularized])   # each has its twin
    for name, run in averaged.items():
        twin = own_rate.get(name) or regularized[name]
        assert run == {**twin, **campaign.AVERAGED_FIELDS}, name
    # campaign 7's rate is the one the committed classifier sweep found best
    record = json.loads((ROOT / "weights" / "sweeps" / "classify-lstm-1x64.json").read_text())
    assert campaign.SWEEP_BEST_LR["classify"] == record["best_lr"]
    for spec in (ROOT / "weights" / "sweeps").glob("campaign*/runs.json"):
        runs = json.loads(spec.read_text())
        number = int(spec.parent.name.removeprefix("campaign"))
        names = [f"{r['task']}-{r['arch']}" for r in runs]
        assert runs == campaign.campaign_plan(number, names), spec


def test_a_campaign_at_the_models_own_rates_needs_sweeps_that_bracket_them(tmp_path, monkeypatch):
    """Campaign 10 reads each predictor's rate from its sweep record, and refuses a sweep whose
    best rate lies at an end of its grid (or one not recorded): that rate may not be the best."""
    sweeps = tmp_path / "sweeps"
    sweeps.mkdir()
    monkeypatch.setattr(campaign, "SWEEP_RECORDS", sweeps)

    def record(rates, best):
        return {"task": "predict", "arch": "gru-1x32", "best_lr": best,
                "candidates": [{"lr": rate} for rate in rates]}

    with pytest.raises(ConfigError, match="predict-gru-1x32"):
        campaign.campaign_plan(campaign.OWN_RATE, ["predict-gru-1x32"])
    (sweeps / "predict-gru-1x32.json").write_text(json.dumps(record([0.01, 0.02, 0.04], 0.04)))
    with pytest.raises(ConfigError, match="brackets its best rate"):
        campaign.campaign_plan(campaign.OWN_RATE, ["predict-gru-1x32"])
    (sweeps / "predict-gru-1x32.json").write_text(json.dumps(record([0.01, 0.02, 0.04], 0.02)))
    [run] = campaign.campaign_plan(campaign.OWN_RATE, ["predict-gru-1x32"])
    assert run == {**campaign.campaign_plan(3, ["predict-gru-1x32"])[0], "lr": 0.02}
    with pytest.raises(ConfigError, match="unknown runs: classify-gru-1x32"):
        campaign.campaign_plan(campaign.OWN_RATE, ["classify-gru-1x32"])  # its rule holds


def test_recipe_changes_name_what_each_campaign_varies():
    assert campaign.recipe_changes("classify", 3) == ""
    assert campaign.recipe_changes("classify", 4) == f"seed {campaign.SEEDS[4]}"
    assert campaign.recipe_changes("classify", campaign.REGULARIZED) == ", ".join(
        f"{key} {value}" for key, value in campaign.REGULARIZED_FIELDS.items())
    assert campaign.recipe_changes("classify", campaign.SWEEP_BEST) == "peak lr x3"
    assert campaign.recipe_changes("predict", campaign.SWEEP_BEST) == ""
    assert campaign.recipe_changes("predict", campaign.OWN_RATE) == "peak lr: the model's own sweep's best"
    assert campaign.recipe_changes("classify", campaign.AVERAGED) == "ema 0.999, " + ", ".join(
        f"{key} {value}" for key, value in campaign.REGULARIZED_FIELDS.items())
    runs = {"lstm-1x128": [("3", {}, True), ("4", {}, False)], "gru-3x32": [("6", {}, False)]}
    assert campaign.campaigns_legend("classify", runs) == (
        f"campaign 4: seed {campaign.SEEDS[4]}; campaign 6: "
        + campaign.recipe_changes("classify", campaign.REGULARIZED))


def test_ship_copies_the_declared_campaigns_finished_run_into_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQMNIST_WEIGHTS", str(tmp_path))
    monkeypatch.setattr(campaign, "SHIPPED_CAMPAIGN", {**campaign.SHIPPED_CAMPAIGN, "classify-lstm-1x32": 3})
    run = campaign.campaign_dir(3) / "classify"
    run.mkdir(parents=True)
    sidecar = {"epochs_trained": 40, "config": {"epochs": 40}}
    (run / "lstm-1x32.json").write_text(json.dumps(sidecar))
    (run / "lstm-1x32.safetensors").write_bytes(b"third campaign")
    (tmp_path / "classify").mkdir()
    (tmp_path / "classify" / "lstm-1x32.safetensors").write_bytes(b"second campaign")
    assert campaign.ship() == ["classify-lstm-1x32"]
    assert (tmp_path / "classify" / "lstm-1x32.safetensors").read_bytes() == b"third campaign"
    assert json.loads((tmp_path / "classify" / "lstm-1x32.json").read_text()) == sidecar
    assert campaign.ship() == []  # already in place
    (run / "lstm-1x32.json").write_text(json.dumps({"epochs_trained": 12, "config": {"epochs": 40}}))
    (run / "lstm-1x32.safetensors").write_bytes(b"unfinished")
    with pytest.raises(ConfigError, match="has not finished"):
        campaign.ship()
    assert (tmp_path / "classify" / "lstm-1x32.safetensors").read_bytes() == b"third campaign"


def test_ship_takes_the_baselines_seed_best_on_validation_of_the_declared_recipe(tmp_path,
                                                                                monkeypatch):
    monkeypatch.setenv("SEQMNIST_WEIGHTS", str(tmp_path))
    recipe = campaign.find_config("classify-mlp").to_dict()

    def seed_run(folder, validation, epochs_trained=recipe["epochs"], **changes):
        run = tmp_path / "sweeps" / "baselines" / folder / "baselines"
        run.mkdir(parents=True)
        config = {**recipe, "seed": int(folder[4:]), **changes}
        (run / "mlp.json").write_text(json.dumps(
            {"task": "classify", "architecture": "mlp", "epochs_trained": epochs_trained,
             "config": config,
             "validation": dict(zip(("accuracy", "loss"), validation))}))
        (run / "mlp.safetensors").write_bytes(folder.encode())

    seed_run("seed0", (0.990, 0.03))
    seed_run("seed1", (0.994, 0.02))
    seed_run("seed2", (0.994, 0.01))                     # tie on accuracy: the lower loss wins
    seed_run("seed3", (0.999, 0.01), lr=0.03)            # another recipe
    seed_run("seed4", (0.999, 0.01), epochs_trained=3)   # unfinished
    assert campaign.ship() == ["classify-mlp"]
    assert (tmp_path / "baselines" / "mlp.safetensors").read_bytes() == b"seed2"
    assert json.loads((tmp_path / "baselines" / "mlp.json").read_text())["config"]["seed"] == 2
    assert campaign.ship() == [] and campaign.best_baseline_seed("cnn") is None


def test_gpu_campaign_script_trains_and_packs_the_weights(mini_campaign):
    """scripts/campaign_gpu.sh, run on the CPU: the campaign finishes and its snapshot holds the
    final weights and the status. Snapshots every second start before the runner has created the
    weights folder and go on while workers save and remove checkpoints: none may stop the
    snapshots or leave a partial archive behind."""
    import tarfile

    from seqmnist.paths import ROOT

    env = {**os.environ, "DEVICE": "cpu", "WORKERS": "2", "PYTHON": sys.executable,
           "SNAPSHOT_SECONDS": "1"}
    done = subprocess.run(["bash", str(ROOT / "scripts" / "campaign_gpu.sh"), "2",
                           str(mini_campaign / "out")], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    with tarfile.open(mini_campaign / "out" / "weights.tgz") as archive:
        names = set(archive.getnames())
    assert {"weights/classify/lstm-1x4.safetensors", "weights/predict/gru-1x4.json",
            "weights/campaign_status.md"} <= names
    assert not any("checkpoints/" in name for name in names if name.endswith(".pt"))
    assert not list((mini_campaign / "out").glob(".weights.*")), done.stderr


def test_gpu_campaign_script_trains_campaign_folders_side_by_side(tmp_path):
    """Given campaign folders (each with its runs.json), the script trains them together and packs
    each into its own archive; a folder without runs.json is refused before anything starts."""
    import tarfile

    from seqmnist.paths import ROOT

    for number in (4, 5):
        folder = tmp_path / f"campaign{number}"
        folder.mkdir()
        run = dict(task="classify", arch="lstm-1x4", seed=number, **{**TINY, "epochs": 1})
        (folder / "runs.json").write_text(json.dumps([run]))
    script = ["bash", str(ROOT / "scripts" / "campaign_gpu.sh"), "2", str(tmp_path / "out")]
    env = {**os.environ, "DEVICE": "cpu", "WORKERS": "1", "PYTHON": sys.executable,
           "OMP_NUM_THREADS": "1"}
    refused = subprocess.run(script + [str(tmp_path)], env=env, capture_output=True, text=True)
    assert refused.returncode == 2 and "no runs.json" in refused.stderr
    done = subprocess.run(script + [str(tmp_path / "campaign4"), str(tmp_path / "campaign5")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    weights = {}
    for number in (4, 5):
        with tarfile.open(tmp_path / "out" / f"campaign{number}.tgz") as archive:
            names = set(archive.getnames())
            assert f"campaign{number}/campaign_status.md" in names
            weights[number] = archive.extractfile(f"campaign{number}/classify/lstm-1x4.safetensors").read()
    assert weights[4] != weights[5]  # each folder trained its own run (seed 4 and seed 5)


def test_gpu_campaign_script_stopped_by_a_signal_packs_the_checkpoints(tmp_path):
    """TERM to the script's whole process group (as a timeout sends it): every run stops at a
    batch boundary with a checkpoint, and the last snapshot holds it."""
    import tarfile

    from seqmnist.paths import ROOT

    folder = tmp_path / "campaign7"
    folder.mkdir()
    (folder / "runs.json").write_text(json.dumps([dict(task="classify", arch="lstm-1x4", **{
        **TINY, "epochs": 50, "train_size": 128})]))
    env = {**os.environ, "DEVICE": "cpu", "WORKERS": "1", "PYTHON": sys.executable,
           "OMP_NUM_THREADS": "1"}
    script = subprocess.Popen(["bash", str(ROOT / "scripts" / "campaign_gpu.sh"), "10",
                               str(tmp_path / "out"), str(folder)], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    first_epoch = folder / "classify" / "lstm-1x4.json"
    started = time.time()
    while not first_epoch.exists() and script.poll() is None and time.time() - started < 300:
        time.sleep(0.1)
    assert first_epoch.exists(), "the first epoch did not end in 5 minutes"
    os.killpg(script.pid, signal.SIGTERM)
    output, _ = script.communicate(timeout=120)
    assert script.returncode == 0 and "[campaign] stopped" in output, output
    with tarfile.open(tmp_path / "out" / "campaign7.tgz") as archive:
        checkpoint = archive.extractfile("campaign7/checkpoints/classify-lstm-1x4/checkpoint.pt").read()
        status = archive.extractfile("campaign7/campaign_status.md").read().decode()
    state = torch.load(io.BytesIO(checkpoint), weights_only=True)["state"]
    assert 1 <= state["epoch"] < 50 and "/50" in status


def test_the_baselines_script_trains_the_declared_recipe():
    """scripts/train_baselines.sh spells out campaign.BASELINE_RECIPE as train options: the two
    must not drift apart."""
    import re

    from seqmnist.campaign import BASELINE_RECIPE, find_config
    from seqmnist.paths import ROOT

    script = (ROOT / "scripts" / "train_baselines.sh").read_text()
    options = dict(re.findall(r"--([a-z-]+) (\S+)", script))
    for name in ("cnn", "mlp"):
        declared = find_config(f"classify-{name}").to_dict()
        for field in BASELINE_RECIPE:
            value = options[field.replace("_", "-")]
            assert type(declared[field])(value) == declared[field], field


def test_the_sweeps_script_states_every_recorded_sweep_and_sweeps_every_model_at_its_recipe():
    """scripts/sweeps.sh names every model once; where a sweep is recorded, its line is the
    record's recipe, budget and (a superset of) its rates; elsewhere the line sweeps the shipped
    recipe, on a grid that spans the shipped rate."""
    import re

    from seqmnist.paths import ROOT
    from seqmnist.sweep import load_sweep
    from seqmnist.train import TrainConfig

    script = (ROOT / "scripts" / "sweeps.sh").read_text()
    table = re.search(r'^sweeps="\n(.*?)^"', script, re.S | re.M).group(1)
    lines = {}
    for line in table.splitlines():
        name, epochs, recipe_options, rates = (part.strip() for part in line.split("|"))
        assert name not in lines, name
        lines[name] = (int(epochs), dict(re.findall(r"--([a-z-]+) (\S+)", recipe_options)),
                       [float(rate) for rate in rates.split()])
    names = [f"{task}-{arch}" for task, archs in campaign.RECURRENT_MODELS for arch in archs]
    assert sorted(lines) == sorted(names + [f"classify-{a}" for a in campaign.BASELINES])
    for name, (epochs, options, rates) in lines.items():
        task, arch = name.split("-", 1)
        fields = {key.replace("-", "_"): value for key, value in options.items()}
        config = TrainConfig(task=task, arch=arch, epochs=epochs, **{
            key: type(getattr(TrainConfig(task=task, arch=arch), key))(value)
            for key, value in fields.items()})
        assert rates == sorted(rates) and len(rates) >= 5, name
        record = load_sweep(task, arch)
        if record is not None:
            recorded = TrainConfig(**record["candidates"][0]["config"]).to_dict()
            assert {**recorded, "lr": None} == {**config.to_dict(), "lr": None}, name
            assert {c["lr"] for c in record["candidates"]} <= set(rates), name
        elif arch not in campaign.BASELINES:
            shipped = TrainConfig(task=task, arch=arch, **campaign.recipe(task, arch))
            for key in ("shift", "dropout", "select", "weight_decay", "ema"):
                assert getattr(config, key) == getattr(shipped, key), (name, key)
            assert rates[0] <= shipped.lr <= rates[-1], name


def test_campaigns_8_and_9_give_each_shipped_recipe_seeds_1_and_2_where_it_lacks_them():
    for number, seed in campaign.SHIPPED_SEEDS.items():
        plan = {f"{run['task']}-{run['arch']}": run for run in campaign.campaign_plan(number)}
        for task, archs in campaign.RECURRENT_MODELS:
            for arch in archs:
                name = f"{task}-{arch}"
                if campaign.seeded_already(task, arch):   # campaigns 4 and 5 trained its seeds
                    assert name not in plan
                else:
                    assert plan[name] == {"task": task, "arch": arch,
                                          **campaign.recipe(task, arch), "seed": seed}
        assert "classify-gru-3x32" not in plan and "classify-gru-1x128" in plan  # ships campaign 6
    for name, repeated in campaign.SEEDED_FROM.items():   # a seed run ships: it repeats a recipe
        task, arch = name.split("-", 1)
        seed = campaign.SHIPPED_SEEDS[campaign.SHIPPED_CAMPAIGN[name]]
        assert campaign.recipe(task, arch) == {**campaign.recipe(task, arch, repeated), "seed": seed}
