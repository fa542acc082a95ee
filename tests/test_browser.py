"""``index.html`` in a real browser: headless Chromium renders it, loads its images, sorts its table, and
shows the detector ranking on the first screen at desktop and phone widths.

No Python browser driver is needed: ``chromium --headless --dump-dom URL`` prints the DOM after the
page's load event, and the page's own script has a self-test hook (URL hash
``#selftest-sort=<column>``, or ``#selftest`` alone) that writes what a reader sees (the first table
and where it sits in the viewport, the text of every rendered cell, the page's width) and, for a sort
column, the row orders after clicking its header twice, into ``<pre id="selftest-result">``. The page's Content-Security-Policy
admits its script only by hash, so a result at all also proves that policy lets the page work.

Skipped with a reason when no Chromium is installed (Debian: ``apt-get install chromium``).
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from test_leaderboard import (
    DEMO_BASE,
    T0,
    langneuron_info,
    make_results,
    read_csv,
    steer,
    write_demo_like,
    write_results,
    write_suite,
)

from langneuron_eval.fileio import sha256_file

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
TITLE_PAYLOAD = "<img src=x onerror=\"document.title='pwned'\"><script>document.title='pwned'</script>"
COLUMN = "lang_steer_zh/lang_rate"


@pytest.fixture(scope="module")
def browser() -> str:
    """Path of a Chromium-like browser, or a skip naming what to install (before any page is built)."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip(f"chromium not installed: none of {', '.join(BROWSERS)} on PATH (Debian: apt-get install chromium)")


def dump_dom(browser: str, page: Path, fragment: str, profile: Path, window: str = "1280,800") -> str:
    """The page's DOM after load, as headless Chromium serialises it (window: ``width,height`` in CSS pixels)."""
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-extensions", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
           f"--window-size={window}", "--hide-scrollbars", "--dump-dom", page.as_uri() + fragment]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0 and "<table" in proc.stdout, f"chromium failed ({proc.returncode}): {proc.stderr[-2000:]}"
    return proc.stdout


def selftest(dom: str) -> dict[str, Any]:
    match = re.search(r'<pre id="selftest-result"[^>]*>(.*?)</pre>', dom, re.S)
    assert match and match.group(1), "the page's self-test wrote nothing (script blocked or failed?)"
    return json.loads(html.unescape(match.group(1)))


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> dict[str, Any]:
    """A leaderboard with three figures (heatmap, layer distribution, steering) and hostile model names."""
    from langneuron_eval.cli.main import main
    from langneuron_eval.core.fingerprint import ModelFingerprint
    from langneuron_eval.core.neurons import NeuronFile

    tmp = tmp_path_factory.mktemp("browser")
    root = tmp / "results"
    write_suite(root)
    write_results(root, make_results({"lang_steer_zh": steer(0.4, 0.05)}, model=TITLE_PAYLOAD, date=T0 + 500),
                  subdir="payload")
    nf = NeuronFile(fingerprint=ModelFingerprint("llama", 4, 16, "act_out"), detector="lape",
                    languages={"en": [(0, 1), (3, 5)], "zh": [(2, 1), (3, 1), (3, 2)]}, params={"top_rate": 0.01})
    nf_path = nf.save(tmp / "neurons.json")
    write_results(root, make_results({"lang_steer_zh": steer(0.6, 0.05)},
                                     info=langneuron_info(sha=sha256_file(nf_path)), date=T0 + 600))
    pm = tmp / "ppl_matrix.json"
    pm.write_text(json.dumps({"languages": ["en", "zh"], "matrix": [[0.5, 0.0], [0.1, 2.0]], "metric": "byte_perplexity",
                              "baseline": {"en": 2.0, "zh": 3.0}}))
    out = tmp / "site"
    assert main(["leaderboard", str(root), "--out", str(out), "--ppl-matrix", str(pm), "--neurons", str(nf_path)]) == 0
    return {"page": out / "index.html", "rows": read_csv(out / "leaderboard.csv"), "tmp": tmp}


def _expected_numeric(rows: list[dict[str, str]], order: list[str], descending: bool) -> list[str]:
    """The page's rule: by value (stable on the current order), empty cells last in either direction."""
    value = {r["id"]: r[COLUMN] for r in rows}
    filled = [i for i in order if value[i] != ""]
    filled.sort(key=lambda i: float(value[i]), reverse=descending)  # Python's sort is stable, even reversed
    return filled + [i for i in order if value[i] == ""]


