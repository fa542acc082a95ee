"""Steered text judged like text: code-switching, degeneration and fluency, one number per generation.

``lang_rate`` asks one question of a generation -- is its fastText label the target language? -- and a
steered model can pass it with "der der der ..." or with one target-language word in an English
sentence. The functions here score each generation on its own (so lm-eval aggregates them by ``mean``
with its standard error) and are pure apart from the fastText LID model of :mod:`langneuron_eval.lid`:

* **code-switching** (after Marchisio et al. 2024, "Understanding and mitigating language confusion"):
  :func:`line_pass_rate`, the share of lines whose LID label is the target, and :func:`word_pass_rate`,
  the share of words (or script-appropriate units) identified as the target. How words are found and
  judged is the rule of :func:`units` and :func:`unit_verdict`; docs/steering_quality.md explains it.
* **degeneration**: :func:`distinct_n` (unique n-grams / n-grams), :func:`repetition_rate` (share of
  4-grams that repeat an earlier one) and :func:`compression_ratio` (UTF-8 bytes / zlib bytes), combined
  by :func:`is_degenerate` with the thresholds below.
* **fluency**: :func:`judge_ppl_ratios`, a generation's perplexity under the unsteered model divided by the
  median over the unsteered generations (the perplexities themselves need the model; they come from the
  caller).
* :func:`quality_scores`: all of the above for one generation, plus ``on_target_fluent`` -- the LID label
  is the target AND the text is not degenerate AND (when a judge ratio is given) the ratio is within
  :data:`MAX_JUDGE_PPL_RATIO` -- the single success number that neither a loop nor a stray word can game.

No function returns NaN for a text, however short: lm-eval's ``mean`` would turn one NaN into a NaN
score. An empty or letterless generation fails both pass rates (0.0), as it fails ``lang_rate``; the
degeneration metrics give it their "nothing repeated" values (distinct-2 = 1, repetition = 0,
compression ratio = 0), so emptiness is counted once, by the language checks, not twice.
"""

from __future__ import annotations

import functools
import math
import statistics
import unicodedata
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import regex

from langneuron_eval import languages, lid
from langneuron_eval.errors import LangNeuronError

# ------------------------------------------------------------------------------------ thresholds

# Degenerate rule (is_degenerate): any one of the three marks a repetition loop. Calibrated on the demo
# corpus's held-out text cut into 32-, 64- and 128-token pieces (none flagged; the worst pieces have
# distinct-2 0.57 and compression 2.30 (Japanese), repetition 0.33 (Chinese)) and on pieces whose second
# half or more is a loop of 1 to 8 words (flagged; a loop over the last quarter is not). See
# docs/steering_quality.md for the table and the command that prints it.
MIN_DISTINCT_2 = 0.5  # fewer than half of the bigrams are distinct
MAX_REPETITION_4 = 0.5  # more than half of the 4-grams repeat an earlier 4-gram
# zlib shrinks the text more than 3x. Catches what has no word n-grams (a loop inside one Thai run,
# "!!!!"); above the 2.30 of natural Japanese, whose 3-byte UTF-8 characters compress better than ASCII.
MAX_COMPRESSION_RATIO = 3.0

# Fluency: a generation is not fluent when the unsteered model finds it this many times as perplexing
# as the median unsteered generation (a provisional bound; the sweep's damage budget may be tighter).
MAX_JUDGE_PPL_RATIO = 4.0

# Word-level LID (unit_verdict): fastText on one word is only trusted when it is confident, and words
# shorter than this many letters (function words shared by many languages: "in", "la", "de") are not judged.
WORD_LID_MIN_PROB = 0.7
WORD_LID_MIN_LETTERS = 3

# Line-level LID (line_pass_rate): lines with fewer units carry too little text for fastText.
MIN_LINE_UNITS = 3

# Metric name -> whether higher is better (for lm-eval's metric_list and the leaderboard).
HIGHER_IS_BETTER = {"line_pass_rate": True, "word_pass_rate": True, "distinct_2": True, "repetition_4": False,
                    "compression_ratio": False, "degenerate": False, "on_target_fluent": True}

# ------------------------------------------------------------------------------------ scripts

