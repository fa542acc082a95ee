"""The leaderboard's data types, shared by the builder and every renderer (Markdown, CSV, HTML).

Renderers depend on this module and on nothing of each other, so there is no import cycle between
:mod:`.build`, :mod:`.tables` and :mod:`.html`. A :class:`Row` is one evaluated configuration (the
full configuration table); a :class:`View` is one ranked table that answers one question (which
detector works, how far steering moves each language, what alignment changed), made of
:class:`Cell` values so the three formats show the same numbers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from langneuron_eval.leaderboard.result_files import ResultFile
from langneuron_eval.lmeval.results import MetricKey, Score

Warn = Callable[[str], None]

# a model fetched from the hub into the cache: .../models--org--name/snapshots/<40 hex>/
_HF_SNAPSHOT = re.compile(r"models--(?P<org>[^/\\]+?)--(?P<name>[^/\\]+)[/\\]snapshots[/\\][0-9a-f]{40}[/\\]?$")
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:[/\\]")


@dataclass
class Row:
    """One configuration: the merged scores of every results file that evaluated it."""

    model: str
    detector: str
    neurons_sha256: str
    intervention: str
    files: list[ResultFile] = field(default_factory=list)
    scores: dict[MetricKey, Score] = field(default_factory=dict)
    sources: dict[MetricKey, ResultFile] = field(default_factory=dict)  # the file each score comes from
    samples: dict[str, int] = field(default_factory=dict)
    detector_params: dict[str, Any] | None = None
    id: str = ""
    name: str = ""  # the model's display name (hub id or directory name), set by the builder

    def joined(self, attr: str) -> str:
        """Distinct non-empty values of a file attribute, sorted, so disagreeing files stay visible."""
        return "; ".join(sorted({str(getattr(f, attr)) for f in self.files if getattr(f, attr) not in (None, "")}))

    @property
    def date(self) -> float | None:
        dates = [f.date for f in self.files if f.date is not None]
        return max(dates) if dates else None

    @property
    def total_samples(self) -> int | None:
        return sum(self.samples.values()) if self.samples else None

    @property
    def params_text(self) -> str:
        return format_params(self.detector_params)

    @property
    def content_sha256(self) -> str:
        return next((f.neurons_content_sha256 for f in self.files if f.neurons_content_sha256), "")

    @property
    def first(self) -> ResultFile:
        """Any file of the row; all share the row's key, so their intervention structure is the same."""
        return self.files[0]

    def sort_key(self) -> tuple:
        # baseline rows (no detector, no intervention) first within a model
        return (self.model, self.detector != "none", self.detector, self.intervention != "none", self.intervention,
                self.neurons_sha256)


@dataclass
class Table:
    rows: list[Row]
    columns: list[MetricKey]
    higher_is_better: dict[tuple[str, str], bool]
    n_files: int
    skipped: list[tuple[str, str]]  # (file, reason)
    names: dict[str, str] = field(default_factory=dict)  # model as recorded -> display name

    @property
    def has_dates(self) -> bool:
        """Normalised results files drop lm-eval's ``date``; then no date column is shown."""
        return any(row.date is not None for row in self.rows)


@dataclass(frozen=True)
class Cell:
    """One table cell: its text, and for numbers the value (CSV, sorting) and standard error."""

    text: str
    value: float | None = None
    stderr: float | None = None
    title: str = ""  # a tooltip in HTML (full path, exact value)
    csv: str | None = None  # the CSV text where it differs from the value (``5/6``)
    low: float | None = None  # interval bounds, in the units of the value (CSV: <column>_ci_low/_ci_high)
    high: float | None = None


@dataclass
class Block:
    """One table of a view (a view has one per model where it compares things within a model)."""

    caption: str
    header: list[str]
    rows: list[list[Cell]]
    numeric: list[bool]
    row_kinds: list[str] = field(default_factory=list)  # "", "control" or "baseline", per row
    csv_keys: list[dict[str, str]] = field(default_factory=list)  # per row, CSV-only columns (full model name)
    anchor: str = ""  # the table's permalink id in the page
    kind: str = ""  # what the table holds where a view has several kinds ("quality" for steering damage)


@dataclass
class View:
    """A ranked table (or a few) that answers one question; ``id`` is its permalink anchor and CSV name."""

    id: str
    title: str
    question: str
    blocks: list[Block]
    notes: list[str] = field(default_factory=list)
    key_columns: int = 2  # columns repeated when a table is split to stay narrow


def format_params(params: dict[str, Any] | None) -> str:
    """``name=value`` pairs in name order; values as JSON so types stay visible (``true``, ``0.01``)."""
    if not params:
        return ""
    return ", ".join(f"{k}={v if isinstance(v, str) else json.dumps(v, sort_keys=True)}"
                     for k, v in sorted(params.items(), key=lambda kv: str(kv[0])))


def format_date(epoch: float | None, precise: bool = False) -> str:
    """UTC, so the same results file gives the same text on every machine."""
    if epoch is None:
        return ""
    try:
        when = dt.datetime.fromtimestamp(epoch, dt.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return ""
    return when.strftime("%Y-%m-%dT%H:%M:%SZ" if precise else "%Y-%m-%d %H:%M")


def _is_path(name: str) -> bool:
    return (name.startswith(("/", "~", "./", "../", "\\")) or bool(_WINDOWS_DRIVE.match(name))
            or name.count("/") > 1 or "\\" in name)


def short_model_name(name: str) -> str:
    """A hub id stays as it is; a local path becomes its directory name (``demo-base``).

    A path into the hub cache (``.../models--org--name/snapshots/<hash>``) becomes ``org/name``.
    """
    snapshot = _HF_SNAPSHOT.search(name)
    if snapshot:
        return f"{snapshot['org']}/{snapshot['name']}"
    if not _is_path(name):
        return name
    parts = [p for p in re.split(r"[/\\]", name) if p not in ("", ".")]
    return parts[-1] if parts else name


def display_names(models: Iterable[str]) -> dict[str, str]:
    """Short names for every model, unique: clashing directory names keep their parent folder, then a hash."""
    models = sorted(set(models))
    names = {m: short_model_name(m) for m in models}
    for short in sorted(set(names.values())):
        clashing = [m for m in models if names[m] == short]
        if len(clashing) < 2:
            continue
        for m in clashing:
            parts = [p for p in re.split(r"[/\\]", m) if p]
            names[m] = "/".join(parts[-2:]) if len(parts) >= 2 else m
        if len({names[m] for m in clashing}) < len(clashing):
            for m in clashing:
                names[m] = f"{short} #{hashlib.sha256(m.encode('utf-8')).hexdigest()[:6]}"
    return names
