"""Average precision of every unit (Kojima et al.), in memory and on sentence means larger than memory.

The median/pNN forcing values, computed the same way, are in core/sentence_store.py.

The per-sentence means of a 7B model over Kojima et al.'s corpus are ~8.5 GB in float32, those of a 70B
model ~55 GB. Both quantities are computed unit by unit, so they are computed here on ``[S, u]`` blocks
of consecutive units read from a :class:`~langneuron_eval.core.sentence_store.SentenceMeansReader`
(a memory-mapped file or an in-memory tensor), with ``u`` as large as a memory budget allows:

* AP: each block goes through :func:`~langneuron_eval.detectors.kojima.average_precision`, the
  in-memory kernel itself, in the in-memory path's own chunks of units, so the result is the in-memory
  result bit for bit; only how many of those chunks are read at a time changes.

Budget accounting (:class:`ChunkPlan`): a fixed part (the ``[K, U]`` AP result, the detector's ranking of
``U`` scores, the reader's mapped rows, the kernel's work arrays for one of its chunks) plus 4 bytes per
value of a block. The kernel's peak is up to ~52 bytes per value of its chunk (``tracemalloc`` on numpy's
allocations: argsort indices, sorted copy, tie-group ends, admission ranks, put_along_axis indices), see
:data:`KERNEL_BYTES_PER_VALUE`. What the budget does not cover is what the process holds
anyway: the interpreter, torch and the count statistics.
"""

from __future__ import annotations

import numpy as np
import torch

from langneuron_eval.core.sentence_store import (
    ChunkPlan,
    SentenceMeansReader,
    check_finite,
    default_memory_budget,
    reader_bytes,
    too_small,
)
from langneuron_eval.errors import LangNeuronError

# elements of the in-memory kernel's [units, sentences] chunk; bounds its work arrays to a few hundred MB
CHUNK_ELEMENTS = 1 << 22

# the AP kernel's work arrays for a chunk of u units: at most 52 B * S * u + 128 B * S + 4 KiB (tracemalloc over
# S = 20..6000, u = 1..3000, 1..6 classes, with and without ties: every peak within 95% of this)
KERNEL_BYTES_PER_VALUE = 52
KERNEL_BYTES_PER_SENTENCE = 128
KERNEL_BYTES_FIXED = 4096
SLACK_BYTES = 1 << 17  # small temporaries: the finiteness check's buffer, unit index ranges
BLOCK_BYTES_PER_VALUE = 4  # the float32 block read from the store
RANK_BYTES_PER_UNIT = 48  # the detector's ranking of one language's U scores (float32 key, masks, indices)


