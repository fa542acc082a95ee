"""Decisions built on intervals: the regression check, the random floor, ties with the leader, Holm, verdicts."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from langneuron_eval.errors import LangNeuronError
from langneuron_eval.evidence import (
    DOES_NOT_HOLD,
    HOLDS,
    INCONCLUSIVE,
    Figure,
    Interval,
    bonferroni,
    check_regressions,
    compare_to_floor,
    drop_test,
    holm,
    normal_interval,
    paired_rate_gain,
    simultaneous_confidence,
    ties_with_leader,
    verdict,
)

LANGS = ("en", "zh", "fr")


def bench_figures(rng: np.random.Generator, p_after: float, n: int = 100) -> dict[str, Figure]:
    """The battery's steering figures from simulated generations: per-language paired gains and their mean."""
    figs = {}
    for lang in LANGS:
        shared = rng.normal(size=n)  # prompt-level ease of steering, shared by both runs
        before = (0.5 * shared + rng.normal(size=n) < stats.norm.ppf(0.2) * math.sqrt(1.25)).astype(float)
        after = (0.5 * shared + rng.normal(size=n) < stats.norm.ppf(p_after) * math.sqrt(1.25)).astype(float)
        figs[f"steering_gain.{lang}"] = Figure.from_interval(paired_rate_gain(before, after).interval)
    ses = [f.se for f in figs.values()]
    figs["mean_steering_gain"] = Figure(float(np.mean([f.value for f in figs.values()])),
                                        math.sqrt(sum(s**2 for s in ses)) / len(ses), n)
    return figs


def test_regression_check_false_alarm_rate_is_at_most_alpha_and_power_is_high():
    """Same detector, new seed: alarms in at most ~5% of runs (Holm over 4 figures); clearly worse: nearly all."""
    rng = np.random.default_rng(0)
    sims = 200
    alarms = sum(any(r.regressed for r in check_regressions(bench_figures(rng, 0.8), bench_figures(rng, 0.8)))
                 for _ in range(sims))
    assert alarms <= stats.binom.ppf(0.999, sims, 0.05), alarms
    caught = sum(any(r.regressed for r in check_regressions(bench_figures(rng, 0.8), bench_figures(rng, 0.5)))
                 for _ in range(40))
    assert caught >= 38, caught


def test_one_sided_p_values_are_uniform_without_a_change():
    """Figures with normal noise of known se: the drop test's p-value is Uniform(0, 1) (Kolmogorov-Smirnov)."""
    rng = np.random.default_rng(1)
    ps = [drop_test(Figure(0.6 + rng.normal(0, 0.05), 0.05), Figure(0.6 + rng.normal(0, 0.08), 0.08))[1]
          for _ in range(500)]
    assert stats.kstest(ps, "uniform").pvalue > 0.001
    rates = [drop_test(Figure(k1 / 100, None, 100, "rate"), Figure(k2 / 100, None, 100, "rate"))[1]
             for k1, k2 in zip(rng.binomial(100, 0.7, 1000), rng.binomial(100, 0.7, 1000))]
    assert np.mean(np.array(rates) < 0.05) <= stats.binom.ppf(0.999, 1000, 0.05) / 1000


def test_regression_records_say_what_was_compared():
    golden = {"a": Figure(0.9, 0.02, 100), "b": Figure(0.5, 0.0), "c": Figure(3.0, 0.1), "gone": Figure(1.0, 0.1)}
    new = {"a": Figure(0.5, 0.03, 100), "b": Figure(0.5, 0.0), "c": Figure(3.5, 0.1)}
    records = {r.figure: r for r in check_regressions(golden, new, lower_is_better=("c",))}
    assert records["a"].verdict == "regressed" and records["a"].z < -10
    assert records["a"].golden_interval.contains(0.9) and records["a"].new_interval.contains(0.5)
    assert records["b"].verdict == "no significant drop" and records["b"].p_value == 1.0  # exact and equal
    assert records["c"].verdict == "regressed"  # perplexity-like: a rise is worse
    assert records["gone"].verdict == "missing" and records["gone"].regressed
    exact = check_regressions({"s": Figure(4 / 6, 0.0)}, {"s": Figure(3 / 6, 0.0)})[0]
    assert exact.regressed  # no noise on either side: any drop is real
    assert set(records["a"].to_dict()) >= {"figure", "golden", "new", "golden_interval", "new_interval", "z",
                                           "p_value", "verdict"}


