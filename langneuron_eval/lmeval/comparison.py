"""Base vs aligned (or intervened): per-task, per-metric differences between two lm-eval runs.

Used by ``langneuron compare`` and by the leaderboard's alignment table, so both report the same
numbers. For every task and metric present in both runs: base value, aligned value, delta
(aligned - base), the combined standard error ``sqrt(se_base² + se_aligned²)`` from the stderrs
lm-eval reports (the two runs are independent samples; ``None`` when lm-eval has none, e.g. for
perplexities or corpus BLEU) and ``z = delta / se``. A |z| below ~2 is within noise.
"""

from __future__ import annotations

import fnmatch
import math
from pathlib import Path
from typing import Any

from langneuron_eval.errors import LangNeuronError
from langneuron_eval.fileio import read_json
from langneuron_eval.lmeval.results import MetricKey, Score, scores_of

Scores = dict[MetricKey, Score]


def load_scores(path: Path) -> tuple[Scores, dict[str, Any]]:
    """The scores of one results file, and the file's whole document (for ``higher_is_better``)."""
    doc = read_json(path, "lm-eval results file")
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), dict):
        raise LangNeuronError(f"{path} is not an lm-eval results file (no 'results' section)")
    return scores_of(doc), doc


def difference(base: Score, aligned: Score) -> dict[str, float | None]:
    """Delta, combined stderr and z of one metric (``None`` where an input is missing)."""
    b, a = base.value, aligned.value
    delta = None if b is None or a is None else a - b
    se = None
    if base.stderr is not None and aligned.stderr is not None:
        se = math.sqrt(base.stderr ** 2 + aligned.stderr ** 2)
    z = delta / se if delta is not None and se else None
    return {"delta": delta, "stderr": se, "z": z}


def compare(base: Scores, aligned: Scores, tasks: list[str] | None = None, metrics: list[str] | None = None,
            higher_is_better: dict[str, dict[str, bool]] | None = None) -> list[dict[str, Any]]:
    """One row per (task, metric, filter) in both runs, sorted; ``tasks`` are globs, ``metrics`` names."""
    rows = []
    for key in sorted(set(base) & set(aligned)):
        task, metric, filt = key.task, key.metric, key.filter
        if tasks and not any(fnmatch.fnmatchcase(task, pat) for pat in tasks):
            continue
        if metrics and metric not in metrics:
            continue
        b, a = base[key], aligned[key]
        diff = difference(b, a)
        rows.append({"task": task, "metric": metric, "filter": filt, "base": b.value, "aligned": a.value,
                     "delta": diff["delta"], "base_stderr": b.stderr, "aligned_stderr": a.stderr,
                     "stderr": diff["stderr"], "z": diff["z"],
                     "higher_is_better": (higher_is_better or {}).get(task, {}).get(metric)})
    return rows
