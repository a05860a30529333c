"""In-painting with a next-pixel predictor (Task 3): exact posteriors and Gibbs sampling.

``generate.py`` samples and ``continuation.py`` runs Task 2's continuation experiment; this module
scores fillings of missing pixels given the pixels before *and after* them.

Task 3 formula. Let M = {m_1 < ... < m_K} be the missing reading positions (0-based) of an image
x and x_M a filling. The model defines p(x) = p(x_0) * prod_{t=1}^{783} p(x_t | x_0..x_{t-1});
pixel 0 has no prediction, so p(x_0) is taken uniform (a constant, whether x_0 is missing or not).
Then, for each of the 2^K fillings,

    p(x_M | x_rest) = prod_{t >= max(m_1, 1)} p(x_t | x_<t)  /  sum over fillings of the same,

because every factor with t < m_1 is the same for all fillings and cancels. Fillings are
numbered ``f = sum_j x_{m_j} 2^(j - 1)`` (bit j - 1 = the j-th missing pixel in reading order).
The engine runs the known prefix x_0..x_{s - 1} once per image, repeats its state, and runs the
fillings from pixel s to the end as one batch, so an image costs at most s + 2^K (784 - s)
recurrent steps instead of 2^K * 784. Images go in batches sorted by m_1. On CPU an LSTM runs the
written-out step (``generate.Stepper.run``), for which short calls are cheap: s is the image's
own m_1, all images' prefixes run first in large batches that shrink as images reach their s,
and the fillings branch off each other where they first differ (filling f > 1 joins at m_{j+1}, j its
highest set bit, from the running state of f - 2^j), so only 2^j distinct sequences run between
m_j and m_{j+1}. Otherwise s is the batch's smallest m_1 (the few known pixels between s and an
image's own m_1 are scored alike in every filling, exact), so that the fused recurrent call runs a
few long chunks. Full-image NLLs count the 783 predicted pixels 1..783 (as
``evaluate`` does); pixel 0 never contributes.

Cross-entropies are in nats. ``marginal_ce`` is the binary cross-entropy of the ground-truth
missing pixels under the posterior marginals p(x_m = 1 | x_rest), averaged over the missing pixels
of an image; ``map_error`` is the fraction of missing pixels where the most probable filling
differs from the ground truth; ``truth_joint_nll`` is -log p(ground-truth filling | x_rest).

Beyond enumeration (|M| > 12), ``gibbs_inpaint`` samples the fillings with the exact single-pixel
conditional p(x_m | everything else) ∝ prod_{t >= m} p(x_t | x_<t): two branches (x_m = 0, 1)
run from the carried state at m to the end, and the chosen branch's state is snapshotted at the next
missing pixel, so a sweep costs 2 * sum_j (784 - m_j) steps per image (the prefix before m_1 never
changes and runs once for all sweeps). Enumeration costs 2^K (784 - m_1), so S sweeps are cheaper
only when 2^K > 2 S K roughly (K >= 9 for 20 sweeps) -- Gibbs is for masks too large to
enumerate, not for the 1- and 4-pixel sets. ``compare_gibbs_to_exact`` measures it against
enumeration on small masks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from .errors import ConfigError
from .generate import (TIME_CHUNK, Stepper, binary_cross_entropy, check_predictor, inference,
                       model_dtype_device, one_step_predictions, scan, state_repeat, state_select)
from .masks import MISSING
from .models import SEQUENCE_LENGTH

MAX_EXACT_MISSING = 12
# Sequences (images x branches) per recurrent batch of the posterior engines, by device and cell.
# benchmarks/bench_batch.py (one thread, 1x128, 300 windows): a CPU LSTM runs the written-out step
# (``Stepper.run``), flat from 256 to 2048 sequences with 1024 fastest (its matmul nears the core's
# peak), 64 about 55 % slower; the GRU's fused call is flat from 256 on, 64 about 60 % slower.
# A GPU wants large batches.
BATCH_SEQUENCES = {"cpu": {"lstm": 1024, "gru": 256}, "cuda": {"lstm": 4096, "gru": 4096}}


def _batch_sequences(value: int | None, model, device: torch.device) -> int:
    if value is not None:
        if value < 1:
            raise ConfigError(f"batch_sequences must be >= 1, got {value}")
        return int(value)
    by_cell = BATCH_SEQUENCES.get(device.type, BATCH_SEQUENCES["cpu"])
    return by_cell[model.core.arch.cell]


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


def _positions(missing: np.ndarray, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    counts = missing.sum(axis=1)
    if np.any(counts == 0):
        raise ConfigError(f"{int((counts == 0).sum())} image(s) have no missing pixel (first: "
                          f"image {int(np.flatnonzero(counts == 0)[0])})")
    if limit is not None and counts.max() > limit:
        raise ConfigError(f"exact in-painting enumerates 2^|M| fillings and allows at most "
                          f"{limit} missing pixels per image; image {int(counts.argmax())} has "
                          f"{int(counts.max())} (use gibbs_inpaint)")
    positions = np.full((len(missing), int(counts.max())), -1, np.int64)
    for i, row in enumerate(missing):
        where = np.flatnonzero(row)
        positions[i, :len(where)] = where
    return positions, counts


def _chunks(counts: np.ndarray, first: np.ndarray, per_chunk):
    """Image index chunks with one missing count each, sorted by first missing pixel (so that a
    chunk's prefixes and suffixes have similar lengths); ``per_chunk(K)`` images per chunk."""
    order = np.lexsort((first, counts))
    for k in np.unique(counts):
        group = order[counts[order] == k]
        size = max(1, int(per_chunk(int(k))))
        for start in range(0, len(group), size):
            yield int(k), group[start:start + size]


def _bce_logits(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="none")


def _prefix_pass(model, x: torch.Tensor, starts: torch.Tensor, time_chunk: int):
    """Run x[i, :starts[i]] for each image: (state at starts[i], logit of pixel starts[i] (0 where
    starts[i] == 0), NLL of pixels 1..starts[i]-1)."""
    count = len(x)
    longest = int(starts.max())
    dtype, device = x.dtype, x.device
    if longest == 0:
        return (model.core.initial_state(count, device, dtype), x.new_zeros(count),
                x.new_zeros(count))
    result = scan(model, x[:, :longest].t(), None, snap_at=starts, time_chunk=time_chunk)
    columns = torch.arange(count, device=device)
    logit = result.logits[(starts - 1).clamp(min=0), columns] * (starts > 0)
    nll = x.new_zeros(count)
    if longest > 1:
        terms = _bce_logits(result.logits[:-1], x[:, 1:longest].t())  # row j: pixel j + 1
        valid = torch.arange(longest - 1, device=device)[:, None] < (starts - 1)[None, :]
        nll = (terms * valid).sum(0)
    return result.snapshots, logit, nll


def _shrinking_prefix_pass(model, x: torch.Tensor, starts: torch.Tensor, block: int):
    """``_prefix_pass`` for many images at once, for the written-out step (short calls are cheap).

    Images go ``block`` at a time, longest prefix first; the batch shrinks as images reach their
    start, whose state then stays where it is. The prefixes cost sum(starts) recurrent steps, at up
    to ``block`` sequences per step instead of a posterior chunk's few dozen images.
    """
    count = len(x)
    state = model.core.initial_state(count, x.device, x.dtype)
    logit, nll = x.new_zeros(count), x.new_zeros(count)
    run = Stepper(model).run
    order = torch.argsort(starts, descending=True, stable=True)
    for first in range(0, count, block):
        rows = order[first:first + block]
        ends = starts[rows]  # descending
        longest = int(ends[0])
        if longest == 0:
            continue
        seqs = x[rows, :longest].t()
        logits = x.new_zeros(longest, len(rows))
        running = model.core.initial_state(len(rows), x.device, x.dtype)
        cuts = sorted({int(v) for v in ends.unique()} | {0})
        for t0, t1 in zip(cuts[:-1], cuts[1:]):
            active = int((ends > t0).sum())  # the first rows: every one of them ends at t1 or later
            part = tuple(s[:, :active] for s in running) if isinstance(running, tuple) \
                else running[:, :active]
            out, part = run(seqs[t0:t1, :active], part)
            logits[t0:t1, :active] = out
            for target, source in (zip(running, part) if isinstance(running, tuple)
                                   else [(running, part)]):
                target[:, :active] = source
        _copy_state(state, running, rows, torch.arange(len(rows), device=x.device))
        columns = torch.arange(len(rows), device=x.device)
        logit[rows] = logits[(ends - 1).clamp(min=0), columns] * (ends > 0)
        if longest > 1:
            terms = _bce_logits(logits[:-1], seqs[1:])  # row j: pixel j + 1
            valid = torch.arange(longest - 1, device=x.device)[:, None] < (ends - 1)[None, :]
            nll[rows] = (terms * valid).sum(0)
    return state, logit, nll


def _state_cat(first, second):
    if first is None:
        return second
    if isinstance(first, tuple):
        return tuple(torch.cat([a, b], dim=1) for a, b in zip(first, second))
    return torch.cat([first, second], dim=1)


@dataclass
class _Joined:
    """Result of ``_joined_scan``: logits (783, B) in absolute time and optional snapshots."""

    logits: torch.Tensor
    snapshots: object = None


def _joined_scan(model, seqs: torch.Tensor, starts: torch.Tensor, state,
                 snap_times: torch.Tensor | None, time_chunk: int,
                 parents: torch.Tensor | None = None, join_at: torch.Tensor | None = None):
    """Run each sequence b of ``seqs`` (B, 784) from pixel ``starts[b]`` to pixel 782, starting
    from its ``state`` (the state after pixel starts[b] - 1), in absolute time.

    Sequences are sorted by start and join the running batch when their start comes, so the
    cost is exactly sum_b (783 - starts[b]) steps with no padding. Returns (nll (B,) of pixels
    starts[b] + 1..783, _Joined with logits[t, b] predicting pixel t + 1 (zero before the start)
    and, with ``snap_times``, the state of each sequence after pixel snap_times[b] - 1).

    Branches: a sequence with ``parents[b] >= 0`` equals sequence parents[b] before pixel
    ``join_at[b]`` (> the parent's own join); it joins there from the parent's running state, and
    its logits before that are the parent's. Its cost starts at join_at[b], its nll at starts[b].
    """
    count = len(seqs)
    last = SEQUENCE_LENGTH - 1
    run = Stepper(model).run
    join = starts if join_at is None else join_at
    order = torch.argsort(join, stable=True)
    sorted_starts, sorted_join = starts[order], join[order]
    x = seqs[order].t()  # (784, B)
    initial = state_select(state, order)
    sorted_parents = None
    if parents is not None:
        rank = torch.empty_like(order)
        rank[order] = torch.arange(count, device=order.device)
        parent = parents[order]
        sorted_parents = torch.where(parent >= 0, rank[parent.clamp(min=0)], parent)
    logits = x.new_zeros(last, count)
    cuts = {int(v) for v in sorted_join.unique()} | {last}
    cuts |= set(range(int(sorted_join[0]), last, max(1, time_chunk)))
    snaps, sorted_snaps = None, None
    if snap_times is not None:
        sorted_snaps = snap_times[order]
        cuts |= {int(v) for v in sorted_snaps.unique() if int(v) <= last}
        snaps = state_select(initial, torch.arange(count, device=x.device))  # a copy to overwrite
        at_start = torch.nonzero(sorted_snaps == sorted_join).flatten()
        if len(at_start):
            _copy_state(snaps, initial, at_start, at_start)
    cuts = sorted(c for c in cuts if c >= int(sorted_join[0]))
    active, running = 0, None
    for t0, t1 in zip(cuts[:-1], cuts[1:]):
        joined = int(torch.searchsorted(sorted_join, torch.tensor(t0, device=x.device),
                                        right=True))
        if joined > active:
            new = torch.arange(active, joined, device=x.device)
            fresh = state_select(initial, new)
            if sorted_parents is not None:
                branches = torch.nonzero(sorted_parents[new] >= 0).flatten()
                if len(branches):
                    _copy_state(fresh, running, branches, sorted_parents[new][branches])
            running = _state_cat(running, fresh)
            active = joined
        out, running = run(x[t0:t1, :active], running)
        logits[t0:t1, :active] = out
        if sorted_snaps is not None:
            hit = torch.nonzero(sorted_snaps[:active] == t1).flatten()
            if len(hit):
                _copy_state(snaps, running, hit, hit)
    if sorted_parents is not None:
        # in join order, so that a parent's logits are complete before its branches copy them
        branches = torch.nonzero(sorted_parents >= 0).flatten()
        for time in sorted_join[branches].unique().tolist():
            group = branches[sorted_join[branches] == time]
            logits[:time, group] = logits[:time, sorted_parents[group]]
    terms = _bce_logits(logits, x[1:])
    valid = torch.arange(last, device=x.device)[:, None] >= sorted_starts[None, :]
    nll_sorted = (terms * valid).sum(0)
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(count, device=x.device)
    result = _Joined(logits[:, inverse])
    if snaps is not None:
        result.snapshots = state_select(snaps, inverse)
    return nll_sorted[inverse], result


def _copy_state(target, source, target_index, source_index) -> None:
    if isinstance(target, tuple):
        for t, s in zip(target, source):
            t[:, target_index] = s[:, source_index]
    else:
        target[:, target_index] = source[:, source_index]


def _suffix_pass(model, x: torch.Tensor, starts: torch.Tensor, state, logit: torch.Tensor,
                 positions: torch.Tensor, values: torch.Tensor, time_chunk: int,
                 snap_times: torch.Tensor | None = None, tree: bool = False):
    """Score R variants of each image from pixel ``starts[i]`` to 783.

    Variant r of image i is x[i] with pixel ``positions[i, j]`` (absolute) set to
    ``values[r, j]``. All C * R sequences (image-major) run from the image's ``state`` repeated
    R times, its ``logit`` scoring pixel starts[i] (not counted for pixel 0). Returns
    (nll (C, R) of pixels max(starts[i], 1)..783, _Joined in absolute time, whose snapshots are
    taken after pixel ``snap_times[i] - 1`` when given).

    ``tree`` (``values`` = ``_filling_bits(K)``, ``starts`` = the first missing pixels m_1):
    fillings 0 and 1 start at m_1; filling f > 1 branches off filling f - 2^j at m_{j+1}, j its
    highest set bit, where they first differ, so that between m_j and m_{j+1} only 2^j distinct
    sequences run.
    """
    count, variants = len(x), len(values)
    seqs = x[:, None, :].repeat(1, variants, 1)
    seqs.scatter_(2, positions[:, None, :].expand(count, variants, -1),
                  values[None].to(x.dtype).expand(count, -1, -1))
    flat = seqs.reshape(count * variants, SEQUENCE_LENGTH)
    flat_starts = starts.repeat_interleave(variants)
    first = _bce_logits(logit.repeat_interleave(variants),
                        flat.gather(1, flat_starts[:, None])[:, 0])
    snaps = None if snap_times is None else snap_times.repeat_interleave(variants)
    parents = join_at = None
    if tree:
        fillings = torch.arange(variants, device=x.device)
        top = torch.zeros_like(fillings)  # highest set bit (0 for filling 0)
        for j in range(1, positions.shape[1]):
            top[fillings >= 2 ** j] = j
        local = torch.where(fillings > 1, fillings - 2 ** top, -1)  # 0 and 1 start at m_1
        base = (torch.arange(count, device=x.device) * variants)[:, None]
        parents = torch.where(local >= 0, base + local, -1).reshape(-1)
        join_at = torch.where(fillings > 1, positions[:, top], starts[:, None]).reshape(-1)
    nll, result = _joined_scan(model, flat, flat_starts, state_repeat(state, variants), snaps,
                               time_chunk, parents, join_at)
    nll = nll + first * (flat_starts > 0)
    return nll.view(count, variants), result


def _filling_bits(count: int) -> torch.Tensor:
    """(2^count, count) int64: bit j of filling f is (f >> j) & 1."""
    fillings = torch.arange(2 ** count)
    return (fillings[:, None] >> torch.arange(count)[None, :]) & 1


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
        bits = _filling_bits(self.positions.shape[1]).numpy()
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
        return _masked_mean(_bce(self.marginals, self.truth_bits), self.positions >= 0)

    @property
    def map_error(self) -> np.ndarray:
        """(N,) fraction of missing pixels where the most probable filling is wrong."""
        wrong = self.bits(self.map_filling) != self.truth_bits
        return _masked_mean(wrong.astype(np.float64), self.positions >= 0)

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


def _bce(probs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    probs = np.nan_to_num(np.asarray(probs, np.float64), nan=0.5)
    return binary_cross_entropy(torch.as_tensor(probs),
                                torch.as_tensor(np.maximum(targets, 0), dtype=torch.float64)
                                ).numpy()


def _masked_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.where(mask, values, 0.0).sum(axis=1) / np.maximum(mask.sum(axis=1), 1)


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="image", leave=False)


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
    positions, counts = _positions(missing, MAX_EXACT_MISSING)
    count, width = positions.shape
    log_post = np.full((count, 2 ** width), -np.inf)
    suffix = np.full((count, 2 ** width), np.inf)
    prefix = np.zeros(count)
    device = x.device
    batch_sequences = _batch_sequences(batch_sequences, model, device)
    own_starts = Stepper(model).written_out
    if own_starts:  # every image's known prefix at once, in large batches
        shared = _shrinking_prefix_pass(model, x, torch.as_tensor(positions[:, 0], device=device),
                                        batch_sequences)
    bar = _progress(count, "posterior", progress)
    for k, chunk in _chunks(counts, positions[:, 0], lambda k: batch_sequences // 2 ** k):
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
            state, logit, prefix_nll = _prefix_pass(model, xs, starts, time_chunk)
        nll, _ = _suffix_pass(model, xs, starts, state, logit, pos,
                              _filling_bits(k).to(device), time_chunk, tree=own_starts)
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


# --------------------------------------------------------------------------- Gibbs sampling


@dataclass
class GibbsResult:
    """Gibbs samples of the missing pixels (kept sweeps only) and their exact conditionals."""

    masked: np.ndarray
    positions: np.ndarray     # (N, K) -1 padded
    counts: np.ndarray
    samples: np.ndarray       # (N, sweeps kept, K) int8, -1 padded
    conditionals: np.ndarray  # (N, sweeps kept, K) p(x_m = 1 | all other pixels) when drawn
    truth: np.ndarray | None = None
    seconds: float = 0.0

    @property
    def marginals(self) -> np.ndarray:
        """(N, K) Rao-Blackwellised p(x_m = 1 | known pixels): the mean drawn conditional."""
        return np.where(self.positions >= 0, self.conditionals.mean(axis=1), np.nan)

    def frequencies(self) -> np.ndarray:
        """(N, 2^K) empirical distribution of the kept fillings (numbered as in Posterior)."""
        width = self.positions.shape[1]
        if width > 20:
            raise ConfigError(f"2^{width} fillings are too many to tabulate")
        bits = np.maximum(self.samples, 0).astype(np.int64)
        index = (bits << np.arange(width)[None, None, :]).sum(axis=2)
        out = np.zeros((len(index), 2 ** width))
        for i, row in enumerate(index):
            out[i] = np.bincount(row, minlength=2 ** width) / len(row)
        return out

    @property
    def mode_bits(self) -> np.ndarray:
        """(N, K) the most frequent kept filling (first drawn on ties), -1 padded."""
        out = np.full(self.positions.shape, -1, np.int64)
        for i, draws in enumerate(self.samples):
            values, first, counts = np.unique(draws, axis=0, return_index=True,
                                              return_counts=True)
            best = np.lexsort((first, -counts))[0]
            out[i] = values[best]
        return out

    @property
    def mode_images(self) -> np.ndarray:
        """(N, 784) images filled with the most frequent kept filling."""
        return paint(self.masked, self.positions, self.mode_bits)

    @property
    def marginal_images(self) -> np.ndarray:
        """(N, 784) the estimated p(x_m = 1 | known pixels) at the missing pixels, 0 elsewhere."""
        return paint(self.masked, self.positions, self.marginals, background=0.0)

    def summary(self) -> dict:
        out = {"images": int(len(self.counts)), "kept_sweeps": int(self.samples.shape[1]),
               "seconds": self.seconds}
        if self.truth is not None:
            valid = self.positions >= 0
            rows = np.arange(len(self.truth))[:, None]
            truth = np.where(valid, self.truth[rows, np.maximum(self.positions, 0)], -1)
            out["marginal_ce"] = float(_masked_mean(_bce(self.marginals, truth), valid).mean())
            out["map_error"] = float(_masked_mean((self.mode_bits != truth).astype(float),
                                                  valid).mean())
        return out


@inference
def gibbs_inpaint(model, masked, truth=None, sweeps: int = 20, burn_in: int = 5,
                  init: str = "random", generator: torch.Generator | None = None,
                  batch_sequences: int | None = None, time_chunk: int = TIME_CHUNK,
                  progress: bool = False) -> GibbsResult:
    """Systematic-scan Gibbs sampling of the missing pixels with exact conditionals.

    Each sweep visits the missing pixels in reading order; pixel m gets x_m = 1 with probability
    p(x_m = 1 | all other pixels) = sigmoid(S_1 - S_0), S_b = sum_{t >= m} log p(x_t | x_<t) with
    x_m = b. ``init``: 'random' (fair coin from ``generator``) or 'zeros'. The first ``burn_in``
    sweeps are dropped. Any number of missing pixels.
    """
    check_predictor(model)
    if init not in ("random", "zeros"):
        raise ConfigError(f"unknown init {init!r}: use 'random' or 'zeros'")
    if not 0 <= burn_in < sweeps:
        raise ConfigError(f"need 0 <= burn_in < sweeps, got burn_in {burn_in}, sweeps {sweeps}")
    started = time.perf_counter()
    x, missing, truth = masked_inputs(model, masked, truth)
    positions, counts = _positions(missing, None)
    count, width = positions.shape
    kept = sweeps - burn_in
    samples = np.full((count, kept, width), -1, np.int8)
    conds = np.full((count, kept, width), np.nan)
    device, dtype = x.device, x.dtype
    gen_device = generator.device if generator is not None else torch.device("cpu")
    current = x.clone()
    if init == "random":
        coins = torch.rand(x.shape, generator=generator, device=gen_device, dtype=dtype)
        current = torch.where(torch.as_tensor(missing, device=device),
                              (coins.to(device) < 0.5).to(dtype), current)
    batch_sequences = _batch_sequences(batch_sequences, model, device)
    bar = _progress(count, "gibbs", progress)
    for k, chunk in _chunks(counts, positions[:, 0], lambda k: batch_sequences // 2):
        idx = torch.as_tensor(chunk, device=device)
        xs = current[idx]
        columns = torch.arange(len(chunk), device=device)
        pos = torch.as_tensor(positions[chunk, :k], device=device)
        state0, logit0, _ = _prefix_pass(model, xs, pos[:, 0], time_chunk)
        branch_values = torch.tensor([[0], [1]], device=device)
        for sweep in range(sweeps):
            state, logit = state0, logit0
            for j in range(k):
                here = pos[:, j]
                following = pos[:, j + 1] if j + 1 < k else None
                nll, result = _suffix_pass(model, xs, here, state, logit, here[:, None],
                                           branch_values, time_chunk, snap_times=following)
                cond = torch.sigmoid(nll[:, 0] - nll[:, 1])
                u = torch.rand(len(chunk), generator=generator, device=gen_device, dtype=dtype)
                bit = (u.to(device) < cond).long()
                xs[columns, here] = bit.to(dtype)
                if j + 1 < k:
                    chosen = 2 * columns + bit
                    state = state_select(result.snapshots, chosen)
                    logit = result.logits[following - 1, chosen]
                if sweep >= burn_in:
                    samples[chunk, sweep - burn_in, j] = bit.cpu().numpy()
                    conds[chunk, sweep - burn_in, j] = cond.double().cpu().numpy()
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()
    return GibbsResult(np.where(missing, MISSING, x.cpu().numpy()).astype(np.float32),
                       positions, counts, samples, conds, truth, time.perf_counter() - started)


def compare_gibbs_to_exact(model, masked, truth=None, sweeps: int = 20, burn_in: int = 5,
                           seed: int = 0, **kwargs) -> dict:
    """Gibbs against exact enumeration on the same images (|M| <= 12): both summaries, plus

    * ``marginal_abs_error``: mean |Gibbs (Rao-Blackwellised) marginal - exact marginal|;
    * ``total_variation``: mean over images of TV(empirical Gibbs fillings, exact posterior);
    * ``mode_equals_map``: fraction of images whose most frequent Gibbs filling is the exact MAP;
    * timings of both (seconds).
    """
    exact = exact_posterior(model, masked, truth, **kwargs)
    gibbs = gibbs_inpaint(model, masked, truth, sweeps=sweeps, burn_in=burn_in,
                          generator=torch.Generator().manual_seed(seed), **kwargs)
    valid = exact.positions >= 0
    abs_error = _masked_mean(np.abs(np.nan_to_num(gibbs.marginals - exact.marginals)), valid)
    tv = 0.5 * np.abs(gibbs.frequencies() - exact.posterior).sum(axis=1)
    mode = np.where(valid, gibbs.mode_bits, 0)
    mode_index = (mode << np.arange(mode.shape[1])[None, :]).sum(axis=1)
    return {"exact": exact.summary(), "gibbs": gibbs.summary(), "sweeps": sweeps,
            "burn_in": burn_in, "marginal_abs_error": float(abs_error.mean()),
            "total_variation": float(tv.mean()),
            "mode_equals_map": float((mode_index == exact.map_filling).mean())}


__all__ = ["exact_posterior", "Posterior", "gibbs_inpaint", "GibbsResult",
           "compare_gibbs_to_exact", "masked_inputs", "paint", "past_only_cross_entropy",
           "MAX_EXACT_MISSING", "MISSING"]
