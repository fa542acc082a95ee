"""Paired bootstrap of the perplexity-change matrix: point value, coverage, pairing, non-finite inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from langneuron_eval.errors import LangNeuronError
from langneuron_eval.evidence import PplDocs, ppl_change_intervals

TRUE_LOG_RATIO = 0.05  # every simulated document's NLL rises by 0.05 nats per byte on average


def simulate_column(rng: np.random.Generator, n: int, rows: int = 1, shift: float = TRUE_LOG_RATIO) -> PplDocs:
    """Documents of skewed length; intervened NLL = baseline + shift per byte + noise (truth: expm1(shift))."""
    units = rng.gamma(3.0, 40.0, n)  # bytes
    base = units * rng.gamma(20.0, 0.1, n)  # ~2 nats per byte, varying by document
    noise = rng.normal(0.0, 1.0, (rows, n)) * units * 0.1
    return PplDocs(units, base, base + units * shift + noise)


def test_point_is_the_ratio_of_weighted_perplexities():
    """The point value is what lm-eval's weighted perplexity gives: exp(sum NLL / sum bytes), ratio - 1."""
    rng = np.random.default_rng(3)
    cols = [simulate_column(rng, 40, rows=3, shift=s) for s in (0.01, 0.2, -0.03)]
    got = ppl_change_intervals(cols, n_resamples=200)
    for j, c in enumerate(cols):
        ppl0 = math.exp(c.baseline.sum() / c.units.sum())
        for i in range(3):
            want = math.exp(c.intervened[i].sum() / c.units.sum()) / ppl0 - 1.0
            assert got.point[i, j] == pytest.approx(want, rel=1e-9)
    assert (got.ci_low <= got.point).all() and (got.point <= got.ci_high).all()
    assert (got.ci_high - got.ci_low > 0).all()
    assert got.n_docs == [40, 40, 40]


def test_95_percent_interval_covers_the_truth_about_95_percent_of_the_time():
    """300 simulated corpora of 100 documents (one column each, resampled in one call); truth known."""
    rng = np.random.default_rng(11)
    sims = 300
    cols = [simulate_column(rng, 100) for _ in range(sims)]
    got = ppl_change_intervals(cols, n_resamples=1000, seed=5)
    truth = math.expm1(TRUE_LOG_RATIO)
    covered = int(((got.ci_low[0] <= truth) & (truth <= got.ci_high[0])).sum())
    low, high = stats.binom.ppf([0.001, 0.999], sims, 0.95)  # central 99.8% of Binomial(300, 0.95): [273, 296]
    assert low <= covered <= high, covered


def test_bca_option_gives_an_interval_around_the_point():
    rng = np.random.default_rng(2)
    got = ppl_change_intervals([simulate_column(rng, 50, rows=2)], n_resamples=500, method="BCa")
    assert got.method == "BCa"
    assert (got.ci_low < got.point).all() and (got.point < got.ci_high).all()


def test_resamples_are_paired_within_a_column():
    """A row that changes every document by the same NLL per byte has no sampling noise: its interval is a point.
    Resampling the baseline and the intervened run separately would give it a wide interval."""
    rng = np.random.default_rng(0)
    c = simulate_column(rng, 80, rows=1)
    exact = PplDocs(c.units, c.baseline, np.vstack([c.baseline + 0.1 * c.units, c.baseline, c.intervened[0]]))
    got = ppl_change_intervals([exact], n_resamples=500)
    assert got.ci_low[0, 0] == pytest.approx(math.expm1(0.1)) and got.ci_high[0, 0] == pytest.approx(math.expm1(0.1))
    assert got.ci_low[1, 0] == 0.0 and got.ci_high[1, 0] == 0.0
    assert got.ci_high[2, 0] > got.ci_low[2, 0]


def test_seed_makes_intervals_reproducible():
    rng = np.random.default_rng(1)
    cols = [simulate_column(rng, 30, rows=2) for _ in range(2)]
    a = ppl_change_intervals(cols, n_resamples=300, seed=7)
    b = ppl_change_intervals(cols, n_resamples=300, seed=7)
    c = ppl_change_intervals(cols, n_resamples=300, seed=8)
    assert np.array_equal(a.ci_low, b.ci_low) and np.array_equal(a.ci_high, b.ci_high)
    assert not np.array_equal(a.ci_low, c.ci_low)


def test_huge_and_non_finite_nll_are_reported_not_raised():
    """An overflowing perplexity ratio is inf; a non-finite document score leaves that cell without bounds."""
    units = np.full(5, 10.0)
    base = np.full(5, 20.0)
    rows = np.vstack([base + 1e5, base + np.array([0, 0, 0, 0, np.inf]), base + np.array([1, np.nan, 0, 0, 0]),
                      base + np.arange(5.0)])
    got = ppl_change_intervals([PplDocs(units, base, rows)], n_resamples=200)
    assert got.point[0, 0] == math.inf and got.ci_low[0, 0] == math.inf and got.ci_high[0, 0] == math.inf
    assert got.point[1, 0] == math.inf and math.isnan(got.ci_low[1, 0]) and math.isnan(got.ci_high[1, 0])
    assert math.isnan(got.point[2, 0]) and math.isnan(got.ci_low[2, 0])
    assert got.ci_low[3, 0] < got.point[3, 0] < got.ci_high[3, 0]  # the finite row still gets its interval


def test_too_few_documents_give_no_bounds():
    one = PplDocs([4.0], [8.0], [[9.0]])
    none = PplDocs(np.zeros(0), np.zeros(0), np.zeros((1, 0)))
    got = ppl_change_intervals([one, none, PplDocs([4.0, 5.0], [8.0, 9.0], [[9.0, 9.0]])], n_resamples=100)
    assert got.point[0, 0] == pytest.approx(math.expm1(0.25)) and math.isnan(got.ci_low[0, 0])
    assert math.isnan(got.point[0, 1]) and math.isnan(got.ci_high[0, 1])
    assert got.n_docs == [1, 0, 2]
    assert not math.isnan(got.ci_low[0, 2])


@pytest.mark.parametrize("make, message", [
    (lambda: PplDocs([1.0, 2.0], [1.0], [[1.0, 2.0]]), "number of documents"),
    (lambda: PplDocs([-1.0, 2.0], [1.0, 1.0], [[1.0, 2.0]]), "negative"),
    (lambda: ppl_change_intervals([PplDocs([1, 2], [1, 1], [[1, 2]]), PplDocs([1, 2], [1, 1], [[1, 2], [1, 1]])]),
     "same number of intervened rows"),
    (lambda: ppl_change_intervals([PplDocs([1, 2], [1, 1], [[1, 2]])], method="studentized"), "bootstrap method"),
    (lambda: ppl_change_intervals([PplDocs([1, 2], [1, 1], [[1, 2]])], confidence=95), "confidence"),
    (lambda: ppl_change_intervals([]), "no columns"),
])
def test_bad_input_is_one_clear_error(make, message):
    with pytest.raises(LangNeuronError, match=message):
        make()
