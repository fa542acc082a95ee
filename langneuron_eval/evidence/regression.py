"""A regression check with a noise model: flag a figure only when its drop is significant given both runs' noise.

A golden file stores each figure as (value, standard error, sample size). For a new run, each figure is tested
one-sided (H0: the new figure is not worse than the golden one):

* ``kind="rate"`` (a share of n binary outcomes, both n known): pooled two-proportion z test;
* otherwise: ``z = (new - golden) / sqrt(se_golden^2 + se_new^2)``, with Welch-Satterthwaite degrees of freedom
  (a t test) when both sample sizes are known, else the normal distribution.

The p-values of one check are Holm-corrected, so the chance that a run with no real change raises any alarm
(the false-alarm rate) is at most ``alpha`` however many figures are checked and however they correlate; each
figure alone alarms with probability at most ``alpha`` too. Standard errors of 0 on both sides make the
comparison exact (any drop regresses). A figure missing from the new run is a regression.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

from langneuron_eval.errors import LangNeuronError
from langneuron_eval.evidence.intervals import (
    DEFAULT_CONFIDENCE,
    Interval,
    check_confidence,
    normal_interval,
    rate_interval,
    successes_of,
)
from langneuron_eval.evidence.ranking import bonferroni, holm

FIGURE_KINDS = ("mean", "rate")
CORRECTIONS = ("holm", "bonferroni", "none")
EPS = 1e-9  # float noise allowed when two exact figures are compared


@dataclass(frozen=True)
class Figure:
    """A figure with its noise: ``se`` (None: unknown, taken as 0) and ``n`` (observations behind it)."""

    value: float
    se: float | None = None
    n: int | None = None
    kind: str = "mean"

    def __post_init__(self) -> None:
        if self.kind not in FIGURE_KINDS:
            raise LangNeuronError(f"figure kind must be one of {', '.join(FIGURE_KINDS)}, got {self.kind!r}")
        if self.se is not None and not self.se >= 0:
            raise LangNeuronError(f"a standard error must be >= 0, got {self.se!r}")
        if self.kind == "rate" and not self.n:
            raise LangNeuronError("a rate figure needs its number of outcomes n")

    def interval(self, confidence: float = DEFAULT_CONFIDENCE) -> Interval:
        """Wilson interval for a rate, value ± z·se otherwise."""
        if self.kind == "rate":
            return rate_interval(successes_of(self.value, int(self.n)), int(self.n), confidence)
        return normal_interval(self.value, self.se, confidence, self.n)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_interval(cls, interval: Interval, kind: str = "mean") -> Figure:
        """A figure whose standard error is its interval's half-width / z (e.g. a Newcombe gain)."""
        se = interval.se if interval.defined else None
        return cls(interval.value, se, interval.n, kind)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Figure:
        try:
            return cls(float(doc["value"]), None if doc.get("se") is None else float(doc["se"]),
                       None if doc.get("n") is None else int(doc["n"]), str(doc.get("kind", "mean")))
        except (KeyError, TypeError, ValueError):
            raise LangNeuronError(f"not a figure (value, se, n, kind): {dict(doc)!r}") from None


@dataclass(frozen=True)
class RegressionRecord:
    """One figure's check: both values with intervals, the test and the verdict."""

    figure: str
    golden: Figure
    new: Figure | None
    golden_interval: Interval
    new_interval: Interval | None
    difference: float  # new - golden
    z: float  # standardised difference (negative = worse, for higher-is-better figures)
    p_value: float  # one-sided, H0: not worse
    p_adjusted: float
    regressed: bool

    @property
    def verdict(self) -> str:
        if self.new is None:
            return "missing"
        return "regressed" if self.regressed else "no significant drop"

    def to_dict(self) -> dict[str, Any]:
        return {"figure": self.figure, "golden": self.golden.to_dict(),
                "new": None if self.new is None else self.new.to_dict(),
                "golden_interval": self.golden_interval.to_dict(),
                "new_interval": None if self.new_interval is None else self.new_interval.to_dict(),
                "difference": self.difference, "z": self.z, "p_value": self.p_value,
                "p_adjusted": self.p_adjusted, "verdict": self.verdict}


def drop_test(golden: Figure, new: Figure, higher_is_better: bool = True) -> tuple[float, float]:
    """(z, one-sided p) for "new is worse than golden"; z < 0 means worse whatever the figure's direction."""
    sign = 1.0 if higher_is_better else -1.0
    diff = sign * (new.value - golden.value)
    df = math.inf
    if golden.kind == "rate" and new.kind == "rate":
        k = successes_of(golden.value, int(golden.n)) + successes_of(new.value, int(new.n))
        pooled = k / (golden.n + new.n)
        se = math.sqrt(pooled * (1 - pooled) * (1 / golden.n + 1 / new.n))
    else:
        vg, vn = (golden.se or 0.0) ** 2, (new.se or 0.0) ** 2
        se = math.sqrt(vg + vn)
        if golden.n and new.n and golden.n > 1 and new.n > 1 and se > 0:
            df = (vg + vn) ** 2 / (vg**2 / (golden.n - 1) + vn**2 / (new.n - 1))
    if se == 0 or not math.isfinite(se):
        worse = diff < -EPS
        return (-math.inf if worse else 0.0), (0.0 if worse else 1.0)
    z = diff / se
    return z, float(stats.t.cdf(z, df) if math.isfinite(df) else stats.norm.cdf(z))


def check_regressions(golden: Mapping[str, Figure], new: Mapping[str, Figure], alpha: float = 0.05,
                      confidence: float = DEFAULT_CONFIDENCE, correction: str = "holm",
                      lower_is_better: tuple[str, ...] = ()) -> list[RegressionRecord]:
    """One record per golden figure; ``regressed`` when the corrected one-sided p-value is below ``alpha``."""
    if correction not in CORRECTIONS:
        raise LangNeuronError(f"correction must be one of {', '.join(CORRECTIONS)}, got {correction!r}")
    if not 0 < alpha < 1:
        raise LangNeuronError(f"alpha must be between 0 and 1, got {alpha!r}")
    check_confidence(confidence)
    names = list(golden)
    tests = {name: drop_test(golden[name], new[name], name not in lower_is_better)
             for name in names if name in new and math.isfinite(new[name].value)}
    raw = np.array([tests[n][1] if n in tests else math.nan for n in names])
    adjusted = {"holm": holm, "bonferroni": bonferroni, "none": lambda p: p}[correction](raw)
    records = []
    for name, p_adj in zip(names, adjusted):
        g, v = golden[name], new.get(name)
        if name not in tests:
            records.append(RegressionRecord(name, g, v, g.interval(confidence), None, math.nan, math.nan,
                                            math.nan, math.nan, True))
            continue
        z, p = tests[name]
        records.append(RegressionRecord(name, g, v, g.interval(confidence), v.interval(confidence),
                                        v.value - g.value, z, p, float(p_adj), bool(p_adj < alpha)))
    return records
