"""Campaign runs as Dask tasks: a miniature campaign on a LocalCluster trains exactly what a plain
``train`` trains, a killed worker's run resumes, failures are retried and divergence is not, and
the SLURM path writes the job scripts asked for."""

import json
import os
import re
import stat
import sys
import threading
import time

import psutil
import pytest
import torch

from seqmnist import campaign, cluster
from seqmnist.errors import ConfigError
from seqmnist.train import LOCK_NAME, TrainConfig, _run_dir_lock, train

TINY = dict(epochs=2, batch_size=16, train_size=64, val_size=32, warmup_steps=1)


def write_campaign(folder, runs) -> None:
    (folder / "campaign.json").write_text(json.dumps(runs))


@pytest.fixture
def mini_campaign(tmp_path, monkeypatch, mnist):
    write_campaign(tmp_path, [dict(task="classify", arch="lstm-1x4", **TINY),
                              dict(task="predict", arch="gru-1x4", **TINY)])
    monkeypatch.setenv("SEQMNIST_CAMPAIGN_FILE", str(tmp_path / "campaign.json"))
    monkeypatch.setenv("SEQMNIST_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return tmp_path


def plain_train(config: TrainConfig, folder, mnist):
    """The same run trained by a plain ``train`` call; returns its weights file."""
    weights = folder / f"{config.name}.safetensors"
    train(config, folder / config.name, weights, progress=False, mnist=mnist)
    return weights


def test_a_miniature_campaign_on_a_local_cluster_trains_what_plain_train_trains(
        mini_campaign, monkeypatch, mnist, capsys):
    """Two runs, one task each, on two single-run workers of a two-core machine: each run gets
    one core (the cores shared out, not the inherited thread count), as the plain run here."""
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    logs = mini_campaign / "logs"
    cluster.run_campaign(budget_minutes=5, workers=2, log_dir=logs, chunk_epochs=2, retries=0)
    output = capsys.readouterr().out
    weights = mini_campaign / "weights"
    for config in campaign.campaign_configs():
        task, arch = config.task, config.arch
        assert f"queue {config.name} epoch 1 -> 2" in output, output
        shipped = weights / task / f"{arch}.safetensors"
        assert shipped.read_bytes() == plain_train(config, mini_campaign / "plain", mnist).read_bytes()
        assert json.loads(shipped.with_suffix(".json").read_text())["epochs_trained"] == 2
        assert not (weights / "checkpoints" / config.name).exists()   # finished: removed
        log = (logs / f"{config.name}.log").read_text()
        assert log.count(f"{config.name}: 1 CPU thread(s)") == 1
    assert (weights / "campaign_status.md").read_text().count("| 2/2 |") == 2
    assert "budget spent or nothing left" in output


def test_a_killed_workers_run_resumes_from_its_checkpoint(mini_campaign, mnist):
    """SIGKILL the Dask worker once the run has checkpointed its first epoch: its training process
    checkpoints and ends (it dies with its worker), the engine reruns the task on a new worker,
    and the run finishes with the weights of an uninterrupted one."""
    config = dict(task="classify", arch="lstm-1x4", **{**TINY, "epochs": 3, "train_size": 128})
    write_campaign(mini_campaign, [config])
    folder = mini_campaign / "weights" / "checkpoints" / "classify-lstm-1x4"
    killed = []

    def kill_the_worker():
        end = time.time() + 120
        while time.time() < end:
            try:
                epoch = torch.load(folder / "checkpoint.pt", weights_only=True)["state"]["epoch"]
                trainer = int((folder / LOCK_NAME).read_text())
            except Exception:  # not yet written, or being replaced
                time.sleep(0.05)
                continue
            if epoch >= 1:
                worker = psutil.Process(trainer).parent()
                killed.append((epoch, worker.pid))
                worker.kill()
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_the_worker)
    killer.start()
    cluster.run_campaign(budget_minutes=5, workers=1, chunk_epochs=3, threads=1,
                         log_dir=mini_campaign / "logs")
    killer.join()
    assert killed and killed[0][0] < 3, "the worker was not killed mid-run"
    log = (mini_campaign / "logs" / "classify-lstm-1x4.log").read_text()
    assert log.count("CPU thread(s)") == 2 and "stopped by signal 15" in log, log
    shipped = mini_campaign / "weights" / "classify" / "lstm-1x4.safetensors"
    plain = plain_train(TrainConfig(**config), mini_campaign / "plain", mnist)
    assert shipped.read_bytes() == plain.read_bytes()
    assert json.loads(shipped.with_suffix(".json").read_text())["epochs_trained"] == 3


