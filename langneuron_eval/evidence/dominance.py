"""Diagonal dominance of the perplexity-change matrix as statistics with intervals and a p-value.

The claim (Tang et al., LAPE): switching off language i's neurons hurts language i's text more than the others'.
On a square matrix (rows = deactivated language, columns = evaluated language, same order) we report

* ``share``: columns whose largest increase is on the diagonal (the count the harness always printed);
* ``rank_score``: mean over columns of the diagonal cell's rank within its column, scaled to [0, 1]
  (1 = every diagonal is its column's maximum, 0.5 = what a random assignment of neuron sets gives);
* ``ratio``: geometric-mean perplexity ratio on the diagonal / that off the diagonal,
  ``exp(mean_diag log(1+m) - mean_offdiag log(1+m))``. 1 = no selectivity. It cannot blow up: perplexity ratios
  are positive, so neither mean is near a zero divisor (the old mean of per-column ratios of *increases* did);
* ``contrast`` per language: ``log(1+m_jj) - mean_{i != j} log(1+m_ij)``, the paired "own-language excess".

The p-value is an exact permutation test over row labels (``scipy.stats.permutation_test``): under the null the
neuron sets are exchangeable with respect to the languages, so every assignment of rows to columns is equally
likely; p = share of the K! assignments whose rank score is at least the observed one. It conditions on the
matrix (tests the structure, not the document noise); the bootstrap intervals carry the document noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from langneuron_eval.errors import LangNeuronError
from langneuron_eval.evidence.intervals import DEFAULT_CONFIDENCE, Interval, Replicates, check_confidence
from langneuron_eval.evidence.resample import DEFAULT_RESAMPLES, PplDocs, bootstrap_columns, log_ratio_cells

MAX_EXACT = 9999  # permutations enumerated exactly up to this many (K <= 7); Monte Carlo beyond


def dominance_statistics(d: np.ndarray) -> np.ndarray:
    """Log-ratio matrix d [K, K, ...] -> [3 + K, ...]: share, rank score, log ratio, K per-column contrasts."""
    k = d.shape[0]
    idx = np.arange(k)
    diag = d[idx, idx]  # [K, ...]
    eye = np.eye(k, dtype=bool).reshape((k, k) + (1,) * (d.ndim - 2))
    with np.errstate(all="ignore"):
        contrast = diag - np.where(eye, 0.0, d).sum(axis=0) / (k - 1)  # [K, ...]; an inf diagonal stays inf
        share = (np.argmax(d, axis=0) == idx.reshape((k,) + (1,) * (d.ndim - 2))).mean(axis=0)
        below = (d < diag[None]).sum(axis=0) + 0.5 * ((d == diag[None]).sum(axis=0) - 1)
        rank = (below / (k - 1)).mean(axis=0)
        log_ratio = contrast.mean(axis=0)  # each column has K-1 off-diagonal cells: mean diag - mean off-diag
    return np.concatenate([np.stack([share, rank, log_ratio]), contrast])


def permutation_p_value(matrix: np.ndarray, seed: int = 0) -> tuple[float, int]:
    """One-sided p-value of the rank score under random row labels, and the number of permutations used."""
    m = np.asarray(matrix, dtype=float)
    k = m.shape[0]
    if k < 2 or np.isnan(m).any():
        return math.nan, 0
    ranks = (stats.rankdata(m, axis=0) - 1.0) / (k - 1)  # [K, K] rank of each cell within its column
    cols = np.arange(k)

    def score(order: np.ndarray, axis: int = -1) -> np.ndarray:
        return ranks[order, cols].mean(axis=-1)

    exact = math.factorial(k) <= MAX_EXACT
    res = stats.permutation_test((np.arange(k),), score, permutation_type="pairings", vectorized=True,
                                 n_resamples=np.inf if exact else MAX_EXACT, alternative="greater",
                                 rng=np.random.default_rng(seed))
    return float(res.pvalue), int(np.asarray(res.null_distribution).size)


@dataclass
class Dominance:
    """Diagonal-dominance statistics with intervals (``nan`` bounds without per-document data) and a p-value."""

    languages: list[str]
    share: Interval
    rank_score: Interval
    ratio: Interval
    contrast: dict[str, Interval]
    p_value: float
    permutations: int
    share_replicates: Replicates | None = field(default=None, repr=False)

    @property
    def columns_diagonal_max(self) -> int:
        return int(round(self.share.value * len(self.languages)))

    def to_dict(self) -> dict[str, Any]:
        se = self.share_replicates.se if self.share_replicates is not None else None
        return {"columns_diagonal_max": self.columns_diagonal_max, "share": {**self.share.to_dict(), "se": se},
                "rank_score": self.rank_score.to_dict(), "ratio": self.ratio.to_dict(),
                "contrast": {lang: c.to_dict() for lang, c in self.contrast.items()}, "p_value": self.p_value,
                "test": "permutation of row labels, rank score, one-sided", "permutations": self.permutations}


def _check_square(d: np.ndarray, languages: Sequence[str]) -> None:
    if d.ndim != 2 or d.shape[0] != d.shape[1] or d.shape[0] != len(languages):
        raise LangNeuronError(f"diagonal dominance needs a square matrix with one row and column per language, "
                              f"got shape {d.shape} for {len(languages)} languages")


def _assemble(languages: Sequence[str], point: np.ndarray, low: np.ndarray, high: np.ndarray, conf: float,
              method: str, p: tuple[float, int], replicates: Replicates | None) -> Dominance:
    """Statistics vector (and its bounds) from :func:`dominance_statistics` -> :class:`Dominance`."""
    def iv(i: int, transform: Any = float) -> Interval:
        with np.errstate(all="ignore"):
            return Interval(float(transform(point[i])), float(transform(low[i])), float(transform(high[i])),
                            conf, method)

    contrast = {lang: iv(3 + j) for j, lang in enumerate(languages)}
    return Dominance(list(languages), iv(0), iv(1), iv(2, np.exp), contrast, p[0], p[1], replicates)


def dominance_from_matrix(matrix: Sequence[Sequence[float]] | np.ndarray, languages: Sequence[str],
                          confidence: float = DEFAULT_CONFIDENCE, seed: int = 0) -> Dominance:
    """Statistics and permutation p-value of a matrix of relative changes (no per-document data: no intervals)."""
    m = np.asarray(matrix, dtype=float)
    _check_square(m, languages)
    if m.shape[0] < 2:
        raise LangNeuronError("diagonal dominance needs at least two languages")
    with np.errstate(all="ignore"):
        point = dominance_statistics(np.log1p(m))
    nan = np.full(point.shape, math.nan)
    return _assemble(languages, point, nan, nan, check_confidence(confidence), "none",
                     permutation_p_value(m, seed), None)


def dominance_from_docs(columns: Sequence[PplDocs], languages: Sequence[str],
                        confidence: float = DEFAULT_CONFIDENCE, n_resamples: int = DEFAULT_RESAMPLES,
                        seed: int = 0) -> Dominance:
    """As :func:`dominance_from_matrix`, with percentile intervals from the paired, stratified document bootstrap.

    Percentile (not BCa): the share and the rank score are discrete. The intervals need every cell to be
    resamplable (>= 2 documents and finite scores everywhere); otherwise the bounds are ``nan``.
    """
    if len(columns) != len(languages) or any(c.n_rows != len(languages) for c in columns):
        raise LangNeuronError("diagonal dominance needs one column of documents per language, each with one "
                              "intervened row per language (rows and columns in the same order)")
    with np.errstate(all="ignore"):
        point_d = np.stack([c.log_ratios() for c in columns], axis=1)  # [K, K]
    dominance = dominance_from_matrix(np.expm1(point_d), languages, confidence, seed)
    if not all(c.valid_rows().all() for c in columns):
        return dominance

    def statistic(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
        return dominance_statistics(log_ratio_cells(*samples, axis=axis))

    res = bootstrap_columns(columns, statistic, confidence, n_resamples, seed, "percentile")
    point = dominance_statistics(point_d)
    low, high = np.asarray(res.confidence_interval.low), np.asarray(res.confidence_interval.high)
    share = Replicates(float(point[0]), np.asarray(res.bootstrap_distribution)[0])
    return _assemble(languages, point, low, high, float(confidence), "percentile",
                     (dominance.p_value, dominance.permutations), share)


def diagonal_dominance(matrix: Sequence[Sequence[float]], seed: int = 0) -> dict[str, Any]:
    """Point summary of a matrix as plain numbers (the demo's and the battery's tables, the leaderboard).

    ``columns_diagonal_max`` and ``share`` (columns whose largest increase is on the diagonal), ``ratio``
    (geometric-mean perplexity ratio diagonal / off-diagonal, see the module docstring), ``rank_score`` and the
    permutation ``p_value``. A matrix of fewer than two languages has no off-diagonal: ratio and p are ``nan``.
    """
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] == 0:
        raise LangNeuronError(f"diagonal dominance needs a non-empty square matrix, got shape {m.shape}")
    if m.shape[0] == 1:
        return {"columns_diagonal_max": 1, "share": 1.0, "ratio": math.nan, "rank_score": math.nan,
                "p_value": math.nan, "permutations": 0}
    d = dominance_from_matrix(m, [str(i) for i in range(m.shape[0])], seed=seed)
    return {"columns_diagonal_max": d.columns_diagonal_max, "share": d.share.value, "ratio": d.ratio.value,
            "rank_score": d.rank_score.value, "p_value": d.p_value, "permutations": d.permutations}


def dominance_summary(doc: dict[str, Any] | None) -> dict[str, Any]:
    """Flat figures of a ``Dominance.to_dict()`` (as ``ppl_matrix.json`` stores it) for tables and golden files."""
    d = doc or {}
    share, ratio = d.get("share") or {}, d.get("ratio") or {}
    return {"columns_diagonal_max": d.get("columns_diagonal_max"), "share": share.get("value"),
            "share_se": share.get("se"), "share_ci": [share.get("ci_low"), share.get("ci_high")],
            "ratio": ratio.get("value"), "ratio_ci": [ratio.get("ci_low"), ratio.get("ci_high")],
            "p_value": d.get("p_value")}
