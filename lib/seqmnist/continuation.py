"""Task 2's continuation experiment: continue a known prefix by sampling, score against the truth.

Every image of the set misses the same last pixels (484 known, 300 missing for the assignment's
set). The prefix runs once; for each horizon h the model draws ``samples`` continuations of h
pixels by feeding back its own samples (``generate.continue_from_state``), and the same pass gives
p(x_t = 1 | prefix, sampled past) at every drawn pixel: the sample NLL, the ground truth scored
along the sampled path and the predictive uncertainty maps (``uncertainty.continuation_entropy``)
all come from it, with no second sampling run. ``pick_examples`` chooses the success, failure and
high-variance examples the prediction notebook shows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.nn import functional as F

from .errors import ConfigError
from .generate import (binary_cross_entropy, check_predictor, continue_from_state, inference,
                       model_dtype_device, scan)
from .inpaint import masked_inputs
from .masks import MISSING
from .models import SEQUENCE_LENGTH

MIN_INK = 20  # example picking: ground-truth ink pixels the in-painted region must hold


PICK_RULE = (
    "Picks use the largest horizon H (300 by default) and images whose ground-truth region "
    "(the H pixels after the prefix) holds at least MIN_INK = 20 ink pixels (all images if none "
    "does). A sample's ink distance to the ground truth is |S xor G| / (|S| + |G|) over that "
    "region "
    "(0 = identical, 1 = no ink pixel in common; 0 when both are empty). "
    "success = lowest mean ink distance over the samples; failure = highest mean ink distance; "
    "high variance = highest mean pairwise per-pixel disagreement between the samples (among "
    "all images, the first two excluded). Ties go to the lowest image position.")


@dataclass
class Task2Result:
    """Task 2 in-painting metrics per image (N), sample (S) and horizon (H); nats throughout.

    * ``gt_nll``: -log p(ground-truth continuation | prefix), the first h pixels;
    * ``sample_nll``: -log p(sample | prefix) of each sampled continuation (the model's own
      likelihood of what it drew);
    * ``sample_gt_ce``: sum_t BCE(p(x_t = 1 | prefix, sampled x_k..x_{t-1}), ground-truth x_t):
      the ground truth scored against the predictions made along the sampled trajectory;
    * ``disagreement``: fraction of the h pixels where the sample differs from the ground truth;
    * ``ink_distance``: |S xor G| / (|S| + |G|) (0 if both empty);
    * ``pairwise``: mean over sample pairs of the fraction of differing pixels (per image);
    * ``continuations``: {h: (N, S, h) uint8} the sampled pixels;
    * ``probabilities``: {h: (N, S, h) float32} p(x_t = 1 | prefix, sampled past) at each drawn
      pixel, from the same pass (what ``sample_nll`` and ``sample_gt_ce`` are computed from).
    """

    horizons: tuple
    prefix_length: int
    samples: int
    seed: int
    test_indices: np.ndarray | None
    truth: np.ndarray
    gt_nll: np.ndarray
    sample_nll: np.ndarray
    sample_gt_ce: np.ndarray
    disagreement: np.ndarray
    ink_distance: np.ndarray
    pairwise: np.ndarray
    continuations: dict = field(default_factory=dict)
    probabilities: dict = field(default_factory=dict)
    picks: dict = field(default_factory=dict)
    pick_rule: str = PICK_RULE

    def summary(self) -> list[dict]:
        """One row per horizon: means over images (and samples) and standard errors."""
        rows = []
        count = len(self.gt_nll)
        for h_index, horizon in enumerate(self.horizons):
            gt = self.gt_nll[:, h_index]
            sampled = self.sample_nll[:, :, h_index].mean(axis=1)
            against = self.sample_gt_ce[:, :, h_index].mean(axis=1)
            rows.append({
                "horizon": horizon,
                "gt_nll": float(gt.mean()), "gt_nll_sem": float(gt.std(ddof=1) / math.sqrt(count))
                if count > 1 else 0.0,
                "gt_nll_per_pixel": float(gt.mean() / horizon),
                "sample_nll": float(sampled.mean()),
                "sample_nll_sem": float(sampled.std(ddof=1) / math.sqrt(count))
                if count > 1 else 0.0,
                "sample_nll_per_pixel": float(sampled.mean() / horizon),
                "sample_gt_ce": float(against.mean()),
                "sample_gt_ce_per_pixel": float(against.mean() / horizon),
                "disagreement": float(self.disagreement[:, :, h_index].mean()),
                "ink_distance": float(self.ink_distance[:, :, h_index].mean()),
                "pairwise_disagreement": float(np.nanmean(self.pairwise[:, h_index])),
            })
        return rows

    def table(self) -> str:
        lines = ["| horizon | GT NLL (nats) | GT NLL / pixel | sample NLL (nats) | "
                 "sample NLL / pixel | GT vs sampled path / pixel | disagreement | "
                 "pairwise |", "|---|---|---|---|---|---|---|---|"]
        for r in self.summary():
            lines.append(
                f"| {r['horizon']} | {r['gt_nll']:.2f} ± {r['gt_nll_sem']:.2f} | "
                f"{r['gt_nll_per_pixel']:.4f} | {r['sample_nll']:.2f} ± {r['sample_nll_sem']:.2f} "
                f"| {r['sample_nll_per_pixel']:.4f} | {r['sample_gt_ce_per_pixel']:.4f} | "
                f"{r['disagreement']:.4f} | {r['pairwise_disagreement']:.4f} |")
        return "\n".join(lines)


def _common_prefix(missing: np.ndarray) -> int:
    first = missing.argmax(axis=1)
    if not missing.any(axis=1).all():
        raise ConfigError("every image needs missing pixels")
    k = int(first[0])
    suffix = np.arange(SEQUENCE_LENGTH)[None, :] >= first[:, None]
    if np.any(first != k) or np.any(missing != suffix):
        raise ConfigError("the Task 2 experiment needs every image to miss the same last pixels "
                          "(a common prefix, then missing to the end)")
    if k < 1:
        raise ConfigError("the Task 2 experiment needs a prefix of at least 1 pixel")
    return k


def pick_examples(ink_distance: np.ndarray, pairwise: np.ndarray, truth_region: np.ndarray,
                  min_ink: int = MIN_INK) -> dict:
    """{'success', 'failure', 'high_variance'} image positions by ``PICK_RULE``.

    ``ink_distance`` (N, S) and ``pairwise`` (N,) at the horizon used; ``truth_region`` (N, H).
    """
    count = len(ink_distance)
    eligible = truth_region.sum(axis=1) >= min_ink
    if not eligible.any():
        eligible = np.ones(count, bool)
    score = ink_distance.mean(axis=1)
    candidates = np.flatnonzero(eligible)
    success = int(candidates[np.argmin(score[candidates])])  # argmin/argmax: lowest index on ties
    rest = candidates[candidates != success]
    failure = int(rest[np.argmax(score[rest])]) if len(rest) else success
    others = np.setdiff1d(np.arange(count), [success, failure])
    spread = np.nan_to_num(pairwise, nan=-1.0)
    variance = int(others[np.argmax(spread[others])]) if len(others) else failure
    return {"success": success, "failure": failure, "high_variance": variance}


@inference
def task2_experiment(model, inpainting_set, horizons=(1, 10, 28, 300), samples: int = 10,
                     seed: int = 0, pick_horizon: int | None = None) -> Task2Result:
    """Continue each image's known prefix for each horizon, ``samples`` times; score against GT.

    The prefix (the pixels before the common missing suffix, 484 for the default set) runs once
    for all horizons, together with the ground truth's likelihood (one forward pass over the
    true images). Each horizon then draws its own ``samples`` continuations from the repeated
    prefix state (horizons in the given order from one ``torch.Generator`` seeded with ``seed``,
    so the result is reproducible for the same set, model, horizons and samples). Examples are
    picked by ``PICK_RULE`` at ``pick_horizon`` (default: the largest horizon).
    """
    check_predictor(model)
    _, missing, truth = masked_inputs(model, inpainting_set)
    if truth is None:
        raise ConfigError("the Task 2 experiment needs the ground truth")
    k = _common_prefix(missing)
    horizons = tuple(int(h) for h in horizons)
    if not horizons or min(horizons) < 1 or max(horizons) > SEQUENCE_LENGTH - k:
        raise ConfigError(f"horizons must be in 1..{SEQUENCE_LENGTH - k}, got {horizons}")
    if samples < 1:
        raise ConfigError(f"samples must be at least 1, got {samples}")
    pick_horizon = max(horizons) if pick_horizon is None else int(pick_horizon)
    if pick_horizon not in horizons:
        raise ConfigError(f"pick_horizon {pick_horizon} is not one of the horizons {horizons}")
    dtype, device = model_dtype_device(model)
    true = torch.as_tensor(truth, dtype=dtype, device=device)
    count = len(true)
    result = scan(model, true[:, :SEQUENCE_LENGTH - 1].t(), None,
                  snap_at=torch.full((count,), k, device=device))
    per_pixel = F.binary_cross_entropy_with_logits(
        result.logits, true[:, 1:].t(), reduction="none").t()  # (N, 783): pixel t at t - 1
    logit_k, state_k = result.logits[k - 1], result.snapshots
    generator = torch.Generator(device=device).manual_seed(seed)
    shape = (count, samples, len(horizons))
    gt_nll = np.zeros((count, len(horizons)))
    sample_nll, sample_gt_ce = np.zeros(shape), np.zeros(shape)
    disagreement, ink_distance = np.zeros(shape), np.zeros(shape)
    pairwise = np.full((count, len(horizons)), np.nan)
    continuations, probabilities = {}, {}
    for h_index, horizon in enumerate(horizons):
        gt = true[:, k:k + horizon]
        gt_nll[:, h_index] = per_pixel[:, k - 1:k - 1 + horizon].sum(1).double().cpu().numpy()
        cont = continue_from_state(model, logit_k, state_k, horizon, samples, "sample",
                                   generator, prefix_length=k)
        pixels = cont.pixels
        sample_nll[:, :, h_index] = cont.nll().double().cpu().numpy()
        sample_gt_ce[:, :, h_index] = binary_cross_entropy(
            cont.probs, gt[:, None, :].expand_as(cont.probs)).sum(-1).double().cpu().numpy()
        differ = (pixels != gt[:, None, :]).to(dtype)
        disagreement[:, :, h_index] = differ.mean(-1).double().cpu().numpy()
        ink = pixels.sum(-1) + gt.sum(-1)[:, None]
        ink_distance[:, :, h_index] = torch.where(
            ink > 0, differ.sum(-1) / ink.clamp(min=1), torch.zeros_like(ink)
        ).double().cpu().numpy()
        if samples > 1:
            ones = pixels.sum(1)  # (N, h)
            pairs = (ones * (samples - ones)).sum(-1) / (horizon * samples * (samples - 1) / 2)
            pairwise[:, h_index] = pairs.double().cpu().numpy()
        continuations[horizon] = pixels.to(torch.uint8).cpu().numpy()
        probabilities[horizon] = cont.probs.float().cpu().numpy()
    at = horizons.index(pick_horizon)
    picks = pick_examples(ink_distance[:, :, at], pairwise[:, at],
                          truth[:, k:k + pick_horizon])
    indices = getattr(inpainting_set, "indices", None)
    return Task2Result(horizons, k, samples, seed, indices, truth.astype(np.float32), gt_nll,
                       sample_nll, sample_gt_ce, disagreement, ink_distance, pairwise,
                       continuations=continuations, probabilities=probabilities, picks=picks)


def task2_examples(result: Task2Result, horizons=(10, 28, 300), samples: int = 5,
                   picks: dict | None = None) -> dict:
    """For each picked image: ground truth, masked image and ``samples`` completions per horizon.

    Returns {name: {"position", "test_index", "truth" (784,), "masked" (784,),
    "completions": {h: (samples, 784)}}}; a completion holds the true prefix, the first
    ``samples`` continuations drawn by ``task2_experiment`` (the same ones that were scored),
    and -1 after the horizon.
    """
    picks = result.picks if picks is None else picks
    if samples > result.samples:
        raise ConfigError(f"the experiment drew {result.samples} samples, not {samples}")
    k = result.prefix_length
    out = {}
    for name, position in picks.items():
        truth = result.truth[position]
        masked = truth.copy()
        masked[k:] = MISSING
        completions = {}
        for horizon in horizons:
            if horizon not in result.continuations:
                raise ConfigError(f"horizon {horizon} was not run (ran {result.horizons})")
            images = np.full((samples, SEQUENCE_LENGTH), MISSING, np.float32)
            images[:, :k] = truth[:k]
            images[:, k:k + horizon] = result.continuations[horizon][position, :samples]
            completions[horizon] = images
        test_index = None if result.test_indices is None else int(result.test_indices[position])
        out[name] = {"position": int(position), "test_index": test_index, "truth": truth,
                     "masked": masked, "completions": completions}
    return out


__all__ = ["task2_experiment", "Task2Result", "task2_examples", "pick_examples", "PICK_RULE",
           "MIN_INK"]
