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

Mixture-of-experts statistics (docs/moe.md): a routed-expert unit's sentence mean is taken over the
sentence's tokens routed to its expert, 0 when none was; shared-expert and dense units as above; the
padding beyond a layer's width is never selected.

AP is computed by :mod:`langneuron_eval.detectors.out_of_core`, block by block of units read from the
per-sentence means (in memory or a memory-mapped file) within ``--memory-budget``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch

from langneuron_eval.core.moe_units import moe_units
from langneuron_eval.core.stats import ActivationStats
from langneuron_eval.detectors.base import DetectionResult, Detector
from langneuron_eval.detectors.out_of_core import (
    CHUNK_ELEMENTS as CHUNK_ELEMENTS,  # re-exported: its old home
)
from langneuron_eval.detectors.out_of_core import average_precision as average_precision
from langneuron_eval.detectors.out_of_core import average_precision_out_of_core
from langneuron_eval.detectors.registry import register_detector
from langneuron_eval.detectors.scoring import highest_k, lowest_k, snap, to_units
from langneuron_eval.errors import LangNeuronError


@dataclass
class KojimaParams:
    """Kojima et al. parameters; defaults are the paper's ``expertise_limited_2000_both``."""

    k_top: int = field(default=1000, metadata={"help": "units with the highest AP per language"})
    k_bottom: int = field(default=1000, metadata={"help": "units with the lowest AP per language"})
    max_unit_fraction: float = field(default=0.5, metadata={
        "help": "if k_top+k_bottom exceed this fraction of all units, both are scaled down (with a warning)"})
    chunk_units: int = field(default=0, metadata={
        "help": "units per AP kernel call; 0 = automatic (the same chunks at any --memory-budget that holds one)"})

    def __post_init__(self) -> None:
        if self.k_top < 0 or self.k_bottom < 0:
            raise LangNeuronError(f"k_top and k_bottom must be >= 0, got {self.k_top} and {self.k_bottom}")
        if not 0 < self.max_unit_fraction <= 1:
            raise LangNeuronError(f"max_unit_fraction must be in (0, 1], got {self.max_unit_fraction}")
        if self.chunk_units < 0:
            raise LangNeuronError(f"chunk_units must be >= 0, got {self.chunk_units}")


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
        moe = moe_units(stats.fingerprint)  # MoE: padding beyond a layer's width is no unit (docs/moe.md)
        eligible = None if moe is None else moe.real_units().reshape(-1)  # [U] bool
        n_units = U if eligible is None else int(eligible.sum())
        k_top, k_bottom = scaled_counts(params.k_top, params.k_bottom, n_units, params.max_unit_fraction)
        ap, _ = average_precision_out_of_core(stats.sentence_reader(), stats.sentence_lang, K,
                                              kernel_units=params.chunk_units)  # [K, U], within the memory budget
        langs: dict[str, list[tuple[int, int]]] = {}
        detail: dict[str, dict[str, list]] = {}
        for k, lang in enumerate(stats.languages):
            if torch.isnan(ap[k]).all():
                warnings.warn(f"kojima_ap: no sentences of {lang!r} in the statistics; its neuron set is empty",
                              stacklevel=2)
                langs[lang] = []
                continue
            key = snap(ap[k])  # [U] float32 ranking key
            top = highest_k(key, k_top, eligible)
            rest = torch.ones(U, dtype=torch.bool) if eligible is None else eligible.clone()
            rest[top] = False
            bottom = lowest_k(key, k_bottom, eligible=rest)
            langs[lang] = to_units(torch.cat([top, bottom]), N)
            detail[lang] = {
                "top": [list(u) for u in to_units(top, N)], "top_ap": ap[k, top].tolist(),
                "bottom": [list(u) for u in to_units(bottom, N)], "bottom_ap": ap[k, bottom].tolist(),
            }
        extra = {
            "k_top": k_top, "k_bottom": k_bottom, "n_units": n_units, "n_sentences": S,
            "sentences_per_language": dict(zip(stats.languages, torch.bincount(stats.sentence_lang, minlength=K).tolist())),
            "unit_scope": "FFN units at the statistics' site only, not every nn.Linear output as in the "
                          "reference code (docs/methods.md §3.5)",
            "forcing_value": "values[lang]['median']: median of the unit's sentence means over the language's sentences",
            "units": detail,
        }
        return DetectionResult(langs, extra)
