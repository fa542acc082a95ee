"""The leaderboard's ranked views, names, figures and publishing options, on a demo-like results folder.

``write_demo_like`` (tests/test_leaderboard.py) lays out what ``langneuron demo`` leaves behind: normalised
results files (no ``date``) of a model object whose recorded name is its path inside a virtual
environment, steering runs of lape and kojima_ap, xqa of the base and aligned twin, ppl matrices of lape
and the random control, and four neuron files.
"""

from __future__ import annotations

import ast
import html
import math
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_leaderboard import (
    DEMO_ALIGNED,
    DEMO_BASE,
    DEMO_LANGS,
    VENV_ASSETS,
    langneuron_info,
    make_results,
    read_csv,
    steer,
    write_demo_like,
    write_results,
    write_suite,
)

from langneuron_eval.leaderboard import OUTPUT_NAMES
from langneuron_eval.leaderboard.table import display_names, short_model_name


def build(run_cli, demo: dict, out: Path, *extra: str) -> tuple[int, str]:
    rc, _, err = run_cli("leaderboard", demo["results"], "--out", out, "--ppl-matrix", *demo["ppl_matrix"].values(),
                         "--neurons", *demo["neurons"].values(), *extra)
    return rc, err


@pytest.fixture
def demo_site(run_cli, tmp_path) -> Path:
    demo = write_demo_like(tmp_path / "demo_out")
    out = tmp_path / "site"
    rc, err = build(run_cli, demo, out)
    assert rc == 0, err
    return out


def md_tables(path: Path) -> list[list[list[str]]]:
    """Every Markdown table of a file, as rows of cells."""
    tables, current = [], []
    for line in path.read_text(encoding="utf-8").splitlines() + [""]:
        if line.startswith("|"):
            if not re.fullmatch(r"\|(-+:?\|)+", line):  # not the header's separator line
                current.append([c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]])
        elif current:
            tables.append(current)
            current = []
    return tables


# ------------------------------------------------------------------------------------- the views

def test_detector_ranking_scores_and_floor(demo_site):
    md = (demo_site / "leaderboard.md").read_text(encoding="utf-8")
    tables = md_tables(demo_site / "leaderboard.md")
    # scores measured differently are ranked in separate tables, never against each other
    captions = re.findall(r"^### (demo-base · .*)$", md, re.M)[:4]
    assert captions == ["demo-base · ppl + steering", "demo-base · ppl only", "demo-base · steering only",
                        "demo-base · not scored"]
    both, ppl_only, steer_only, unscored = tables[:4]
    assert both[0][:5] == ["Rank", "Detector", "Score", "vs leader", "Beats floor"]
    lape = dict(zip(both[0], both[1]))
    # lape: the diagonal is every column's maximum (6/6, sure: share interval [1, 1]) and 5 of 6 languages gain
    # >= 50 points, of which de, es, fr, ja surely (gain interval above 50 at 1 - 0.025/6) and en and zh not
    # surely: steering share [4/6, 6/6]; score (1 + 5/6) / 2 = 91.7 in [(1 + 4/6) / 2, 1]
    assert (lape["Rank"], lape["Detector"], lape["Score"], lape["vs leader"]) == ("1", "lape", "91.7 [83.3, 100.0]",
                                                                                  "leader")
    assert (lape["Diagonal max"], lape["Gain ≥ 50 pts"], lape["Mean gain (pts)"]) == ("6/6", "5/6", "+70.5")
    assert lape["Neurons"] == str(4 * 6) and lape["Beats floor"] == "no floor"  # random measured ppl only
    assert [r[:3] for r in both[1:]] == [["1", "lape", "91.7 [83.3, 100.0]"], ["floor", "random (control)", ""]]
    assert ppl_only[1][:3] == ["floor", "random (control)", "0.0 (1 draw)"] and ppl_only[1][5] == "0/6"
    kojima = dict(zip(steer_only[0], steer_only[1]))
    # kojima_ap: 3 of 6 gain >= 50 points; only ja surely, four languages' intervals reach 50 points
    assert (kojima["Rank"], kojima["Score"], kojima["Gain ≥ 50 pts"]) == ("1", "50.0 [16.7, 66.7]", "3/6")
    assert unscored[1][:3] == ["–", "zhang", ""] and unscored[1][10] == "6"
    rows = read_csv(demo_site / "detectors.csv")
    assert {r["model"] for r in rows} == {DEMO_BASE}  # the full path stays in the CSV
    scored = [(r["Detector"], r["Score"], r["Score_ci_low"], r["Score_ci_high"]) for r in rows if r["Score"]]
    assert [s[:2] for s in scored] == [("lape", "91.6667"), ("random (control)", "0.0000"), ("kojima_ap", "50.0000")]
    bounds = [(float(s[2]), float(s[3])) for s in scored if s[2]]
    assert bounds == [pytest.approx((250 / 3, 100.0)), pytest.approx((100 / 6, 200 / 3))]  # full precision in CSV


