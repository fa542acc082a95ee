"""lm-eval results files that are byte-identical for the same inputs and seeds.

lm-eval's ``--output_path`` writes ``results_<timestamp>.json`` holding, besides the scores, the wall
clock (``date``) and the run time (``total_evaluation_time_seconds``), so two identical runs never give
the same bytes, and the file name changes every run. Everything else it records is a function of the
model, tasks, arguments, seeds and installed versions (``config.random_seed`` ... ``fewshot_seed``,
``lm_eval_version``, ``transformers_version``, ``pretty_env_info``, and ``config.langneuron`` for the
intervention), and per-sample files are already reproducible. :func:`normalize` drops exactly the
clock fields and records which ones it dropped; :func:`write_results` writes the result with sorted
keys. ``langneuron normalize-results`` does this for the files of an ``lm_eval`` run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from langneuron_eval.errors import LangNeuronError
from langneuron_eval.fileio import write_text

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
