"""Rate, mean and gain intervals: coverage against simulations with a known truth, and the edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from langneuron_eval.errors import LangNeuronError
from langneuron_eval.evidence import (
    Interval,
    Replicates,
    mean_interval,
    paired_rate_gain,
    rate_gain,
    rate_interval,
    steering_replicates,
    successes_of,
)

SIMS = 400
Z = stats.norm.ppf(0.975)


def coverage_band(sims: int = SIMS, confidence: float = 0.95) -> tuple[float, float]:
    """Central 99.8% of the number of covering intervals if each covers with probability ``confidence``."""
    low, high = stats.binom.ppf([0.001, 0.999], sims, confidence)
    return low, high


def test_wilson_at_small_n_is_never_100_plus_minus_0():
    """3 successes of 3: Wilson's lower bound is n / (n + z^2) in closed form, not 1."""
    iv = rate_interval(3, 3)
    assert iv.value == 1.0 and iv.high == 1.0
    assert iv.low == pytest.approx(3 / (3 + Z**2))
    zero = rate_interval(0, 5, method="exact")  # Clopper-Pearson upper bound for 0/n: 1 - (alpha/2)^(1/n)
    assert zero.low == 0.0 and zero.high == pytest.approx(1 - 0.025 ** (1 / 5))


def test_no_outcomes_give_no_information():
    iv = rate_interval(0, 0)
    assert math.isnan(iv.value) and (iv.low, iv.high) == (0.0, 1.0)
    gain = paired_rate_gain([], [])
    assert math.isnan(gain.value) and (gain.interval.low, gain.interval.high) == (-1.0, 1.0)


def test_wilson_covers_the_true_rate():
    rng = np.random.default_rng(0)
    p, n = 0.3, 60
    covered = sum(rate_interval(int(k), n).contains(p) for k in rng.binomial(n, p, SIMS))
    low, high = coverage_band()
    assert low <= covered <= high, covered


def _paired_outcomes(rng: np.random.Generator, n: int, p_before: float, p_after: float, rho: float):
    """Correlated 0/1 pairs through a shared Gaussian (a prompt that steers easily does so in both runs)."""
    shared = rng.normal(size=n)
    z1 = math.sqrt(rho) * shared + math.sqrt(1 - rho) * rng.normal(size=n)
    z2 = math.sqrt(rho) * shared + math.sqrt(1 - rho) * rng.normal(size=n)
    return (z1 < stats.norm.ppf(p_before)).astype(float), (z2 < stats.norm.ppf(p_after)).astype(float)


def test_paired_gain_covers_the_true_gain_and_is_narrower_than_unpaired():
    rng = np.random.default_rng(1)
    truth = 0.7 - 0.4
    covered, paired_width, unpaired_width = 0, 0.0, 0.0
    for _ in range(SIMS):
        before, after = _paired_outcomes(rng, 80, 0.4, 0.7, rho=0.6)
        gain = paired_rate_gain(before, after)
        covered += gain.interval.contains(truth)
        paired_width += gain.interval.high - gain.interval.low
        loose = rate_gain(int(before.sum()), 80, int(after.sum()), 80).interval
        unpaired_width += loose.high - loose.low
    low, high = coverage_band()
    assert low <= covered <= high, covered
    assert paired_width < 0.85 * unpaired_width  # pairing removes the prompts' shared variation


def test_unpaired_gain_covers_the_true_gain():
    rng = np.random.default_rng(2)
    covered = sum(rate_gain(int(a), 50, int(b), 70).interval.contains(0.25 - 0.6)
                  for a, b in zip(rng.binomial(50, 0.6, SIMS), rng.binomial(70, 0.25, SIMS)))
    low, high = coverage_band()
    assert low <= covered <= high, covered


def test_gain_edge_cases():
    """All 0 -> all 1 on 10 prompts: gain 1 with a lower bound well below 1; exact McNemar p = 2 * 0.5^10."""
    gain = paired_rate_gain(np.zeros(10), np.ones(10))
    assert gain.value == 1.0 and gain.interval.high == 1.0 and 0.5 < gain.interval.low < 0.9
    assert gain.p_value == pytest.approx(2 * 0.5**10)
    same = paired_rate_gain([1, 0, 1], [1, 0, 1])
    assert same.value == 0.0 and same.p_value == 1.0 and same.interval.low < 0 < same.interval.high
    with pytest.raises(LangNeuronError, match="0/1 outcomes"):
        paired_rate_gain([0, 1], [0.5, 1])
    with pytest.raises(LangNeuronError, match="0 <= successes <= n"):
        rate_interval(4, 3)


def test_t_interval_of_a_mean_covers_the_truth():
    rng = np.random.default_rng(3)
    covered = sum(mean_interval(rng.normal(2.0, 1.5, 15)).contains(2.0) for _ in range(SIMS))
    low, high = coverage_band()  # normal data: the t interval is exact
    assert low <= covered <= high, covered
    assert math.isnan(mean_interval([1.0]).low) and math.isnan(mean_interval([]).value)
    assert mean_interval([2.0, 2.0, 2.0]).low == 2.0


def test_counts_behind_a_reported_rate():
    assert successes_of(0.35, 20) == 7
    with pytest.raises(LangNeuronError, match="not a count"):
        successes_of(0.351, 20)


def test_steering_replicates_of_share_and_mean_gain():
    """One language always steered (0 -> 1), one never: the share is 1/2 in every resample."""
    reps = steering_replicates({"en": (np.zeros(20), np.ones(20)), "zh": (np.zeros(20), np.zeros(20))},
                               n_resamples=300, seed=1)
    assert reps["share"].point == 0.5 and np.all(reps["share"].values == 0.5)
    assert reps["mean_gain"].point == 0.5 and reps["share"].se == 0.0
    iv = reps["share"].interval()
    assert (iv.low, iv.high) == (0.5, 0.5)
    both = Replicates.mean([reps["share"], Replicates(1.0, np.ones(300))])
    assert both.point == 0.75 and np.all(both.values == 0.75)
    with pytest.raises(LangNeuronError, match="same number of resamples"):
        Replicates.mean([reps["share"], Replicates(1.0, np.ones(5))])


def test_interval_standard_error_inverts_a_normal_interval():
    iv = Interval(0.5, 0.5 - Z * 0.1, 0.5 + Z * 0.1)
    assert iv.se == pytest.approx(0.1)
    with pytest.raises(LangNeuronError, match="confidence"):
        rate_interval(1, 2, confidence=1.0)