def test_old_matrix_files_have_no_interval_and_say_so(run_cli, tmp_path):
    """Schema-less ppl_matrix.json files (older demo and bench-detector) still load; nothing is made up."""
    demo = write_demo_like(tmp_path / "d", evidence=False)
    rc, err = build(run_cli, demo, tmp_path / "site")
    assert rc == 0, err
    tables = md_tables(tmp_path / "site" / "leaderboard.md")
    lape = dict(zip(tables[0][0], tables[0][1]))
    assert lape["Score"] == "91.7 (no interval)" and lape["vs leader"] == "leader"
    dominance = next(t for t in tables if t[0][:2] == ["Detector", "Diagonal max"])
    assert dominance[1][:2] == ["lape", "6/6"]
    assert dominance[1][5] == "no interval: from a file without per-document scores (schema 1)"
    assert float(dominance[1][3]) == pytest.approx(1 / 720, rel=1e-2)  # the p-value needs no per-document scores
    page = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert "no intervals: the matrix has no per-document scores" in page


def test_the_random_control_is_shown_even_when_not_run(run_cli, tmp_path):
    root = tmp_path / "r"
    write_results(root, make_results({"lang_steer_zh": steer(0.1, 0.03)}))
    write_results(root, make_results({"lang_steer_zh": steer(0.7, 0.04)}, info=langneuron_info(), date=1767261700.0))
    assert run_cli("leaderboard", root, "--out", tmp_path / "site")[0] == 0
    ranking = md_tables(tmp_path / "site" / "leaderboard.md")[0]
    assert [r[:2] for r in ranking[1:]] == [["1", "lape"], ["floor", "random (control)"]]
    assert ranking[2][2:] == [""] * 10  # not measured: empty, never a made-up number


def test_steering_view_rows_languages_and_baseline(demo_site):
    tables = md_tables(demo_site / "leaderboard.md")
    steering = next(t for t in tables if t[0][:3] == ["Rank", "Detector", "Intervention"])
    assert steering[0] == ["Rank", "Detector", "Intervention", *DEMO_LANGS, "Mean gain (pts)"]
    assert steering[1][:3] == ["–", "none", "unsteered"] and steering[1][3] == "25.0 ± 4.0"
    # one row per (detector, intervention without the target language), ranked by mean gain
    setting = "activate(&lt;lang&gt;, value=mean, strength=12) + deactivate(others)"
    assert [r[:3] for r in steering[2:]] == [["1", "lape", setting], ["2", "kojima_ap", setting]]
    assert steering[2][3:5] == ["99.0 ± 3.0", "60.0 ± 3.0"]
    rows = read_csv(demo_site / "steering.csv")
    assert rows[1]["de"] == "99.0" and rows[1]["de_stderr"] == "3.0" and rows[1]["model"] == DEMO_BASE


def test_models_view_and_alignment_delta_with_z(demo_site):
    tables = md_tables(demo_site / "leaderboard.md")
    xqa = next(t for t in tables if t[0][:2] == ["Rank", "Model"])
    assert xqa[0] == ["Rank", "Model", "de", "zh", "Mean"]
    assert [r[:2] for r in xqa[1:]] == [["1", "demo-aligned"], ["2", "demo-base"]]
    alignment = next(t for t in tables if t[0][0] == "Task")
    # de: 0.077 - 0.004 = +0.073, se = sqrt(0.003² + 0.004²) = 0.005, z = 14.6; zh: 0.075 / 0.01 = 7.5
    assert alignment[1] == ["xqa", "+0.073 (z +14.6)", "+0.075 (z +7.5)", "+0.074"]
    md = (demo_site / "leaderboard.md").read_text(encoding="utf-8")
    assert "### demo-base → demo-aligned" in md


def test_pair_option_chooses_the_comparison(run_cli, tmp_path):
    demo = write_demo_like(tmp_path / "d")
    rc, err = build(run_cli, demo, tmp_path / "a", "--pair", "demo-aligned", DEMO_BASE)
    assert rc == 0, err
    assert "### demo-aligned → demo-base" in (tmp_path / "a" / "leaderboard.md").read_text(encoding="utf-8")
    rc, err = build(run_cli, demo, tmp_path / "b", "--pair", "demo-base", "nope")
    assert rc == 2 and "--pair: no results for model 'nope'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "b" / "leaderboard.md").exists()


# ----------------------------------------------------------------------------- names, dates, width

