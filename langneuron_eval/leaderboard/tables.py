"""``leaderboard.md`` (the ranked views, to read) and the CSV files (every configuration, every view, for machines).

The Markdown holds the views only, each table at most :data:`MAX_COLUMNS` wide (wider ones are
split, repeating their key columns); the full configuration table, with paths, hashes and versions,
is ``leaderboard.csv``. All outputs are deterministic: rows and columns come sorted, floats have
one fixed format (Python's shortest round-trip ``repr`` in CSV, so no precision is lost) and
nothing about the build itself is written. Strings from results files are escaped for
their format: HTML-significant characters and ``|`` in Markdown (which is often rendered as HTML),
and spreadsheet formula prefixes in CSV (a model named ``=HYPERLINK(...)`` stays text).
"""

from __future__ import annotations

import csv
import io
import re

from langneuron_eval.leaderboard.columns import FIELDS
from langneuron_eval.leaderboard.table import Block, Cell, Table, View

MAX_COLUMNS = 12
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


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

def split_block(block: Block, keys: int, width: int = MAX_COLUMNS) -> list[tuple[list[str], list[list[Cell]]]]:
    """The block's (header, rows) in pieces of at most ``width`` columns, each repeating the first ``keys``."""
    keys = min(keys, len(block.header))
    rest = list(range(keys, len(block.header)))
    step = max(1, width - keys)
    pieces = [rest[i:i + step] for i in range(0, len(rest), step)] or [[]]
    out = []
    for piece in pieces:
        cols = list(range(keys)) + piece
        out.append(([block.header[c] for c in cols], [[row[c] for c in cols] for row in block.rows]))
    return out


def _md_table(header: list[str], rows: list[list[Cell]], numeric: list[bool]) -> list[str]:
    lines = ["| " + " | ".join(md_escape(h) for h in header) + " |",
             "|" + "|".join("---:" if num else "---" for num in numeric) + "|"]
    lines += ["| " + " | ".join(md_escape(c.text) for c in row) + " |" for row in rows]
    return lines


def _md_view(view: View) -> list[str]:
    lines = [f"## {view.title}", "", md_escape(view.question), ""]
    for block in view.blocks:
        lines += [f"### {md_escape(block.caption)}", ""]
        for header, rows in split_block(block, view.key_columns):
            numeric = [block.numeric[block.header.index(h)] for h in header]
            lines += _md_table(header, rows, numeric) + [""]
    for note in view.notes:
        lines += [md_escape(note), ""]
    return lines


def to_markdown(table: Table, views: list[View], title: str, description: str = "") -> str:
    lines = [f"# {md_escape(title)}", ""]
    if description:
        lines += [md_escape(description), ""]
    lines += [f"{len(table.rows)} configuration(s) of {len(table.names)} model(s) from {table.n_files} lm-eval "
              "results file(s). Every configuration with all its scores, paths, hashes and versions is in "
              "leaderboard.csv; each view below is also a CSV file (detectors.csv, selectivity.csv, steering.csv, "
              "models.csv, sweep.csv).", ""]
    if table.skipped:
        lines += [f"{len(table.skipped)} results file(s) skipped: "
                  + "; ".join(f"{md_escape(p)} ({md_escape(r)})" for p, r in table.skipped), ""]
    for view in views:
        lines += _md_view(view)
    return "\n".join(lines).rstrip("\n") + "\n"


def view_csv(view: View | None) -> str:
    """One view as a long CSV: a ``table`` column, the CSV-only keys (full model names), then the cells.

    Numbers are written in full precision; a column whose cells carry a standard error gets a
    ``<column>_stderr`` column next to it, one whose cells carry an interval ``<column>_ci_low`` and
    ``<column>_ci_high`` (empty where a cell has none).
    """
    blocks = view.blocks if view is not None else []
    keys: list[str] = []
    columns: list[str] = []
    with_se: set[str] = set()
    with_ci: set[str] = set()
    for block in blocks:
        for name in [k for row_keys in block.csv_keys for k in row_keys] + block.header:
            target = columns if name in block.header else keys
            if name not in target:
                target.append(name)
        with_se |= {h for i, h in enumerate(block.header) if any(r[i].stderr is not None for r in block.rows)}
        with_ci |= {h for i, h in enumerate(block.header) if any(r[i].low is not None for r in block.rows)}
    header = ["table", *keys]
    for col in columns:
        header += [col] + ([f"{col}_stderr"] if col in with_se else []) \
            + ([f"{col}_ci_low", f"{col}_ci_high"] if col in with_ci else [])
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for block in blocks:
        for row, row_keys in zip(block.rows, block.csv_keys):
            cells = dict(zip(block.header, row))
            out = [csv_text(block.caption), *(csv_text(row_keys.get(k, "")) for k in keys)]
            for col in columns:
                cell = cells.get(col)
                out.append("" if cell is None else cell.csv if cell.csv is not None
                           else fmt_csv_number(cell.value) if cell.value is not None else csv_text(cell.text))
                if col in with_se:
                    out.append(fmt_csv_number(cell.stderr) if cell is not None else "")
                if col in with_ci:
                    out += [fmt_csv_number(cell.low), fmt_csv_number(cell.high)] if cell is not None else ["", ""]
            writer.writerow(out)
    return buf.getvalue()


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
