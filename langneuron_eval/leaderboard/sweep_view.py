"""The leaderboard's view of a ``sweep.json``: success and damage side by side, dev choice and test report.

``render_markdown`` turns the document ``langneuron sweep`` writes into the tables of ``sweep.md``: per language
the chosen setting with its dev and test success (on target and fluent), the raw ``lang_rate``, distinct-2 and
the judge ratio, the gain over the unsteered model and the two controls; then every setting tried on dev. It only
reads the document, so the leaderboard build can call it on any ``sweep.json``: :func:`sweep_view` gives the same
tables as a leaderboard :class:`~.table.View` (``langneuron leaderboard --sweep sweep.json``), shown in the page,
``leaderboard.md`` and ``sweep.csv``.
"""

from __future__ import annotations

import math
from typing import Any

from langneuron_eval.errors import LangNeuronError
from langneuron_eval.fileio import read_json
from langneuron_eval.leaderboard.table import Block, Cell, View, short_model_name

SCHEMA = "langneuron-eval/sweep"


def load_sweep(path: Any) -> dict[str, Any]:
    """A ``sweep.json`` (one line when it is not one)."""
    doc = read_json(path, "sweep file")
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise LangNeuronError(f"{path} is not a sweep.json written by `langneuron sweep`")
    return doc


def _num(x: Any, digits: int = 2) -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}f}"


def _ci(m: dict[str, Any] | None) -> str:
    """``0.62 [0.41, 0.79]`` from an interval dict."""
    if not m:
        return "–"
    return f"{_num(m.get('value'))} [{_num(m.get('ci_low'))}, {_num(m.get('ci_high'))}]"


