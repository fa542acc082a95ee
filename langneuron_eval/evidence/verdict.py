"""One rule for turning an interval into a verdict on a claim such as "the gain is at least 50 points"."""

from __future__ import annotations

import math

from langneuron_eval.evidence.intervals import Interval

HOLDS = "holds"
DOES_NOT_HOLD = "does not hold"
INCONCLUSIVE = "inconclusive"

VERDICT_RULE = ("a claim 'value >= threshold' holds when the whole interval is at or above the threshold, does "
                "not hold when the whole interval is below it, and is inconclusive when the interval straddles "
                "it or is undefined ('value <= threshold' mirrored)")


def verdict(interval: Interval | tuple[float, float], threshold: float, at_least: bool = True) -> str:
    """``holds`` / ``does not hold`` / ``inconclusive`` for the claim value >= threshold (or <= with ``at_least=False``).

    The interval's confidence is the claim's: a 95% interval entirely above the threshold is a one-sided test
    at level 0.025 that the true value is below it.
    """
    low, high = (interval.low, interval.high) if isinstance(interval, Interval) else interval
    if math.isnan(low) or math.isnan(high) or low > high:
        return INCONCLUSIVE
    if not at_least:  # value <= threshold  <=>  -value >= -threshold
        low, high, threshold = -high, -low, -threshold
    if low >= threshold:
        return HOLDS
    if high < threshold:
        return DOES_NOT_HOLD
    return INCONCLUSIVE
