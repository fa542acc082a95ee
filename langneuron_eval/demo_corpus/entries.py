"""The lexicon entry type and compact parsers for per-language noun specifications.

Lexicon tables are written as short strings (``"m:Apfel|Äpfel"``) so that a concept's six
languages fit on one line and can be reviewed side by side; this module turns them into dicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from langneuron_eval.languages import DEMO_LANGUAGES

LANGS = DEMO_LANGUAGES  # the column order of every lexicon table
GENDER_INDEX = {"m": 0, "f": 1, "n": 2}


@dataclass(frozen=True)
class Entry:
    """One concept: a stable id, a kind (which realiser code handles it), tags and per-language forms.

    ``split_key`` lets two concepts that look the same in some language (``cousin`` m/f in English)
    share a split, so one surface sentence can never land in two splits.
    """

    id: str
    kind: str
    tags: frozenset[str]
    forms: Mapping[str, Mapping[str, Any]]
    split_key: str = ""

    @property
    def key(self) -> str:
        return self.split_key or self.id

    def f(self, lang: str) -> Mapping[str, Any]:
        return self.forms[lang]

    def gender(self, lang: str) -> str:
        return str(self.forms[lang].get("g", "m"))


def tagset(tags: str) -> frozenset[str]:
    return frozenset(tags.split())


def _accent_strip_last(word: str) -> str:
    """Spanish plural of a word stressed on a final accented syllable loses the accent (limón -> limones)."""
    table = str.maketrans("áéíóú", "aeiou")
    head, last = word[:-2], word[-2:]
    return head + last.translate(table)


def en_noun(spec: str) -> dict[str, Any]:
    sg, _, pl = spec.partition("|")
    if not pl:
        if sg.endswith(("s", "x", "ch", "sh")):
            pl = sg + "es"
        elif sg.endswith("y") and sg[-2] not in "aeiou":
            pl = sg[:-1] + "ies"
        else:
            pl = sg + "s"
    return {"sg": sg, "pl": pl}


def de_noun(spec: str) -> dict[str, Any]:
    g, _, rest = spec.partition(":")
    sg, _, pl = rest.partition("|")
    return {"g": g, "sg": sg, "pl": pl or sg}


def fr_noun(spec: str) -> dict[str, Any]:
    """``"f:pomme"``; a leading ``*`` marks an aspirated h (no elision: *le hibou*)."""
    g, _, rest = spec.partition(":")
    sg, _, pl = rest.partition("|")
    aspirated = sg.startswith("*")
    sg = sg.lstrip("*")
    if not pl:
        pl = sg if sg.endswith(("s", "x", "z")) else sg + "s"
    return {"g": g, "sg": sg, "pl": pl, "asp": aspirated}


def es_noun(spec: str) -> dict[str, Any]:
    g, _, rest = spec.partition(":")
    sg, _, pl = rest.partition("|")
    if not pl:
        if sg[-1] in "aeiouáéó":
            pl = sg + "s"
        elif sg.endswith("z"):
            pl = sg[:-1] + "ces"
        elif len(sg) > 2 and sg[-2] in "áéíóú":
            pl = _accent_strip_last(sg) + "es"
        else:
            pl = sg + "es"
    return {"g": g, "sg": sg, "pl": pl}


def cjk_noun(spec: str) -> dict[str, Any]:
    """``"苹果|个"`` (noun and measure word) or ``"りんご|個"`` (noun and counter)."""
    n, _, mw = spec.partition("|")
    return {"": n, "mw": mw}


def noun(id_: str, tags: str, en: str, de: str, fr: str, es: str, zh: str, ja: str, key: str = "") -> Entry:
    forms = {"en": en_noun(en), "de": de_noun(de), "fr": fr_noun(fr), "es": es_noun(es),
             "zh": cjk_noun(zh), "ja": cjk_noun(ja)}
    return Entry(id_, "noun", tagset(tags), forms, key)


def phrase(id_: str, tags: str, key: str = "", **forms: Mapping[str, Any] | str) -> Entry:
    """A concept realised from literal per-language strings (which may contain ``{slot}`` references)."""
    norm = {lang: ({"": v} if isinstance(v, str) else dict(v)) for lang, v in forms.items()}
    missing = set(LANGS) - set(norm)
    if missing:
        raise ValueError(f"phrase {id_!r} lacks {sorted(missing)}")
    return Entry(id_, "phrase", tagset(tags), norm, key)