def average_precision(scores: torch.Tensor, labels: torch.Tensor, num_classes: int,
                      chunk_units: int = 0) -> torch.Tensor:
    """AP of every unit (column) for every class as positive vs the rest, equal to sklearn's.

    Each positive sentence contributes the precision at the end of its tie group (the threshold that
    admits it), AP = mean over positives. Per chunk of units the scores are sorted once and every
    sentence gets the position of its tie group's end in its unit's order, so a class then only needs
    its own P sentences (a [u, P] sort) instead of a pass over all S sentences.

    Args:
        scores: ``[S, U]`` per-sentence scores.
        labels: ``[S]`` int64 class of each sentence, in ``[0, num_classes)``.
        num_classes: K.
        chunk_units: units per chunk (0: about 4M scores per chunk).

    Returns:
        ``[K, U]`` float64 AP; NaN for a class with no positive sentence.
    """
    S, U = scores.shape
    K = num_classes
    out = torch.full((K, U), float("nan"), dtype=torch.float64)
    if S == 0 or U == 0:
        return out
    members = [torch.nonzero(labels == k).flatten().numpy() for k in range(K)]  # sentence ids per class
    step = chunk_units or max(1, CHUNK_ELEMENTS // S)
    for c0 in range(0, U, step):
        c1 = min(U, c0 + step)
        u = c1 - c0
        neg = np.negative(scores[:, c0:c1].numpy().T, order="C")  # [u, S] -score: ascending = descending score
        # numpy's SIMD (arg)sort is several times faster than torch.sort here; the order within ties is
        # irrelevant because only the ends of tie groups are used
        order = np.argsort(neg, axis=1)  # [u, S]
        srt = np.sort(neg, axis=1)  # [u, S] = neg in that order (cheaper than gathering)
        is_end = np.ones((u, S), dtype=bool)  # last position of each run of equal scores
        np.not_equal(srt[:, :-1], srt[:, 1:], out=is_end[:, :-1])
        pos = np.arange(1, S + 1)
        if is_end.all():
            end_pos = np.broadcast_to(pos, (u, S))
        else:  # 1-based end of each position's tie group: reverse running minimum of the end positions
            end_pos = np.minimum.accumulate(np.where(is_end, pos, S)[:, ::-1], axis=1)[:, ::-1]
        # admit[u, s] = number of sentences scoring >= sentence s = position of the threshold admitting it
        admit = np.empty((u, S), dtype=np.int64)
        np.put_along_axis(admit, order, end_pos, axis=1)
        del neg, order, srt, is_end, end_pos
        for k, idx in enumerate(members):
            P = idx.size
            if P == 0:
                continue
            e = np.sort(admit[:, idx], axis=1)  # [u, P] admission positions of the positives, ascending
            # true positives at a positive's threshold = positives admitted at or before it: the 1-based
            # index of the last positive with the same admission position
            is_last = np.ones(e.shape, dtype=bool)
            np.not_equal(e[:, :-1], e[:, 1:], out=is_last[:, :-1])
            j = np.arange(1, P + 1)
            if is_last.all():
                tp = j
            else:
                tp = np.minimum.accumulate(np.where(is_last, j, P)[:, ::-1], axis=1)[:, ::-1]
            out[k, c0:c1] = torch.from_numpy((tp / e).sum(axis=1) / P)
    return out


def plan_ap_chunks(num_sentences: int, num_units: int, num_classes: int, budget: int, itemsize: int = 4,
                   kernel_units: int = 0) -> ChunkPlan:
    """Block and kernel sizes of :func:`average_precision_out_of_core` for ``budget`` bytes.

    The kernel runs on the in-memory path's chunks (``CHUNK_ELEMENTS // S`` units, blocks being
    whole multiples of them), which makes the result bit-identical to that path: numpy's row sums in the
    kernel depend on the chunk's shape in the last bits. Only a budget too small for one such chunk gets
    smaller kernel calls (``identical=False``: equal to ~1e-16).
    """
    S, U = num_sentences, num_units
    what = f"kojima_ap on {S} sentences x {U} units"
    fixed = (8 * num_classes * U + RANK_BYTES_PER_UNIT * U  # AP result, the detector's ranking
             + reader_bytes(S, U, itemsize) + 64 * S + SLACK_BYTES  # mapped rows, labels and class members
             + KERNEL_BYTES_PER_SENTENCE * S + KERNEL_BYTES_FIXED)
    block = BLOCK_BYTES_PER_VALUE * S  # per unit of a block
    step = min(U, kernel_units or max(1, CHUNK_ELEMENTS // max(1, S)))  # the in-memory path's chunk
    kernel = KERNEL_BYTES_PER_VALUE * S * step
    if U == 0 or S == 0:
        return ChunkPlan(budget, fixed, block, U, max(1, U), max(1, step))
    fits = (budget - fixed - kernel) // block // step * step  # whole in-memory chunks per block
    if fits >= step:
        return ChunkPlan(budget, fixed + kernel, block, U, min(U, fits), step)
    per_unit = block + KERNEL_BYTES_PER_VALUE * S  # smaller kernel calls: one per block
    units = (budget - fixed) // per_unit
    if units < 1:
        raise too_small(what, budget, fixed + per_unit, fixed, per_unit)
    return ChunkPlan(budget, fixed, per_unit, U, int(units), int(units), identical=False)


# ---------------------------------------------------------------------- computations
def average_precision_out_of_core(source: SentenceMeansReader, labels: torch.Tensor, num_classes: int,
                                  budget: int | None = None, plan: ChunkPlan | None = None, kernel_units: int = 0
                                  ) -> tuple[torch.Tensor, ChunkPlan]:
    """AP of every unit for every class (``[K, U]`` float64, NaN for a class without sentences), block by block.

    Equal to ``average_precision(means.reshape(S, U), labels, K)`` bit for bit when
    ``plan.identical`` (the same kernel on the same chunks), else to ~1e-16.

    Args:
        source: the ``[S, L, N]`` sentence means.
        labels: ``[S]`` int64 class of each sentence.
        budget: bytes for the computation (default: :func:`default_memory_budget`); ignored with ``plan``.
        plan: an explicit plan (tests, benchmarks).
        kernel_units: units per kernel call (0: the in-memory path's ``CHUNK_ELEMENTS // S``).
    """
    S, U = source.num_sentences, source.num_units
    if tuple(labels.shape) != (S,):
        raise LangNeuronError(f"{labels.shape[0]} sentence labels for {S} sentences")
    plan = plan or plan_ap_chunks(S, U, num_classes, default_memory_budget() if budget is None else budget,
                                  source.itemsize, kernel_units)
    out = torch.full((num_classes, U), float("nan"), dtype=torch.float64)  # [K, U]
    if S == 0:
        return out, plan
    for start, block in source.iter_blocks(plan.chunk_units):  # [S, u] float32
        u = block.shape[1]
        check_finite(block, np.arange(start, start + u), None, source.shape[2])
        out[:, start: start + u] = average_precision(torch.from_numpy(block), labels, num_classes,
                                                            chunk_units=plan.kernel_units)
        del block
    return out, plan
