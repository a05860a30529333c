"""The recurrent engine behind in-painting: score many fillings of an image's missing pixels.

Fillings of an image agree before its first missing pixel m_1 and, in pairs, up to where they
first differ, so running each filling over all 784 pixels wastes most of the work. The engine runs
the known prefix x_0..x_{s - 1} once per image, repeats its state, and runs the fillings from pixel
s to the end as one batch, so an image costs at most s + 2^K (784 - s) recurrent steps instead of
2^K * 784. Images go in batches sorted by m_1. On CPU an LSTM runs the written-out step
(``generate.Stepper.run``), for which short calls are cheap: s is the image's own m_1, all images'
prefixes run first in large batches that shrink as images reach their s
(``shrinking_prefix_pass``), and the fillings branch off each other where they first differ
(filling f > 1 joins at m_{j+1}, j its highest set bit, from the running state of f - 2^j), so only
2^j distinct sequences run between m_j and m_{j+1}. Otherwise s is the batch's smallest m_1 (the
few known pixels between s and an image's own m_1 are scored alike in every filling, exact), so
that the fused recurrent call runs a few long chunks.

``inpaint.exact_posterior`` enumerates the fillings with it; ``gibbs.gibbs_inpaint`` scores the two
values of one pixel at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from .errors import ConfigError
from .generate import Stepper, scan, state_repeat, state_select
from .models import SEQUENCE_LENGTH

# Sequences (images x branches) per recurrent batch of the posterior engines, by device and cell.
# benchmarks/bench_batch.py (one thread, 1x128, 300 windows): a CPU LSTM runs the written-out step
# (``Stepper.run``), flat from 256 to 2048 sequences with 1024 fastest (its matmul nears the core's
# peak), 64 about 55 % slower; the GRU's fused call is flat from 256 on, 64 about 60 % slower.
# A GPU wants large batches.
BATCH_SEQUENCES = {"cpu": {"lstm": 1024, "gru": 256}, "cuda": {"lstm": 4096, "gru": 4096}}


def sequences_per_batch(value: int | None, model, device: torch.device) -> int:
    """``value`` if given (>= 1), else ``BATCH_SEQUENCES`` for the device and cell."""
    if value is not None:
        if value < 1:
            raise ConfigError(f"batch_sequences must be >= 1, got {value}")
        return int(value)
    by_cell = BATCH_SEQUENCES.get(device.type, BATCH_SEQUENCES["cpu"])
    return by_cell[model.core.arch.cell]


def missing_positions(missing: np.ndarray, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(positions (N, K) -1 padded, counts (N,)) of each image's missing pixels in reading order.

    ConfigError for an image with none, or with more than ``limit``.
    """
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


def image_chunks(counts: np.ndarray, first: np.ndarray, per_chunk):
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


def prefix_pass(model, x: torch.Tensor, starts: torch.Tensor, time_chunk: int):
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


def shrinking_prefix_pass(model, x: torch.Tensor, starts: torch.Tensor, block: int):
    """``prefix_pass`` for many images at once, for the written-out step (short calls are cheap).

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


def suffix_pass(model, x: torch.Tensor, starts: torch.Tensor, state, logit: torch.Tensor,
                 positions: torch.Tensor, values: torch.Tensor, time_chunk: int,
                 snap_times: torch.Tensor | None = None, tree: bool = False):
    """Score R variants of each image from pixel ``starts[i]`` to 783.

    Variant r of image i is x[i] with pixel ``positions[i, j]`` (absolute) set to
    ``values[r, j]``. All C * R sequences (image-major) run from the image's ``state`` repeated
    R times, its ``logit`` scoring pixel starts[i] (not counted for pixel 0). Returns
    (nll (C, R) of pixels max(starts[i], 1)..783, _Joined in absolute time, whose snapshots are
    taken after pixel ``snap_times[i] - 1`` when given).

    ``tree`` (``values`` = ``filling_bits(K)``, ``starts`` = the first missing pixels m_1):
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


def filling_bits(count: int) -> torch.Tensor:
    """(2^count, count) int64: bit j of filling f is (f >> j) & 1."""
    fillings = torch.arange(2 ** count)
    return (fillings[:, None] >> torch.arange(count)[None, :]) & 1


def image_progress(total: int, desc: str, enabled: bool):
    """A tqdm bar counting images, or None when disabled (batch runs stay quiet)."""
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="image", leave=False)


__all__ = ["BATCH_SEQUENCES", "sequences_per_batch", "missing_positions", "image_chunks",
           "prefix_pass", "shrinking_prefix_pass", "suffix_pass", "filling_bits", "image_progress"]
