"""The columns of the full configuration table: CSV name, readable header, and how a row fills them.

Shared by the CSV writer (:mod:`.tables`) and the page (:mod:`.html`), which show the same fields.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from langneuron_eval.leaderboard.table import Row, format_date
from langneuron_eval.lmeval.results import Score

SHORT_SHA = 12


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
    Field("model", "model", lambda r: r.model, lambda r: r.name or r.model),
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


def fmt_md_number(value: float) -> str:
    return f"{value:.4f}"


def fmt_md_score(score: Score | None) -> str:
    if score is None:
        return ""
    text = fmt_md_number(score.value)
    return text if score.stderr is None else f"{text} ± {fmt_md_number(score.stderr)}"


