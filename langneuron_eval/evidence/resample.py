"""Per-document perplexity scores and the paired, stratified document bootstrap over them.

One :class:`PplDocs` holds the documents of one evaluated language (one column of the perplexity-change matrix)
under the baseline and every intervened run. :func:`bootstrap_columns` resamples documents with the same indices
for every run of a column (paired) and independently across columns (stratified), through
``scipy.stats.bootstrap``; :mod:`.ppl` and :mod:`.dominance` compute their statistics on it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from langneuron_eval.errors import LangNeuronError
from langneuron_eval.evidence.intervals import check_confidence

DEFAULT_RESAMPLES = 2000
BOOTSTRAP_METHODS = ("percentile", "BCa")
_MAX_ELEMENTS = 1 << 23  # resampled values held at once (64 MiB of float64): bounds memory for long corpora


@dataclass
class PplDocs:
    """Per-document scores behind one column (one evaluated language) of the perplexity-change matrix.

    ``units`` [n_docs]: bytes (or tokens/words) per document, the same in every run. ``baseline`` [n_docs]:
    negative log-likelihood (nats, summed over the document) without intervention. ``intervened``
    [n_rows, n_docs]: the same documents' NLL with row language i's neurons deactivated.
    """

    units: np.ndarray
    baseline: np.ndarray
    intervened: np.ndarray

    def __post_init__(self) -> None:
        self.units = np.asarray(self.units, dtype=float).ravel()
        self.baseline = np.asarray(self.baseline, dtype=float).ravel()
        self.intervened = np.atleast_2d(np.asarray(self.intervened, dtype=float))
        n = self.units.size
        if self.baseline.size != n or self.intervened.shape[1] != n:
            raise LangNeuronError(f"per-document scores disagree on the number of documents: units {n}, baseline "
                                  f"{self.baseline.size}, intervened {self.intervened.shape[1]}")
        if (self.units < 0).any():
            raise LangNeuronError("per-document unit counts (bytes, tokens or words) must not be negative")

    @property
    def n_docs(self) -> int:
        return int(self.units.size)

    @property
    def n_rows(self) -> int:
        return int(self.intervened.shape[0])

    def valid_rows(self) -> np.ndarray:
        """[n_rows] bool: the row's cell can get an interval (>= 2 documents, finite scores, units > 0)."""
        ok = self.n_docs >= 2 and bool(np.isfinite(self.units).all() and np.isfinite(self.baseline).all())
        ok = ok and self.units.sum() > 0
        return np.isfinite(self.intervened).all(axis=1) & ok

    def log_ratios(self) -> np.ndarray:
        """[n_rows] point log ratio ``(sum NLL_i - sum NLL_0) / sum units`` (inf/nan where the inputs are)."""
        with np.errstate(all="ignore"):
            return (self.intervened.sum(axis=1) - self.baseline.sum()) / self.units.sum()

    def sample(self) -> np.ndarray:
        """[n_rows + 2, n_docs] = units, baseline, intervened rows; invalid rows copy the baseline (d = 0)."""
        rows = np.where(self.valid_rows()[:, None], self.intervened, self.baseline[None, :])
        return np.vstack([self.units, self.baseline, rows])


def log_ratio_cells(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
    """Statistic for ``scipy.stats.bootstrap``: samples [n_rows + 2, ..., n_docs] -> log ratios [n_rows, C, ...]."""
    cols = []
    for s in samples:
        sums = s.sum(axis=axis)  # [n_rows + 2, ...]
        with np.errstate(all="ignore"):
            cols.append((sums[2:] - sums[1]) / sums[0])
    return np.stack(cols, axis=1)


def bootstrap_columns(columns: Sequence[PplDocs], statistic: Callable[..., np.ndarray], confidence: float,
                      n_resamples: int, seed: int, method: str) -> Any:
    """One ``scipy.stats.bootstrap`` over the valid columns (paired within a column, independent across)."""
    if method not in BOOTSTRAP_METHODS:
        raise LangNeuronError(f"bootstrap method must be one of {', '.join(BOOTSTRAP_METHODS)}, got {method!r}")
    if int(n_resamples) < 1:
        raise LangNeuronError(f"n_resamples must be a positive number, got {n_resamples!r}")
    data = [c.sample() for c in columns]
    batch = max(1, min(int(n_resamples), _MAX_ELEMENTS // max(1, sum(d.size for d in data))))
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        return stats.bootstrap(data, statistic, n_resamples=int(n_resamples), vectorized=True, axis=-1,
                               confidence_level=check_confidence(confidence), method=method, batch=batch,
                               rng=np.random.default_rng(seed))
