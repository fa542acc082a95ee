"""``langneuron bench-detector``: the battery on the example third-party package, golden files, errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from langneuron_eval.detectors import registry as reg
from langneuron_eval.detectors.registry import parse_params
from langneuron_eval.errors import LangNeuronError
from langneuron_eval.pipelines.detector_battery import (
    check_golden,
    format_table,
    golden_figures,
)

EXAMPLE = Path(__file__).parents[1] / "examples" / "my_detector"
REFERENCES = ("lape", "kojima_ap", "zhang", "random")


def install_example(tmp: Path) -> Path:
    """``pip install`` the example package (a copy, so the source tree stays clean) into ``tmp/site``.

    Falls back to the metadata pip would write (a dist-info with entry_points.txt) if pip cannot build it.
    """
    src, site = tmp / "src", tmp / "site"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                           "--quiet", "--target", str(site), str(src)], capture_output=True, text=True)
    if proc.returncode != 0:
        dist = site / "my_detector-0.1.0.dist-info"
        dist.mkdir(parents=True)
        (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-detector\nVersion: 0.1.0\n")
        (dist / "entry_points.txt").write_text(
            "[langneuron_eval.detectors]\nmy_detector = my_detector:MeanContrastDetector\n")
        shutil.copy(src / "my_detector.py", site / "my_detector.py")
    return site


@pytest.fixture
def installed(tmp_path, monkeypatch):
    site = install_example(tmp_path)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(reg.REGISTRY, "_objs", dict(reg.REGISTRY._objs))
    monkeypatch.setattr(reg.REGISTRY, "_origins", dict(reg.REGISTRY._origins))
    yield site
    sys.modules.pop("my_detector", None)


def _rows(stdout: str) -> set[str]:
    return {line.split()[0] for line in stdout.splitlines() if line.strip()}


@pytest.mark.slow
def test_quick_battery_golden_pass_and_fail(run_cli, installed, tmp_path):
    assert "my_detector" in reg.available_detectors()
    assert reg.REGISTRY.origin("my_detector") == "entry point (my-detector)"
    out, golden = tmp_path / "bench", tmp_path / "golden.json"
    rc, stdout, err = run_cli("bench-detector", "my_detector", "--param", "top_k=80", "--quick", "--out", out,
                              "--write-baseline", golden, "--no-progress")
    assert rc == 0, err
    assert {"my_detector", *REFERENCES} <= _rows(stdout.split("neurons per language:")[0])
    assert "steering gain per language" in stdout
    bench = json.loads((out / "bench.json").read_text())
    assert bench["detector_order"] == ["my_detector", *REFERENCES]
    mine = bench["detectors"]["my_detector"]
    assert bench["params"] == {"top_k": 80, "min_contrast": 0.5}
    langs = bench["languages"]
    assert len(mine["ppl_matrix"]) == len(langs) and set(mine["steering"]) == set(langs)
    assert set(mine["diagonal"]) == {"columns_diagonal_max", "share", "mean_diag_offdiag_ratio"}
    assert 0 < sum(mine["counts"].values()) <= 80 * len(langs) and len(mine["layer_share"]) == 4
    assert set(mine["overlap"]) == set(langs)
    assert (out / "leaderboard" / "leaderboard.md").stat().st_size > 0
    assert len(list((out / "results").rglob("results_*.json"))) > 2 * len(langs)
    g = json.loads(golden.read_text())
    assert set(g["figures"]) == {"diagonal_share", "mean_steering_gain", *(f"steering_gain.{x}" for x in langs)}

    # the same detector against its own golden file: passes (figures come from the cache, seconds)
    rc, stdout, err = run_cli("bench-detector", "my_detector", "--param", "top_k=80", "--quick", "--out", out,
                              "--reuse", "--baseline", golden, "--no-progress")
    assert rc == 0, err
    assert "no regression" in stdout and "warning" not in err

    # a golden file the detector does not meet: exit 1, one line per regressed figure
    g["figures"]["diagonal_share"] = 1.01
    g["figures"][f"steering_gain.{langs[1]}"] = 2.0
    golden.write_text(json.dumps(g))
    rc, stdout, err = run_cli("bench-detector", "my_detector", "--param", "top_k=80", "--quick", "--out", out,
                              "--reuse", "--baseline", golden, "--tolerance", "0", "--no-progress")
    lines = err.strip().splitlines()
    assert rc == 1 and len(lines) == 2, err
    assert lines[0].startswith("langneuron bench-detector: regressed: diagonal_share = ")
    assert "golden 1.0100" in lines[0] and "tolerance 0 = 1.0100" in lines[0]
    assert f"steering_gain.{langs[1]}" in lines[1] and "golden 2.0000" in lines[1]


@pytest.mark.slow
def test_example_package_tests_pass_with_the_fixtures(installed):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(installed), str(Path(__file__).parents[1])])}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
                           str(EXAMPLE / "tests")], capture_output=True, text=True, env=env, cwd=installed.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "6 passed" in proc.stdout  # including the entry-point test, which skips unless installed


def test_errors_are_one_line(run_cli, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep")
    cases = [
        (["no_such_detector", "--out", tmp_path / "o"], "unknown detector 'no_such_detector'"),
        (["lape", "--out", tmp_path / "full"], "is not empty; pass --reuse"),
        (["lape", "--out", tmp_path / "o", "--baseline", tmp_path / "missing.json"], "golden file not found"),
        (["lape", "--out", tmp_path / "o", "--param", "top_rate"], "is not NAME=VALUE"),
        (["lape", "--out", tmp_path / "o", "--tolerance", "-1"], "--tolerance must be >= 0"),
    ]
    for argv, message in cases:
        rc, _, err = run_cli("bench-detector", *argv, "--no-progress")
        assert rc == 2 and message in err and err.count("\n") == 1, (argv, err)
        assert err.startswith("langneuron bench-detector: error:")
    assert (tmp_path / "full" / "x").read_text() == "keep"


def _result(share=0.5, gains=(0.4, 0.6)):
    langs = ["en", "de"][: len(gains)]
    steering = {lang: {"unsteered": 0.1, "steered": 0.1 + g, "gain": g, "stderr": None} for lang, g in zip(langs, gains)}
    fig = {"diagonal": {"columns_diagonal_max": 1, "share": share, "mean_diag_offdiag_ratio": 2.0},
           "steering": steering, "mean_gain": sum(gains) / len(gains), "steered_50": sum(g >= 0.5 for g in gains),
           "total_units": 10, "unique_units": 9, "mean_overlap": 0.1, "layer_share": [0.5, 0.5],
           "counts": {"en": 5, "de": 5}}
    return {"tested": "mine", "target": "mine", "params": {}, "config": {"quick": True}, "languages": langs,
            "model": "m", "detectors": {"mine": fig, "lape": fig}}


def test_golden_check(tmp_path):
    res = _result()
    golden = tmp_path / "g.json"
    golden.write_text(json.dumps({"figures": golden_figures(res), "config": {"quick": True}}))
    assert check_golden(res, golden, 0.0) == ([], [])
    worse = _result(share=0.4, gains=(0.4, 0.5))
    regs, _ = check_golden(worse, golden, 0.05)
    assert [r.split(" =")[0] for r in regs] == ["regressed: diagonal_share", "regressed: steering_gain.de"]
    assert check_golden(worse, golden, 0.11)[0] == []  # within tolerance
    golden.write_text(json.dumps({"figures": {**golden_figures(res), "steering_gain.fr": 0.1}}))
    assert "steering_gain.fr is missing" in check_golden(res, golden, 0.0)[0][0]
    golden.write_text("{}")
    with pytest.raises(LangNeuronError, match="not a bench-detector golden file"):
        check_golden(res, golden, 0.0)


def test_table_and_params():
    text = format_table(_result())
    assert text.splitlines()[2].split()[:3] == ["detector", "units", "unique"]
    assert {"mine", "lape"} <= _rows(text)
    assert parse_params(["a=1", " b = x "]) == {"a": "1", "b": "x"}
