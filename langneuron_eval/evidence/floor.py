"""The random control as a null distribution: several random draws, and whether a detector beats them.

Each random draw (a seed of the ``random`` detector, same per-layer counts as the tested detector) is scored like
a detector, so the spread of the draws' scores holds both the draw-to-draw variation and the measurement noise.
A detector *beats the floor* when a one-sided Welch t test rejects "its expected score is at most the floor's
mean" at level ``1 - confidence``: ``t = (x_det - mean_floor) / sqrt(se_det^2 + sd_floor^2 / m)`` with
Welch-Satterthwaite degrees of freedom (the detector's standard error counts as known). With fewer than two
draws the floor's spread is unknown and there is no verdict.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from langneuron_eval.errors import LangNeuronError
from langneuron_eval.evidence.intervals import DEFAULT_CONFIDENCE, Interval, check_confidence

DEFAULT_DRAWS = 5
FLOOR_RULE = ("beats the floor: one-sided Welch t test of the detector's score against the mean of the random "
              "draws (each draw's spread includes its measurement noise) rejects at 1 - confidence")


@dataclass(frozen=True)
class FloorComparison:
    """The floor's spread, and the detector's distance from it with a verdict."""

    draws: list[float]
    mean: float
    sd: float
    low: float  # empirical 5% quantile of the draws
    high: float  # empirical 95% quantile of the draws
    detector: Interval
    difference: Interval  # detector - floor mean, two-sided at the detector's confidence
    p_value: float  # one-sided, H0: detector <= floor mean
    beats_floor: bool | None  # None: fewer than 2 draws

    def to_dict(self) -> dict[str, Any]:
        return {"draws": self.draws, "mean": self.mean, "sd": self.sd, "q05": self.low, "q95": self.high,
                "detector": self.detector.to_dict(), "difference": self.difference.to_dict(),
                "p_value": self.p_value, "beats_floor": self.beats_floor, "rule": FLOOR_RULE}


def compare_to_floor(detector: Interval, draws: Sequence[float],
                     confidence: float = DEFAULT_CONFIDENCE) -> FloorComparison:
    """Compare a detector's score (with its interval) to the scores of random draws.

    When the detector's interval is undefined (``nan`` bounds), the floor's standard deviation stands in for
    the detector's own standard error: a measurement of the same kind, and an upper bound on its noise.
    """
    conf = check_confidence(confidence)
    x = np.asarray([float(v) for v in draws], dtype=float)
    if x.size == 0 or not np.isfinite(x).all():
        raise LangNeuronError("the random floor needs at least one finite score")
    m = int(x.size)
    mean = float(x.mean())
    sd = float(x.std(ddof=1)) if m >= 2 else math.nan
    q05, q95 = (float(q) for q in np.quantile(x, [0.05, 0.95]))
    diff = detector.value - mean
    if m < 2:
        return FloorComparison(x.tolist(), mean, sd, q05, q95, detector,
                               Interval(diff, math.nan, math.nan, conf, "welch", m), math.nan, None)
    se_det = detector.se if detector.defined else sd
    var_floor = sd**2 / m
    se = math.sqrt(se_det**2 + var_floor)
    df = se**4 / (var_floor**2 / (m - 1)) if var_floor > 0 else math.inf
    if se > 0:
        p = float(stats.t.sf(diff / se, df))
        half = float(stats.t.ppf(0.5 + conf / 2, df)) * se
    else:  # every draw equal and the detector exact: the comparison is exact too
        p, half = (0.0 if diff > 0 else 1.0), 0.0
    beats = bool(p < 1.0 - conf) and math.isfinite(diff)
    return FloorComparison(x.tolist(), mean, sd, q05, q95, detector,
                           Interval(diff, diff - half, diff + half, conf, "welch", m), p, beats)
