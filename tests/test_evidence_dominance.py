"""Diagonal dominance: exact permutation p-values, a ratio that cannot blow up, and bootstrap intervals."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from langneuron_eval.errors import LangNeuronError
from langneuron_eval.evidence import PplDocs, dominance_from_docs, dominance_from_matrix


def test_perfect_diagonal_gets_the_smallest_exact_p_value():
    """With K languages there are K! row assignments; only the identity puts every maximum on the diagonal."""
    for k in (2, 3, 4):
        m = np.full((k, k), 0.01) + np.eye(k) * 0.5
        d = dominance_from_matrix(m, [f"l{i}" for i in range(k)])
        assert d.p_value == pytest.approx(1 / math.factorial(k))
        assert d.permutations == math.factorial(k)
        assert d.share.value == 1.0 and d.rank_score.value == 1.0 and d.columns_diagonal_max == k


def test_hand_built_matrix_statistics():
    """Column maxima on the diagonal in 2 of 3 columns; ranks and the geometric-mean ratio by hand."""
    m = np.array([[0.5, 0.0, 0.1],
                  [0.0, 0.2, 0.3],
                  [0.1, 0.1, 0.2]])
    d = dominance_from_matrix(m, ["a", "b", "c"])
    assert d.columns_diagonal_max == 2 and d.share.value == pytest.approx(2 / 3)
    # diagonal ranks within columns (0 = smallest, 1 = largest): a 1, b 1, c 0.5 (0.2 between 0.1 and 0.3)
    assert d.rank_score.value == pytest.approx((1.0 + 1.0 + 0.5) / 3)
    logs = np.log1p(m)
    want = math.exp(np.mean(np.diag(logs)) - logs[~np.eye(3, dtype=bool)].mean())
    assert d.ratio.value == pytest.approx(want)
    assert d.contrast["a"].value == pytest.approx(logs[0, 0] - (logs[1, 0] + logs[2, 0]) / 2)
    assert math.isnan(d.ratio.low)  # no per-document data: no interval


def test_ratio_stays_finite_when_off_diagonal_changes_vanish():
    """The old mean of per-column diagonal/off-diagonal ratios divides by ~0 here; ours stays readable."""
    m = np.array([[0.6, 1e-12, -1e-12], [-1e-12, 0.4, 1e-12], [1e-12, -1e-12, 0.5]])
    d = dominance_from_matrix(m, ["a", "b", "c"])
    assert d.ratio.value == pytest.approx(math.exp(np.mean(np.log1p([0.6, 0.4, 0.5]))), rel=1e-9)


def test_p_values_are_valid_and_near_uniform_under_the_null():
    """Exchangeable cells (no language-specific effect): P(p <= alpha) within binomial noise of alpha, never
    clearly above it."""
    rng = np.random.default_rng(0)
    sims = 400
    ps = np.array([dominance_from_matrix(rng.normal(0.1, 0.05, (6, 6)), list("abcdef"), seed=i).p_value
                   for i in range(sims)])
    for alpha in (0.05, 0.1, 0.25, 0.5):
        hits = int((ps <= alpha).sum())
        low, high = stats.binom.ppf([0.001, 0.999], sims, alpha)
        assert low <= hits <= high, (alpha, hits)


def _docs(rng: np.random.Generator, shifts: np.ndarray, n: int) -> list[PplDocs]:
    """One column per language; cell (i, j) shifts column j's NLL by shifts[i, j] nats per byte (+ noise)."""
    cols = []
    for j in range(shifts.shape[1]):
        units = rng.gamma(3.0, 40.0, n)
        base = units * rng.gamma(20.0, 0.1, n)
        noise = rng.normal(0.0, 1.0, (shifts.shape[0], n)) * units * 0.1
        cols.append(PplDocs(units, base, base + units * shifts[:, j:j + 1] + noise))
    return cols


def test_ratio_interval_covers_the_truth():
    """Truth: exp(mean diagonal shift - mean off-diagonal shift) of the simulated per-byte NLL shifts."""
    rng = np.random.default_rng(4)
    shifts = np.array([[0.30, 0.02, 0.05], [0.01, 0.20, 0.03], [0.04, 0.02, 0.25]])
    truth = math.exp(np.diag(shifts).mean() - shifts[~np.eye(3, dtype=bool)].mean())
    sims = 200
    covered = sum(dominance_from_docs(_docs(rng, shifts, 60), ["a", "b", "c"], n_resamples=400, seed=i)
                  .ratio.contains(truth) for i in range(sims))
    low, high = stats.binom.ppf([0.001, 0.999], sims, 0.95)
    assert low <= covered <= high, covered


def test_intervals_from_documents_and_their_limits():
    rng = np.random.default_rng(5)
    shifts = np.array([[0.3, 0.0], [0.0, 0.3]])
    d = dominance_from_docs(_docs(rng, shifts, 50), ["a", "b"], n_resamples=300)
    assert d.share.low == 1.0 and d.share.high == 1.0  # the diagonal wins in every resample
    assert d.ratio.low < d.ratio.value < d.ratio.high
    assert d.share_replicates is not None and d.share_replicates.values.shape == (300,)
    assert d.p_value == pytest.approx(0.5)  # two languages: 2 assignments, the best p-value is 1/2
    broken = _docs(rng, shifts, 50)
    broken[1].intervened[1, 3] = np.inf  # a diverged document on the diagonal: no intervals, still a p-value
    d = dominance_from_docs(broken, ["a", "b"], n_resamples=100)
    assert d.ratio.value == math.inf and math.isnan(d.ratio.low) and d.p_value == pytest.approx(0.5)


def test_non_square_or_mismatched_input_is_one_clear_error():
    with pytest.raises(LangNeuronError, match="square"):
        dominance_from_matrix(np.zeros((2, 3)), ["a", "b"])
    with pytest.raises(LangNeuronError, match="at least two"):
        dominance_from_matrix(np.zeros((1, 1)), ["a"])
    with pytest.raises(LangNeuronError, match="one column of documents per language"):
        dominance_from_docs(_docs(np.random.default_rng(0), np.zeros((3, 2)), 5), ["a", "b"])
