"""Build a parallel multilingual corpus from the translated message catalogues a Debian system ships.

The GNU projects' gettext catalogues (``/usr/share/locale/<locale>/LC_MESSAGES/<domain>.mo``) hold every
user-visible message of a program in English (the msgid) and its human translation into dozens of languages
(the msgstr), under the program's free licence (bash, coreutils, tar: GPL-3.0-or-later; translations by the
Translation Project teams). The help texts of ``bash`` (``help cd``, ``help read``...), ``coreutils`` and ``tar``
(``ls --help``...) are written in full sentences, so each kept message is a natural paragraph that exists in
every chosen language: a parallel corpus, extracted here at run time from the installed packages (nothing is
downloaded and nothing of it is committed).

Kept: messages translated into *every* requested language whose English text has at least ``MIN_WORDS`` words and
no printf format, no option table (``--``) and no tab. Whitespace is collapsed to one line per message. Messages
are split into ``detect`` (for ``langneuron record``) and held-out ``eval`` (perplexity) by a hash of the English
text, the same split for every language.

    python benchmarks/real_model_corpus.py --out corpus/ --langs en,de,fr,es,it,pt,ru,pl,ja,zh,ko,vi
"""

from __future__ import annotations

import argparse
import gettext
import hashlib
import re
import sys
from pathlib import Path

LOCALE_DIR = Path("/usr/share/locale")
DOMAINS = ("bash", "coreutils", "tar")  # all three Essential Debian packages
MIN_WORDS = 6
EVAL_SHARE = 0.2
# our language code -> the locale folder holding its translation (en is the msgid itself)
LOCALES = {"de": "de", "fr": "fr", "es": "es", "it": "it", "pt": "pt", "ru": "ru", "uk": "uk", "pl": "pl",
           "nl": "nl", "sv": "sv", "cs": "cs", "tr": "tr", "ja": "ja", "zh": "zh_CN", "ko": "ko", "vi": "vi",
           "hu": "hu", "fi": "fi", "ro": "ro", "bg": "bg", "el": "el", "id": "id", "ca": "ca", "da": "da"}
_BAD = re.compile(r"%|--|\t|\\|\$")


def catalogue(domain: str, locale: str) -> dict[str, str]:
    """msgid -> msgstr of one installed ``.mo`` file (empty when the package ships no such translation)."""
    path = LOCALE_DIR / locale / "LC_MESSAGES" / f"{domain}.mo"
    if not path.is_file():
        return {}
    with path.open("rb") as fh:
        cat = gettext.GNUTranslations(fh)._catalog  # the parsed table; gettext has no public accessor
    return {k: v for k, v in cat.items() if isinstance(k, str) and k and isinstance(v, str) and v.strip()}


def one_line(text: str) -> str:
    return " ".join(text.split())


def keep(msgid: str) -> bool:
    return len(msgid.split()) >= MIN_WORDS and not _BAD.search(msgid)


def parallel_messages(langs: list[str]) -> list[dict[str, str]]:
    """Messages translated into every language of ``langs``: one ``{lang: text}`` per message, in msgid order."""
    rows: list[dict[str, str]] = []
    for domain in DOMAINS:
        cats = {lang: catalogue(domain, LOCALES[lang]) for lang in langs if lang != "en"}
        for msgid in sorted(next(iter(cats.values()), {}) if cats else {}):
            if not keep(msgid) or any(msgid not in c or c[msgid].strip() == msgid.strip() for c in cats.values()):
                continue
            row = {lang: one_line(c[msgid]) for lang, c in cats.items()}
            row["en"] = one_line(msgid)
            rows.append(row)
    return rows


def split_of(english: str) -> str:
    h = int(hashlib.sha256(english.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "eval" if h < EVAL_SHARE else "detect"


def build(out: Path, langs: list[str]) -> dict[str, int]:
    unknown = [lang for lang in langs if lang != "en" and lang not in LOCALES]
    if unknown:
        raise SystemExit(f"no catalogue locale known for {', '.join(unknown)}; choose from en, {', '.join(LOCALES)}")
    missing = [lang for lang in langs if lang != "en" and not any(
        (LOCALE_DIR / LOCALES[lang] / "LC_MESSAGES" / f"{d}.mo").is_file() for d in DOMAINS)]
    if missing:
        raise SystemExit(f"no bash/coreutils translation installed for {', '.join(missing)} under {LOCALE_DIR} "
                         "(a Docker image may strip /usr/share/locale: reinstall bash and coreutils without "
                         "dpkg path-exclude rules)")
    rows = parallel_messages(langs)
    counts: dict[str, int] = {}
    for split in ("detect", "eval"):
        chosen = [r for r in rows if split_of(r["en"]) == split]
        counts[split] = len(chosen)
        (out / split).mkdir(parents=True, exist_ok=True)
        for lang in langs:
            (out / split / f"{lang}.txt").write_text("".join(r[lang] + "\n" for r in chosen), encoding="utf-8")
    return counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="corpus folder; gets detect/<lang>.txt and eval/<lang>.txt")
    ap.add_argument("--langs", default="en,de,fr,es,it,pt,ru,pl,ja,zh,ko,vi")
    args = ap.parse_args(argv)
    langs = [x.strip() for x in args.langs.split(",") if x.strip()]
    counts = build(args.out, langs)
    print(f"wrote {args.out}: {len(langs)} languages, {counts['detect']} detect + {counts['eval']} eval parallel "
          f"messages per language", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
