"""Training runs as tasks of Dask distributed, the engine that schedules them: the campaign's runs
(``campaign run``) and a sweep's rates (``sweep``, sweep.py), on a LocalCluster on this machine by
default, a running scheduler (``--scheduler ADDRESS``), or SLURM jobs that dask-jobqueue submits
(``--slurm``).

A task (``train_task``) trains one chunk of one run in a subprocess of the Dask worker (``campaign
worker``, or ``sweep --candidate-dir`` for one rate) and returns a small status; the results come
back through files, the checkpoints and weights in the (shared) weights folder. A failed task runs
again as far as ``retries`` allows, and a task whose worker died is rescheduled by the engine:
either way the run resumes from its checkpoint. The run folder's lock (train.py) keeps two tasks of
one run from training at once. Tasks ask for one ``gpu_slot``: a GPU worker with {"gpu_slot": 16}
trains 16 runs side by side (under CUDA MPS).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import logging
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from .campaign import campaign_configs, progress_of, run_dir, write_status
from .errors import ConfigError, SeqMnistError
from .paths import ROOT, build_dir, data_dir, weights_dir
from .runtime import fast_cpu_env
from .train import LOCK_NAME

EXIT_DIVERGED = 3   # a task process's exit status for a run whose loss turned NaN or infinite
STOPPED = (128 + signal.SIGINT, 128 + signal.SIGTERM)   # stopped after its checkpoint: resumable
LOCK_WAIT_SECONDS = 60   # how long a task waits for a run folder that another process is leaving
LIB = Path(__file__).resolve().parents[1]   # the folder that holds the seqmnist package


class RunFailed(SeqMnistError):
    """A run's training process failed (not by divergence): Dask retries the task."""


class Stopped(KeyboardInterrupt):
    """SIGTERM stopped the command that holds the engine; ``exit_code`` as a shell reports it."""

    exit_code = 128 + signal.SIGTERM


