"""lm-eval results files that are byte-identical for the same inputs and seeds.

lm-eval's ``--output_path`` writes ``results_<timestamp>.json`` holding, besides the scores, the wall
clock (``date``) and the run time (``total_evaluation_time_seconds``), so two identical runs never give
the same bytes, and the file name changes every run. Everything else it records is a function of the
model, tasks, arguments, seeds and installed versions (``config.random_seed`` ... ``fewshot_seed``,
``lm_eval_version``, ``transformers_version``, ``pretty_env_info``, and ``config.langneuron`` for the
intervention), and per-sample files are already reproducible. :func:`normalize` drops exactly the
clock fields and records which ones it dropped; :func:`write_results` writes the result with sorted
keys. ``langneuron normalize-results`` does this for the files of an ``lm_eval`` run.

It is also the one reader of the scores in a results dict: :class:`MetricKey` names a score
(task, metric, filter) everywhere, :func:`scores_of` reads them all, :func:`metric` and
:func:`metric_stderr` read one.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langneuron_eval.errors import LangNeuronError
from langneuron_eval.fileio import write_text

_NOT_SCORES = {"alias", "name", "sample_len", "sample_count", " "}


@dataclass(frozen=True, order=True)
class MetricKey:
    """One score of a results file: a metric of a task (or group) after a filter."""

    task: str
    metric: str
    filter: str = "none"

    @property
    def name(self) -> str:
        """``task/metric`` (plus ``[filter]`` when the filter is not lm-eval's default ``none``)."""
        base = f"{self.task}/{self.metric}"
        return base if self.filter == "none" else f"{base}[{self.filter}]"


@dataclass(frozen=True)
class Score:
    value: float | None  # None only from a lenient read of a value that is not a number
    stderr: float | None  # None where lm-eval wrote "N/A" (single sample, no bootstrap) or nothing


class MalformedScore(LangNeuronError):
    """A score entry that is not a number, met by a strict read (the message names it)."""


def _lenient_number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None  # lm-eval writes "N/A" for a missing stderr
    return x if math.isfinite(x) else None


def _strict_number(value: Any, task: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MalformedScore(f"results[{task!r}][{key!r}] is not a number")
    return float(value)


def _entries(section: dict[str, Any], strict: bool) -> Iterator[tuple[str, str, Any]]:
    """(task, "<metric>,<filter>" key, value) of every score-like entry of a results section."""
    for task, entry in section.items():
        if not isinstance(entry, dict):
            if strict:
                raise MalformedScore(f"results[{task!r}] is not an object")
            continue
        for key, value in entry.items():
            if isinstance(key, str) and "," in key and key not in _NOT_SCORES:
                yield task, key, value


def scores_of(doc: dict[str, Any], strict: bool = False, sections: tuple[str, ...] = ("results", "groups")
              ) -> dict[MetricKey, Score]:
    """Every score of a results dict with its stderr.

    Lenient (default): a value that is not a finite number reads as None. Strict (untrusted files for the
    leaderboard): anything but a number, or a stderr other than a number or "N/A", raises
    :class:`MalformedScore`. A key present in several sections keeps its first reading.
    """
    values: dict[MetricKey, float | None] = {}
    stderrs: dict[MetricKey, float | None] = {}
    for section in sections:
        for task, key, value in _entries(doc.get(section) or {}, strict):
            metric, _, filt = key.partition(",")
            if metric.endswith("_stderr"):
                mk = MetricKey(task, metric[: -len("_stderr")], filt)
                if value == "N/A" or value is None:
                    stderrs.setdefault(mk, None)
                else:
                    stderrs.setdefault(mk, _strict_number(value, task, key) if strict else _lenient_number(value))
                continue
            mk = MetricKey(task, metric, filt)
            if mk not in values:
                values[mk] = _strict_number(value, task, key) if strict else _lenient_number(value)
    return {mk: Score(v, stderrs.get(mk)) for mk, v in values.items()}


def metric(results: dict[str, Any], task: str, name: str, filter_name: str = "none") -> float:
    """One score from a results dict, e.g. ``metric(res, "lang_ppl_zh", "byte_perplexity")``."""
    try:
        return float(results["results"][task][f"{name},{filter_name}"])
    except KeyError:
        have = sorted(results.get("results", {}).get(task, {}))
        raise LangNeuronError(f"no metric {name!r} for task {task!r} in the results (have: {', '.join(have)})") from None


def metric_stderr(results: dict[str, Any], task: str, name: str, filter_name: str = "none") -> float | None:
    """A metric's stderr from lm-eval results, or ``None`` where lm-eval has none ("N/A")."""
    return _lenient_number(results["results"].get(task, {}).get(f"{name}_stderr,{filter_name}"))


def first_metric(results: dict[str, Any], task: str, names: tuple[str, ...]) -> float | None:
    """The first of ``names`` that ``task`` reports (e.g. ``("f1", "acc")``), or None."""
    got = results["results"].get(task, {})
    return next((float(got[f"{n},none"]) for n in names if f"{n},none" in got), None)


# top-level keys of an lm-eval results dict that change from run to run (clock readings)
VOLATILE_KEYS = ("date", "start_time", "end_time", "total_evaluation_time_seconds")
NORMALIZED_KEY = "langneuron_normalized"


def find_results(path: str | os.PathLike) -> Path:
    """``path`` itself if it is a file, else the newest ``results_*.json`` below the directory."""
    path = Path(path)
    if not path.exists():
        raise LangNeuronError(f"results path not found: {path}")
    if path.is_file():
        return path
    found = [p for p in path.rglob("results_*.json") if p.is_file()]
    if not found:
        raise LangNeuronError(f"no results_*.json below {path}; pass the results file itself")
    return max(found, key=lambda p: (p.stat().st_mtime, p.name))


def normalize(results: dict[str, Any]) -> dict[str, Any]:
    """A copy of an lm-eval results dict without clock fields and per-sample records.

    Samples go to their own files (lm-eval's ``samples_<task>_*.jsonl``), as with ``--output_path``.
    """
    if not isinstance(results, dict) or not isinstance(results.get("results"), dict):
        raise LangNeuronError("not an lm-eval results dict (no 'results' section)")
    dropped = sorted(k for k in VOLATILE_KEYS if k in results)
    body = {k: v for k, v in results.items() if k not in VOLATILE_KEYS and k != "samples"}
    body[NORMALIZED_KEY] = {"dropped": sorted({*dropped, *(results.get(NORMALIZED_KEY) or {}).get("dropped", [])})}
    return body


def dumps(results: dict[str, Any]) -> str:
    """Normalised results as text: sorted keys, 2-space indent, non-JSON values as strings (as lm-eval)."""
    return json.dumps(normalize(results), indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n"


def write_results(path: str | os.PathLike, results: dict[str, Any], force: bool = True) -> Path:
    """Write normalised results atomically (``force=False`` refuses to replace an existing file)."""
    return write_text(path, dumps(results), force=force)
