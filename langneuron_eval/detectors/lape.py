"""LAPE (Tang et al., ACL 2024): lowest entropy of the per-language activation probabilities.

Rule (docs/methods.md §2; RUCAIBox identify.py):

1. p[k, i, j] = positive_counts / n_tokens; p' = p / ||p||_1 over languages (0/0 -> 0);
   LAPE = -sum_k p'_k ln p'_k (0 ln 0 = 0).
2. tau_f = kthvalue of all K*L*N probabilities at k = round(total * filter_rate); neurons with no
   language above tau_f get LAPE = +inf and are never selected.
3. keep the round(L*N * top_rate) finite-LAPE neurons with the lowest LAPE (ties: lower flat index).
4. tau_b likewise with activation_bar_ratio; each kept neuron goes to every language with p > tau_b.

``per_language_quota=true`` replaces step 3-4 by a per-language quota (see :class:`LapeParams`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from langneuron_eval.core.stats import ActivationStats
from langneuron_eval.detectors.base import DetectionResult, Detector, check_rate
from langneuron_eval.detectors.registry import register_detector
from langneuron_eval.detectors.scoring import (
    kth_threshold,
    lape_entropy,
    lowest_k,
    snap,
    to_units,
    unit_probs,
)


@dataclass
class LapeParams:
    """LAPE parameters; defaults are the reference code's (archive names ``...0.01.0.95.0.95``)."""

    top_rate: float = field(default=0.01, metadata={"help": "fraction of all L*N neurons to keep (per language with the quota)"})
    filter_rate: float = field(default=0.95, metadata={"help": "quantile of pooled probabilities a neuron must exceed in some language"})
    activation_bar_ratio: float = field(default=0.95, metadata={"help": "quantile a language's probability must exceed to get the neuron"})
    per_language_quota: bool = field(default=False, metadata={
        "help": "select top_rate*L*N neurons per language among neurons whose largest probability is that language's"})

    def __post_init__(self) -> None:
        check_rate("top_rate", self.top_rate)
        check_rate("filter_rate", self.filter_rate)
        check_rate("activation_bar_ratio", self.activation_bar_ratio)


@dataclass
class LapeScores:
    """Intermediate quantities, reused by the random baseline and the benchmarks."""

    probs: torch.Tensor  # [U, K] float32
    entropy: torch.Tensor  # [U] float32 after snapping, +inf where filtered out
    tau_filter: float
    tau_bar: float


def lape_scores(stats: ActivationStats, params: LapeParams) -> LapeScores:
    p = unit_probs(stats)  # [U, K]
    tau_f = kth_threshold(p, params.filter_rate)
    tau_b = kth_threshold(p, params.activation_bar_ratio)
    ent = snap(lape_entropy(p))  # [U]
    passes = (p > tau_f).any(dim=1)  # [U]
    ent = torch.where(passes, ent, torch.full_like(ent, float("inf")))
    return LapeScores(p, ent, tau_f, tau_b)


@register_detector("lape")
class LapeDetector(Detector):
    """LAPE: lowest activation-probability entropy (Tang et al. 2024), reference-code rule by default."""

    name = "lape"
    Params = LapeParams

    def detect(self, stats: ActivationStats, params: LapeParams) -> DetectionResult:
        sc = lape_scores(stats, params)
        U, K = sc.probs.shape
        N = stats.intermediate_size
        n = round(U * params.top_rate)
        above_bar = sc.probs > sc.tau_bar  # [U, K]
        langs: dict[str, list[tuple[int, int]]] = {}
        extra = {"tau_filter": sc.tau_filter, "tau_bar": sc.tau_bar, "n_target": n,
                 "n_passing_filter": int(torch.isfinite(sc.entropy).sum())}
        if not params.per_language_quota:
            sel = lowest_k(sc.entropy, n)  # [n'] flat indices
            members = above_bar[sel]  # [n', K]
            for k, lang in enumerate(stats.languages):
                langs[lang] = to_units(sel[members[:, k]], N)
            extra["n_selected"] = int(sel.numel())
            extra["n_unassigned"] = int((~members.any(dim=1)).sum())
        else:
            # a neuron competes for each language that attains its maximum probability (so ties in the
            # maximum do not depend on the language order) and only where it would be assigned (p > tau_b)
            pmax = sc.probs.max(dim=1, keepdim=True).values  # [U, 1]
            candidates = (sc.probs == pmax) & above_bar  # [U, K]
            for k, lang in enumerate(stats.languages):
                sel = lowest_k(sc.entropy, n, eligible=candidates[:, k])
                langs[lang] = to_units(sel, N)
            extra["n_selected_per_language"] = {lang: len(u) for lang, u in langs.items()}
        return DetectionResult(langs, extra)
