"""In-painting with a next-pixel predictor (Task 3): the exact posterior over the fillings.

``generate.py`` samples and ``continuation.py`` runs Task 2's continuation experiment; this module
scores fillings of missing pixels given the pixels before *and after* them.

Task 3 formula. Let M = {m_1 < ... < m_K} be the missing reading positions (0-based) of an image
x and x_M a filling. The model defines p(x) = p(x_0) * prod_{t=1}^{783} p(x_t | x_0..x_{t-1});
pixel 0 has no prediction, so p(x_0) is taken uniform (a constant, whether x_0 is missing or not).
Then, for each of the 2^K fillings,

    p(x_M | x_rest) = prod_{t >= max(m_1, 1)} p(x_t | x_<t)  /  sum over fillings of the same,

because every factor with t < m_1 is the same for all fillings and cancels. Fillings are
numbered ``f = sum_j x_{m_j} 2^(j - 1)`` (bit j - 1 = the j-th missing pixel in reading order).
``branching.py`` runs the 2^K fillings while sharing their common prefixes (see its doc).
Full-image NLLs count the 783 predicted pixels 1..783 (as ``evaluate`` does); pixel 0 never
contributes.

Cross-entropies are in nats. ``marginal_ce`` is the binary cross-entropy of the ground-truth
missing pixels under the posterior marginals p(x_m = 1 | x_rest), averaged over the missing pixels
of an image; ``map_error`` is the fraction of missing pixels where the most probable filling
differs from the ground truth; ``truth_joint_nll`` is -log p(ground-truth filling | x_rest).

Beyond enumeration (|M| > 12), ``gibbs.gibbs_inpaint`` samples the fillings.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from .branching import (filling_bits, image_chunks, image_progress, missing_positions, prefix_pass,
                        sequences_per_batch, shrinking_prefix_pass, suffix_pass)
from .errors import ConfigError
from .generate import (TIME_CHUNK, Stepper, binary_cross_entropy, check_predictor, inference,
                       model_dtype_device, one_step_predictions, state_select)
from .masks import MISSING
from .models import SEQUENCE_LENGTH

MAX_EXACT_MISSING = 12


# --------------------------------------------------------------------------- inputs


def masked_inputs(model, masked, truth=None):
    """(x (N, 784) model dtype with missing pixels set to 0, missing (N, 784) bool numpy,
    truth (N, 784) float numpy or None) from an InpaintingSet or arrays."""
    if hasattr(masked, "masked") and hasattr(masked, "truth"):
        truth = masked.truth if truth is None else truth
        masked = masked.masked
    masked = np.asarray(masked.cpu() if torch.is_tensor(masked) else masked, dtype=np.float64)
    if masked.ndim != 2 or masked.shape[1] != SEQUENCE_LENGTH or len(masked) < 1:
        raise ConfigError(f"masked images must be (N, {SEQUENCE_LENGTH}), got {masked.shape}")
    missing = masked == MISSING
    if not np.all(missing | (masked == 0) | (masked == 1)):
        raise ConfigError("masked images must hold only 0, 1 and -1 (missing)")
    if truth is not None:
        truth = np.asarray(truth.cpu() if torch.is_tensor(truth) else truth, dtype=np.float64)
        if truth.shape != masked.shape:
            raise ConfigError(f"ground truth shape {truth.shape} differs from {masked.shape}")
        if not np.all((truth == 0) | (truth == 1)) or np.any((masked != truth) & ~missing):
            raise ConfigError("ground truth must be binary and agree with the known pixels")
    dtype, device = model_dtype_device(model)
    x = torch.as_tensor(np.where(missing, 0.0, masked), dtype=dtype, device=device)
    return x, missing, truth



def paint(masked: np.ndarray, positions: np.ndarray, values: np.ndarray,
          background: float | None = None) -> np.ndarray:
    """(N, 784) float32 images with ``values`` (N, K) written at ``positions`` (N, K, -1 padded).

    The other pixels are the known ones of ``masked`` (missing ones 0), or ``background`` when
    given (e.g. 0 to show only the painted values, such as posterior marginals).
    """
    if background is None:
        images = np.where(masked == MISSING, 0.0, masked).astype(np.float32)
    else:
        images = np.full(masked.shape, background, np.float32)
    rows, cols = np.nonzero(positions >= 0)
    images[rows, positions[rows, cols]] = values[rows, cols]
    return images


def past_only_cross_entropy(model, subset) -> float:
    """Mean -log p(x_m | x_<m) of the ground-truth missing pixels of an InpaintingSet, each
    predicted from the true pixels before it (what Task 2's predictor alone can say), in nats."""
    probs = one_step_predictions(model, torch.as_tensor(subset.truth)).cpu().numpy()
    missing = subset.missing
    return float(binary_cross_entropy(torch.as_tensor(probs[missing], dtype=torch.float64),
                                      torch.as_tensor(subset.truth[missing], dtype=torch.float64)
                                      ).mean())


# --------------------------------------------------------------------------- exact posterior


@dataclass
class Posterior:
    """Exact posterior over the fillings of each image's missing pixels (see the module doc).

    Arrays are padded where images have fewer missing pixels than the largest count K:
    ``positions`` with -1, ``log_posterior`` with -inf, ``suffix_nll`` with inf, marginals with NaN.
    """

    masked: np.ndarray         # (N, 784) with -1 at missing pixels
    positions: np.ndarray      # (N, K) int64 reading positions of the missing pixels
    counts: np.ndarray         # (N,) missing pixels per image
    log_posterior: np.ndarray  # (N, 2^K) log p(filling | known pixels)
    prefix_nll: np.ndarray     # (N,) nats, pixels 1..s - 1 (the same for every filling)
    suffix_nll: np.ndarray     # (N, 2^K) nats, pixels max(s, 1)..783 for each filling
    # s is where the image's batch branches into fillings: the batch's first missing pixel, at
    # most the image's own m_1 (one branch point per batch costs a few steps and saves many calls)
    truth: np.ndarray | None = None
    seconds: float = 0.0

    @property
    def posterior(self) -> np.ndarray:
        return np.exp(self.log_posterior)

    def bits(self, fillings: np.ndarray) -> np.ndarray:
        """(N, K) pixel values of one filling per image (-1 padded)."""
        fillings = np.asarray(fillings, np.int64)
        out = (fillings[:, None] >> np.arange(self.positions.shape[1])[None, :]) & 1
        return np.where(self.positions >= 0, out, -1)

    def fill(self, fillings: np.ndarray) -> np.ndarray:
        """(N, 784) images with each image's missing pixels set to the given filling."""
        return paint(self.masked, self.positions, self.bits(fillings))

    @property
    def marginal_images(self) -> np.ndarray:
        """(N, 784) p(x_m = 1 | known pixels) at the missing pixels, 0 elsewhere (for plots)."""
        return paint(self.masked, self.positions, self.marginals, background=0.0)

    @property
    def map_filling(self) -> np.ndarray:
        """(N,) the most probable filling (lowest index on ties)."""
        return self.log_posterior.argmax(axis=1)

    @property
    def map_images(self) -> np.ndarray:
        return self.fill(self.map_filling)

    @property
    def map_probability(self) -> np.ndarray:
        return np.exp(self.log_posterior.max(axis=1))

    @property
    def marginals(self) -> np.ndarray:
        """(N, K) p(x_m = 1 | known pixels) for each missing pixel (NaN padded)."""
        bits = filling_bits(self.positions.shape[1]).numpy()
        marg = self.posterior @ bits
        return np.where(self.positions >= 0, marg, np.nan)

    def image_nll(self, fillings: np.ndarray) -> np.ndarray:
        """(N,) nats: NLL of the whole image (pixels 1..783) with the given fillings."""
        fillings = np.asarray(fillings, np.int64)
        return self.prefix_nll + self.suffix_nll[np.arange(len(fillings)), fillings]

    # -- against the ground truth ---------------------------------------------------------
    def _need_truth(self) -> np.ndarray:
        if self.truth is None:
            raise ConfigError("this posterior was computed without the ground truth")
        return self.truth

    @property
    def truth_bits(self) -> np.ndarray:
        truth = self._need_truth()
        rows = np.arange(len(truth))[:, None]
        bits = truth[rows, np.maximum(self.positions, 0)].astype(np.int64)
        return np.where(self.positions >= 0, bits, -1)

    @property
    def truth_filling(self) -> np.ndarray:
        bits = np.maximum(self.truth_bits, 0)
        return (bits << np.arange(bits.shape[1])[None, :]).sum(axis=1)

    @property
    def truth_probability(self) -> np.ndarray:
        """(N,) posterior probability of the ground-truth filling."""
        return np.exp(self.log_posterior[np.arange(len(self.counts)), self.truth_filling])

    @property
    def truth_joint_nll(self) -> np.ndarray:
        """(N,) nats: -log p(ground-truth filling | known pixels)."""
        return -self.log_posterior[np.arange(len(self.counts)), self.truth_filling]

    @property
    def marginal_ce(self) -> np.ndarray:
        """(N,) nats per missing pixel: BCE of the ground truth under the posterior marginals."""
        return masked_row_mean(missing_bce(self.marginals, self.truth_bits), self.positions >= 0)

    @property
    def map_error(self) -> np.ndarray:
        """(N,) fraction of missing pixels where the most probable filling is wrong."""
        wrong = self.bits(self.map_filling) != self.truth_bits
        return masked_row_mean(wrong.astype(np.float64), self.positions >= 0)

    @property
    def truth_nll(self) -> np.ndarray:
        """(N,) nats: NLL of the ground-truth image."""
        return self.image_nll(self.truth_filling)

    @property
    def map_nll(self) -> np.ndarray:
        """(N,) nats: NLL of the image completed with the most probable filling."""
        return self.image_nll(self.map_filling)

    def summary(self) -> dict:
        out = {"images": int(len(self.counts)), "missing_per_image": float(self.counts.mean()),
               "map_probability": float(self.map_probability.mean()), "seconds": self.seconds}
        if self.truth is not None:
            out.update({
                "truth_probability": float(self.truth_probability.mean()),
                "truth_joint_nll": float(self.truth_joint_nll.mean()),
                "marginal_ce": float(self.marginal_ce.mean()),
                "map_error": float(self.map_error.mean()),
                "map_equals_truth": float((self.map_filling == self.truth_filling).mean()),
                "truth_image_nll": float(self.truth_nll.mean()),
                "map_image_nll": float(self.map_nll.mean()),
            })
        return out


def missing_bce(probs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Elementwise BCE in nats of -1 padded ``targets`` under ``probs`` (NaN padded; padding gives
    finite values that ``masked_row_mean`` then leaves out)."""
    probs = np.nan_to_num(np.asarray(probs, np.float64), nan=0.5)
    return binary_cross_entropy(torch.as_tensor(probs),
                                torch.as_tensor(np.maximum(targets, 0), dtype=torch.float64)
                                ).numpy()


def masked_row_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(N,) mean of each row's ``values`` where ``mask`` holds (0 for an empty row)."""
    return np.where(mask, values, 0.0).sum(axis=1) / np.maximum(mask.sum(axis=1), 1)


@inference
def exact_posterior(model, masked, truth=None, batch_sequences: int | None = None,
                    time_chunk: int = TIME_CHUNK, progress: bool = False) -> Posterior:
    """Exact p(x_M | x_rest) over all 2^|M| fillings for each image (|M| between 1 and 12).

    ``masked`` is an InpaintingSet (its ground truth is used) or (N, 784) values in {0, 1, -1};
    ``truth`` (N, 784) is optional. Images are batched: chunks of images with the same |M|,
    sorted by first missing pixel, each chunk holding about ``batch_sequences`` sequences
    (images x 2^|M|; default by device and cell, see ``BATCH_SEQUENCES``). ConfigError for a
    classifier, an image with no missing pixel, or more than 12 missing pixels.
    """
    check_predictor(model)
    started = time.perf_counter()
    x, missing, truth = masked_inputs(model, masked, truth)
    positions, counts = missing_positions(missing, MAX_EXACT_MISSING)
    count, width = positions.shape
    log_post = np.full((count, 2 ** width), -np.inf)
    suffix = np.full((count, 2 ** width), np.inf)
    prefix = np.zeros(count)
    device = x.device
    batch_sequences = sequences_per_batch(batch_sequences, model, device)
    own_starts = Stepper(model).written_out
    if own_starts:  # every image's known prefix at once, in large batches
        shared = shrinking_prefix_pass(model, x, torch.as_tensor(positions[:, 0], device=device),
                                        batch_sequences)
    bar = image_progress(count, "posterior", progress)
    for k, chunk in image_chunks(counts, positions[:, 0], lambda k: batch_sequences // 2 ** k):
        idx = torch.as_tensor(chunk, device=device)
        xs = x[idx]
        pos = torch.as_tensor(positions[chunk, :k], device=device)
        # Each image branches at its own first missing pixel when short recurrent calls are cheap
        # (the written-out CPU LSTM step); otherwise the whole chunk branches at its earliest one,
        # so that the fused call runs a few long chunks: the known pixels from there to an image's
        # own first missing one are scored alike in every filling (exact, a few wasted steps).
        if own_starts:
            starts = pos[:, 0]
            state, logit, prefix_nll = state_select(shared[0], idx), shared[1][idx], shared[2][idx]
        else:
            starts = pos[:, 0].min().expand(len(chunk))
            state, logit, prefix_nll = prefix_pass(model, xs, starts, time_chunk)
        nll, _ = suffix_pass(model, xs, starts, state, logit, pos,
                              filling_bits(k).to(device), time_chunk, tree=own_starts)
        nll = nll.double().cpu().numpy()
        suffix[chunk, :2 ** k] = nll
        scores = -nll
        log_post[chunk, :2 ** k] = scores - _logsumexp(scores)
        prefix[chunk] = prefix_nll.double().cpu().numpy()
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()
    return Posterior(np.where(missing, MISSING, x.cpu().numpy()).astype(np.float32), positions,
                     counts, log_post, prefix, suffix, truth, time.perf_counter() - started)


def _logsumexp(scores: np.ndarray) -> np.ndarray:
    top = scores.max(axis=1, keepdims=True)
    return top + np.log(np.exp(scores - top).sum(axis=1, keepdims=True))



__all__ = ["exact_posterior", "Posterior", "masked_inputs", "paint", "past_only_cross_entropy",
           "missing_bce", "masked_row_mean", "MAX_EXACT_MISSING", "MISSING"]
