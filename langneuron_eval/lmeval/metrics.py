"""Metric functions of the shipped lm-eval tasks (``tasks/``), kept here so they are unit-testable.

The task folders' ``utils.py`` files only glue these functions to lm-eval's ``process_results`` and
``aggregation`` hooks. Conventions:

* QA (``xqa``): SQuAD answer normalisation (lowercase, drop punctuation and the English articles
  a/an/the, collapse whitespace). Punctuation is ASCII punctuation *plus* every Unicode punctuation
  character (as MLQA does), so "。" or "«" do not break exact match. ``f1`` is SQuAD's token F1 over
  whitespace tokens, which is meaningless for Chinese and Japanese (a whole answer is one token);
  ``f1_char`` is F1 over the multiset of non-space characters of the normalised strings, which
  behaves the same way for every script. With several gold answers the best score is taken.
* Math (``xmath``): the *last* number in the output is the prediction (MGSM "flexible extract").
* MT (``lang_mt``): corpus-level BLEU and chrF with sacrebleu; ``tokenize="zh"`` for Chinese and
  ``"char"`` for Japanese (``ja-mecab`` would need MeCab, which is not installed).
"""

from __future__ import annotations

import collections
import math
import re
import string
import unicodedata
from collections.abc import Sequence
from typing import Any

from langneuron_eval.lid import OTHER, bucket, detect
from langneuron_eval.lmeval import text_quality

# ---------------------------------------------------------------------------------------------- QA

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_ASCII_PUNCT = set(string.punctuation)


def _is_punct(ch: str) -> bool:
    return ch in _ASCII_PUNCT or unicodedata.category(ch).startswith("P")


def normalize_answer(text: str) -> str:
    """SQuAD normalisation with Unicode punctuation (and NFKC, so full-width forms match ASCII)."""
    text = unicodedata.normalize("NFKC", text or "").lower()
    text = "".join(ch for ch in text if not _is_punct(ch))
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _f1(pred_tokens: Sequence[str], gold_tokens: Sequence[str]) -> float:
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)  # both empty -> 1, one empty -> 0 (SQuAD)
    common = collections.Counter(pred_tokens) & collections.Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def _golds(golds: str | Sequence[str]) -> list[str]:
    if isinstance(golds, str):
        return [golds]
    return list(golds) or [""]


def exact_match(prediction: str, golds: str | Sequence[str]) -> float:
    pred = normalize_answer(prediction)
    return max(float(pred == normalize_answer(g)) for g in _golds(golds))


def f1(prediction: str, golds: str | Sequence[str]) -> float:
    pred = normalize_answer(prediction).split()
    return max(_f1(pred, normalize_answer(g).split()) for g in _golds(golds))


def f1_char(prediction: str, golds: str | Sequence[str]) -> float:
    """Character-level F1 (whitespace ignored): comparable across scripts, incl. Chinese and Japanese."""
    pred = list(normalize_answer(prediction).replace(" ", ""))
    return max(_f1(pred, list(normalize_answer(g).replace(" ", ""))) for g in _golds(golds))


def qa_scores(prediction: str, golds: str | Sequence[str]) -> dict[str, float]:
    """The three per-item QA metrics; the first line of the output is the answer."""
    prediction = (prediction or "").strip().split("\n")[0]
    return {"exact_match": exact_match(prediction, golds), "f1": f1(prediction, golds),
            "f1_char": f1_char(prediction, golds)}


# -------------------------------------------------------------------------------------------- math

# A number: optional minus (not glued to a preceding letter or digit, so "10-5" yields 10 and 5),
# digits with optional thousands commas ("1,000"), optional decimals ("2.5"; "3." is 3).
_NUMBER = re.compile(r"(?:(?<![0-9A-Za-z])-)?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")


def extract_numbers(text: str) -> list[float]:
    """Every number in ``text`` in order; full-width digits and the Unicode minus sign are accepted."""
    text = unicodedata.normalize("NFKC", text or "").replace("\u2212", "-")
    return [float(m.group(0).replace(",", "")) for m in _NUMBER.finditer(text)]


def extract_last_number(text: str) -> float | None:
    """The last number in ``text``, or None when there is none (then the answer counts as wrong)."""
    numbers = extract_numbers(text)
    return numbers[-1] if numbers else None


def numbers_equal(prediction: float | None, answer: float | int | str) -> bool:
    if prediction is None:
        return False
    try:
        target = float(str(answer).replace(",", ""))
    except ValueError:
        return False
    return math.isclose(prediction, target, rel_tol=0.0, abs_tol=1e-6)


# ---------------------------------------------------------------------------------------------- MT

BLEU_TOKENIZE = {"zh": "zh", "ja": "char"}


def bleu_tokenizer(lang: str) -> str:
    return BLEU_TOKENIZE.get(lang, "13a")


def _split_items(items: Sequence[tuple[str, str, str]]) -> tuple[list[str], list[str], str]:
    refs = [str(r) for r, _, _ in items]
    preds = [str(p) for _, p, _ in items]
    langs = {lang for _, _, lang in items}
    if len(langs) > 1:
        raise ValueError(f"corpus scores mix target languages {sorted(langs)}")
    return refs, preds, (langs.pop() if langs else "en")


def corpus_bleu(items: Sequence[tuple[str, str, str]]) -> float:
    """Corpus BLEU (0-100) over ``(reference, prediction, target_lang)`` items."""
    import sacrebleu

    refs, preds, lang = _split_items(items)
    return float(sacrebleu.corpus_bleu(preds, [refs], tokenize=bleu_tokenizer(lang)).score)


def corpus_chrf(items: Sequence[tuple[str, str, str]]) -> float:
    """Corpus chrF (0-100, character n-grams, so no tokenizer choice is needed)."""
    import sacrebleu

    refs, preds, _ = _split_items(items)
    return float(sacrebleu.corpus_chrf(preds, [refs]).score)


# ------------------------------------------------------------------------------- language shares

def lang_rate_scores(text: str, target: str, languages: Sequence[str], label: str | None = None) -> dict[str, Any]:
    """Per-output indicators: ``lang_rate`` (LID == target), ``lang_rate_<l>`` for every other
    language of interest, and ``lang_rate_other`` (any other label, including empty outputs).

    ``label``: the text's LID label when the caller has it already."""
    label = bucket(detect(text) if label is None else label, languages)
    out = {"lang_rate": float(label == target)}
    for lang in languages:
        if lang != target:
            out[f"lang_rate_{lang}"] = float(label == lang)
    out[f"lang_rate_{OTHER}"] = float(label == OTHER)
    return out


def steer_scores(text: str, target: str, languages: Sequence[str]) -> dict[str, Any]:
    """Everything a ``lang_steer`` task reports per generation: the language shares of :func:`lang_rate_scores`
    and the text-quality metrics of :func:`~langneuron_eval.lmeval.text_quality.quality_scores` (code-switching,
    degeneration, the combined ``on_target_fluent``), from one LID call."""
    label = detect(text)
    return {**lang_rate_scores(text, target, languages, label=label),
            **text_quality.quality_scores(text, target, label=label)}
