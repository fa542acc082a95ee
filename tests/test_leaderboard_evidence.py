"""The leaderboard's uncertainty: score intervals, ties with the leader, measurement kinds, settings, the floor,
the selectivity and steering-quality views and ``--sweep``, on hand-built results files with known values.

Steering designs use 100 generations per run and an unsteered rate of 0/100, so each language's gain is the
steered count / 100 and its Newcombe interval is known (``evidence.rate_gain``): 62/100 has a lower bound of
0.515 at 95% but 0.498 at 97.5%, so a language at 62/100 is sure to gain 50 points only when no correction
for several languages or settings is applied; 95/100 is sure under any correction here, 20/100 surely not.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_leaderboard import (
    T0,
    langneuron_info,
    make_results,
    read_csv,
    steer,
    write_ppl_matrix,
    write_results,
)
from test_leaderboard_views import md_tables

from langneuron_eval.evidence import rate_gain

LANGS = ("de", "zh")


def _sha(tag: str) -> str:
    return (tag * 64)[:64]


def write_steering(root: Path, detector: str, sha: str, counts: dict[str, int], strength: float = 1.0,
                   date: float = T0 + 100) -> None:
    """One steered results file per target language: ``counts[lang]`` of 100 generations on target."""
    for i, (lang, k) in enumerate(counts.items()):
        info = langneuron_info(lang=(lang,), sha=sha, detector=detector, strength=strength)
        write_results(root, make_results({f"lang_steer_{lang}": steer(k / 100, 0.04)}, info=info, date=date + i),
                      subdir=f"{detector}-{sha[:4]}-{strength:g}-{lang}")


def write_unsteered(root: Path, langs: tuple[str, ...] = LANGS) -> None:
    write_results(root, make_results({f"lang_steer_{lang}": steer(0.0, 0.0) for lang in langs}), subdir="base")


def ranking(out: Path, caption: str) -> list[dict[str, str]]:
    """The detector table with ``caption`` as rows of {header: cell}."""
    md = (out / "leaderboard.md").read_text(encoding="utf-8")
    titles = [ln[4:] for ln in md.splitlines() if ln.startswith("### ")]
    table = md_tables(out / "leaderboard.md")[titles.index(caption)]
    return [dict(zip(table[0], row)) for row in table[1:]]


def test_design_values_are_what_the_docstring_says():
    """The premise of the tests below, from the interval function itself."""
    assert rate_gain(0, 100, 62, 100, 0.95).interval.low > 0.5 > rate_gain(0, 100, 62, 100, 0.975).interval.low
    assert rate_gain(0, 100, 95, 100, 1 - 0.05 / 8).interval.low > 0.5
    assert rate_gain(0, 100, 20, 100, 0.95).interval.high < 0.5 < rate_gain(0, 100, 45, 100, 0.975).interval.high


@pytest.fixture
def tie_site(run_cli, tmp_path) -> Path:
    root = tmp_path / "r"
    write_unsteered(root)
    for name, counts in {"a": {"de": 95, "zh": 95}, "b": {"de": 62, "zh": 95}, "c": {"de": 20, "zh": 20},
                         "d": {"de": 45, "zh": 10}, "e": {"de": 95, "zh": 45}}.items():
        write_steering(root, f"det_{name}", _sha(name), counts)
    for i, counts in enumerate(({"de": 0, "zh": 0}, {"de": 0, "zh": 0}, {"de": 95, "zh": 10})):
        write_steering(root, "random", _sha(str(i)), counts)
    out = tmp_path / "site"
    rc, _, err = run_cli("leaderboard", root, "--out", out)
    assert rc == 0, err
    return out


def test_score_intervals_and_ties_with_the_leader(tie_site):
    rows = ranking(tie_site, "org/tiny-llama · steering only")
    got = [(r["Rank"], r["Detector"], r["Score"], r["vs leader"]) for r in rows[:-1]]
    assert got == [
        ("1", "det_a", "100.0 [100.0, 100.0]", "leader"),  # both languages surely >= 50 points
        ("2", "det_b", "100.0 [50.0, 100.0]", "tied"),  # de at 62/100 is not sure at 97.5% per language
        ("3", "det_e", "50.0 [50.0, 100.0]", "tied"),  # a lower point, but zh at 45/100 may reach 50 points
        ("4", "det_d", "0.0 [0.0, 50.0]", "below"),  # de at 45/100 may still reach 50 points; zh cannot
        ("5", "det_c", "0.0 [0.0, 0.0]", "below"),
    ]
    csv_rows = {r["Detector"]: r for r in read_csv(tie_site / "detectors.csv")}
    assert (csv_rows["det_b"]["Score_ci_low"], csv_rows["det_b"]["Score_ci_high"]) == ("50.0", "100.0")
    md = (tie_site / "leaderboard.md").read_text(encoding="utf-8")
    assert "'tied' when the detector's score interval overlaps the leader's" in md


def test_floor_is_the_spread_of_every_random_draw_and_beaten_only_by_the_test(tie_site):
    rows = ranking(tie_site, "org/tiny-llama · steering only")
    floor = rows[-1]
    # three draws scoring 0, 0 and 50: mean 16.7, sd 28.9
    assert (floor["Rank"], floor["Detector"], floor["Score"]) == ("floor", "random (control, 3 draws)",
                                                                   "16.7 ± 28.9 sd (3 draws)")
    assert floor["Gain ≥ 50 pts"] == "0.3/2"  # mean count over the draws
    beats = {r["Detector"]: r["Beats floor"] for r in rows[:-1]}
    # det_a: t = (100 - 16.7) / (28.9 / sqrt 3) = 5 on 2 degrees of freedom, p = 0.019
    assert beats["det_a"] == "yes (p 0.019)" and beats["det_b"].startswith("yes (p ")
    assert beats["det_c"].startswith("no (p ") and beats["det_d"].startswith("no (p ")
    assert [r["Detector"] for r in read_csv(tie_site / "detectors.csv")].count("random (control, 3 draws)") == 1


def test_a_score_above_the_floor_mean_does_not_beat_a_wide_floor(run_cli, tmp_path):
    root = tmp_path / "r"
    write_unsteered(root)
    write_steering(root, "det_a", _sha("a"), {"de": 95, "zh": 95})
    for i, counts in enumerate(({"de": 0, "zh": 0}, {"de": 0, "zh": 0}, {"de": 95, "zh": 95})):
        write_steering(root, "random", _sha(str(i)), counts)
    assert run_cli("leaderboard", root, "--out", tmp_path / "site")[0] == 0
    rows = ranking(tmp_path / "site", "org/tiny-llama · steering only")
    # floor 0, 0, 100: mean 33.3, sd 57.7; t = 2 on 2 degrees of freedom, p = 0.092: not beaten
    assert rows[0]["Beats floor"] == "no (p 0.092)" and rows[1]["Score"] == "33.3 ± 57.7 sd (3 draws)"


def test_corrections_for_languages_and_for_settings(run_cli, tmp_path):
    """62/100 is sure at 95%: one language, one setting. Two languages, or two settings, widen the interval."""
    root = tmp_path / "r"
    write_unsteered(root)
    write_steering(root, "one", _sha("1"), {"de": 62})
    write_steering(root, "two_langs", _sha("2"), {"de": 62, "zh": 62})
    write_steering(root, "two_settings", _sha("3"), {"de": 62})
    write_steering(root, "two_settings", _sha("3"), {"de": 10}, strength=2.0)
    assert run_cli("leaderboard", root, "--out", tmp_path / "site")[0] == 0
    rows = {r["Detector"]: r for r in ranking(tmp_path / "site", "org/tiny-llama · steering only")}
    assert rows["one"]["Score"] == "100.0 [100.0, 100.0]" and rows["one"]["Settings"] == "1"
    assert rows["two_langs"]["Score"] == "100.0 [0.0, 100.0]"
    assert rows["two_settings"]["Score"] == "100.0 [0.0, 100.0]" and rows["two_settings"]["Settings"] == "2"
    md = (tmp_path / "site" / "leaderboard.md").read_text(encoding="utf-8")
    assert "two_settings: lang_steer, activate(&lt;lang&gt;, value=mean, strength=1) (best of 2, interval " \
           "corrected for the choice)" in md


def test_scores_measured_differently_are_never_ranked_together(run_cli, tmp_path):
    """A steering-only 100 does not outrank a ppl + steering 75: each kind is its own table."""
    root = tmp_path / "r"
    write_unsteered(root)
    write_steering(root, "steer_only", _sha("s"), {"de": 95, "zh": 95})
    write_steering(root, "both", _sha("b"), {"de": 95, "zh": 20})
    pm = write_ppl_matrix(tmp_path / "pm.json", LANGS, [[0.2, 0.0], [0.0, 0.3]], 0.0,
                          {"model": "org/tiny-llama", "detector": "both", "neurons_sha256": _sha("b")})
    assert run_cli("leaderboard", root, "--out", tmp_path / "site", "--ppl-matrix", pm)[0] == 0
    both = ranking(tmp_path / "site", "org/tiny-llama · ppl + steering")
    steer_only = ranking(tmp_path / "site", "org/tiny-llama · steering only")
    # ppl: diagonal sure (every document changes by the same ratio: zero-width intervals); steering 1 of 2 sure
    assert [(r["Rank"], r["Detector"], r["Score"]) for r in both[:-1]] == [("1", "both", "75.0 [75.0, 75.0]")]
    assert [(r["Rank"], r["Detector"]) for r in steer_only[:-1]] == [("1", "steer_only")]


def test_selectivity_view_shows_cell_intervals_and_the_dominance_p_value(run_cli, tmp_path):
    root = tmp_path / "r"
    write_unsteered(root, ("de", "en", "zh"))
    langs = ("de", "en", "zh")
    exact = write_ppl_matrix(tmp_path / "exact.json", langs, [[0.1, 0.0, 0.01], [0.02, 0.2, 0.0], [0.0, 0.0, 0.3]],
                             0.0, {"model": "org/tiny-llama", "detector": "lape", "neurons_sha256": _sha("e")})
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"schema": "langneuron-eval/ppl-matrix", "schema_version": 1, "languages": list(langs),
                               "metric": "byte_perplexity", "matrix": [[0.1, 0.0, 0.01], [0.02, 0.2, 0.5],
                                                                       [0.0, 0.0, 0.3]], "baseline": {},
                               "provenance": {"model": "org/tiny-llama", "detector": "old_lape",
                                              "neurons_sha256": _sha("o")}}))
    rc, _, err = run_cli("leaderboard", root, "--out", tmp_path / "site", "--ppl-matrix", exact, old)
    assert rc == 0, err
    tables = md_tables(tmp_path / "site" / "leaderboard.md")
    dominance = next(t for t in tables if t[0][:2] == ["Detector", "Diagonal max"])
    rows = {r[0]: dict(zip(dominance[0], r)) for r in dominance[1:]}
    # a perfect diagonal of 3 languages: the identity is 1 of the 3! row orders, p = 1/6
    assert rows["lape"]["p (dominance)"] == "0.167" and rows["old_lape"]["p (dominance)"] != ""
    assert rows["lape"]["Diagonal max"] == "3/3 [3/3, 3/3]" and rows["old_lape"]["Diagonal max"] == "2/3"
    assert rows["lape"]["Documents"] == "de 40, en 40, zh 40"
    assert rows["old_lape"]["Interval"] == "no interval: from a file without per-document scores (schema 1)"
    cells = next(t for t in tables if t[0][0].startswith("Switched off") and t[1][1].endswith("]"))
    assert cells[1][1:] == ["+10.0% [+10.0%, +10.0%]", "0.0% [0.0%, 0.0%]", "+1.0% [+1.0%, +1.0%]"]
    old_cells = next(t for t in tables if t[0][0].startswith("Switched off") and not t[1][1].endswith("]"))
    assert old_cells[1][1:] == ["+10.0%", "0.0%", "+1.0%"]
    ranked = {r["Detector"]: r for r in ranking(tmp_path / "site", "org/tiny-llama · ppl only")}
    assert ranked["lape"]["Score"] == "100.0 [100.0, 100.0]" and ranked["old_lape"]["Score"] == "66.7 (no interval)"
    assert ranked["lape"]["vs leader"] == "leader" and ranked["old_lape"]["vs leader"] == "no interval"
    sel = read_csv(tmp_path / "site" / "selectivity.csv")
    cell = next(r for r in sel if r.get("de_ci_low"))
    assert (float(cell["de"]), float(cell["de_ci_low"]), float(cell["de_ci_high"])) == pytest.approx((10, 10, 10))


def test_steering_view_shows_success_and_damage_beside_lang_rate(run_cli, tmp_path):
    root = tmp_path / "r"
    quality = {"on_target_fluent": (0.1, 0.03), "distinct_2": (0.9, 0.01), "degenerate": (0.0, 0.0)}
    write_results(root, make_results({"lang_steer_de": {**steer(0.1, 0.03), **quality}}), subdir="base")
    damaged = {"on_target_fluent": (0.2, 0.04), "distinct_2": (0.35, 0.02), "degenerate": (0.7, 0.046)}
    write_results(root, make_results({"lang_steer_de": {**steer(0.9, 0.03), **damaged}},
                                     info=langneuron_info(lang=("de",)), date=T0 + 10), subdir="steer")
    rc, _, err = run_cli("leaderboard", root, "--out", tmp_path / "site")
    assert rc == 0, err
    tables = md_tables(tmp_path / "site" / "leaderboard.md")
    table = next(t for t in tables if t[0][:3] == ["Detector", "Intervention", "Language"])
    assert table[0][3:] == ["lang_rate (%)", "On-target and fluent (%)", "Distinct-2", "Degenerate (%)"]
    assert table[1] == ["none", "unsteered", "de", "10.0 ± 3.0", "10.0 ± 3.0", "0.900 ± 0.010", "0.0 ± 0.0"]
    # lang_rate 90% looks like success; 20% on target and fluent with 70% degenerate says otherwise
    assert table[2][2:] == ["de", "90.0 ± 3.0", "20.0 ± 4.0", "0.350 ± 0.020", "70.0 ± 4.6"]
    page = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 1  # one steering chart: the damage table is not plotted


def sweep_doc() -> dict:
    def iv(value: float, low: float, high: float) -> dict:
        return {"value": value, "ci_low": low, "ci_high": high, "confidence": 0.95}

    summary = {"on_target_fluent": iv(0.6, 0.4, 0.77), "lang_rate": iv(0.8, 0.6, 0.92),
               "degenerate": iv(0.1, 0.03, 0.3), "distinct_2": iv(0.8, 0.75, 0.85),
               "repetition_4": iv(0.05, 0.0, 0.1), "judge_ppl_median": 1.3}
    base = {**summary, "on_target_fluent": iv(0.1, 0.02, 0.3), "judge_ppl_median": 1.0}
    point = {"lang": "de", "key": "mean x4", "dev": summary, "over_budget": False, "budget_violations": []}
    chosen = {"setting": {"strength": 4}, "key": "mean x4", "dev": summary, "test": summary,
              "gain_vs_unsteered": {"on_target_fluent": iv(0.5, 0.3, 0.65)}, "controls": {}}
    return {"schema": "langneuron-eval/sweep", "model": "/opt/m/demo-base", "detector": "lape", "family": "lang_steer",
            "langs": ["de"], "limit_per_half": 8, "confidence": 0.95, "budget": {"max_distinct_2_drop": 0.1,
                                                                                  "max_judge_ppl_ratio": 2.0},
            "success_rule": {"max_judge_ppl_ratio": 4.0}, "unsteered": {"dev": {"de": base}, "test": {"de": base}},
            "points": [point], "chosen": {"de": chosen}, "overall": {"setting": None, "reason": "one language"}}


def test_sweep_option_adds_the_sweep_view(run_cli, tmp_path):
    root = tmp_path / "r"
    write_results(root, make_results({"lang_steer_de": steer(0.1, 0.03)}), subdir="base")
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps(sweep_doc()))
    rc, _, err = run_cli("leaderboard", root, "--out", tmp_path / "site", "--sweep", path)
    assert rc == 0, err
    md = (tmp_path / "site" / "leaderboard.md").read_text(encoding="utf-8")
    assert "## Steering sweep" in md and "### demo-base · lape · chosen on dev, reported on test" in md
    chosen = next(t for t in md_tables(tmp_path / "site" / "leaderboard.md") if t[0][:2] == ["Language", "Chosen on dev"])
    assert chosen[1][:5] == ["de", "mean x4", "0.60 [0.40, 0.77]", "0.60 [0.40, 0.77]", "0.80 [0.60, 0.92]"]
    rows = read_csv(tmp_path / "site" / "sweep.csv")
    assert rows[0]["Test success"] == "0.6" and rows[0]["Test success_ci_low"] == "0.4"
    assert 'id="sweep"' in (tmp_path / "site" / "index.html").read_text(encoding="utf-8")


def test_a_bad_sweep_file_is_one_line_and_writes_nothing(run_cli, tmp_path):
    root = tmp_path / "r"
    write_results(root, make_results({"lang_steer_de": steer(0.1, 0.03)}), subdir="base")
    bad = tmp_path / "sweep.json"
    bad.write_text(json.dumps({"schema": "something-else"}))
    rc, _, err = run_cli("leaderboard", root, "--out", tmp_path / "site", "--sweep", bad)
    assert rc == 2 and "is not a sweep.json written by `langneuron sweep`" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "site" / "leaderboard.md").exists()


def test_quality_metric_names_are_those_the_tasks_report():
    from langneuron_eval.leaderboard.analysis import QUALITY_METRICS
    from langneuron_eval.lmeval.text_quality import HIGHER_IS_BETTER

    assert set(QUALITY_METRICS) <= set(HIGHER_IS_BETTER)
