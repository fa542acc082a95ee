"""``leaderboard.md`` and ``leaderboard.csv``: the same rows, for reading and for machines.

Both are deterministic: rows and columns come sorted from :mod:`.build`, floats have one fixed
format (4 decimals in Markdown; Python's shortest round-trip ``repr`` in CSV, so no precision is
lost) and nothing about the build itself is written. Strings from results files are escaped for
their format: HTML-significant characters and ``|`` in Markdown (which is often rendered as HTML),
and spreadsheet formula prefixes in CSV (a model named ``=HYPERLINK(...)`` stays text).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass

from .build import Row, Table, format_date
from .results import Score

SHORT_SHA = 12
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


@dataclass(frozen=True)
class Field:
    """A provenance column: its CSV name, Markdown header and how to read it from a row."""

    csv_name: str
    md_header: str | None  # None: CSV only (kept out of the Markdown to keep it readable)
    csv_value: Callable[[Row], str]
    md_value: Callable[[Row], str] | None = None


def _lm_eval_md(row: Row) -> str:
    version, git = row.joined("lm_eval_version"), row.joined("git_hash")
    return f"{version} ({git[:7]})" if git and ";" not in git else version


def _samples(row: Row) -> str:
    total = row.total_samples
    return "" if total is None else str(total)


FIELDS: tuple[Field, ...] = (
    Field("id", "id", lambda r: r.id),
    Field("model", "model", lambda r: r.model),
    Field("detector", "detector", lambda r: r.detector),
    Field("detector_params", "detector params", lambda r: r.params_text),
    Field("intervention", "intervention", lambda r: r.intervention),
    Field("neurons_sha256", "neurons sha256", lambda r: r.neurons_sha256, lambda r: r.neurons_sha256[:SHORT_SHA]),
    Field("langneuron_eval_version", "langneuron-eval", lambda r: r.joined("package_version")),
    Field("lm_eval_version", "lm-eval", lambda r: r.joined("lm_eval_version"), _lm_eval_md),
    Field("lm_eval_git_hash", None, lambda r: r.joined("git_hash")),
    Field("transformers_version", None, lambda r: r.joined("transformers_version")),
    Field("date", "date (UTC)", lambda r: format_date(r.date, precise=True), lambda r: format_date(r.date)),
    Field("limit", "limit", lambda r: r.joined("limit")),
    Field("samples", "samples", _samples),
    Field("result_files", None, lambda r: ";".join(f.display for f in r.files)),
)


# ------------------------------------------------------------------------------------- formatting

def fmt_md_number(value: float) -> str:
    return f"{value:.4f}"


def fmt_md_score(score: Score | None) -> str:
    if score is None:
        return ""
    text = fmt_md_number(score.value)
    return text if score.stderr is None else f"{text} ± {fmt_md_number(score.stderr)}"


def fmt_csv_number(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def md_escape(text: str) -> str:
    """One table cell: no line breaks, no raw HTML, no column-splitting pipes."""
    text = _CONTROL.sub(" ", text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("\\", "\\\\").replace("|", "\\|")


def csv_text(text: str) -> str:
    """Keep a spreadsheet from evaluating a cell that starts like a formula (numbers are left alone)."""
    if text.startswith(_FORMULA_START) and not _NUMBER.match(text):
        return "'" + text
    return text


# ----------------------------------------------------------------------------------------- tables

def to_markdown(table: Table) -> str:
    fields = [f for f in FIELDS if f.md_header is not None]
    header = [f.md_header or "" for f in fields] + [mk.name for mk in table.columns]
    lines = [
        "# langneuron-eval leaderboard",
        "",
        f"{len(table.rows)} configuration(s) from {table.n_files} lm-eval results file(s). "
        "Scores are mean ± standard error as lm-eval reports them; full hashes and versions are in leaderboard.csv.",
        "",
        "| " + " | ".join(md_escape(h) for h in header) + " |",
        "|" + "|".join("---" if i < len(fields) else "---:" for i in range(len(header))) + "|",
    ]
    for row in table.rows:
        cells = [md_escape((f.md_value or f.csv_value)(row)) for f in fields]
        cells += [fmt_md_score(row.scores.get(mk)) for mk in table.columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def to_csv(table: Table) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    header = [f.csv_name for f in FIELDS]
    for mk in table.columns:
        header += [mk.name, f"{mk.name}_stderr"]
    writer.writerow(header)
    for row in table.rows:
        cells = [csv_text(f.csv_value(row)) for f in FIELDS]
        for mk in table.columns:
            score = row.scores.get(mk)
            cells += ["", ""] if score is None else [fmt_csv_number(score.value), fmt_csv_number(score.stderr)]
        writer.writerow(cells)
    return buf.getvalue()