# languages.tsv names writing systems by ISO 15924 codes; these four name a mix of Unicode scripts.
_COMPOSITE_SCRIPTS = {"Hans": ("Hani",), "Hant": ("Hani",), "Jpan": ("Hani", "Hira", "Kana"), "Kore": ("Hang",)}
# lid.176 has one label per language whatever its script; these are commonly written in a second one.
_EXTRA_SCRIPTS = {"sr": ("Latn",), "sh": ("Cyrl",), "uz": ("Cyrl",)}
# Scripts written without spaces between words. Han and kana: one character is one unit (a character is
# about a morpheme, so counts stay word-like). Thai, Lao, Khmer, Burmese: a run of letters is one unit
# (spaces separate phrases there, so a unit is a phrase; a word segmenter would be needed to do better).
CHAR_UNIT_SCRIPTS = frozenset({"Hani", "Hira", "Kana"})
RUN_UNIT_SCRIPTS = frozenset({"Thai", "Laoo", "Khmr", "Mymr"})
UNKNOWN_SCRIPT = "Zzzz"  # letters of a script no language of the table is written in

# A token: letters, marks and digits, with inner apostrophes and hyphens ("don't", "Sankt-Petersburg",
# "mp3"); a token of digits only is a number, which counts in the n-gram metrics but has no language.
_TOKEN = regex.compile(r"[\p{L}\p{M}\p{Nd}]+(?:['\u2019\-][\p{L}\p{M}\p{Nd}]+)*")


def _expand(script: str) -> tuple[str, ...]:
    return _COMPOSITE_SCRIPTS.get(script, (script,))


@functools.lru_cache(maxsize=1)
def _known_scripts() -> tuple[str, ...]:
    """Unicode scripts of every language of the table, in a fixed order (the first match wins)."""
    found = [s for lang in languages.table().values() for s in _expand(lang.script)]
    found += [s for extra in _EXTRA_SCRIPTS.values() for s in extra]
    return tuple(dict.fromkeys(s for s in found if _valid_script(s)))


def _valid_script(script: str) -> bool:
    try:
        regex.compile(rf"\p{{sc={script}}}")
    except regex.error:
        return False
    return True


@functools.lru_cache(maxsize=4096)
def char_script(ch: str) -> str | None:
    """ISO 15924 code of a letter's script; None for marks, digits and punctuation.

    The character's own Script property decides; a letter of the Common script used by several (the
    Japanese long-vowel mark "ー" is Hiragana and Katakana) takes the first of its Script_Extensions.
    """
    if not unicodedata.category(ch).startswith("L"):
        return None
    scripts = _known_scripts()
    for script in scripts:
        if regex.match(rf"\p{{sc={script}}}", ch):
            return script
    for script in scripts:
        if regex.match(rf"\p{{scx={script}}}", ch):
            return script
    return UNKNOWN_SCRIPT


@functools.lru_cache(maxsize=256)
def language_scripts(lang: str) -> frozenset[str]:
    """Unicode scripts a language is written in (``"ja"`` -> Hani, Hira, Kana)."""
    row = languages.table().get(lang)
    if row is None:
        raise LangNeuronError(f"unknown language {lang!r}: expected a code of langneuron_eval/data/languages.tsv")
    return frozenset([*_expand(row.script), *_EXTRA_SCRIPTS.get(lang, ())])


@functools.lru_cache(maxsize=256)
def script_languages(script: str) -> tuple[str, ...]:
    """The lid.176 languages written in ``script`` (Latn: 100 of them; Hang: ko only)."""
    return tuple(code for code, row in languages.table().items() if row.lid176 and script in language_scripts(code))


# ------------------------------------------------------------------------------------ units

@dataclass(frozen=True)
class Unit:
    """One word, or the script-appropriate stand-in for a word, of a generation."""

    text: str
    script: str  # ISO 15924 code of its letters (UNKNOWN_SCRIPT for letters of a script no language uses)
    spaced: bool  # True for a word of a space-separated script; False for a character or a run


def _script_runs(word: str) -> list[tuple[str, str]]:
    """Split a token into maximal same-script pieces; marks, digits and joiners stay with the letter before
    (leading ones are dropped: a number has no language)."""
    runs: list[tuple[str, str]] = []
    for ch in word:
        script = char_script(ch)
        if runs and (script is None or script == runs[-1][1]):
            runs[-1] = (runs[-1][0] + ch, runs[-1][1])
        elif script is not None:
            runs.append((ch, script))
    return runs


