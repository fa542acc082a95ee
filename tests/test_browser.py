"""``index.html`` in a real browser: headless Chromium renders it, loads its images and sorts its table.

No Python browser driver is needed: ``chromium --headless --dump-dom URL`` prints the DOM after the
page's load event, and the page's own script has a self-test hook (URL hash
``#selftest-sort=<column>``) that clicks a column header twice and writes the row orders, image
sizes and document title into ``<pre id="selftest-result">``. The page's Content-Security-Policy
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
from test_leaderboard import T0, langneuron_info, make_results, read_csv, steer, write_results, write_suite

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


def dump_dom(browser: str, page: Path, fragment: str, profile: Path) -> str:
    """The page's DOM after load, as headless Chromium serialises it."""
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-extensions", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
           "--dump-dom", page.as_uri() + fragment]
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
    from langneuron_eval.neurons import NeuronFile
    from langneuron_eval.sites import ModelFingerprint

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