@dataclass
class SlurmJobs:
    """What each SLURM job asks for (``--slurm``). A job runs one Dask worker per GPU (one in all
    without GPUs); ``walltime`` defaults to the budget and 15 minutes."""

    jobs: int = 1
    queue: str | None = None
    account: str | None = None
    gpus: int = 1
    cpus: int = 8
    memory: str = "32GB"
    walltime: str | None = None

    def check(self) -> None:
        from dask.utils import parse_bytes

        if self.jobs < 1 or self.gpus < 0 or self.cpus < 1:
            raise ConfigError("slurm: jobs and cpus-per-job must be >= 1, gpus-per-job >= 0")
        try:
            parse_bytes(self.memory)
        except ValueError:
            raise ConfigError(f"slurm: memory-per-job {self.memory!r} is not a size such as 32GB") from None
        if self.walltime and not re.fullmatch(r"(\d+-)?\d+:\d\d(:\d\d)?", self.walltime):
            raise ConfigError(f"slurm: walltime {self.walltime!r} is not [D-]HH:MM[:SS]")

    def runs_per_worker(self, gpu_slots: int, threads: int | None) -> int:
        """Runs a worker trains at once: its GPU's slots, or on CPU jobs the cores over threads."""
        return max(1, gpu_slots) if self.gpus else max(1, self.cpus // (threads or 1))

    def threads_per_run(self, gpu_slots: int) -> int:
        return threads_per_run(max(1, self.gpus) * self.runs_per_worker(gpu_slots, None), self.cpus)


def check_engine(workers: int, threads: int | None, gpu_slots: int, retries: int,
                 scheduler: str | None, slurm: SlurmJobs | None) -> None:
    """Refuse bad engine options before any run is queued (``campaign run`` and ``sweep``)."""
    if workers < 1 or gpu_slots < 0 or retries < 0 or (threads is not None and threads < 1):
        raise ConfigError("workers and threads must be >= 1, gpu-slots and retries >= 0")
    if scheduler and slurm:
        raise ConfigError("--scheduler and --slurm exclude each other: one engine at a time")
    if slurm:
        slurm.check()


def threads_per_run(runs: int, cpus: int | None = None) -> int:
    """CPU threads for each of ``runs`` runs trained at once: the cores shared out, at least one.
    (Two single-thread runs out-train one two-thread run on two cores, but a lone run, such as the
    last unfinished one, would leave a core idle.)"""
    return max(1, (cpus or os.cpu_count() or 1) // runs)


def walltime_for(budget_minutes: float) -> str:
    """The budget and 15 minutes (to start and to checkpoint at the deadline), as HH:MM:00."""
    minutes = int(budget_minutes + 15.999)
    return f"{minutes // 60:02d}:{minutes % 60:02d}:00"


def slurm_cluster(jobs: SlurmJobs, gpu_slots: int = 0, threads: int | None = None,
                  budget_minutes: float = 150.0):
    """A dask-jobqueue SLURMCluster whose jobs train runs (not yet scaled: ``scale(jobs=)``
    submits them). Each job starts in this repository with this interpreter; the weights folder
    must be on a file system the nodes share. Anything else SLURM needs (an interface, a module
    load) goes in dask's jobqueue.slurm configuration."""
    from dask_jobqueue import SLURMCluster

    jobs.check()
    workers = max(1, jobs.gpus)   # one per GPU: train_task gives each its own (worker_gpu)
    runs = jobs.runs_per_worker(gpu_slots, threads)
    return SLURMCluster(
        queue=jobs.queue, account=jobs.account, cores=workers * runs, processes=workers,
        memory=jobs.memory, job_cpu=jobs.cpus, walltime=jobs.walltime or walltime_for(budget_minutes),
        job_extra_directives=[f"--gres=gpu:{jobs.gpus}"] if jobs.gpus else [],
        worker_extra_args=["--resources", f"gpu_slot={runs}"] if jobs.gpus else [],
        job_script_prologue=[f"cd {shlex.quote(str(ROOT))}",
                             f"export PYTHONPATH={shlex.quote(str(LIB))}${{PYTHONPATH:+:$PYTHONPATH}}"],
        python=sys.executable, log_directory=str(build_dir() / "slurm-logs"),
        scheduler_options={"dashboard_address": ":0"})   # a free port, as engine's LocalCluster


def worker_gpu(worker_name, gpus: int, visible: str | None) -> str | None:
    """CUDA_VISIBLE_DEVICES for one of a SLURM job's ``gpus`` workers (dask-jobqueue names them
    <job>-<i>): the job's i-th GPU. None: one GPU per worker, nothing to choose."""
    if gpus <= 1:
        return None
    index = int(str(worker_name).rsplit("-", 1)[1])
    devices = visible.split(",") if visible else [str(number) for number in range(gpus)]
    return devices[index % len(devices)]


def run_folder_in_use(folder: Path) -> bool:
    """Whether a process holds the run folder's training lock (train._run_dir_lock) now."""
    path = Path(folder) / LOCK_NAME
    if not path.exists():
        return False
    with open(path) as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return False


_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def _end_with_parent() -> None:
    """preexec_fn: SIGTERM the training process if its Dask worker dies (PR_SET_PDEATHSIG), so that
    it checkpoints and frees the run folder for the rescheduled task instead of training on."""
    if _prctl is not None:
        _prctl(1, signal.SIGTERM)


def last_line(path: Path) -> str:
    text = Path(path).read_text(errors="replace").strip() if Path(path).exists() else ""
    return text.splitlines()[-1] if text else ""


def train_task(name: str, command: list[str], threads: int | None, log_path: str, folder: str,
               env: dict, stop_name: str, gpus_per_job: int = 1,
               lock_wait: float = LOCK_WAIT_SECONDS) -> dict:
    """One chunk of one run, as a Dask task: ``python -m seqmnist COMMAND`` (``campaign worker``,
    or ``sweep --candidate-dir``), which trains in the run folder ``folder``. Returns {"name",
    "status", "error"}: status "trained" (to the chunk's end or the deadline), "stopped" (by the
    stop event ``stop_name`` or a signal, after a checkpoint), "diverged" (not retried) or "locked"
    (another process trains in the run folder). Raises RunFailed on any other exit, which Dask
    retries.

    The run trains in a subprocess, not in this worker: the fast allocator and the thread count
    (runtime.fast_cpu_env) take effect only from a process's start; train's checkpoint on SIGTERM
    needs a main thread (Dask runs tasks in threads); the process's exit frees its CUDA memory; and
    a crash ends the run, not the worker and the runs beside it.
    """
    from distributed import Event, get_worker

    stop = Event(stop_name)
    waited = 0
    # a killed worker's training process may be checkpointing still; anything else is reported
    while run_folder_in_use(Path(folder)):
        if stop.is_set() or waited >= lock_wait:
            return {"name": name, "status": "locked", "error": f"{folder}: run folder in use"}
        time.sleep(1)
        waited += 1
    if stop.is_set():
        return {"name": name, "status": "stopped", "error": ""}
    worker = get_worker()
    threads = threads or threads_per_run(worker.state.nthreads, len(os.sched_getaffinity(0)))
    child_env = fast_cpu_env(threads, base={**os.environ, **env})
    child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(LIB), child_env.get("PYTHONPATH")]))
    gpu = worker_gpu(worker.name, gpus_per_job, child_env.get("CUDA_VISIBLE_DEVICES"))
    if gpu is not None:
        child_env["CUDA_VISIBLE_DEVICES"] = gpu
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as log:
        process = subprocess.Popen([sys.executable, "-m", "seqmnist", *command], env=child_env,
                                   stdout=log, stderr=subprocess.STDOUT, preexec_fn=_end_with_parent)
    code, terminated = None, False
    while code is None:   # the task ends as soon as its process does
        try:
            code = process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            # the command stops: a checkpoint at the next batch. One SIGTERM only: a second one,
            # arriving once train has restored the default handler, kills the process mid-exit
            if stop.is_set() and not terminated:
                process.terminate()
                terminated = True
    if terminated and code == -signal.SIGTERM:
        # ended by our SIGTERM before train set its handler (still importing, or between
        # chunks): nothing since its last checkpoint to save, and every write is atomic
        code = 128 + signal.SIGTERM
    if code in (0, *STOPPED, EXIT_DIVERGED):
        status = {0: "trained", EXIT_DIVERGED: "diverged"}.get(code, "stopped")
        return {"name": name, "status": status, "error": last_line(log_path) if code else ""}
    raise RunFailed(f"{name} exited with code {code} ({log_path}): {last_line(log_path)}")