def units(text: str) -> list[Unit]:
    """The units whose language :func:`word_pass_rate` judges, in order (digits and punctuation are none).

    A word is a run of letters (with inner apostrophes or hyphens) of one script, so "Python编程" is two
    pieces. A piece of Han or kana gives one unit per character; a piece of Thai, Lao, Khmer or Burmese
    is one unit; any other piece is one word.
    """
    out: list[Unit] = []
    for match in _TOKEN.finditer(unicodedata.normalize("NFC", text or "")):
        for piece, script in _script_runs(match.group(0)):
            if script in CHAR_UNIT_SCRIPTS:
                out.extend(Unit(ch, script, False) for ch in piece if char_script(ch) is not None)
            else:
                out.append(Unit(piece, script, script not in RUN_UNIT_SCRIPTS))
    return out


def tokens(text: str) -> list[str]:
    """Tokens of the n-gram metrics, in order: the units (case-folded) and the numbers ("1", "12-34")."""
    out: list[str] = []
    for match in _TOKEN.finditer(unicodedata.normalize("NFC", text or "")):
        token = match.group(0)
        if not any(char_script(ch) for ch in token):
            out.append(token)
        else:
            out.extend(u.text.casefold() for u in units(token))
    return out


# ------------------------------------------------------------------------------------ code-switching

WordLid = Callable[[str], tuple[str, float]]  # word -> (lid.176 label, probability)
LineLid = Callable[[str], str]  # line -> lid.176 label ("none" when empty)


@functools.lru_cache(maxsize=1 << 16)
def fasttext_word(word: str) -> tuple[str, float]:
    """fastText lid.176's top label of one word and its probability (cached: generations repeat words)."""
    result = lid.detector().detect(word, model="lite", k=1)
    return (str(result[0]["lang"]), float(result[0]["score"])) if result else (lid.NONE, 0.0)


def unit_verdict(unit: Unit, target: str, word_lid: WordLid = fasttext_word) -> bool | None:
    """Whether a unit is in the target language: True, False, or None when it cannot be told.

    The script decides first: a unit in a script the target is not written in is off-target; one in a
    script only the target uses (among lid.176's languages), or in a script without spaces (a Han
    character cannot be identified alone), is on-target. A word of a shared script (Latin, Cyrillic,
    Arabic, Devanagari...) is judged by fastText, and only when it has at least
    ``WORD_LID_MIN_LETTERS`` letters and fastText gives its top label at least ``WORD_LID_MIN_PROB``.
    """
    if unit.script not in language_scripts(target):
        return False
    if not unit.spaced or len(script_languages(unit.script)) <= 1:
        return True
    if sum(ch.isalpha() for ch in unit.text) < WORD_LID_MIN_LETTERS:
        return None
    label, prob = word_lid(unit.text)
    return None if prob < WORD_LID_MIN_PROB else label == target


def word_pass_rate(text: str, target: str, word_lid: WordLid = fasttext_word,
                   line_lid: LineLid = lid.detect) -> float:
    """Share of the decided units (:func:`unit_verdict` not None) that are in the target language.

    When no unit is decided (every word short or ambiguous) the whole text's LID label decides (1 or 0);
    a text without letters scores 0, as it fails ``lang_rate``.
    """
    found = units(text)
    if not found:
        return 0.0
    verdicts = [v for v in (unit_verdict(u, target, word_lid) for u in found) if v is not None]
    if not verdicts:
        return float(line_lid(text) == target)
    return sum(verdicts) / len(verdicts)


def judged_lines(text: str) -> list[str]:
    """Lines with at least ``MIN_LINE_UNITS`` units; the whole text as one line when none has as many."""
    lines = [line.strip() for line in (text or "").splitlines()]
    long_enough = [line for line in lines if len(units(line)) >= MIN_LINE_UNITS]
    if long_enough:
        return long_enough
    return [" ".join(lines).strip()] if units(text) else []


def line_pass_rate(text: str, target: str, line_lid: LineLid = lid.detect) -> float:
    """Share of the judged lines (:func:`judged_lines`) whose LID label is the target; 0 without letters."""
    lines = judged_lines(text)
    if not lines:
        return 0.0
    return sum(line_lid(line) == target for line in lines) / len(lines)


# ------------------------------------------------------------------------------------ degeneration

def _ngrams(items: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(items[i:i + n]) for i in range(len(items) - n + 1)]


def distinct_n(text: str, n: int = 2) -> float:
    """Unique n-grams / n-grams of the text's :func:`tokens` (Li et al.'s distinct-n, per generation).

    1.0 when the text has fewer than ``n`` tokens: nothing is repeated (the language checks, not this
    one, fail an empty output).
    """
    grams = _ngrams(tokens(text), n)
    return len(set(grams)) / len(grams) if grams else 1.0


