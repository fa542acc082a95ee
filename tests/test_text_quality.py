"""Quality metrics of steered text on hand-built texts whose values are known.

Exact values come from the documented rules (a loop of one word over 64 tokens has one distinct bigram
out of 63); where fastText decides, a stand-in LID with known answers checks the arithmetic, and the
real lid.176 model is asked only for verdicts no reasonable identifier could get wrong.
"""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from langneuron_eval import lid
from langneuron_eval.errors import LangNeuronError
from langneuron_eval.lmeval import text_quality as tq

LOOP = " ".join(["der"] * 64)
MIXED = ("We spent the whole evening in the garden, and the Gemütlichkeit of the old house made "
         "everyone happy.")
THREE_LINES = ("Heute scheint die Sonne über der ganzen Stadt.\n"
               "The children are playing football in the park.\n"
               "Am Abend gehen wir zusammen ins Kino.\n"
               "1.\n")


def fake_word_lid(table: dict[str, tuple[str, float]]):
    """A word identifier with known answers; unknown words get fastText's no-information answer."""
    return lambda word: table.get(word, ("en", 0.12))


# ------------------------------------------------------------------------------------ loops

def test_repeated_word_passes_lang_rate_but_not_the_combined_success():
    assert lid.detect(LOOP) == "de"  # what lang_rate sees: a German output
    scores = tq.quality_scores(LOOP, "de")
    assert scores["line_pass_rate"] == 1.0 and scores["word_pass_rate"] == 1.0
    assert scores["distinct_2"] == pytest.approx(1 / 63)  # 63 bigrams, all ("der", "der")
    assert scores["repetition_4"] == pytest.approx(60 / 61)  # 61 4-grams, only the first is new
    assert scores["compression_ratio"] > tq.MAX_COMPRESSION_RATIO
    assert scores["degenerate"] == 1.0 and scores["on_target_fluent"] == 0.0


def test_case_does_not_hide_a_loop():
    assert tq.distinct_n("Der der DER der", 2) == pytest.approx(1 / 3)


@given(period=st.integers(1, 6), length=st.integers(10, 80))
@settings(max_examples=60, deadline=None)
def test_repetition_of_a_loop_follows_its_period(period, length):
    """A loop of ``period`` distinct words: the first ``period`` 4-grams are new, every later one repeats."""
    words = [f"w{i}" for i in range(period)]
    text = " ".join(words[i % period] for i in range(length))
    n_grams = length - 3
    assert tq.repetition_rate(text, 4) == pytest.approx((n_grams - min(period, n_grams)) / n_grams)
    assert tq.distinct_n(text, 2) == pytest.approx(min(period, length - 1) / (length - 1))


@given(st.lists(st.sampled_from(["a", "b", "c"]), min_size=0, max_size=30), st.integers(1, 5))
@settings(max_examples=100, deadline=None)
def test_ngram_metrics_agree_with_brute_force(words, n):
    text = " ".join(words)
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    repeats = sum(any(grams[j] == grams[i] for j in range(i)) for i in range(len(grams)))
    assert tq.repetition_rate(text, n) == pytest.approx(repeats / len(grams) if grams else 0.0)
    assert tq.distinct_n(text, n) == pytest.approx(len(set(grams)) / len(grams) if grams else 1.0)


def test_compression_ratio_separates_loops_from_text():
    rng = random.Random(0)
    noise = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(300))
    assert tq.compression_ratio(noise) < 2.0  # 27 symbols carry ~4.75 bits of 8: ratio below 1.7
    assert tq.compression_ratio("ha" * 150) > 10
    assert tq.compression_ratio("") == 0.0  # zlib's framing: 0 bytes / 8 bytes, not NaN