def test_models_are_named_by_hub_id_or_directory(demo_site):
    md = (demo_site / "leaderboard.md").read_text(encoding="utf-8")
    assert VENV_ASSETS not in md and "### demo-base" in md and "| demo-aligned |" in md
    config = read_csv(demo_site / "leaderboard.csv")
    assert {r["model"] for r in config} == {DEMO_BASE, DEMO_ALIGNED}  # provenance keeps the full path


@pytest.mark.parametrize("recorded, shown", [
    ("org/tiny-llama", "org/tiny-llama"),
    ("demo-base", "demo-base"),
    (f"{VENV_ASSETS}/demo-base", "demo-base"),
    ("./models/my-model/", "my-model"),
    (r"C:\models\my-model", "my-model"),
    ("/home/u/.cache/huggingface/hub/models--google--gemma-3-270m/snapshots/" + "a" * 40, "google/gemma-3-270m"),
    ("<script>alert(1)</script>", "<script>alert(1)</script>"),  # one slash: not a path
])
def test_short_model_name(recorded, shown):
    assert short_model_name(recorded) == shown


def test_clashing_directory_names_stay_distinct():
    names = display_names(["/a/x/model", "/b/y/model", "org/m"])
    assert names == {"/a/x/model": "x/model", "/b/y/model": "y/model", "org/m": "org/m"}
    twins = display_names(["/a/x/model", "/b/x/model"])
    assert len(set(twins.values())) == 2 and all(v.startswith("model #") for v in twins.values())


def test_date_column_only_when_results_have_dates(demo_site, run_cli, tmp_path):
    page = (demo_site / "index.html").read_text(encoding="utf-8")
    assert 'data-key="date"' not in page  # normalised files: no date, no column
    write_suite(tmp_path / "dated")
    assert run_cli("leaderboard", tmp_path / "dated", "--out", tmp_path / "s2")[0] == 0
    assert 'data-key="date"' in (tmp_path / "s2" / "index.html").read_text(encoding="utf-8")


def test_widest_markdown_table_has_at_most_12_columns(run_cli, tmp_path):
    """Fourteen steered languages: the steering table splits, repeating rank, detector and intervention."""
    langs = [f"l{c}" for c in "abcdefghijklmn"]
    root = tmp_path / "r"
    write_results(root, make_results({f"lang_steer_{x}": steer(0.1, 0.02) for x in langs}), subdir="base")
    for k, x in enumerate(langs):
        write_results(root, make_results({f"lang_steer_{x}": steer(0.8, 0.03)}, info=langneuron_info(lang=(x,)),
                                         date=1767261700.0 + k), subdir=f"steer-{x}")
    assert run_cli("leaderboard", root, "--out", tmp_path / "site")[0] == 0
    tables = md_tables(tmp_path / "site" / "leaderboard.md")
    assert max(len(row) for t in tables for row in t) <= 12
    pieces = [t for t in tables if t[0][:3] == ["Rank", "Detector", "Intervention"]]
    assert len(pieces) == 2
    assert [h for t in pieces for h in t[0][3:]] == [*langs, "Mean gain (pts)"]  # every column, once, in order
    assert all(len(t) == 3 for t in pieces)  # unsteered + lape in each piece


# ------------------------------------------------------------------------------------------- plots

@given(st.floats(min_value=-10.0, max_value=10.0, allow_nan=False).filter(lambda v: v != 0))
def test_percent_label_of_a_nonzero_change_is_nonzero(value):
    from langneuron_eval.leaderboard.plots import percent

    label = percent(value)
    assert label.endswith("%") and re.search(r"[1-9]", label.split("e")[0])
    assert label.startswith("+" if value > 0 else "-")


@pytest.mark.parametrize("value, label", [(0.022, "+2.2%"), (-0.0003, "-0.03%"), (0.0, "0.0%"), (1.5, "+150.0%"),
                                          (math.nan, "n/a")])
def test_percent_label_examples(value, label):
    from langneuron_eval.leaderboard.plots import percent

    assert percent(value) == label


def test_every_nonzero_heatmap_cell_reads_nonzero():
    """The drawn annotations, not the helper: a 0.1–3% matrix (the issue's case) and a zero cell."""
    from langneuron_eval.leaderboard import plots

    matrix = [[0.022, 0.001, 0.0], [0.00004, 0.031, -0.0002], [0.0015, 0.0009, 0.012]]
    with plots._figure_context() as plt:
        fig = plots.heatmap_figure(plt, ["de", "en", "zh"], matrix, "model · lape")
        texts = [t.get_text() for t in fig.axes[0].texts]
        plt.close(fig)
    assert len(texts) == 9
    for value, text in zip([v for row in matrix for v in row], texts):
        assert (re.search(r"[1-9]", text) is not None) == (value != 0), (value, text)
    assert texts[:2] == ["+2.2%", "+0.1%"]


