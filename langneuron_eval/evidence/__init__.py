"""Statistical evidence: intervals, tests and the noise model behind every published figure (numpy/scipy only).

* :mod:`.intervals`: :class:`Interval`, Wilson/exact rate intervals, t intervals of means, Newcombe intervals of
  rate gains (paired and unpaired), bootstrap :class:`Replicates` (e.g. of the steered share);
* :mod:`.resample` and :mod:`.ppl`: paired document bootstrap of the perplexity-change matrix, and
  :func:`attach_evidence` that fills a ``ppl_matrix.json``'s intervals and dominance;
* :mod:`.dominance`: diagonal dominance with intervals and an exact permutation p-value;
* :mod:`.floor`: the random control as a null distribution;
* :mod:`.ranking`: ties with the leader, Holm/Bonferroni, simultaneous confidence over settings;
* :mod:`.regression`: golden-file figures with a noise model, Holm-corrected one-sided tests;
* :mod:`.verdict`: holds / does not hold / inconclusive from an interval and a threshold.

docs/statistics.md explains each choice.
"""

from langneuron_eval.evidence.dominance import (
    Dominance,
    diagonal_dominance,
    dominance_from_docs,
    dominance_from_matrix,
)
from langneuron_eval.evidence.floor import DEFAULT_DRAWS, FLOOR_RULE, FloorComparison, compare_to_floor
from langneuron_eval.evidence.intervals import (
    DEFAULT_CONFIDENCE,
    Gain,
    Interval,
    Replicates,
    mean_interval,
    normal_interval,
    paired_rate_gain,
    rate_gain,
    rate_interval,
    steering_replicates,
    successes_of,
)
from langneuron_eval.evidence.ppl import (
    MatrixIntervals,
    attach_evidence,
    docs_from_layout,
    ppl_change_intervals,
)
from langneuron_eval.evidence.ranking import Ties, bonferroni, holm, simultaneous_confidence, ties_with_leader
from langneuron_eval.evidence.regression import Figure, RegressionRecord, check_regressions, drop_test
from langneuron_eval.evidence.resample import DEFAULT_RESAMPLES, PplDocs
from langneuron_eval.evidence.verdict import DOES_NOT_HOLD, HOLDS, INCONCLUSIVE, VERDICT_RULE, verdict

__all__ = [
    "DEFAULT_CONFIDENCE", "DEFAULT_DRAWS", "DEFAULT_RESAMPLES", "DOES_NOT_HOLD", "FLOOR_RULE", "HOLDS",
    "INCONCLUSIVE", "VERDICT_RULE", "Dominance", "Figure", "FloorComparison", "Gain", "Interval",
    "MatrixIntervals", "PplDocs", "RegressionRecord", "Replicates", "Ties", "attach_evidence", "bonferroni",
    "check_regressions", "diagonal_dominance", "docs_from_layout",
    "compare_to_floor", "dominance_from_docs", "dominance_from_matrix", "drop_test", "holm", "mean_interval",
    "normal_interval", "paired_rate_gain", "ppl_change_intervals", "rate_gain", "rate_interval",
    "simultaneous_confidence", "steering_replicates", "successes_of", "ties_with_leader", "verdict",
]