def test_a_loop_without_words_is_caught_by_compression_only():
    for text in ("มาก" * 40, "!" * 64):
        d2, rep, comp = tq.distinct_n(text), tq.repetition_rate(text), tq.compression_ratio(text)
        assert (d2, rep) == (1.0, 0.0)  # at most one unit: no n-gram repeats
        assert comp > tq.MAX_COMPRESSION_RATIO and tq.is_degenerate(d2, rep, comp)
    assert lid.detect("!" * 64) == "en"  # lang_rate would count the punctuation loop as English...
    assert tq.quality_scores("!" * 64, "en")["on_target_fluent"] == 0.0  # ...the combined success does not


def test_degenerate_rule_is_strict_at_its_thresholds():
    assert not tq.is_degenerate(tq.MIN_DISTINCT_2, tq.MAX_REPETITION_4, tq.MAX_COMPRESSION_RATIO)
    assert tq.is_degenerate(tq.MIN_DISTINCT_2 - 1e-9, 0.0, 1.0)
    assert tq.is_degenerate(1.0, tq.MAX_REPETITION_4 + 1e-9, 1.0)
    assert tq.is_degenerate(1.0, 0.0, tq.MAX_COMPRESSION_RATIO + 1e-9)


# ------------------------------------------------------------------------------------ code-switching

def test_one_german_word_in_an_english_sentence():
    assert tq.line_pass_rate(MIXED, "en") == 1.0  # the line is English
    assert tq.unit_verdict(tq.Unit("Gemütlichkeit", "Latn", True), "en") is False
    assert tq.unit_verdict(tq.Unit("everyone", "Latn", True), "en") is True
    assert 0.5 < tq.word_pass_rate(MIXED, "en") < 1.0


def test_word_pass_rate_counts_only_decided_words():
    words = {"spent": ("en", 0.99), "evening": ("en", 0.8), "garden": ("en", 0.4), "Gemütlichkeit": ("de", 0.99),
             "house": ("en", 0.9), "everyone": ("en", 0.9)}
    # decided: spent, evening, house, everyone (en) and Gemütlichkeit (de); "garden" (0.4), the
    # no-information words (0.12) and words of fewer than 3 letters ("We", "in", "of") are not
    assert tq.word_pass_rate(MIXED, "en", word_lid=fake_word_lid(words)) == pytest.approx(4 / 5)
    assert tq.word_pass_rate(MIXED, "de", word_lid=fake_word_lid(words)) == pytest.approx(1 / 5)


def test_word_pass_rate_falls_back_to_the_text_label_when_no_word_is_decided():
    def undecided(word):
        return ("en", 0.1)

    assert tq.word_pass_rate("Un chat et un chien", "fr", undecided, line_lid=lambda t: "fr") == 1.0
    assert tq.word_pass_rate("Un chat et un chien", "fr", undecided, line_lid=lambda t: "it") == 0.0


def test_multi_line_output_with_one_off_target_line():
    assert tq.judged_lines(THREE_LINES)[1].startswith("The children")
    assert len(tq.judged_lines(THREE_LINES)) == 3  # "1." has no words and is not judged
    assert tq.line_pass_rate(THREE_LINES, "de") == pytest.approx(2 / 3)
    assert tq.line_pass_rate(THREE_LINES, "en") == pytest.approx(1 / 3)


def test_short_lines_are_judged_together():
    assert tq.judged_lines("Guten Tag\nmein Freund\n") == ["Guten Tag mein Freund"]


def test_cjk_units_are_characters_judged_by_script():
    text = "我喜欢Python编程。"
    assert [(u.text, u.script) for u in tq.units(text)] == [
        ("我", "Hani"), ("喜", "Hani"), ("欢", "Hani"), ("Python", "Latn"), ("编", "Hani"), ("程", "Hani")]
    assert tq.word_pass_rate(text, "zh") == pytest.approx(5 / 6)
    assert tq.line_pass_rate(text, "zh") == 1.0


def test_japanese_counts_kana_and_kanji_and_chinese_only_kanji():
    text = "私は学生です。"  # kanji 私 学 生, kana は で す
    assert tq.word_pass_rate(text, "ja") == 1.0
    assert tq.word_pass_rate(text, "zh") == pytest.approx(3 / 6)
    assert tq.char_script("ー") in tq.language_scripts("ja")  # the long-vowel mark is Common script