def task_env() -> dict:
    """The folders a task's process needs, by absolute path: it may run on another machine."""
    env = {"SEQMNIST_WEIGHTS": str(weights_dir().resolve()), "SEQMNIST_DATA": str(data_dir().resolve())}
    if os.environ.get("SEQMNIST_CAMPAIGN_FILE"):
        env["SEQMNIST_CAMPAIGN_FILE"] = str(Path(os.environ["SEQMNIST_CAMPAIGN_FILE"]).resolve())
    return env


def submit_run(client, name: str, command: list[str], folder: Path, log_path: Path,
               threads: int | None, stop, retries: int, gpu_slots: int, slurm: SlurmJobs | None,
               priority: int = 0):
    """Queue ``python -m seqmnist COMMAND``, which trains in the run folder ``folder``, as a
    ``train_task``; returns its future. ``stop`` is the event that stops it (``stop_event``)."""
    resources = {"gpu_slot": 1} if gpu_slots or (slurm and slurm.gpus) else None
    return client.submit(
        train_task, name, command, threads, str(log_path), str(Path(folder).resolve()), task_env(),
        stop.name, slurm.gpus if slurm else 1, key=f"{name}-{uuid.uuid4().hex[:8]}", pure=False,
        priority=priority, retries=retries, resources=resources)


