"""From results files to one table row per (model, detector, intervention), and the build that writes it all.

A configuration is usually evaluated in several lm-eval runs (one per task family, re-runs after a
crash), so rows merge every file with the same model, neuron file (by sha256, which pins the
detector and its parameters) and intervention. When two files score the same task, the newer one
(lm-eval's ``date``) wins and a note says so. Rows and columns are sorted and nothing about the
build itself (time, absolute output path) is written, so the same inputs give the same bytes.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langneuron_eval.errors import LangNeuronError
from langneuron_eval.fileio import check_output_dir, check_writable, write_bytes, write_text

from .results import MetricKey, ResultFile, Score, SkipFile, discover, read_result_file
from .sources import NeuronLayers, PplMatrix, load_neuron_layers, load_ppl_matrix

OUTPUT_NAMES = ("leaderboard.md", "leaderboard.csv", "index.html")

Warn = Callable[[str], None]


def _stderr_warn(message: str) -> None:
    print(f"langneuron leaderboard: {message}", file=sys.stderr)


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


def read_results(arguments: Sequence[str | os.PathLike], warn: Warn) -> tuple[list[ResultFile], list[tuple[str, str]]]:
    """Every usable results file under ``arguments``; the others are reported through ``warn``."""
    usable: list[ResultFile] = []
    skipped: list[tuple[str, str]] = []
    for path, display in discover(list(arguments)):
        try:
            usable.append(read_result_file(path, display))
        except SkipFile as e:
            skipped.append((display, str(e)))
            warn(f"warning: skipping {display}: {e}")
    return usable, skipped


def build_table(files: list[ResultFile], neurons: Sequence[NeuronLayers] = (), warn: Warn = _stderr_warn,
                skipped: list[tuple[str, str]] | None = None) -> Table:
    """Group files into rows, oldest first so that newer scores replace older ones."""
    by_sha: dict[str, NeuronLayers] = {}
    for nl in neurons:
        by_sha.setdefault(nl.sha256, nl)
        by_sha.setdefault(nl.content_sha256, nl)
    rows: dict[tuple[str, str, str, str], Row] = {}
    hib: dict[tuple[str, str], bool] = {}
    ordered = sorted(files, key=lambda f: (f.date if f.date is not None else float("-inf"), f.display))
    for f in ordered:
        row = rows.get(f.key)
        if row is None:
            row = rows[f.key] = Row(model=f.model, detector=f.detector, neurons_sha256=f.key[2],
                                    intervention=f.intervention)
        row.files.append(f)
        replaced: dict[str, set[str]] = {}  # older file -> tasks whose scores the newer file changes
        for mk, score in f.scores.items():
            if mk in row.scores and row.scores[mk] != score:
                replaced.setdefault(row.sources[mk].display, set()).add(mk.task)
            row.scores[mk] = score
            row.sources[mk] = f
        for older, tasks in sorted(replaced.items()):
            warn(f"note: {', '.join(sorted(tasks))} of {f.model} [{f.detector}, {f.intervention}] is in {older} "
                 f"and {f.display}; using the newer {f.display}")
        row.samples.update(f.samples)
        hib.update(f.higher_is_better)
        if f.detector_params is not None:
            row.detector_params = f.detector_params
    for row in rows.values():
        match = by_sha.get(row.neurons_sha256) or next(
            (by_sha[f.neurons_content_sha256] for f in row.files if f.neurons_content_sha256 in by_sha), None)
        if match is not None:
            row.detector_params = match.params  # the neuron file is the authority on its own parameters
            if row.detector in ("unknown", "none"):
                row.detector = match.detector
    ordered_rows = sorted(rows.values(), key=Row.sort_key)
    for i, row in enumerate(ordered_rows, 1):
        row.id = f"R{i}"
    columns = sorted({mk for row in ordered_rows for mk in row.scores}, key=lambda m: (m.task, m.metric, m.filter))
    return Table(rows=ordered_rows, columns=columns, higher_is_better=hib, n_files=len(files),
                 skipped=list(skipped or []))


def build_leaderboard(results: Sequence[str | os.PathLike], out: str | os.PathLike,
                      ppl_matrices: Sequence[str | os.PathLike] = (), neurons: Sequence[str | os.PathLike] = (),
                      force: bool = False, warn: Warn = _stderr_warn) -> list[Path]:
    """Read everything, then write ``leaderboard.md``, ``leaderboard.csv`` and ``index.html`` atomically.

    Existing outputs are refused (before any reading) unless ``force``; figure inputs are read
    before anything is written, so a bad ``--ppl-matrix`` or ``--neurons`` file leaves no output.

    Returns:
        The written paths, in :data:`OUTPUT_NAMES` order.
    """
    from . import html, tables

    out_dir = check_output_dir(out)
    targets = [out_dir / name for name in OUTPUT_NAMES]
    for target in targets:
        check_writable(target, force)
    matrices: list[PplMatrix] = [load_ppl_matrix(p) for p in ppl_matrices]
    layers: list[NeuronLayers] = [load_neuron_layers(p) for p in neurons]
    files, skipped = read_results(results, warn)
    if not files:
        raise LangNeuronError(
            f"no usable lm-eval results files (results_*.json) under {', '.join(str(r) for r in results)}"
            + (f"; {len(skipped)} skipped" if skipped else ""))
    table = build_table(files, layers, warn, skipped)
    md, csv_text = tables.to_markdown(table), tables.to_csv(table)
    page = html.render_page(table, matrices, layers)
    write_text(targets[0], md, force=force)
    write_text(targets[1], csv_text, force=force)
    write_bytes(targets[2], page.encode("utf-8"), force=force)
    return targets


