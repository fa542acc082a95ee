"""Intervals for rates, means and gains, and the bootstrap replicates that other figures are combined from.

Every figure the harness publishes is a point value with an :class:`Interval` at a stated confidence. Rates of
binary outcomes (``lang_rate``: one language-ID verdict per generation) get Wilson's score interval, which stays
inside [0, 1] and is never "100 ± 0" at small n; a *gain* (steered minus unsteered rate on the same prompts) gets
Newcombe's hybrid score interval for paired proportions, which uses the correlation of the two runs. Continuous
per-generation metrics get a t interval. See docs/statistics.md for why each fits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from langneuron_eval.errors import LangNeuronError

DEFAULT_CONFIDENCE = 0.95
RATE_METHODS = ("wilson", "exact")  # exact = Clopper-Pearson


def check_confidence(confidence: float) -> float:
    """``confidence`` as a float strictly between 0 and 1 (one clear line otherwise)."""
    c = float(confidence)
    if not 0.0 < c < 1.0:
        raise LangNeuronError(f"confidence must be between 0 and 1 (exclusive), got {confidence!r}")
    return c


def z_quantile(confidence: float) -> float:
    """Two-sided normal quantile: 1.96 for 0.95."""
    return float(stats.norm.ppf(0.5 + check_confidence(confidence) / 2.0))


@dataclass(frozen=True)
class Interval:
    """A point value with a two-sided interval; ``nan`` bounds mean that the data cannot give one."""

    value: float
    low: float
    high: float
    confidence: float = DEFAULT_CONFIDENCE
    method: str = ""
    n: int | None = None

    @property
    def se(self) -> float:
        """Standard error implied by the interval under a normal approximation: half-width / z."""
        return (self.high - self.low) / (2.0 * z_quantile(self.confidence))

    @property
    def defined(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)

    def contains(self, x: float) -> bool:
        return self.low <= x <= self.high

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "ci_low": self.low, "ci_high": self.high, "confidence": self.confidence,
                "method": self.method, "n": self.n}


def normal_interval(value: float, se: float | None, confidence: float = DEFAULT_CONFIDENCE,
                    n: int | None = None) -> Interval:
    """value ± z·se (for figures that come with a standard error only; ``nan`` bounds without one)."""
    if se is None or not math.isfinite(se) or se < 0:
        return Interval(value, math.nan, math.nan, confidence, "normal", n)
    z = z_quantile(confidence)
    return Interval(value, value - z * se, value + z * se, confidence, "normal", n)


def rate_interval(successes: int, n: int, confidence: float = DEFAULT_CONFIDENCE,
                  method: str = "wilson") -> Interval:
    """Rate ``successes / n`` with Wilson's score interval (or exact Clopper-Pearson), via ``scipy.stats.binomtest``.

    ``n == 0`` gives value ``nan`` and the uninformative interval [0, 1].
    """
    if method not in RATE_METHODS:
        raise LangNeuronError(f"rate interval method must be one of {', '.join(RATE_METHODS)}, got {method!r}")
    k, n = int(successes), int(n)
    if n < 0 or not 0 <= k <= max(n, 0):
        raise LangNeuronError(f"a rate needs 0 <= successes <= n, got {k} of {n}")
    if n == 0:
        return Interval(math.nan, 0.0, 1.0, check_confidence(confidence), method, 0)
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=check_confidence(confidence), method=method)
    return Interval(k / n, float(ci.low), float(ci.high), confidence, method, n)


def successes_of(rate: float, n: int) -> int:
    """The success count behind a mean of 0/1 outcomes (lm-eval reports ``lang_rate`` as such a mean)."""
    k = rate * n
    if not math.isfinite(k) or abs(k - round(k)) > 1e-6 * max(1, n):
        raise LangNeuronError(f"rate {rate!r} over {n} outcomes is not a count of successes")
    return int(round(k))


def mean_interval(values: Sequence[float] | np.ndarray, confidence: float = DEFAULT_CONFIDENCE) -> Interval:
    """Mean of a continuous per-generation metric with a t interval (``scipy.stats.ttest_1samp``).

    Fewer than two finite values give ``nan`` bounds: one value says nothing about its spread.
    """
    x = np.asarray(values, dtype=float).ravel()
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n < 2:
        return Interval(float(x.mean()) if n else math.nan, math.nan, math.nan, check_confidence(confidence),
                        "t", n)
    if np.ptp(x) == 0:  # every value equal: the t interval degenerates to the point
        return Interval(float(x[0]), float(x[0]), float(x[0]), confidence, "t", n)
    ci = stats.ttest_1samp(x, 0.0).confidence_interval(confidence_level=check_confidence(confidence))
    return Interval(float(x.mean()), float(ci.low), float(ci.high), confidence, "t", n)


@dataclass(frozen=True)
class Gain:
    """Difference of two rates (after - before) with its interval and a two-sided p-value for "no change"."""

    interval: Interval
    p_value: float
    before: Interval
    after: Interval
    paired: bool

    @property
    def value(self) -> float:
        return self.interval.value

    def to_dict(self) -> dict[str, Any]:
        return {**self.interval.to_dict(), "p_value": self.p_value, "paired": self.paired,
                "before": self.before.to_dict(), "after": self.after.to_dict()}


def _mover(p1: float, w1: Interval, p2: float, w2: Interval, phi: float) -> tuple[float, float]:
    """Newcombe's square-and-add limits for p2 - p1 from the Wilson limits of each rate; ``phi`` = correlation."""
    d_low = math.sqrt(max(0.0, (p2 - w2.low) ** 2 - 2 * phi * (p2 - w2.low) * (w1.high - p1) + (w1.high - p1) ** 2))
    d_high = math.sqrt(max(0.0, (w2.high - p2) ** 2 - 2 * phi * (w2.high - p2) * (p1 - w1.low)
                           + (p1 - w1.low) ** 2))
    return p2 - p1 - d_low, p2 - p1 + d_high


