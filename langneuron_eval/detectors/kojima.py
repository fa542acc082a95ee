"""Kojima et al. (NAACL 2024): units whose per-sentence mean activation best (or least) separates a language.

Rule (docs/methods.md §3.1-3.3): for each language as positive and all other sentences as negative,
AP_u = sklearn ``average_precision_score(y_true, sentence_means[:, u])`` -- no interpolation, tied
scores form one threshold. The ``k_top`` units with the highest AP and the ``k_bottom`` with the
lowest AP (among the rest) form the language's set (ties: lower index). The forcing value of every
unit is the median of its sentence means over the language's sentences, which the runner stores as
``values[lang]["median"]``.

Scope (docs/methods.md §3.5): the units are the FFN units at the statistics' site, not the output channel of
every ``nn.Linear`` as in the reference code; counts and results are therefore not comparable one to
one with the paper's (2,000 of ~1.36M units there).

AP is computed for all units at once, chunk by chunk: each unit's scores are sorted once, then for
every language AP = (1/P) * sum over positive sentences of the precision at the end of the
sentence's tie group -- the same quantity sklearn sums as sum_n (R_n - R_{n-1}) P_n over thresholds.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from langneuron_eval.core.stats import ActivationStats
from langneuron_eval.detectors.base import DetectionResult, Detector
from langneuron_eval.detectors.registry import register_detector
from langneuron_eval.detectors.scoring import highest_k, lowest_k, snap, to_units
from langneuron_eval.errors import LangNeuronError

# elements of the [units, sentences] chunk; bounds peak memory to a few hundred MB
CHUNK_ELEMENTS = 1 << 22


@dataclass
class KojimaParams:
    """Kojima et al. parameters; defaults are the paper's ``expertise_limited_2000_both``."""

    k_top: int = field(default=1000, metadata={"help": "units with the highest AP per language"})
    k_bottom: int = field(default=1000, metadata={"help": "units with the lowest AP per language"})
    max_unit_fraction: float = field(default=0.5, metadata={
        "help": "if k_top+k_bottom exceed this fraction of all units, both are scaled down (with a warning)"})
    chunk_units: int = field(default=0, metadata={"help": "units per AP chunk; 0 = automatic (memory bound)"})

    def __post_init__(self) -> None:
        if self.k_top < 0 or self.k_bottom < 0:
            raise LangNeuronError(f"k_top and k_bottom must be >= 0, got {self.k_top} and {self.k_bottom}")
        if not 0 < self.max_unit_fraction <= 1:
            raise LangNeuronError(f"max_unit_fraction must be in (0, 1], got {self.max_unit_fraction}")
        if self.chunk_units < 0:
            raise LangNeuronError(f"chunk_units must be >= 0, got {self.chunk_units}")


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


def scaled_counts(k_top: int, k_bottom: int, n_units: int, max_fraction: float) -> tuple[int, int]:
    """Scale ``k_top``/``k_bottom`` down proportionally when together they exceed ``max_fraction`` of the units."""
    cap = int(n_units * max_fraction)
    total = k_top + k_bottom
    if total <= cap:
        return k_top, k_bottom
    top = k_top * cap // total
    bottom = min(k_bottom * cap // total, cap - top)
    warnings.warn(f"kojima_ap: {total} units requested per language (top {k_top} + bottom {k_bottom}) but the "
                  f"statistics have only {n_units} units; using top {top} + bottom {bottom} "
                  f"({max_fraction:g} of the units) instead", stacklevel=3)
    return top, bottom


@register_detector("kojima_ap")
class KojimaAPDetector(Detector):
    """Kojima et al. 2024: top-k and bottom-k average precision of per-sentence mean activations."""

    name = "kojima_ap"
    Params = KojimaParams

    def detect(self, stats: ActivationStats, params: KojimaParams) -> DetectionResult:
        if stats.sentence_means is None or stats.sentence_lang is None:
            raise LangNeuronError("kojima_ap needs per-sentence mean activations, which these statistics lack; "
                                  "re-record them with `langneuron record --sentence-means`")
        K, L, N = stats.num_languages, stats.num_layers, stats.intermediate_size
        S = int(stats.sentence_lang.shape[0])
        U = L * N
        k_top, k_bottom = scaled_counts(params.k_top, params.k_bottom, U, params.max_unit_fraction)
        ap = average_precision(stats.sentence_means.reshape(S, U), stats.sentence_lang, K, params.chunk_units)  # [K, U]
        langs: dict[str, list[tuple[int, int]]] = {}
        detail: dict[str, dict[str, list]] = {}
        for k, lang in enumerate(stats.languages):
            if torch.isnan(ap[k]).all():
                warnings.warn(f"kojima_ap: no sentences of {lang!r} in the statistics; its neuron set is empty",
                              stacklevel=2)
                langs[lang] = []
                continue
            key = snap(ap[k])  # [U] float32 ranking key
            top = highest_k(key, k_top)
            rest = torch.ones(U, dtype=torch.bool)
            rest[top] = False
            bottom = lowest_k(key, k_bottom, eligible=rest)
            langs[lang] = to_units(torch.cat([top, bottom]), N)
            detail[lang] = {
                "top": [list(u) for u in to_units(top, N)], "top_ap": ap[k, top].tolist(),
                "bottom": [list(u) for u in to_units(bottom, N)], "bottom_ap": ap[k, bottom].tolist(),
            }
        extra = {
            "k_top": k_top, "k_bottom": k_bottom, "n_units": U, "n_sentences": S,
            "sentences_per_language": dict(zip(stats.languages, torch.bincount(stats.sentence_lang, minlength=K).tolist())),
            "unit_scope": "FFN units at the statistics' site only, not every nn.Linear output as in the "
                          "reference code (docs/methods.md §3.5)",
            "forcing_value": "values[lang]['median']: median of the unit's sentence means over the language's sentences",
            "units": detail,
        }
        return DetectionResult(langs, extra)
