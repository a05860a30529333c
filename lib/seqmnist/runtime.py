"""Process settings that make CPU training about twice as fast here (see the README's speed notes).

PyTorch page-faults its large per-batch buffers on every batch unless transparent huge pages are
enabled for its allocator; jemalloc with decay disabled keeps freed pages mapped. Both must be in
the environment before the process starts, so they are applied to worker subprocesses.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

JEMALLOC_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
    "/usr/lib/aarch64-linux-gnu/libjemalloc.so.2",
    "/usr/lib/libjemalloc.so.2",
)


def jemalloc_path() -> str | None:
    return next((p for p in JEMALLOC_CANDIDATES if Path(p).exists()), None)


def fast_cpu_env(threads: int | None = 1, base: dict | None = None) -> dict:
    """An environment for a training subprocess: ``threads`` threads (None: as inherited), THP
    and jemalloc if present."""
    env = dict(os.environ if base is None else base)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
        env["MKL_NUM_THREADS"] = str(threads)
    env["THP_MEM_ALLOC_ENABLE"] = "1"
    library = jemalloc_path()
    if library and library not in env.get("LD_PRELOAD", ""):
        env["LD_PRELOAD"] = ":".join(filter(None, [library, env.get("LD_PRELOAD")]))
        env["MALLOC_CONF"] = "dirty_decay_ms:-1,muzzy_decay_ms:-1"
    return env


def reexec_with_fast_allocator(module_args: list[str]) -> None:
    """Restart this ``python -m seqmnist`` process with the fast allocator settings, once.

    They only work from the start of a process, so a CPU-heavy command (train, sweep, evaluate,
    report, whose notebook kernels inherit the environment) re-executes itself with them when
    jemalloc is installed and not yet preloaded (evaluation runs 1.2-1.4x faster so; see
    benchmarks/bench_batch.py). ``SEQMNIST_NO_REEXEC=1`` turns this off.
    """
    library = jemalloc_path()
    if (library is None or os.environ.get("SEQMNIST_NO_REEXEC") == "1"
            or library in os.environ.get("LD_PRELOAD", "")):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "seqmnist", *module_args],
              fast_cpu_env(threads=None))
