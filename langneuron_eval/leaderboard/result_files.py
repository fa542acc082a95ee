"""Reading lm-evaluation-harness 0.4.x results files into flat, validated records.

lm-eval's ``--output_path DIR`` writes ``DIR/<model>/results_<date_id>.json`` (the dict returned by
``simple_evaluate`` plus the tracker's fields) and, with ``--log_samples``, one
``samples_<task>_<date_id>.jsonl`` per task next to it. The keys read here are those of 0.4.13
(``evaluator.py``, ``evaluator_utils.py``, ``loggers/evaluation_tracker.py``):

* ``results``: ``{task_or_group: {"alias": ..., "<metric>,<filter>": value,
  "<metric>_stderr,<filter>": value | "N/A", "sample_len": n, ...}}``;
* ``config``: ``model``, ``model_args`` (dict or ``k=v,...`` string), ``limit`` and, for the
  ``langneuron`` model, ``langneuron`` (the intervention, see ``LangNeuronLM.intervention_info``);
* ``lm_eval_version``, ``git_hash``, ``transformers_version``, ``date`` (start time, epoch seconds);
* ``n-samples`` (``{task: {"original": n, "effective": n}}``), ``higher_is_better``, ``group_subtasks``.

Files are untrusted input: anything malformed raises :class:`SkipFile` with a one-line reason so the
caller can warn and go on with the other files.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langneuron_eval.errors import LangNeuronError
from langneuron_eval.lmeval.results import MalformedScore, MetricKey, Score, scores_of

SUPPORTED_LM_EVAL = re.compile(r"^0\.4\.\d+")  # 0.4.x, including 0.4.13.dev0 and the like
RESULTS_GLOB = re.compile(r"^results_.*\.json$")
MODEL_ARG_KEYS = ("peft", "delta", "pretrained", "model", "path", "engine")  # lm-eval's own order


class SkipFile(Exception):
    """A results file that cannot be used; the message is the one-line reason."""


@dataclass
class ResultFile:
    """What the leaderboard needs from one results file."""

    path: Path
    display: str  # the path as found under the user's argument; used in messages and the csv
    model: str
    detector: str
    neurons_sha256: str
    neurons_content_sha256: str
    detector_params: dict[str, Any] | None
    intervention: str
    package_version: str
    lm_eval_version: str
    git_hash: str
    transformers_version: str
    date: float | None
    limit: str
    scores: dict[MetricKey, Score] = field(default_factory=dict)
    higher_is_better: dict[tuple[str, str], bool] = field(default_factory=dict)
    samples: dict[str, int] = field(default_factory=dict)  # task -> documents evaluated
    target: str | None = None  # the one language an activate/scale run steers towards
    setting: str = ""  # that run's intervention with the target language left out (same for every target)
    ablated: str | None = None  # the one language a pure deactivate run switches off
    neuron_counts: dict[str, int] = field(default_factory=dict)  # language -> neurons in the neuron file

    @property
    def key(self) -> tuple[str, str, str, str]:
        """The configuration a row stands for: model, detector (by neuron file) and intervention."""
        return (self.model, self.detector, self.neurons_sha256 or self.neurons_content_sha256, self.intervention)


# ------------------------------------------------------------------------------------- discovery

def discover(arguments: list[str | os.PathLike]) -> list[tuple[Path, str]]:
    """``(path, display)`` of every ``results_*.json`` under the arguments, sorted and de-duplicated.

    A file argument is taken as it is (whatever its name), so a single renamed results file can
    be given too. Directories are walked without following symlinks, so a link cycle cannot hang
    the build.
    """
    found: dict[Path, str] = {}
    for arg in arguments:
        root = Path(arg)
        if not root.exists():
            raise LangNeuronError(f"results path not found: {arg}")
        if root.is_file():
            found.setdefault(root.resolve(), root.as_posix())
            continue
        hits: list[Path] = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            hits.extend(Path(dirpath) / f for f in sorted(filenames) if RESULTS_GLOB.match(f))
        for path in sorted(hits):
            found.setdefault(path.resolve(), path.as_posix())
    return sorted(((p, d) for p, d in found.items()), key=lambda x: x[1])


# ----------------------------------------------------------------------------------------- parsing

def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _expect(doc: dict[str, Any], key: str, kind: type | tuple[type, ...], what: str, required: bool = False) -> Any:
    if key not in doc or doc[key] is None:
        if required:
            raise SkipFile(f"missing {what}")
        return None
    if not isinstance(doc[key], kind):
        raise SkipFile(f"{what} has the wrong type ({type(doc[key]).__name__})")
    return doc[key]


def _model_args(args: Any) -> dict[str, str]:
    if isinstance(args, dict):
        return {str(k): str(v) for k, v in args.items() if v is not None}
    if isinstance(args, str):
        pairs = (part.split("=", 1) for part in args.split(",") if "=" in part)
        return {k.strip(): v.strip() for k, v in pairs}
    return {}


def model_name(doc: dict[str, Any], config: dict[str, Any]) -> str:
    """The evaluated model: ``model_args`` first (``pretrained=...``), then ``config.model``.

    ``config.model`` is the backend name (``hf``, ``langneuron``) for CLI runs but the model's path
    when ``simple_evaluate`` got a model instance; the tracker's top-level ``model_name`` is a
    random id when there were no ``model_args``, so it is the last resort.
    """
    args = _model_args(config.get("model_args"))
    for key in MODEL_ARG_KEYS:
        if args.get(key):
            return args[key]
    for candidate in (config.get("model"), doc.get("model_name")):
        if isinstance(candidate, str) and candidate:
            return candidate
    return "unknown"


def _fmt_number(value: Any) -> str:
    number = _number(value)
    return f"{number:g}" if number is not None else str(value)


def _langs(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [v for v in value.split("+") if v]
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [str(value)]


def describe_intervention(info: dict[str, Any] | None) -> str:
    """A canonical one-line description, e.g. ``activate(zh, value=mean, strength=1) + deactivate(de+en)``.

    Only the parameters a mode uses are shown, so runs that differ in an unused one (the value of
    a ``deactivate`` run) land in the same row; ``positions`` only when it is not the default.
    """
    if not info:
        return "none"
    mode = str(info.get("mode") or "none")
    langs = "+".join(_langs(info.get("lang")))
    ops: list[str] = []
    if mode == "activate":
        ops.append(f"activate({langs}, value={_fmt_number(info.get('value', 'mean'))}, "
                   f"strength={_fmt_number(info.get('strength', 1.0))})")
    elif mode == "scale":
        ops.append(f"scale({langs}, strength={_fmt_number(info.get('strength', 1.0))})")
    elif mode != "none":  # deactivate, and modes of a newer version, named as they are
        ops.append(f"{mode}({langs})")
    deactivated = _langs(info.get("deactivate"))
    if deactivated:
        ops.append(f"deactivate({'+'.join(deactivated)})")
    if not ops:
        return "none"
    positions = info.get("positions")
    suffix = f"; positions={positions}" if positions not in (None, "", "all") else ""
    return " + ".join(ops) + suffix


def _single_target(info: dict[str, Any]) -> tuple[str | None, str, str | None]:
    """``(target, setting, ablated)``: what a steering or ablation view needs from one intervention.

    A steering run activates (or scales) one language's neurons, often with every other language's
    neurons zeroed; its *setting* is the description with the language written ``<lang>`` and
    "every other language" written ``others``, so runs for different targets share one setting.
    """
    mode = str(info.get("mode") or "none")
    langs = _langs(info.get("lang"))
    deactivated = _langs(info.get("deactivate"))
    if mode in ("activate", "scale") and len(langs) == 1:
        known = set(_counts(info.get("neuron_counts")))
        others = info.get("deactivate_arg") == "others" or (
            bool(deactivated) and bool(known) and set(deactivated) | set(langs) >= known)
        generic = {**info, "lang": ["<lang>"], "deactivate": ["others"] if others and deactivated else deactivated}
        return langs[0], describe_intervention(generic), None
    if mode == "deactivate" and len(langs) == 1 and not deactivated:
        return None, "", langs[0]
    if mode == "none" and len(deactivated) == 1:
        return None, "", deactivated[0]
    return None, "", None


def _counts(value: Any) -> dict[str, int]:
    if not isinstance(value, dict):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, int) and not isinstance(v, bool)}


def _samples_file_counts(path: Path, tasks: list[str]) -> dict[str, int]:
    """Lines of ``samples_<task>_<date_id>.jsonl`` next to ``results_<date_id>.json``, where present."""
    if not path.name.startswith("results_"):
        return {}
    date_id = path.stem[len("results_"):]
    counts: dict[str, int] = {}
    for task in tasks:
        sample_path = path.with_name(f"samples_{task}_{date_id}.jsonl")
        if not sample_path.is_file():
            continue
        try:
            with open(sample_path, "rb") as f:
                counts[task] = sum(1 for line in f if line.strip())
        except OSError:
            continue  # the results file alone still gives n-samples
    return counts


def _scores(results: dict[str, Any]) -> dict[MetricKey, Score]:
    try:
        return scores_of({"results": results}, strict=True, sections=("results",))
    except MalformedScore as e:
        raise SkipFile(str(e)) from None


def _higher_is_better(doc: dict[str, Any]) -> dict[tuple[str, str], bool]:
    hib = _expect(doc, "higher_is_better", dict, "'higher_is_better'") or {}
    out: dict[tuple[str, str], bool] = {}
    for task, metrics in hib.items():
        if isinstance(metrics, dict):
            out.update({(task, m): v for m, v in metrics.items() if isinstance(v, bool)})
    return out


def _sample_counts(doc: dict[str, Any], path: Path, results: dict[str, Any]) -> dict[str, int]:
    groups = _expect(doc, "group_subtasks", dict, "'group_subtasks'") or {}
    n_samples = _expect(doc, "n-samples", dict, "'n-samples'") or {}
    tasks = sorted(t for t in results if t not in groups)
    counts = _samples_file_counts(path, tasks)
    for task in tasks:
        if task in counts:
            continue
        entry = n_samples.get(task)
        effective = entry.get("effective") if isinstance(entry, dict) else None
        if effective is None:
            effective = results[task].get("sample_len")
        if isinstance(effective, int) and not isinstance(effective, bool):
            counts[task] = effective
    return counts


def read_result_file(path: Path, display: str) -> ResultFile:
    """Parse and validate one results file; raise :class:`SkipFile` naming what is wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SkipFile(f"cannot read it ({e.__class__.__name__}: {e})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise SkipFile(f"not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    if not isinstance(doc, dict):
        raise SkipFile("not a JSON object")
    version = doc.get("lm_eval_version")
    if not isinstance(version, str) or not version:
        raise SkipFile("no 'lm_eval_version' (not an lm-eval 0.4 results file)")
    if not SUPPORTED_LM_EVAL.match(version):
        raise SkipFile(f"lm-eval version {version!r} is not supported (this reads 0.4.x results)")
    results = _expect(doc, "results", dict, "'results'", required=True)
    config = _expect(doc, "config", dict, "'config'") or {}
    info = _expect(config, "langneuron", dict, "'config.langneuron'")
    scores = _scores(results)
    if not scores:
        raise SkipFile("'results' holds no metrics")
    date = _expect(doc, "date", (int, float), "'date'")
    params = info.get("detector_params", info.get("params")) if info else None
    limit = _number(config.get("limit"))
    neurons = (info or {}).get("neurons")
    detector = (info or {}).get("detector")
    target, setting, ablated = _single_target(info or {})

    def text_of(obj: dict[str, Any] | None, key: str) -> str:
        value = (obj or {}).get(key)
        return "" if value is None else str(value)

    return ResultFile(
        path=path,
        display=display,
        model=model_name(doc, config),
        detector=str(detector) if detector else ("unknown" if neurons else "none"),
        neurons_sha256=text_of(info, "neurons_sha256"),
        neurons_content_sha256=text_of(info, "neurons_content_sha256"),
        detector_params=params if isinstance(params, dict) else None,
        intervention=describe_intervention(info),
        package_version=text_of(info, "langneuron_eval_version"),
        lm_eval_version=version,
        git_hash=text_of(doc, "git_hash"),
        transformers_version=text_of(doc, "transformers_version"),
        date=None if isinstance(date, bool) else date,
        limit="all" if limit is None else f"{limit:g}",
        scores=scores,
        higher_is_better=_higher_is_better(doc),
        samples=_sample_counts(doc, path, results),
        target=target,
        setting=setting,
        ablated=ablated,
        neuron_counts=_counts((info or {}).get("neuron_counts")),
    )
