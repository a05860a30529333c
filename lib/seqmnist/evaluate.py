"""Forward-only metrics of a classifier or predictor on a set of images.

Units: classifiers report mean cross-entropy in nats per image and accuracy; predictors report mean
binary cross-entropy in nats per predicted pixel (783 per image) and in nats per image.

``evaluate`` scores a model on given tensors (the training loop uses it); ``split_tensors`` names
the splits that shipped files are scored on. ``eval_cache.evaluate_file`` scores a weights file
with them, served from the committed metrics.json or a local cache where it can be, and
``metrics_report`` runs it over every shipped file (``python -m seqmnist evaluate``). The sha256 of
this module and of the models' (``eval_cache.EVALUATION_MODULES``) keys those records: the code
that caches or presents the numbers lives elsewhere, so that changing it re-scores nothing.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch.nn import functional as F

from .data import first_ink_steps
from .models import SEQUENCE_LENGTH

# Forward-only batch by cell type, from benchmarks/bench_batch.py (2 threads, jemalloc): oneDNN's
# LSTM peaks at 256-500 images and loses 5-15 % from 1000 on (cache); the GRU's per-step loop is
# overhead-bound below 500 and flat from 500 to 1000.
EVAL_BATCH = {"lstm": 256, "gru": 1000}
DEFAULT_EVAL_BATCH = 1000
# On a GPU, memory rather than speed sets the batch: a GPU campaign runs 16-22 workers on one card
# (22 ran an 80 GB H100 out of memory), and the activations of a validation batch over 784 steps
# grow with its size.
CUDA_EVAL_BATCH = 256


def eval_batch_size(model) -> int:
    parameter = next(model.parameters(), None)
    if parameter is not None and parameter.is_cuda:
        return CUDA_EVAL_BATCH
    cell = getattr(getattr(model, "arch", None), "cell", None)
    return EVAL_BATCH.get(cell, DEFAULT_EVAL_BATCH)


@torch.no_grad()
def evaluate(model, pixels: torch.Tensor, labels: torch.Tensor | None = None,
             batch_size: int | None = None, progress: bool = False) -> dict:
    """Metrics of ``model`` on ``pixels`` (N, 784) in {0, 1} (and ``labels`` for classifiers).

    Images go through in order of their first ink pixel: a batch then shares a longer all-zero
    prefix, which the recurrent core computes once (the sums are the same in any order).
    """
    batch_size = batch_size or eval_batch_size(model)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total_loss, correct, count = 0.0, 0, 0
    order = torch.from_numpy(first_ink_steps(pixels.cpu().numpy())).argsort(stable=True)
    pixels = pixels[order]
    labels = labels[order] if labels is not None else None
    starts = range(0, len(pixels), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="evaluate", unit="batch", leave=False)
    for start in starts:
        batch = pixels[start:start + batch_size].to(device, torch.float32)
        x = batch.t().unsqueeze(-1)
        if model.task == "classify":
            target = labels[start:start + batch_size].to(device)
            logits = model(x)
            total_loss += float(F.cross_entropy(logits, target, reduction="sum"))
            correct += int((logits.argmax(1) == target).sum())
        else:
            logits, _ = model(x)
            total_loss += float(F.binary_cross_entropy_with_logits(
                logits[:-1], x[1:].squeeze(-1), reduction="sum"))
        count += len(batch)
    model.train(was_training)
    if model.task == "classify":
        return {"loss": total_loss / count, "accuracy": correct / count, "images": count}
    per_image = total_loss / count
    return {"loss": per_image / (SEQUENCE_LENGTH - 1), "loss_per_image": per_image, "images": count}


# --------------------------------------------------------------------------- shipped weights
#
# Shipped files are scored on the full train (55,000) and test (10,000) splits, and on the first
# CHECK_IMAGES test images (a fingerprint that a test recomputes for every shipped model).

CHECK_IMAGES = 500
CHECK = f"test_first{CHECK_IMAGES}"   # the fingerprint's name, used like a split's
SPLITS = ("train", "test", CHECK)
METRIC_NAMES = ("loss", "accuracy", "loss_per_image")


def split_tensors(mnist, split: str):
    """(pixels, labels) of ``split``: "train", "validation", "test" or the fingerprint CHECK."""
    if split == CHECK:
        pixels, labels = mnist.test.tensors()
        return pixels[:CHECK_IMAGES], labels[:CHECK_IMAGES]
    return mnist.split(split).tensors()  # ValueError for unknown names


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
