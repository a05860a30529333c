"""Carried-state generation and exact in-painting against the naive ways, on one CPU thread.

Model: a randomly initialized 1x128 LSTM predictor (timing only; weights do not change the cost).

1. Sampling 300 pixels after 1000 prefixes of 484 pixels (Task 2). Carried state: the prefix runs
   once (timed separately), then one recurrent step per pixel on the 1000 sequences. Naive: every
   new pixel re-runs the whole sequence so far (484 + j pixels) and keeps the last logit. The naive
   way is timed at a few lengths only and **extrapolated** to all 300 steps with a least-squares
   line in the sequence length (the cost of one pass is linear in its length).
2. Exact 2x2 posterior (16 fillings) on the 1000-image Task 3 window set. Engine: the known prefix
   once per image, the 16 fillings batched from the repeated state (``exact_posterior``'s
   defaults). Naive: 16 independent full 784-pixel forward passes per image, four ways: (a) the
   plain specification (nn.Linear input then nn.LSTM, as in bench_training.py's baseline) one
   image at a time, its 16 fillings as one batch -- the literal reading of "16 independent full
   passes per image"; (b) the same with the project's forward pass (folded input, shared zero
   prefix); (c) the project's forward pass batched 1024 sequences at a time across images;
   (d) the engine's own recurrent loop (``Stepper.run``) batched 1024 at a time: as efficient
   per step as the engine, so against (d) the speedup is the ratio of recurrent steps alone
   (16 x 784 against the prefix plus the branching fillings' steps), printed too. All are timed on
   ``--naive-images`` evenly spaced images and **extrapolated** linearly to 1000; their
   posteriors are checked against the engine's on those images.

The CPU may be shared with training: each timing is repeated and the median reported, both wall
clock and this process's CPU time (which a background load inflates less). Both sides run with
the same number of threads: one by default, ``--threads 2`` for both cores of the reference
machine (CPU time then counts both). Run as

    OMP_NUM_THREADS=1 python benchmarks/bench_generate.py [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch
from torch.nn import functional as F

from seqmnist.generate import Stepper, continue_from_state, prefix_state
from seqmnist.inpaint import exact_posterior
from seqmnist.models import build_model

PREFIX, STEPS = 484, 300


def timed(fn, repeats: int):
    """(result of the last call, median wall seconds, median CPU seconds)."""
    walls, cpus, result = [], [], None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return result, statistics.median(walls), statistics.median(cpus)


@torch.no_grad()
def naive_step(model, sequences: torch.Tensor) -> torch.Tensor:
    """The naive generation step: the whole sequence so far, for the last logit only."""
    logits, _ = model(sequences.t().unsqueeze(-1))
    return logits[-1]


@torch.no_grad()
def naive_posterior(model, masked: np.ndarray, truth: np.ndarray, batch: int = 1000,
                    way: str = "project") -> np.ndarray:
    """(N, 2^K) posteriors from 2^K independent full forward passes per image, run ``way``:
    'plain' (nn.Linear + nn.LSTM as specified), 'project' (the model's forward) or 'written-out'
    (the engine's own recurrent loop, ``Stepper.run``)."""
    images = []
    fillings = None
    for row, true in zip(masked, truth):
        where = np.flatnonzero(row == -1)
        fillings = 2 ** len(where)
        filled = np.repeat(true[None], fillings, axis=0)
        for f in range(fillings):
            filled[f, where] = (f >> np.arange(len(where))) & 1
        images.append(filled)
    x = torch.as_tensor(np.concatenate(images), dtype=torch.float32)
    nll = []
    for start in range(0, len(x), batch):
        seq = x[start:start + batch].t()
        if way == "plain":
            logits = model.head(model.core.plain_forward(seq.unsqueeze(-1))[0]).squeeze(-1)
        elif way == "written-out":
            state = model.core.initial_state(seq.shape[1], seq.device, seq.dtype)
            logits, _ = Stepper(model).run(seq, state)
        else:
            logits, _ = model(seq.unsqueeze(-1))
        nll.append(F.binary_cross_entropy_with_logits(logits[:-1], seq[1:],
                                                      reduction="none").sum(0))
    scores = -torch.cat(nll).double().view(len(masked), fillings)
    return torch.softmax(scores, dim=1).numpy()


def branching_steps(missing: np.ndarray) -> int:
    """Recurrent steps of the engine for one image: the prefix up to the first missing pixel m_0,
    fillings 0 and 1 from m_0, and 2^j more branching off at m_j, each to pixel 782."""
    steps = int(missing[0]) + 2 * (783 - int(missing[0]))
    return steps + sum(2 ** j * (783 - int(m)) for j, m in enumerate(missing[1:], start=1))


def _ratio(value: float) -> str:
    return f"{value:.0f}x" if value >= 10 else f"{value:.1f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--naive-lengths", type=int, nargs="+", default=[484, 634, 783])
    parser.add_argument("--naive-images", type=int, default=100)
    parser.add_argument("--skip-posterior", action="store_true")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for both sides")
    args = parser.parse_args()
    if args.threads < 1:
        parser.error("--threads must be >= 1")
    torch.set_num_threads(args.threads)
    from seqmnist import load_mnist
    from seqmnist.masks import window_set

    mnist = load_mnist()
    model = build_model("predict", "lstm-1x128", seed=0).eval()
    pixels, _ = mnist.test.tensors()
    prefixes = pixels[:args.images, :PREFIX]
    print(f"load average at start: {os.getloadavg()[0]:.2f} (2 cores); "
          f"torch threads {torch.get_num_threads()}", flush=True)
    rows = []

    # -- 1. sampling 300 pixels ------------------------------------------------------------
    (logit, state, _), pre_wall, pre_cpu = timed(lambda: prefix_state(model, prefixes),
                                                 args.repeats)
    generator = torch.Generator().manual_seed(0)
    cont, gen_wall, gen_cpu = timed(
        lambda: continue_from_state(model, logit, state, STEPS, 1, "sample", generator),
        args.repeats)
    print(f"carried state: prefix pass {pre_wall:.3f} s wall ({pre_cpu:.3f} s CPU), "
          f"{STEPS} sampling steps {gen_wall:.3f} s wall ({gen_cpu:.3f} s CPU)", flush=True)
    generated = torch.cat([prefixes, cont.pixels[:, 0]], dim=1)
    lengths, walls, cpus = [], [], []
    for length in args.naive_lengths:
        last, wall, cpu = timed(lambda: naive_step(model, generated[:, :length]),
                                max(1, args.repeats - 1))
        expected = logit if length == PREFIX else None
        if expected is not None:
            assert torch.allclose(last, expected, atol=1e-5), "naive step disagrees"
        lengths.append(length)
        walls.append(wall)
        cpus.append(cpu)
        print(f"naive step at length {length}: {wall:.3f} s wall ({cpu:.3f} s CPU)", flush=True)
    all_lengths = np.arange(PREFIX, PREFIX + STEPS)

    def extrapolate(times):
        slope, intercept = np.polyfit(lengths, times, 1)
        return float((intercept + slope * all_lengths).sum())

    naive_wall, naive_cpu = extrapolate(walls), extrapolate(cpus)
    rows.append((f"sample {STEPS} px x {args.images} prefixes (steps only)", gen_wall, gen_cpu,
                 naive_wall, naive_cpu, "naive extrapolated from lengths "
                 + ", ".join(map(str, lengths))))
    rows.append((f"sample {STEPS} px incl. the {PREFIX}-px prefix pass", pre_wall + gen_wall,
                 pre_cpu + gen_cpu, naive_wall, naive_cpu, "same naive total"))

    # -- 2. exact 2x2 posterior --------------------------------------------------------------
    if not args.skip_posterior:
        windows = window_set(mnist, count=1000, size=2)
        masked, truth = windows.masked[:args.images], windows.truth[:args.images]
        post, eng_wall, eng_cpu = timed(lambda: exact_posterior(model, masked, truth),
                                        max(1, args.repeats - 1))
        subset = np.linspace(0, len(masked) - 1, min(args.naive_images, len(masked))).astype(int)
        n = len(subset)
        engine_steps = sum(branching_steps(np.flatnonzero(row == -1)) for row in masked)
        print(f"recurrent steps: engine {engine_steps:,} (prefix once, then fillings branching "
              f"at the missing pixels), naive "
              f"{16 * 784 * len(masked):,} (16 x 784, before the model's shared-zero-prefix "
              f"saving): ratio {16 * 784 * len(masked) / engine_steps:.2f}", flush=True)
        print(f"posterior engine {eng_wall:.2f} s wall ({eng_cpu:.2f} s CPU) for {len(masked)} "
              f"images", flush=True)

        scale = len(masked) / n
        for label, batch, way in (("plain nn.LSTM, one image (16 sequences) per pass", 16, "plain"),
                                  ("project forward, one image per pass", 16, "project"),
                                  ("project forward, 1024 sequences per pass", 1024, "project"),
                                  ("the engine's own loop, 1024 sequences per pass", 1024,
                                   "written-out")):
            naive, nv_wall, nv_cpu = timed(
                lambda: naive_posterior(model, masked[subset], truth[subset], batch, way),
                max(1, args.repeats - 1))
            error = float(np.abs(naive - post.posterior[subset]).max())
            print(f"naive posterior, {label}: {nv_wall:.2f} s wall ({nv_cpu:.2f} s CPU) for {n} "
                  f"images; max |posterior difference| {error:.2e}", flush=True)
            rows.append((f"2x2 posterior, {len(masked)} images x 16 fillings; naive: {label}",
                         eng_wall, eng_cpu, nv_wall * scale, nv_cpu * scale,
                         f"naive timed on {n} evenly spaced images, x{scale:g}; max |dp| {error:.1e}"))

    print()
    print("| operation | project: wall s (CPU s) | naive: wall s (CPU s) | speedup wall "
          "(CPU) | note |")
    print("|---|---|---|---|---|")
    for name, wall, cpu, n_wall, n_cpu, note in rows:
        print(f"| {name} | {wall:.2f} ({cpu:.2f}) | {n_wall:.1f} ({n_cpu:.1f}) | "
              f"{_ratio(n_wall / wall)} ({_ratio(n_cpu / cpu)}) | {note} |")
    print(f"\nmedians of {args.repeats} runs (naive and posterior: {max(1, args.repeats - 1)}); "
          f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