def paired_rate_gain(before: Sequence[float] | np.ndarray, after: Sequence[float] | np.ndarray,
                     confidence: float = DEFAULT_CONFIDENCE) -> Gain:
    """Gain of a binary rate between two runs on the same prompts (and seeds), paired by position.

    Interval: Newcombe (1998) method 10, the hybrid score interval for paired proportions (Wilson limits of
    each rate combined with the runs' phi correlation). p-value: exact McNemar test (``binomtest`` on the
    discordant pairs).
    """
    a = np.asarray(before, dtype=float).ravel()
    b = np.asarray(after, dtype=float).ravel()
    if a.shape != b.shape or not np.isin(a, (0.0, 1.0)).all() or not np.isin(b, (0.0, 1.0)).all():
        raise LangNeuronError("a paired gain needs two equally long sequences of 0/1 outcomes, prompt by prompt")
    n = int(a.size)
    both, only_a = int((a * b).sum()), int((a * (1 - b)).sum())
    only_b, neither = int(((1 - a) * b).sum()), int(((1 - a) * (1 - b)).sum())
    w1, w2 = rate_interval(both + only_a, n, confidence), rate_interval(both + only_b, n, confidence)
    if n == 0:
        return Gain(Interval(math.nan, -1.0, 1.0, confidence, "newcombe-paired", 0), math.nan, w1, w2, True)
    margins = (both + only_a) * (only_b + neither) * (both + only_b) * (only_a + neither)
    phi = (both * neither - only_a * only_b) / math.sqrt(margins) if margins else 0.0
    low, high = _mover(w1.value, w1, w2.value, w2, phi)
    discordant = only_a + only_b
    p = stats.binomtest(only_b, discordant).pvalue if discordant else 1.0
    gain = Interval(w2.value - w1.value, max(-1.0, low), min(1.0, high), confidence, "newcombe-paired", n)
    return Gain(gain, float(p), w1, w2, True)