def test_a_failed_run_is_retried_and_reported_and_a_diverged_one_is_not(mini_campaign, capsys):
    """On a scheduler already running (``--scheduler ADDRESS``): a run that fails (a batch larger
    than its training set) is retried, then named with its log's last line; a run whose loss turns
    NaN is reported as diverged after one try."""
    from distributed import LocalCluster

    write_campaign(mini_campaign, [
        dict(task="predict", arch="gru-1x4", **{**TINY, "batch_size": 1000}),
        dict(task="classify", arch="lstm-1x4", **{**TINY, "epochs": 1, "train_size": 128,
             "optimizer": "sgd", "lr": 9.9, "weight_decay": 1000.0, "clip": 0.0,
             "schedule": "constant", "warmup_steps": 0})])
    logs = mini_campaign / "logs"
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as running:
        cluster.run_campaign(budget_minutes=5, chunk_epochs=2, log_dir=logs, retries=1,
                             scheduler=running.scheduler_address)
    output = capsys.readouterr().out
    assert "predict-gru-1x4 failed: predict-gru-1x4 exited with code 2" in output, output
    assert "exceeds the 64 training images" in output
    assert (logs / "predict-gru-1x4.log").read_text().count("exceeds the 64 training images") == 2
    assert "classify-lstm-1x4 diverged (not retried): error: classify-lstm-1x4: training diverged" in output
    assert (logs / "classify-lstm-1x4.log").read_text().count("CPU thread(s)") == 1
    assert not (mini_campaign / "weights" / "classify" / "lstm-1x4.safetensors").exists()


def test_a_run_folder_in_use_is_reported_as_locked(mini_campaign):
    """Two tasks of one run never train at once: the run folder's lock (train.py) is held by
    another process (here the test), so the task reports it after waiting, and trains nothing."""
    from distributed import Client

    folder = mini_campaign / "weights" / "checkpoints" / "classify-lstm-1x4"
    with _run_dir_lock(folder), Client(processes=False, n_workers=1, threads_per_worker=1,
                                       dashboard_address=":0") as client:
        assert cluster.run_folder_in_use(folder)
        command = ["campaign", "worker", "classify-lstm-1x4", "--until-epoch", "1"]
        outcome = client.submit(cluster.train_task, "classify-lstm-1x4", command, 1,
                                str(mini_campaign / "run.log"), str(folder), {}, "no-stop",
                                lock_wait=1).result()
    assert outcome["status"] == "locked" and "in use" in outcome["error"]
    assert not cluster.run_folder_in_use(folder)
    assert not (mini_campaign / "run.log").exists()


def test_the_runs_with_the_fewest_epochs_go_first_then_the_declared_order():
    queued = [(epochs, position) for epochs in (0, 1, 5) for position in range(3)]
    ranked = sorted(queued, key=lambda run: cluster.task_priority(*run, runs=3), reverse=True)
    assert ranked == sorted(queued)