@contextlib.contextmanager
def engine(workers: int, gpu_slots: int, threads: int | None, scheduler: str | None,
           slurm: SlurmJobs | None, budget_minutes: float = 150.0):
    """A Dask client on the cluster asked for, and the CPU threads each run gets (None: each
    task shares out its worker's cores)."""
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout="30s")
        except (OSError, TimeoutError) as error:
            raise ConfigError(f"cannot reach the Dask scheduler at {scheduler} ({error})") from None
        with client:
            yield client, threads
        return
    if slurm:
        cluster = slurm_cluster(slurm, gpu_slots, threads, budget_minutes)
        cluster.scale(jobs=slurm.jobs)
        threads = threads or slurm.threads_per_run(gpu_slots)
    else:
        # ":0": the scheduler's HTTP server on a free port (None still takes 8787, and a second
        # campaign or sweep on the machine warned that the port was in use)
        cluster = LocalCluster(n_workers=workers, threads_per_worker=max(1, gpu_slots),
                               processes=True, dashboard_address=":0", silence_logs=logging.ERROR,
                               resources={"gpu_slot": gpu_slots} if gpu_slots else None)
        threads = threads or threads_per_run(workers * max(1, gpu_slots))
    with cluster, Client(cluster) as client:
        yield client, threads


def _stop_on_first_term(signum, frame):
    """SIGTERM handler: stop like Ctrl-C, once. A second TERM (one to the process group and one
    forwarded by scripts/campaign_gpu.sh) must not cut the stop short."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Stopped


@contextlib.contextmanager
def stop_event(client):
    """The Dask event that stops this command's tasks (``stop_tasks``), while SIGTERM stops the
    command as Ctrl-C does (a KeyboardInterrupt)."""
    from distributed import Event

    previous = signal.signal(signal.SIGTERM, _stop_on_first_term)
    try:
        yield Event(f"seqmnist-stop-{uuid.uuid4().hex}", client=client)
    finally:
        signal.signal(signal.SIGTERM, previous)


def stop_tasks(stop, futures, folders) -> None:
    """Stop the tasks of ``futures``: each training process checkpoints at its next batch and
    ends. Returns once the run ``folders`` are free (at most a few minutes), so that the status
    and any snapshot taken next hold their last checkpoints."""
    from distributed import wait

    stop.set()
    with contextlib.suppress(TimeoutError):
        wait(list(futures), timeout=120)   # tasks not yet started return at once
    wait_until_free(folders)


def run_campaign(budget_minutes: float, workers: int = 2, only: list[str] | None = None,
                 chunk_epochs: int = 1, device: str = "auto", log_dir: Path | None = None,
                 threads: int | None = None, gpu_slots: int = 0, scheduler: str | None = None,
                 slurm: SlurmJobs | None = None, retries: int = 2) -> None:
    """Train unfinished runs as Dask tasks of ``chunk_epochs`` epochs each, fewest completed epochs
    first (the task priority), until ``budget_minutes`` are spent; then write the status table.

    On this machine ``workers`` processes train one run each, or ``gpu_slots`` runs each on a GPU;
    ``threads`` CPU threads per run (default: the cores shared out). ``scheduler`` (an address) or
    ``slurm`` replace the local cluster."""
    if budget_minutes <= 0 or chunk_epochs < 1:
        raise ConfigError("budget-minutes must be > 0 and chunk-epochs >= 1")
    check_engine(workers, threads, gpu_slots, retries, scheduler, slurm)
    configs = [c for c in campaign_configs() if not only or c.name in only]
    unknown = set(only or ()) - {c.name for c in configs}
    if unknown:
        raise ConfigError(f"unknown campaign runs: {', '.join(sorted(unknown))}")
    deadline = time.time() + budget_minutes * 60
    todo = [config for config in configs if not progress_of(config).finished]
    stopped = False
    if todo:   # else no cluster starts and no job is submitted
        with engine(workers, gpu_slots, threads, scheduler, slurm, budget_minutes) as (client, threads):
            stopped = train_runs(client, todo, deadline, chunk_epochs, device, threads, log_dir,
                                 retries, gpu_slots, slurm)
    path = write_status()
    why = "stopped" if stopped else "budget spent or nothing left"
    print(f"[campaign] {why}; status in {path}", flush=True)


def train_runs(client, configs, deadline: float, chunk_epochs: int, device: str,
               threads: int | None, log_dir: Path | None, retries: int, gpu_slots: int,
               slurm: SlurmJobs | None) -> bool:
    """``run_campaign``'s loop on ``client``: queue a chunk of each run, and the next chunk of a run
    as its last one ends, while the budget lasts. True if SIGTERM or Ctrl-C stopped it."""
    from distributed import as_completed

    # one log folder per weights folder: every campaign names its runs alike
    log_dir = Path(log_dir or build_dir() / "campaign-logs" / weights_dir().name).resolve()
    log_dir.mkdir(parents=True, exist_ok=True)
    order = {config.name: index for index, config in enumerate(configs)}
    running = {}   # future -> its run's config

    def submit(config):
        done = progress_of(config).epochs_done
        until = min(config.epochs, done + chunk_epochs)
        print(f"[campaign] {time.strftime('%H:%M:%S')} queue {config.name} epoch {done + 1} -> "
              f"{until}", flush=True)
        command = ["campaign", "worker", config.name, "--until-epoch", str(until),
                   "--deadline", f"{deadline:.0f}", "--device", device, "--quiet"]
        future = submit_run(client, config.name, command, run_dir(config),
                            log_dir / f"{config.name}.log", threads, stop, retries, gpu_slots,
                            slurm, priority=task_priority(done, order[config.name], len(configs)))
        running[future] = config
        return future

    with stop_event(client) as stop:
        futures = as_completed([submit(config) for config in configs])
        try:
            for future in futures:
                config = running.pop(future)
                if (report(config, future) and deadline - time.time() >= 60
                        and not progress_of(config).finished):
                    futures.add(submit(config))
        except KeyboardInterrupt:
            print(f"[campaign] stopping: {len(running)} task(s) end, each run checkpoints at its "
                  "next batch", flush=True)
            stop_tasks(stop, running, [run_dir(config) for config in running.values()])
            return True
    return False


def task_priority(epochs_done: int, position: int, runs: int) -> int:
    """Dask runs higher priorities first: the runs with the fewest completed epochs, then in the
    campaign's declared order (``position`` among ``runs``)."""
    return -(epochs_done * runs + position)


def report(config, future) -> bool:
    """Print how a task ended; True if its run may go on (trained or stopped)."""
    stamp = time.strftime("%H:%M:%S")
    try:
        outcome = future.result()
    except Exception as error:  # RunFailed after its retries, or KilledWorker
        print(f"[campaign] {stamp} {config.name} failed: {error}", flush=True)
        return False
    status = outcome["status"]
    if status == "diverged":
        print(f"[campaign] {stamp} {config.name} diverged (not retried): {outcome['error']}",
              flush=True)
    elif status == "locked":
        print(f"[campaign] {stamp} {config.name} not trained: {outcome['error']} by another "
              "process", flush=True)
    else:
        progress = progress_of(config)
        print(f"[campaign] {stamp} {config.name} {status} at epoch {progress.epochs_done}/"
              f"{progress.epochs}", flush=True)
    return status in ("trained", "stopped")


def wait_until_free(folders, timeout: float = 120.0) -> None:
    """Wait (at most ``timeout`` s) for the training processes in ``folders`` to end, so that the
    status and any snapshot taken after the campaign hold their last checkpoints."""
    end = time.time() + timeout
    while any(run_folder_in_use(folder) for folder in folders) and time.time() < end:
        time.sleep(0.5)