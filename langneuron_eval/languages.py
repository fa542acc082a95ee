"""The languages the product knows: every label of fastText ``lid.176``, and the codes users type for them.

Steering is scored by the language-identification model (:mod:`langneuron_eval.lid`), so the
languages we can evaluate are exactly the 176 labels it outputs (:data:`LID_LANGUAGES`). Those labels
are mostly ISO 639-1 codes, else ISO 639-3 or Wikipedia codes (``als`` is Alemannic, ``bh`` Bhojpuri,
``sh`` Serbo-Croatian). :func:`normalize` maps what users write -- ``zh-Hans``, ``zh_CN``, ``cmn``,
``jpn``, ``deu_Latn`` (FLORES), ``German`` -- to that label, and refuses, in one line, a code that
lid.176 cannot identify.

Everything comes from ``data/languages.tsv`` (code, English name, likely script, whether lid.176 has
it, aliases), rebuilt by ``data/build_languages.py`` from the model file, ISO 639-3 (pycountry) and
CLDR's macrolanguage aliases (langcodes). Rules worth knowing:

* Macrolanguages map to their dominant language only where CLDR says so (``cmn``/``zho`` -> ``zh``,
  ``arb`` -> ``ar``, ``swh`` -> ``sw``); other varieties (``ary`` Moroccan Arabic) are refused, because
  lid.176 would score them as the macrolanguage without telling them apart.
* lid.176 has no script distinctions of its own (one ``zh`` for simplified and traditional, one ``sr``
  for Cyrillic and Latin), so a script subtag is dropped -- except where the script picks another
  label: ``pa_Arab`` -> ``pnb``, ``az_Arab`` -> ``azb``, ``ku_Arab`` -> ``ckb``, and FLORES'
  ``als_Latn`` (Tosk Albanian) -> ``sq`` while a bare ``als`` stays lid.176's Alemannic.
* Region subtags are dropped (``pt-BR`` -> ``pt``).
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from langneuron_eval.errors import LangNeuronError

LANG_CODE = re.compile(r"^[a-z]{2,3}(?:[-_][A-Za-z0-9]+)*$")  # the shape of a language code, known or not
DATA_FILE = Path(__file__).resolve().parent / "data" / "languages.tsv"

# The six languages of the shipped demo corpus and demo model (the only copy of this tuple).
DEMO_LANGUAGES: tuple[str, ...] = ("en", "de", "fr", "es", "zh", "ja")


@dataclass(frozen=True)
class Language:
    """One row of ``languages.tsv``."""

    code: str  # the lid.176 label (or ISO 639-1 code of a language lid.176 cannot identify)
    name: str  # English name
    script: str  # ISO 15924 script it is most likely written in (CLDR)
    lid176: bool  # whether fastText lid.176 outputs this label
    aliases: tuple[str, ...]  # lower-case codes that mean this language


@functools.lru_cache(maxsize=1)
def table() -> dict[str, Language]:
    """Code -> :class:`Language`, every row of the data file (lid.176 labels first)."""
    rows: dict[str, Language] = {}
    lines = DATA_FILE.read_text(encoding="utf-8").splitlines()
    for line in lines[1:]:
        if not line.strip():
            continue
        code, name, script, lid176, aliases = line.split("\t")
        rows[code] = Language(code, name, script, lid176 == "1", tuple(a for a in aliases.split(",") if a))
    return rows


@functools.lru_cache(maxsize=1)
def _lookup() -> dict[str, str]:
    """Every accepted spelling (lower-case code, alias or English name) -> code."""
    out: dict[str, str] = {}
    for lang in table().values():
        for key in (*lang.aliases, lang.name.lower(), re.sub(r"\s*\(.*\)$", "", lang.name.lower())):
            out.setdefault(key, lang.code)
    for lang in table().values():  # a code always means itself, whatever another row's alias says
        out[lang.code] = lang.code
    return out


LID_LANGUAGES: tuple[str, ...] = tuple(sorted(c for c, lang in table().items() if lang.lid176))


def name(code: str) -> str:
    """English name of a canonical code (``"vi"`` -> ``"Vietnamese"``)."""
    return table()[code].name


def _candidates(code: str) -> list[str]:
    """Keys to try, most specific first: ``deu_Latn`` -> ``deu_latn``, ``deu``; names as typed."""
    text = code.strip()
    parts = [p for p in re.split(r"[-_]", text) if p]
    keys = [text.lower()]
    if len(parts) >= 2:
        keys.append(f"{parts[0]}_{parts[1]}".lower())
    if parts:
        keys.append(parts[0].lower())
    return keys


def _resolve(code: str) -> str | None:
    """The table code ``code`` means (lid.176 or not), or None."""
    lookup = _lookup()
    for key in _candidates(code):
        if key in lookup:
            return lookup[key]
    return None


def _suggest(code: str) -> str:
    """A "did you mean" tail for an unknown code: close codes, aliases and names that lid.176 has."""
    scored = {k: v for k, v in _lookup().items() if table()[v].lid176}
    keys = _candidates(code)
    close = difflib.get_close_matches(keys[-1] if keys else code.lower(), list(scored), n=6, cutoff=0.6)
    labels = list(dict.fromkeys(scored[k] for k in close))[:4]
    if not labels:
        return ""
    return "; did you mean " + ", ".join(f"{lab} ({name(lab)})" for lab in labels) + "?"


def normalize(code: str, *, lid_only: bool = True) -> str:
    """The canonical lid.176 label for ``code``; raises LangNeuronError (one line) if it has none.

    With ``lid_only=False`` a language that lid.176 cannot identify but the table knows (e.g.
    ``hau`` -> ``ha``, Hausa) is accepted too: perplexity needs no language identification.
    """
    if not isinstance(code, str) or not code.strip():
        raise LangNeuronError(f"empty language code {code!r}")
    found = _resolve(code)
    if found is not None and (table()[found].lid176 or not lid_only):
        return found
    if found is not None:
        raise LangNeuronError(
            f"language {code!r} ({name(found)}) cannot be scored: fastText lid.176 does not identify it "
            f"(see langneuron_eval/data/languages.tsv for the {len(LID_LANGUAGES)} it does){_suggest(code)}")
    raise LangNeuronError(
        f"unknown language code {code!r}: use a fastText lid.176 label, ISO 639-1/639-3 or FLORES code "
        f"(e.g. vi, vie, vie_Latn){_suggest(code)}")


def normalize_many(codes: str | Iterable[str], *, lid_only: bool = True) -> list[str]:
    """:func:`normalize` each code (a comma- or '+'-separated string or an iterable), keeping order, without duplicates."""
    items = re.split(r"[,+]", codes) if isinstance(codes, str) else list(codes)
    out = [normalize(c, lid_only=lid_only) for c in items if str(c).strip()]
    return list(dict.fromkeys(out))


# Scripts that do not separate words by spaces: a whitespace "word" there is a whole line, so word
# perplexity is not a meaningful figure (byte perplexity is).
UNSPACED_SCRIPTS = frozenset({"Hans", "Hant", "Hani", "Jpan", "Hira", "Kana", "Thai", "Laoo", "Khmr", "Mymr", "Tibt",
                              "Yiii"})


def written_with_spaces(lang: str) -> bool:
    """Whether ``lang`` (a code of the language table, or with a script subtag) separates words by spaces.

    By script: the table's likely script, or the script subtag of a code such as ``zh-Hant``/``cmn_Hans``.
    A language the table does not know counts as spaced (word perplexity is then reported, as before).
    """
    subtag = re.search(r"[-_]([A-Z][a-z]{3})$", lang)
    if subtag:
        return subtag.group(1) not in UNSPACED_SCRIPTS
    row = table().get(lang)
    return row is None or row.script not in UNSPACED_SCRIPTS
