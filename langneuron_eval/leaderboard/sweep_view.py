"""The leaderboard's view of a ``sweep.json``: success and damage side by side, dev choice and test report.

``render_markdown`` turns the document ``langneuron sweep`` writes into the tables of ``sweep.md``: per language
the chosen setting with its dev and test success (on target and fluent), the raw ``lang_rate``, distinct-2 and
the judge ratio, the gain over the unsteered model and the two controls; then every setting tried on dev. It only
reads the document, so the leaderboard build can call it on any ``sweep.json``.
"""

from __future__ import annotations

import math
from typing import Any

from langneuron_eval.errors import LangNeuronError
from langneuron_eval.fileio import read_json


def load_sweep(path: Any) -> dict[str, Any]:
    """A ``sweep.json`` (one line when it is not one)."""
    doc = read_json(path, "sweep file")
    if not isinstance(doc, dict) or doc.get("schema") != "langneuron-eval/sweep":
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


def render_markdown(doc: dict[str, Any]) -> str:
    """``sweep.md``: the chosen settings (dev choice, test report, controls), the overall setting, every point."""
    budget = doc["budget"]
    lines = [f"# Steering sweep: {doc['detector']} neurons on {doc['model']}", "",
             f"Task family `{doc['family']}`, {doc['limit_per_half']} generations per language and half; "
             f"success = on target and fluent (LID label is the target, not degenerate, judge ratio <= "
             f"{doc['success_rule']['max_judge_ppl_ratio']:g}). Damage budget: distinct-2 at most "
             f"{budget['max_distinct_2_drop']:g} below the unsteered model's, median judge ratio at most "
             f"{budget['max_judge_ppl_ratio']:g}. Intervals at {doc['confidence']:.0%}.", "",
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