def test_table_renders_images_load_and_numeric_sort(browser, site):
    rows = site["rows"]
    ids = [r["id"] for r in rows]
    dom = dump_dom(browser, site["page"], "#selftest-sort=" + urllib.parse.quote(COLUMN, safe=""),
                   site["tmp"] / "profile1")
    result = selftest(dom)
    assert result["errors"] == [] and result["found"] is True
    assert result["before"] == ids  # rendered in the table's order, every row present
    first = _expected_numeric(rows, ids, descending=False)
    second = _expected_numeric(rows, first, descending=True)
    assert result["first"] == first and result["first_sort"] == "ascending"
    assert result["second"] == second and result["second_sort"] == "descending"
    assert first != ids and second != first  # the clicks really reordered rows
    # three figures, each decoded by the browser
    assert len(result["images"]) == 3
    assert all(img["complete"] and img["naturalWidth"] > 0 for img in result["images"]), result["images"]
    # hostile model names stayed text: no injected element ran or exists
    assert result["title"] == "langneuron-eval leaderboard"
    assert "<script>alert(1)</script>" not in dom and "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert '<img src="x"' not in dom


def test_text_column_sorts_and_page_is_inert_without_hash(browser, site):
    rows = site["rows"]
    dom = dump_dom(browser, site["page"], "#selftest-sort=model", site["tmp"] / "profile2")
    result = selftest(dom)
    models = {r["id"]: r["model"] for r in rows}
    hostile = sorted((i for i in models if models[i].startswith("<")), key=lambda i: models[i])
    plain = [r["id"] for r in rows if not models[r["id"]].startswith("<")]
    assert len(hostile) == 2 and models[hostile[0]].startswith("<img")  # '<img' < '<script'
    assert result["first"] == hostile + plain
    assert result["second"] == plain + hostile[::-1]  # reversed comparison; ties keep their order
    dom = dump_dom(browser, site["page"], "", site["tmp"] / "profile3")
    assert re.search(r'<pre id="selftest-result"[^>]*></pre>', dom)  # the hook does nothing by default
    assert re.findall(r'<tr data-id="(R\d+)"', dom) == [r["id"] for r in rows]


ABSOLUTE_PATH = re.compile(r"(^|[\s(=:,;])(/[^\s/]+/|~/|[A-Za-z]:[\\/])")


@pytest.fixture(scope="module")
def demo_page(tmp_path_factory) -> Path:
    """The page built from a demo-like output folder (model recorded as a path inside a virtual environment)."""
    from langneuron_eval.cli.main import main

    tmp = tmp_path_factory.mktemp("demo_page")
    demo = write_demo_like(tmp / "demo_out")
    out = tmp / "site"
    assert main(["leaderboard", str(demo["results"]), "--out", str(out), "--ppl-matrix",
                 *map(str, demo["ppl_matrix"].values()), "--neurons", *map(str, demo["neurons"].values())]) == 0
    return out / "index.html"


@pytest.mark.parametrize("window", ["1280,800", "390,844"])
def test_first_screen_is_the_detector_ranking(browser, demo_page, tmp_path, window):
    result = selftest(dump_dom(browser, demo_page, "#selftest", tmp_path / "profile", window))
    assert result["errors"] == []
    first = result["first_table"]
    # the viewport Chromium gave: headless windows are at least 500 px wide and lose some height to the
    # window frame, so the phone case is checked at <= 500 px (the page's narrow layout starts at 600)
    width, height = first["viewport_width"], first["viewport_height"]
    assert (width <= 500) if window.startswith("390") else (width == 1280 and height >= 600)
    assert "view" in first["className"] and first["headers"][:5] == ["Rank", "Detector", "Score", "vs leader",
                                                                     "Beats floor"]
    # the first ranking holds the scores measured on ppl + steering only (lape), then the floor
    assert first["first_column"] == ["1", "floor"]
    assert 0 < first["top"] < height  # starts on the first screen at either width
    if width == 1280:
        assert first["bottom"] <= height  # on a desktop the whole ranking is on the first screen
    assert result["page_width"] <= width  # a phone scrolls wide tables inside their box, not the page
    cells = result["visible_cells"]
    assert "lape" in cells and "91.7 [83.3, 100.0]" in cells and "leader" in cells  # score interval, tie mark
    assert not [c for c in cells if ABSOLUTE_PATH.search(c) or DEMO_BASE in c]
    # the full configuration table is collapsed: its cells are not rendered until opened
    assert "R1" not in cells


def test_absolute_path_pattern_catches_paths():
    """The check above can fail: it finds the paths a careless page would show."""
    for text in (DEMO_BASE, "/tmp/x/y", "model=/opt/venv/m", r"C:\models\m", "~/models/m"):
        assert ABSOLUTE_PATH.search(text), text
    for text in ("demo-base", "org/tiny-llama", "activate(<lang>, value=mean, strength=12)", "6/6", "5/6", "+70.5"):
        assert not ABSOLUTE_PATH.search(text), text
