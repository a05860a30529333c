"""Which batch sizes the library's defaults should use: a sweep that backs two constants.

1. ``evaluate.EVAL_BATCH`` (forward-only scoring of the shipped models, 2 threads as in
   ``python -m seqmnist evaluate``): images per second of ``evaluate.evaluate`` on the first
   ``--images`` test images, for each cell type at 1x128 (the slowest models), at several batch
   sizes.
2. ``branching.BATCH_SEQUENCES["cpu"]`` (the posterior engines, one thread as in the notebooks'
   kernels under papermill): seconds of ``inpaint.exact_posterior`` on the first
   ``--posterior-images`` images of the Task 3 2x2 window set, at several sequences per batch,
   for an LSTM (the written-out step) and a GRU (the fused call) predictor, 1x128.
3. The allocator settings that ``train``, ``evaluate`` and ``report`` re-execute themselves with
   (``runtime.fast_cpu_env``: jemalloc and transparent huge pages): the evaluation of 1. at the
   default batch in two fresh processes, plain and with the settings.

Parts 1 and 2 run with the allocator settings, as the library's commands do (the script restarts
itself with them when jemalloc is installed). Models are randomly initialized (the cost does not
depend on the weights). Each timing is the median of ``--repeats``; run it on an otherwise idle
machine (pause the campaign) as

    python benchmarks/bench_batch.py
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import torch

from bench_generate import timed  # this folder is on sys.path when a script here runs
from seqmnist.branching import BATCH_SEQUENCES
from seqmnist.evaluate import EVAL_BATCH, evaluate
from seqmnist.inpaint import exact_posterior
from seqmnist.models import build_model
from seqmnist.runtime import fast_cpu_env, jemalloc_path

# evaluation rate of one model in a fresh process (argv: task, arch, images, repeats)
EVAL_RATE = """
import sys, torch
from seqmnist import load_mnist
from seqmnist.evaluate import evaluate
from seqmnist.models import build_model
sys.path.insert(0, {here!r})
from bench_batch import median_seconds
task, arch, images, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(2)
pixels, labels = load_mnist().test.tensors()
pixels, labels = pixels[:images], labels[:images]
model = build_model(task, arch, seed=0).eval()
seconds = median_seconds(lambda: evaluate(model, pixels, labels if task == "classify" else None),
                         repeats)
print(images / seconds)
"""


def rate_in_fresh_process(task: str, arch: str, images: int, repeats: int, env: dict) -> float:
    code = EVAL_RATE.format(here=os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code, task, arch, str(images), str(repeats)],
                         env=env, check=True, capture_output=True, text=True).stdout
    return float(out.split()[-1])


def median_seconds(fn, repeats: int) -> float:
    """Median wall seconds of ``repeats`` calls (bench_generate's timer)."""
    return timed(fn, repeats)[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--eval-batches", type=int, nargs="+", default=[128, 256, 500, 1000, 2000])
    parser.add_argument("--posterior-images", type=int, default=500)
    parser.add_argument("--posterior-batches", type=int, nargs="+",
                        default=[64, 256, 512, 1024, 2048])
    parser.add_argument("--parts", type=int, nargs="+", default=[1, 2, 3], choices=[1, 2, 3])
    args = parser.parse_args()
    library = jemalloc_path()
    if library and library not in os.environ.get("LD_PRELOAD", ""):
        sys.stdout.flush()
        os.execve(sys.executable, [sys.executable, *sys.argv], fast_cpu_env(threads=None))
    from seqmnist import load_mnist

    mnist = load_mnist()
    pixels, labels = mnist.test.tensors()
    pixels, labels = pixels[:args.images], labels[:args.images]
    print(f"load average at start: {os.getloadavg()[0]:.2f} (2 cores)", flush=True)
    print(f"allocator: {os.environ.get('LD_PRELOAD') or 'default'}", flush=True)

    if 1 in args.parts:
        evaluation_sweep(pixels, labels, args.eval_batches, args.repeats)
    if 2 in args.parts:
        posterior_sweep(mnist, args.posterior_images, args.posterior_batches, args.repeats)
    if 3 in args.parts:
        allocator_comparison(len(pixels), args.repeats)


def evaluation_sweep(pixels, labels, batches, repeats: int) -> None:
    torch.set_num_threads(2)
    print(f"\n1. evaluate(): images/s on {len(pixels)} test images, 2 threads "
          f"(EVAL_BATCH = {EVAL_BATCH})")
    print("| model | " + " | ".join(f"batch {b}" for b in batches) + " |")
    print("|---|" + "---|" * len(batches))
    for task, arch in (("classify", "lstm-1x128"), ("classify", "gru-1x128"),
                       ("predict", "lstm-1x128")):
        model = build_model(task, arch, seed=0).eval()
        rates = []
        for batch in batches:
            seconds = median_seconds(lambda: evaluate(model, pixels, labels if task == "classify"
                                                      else None, batch_size=batch), repeats)
            rates.append(len(pixels) / seconds)
        best = max(rates)
        cells = [f"**{r:.0f}**" if r == best else f"{r:.0f}" for r in rates]
        print(f"| {task} {arch} | " + " | ".join(cells) + " |", flush=True)


def posterior_sweep(mnist, images: int, batches, repeats: int) -> None:
    from seqmnist.masks import window_set

    torch.set_num_threads(1)
    windows = window_set(mnist, size=2)
    masked, truth = windows.masked[:images], windows.truth[:images]
    print(f"\n2. exact_posterior(): seconds for {len(masked)} 2x2 windows, one thread "
          f"(BATCH_SEQUENCES = {BATCH_SEQUENCES})")
    print("| predictor | " + " | ".join(f"{b} sequences" for b in batches) + " |")
    print("|---|" + "---|" * len(batches))
    for arch in ("lstm-1x128", "gru-1x128"):
        model = build_model("predict", arch, seed=0).eval()
        times = [median_seconds(lambda: exact_posterior(model, masked, truth, batch_sequences=b),
                                repeats) for b in batches]
        cells = [f"**{t:.2f}**" if t == min(times) else f"{t:.2f}" for t in times]
        print(f"| {arch} | " + " | ".join(cells) + " |", flush=True)


def allocator_comparison(images: int, repeats: int) -> None:
    if jemalloc_path() is None:
        print("\n3. skipped: jemalloc is not installed")
        return
    plain = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "MALLOC_CONF",
                                                              "THP_MEM_ALLOC_ENABLE")}
    print("\n3. evaluate() at the default batch in a fresh process, images/s, 2 threads")
    print("| model | plain | jemalloc + THP | speedup |")
    print("|---|---|---|---|")
    for task, arch in (("classify", "lstm-1x128"), ("classify", "gru-1x128")):
        base = rate_in_fresh_process(task, arch, images, repeats, plain)
        fast = rate_in_fresh_process(task, arch, images, repeats,
                                     fast_cpu_env(threads=None, base=plain))
        print(f"| {task} {arch} | {base:.0f} | {fast:.0f} | {fast / base:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
