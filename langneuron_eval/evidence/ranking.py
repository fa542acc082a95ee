"""Which leaderboard entries are tied with the leader, and corrections for many comparisons.

Rule ``overlap`` (the default, what a reader can check by eye): an entry is tied with the leader when its
interval overlaps the leader's. For two equally wide 95% intervals this is a test at about the 0.6% level, so it
errs towards "tied": a rank that is not marked tied is a difference one can cite. Rule ``test``: one-sided z test
of "leader better than entry" from the intervals' standard errors, Holm-corrected over the entries compared.

Several settings of one detector: the best of S settings is biased upward. Either rank one declared setting per
detector, or give each setting's interval at :func:`simultaneous_confidence` (Bonferroni), so that all S
intervals hold together and the best one's interval is still valid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from langneuron_eval.errors import LangNeuronError
from langneuron_eval.evidence.intervals import Interval, check_confidence

TIE_RULES = ("overlap", "test")


def _as_array(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    p = np.asarray(p_values, dtype=float).ravel()
    if ((p < 0) | (p > 1)).any():
        raise LangNeuronError("p-values must lie in [0, 1]")
    return p


def bonferroni(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Bonferroni-adjusted p-values: ``min(1, m p)``, m = number of non-``nan`` p-values."""
    p = _as_array(p_values)
    return np.minimum(1.0, p * np.count_nonzero(~np.isnan(p)))


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error <= alpha under any dependence); ``nan`` kept."""
    p = _as_array(p_values)
    out = np.full(p.shape, math.nan)
    idx = np.flatnonzero(~np.isnan(p))
    order = idx[np.argsort(p[idx], kind="stable")]
    m = order.size
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])  # [m], step-down
    out[order] = np.minimum(1.0, adjusted)
    return out


def simultaneous_confidence(confidence: float, n_settings: int) -> float:
    """Per-interval confidence so that ``n_settings`` intervals hold together at ``confidence`` (Bonferroni)."""
    if int(n_settings) < 1:
        raise LangNeuronError(f"the number of settings must be at least 1, got {n_settings!r}")
    return 1.0 - (1.0 - check_confidence(confidence)) / int(n_settings)


@dataclass(frozen=True)
class Ties:
    """``tied[i]``: True for the leader and entries not shown different from it, None where it cannot be told."""

    leader: int | None
    tied: list[bool | None]
    p_values: list[float]  # rule "test": Holm-adjusted one-sided p of "leader better"; else nan
    rule: str


def _leader(scores: Sequence[Interval], higher_is_better: bool) -> int | None:
    values = [s.value if higher_is_better else -s.value for s in scores]
    finite = [i for i, v in enumerate(values) if not math.isnan(v)]
    return max(finite, key=lambda i: values[i]) if finite else None


def ties_with_leader(scores: Sequence[Interval], rule: str = "overlap", higher_is_better: bool = True,
                     alpha: float = 0.05) -> Ties:
    """Mark the entries tied with the leader (the best value) by ``rule`` (see the module docstring)."""
    if rule not in TIE_RULES:
        raise LangNeuronError(f"tie rule must be one of {', '.join(TIE_RULES)}, got {rule!r}")
    lead = _leader(scores, higher_is_better)
    n = len(scores)
    if lead is None:
        return Ties(None, [None] * n, [math.nan] * n, rule)
    sign = 1.0 if higher_is_better else -1.0
    best = scores[lead]
    tied: list[bool | None] = [None] * n
    raw = np.full(n, math.nan)
    for i, s in enumerate(scores):
        if i == lead or math.isnan(s.value) or not (s.defined and best.defined):
            continue
        if rule == "overlap":
            tied[i] = bool(s.high >= best.low) if higher_is_better else bool(s.low <= best.high)
        else:
            se = math.hypot(s.se, best.se)
            gap = sign * (best.value - s.value)
            raw[i] = float(stats.norm.sf(gap / se)) if se > 0 else float(gap <= 0)
    adjusted = holm(raw) if rule == "test" else raw
    if rule == "test":
        tied = [None if math.isnan(q) else bool(q >= alpha) for q in adjusted]
    tied[lead] = True
    return Ties(lead, tied, adjusted.tolist(), rule)