def test_korean_words_are_judged_by_hangul():
    assert tq.word_pass_rate("나는 학생입니다.", "ko") == 1.0
    assert tq.word_pass_rate("나는 학생입니다.", "ja") == 0.0


def test_thai_runs_are_units():
    text = "ฉันชอบกินข้าว Python มาก"
    assert [u.text for u in tq.units(text)] == ["ฉันชอบกินข้าว", "Python", "มาก"]
    assert tq.word_pass_rate(text, "th") == pytest.approx(2 / 3)
    assert tq.line_pass_rate(text, "th") == 1.0


def test_marks_stay_in_their_word():
    assert [u.text for u in tq.units("हिन्दी भाषा")] == ["हिन्दी", "भाषा"]  # virama and vowel signs are marks
    assert [u.text for u in tq.units("cafe\u0301 don't")] == ["café", "don't"]


def test_serbian_in_latin_is_judged_by_lid_not_refused_by_script():
    words = fake_word_lid({"Beograd": ("sr", 0.9)})
    assert tq.unit_verdict(tq.Unit("Beograd", "Latn", True), "sr", words) is True
    assert tq.unit_verdict(tq.Unit("Београд", "Cyrl", True), "ru", fake_word_lid({"Београд": ("sr", 0.9)})) is False


def test_unknown_target_is_one_clear_error():
    with pytest.raises(LangNeuronError, match="unknown language 'xx'"):
        tq.word_pass_rate("Hallo Welt wie geht es", "xx")


# ------------------------------------------------------------------------------------ empty

@pytest.mark.parametrize("text", ["", "   \n\n ", "12 34 56"])
def test_texts_without_words_fail_the_language_checks_without_nan(text):
    scores = tq.quality_scores(text, "en")
    assert all(math.isfinite(v) for v in scores.values())
    assert scores["line_pass_rate"] == 0.0 and scores["word_pass_rate"] == 0.0
    assert scores["on_target_fluent"] == 0.0


def test_empty_text_has_the_nothing_repeated_values():
    scores = tq.quality_scores("", "en")
    assert (scores["distinct_2"], scores["repetition_4"], scores["compression_ratio"]) == (1.0, 0.0, 0.0)
    assert scores["degenerate"] == 0.0  # emptiness is counted by the language checks, not twice


# ------------------------------------------------------------------------------------ fluency, combined

def test_judge_ratio_is_relative_to_the_unsteered_median():
    unsteered = [10.0, 20.0, 1000.0, math.nan, math.inf]  # non-finite values are ignored
    assert tq.reference_ppl(unsteered) == 20.0
    ratios = tq.judge_ppl_ratios([20.0, 80.0, math.nan], unsteered)
    assert ratios[:2] == [1.0, 4.0] and math.isnan(ratios[2])
    with pytest.raises(LangNeuronError, match="no unsteered generation"):
        tq.judge_ppl_ratios([1.0], [math.nan, 0.0])


def test_combined_success_needs_every_part():
    assert tq.on_target_fluent("de", "de", degenerate=False)
    assert not tq.on_target_fluent("en", "de", degenerate=False)
    assert not tq.on_target_fluent("de", "de", degenerate=True)
    assert tq.on_target_fluent("de", "de", False, ppl_ratio=tq.MAX_JUDGE_PPL_RATIO)
    assert not tq.on_target_fluent("de", "de", False, ppl_ratio=tq.MAX_JUDGE_PPL_RATIO * 1.01)
    assert not tq.on_target_fluent("de", "de", False, ppl_ratio=math.nan)


def test_quality_scores_names_match_the_declared_directions():
    scores = tq.quality_scores(MIXED, "en", label="en", ppl_ratio=1.0)
    assert set(scores) == set(tq.HIGHER_IS_BETTER)
    assert scores["on_target_fluent"] == 1.0 and scores["degenerate"] == 0.0
    assert tq.quality_scores(MIXED, "en", label="en", ppl_ratio=10.0)["on_target_fluent"] == 0.0