def test_figures_from_files_are_checked():
    assert Figure.from_dict({"value": 0.5, "se": 0.1, "n": 3}) == Figure(0.5, 0.1, 3)
    with pytest.raises(LangNeuronError, match="not a figure"):
        Figure.from_dict({"se": 0.1})
    with pytest.raises(LangNeuronError, match="standard error"):
        Figure(0.5, -1.0)
    with pytest.raises(LangNeuronError, match="needs its number of outcomes"):
        Figure(0.5, kind="rate")


def test_floor_false_claims_near_alpha_and_clear_winners_beat_it():
    """Detector as good as random on average: 'beats the floor' in about 5% of experiments (5 draws each)."""
    rng = np.random.default_rng(2)
    sims, sd, se = 1000, 0.06, 0.04

    def experiment(true_gain: float) -> bool | None:
        draws = 0.1 + rng.normal(0, sd, 5)
        det = normal_interval(0.1 + true_gain + rng.normal(0, se), se)
        return compare_to_floor(det, draws).beats_floor

    false_claims = sum(bool(experiment(0.0)) for _ in range(sims))
    low, high = stats.binom.ppf([0.001, 0.999], sims, 0.05)
    assert low <= false_claims <= high, false_claims
    assert sum(bool(experiment(0.4)) for _ in range(100)) >= 95


def test_floor_spread_and_limits():
    cmp = compare_to_floor(Interval(0.9, 0.8, 1.0), [0.1, 0.2, 0.3, 0.2, 0.2])
    assert cmp.mean == pytest.approx(0.2) and cmp.sd == pytest.approx(math.sqrt(0.005))
    assert cmp.beats_floor and cmp.difference.low > 0
    assert compare_to_floor(Interval(0.9, 0.8, 1.0), [0.1]).beats_floor is None  # one draw: no spread
    assert compare_to_floor(Interval(0.2, 0.1, 0.3), [0.2, 0.2, 0.2]).beats_floor is False
    with pytest.raises(LangNeuronError, match="at least one finite"):
        compare_to_floor(Interval(0.9, 0.8, 1.0), [])


def test_ties_with_the_leader_by_overlap_and_by_test():
    scores = [Interval(0.70, 0.55, 0.81), Interval(0.85, 0.80, 0.90), Interval(0.60, 0.50, 0.79),
              Interval(math.nan, math.nan, math.nan), Interval(0.75, math.nan, math.nan)]
    ties = ties_with_leader(scores)
    assert ties.leader == 1 and ties.tied == [True, True, False, None, None]
    tested = ties_with_leader(scores, rule="test")
    assert tested.tied[1] and tested.tied[2] is False and tested.p_values[2] < 0.05
    low = ties_with_leader([Interval(3.0, 2.0, 4.0), Interval(5.0, 4.5, 5.5)], higher_is_better=False)
    assert low.leader == 0 and low.tied == [True, False]


def test_holm_matches_closed_testing_by_brute_force():
    """Holm's adjusted p = max over sets S containing i of |S| * min_{j in S} p_j (closed Bonferroni tests)."""
    rng = np.random.default_rng(3)
    for _ in range(20):
        p = rng.uniform(0, 0.2, 5)
        brute = [max(min(1.0, len(s) * min(p[list(s)])) for r in range(1, 6)
                     for s in itertools.combinations(range(5), r) if i in s) for i in range(5)]
        assert np.allclose(holm(p), brute)
    assert np.allclose(bonferroni([0.01, 0.3, math.nan]), [0.02, 0.6, math.nan], equal_nan=True)
    assert simultaneous_confidence(0.95, 5) == pytest.approx(0.99)


def test_verdict_rule():
    assert verdict(Interval(0.7, 0.55, 0.8), 0.5) == HOLDS
    assert verdict((0.1, 0.45), 0.5) == DOES_NOT_HOLD
    assert verdict((0.4, 0.6), 0.5) == INCONCLUSIVE
    assert verdict((math.nan, math.nan), 0.5) == INCONCLUSIVE
    assert verdict((0.1, 0.3), 0.5, at_least=False) == HOLDS
    assert verdict((0.6, 0.9), 0.5, at_least=False) == DOES_NOT_HOLD