def rate_gain(k_before: int, n_before: int, k_after: int, n_after: int,
              confidence: float = DEFAULT_CONFIDENCE) -> Gain:
    """Gain between two rates from independent samples (only counts known): Newcombe's method 10 with phi = 0.

    p-value: two-sided pooled two-proportion z test. Use :func:`paired_rate_gain` when the per-prompt outcomes
    are known: pairing removes the shared variation and gives a narrower, still valid, interval.
    """
    w1, w2 = rate_interval(k_before, n_before, confidence), rate_interval(k_after, n_after, confidence)
    if n_before == 0 or n_after == 0:
        return Gain(Interval(math.nan, -1.0, 1.0, confidence, "newcombe", 0), math.nan, w1, w2, False)
    low, high = _mover(w1.value, w1, w2.value, w2, 0.0)
    pooled = (k_before + k_after) / (n_before + n_after)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_before + 1 / n_after))
    diff = w2.value - w1.value
    p = 2 * stats.norm.sf(abs(diff) / se) if se > 0 else 1.0  # se = 0: both rates 0 or both 1, no change
    gain = Interval(diff, max(-1.0, low), min(1.0, high), confidence, "newcombe", min(n_before, n_after))
    return Gain(gain, float(p), w1, w2, False)


@dataclass(frozen=True)
class Replicates:
    """A statistic's point value and its bootstrap replicates, so figures built from it get intervals too."""

    point: float
    values: np.ndarray = field(repr=False)  # [n_resamples]

    @property
    def se(self) -> float:
        """Bootstrap standard error: the replicates' standard deviation (0 when every resample agrees)."""
        finite = self.values[np.isfinite(self.values)]
        return float(finite.std(ddof=1)) if finite.size > 1 else math.nan

    def interval(self, confidence: float = DEFAULT_CONFIDENCE, n: int | None = None) -> Interval:
        """Percentile interval of the replicates (``nan`` bounds when none is finite)."""
        alpha = 1.0 - check_confidence(confidence)
        finite = self.values[~np.isnan(self.values)]
        if finite.size == 0:
            return Interval(self.point, math.nan, math.nan, confidence, "percentile", n)
        low, high = np.quantile(finite, [alpha / 2, 1 - alpha / 2])
        return Interval(self.point, float(low), float(high), confidence, "percentile", n)

    @staticmethod
    def mean(parts: Sequence[Replicates]) -> Replicates:
        """Replicate-wise mean of statistics from independent data (e.g. the leaderboard's headline score)."""
        if not parts or len({p.values.shape for p in parts}) != 1:
            raise LangNeuronError("replicates to combine must be non-empty and have the same number of resamples")
        return Replicates(float(np.mean([p.point for p in parts])), np.mean([p.values for p in parts], axis=0))


def steering_replicates(outcomes: Mapping[str, tuple[Sequence[float], Sequence[float]]], threshold: float = 0.5,
                        n_resamples: int = 2000, seed: int = 0) -> dict[str, Replicates]:
    """Bootstrap of the mean gain and of the share of languages gaining at least ``threshold``.

    ``outcomes``: language -> (unsteered, steered) 0/1 outcomes on the same prompts. Prompts are resampled in
    pairs, independently per language (``scipy.stats.bootstrap``). Returns ``mean_gain`` and ``share``.
    """
    data = []
    for lang, (before, after) in outcomes.items():
        pair = np.vstack([np.asarray(before, float).ravel(), np.asarray(after, float).ravel()])  # [2, n]
        if pair.shape[1] < 2:
            raise LangNeuronError(f"steering outcomes of {lang}: need at least 2 prompts to resample")
        data.append(pair)
    if not data:
        raise LangNeuronError("no steering outcomes to resample")

    def statistic(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
        gains = np.stack([s[1].mean(axis=axis) - s[0].mean(axis=axis) for s in samples])  # [langs, ...]
        return np.stack([gains.mean(0), (gains >= threshold - 1e-12).mean(0)])  # [2, ...]

    point = statistic(*data)
    res = stats.bootstrap(data, statistic, n_resamples=n_resamples, vectorized=True, axis=-1,
                          method="percentile", rng=np.random.default_rng(seed))
    dist = res.bootstrap_distribution  # [2, n_resamples]
    return {"mean_gain": Replicates(float(point[0]), dist[0]), "share": Replicates(float(point[1]), dist[1])}