def test_threads_are_shared_out_and_bad_options_are_refused(mini_campaign):
    assert cluster.threads_per_run(2, cpus=2) == 1
    assert cluster.threads_per_run(1, cpus=2) == 2   # a lone run gets both cores
    assert cluster.threads_per_run(16, cpus=2) == 1
    with pytest.raises(ConfigError, match="unknown campaign run"):
        campaign.find_config("classify-lstm-9x9")
    with pytest.raises(ConfigError, match="unknown campaign runs"):
        cluster.run_campaign(budget_minutes=1, only=["nope"])
    with pytest.raises(ConfigError, match="budget-minutes"):
        cluster.run_campaign(budget_minutes=0)
    for bad in (dict(threads=0), dict(gpu_slots=-1), dict(workers=0)):
        with pytest.raises(ConfigError, match="workers and threads"):
            cluster.run_campaign(1, **bad)
    with pytest.raises(ConfigError, match="exclude each other"):
        cluster.run_campaign(1, scheduler="tcp://127.0.0.1:1", slurm=cluster.SlurmJobs())
    with pytest.raises(ConfigError, match="memory-per-job"):
        cluster.run_campaign(1, slurm=cluster.SlurmJobs(memory="lots"))
    with pytest.raises(ConfigError, match="walltime"):
        cluster.run_campaign(1, slurm=cluster.SlurmJobs(walltime="90 minutes"))
    assert cluster.walltime_for(150) == "02:45:00"


def test_each_gpu_of_a_slurm_job_gets_its_own_worker():
    assert cluster.worker_gpu("SLURMCluster-3", 1, "5") is None
    assert cluster.worker_gpu("SLURMCluster-3-0", 2, "5,7") == "5"
    assert cluster.worker_gpu("SLURMCluster-3-1", 2, "5,7") == "7"
    assert cluster.worker_gpu("SLURMCluster-3-1", 2, None) == "1"


def test_slurm_jobs_ask_for_the_options_and_start_campaign_workers(tmp_path, monkeypatch):
    """No SLURM here: a stand-in sbatch keeps each job script it is given, so the test reads what
    dask-jobqueue would submit for ``campaign run --slurm``."""
    monkeypatch.setenv("SEQMNIST_BUILD", str(tmp_path / "build"))
    scripts = tmp_path / "submitted"
    scripts.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for command, body in (("sbatch", f'cp "$1" {scripts}/job$$.sh; echo "Submitted batch job $$"'),
                          ("scancel", "exit 0")):
        (bin_dir / command).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / command).chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    jobs = cluster.SlurmJobs(jobs=3, queue="gpu", account="mnist-lab", gpus=2, cpus=16,
                             memory="64GiB", walltime="01:30:00")
    slurm = cluster.slurm_cluster(jobs, gpu_slots=8)
    with slurm:
        script = slurm.job_script()
        slurm.scale(jobs=jobs.jobs)
        end = time.time() + 30
        while len(list(scripts.iterdir())) < jobs.jobs and time.time() < end:
            time.sleep(0.1)
        submitted = sorted(scripts.iterdir())
        address = slurm.scheduler_address
    # one script per job, each naming its worker
    names = [re.search(r"--name (\S+)", path.read_text()).group(1) for path in submitted]
    assert sorted(names) == [f"SLURMCluster-{job}" for job in range(3)]
    assert all(path.read_text().replace(name, "dummy-name") == script
               for path, name in zip(submitted, names))
    directives = [line for line in script.splitlines() if line.startswith("#SBATCH")]
    for wanted in ("-p gpu", "-A mnist-lab", "--cpus-per-task=16", "--mem=64G", "-t 01:30:00",
                   "--gres=gpu:2"):
        assert f"#SBATCH {wanted}" in directives, script
    command = script.strip().splitlines()[-1]
    assert command.startswith(f"{sys.executable} -m distributed.cli.dask_worker {address} ")
    # one worker per GPU, each training 8 runs at once, each run one of 8 GPU slots
    for wanted in ("--nthreads 8", "--nworkers 2", "--resources gpu_slot=8", "--memory-limit 32.00GiB"):
        assert wanted in command, command
    assert f"cd {cluster.ROOT}" in script
    assert f"export PYTHONPATH={cluster.LIB}" in script
    cpu_jobs = cluster.slurm_cluster(cluster.SlurmJobs(gpus=0, cpus=4), budget_minutes=60)
    with cpu_jobs:
        script = cpu_jobs.job_script()
    assert "gres" not in script and "gpu_slot" not in script and "#SBATCH -t 01:15:00" in script
    assert "--nthreads 4" in script   # one single-thread run per core