def test_figures_are_deterministic_and_one_layer_figure_per_model(run_cli, demo_site, tmp_path):
    page = (demo_site / "index.html").read_text(encoding="utf-8")
    images = re.findall(r'<img src="data:image/png;base64,[^"]+" alt="([^"]*)"', page)
    # 2 heatmaps (lape, random), one layer figure with the four detectors side by side, one steering chart
    assert sorted(html.unescape(a) for a in images) == [
        "neurons per layer, demo-base", "perplexity change heatmap, demo-base, lape",
        "perplexity change heatmap, demo-base, random", "steering rates, demo-base · lang_steer"]
    demo = write_demo_like(tmp_path / "again")
    rc, err = build(run_cli, demo, tmp_path / "site2")
    assert rc == 0, err
    for name in OUTPUT_NAMES:
        if name not in ("index.html", "leaderboard.csv"):  # these name the input files, in another folder here
            assert (demo_site / name).read_bytes() == (tmp_path / "site2" / name).read_bytes(), name
    assert re.findall(r"base64,([^\"]+)", page) == re.findall(
        r"base64,([^\"]+)", (tmp_path / "site2" / "index.html").read_text(encoding="utf-8"))


# -------------------------------------------------------------------------------------- publishing

def test_title_description_and_permalinks(run_cli, tmp_path):
    demo = write_demo_like(tmp_path / "d")
    rc, err = build(run_cli, demo, tmp_path / "site", "--title", "<b>Neurons</b> & co", "--description",
                    "Which detector <i>wins</i>?")
    assert rc == 0, err
    page = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert "<title>&lt;b&gt;Neurons&lt;/b&gt; &amp; co</title>" in page and "<b>Neurons</b>" not in page
    assert '<p class="description">Which detector &lt;i&gt;wins&lt;/i&gt;?</p>' in page
    ids = re.findall(r'\sid="([^"]+)"', page.split("<script>")[0])
    assert len(ids) == len(set(ids))
    for anchor in ("detectors", "steering", "models", "figures", "configurations", "detectors-demo-base-ppl-steering",
                   "selectivity", "selectivity-demo-base"):
        assert anchor in ids and f'href="#{anchor}"' in page
    md = (tmp_path / "site" / "leaderboard.md").read_text(encoding="utf-8")
    assert md.startswith("# &lt;b&gt;Neurons&lt;/b&gt; &amp; co\n\nWhich detector &lt;i&gt;wins&lt;/i&gt;?\n")


# ----------------------------------------------------------------------------------- import graph

def _imports(path: Path) -> tuple[set[str], set[str]]:
    """Sibling modules a leaderboard module imports at module level, and inside functions."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top, nested = set(), set()
    prefix = "langneuron_eval.leaderboard"
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(prefix):
            rest = node.module[len(prefix):].lstrip(".")
            names = [rest] if rest else [a.name for a in node.names]
            (top if node in tree.body else nested).update(n.split(".")[0] for n in names)
    return top, nested


def test_leaderboard_modules_import_without_cycles():
    folder = Path(__file__).resolve().parents[1] / "langneuron_eval" / "leaderboard"
    graph = {}
    for path in sorted(folder.glob("*.py")):
        top, nested = _imports(path)
        assert not nested, f"{path.name} imports {sorted(nested)} inside a function"
        graph[path.stem] = top
    for renderer in ("tables", "html", "plots", "views", "analysis", "table", "columns"):
        assert "build" not in graph[renderer], renderer
    assert "html" not in graph["tables"] and "tables" not in graph["html"]  # renderers stand side by side

    def visit(node: str, path: tuple[str, ...]) -> None:
        for dep in graph.get(node, ()):
            assert dep not in path, f"import cycle: {' -> '.join(path + (dep,))}"
            visit(dep, path + (dep,))

    for module in graph:
        visit(module, (module,))


def test_every_benchmark_task_we_ship_lands_in_its_family_column():
    """Belebele and XCOPA (and the other per-language benchmark families) get a column in the models view:
    every per-language task YAML we ship parses to (family, language), and the family's headline metric wins."""
    from langneuron_eval.leaderboard.views import family_scores, task_language
    from langneuron_eval.lmeval.plugin import tasks_dir
    from langneuron_eval.lmeval.results import MetricKey, Score

    for folder in ("belebele_hub", "xcopa_hub", "xqa_hub", "xmath_hub"):
        names = sorted(p.stem for p in (tasks_dir() / folder).glob(f"{folder}_*.yaml"))
        assert names, folder
        for name in names:
            assert task_language(name) == (folder, name[len(folder) + 1:]), name
    scores = {MetricKey("xcopa_hub_et", "acc"): Score(0.6, 0.02), MetricKey("xcopa_hub_et", "acc_norm"): Score(0.5, None)}
    assert family_scores(scores)["xcopa_hub"]["et"][0].metric == "acc"
