"""Training throughput: the project's fast path against a plain nn.LSTM / nn.GRU model.

Both sides train the same model (input Linear -> recurrent stack -> head) on real binarized MNIST
batches, forward + backward + Adam step over all 784 steps, one thread each:

* plain: ``RecurrentCore.plain_forward`` (nn.Linear then nn.LSTM / nn.GRU), default allocator;
* fast:  the training path (folded input, shared zero prefix, fused GRU backward) in the worker
         environment the campaign uses (transparent huge pages, jemalloc when installed).

Each measurement is a fresh subprocess; plain and fast alternate so that background load hits both
alike, and the table reports medians. The LSTM 1x128 line also compares with the matmul floor: the
recurrent matmuls alone cost about 39.5 GFLOP per batch of 128 (forward + backward), and single-step
matmuls reach about 110-125 GFLOP/s on this CPU, so about 355 samples/s is the most any
implementation could reach here.

    python benchmarks/bench_training.py [--models lstm-1x128 gru-1x128 lstm-1x32] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

MATMUL_FLOOR = {"lstm-1x128": 355.0}
TARGETS = {"lstm-1x128": 2.0, "gru-1x128": 1.7, "lstm-1x32": 2.0}


def worker(mode: str, arch: str, batch: int, steps: int, warmup: int) -> None:
    import torch
    from torch.nn import functional as F

    from seqmnist import load_mnist
    from seqmnist.models import build_model

    torch.set_num_threads(1)
    pixels, labels = load_mnist().train.tensors()
    model = build_model("classify", arch, seed=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)

    def step():
        index = torch.randint(0, len(pixels), (batch,), generator=generator)
        x = pixels[index].t().unsqueeze(-1)
        if mode == "fast":
            loss, _ = model.loss(x, labels[index])
        else:
            out, _ = model.core.plain_forward(x)
            loss = F.cross_entropy(model.head(out[-1]), labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    print(json.dumps({"samples_per_s": batch * steps / (time.perf_counter() - started)}))


def measure(mode: str, arch: str, args) -> float:
    from seqmnist.runtime import fast_cpu_env

    env = dict(os.environ, OMP_NUM_THREADS="1")
    if mode == "fast":
        env = fast_cpu_env(threads=1)
    command = [sys.executable, __file__, "--worker", mode, "--models", arch, "--batch", str(args.batch),
               "--steps", str(args.steps), "--warmup", str(args.warmup)]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["samples_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["lstm-1x128", "gru-1x128", "lstm-1x32"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10, help="timed optimizer steps per measurement")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--worker", choices=("plain", "fast"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.models[0], args.batch, args.steps, args.warmup)
        return
    rows = ["| model | plain samples/s | fast samples/s | speedup | target | matmul floor |",
            "|---|---|---|---|---|---|"]
    for arch in args.models:
        plain, fast = [], []
        for _ in range(args.repeats):
            plain.append(measure("plain", arch, args))
            fast.append(measure("fast", arch, args))
        p, f = statistics.median(plain), statistics.median(fast)
        floor = MATMUL_FLOOR.get(arch)
        floor_text = f"{floor:.0f} ({100 * f / floor:.0f} % reached)" if floor else "-"
        target = TARGETS.get(arch)
        target_text = f">= {target:.1f}x" if target else "-"
        rows.append(f"| {arch} | {p:.0f} | {f:.0f} | {f / p:.2f}x | {target_text} | {floor_text} |")
        print(rows[-1], file=sys.stderr, flush=True)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
