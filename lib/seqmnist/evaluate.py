"""Forward-only metrics of a classifier or predictor on a set of images.

Units: classifiers report mean cross-entropy in nats per image and accuracy; predictors report mean
binary cross-entropy in nats per predicted pixel (783 per image) and in nats per image.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from .models import SEQUENCE_LENGTH

EVAL_BATCH = 1000  # fastest forward-only batch measured on the 2-core CPU (batch 10,000 is slower)


@torch.no_grad()
def evaluate(model, pixels: torch.Tensor, labels: torch.Tensor | None = None,
             batch_size: int = EVAL_BATCH, progress: bool = False) -> dict:
    """Metrics of ``model`` on ``pixels`` (N, 784) in {0, 1} (and ``labels`` for classifiers)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total_loss, correct, count = 0.0, 0, 0
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