def _chosen_rows(doc: dict[str, Any]) -> list[str]:
    rows = ["| language | chosen on dev | dev success | test success | test lang_rate | test distinct-2 | "
            "test judge ratio (median) | gain vs unsteered | random-units control | other-language control |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for lang in doc["langs"]:
        c = doc["chosen"].get(lang, {})
        if not c.get("setting"):
            rows.append(f"| {lang} | none: {c.get('reason', '')} | | | | | | | | |")
            continue
        test, controls = c["test"], c.get("controls", {})
        rnd, oth = controls.get("random_units"), controls.get("other_language")
        rows.append(
            f"| {lang} | {c['key']} | {_ci(c['dev']['on_target_fluent'])} | {_ci(test['on_target_fluent'])} | "
            f"{_ci(test['lang_rate'])} | {_ci(test['distinct_2'])} | {_num(test['judge_ppl_median'])} | "
            f"{_ci(c['gain_vs_unsteered']['on_target_fluent'])} | "
            f"{_ci(rnd['test']['on_target_fluent']) if rnd else '–'} | "
            f"{(oth['neurons_of'] + ': ' + _ci(oth['test']['on_target_fluent'])) if oth else '–'} |")
    return rows


def _point_rows(doc: dict[str, Any]) -> list[str]:
    rows = ["| language | setting | success | lang_rate | degenerate | distinct-2 | repetition-4 | "
            "judge ratio (median) | within budget |", "|---|---|---|---|---|---|---|---|---|"]
    for lang in doc["langs"]:
        base = doc["unsteered"]["dev"][lang]
        rows.append(f"| {lang} | unsteered | {_ci(base['on_target_fluent'])} | {_ci(base['lang_rate'])} | "
                    f"{_ci(base['degenerate'])} | {_ci(base['distinct_2'])} | {_ci(base['repetition_4'])} | "
                    f"{_num(base['judge_ppl_median'])} | |")
        for p in (p for p in doc["points"] if p["lang"] == lang):
            d = p["dev"]
            budget = "yes" if not p["over_budget"] else "no: " + "; ".join(p["budget_violations"])
            rows.append(f"| {lang} | {p['key']} | {_ci(d['on_target_fluent'])} | {_ci(d['lang_rate'])} | "
                        f"{_ci(d['degenerate'])} | {_ci(d['distinct_2'])} | {_ci(d['repetition_4'])} | "
                        f"{_num(d['judge_ppl_median'])} | {budget} |")
    return rows


_REFERENCES = {"unsteered": "the median of the unsteered generations'",
               "heldout": "the median of held-out target-language text's, cut to the generation length"}


def render_markdown(doc: dict[str, Any]) -> str:
    """``sweep.md``: the chosen settings (dev choice, test report, controls), the overall setting, every point."""
    budget = doc["budget"]
    lines = [f"# Steering sweep: {doc['detector']} neurons on {doc['model']}", "",
             f"Task family `{doc['family']}`, {doc['limit_per_half']} generations per language and half; "
             f"success = on target and fluent (LID label is the target, not degenerate, judge ratio <= "
             f"{doc['success_rule']['max_judge_ppl_ratio']:g}). Damage budget: distinct-2 at most "
             f"{budget['max_distinct_2_drop']:g} below the unsteered model's, median judge ratio at most "
             f"{budget['max_judge_ppl_ratio']:g}. Judge ratio: perplexity under the unsteered model over "
             f"{_REFERENCES[doc.get('judge_reference', {}).get('kind', 'unsteered')]}. "
             f"Intervals at {doc['confidence']:.0%}.", "",
             "## Chosen per language (dev) and reported on the test half", "", *_chosen_rows(doc), ""]
    overall = doc["overall"]
    if overall.get("setting"):
        per = ", ".join(f"{lang} {_ci(t['on_target_fluent'])}" for lang, t in overall["test"].items())
        lines += [f"Overall setting (within budget for every language): **{overall['key']}**; test success: {per}.",
                  ""]
    else:
        lines += [f"Overall setting: none ({overall.get('reason', '')}).", ""]
    lines += ["## Every setting on the dev half", "", *_point_rows(doc), ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ leaderboard view

def _ci_cell(m: dict[str, Any] | None) -> Cell:
    """An interval dict as a cell: text as in sweep.md, value and bounds for the CSV."""
    if not m or m.get("value") is None:
        return Cell("–")

    def num(key: str) -> float | None:
        v = m.get(key)
        return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None

    return Cell(_ci(m), num("value"), low=num("ci_low"), high=num("ci_high"))


def _chosen_block(display: str, doc: dict[str, Any], name: str) -> Block:
    header = ["Language", "Chosen on dev", "Dev success", "Test success", "Test lang_rate", "Test distinct-2",
              "Gain vs unsteered", "Random-units control", "Other-language control"]
    rows = []
    for lang in doc["langs"]:
        c = doc["chosen"].get(lang, {})
        if not c.get("setting"):
            rows.append([Cell(lang), Cell(f"none: {c.get('reason', '')}"), *[Cell("")] * 7])
            continue
        test, controls = c["test"], c.get("controls", {})
        rnd, oth = controls.get("random_units"), controls.get("other_language")
        other = _ci_cell(oth["test"]["on_target_fluent"]) if oth else Cell("–")
        if oth:
            other = Cell(f"{oth['neurons_of']}: {other.text}", other.value, low=other.low, high=other.high)
        rows.append([Cell(lang), Cell(c["key"]), _ci_cell(c["dev"]["on_target_fluent"]),
                     _ci_cell(test["on_target_fluent"]), _ci_cell(test["lang_rate"]), _ci_cell(test["distinct_2"]),
                     _ci_cell(c["gain_vs_unsteered"]["on_target_fluent"]),
                     _ci_cell(rnd["test"]["on_target_fluent"]) if rnd else Cell("–"), other])
    return Block(caption=f"{name} · {doc['detector']} · chosen on dev, reported on test", header=header, rows=rows,
                 numeric=[False, False] + [True] * 7, row_kinds=[""] * len(rows),
                 csv_keys=[{"sweep": display}] * len(rows), anchor=f"sweep-{_slug(display)}-chosen")


def _points_block(display: str, doc: dict[str, Any], name: str) -> Block:
    header = ["Language", "Setting", "Success", "lang_rate", "Degenerate", "Distinct-2", "Judge ratio (median)",
              "Within budget"]
    rows, kinds = [], []
    for lang in doc["langs"]:
        base = doc["unsteered"]["dev"][lang]
        rows.append([Cell(lang), Cell("unsteered"), _ci_cell(base["on_target_fluent"]), _ci_cell(base["lang_rate"]),
                     _ci_cell(base["degenerate"]), _ci_cell(base["distinct_2"]),
                     Cell(_num(base["judge_ppl_median"])), Cell("")])
        kinds.append("baseline")
        for p in (p for p in doc["points"] if p["lang"] == lang):
            d = p["dev"]
            budget = "yes" if not p["over_budget"] else "no: " + "; ".join(p["budget_violations"])
            rows.append([Cell(lang), Cell(p["key"]), _ci_cell(d["on_target_fluent"]), _ci_cell(d["lang_rate"]),
                         _ci_cell(d["degenerate"]), _ci_cell(d["distinct_2"]), Cell(_num(d["judge_ppl_median"])),
                         Cell(budget)])
            kinds.append("")
    return Block(caption=f"{name} · {doc['detector']} · every setting on the dev half", header=header, rows=rows,
                 numeric=[False, False, True, True, True, True, True, False], row_kinds=kinds,
                 csv_keys=[{"sweep": display}] * len(rows), anchor=f"sweep-{_slug(display)}-points")


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-") or "x"


def sweep_view(sweeps: list[tuple[str, dict[str, Any]]]) -> View | None:
    """The ``Sweep`` view of ``(display path, sweep.json document)`` pairs; ``None`` without any."""
    if not sweeps:
        return None
    blocks = []
    for display, doc in sweeps:
        try:
            name = short_model_name(str(doc["model"]))
            blocks += [_chosen_block(display, doc, name), _points_block(display, doc, name)]
        except (KeyError, TypeError, AttributeError) as e:
            raise LangNeuronError(f"sweep file {display}: missing or malformed field {e}") from None
    notes = ["Success = on target and fluent (LID label is the target, not degenerate, judge ratio within bound). "
             "Each language's setting is chosen on the dev half (highest success within the damage budget) and "
             "reported on the test half, so the reported score is not the one the choice was made on. Intervals: "
             "Wilson for rates, t for means, paired Newcombe for gains (docs/steering_quality.md)."]
    for display, doc in sweeps:
        overall = doc.get("overall") or {}
        notes.append(f"{display}: one setting for every language: "
                     + (f"{overall['key']} (within budget for every language on dev)" if overall.get("setting")
                        else f"none ({overall.get('reason', '')})") + ".")
    return View("sweep", "Steering sweep", "Which steering setting works, chosen on dev and reported on test?",
                blocks, notes, key_columns=2)