def repetition_rate(text: str, n: int = 4) -> float:
    """Share of the n-grams (by position) that repeat an n-gram seen earlier in the text; 0.0 without any.

    A loop of period p <= n over T tokens scores (T - n + 1 - p) / (T - n + 1), close to 1; text that
    never repeats a 4-word phrase scores 0.
    """
    grams = _ngrams(tokens(text), n)
    seen: set[tuple[str, ...]] = set()
    repeats = 0
    for gram in grams:
        repeats += gram in seen
        seen.add(gram)
    return repeats / len(grams) if grams else 0.0


def compression_ratio(text: str) -> float:
    """UTF-8 bytes / zlib-compressed bytes (level 9): about 1 for text, large for loops (Whisper's test).

    Sees what the token metrics cannot: loops inside one unit (a Thai run, "hahahaha") and of
    punctuation. The compressed stream has at least 8 bytes of framing, so the ratio of an empty text
    is 0 and short texts score below 1.
    """
    raw = (text or "").encode("utf-8")
    return len(raw) / len(zlib.compress(raw, 9))


def is_degenerate(distinct_2: float, repetition_4: float, compression: float) -> bool:
    """The documented rule: distinct-2 below MIN_DISTINCT_2, or repetition above MAX_REPETITION_4, or
    compression ratio above MAX_COMPRESSION_RATIO."""
    return distinct_2 < MIN_DISTINCT_2 or repetition_4 > MAX_REPETITION_4 or compression > MAX_COMPRESSION_RATIO


# ------------------------------------------------------------------------------------ fluency

def reference_ppl(unsteered: Iterable[float]) -> float:
    """The median judge perplexity of the unsteered generations (finite, positive values only).

    The median, not the mean, because one empty or looping unsteered sample has an extreme perplexity.
    """
    values = [float(v) for v in unsteered if math.isfinite(float(v)) and float(v) > 0]
    if not values:
        raise LangNeuronError("no unsteered generation has a finite judge perplexity to compare against")
    return statistics.median(values)


def judge_ppl_ratios(steered: Iterable[float], unsteered: Iterable[float]) -> list[float]:
    """Each steered generation's judge perplexity divided by :func:`reference_ppl` of the unsteered ones.

    Both perplexities are under the unsteered model, so the ratio measures how much less natural the
    steered text is than what the model writes by itself, in a unit comparable across languages. A
    non-finite perplexity (an empty generation has none) gives NaN: the caller must aggregate the ratio
    with a NaN-aware statistic; :func:`on_target_fluent` counts NaN as not fluent.
    """
    reference = reference_ppl(unsteered)
    return [float(p) / reference if math.isfinite(float(p)) else math.nan for p in steered]


# ------------------------------------------------------------------------------------ combined

def on_target_fluent(label: str, target: str, degenerate: bool, ppl_ratio: float | None = None) -> bool:
    """The combined success: LID label is the target, not degenerate, and (when given) the judge
    perplexity ratio is finite and at most MAX_JUDGE_PPL_RATIO."""
    fluent = ppl_ratio is None or (math.isfinite(ppl_ratio) and ppl_ratio <= MAX_JUDGE_PPL_RATIO)
    return label == target and not degenerate and fluent


def quality_scores(text: str, target: str, label: str | None = None,
                   ppl_ratio: float | None = None) -> dict[str, float]:
    """Every per-generation quality metric of one steered output (names as in HIGHER_IS_BETTER).

    ``label`` is the text's LID label when the caller has it already (``lang_rate`` computes it);
    ``ppl_ratio`` is the generation's entry of :func:`judge_ppl_ratios`, when the model is at hand. A text
    without a letter is in no language, whatever fastText says (it labels "!!!!" and "12 34" English),
    so its combined success is 0.
    """
    label = lid.detect(text) if label is None else label
    label = label if units(text) else lid.NONE
    d2, rep, comp = distinct_n(text, 2), repetition_rate(text, 4), compression_ratio(text)
    degenerate = is_degenerate(d2, rep, comp)
    return {"line_pass_rate": line_pass_rate(text, target), "word_pass_rate": word_pass_rate(text, target),
            "distinct_2": d2, "repetition_4": rep, "compression_ratio": comp, "degenerate": float(degenerate),
            "on_target_fluent": float(on_target_fluent(label, target, degenerate, ppl_ratio))}
