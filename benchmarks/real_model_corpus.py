"""Build a multilingual corpus from the free text a Debian system ships: translated messages and manual pages.

Two sources, both under free licences and both installed from Debian packages (nothing comes from a data hub,
nothing of it is committed):

* **gettext catalogues** of bash, coreutils and tar (``/usr/share/locale/<locale>/LC_MESSAGES/<domain>.mo``,
  GPL-3.0-or-later, translated by the Translation Project teams): each kept message is a help text in full
  sentences, the same message in every language (parallel);
* **translated manual pages** (``manpages-de``, ``manpages-fr``, ... from the manpages-l10n project, GPL-3.0-or-later
  translations of the man-pages project, coreutils and other free programs; ``manpages-ja``, ``manpages-zh``;
  and the pages other installed packages ship under ``/usr/share/man/<locale>``): prose of another register
  (descriptions, explanations, notes) than the help messages. English uses the original pages of the same names.

The man page sources are groff; :func:`man_paragraphs` strips the macros and escapes and cuts the text into
paragraphs (a paragraph ends at ``.PP``, ``.TP``, ``.SH``... or a blank line); the NAME and SYNOPSIS sections,
option tags, no-fill blocks (examples, tables) and mdoc pages are left out. **A document is one paragraph (or one
message), written as one line.** A paragraph is kept when it looks like prose (at least ``MIN_WORDS`` words in a
language written with spaces, at least ``MIN_BYTES`` and at most ``MAX_BYTES`` UTF-8 bytes, at least ``MIN_LETTERS``
of its visible characters letters) and when fastText's ``lid.176`` labels it with the page's language (translated
pages keep untranslated English paragraphs). A paragraph found in two or more pages of a language (licence
boilerplate, translator credits) is dropped.

**The split is by document source, never by line:** a whole man page goes to ``detect`` (for ``langneuron
record``) or to held-out ``eval`` (perplexity) by a hash of its name (``man1/ls.1``), the same side in every
language; a message goes by a hash of its English text. Held-out documents whose normalised text (case and
non-letters ignored) also occurs in the detection split of the same language are dropped (help2man pages repeat
the help messages). Within each split documents are ordered round-robin over their sources (the first paragraph
of every page and every message, then every second paragraph, ...), so that the first N lines, which is what
``--max-sentences`` and ``--limit`` take, spread over many pages.

    python benchmarks/real_model_corpus.py --out corpus/ --langs en,de,fr,es,ru,pl,ja,zh,ko,vi
"""

from __future__ import annotations

import argparse
import gettext
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

LOCALE_DIR = Path("/usr/share/locale")
MAN_DIR = Path("/usr/share/man")
DOMAINS = ("bash", "coreutils", "tar")  # all three Essential Debian packages
MAN_SECTIONS = ("1", "5", "7", "8")  # commands, file formats, overviews, administration: prose, not C APIs
MIN_WORDS = 6
MIN_BYTES = 40
MAX_BYTES = 480  # longer paragraphs are left out: they cost the most forward passes per document
MIN_LETTERS = 0.75
EVAL_SHARE = 0.2
NO_SPACES = ("ja", "zh", "th")  # languages whose words are not separated by spaces: no word count
# our language code -> the locale folder holding its gettext translation (en is the msgid itself)
LOCALES = {"de": "de", "fr": "fr", "es": "es", "it": "it", "pt": "pt", "ru": "ru", "uk": "uk", "pl": "pl",
           "nl": "nl", "sv": "sv", "cs": "cs", "tr": "tr", "ja": "ja", "zh": "zh_CN", "ko": "ko", "vi": "vi",
           "hu": "hu", "fi": "fi", "ro": "ro", "bg": "bg", "el": "el", "id": "id", "ca": "ca", "da": "da"}
# our language code -> (Debian package of translated manual pages or None, folders under /usr/share/man)
MAN_PAGES = {"en": ("manpages", ()), "de": ("manpages-de", ("de",)), "fr": ("manpages-fr", ("fr",)),
             "es": ("manpages-es", ("es",)), "it": ("manpages-it", ("it",)), "pt": ("manpages-pt-br", ("pt_BR", "pt")),
             "ru": ("manpages-ru", ("ru",)), "uk": ("manpages-uk", ("uk",)), "pl": ("manpages-pl", ("pl",)),
             "nl": ("manpages-nl", ("nl",)), "ja": ("manpages-ja", ("ja",)), "zh": ("manpages-zh", ("zh_CN",)),
             "vi": ("manpages-vi", ("vi",)), "el": ("manpages-el", ("el",)), "cs": ("manpages-cs", ("cs",)),
             "da": ("manpages-da", ("da",)), "sv": ("manpages-sv", ("sv",)), "ro": ("manpages-ro", ("ro",)),
             "fi": ("manpages-fi", ("fi",)), "hu": ("manpages-hu", ("hu",)), "tr": ("manpages-tr", ("tr",)),
             "id": ("manpages-id", ("id",)),
             "ko": (None, ("ko",))}  # Debian 12 has no manpages-ko: the pages of man-db, xz-utils, passwd...
_BAD = re.compile(r"%|--|\t|\\|\$")


def log(msg: str) -> None:
    print(f"[corpus] {msg}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Document:
    """One document of the corpus: a paragraph of a man page or one help message, on one line."""

    text: str
    source: str  # "man:man1/ls.1" or "gettext:bash:<sha of the English text>"
    index: int  # position of the paragraph in its source (0 for a message)


@dataclass
class SplitSize:
    """What one language's split holds: the per-language sizes the corpus reports."""

    documents: int = 0
    man_pages: int = 0
    man_paragraphs: int = 0
    messages: int = 0
    bytes: int = 0


@dataclass
class CorpusReport:
    """Per language and split sizes, the packages installed for the build, and the rules used."""

    langs: list[str]
    installed: list[str] = field(default_factory=list)
    sizes: dict[str, dict[str, SplitSize]] = field(default_factory=dict)  # lang -> split -> size
    rules: dict[str, object] = field(default_factory=lambda: {
        "document": "one man-page paragraph or one gettext message", "split": "by man page / message (hash)",
        "eval_share": EVAL_SHARE, "min_words": MIN_WORDS, "min_bytes": MIN_BYTES, "max_bytes": MAX_BYTES,
        "min_letter_share": MIN_LETTERS, "man_sections": list(MAN_SECTIONS), "lid": "fastText lid.176 == language"})

    def table(self) -> str:
        """Markdown table of the sizes (documents, man pages, messages, bytes per split)."""
        lines = ["| language | detect docs | detect pages | detect msgs | detect bytes | eval docs | eval pages "
                 "| eval msgs | eval bytes |", "| --- " * 9 + "|"]
        for lang in self.langs:
            d, e = self.sizes[lang]["detect"], self.sizes[lang]["eval"]
            lines.append(f"| {lang} | {d.documents} | {d.man_pages} | {d.messages} | {d.bytes:,} | {e.documents} "
                         f"| {e.man_pages} | {e.messages} | {e.bytes:,} |")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        return {"langs": self.langs, "installed": self.installed, "rules": self.rules,
                "sizes": {lang: {s: asdict(v) for s, v in per.items()} for lang, per in self.sizes.items()}}


# ------------------------------------------------------------------------------------------ packages
def missing_packages(packages: Iterable[str]) -> list[str]:
    """Debian packages of ``packages`` that ``dpkg-query`` does not report as installed."""
    missing = []
    for pkg in packages:
        res = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True)
        if res.returncode != 0 or "install ok installed" not in res.stdout:
            missing.append(pkg)
    return missing


def install_packages(packages: list[str]) -> list[str]:
    """Install the missing packages with apt-get (root only); returns what was installed, says it on stderr.

    Man-db's index update is switched off first (it would re-index every page on the system for minutes; nothing
    here needs the index). One ``apt-get update`` is tried when the first install fails (stale package lists).
    """
    missing = missing_packages(packages)
    if not missing:
        return []
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise SystemExit(f"the corpus needs the Debian packages {' '.join(missing)}: run as root "
                         f"`apt-get install --no-install-recommends {' '.join(missing)}` or pass --no-install")
    log(f"installing {' '.join(missing)} (apt-get install --no-install-recommends)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["debconf-set-selections"], input="man-db man-db/auto-update boolean false\n", text=True,
                   check=False, env=env)
    Path("/var/lib/man-db/auto-update").unlink(missing_ok=True)
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
    if subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL).returncode != 0:
        log("apt-get install failed; running apt-get update once and retrying")
        subprocess.run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL, check=True)
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=True)
    return missing


# ------------------------------------------------------------------------------------ gettext messages
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
            row["_domain"] = domain
            rows.append(row)
    return rows


def unit_hash(key: str) -> float:
    """A number in [0, 1] from ``key``: which side of the split, and the order within a split."""
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF


def split_of(key: str) -> str:
    return "eval" if unit_hash(key) < EVAL_SHARE else "detect"


# ---------------------------------------------------------------------------------------- groff -> text
_GLYPHS = {"em": "—", "en": "–", "hy": "-", "aq": "'", "dq": '"', "lq": "“", "rq": "”", "oq": "‘", "cq": "’",
           "bu": "•", "co": "©", "rg": "®", "tm": "™", "mi": "-", "pl": "+", "mu": "×", "de": "°", ">=": "≥",
           "<=": "≤", "!=": "≠", "->": "→", "<-": "←", "Fo": "«", "Fc": "»", "fo": "‹", "fc": "›", "ga": "`",
           "ha": "^", "ti": "~", "rs": "\\", "sl": "/", "ul": "_", "aa": "´", "at": "@", "sh": "#", "Do": "$",
           "ss": "ß", "Aq": "'", "Eu": "€", "eu": "€", "R": "®", "Tm": "™", "ba": "|", "br": "|", "dg": "†", "sc": "§"}
_ESCAPE = re.compile(
    r"""\\(?:
      "(?P<comment>.*)$                    # comment to the end of the line
    | f(?:\[[^\]]*\]|\(..|.)                # font change
    | s(?:[+-]?\d|\[[^\]]*\]|\(..|'[^']*')\d?  # size change
    | \*(?:\[(?P<sname>[^\]]*)\]|\((?P<sname2>..)|(?P<sname3>.))  # predefined string
    | \((?P<glyph2>..)                      # special character, two letters
    | \[(?P<glyph>[^\]]*)\]                 # special character, any name
    | [hvwoLlXbxDNRSZ]'[^']*'                # motions, widths, drawing: no text
    | [kz].                                 # marks, zero-width character
    | [nmgMY](?:\[[^\]]*\]|\(..|.)           # registers, colours
    | \$\d                                  # macro arguments
    | (?P<char>.)                            # one-character escapes
    )""", re.VERBOSE)
_ONE_CHAR = {"-": "-", "e": "\\", "\\": "\\", ".": ".", " ": " ", "~": " ", "0": " ", "t": " ", "'": "´", "`": "`"}


# groff's composite glyphs: \('e = e with acute, \(,c = c with cedilla, ... (accent + letter -> NFC)
_ACCENTS = {"'": "\u0301", "`": "\u0300", "^": "\u0302", ":": "\u0308", "~": "\u0303", ",": "\u0327",
            "o": "\u030a", "v": "\u030c", '"': "\u030b", "-": "\u0304", "u": "\u0306", ".": "\u0307"}
_SYNOPSIS = {"SYNOPSIS", "ÜBERSICHT", "SYNTAX", "SYNOPSE", "SINOPSIS", "SINOSSI", "SINOPSE", "SKŁADNIA", "OVERZICHT",
             "ОБЗОР", "СИНТАКСИС", "КОРОТКИЙ ОПИС", "ОГЛЯД", "ΣΥΝΟΨΗ", "書式", "概要", "总览", "概述", "大纲", "摘要",
             "사용법", "개요", "요약", "TÓM TẮT", "CÚ PHÁP"}


def glyph(name: str) -> str:
    """Unicode text of a groff special character name (``em``, ``'e``, ``u00E9``); '' when unknown."""
    if re.fullmatch(r"u[0-9A-Fa-f]{4,6}", name):
        return chr(int(name[1:], 16))
    if len(name) == 2 and name[0] in _ACCENTS and name[1].isalpha():
        return unicodedata.normalize("NFC", name[1] + _ACCENTS[name[0]])
    return _GLYPHS.get(name, "")


def _escape(m: re.Match[str]) -> str:
    if m.group("comment") is not None:
        return ""
    name = m.group("sname") or m.group("sname2") or m.group("sname3")
    if name is not None:
        return _GLYPHS.get(name, "")
    special = m.group("glyph2") or m.group("glyph")
    if special is not None:
        return glyph(special)
    char = m.group("char")
    return _ONE_CHAR.get(char, "") if char is not None else ""


def strip_escapes(line: str) -> str:
    """Text of one groff line: fonts, sizes, strings and motions removed, special characters as Unicode."""
    return _ESCAPE.sub(_escape, line)


def _macro_args(rest: str) -> list[str]:
    """Arguments of a macro line: blank-separated, ``"..."`` quoting (``""`` inside quotes is one quote)."""
    return [a.replace('""', '"') if a.startswith('"') else a
            for a in (m.group(1) if m.group(1) is not None else m.group(2)
                      for m in re.finditer(r'"((?:[^"]|"")*)"?|(\S+)', rest))]


_BREAKS = {"PP", "LP", "P", "SH", "SS", "RS", "RE", "sp", "br", "in", "ti", "bp", "ne", "IP", "TP", "TQ", "HP",
           "YS", "PD"}
_NOFILL_START = {"nf": "fi", "EX": "EE", "TS": "TE", "EQ": "EN", "SY": "YS", "ig": "..", "de": "..", "am": ".."}
_JOIN_ALTERNATE = {"BR", "RB", "IR", "RI", "BI", "IB"}
_JOIN_SPACE = {"B", "I", "SM", "SB"}
_MDOC = {"Dd", "Dt", "Sh", "Nm"}
_CJK = re.compile(r"[\u3000-\u30ff\u3400-\u9fff\uf900-\ufaff\uff00-\uffef]")


def _join(lines: list[str]) -> str:
    """Lines of one paragraph as one line; no space between two CJK characters (no spaces in the script)."""
    out = ""
    for line in (ln.strip() for ln in lines):
        if not line:
            continue
        glue = "" if not out or (_CJK.match(out[-1]) and _CJK.match(line[0])) else " "
        out += glue + line
    return one_line(out)


class _Groff:
    """Line-by-line state of :func:`man_paragraphs` (section, no-fill block, pending tag, paragraph lines)."""

    def __init__(self) -> None:
        self.paragraphs: list[str] = []
        self.lines: list[str] = []
        self.section = 0
        self.skip_section = True  # before the first .SH, in NAME and in SYNOPSIS
        self.end_of_block: str | None = None
        self.skip_tag = False

    def flush(self) -> None:
        if self.lines and not self.skip_section:
            self.paragraphs.append(_join(self.lines))
        self.lines = []

    def text(self, line: str) -> None:
        if self.end_of_block is not None:
            return
        if self.skip_tag:  # the tag line of .TP / .TQ (an option, a file name)
            self.skip_tag = False
            return
        if not line.strip():
            self.flush()
            return
        self.lines.append(strip_escapes(line))

    def macro(self, name: str, rest: str) -> bool:
        """Handle one request or macro; ``False`` when the page is mdoc (not handled)."""
        if self.end_of_block is not None:
            if name == self.end_of_block or (self.end_of_block == ".." and name == "."):
                self.end_of_block = None
            return True
        if name in _MDOC:
            return False
        if name in _NOFILL_START:
            self.flush()
            self.end_of_block = _NOFILL_START[name]
        elif name in _BREAKS:
            self.flush()
            if name == "SH":
                self.section += 1
                heading = " ".join(strip_escapes(a) for a in _macro_args(rest)).strip().upper()
                self.skip_section = self.section == 1 or heading in _SYNOPSIS
            self.skip_tag = name in ("TP", "TQ")
        elif name in _JOIN_ALTERNATE or name in _JOIN_SPACE:
            glue = "" if name in _JOIN_ALTERNATE else " "
            self.text(glue.join(strip_escapes(a) for a in _macro_args(rest)))
        elif name in ("UE", "ME") and rest.strip():
            self.lines.append(strip_escapes(rest.strip()))
        return True  # any other request (.TH, .if, .ds, .UR, ...) carries no prose


def man_paragraphs(source: str) -> list[str]:
    """Prose paragraphs of one man page's groff source, each on one line (``[]`` for mdoc and ``.so`` pages)."""
    state = _Groff()
    lines = re.sub(r"\\\n", "", source).split("\n")  # a trailing backslash continues the line
    if lines and lines[0].startswith(".so "):
        return []
    for line in lines:
        if line.startswith((".\\\"", "'\\\"", '.\\"')) or line.startswith(".\\}"):
            continue
        if line[:1] in (".", "'"):
            m = re.match(r"[.'][ \t]*(\S*)[ \t]*(.*)", line)
            assert m is not None
            if not state.macro(m.group(1), m.group(2)):
                return []
        else:
            state.text(line)
    state.flush()
    return state.paragraphs


def letter_share(text: str) -> float:
    visible = [c for c in text if not c.isspace()]
    return sum(unicodedata.category(c).startswith("L") for c in visible) / max(1, len(visible))


def is_prose(text: str, lang: str) -> bool:
    """Length, word count and letter-share rules of the module docstring (the LID check is separate)."""
    size = len(text.encode("utf-8"))
    if not MIN_BYTES <= size <= MAX_BYTES or "\\" in text:
        return False
    if lang not in NO_SPACES and len(text.split()) < MIN_WORDS:
        return False
    return letter_share(text) >= MIN_LETTERS


# ------------------------------------------------------------------------------------------- man pages
def page_files(lang: str, names: set[str] | None = None) -> dict[str, Path]:
    """``{"man1/ls.1": path}`` of one language's pages in ``MAN_SECTIONS`` (English: only ``names``)."""
    folders = [MAN_DIR] if lang == "en" else [MAN_DIR / f for f in MAN_PAGES[lang][1]]
    found: dict[str, Path] = {}
    for folder in folders:
        for section in MAN_SECTIONS:
            for path in sorted((folder / f"man{section}").glob("*.gz")):
                page = f"man{section}/{path.name.removesuffix('.gz')}"
                if (names is None or page in names) and page not in found:
                    found[page] = path
    return found


def read_page(path: Path) -> str | None:
    try:
        return gzip.decompress(path.read_bytes()).decode("utf-8")
    except (OSError, UnicodeDecodeError, EOFError):
        return None  # a legacy encoding or a broken file: left out


def man_documents(lang: str, pages: dict[str, Path]) -> list[Document]:
    """Prose paragraphs of ``pages`` labelled ``lang`` by lid.176; paragraphs found in 2+ pages are dropped."""
    from langneuron_eval.lid import detect_many

    candidates: list[Document] = []
    for page, path in pages.items():
        text = read_page(path)
        for i, para in enumerate(man_paragraphs(text) if text else []):
            if is_prose(para, lang):
                candidates.append(Document(para, f"man:{page}", i))
    pages_of = Counter(text for text, _source in {(d.text, d.source) for d in candidates})
    candidates = [d for d in candidates if pages_of[d.text] == 1]
    labels = detect_many(d.text for d in candidates)
    return [d for d, label in zip(candidates, labels) if label == lang]


# ------------------------------------------------------------------------------------------------ build
def _normal(text: str) -> str:
    return "".join(c for c in text.casefold() if c.isalnum())


def round_robin(docs: list[Document]) -> list[Document]:
    """Documents ordered by their index in their source, then by a hash of the source (see module doc)."""
    return sorted(docs, key=lambda d: (d.index, unit_hash(d.source), d.text))


def split_documents(docs: list[Document], key_of: dict[str, str]) -> dict[str, list[Document]]:
    """``detect``/``eval`` by source; held-out documents repeating a detection document are dropped."""
    sides: dict[str, list[Document]] = defaultdict(list)
    for d in docs:
        sides[split_of(key_of.get(d.source, d.source))].append(d)
    seen = {_normal(d.text) for d in sides["detect"]}
    sides["eval"] = [d for d in sides["eval"] if _normal(d.text) not in seen]
    return {s: round_robin(sides[s]) for s in ("detect", "eval")}


def size_of(docs: list[Document]) -> SplitSize:
    man = [d for d in docs if d.source.startswith("man:")]
    return SplitSize(len(docs), len({d.source for d in man}), len(man), len(docs) - len(man),
                     sum(len(d.text.encode("utf-8")) + 1 for d in docs))


def language_documents(langs: list[str], use_man: bool) -> tuple[dict[str, list[Document]], dict[str, str]]:
    """Every language's documents, and the split key of each message (its English text)."""
    docs: dict[str, list[Document]] = {lang: [] for lang in langs}
    key_of: dict[str, str] = {}
    for row in parallel_messages(langs):
        source = f"gettext:{row['_domain']}:{hashlib.sha256(row['en'].encode()).hexdigest()[:12]}"
        key_of[source] = row["en"]
        for lang in langs:
            docs[lang].append(Document(row[lang], source, 0))
    if use_man:
        translated = {lang: page_files(lang) for lang in langs if lang != "en"}
        for lang, pages in translated.items():
            docs[lang] += man_documents(lang, pages)
            log(f"{lang}: {len(pages)} man pages read")
        if "en" in langs:
            names = set().union(*translated.values()) if translated else set()
            docs["en"] += man_documents("en", page_files("en", names))
    return docs, key_of


def check_languages(langs: list[str]) -> None:
    unknown = [lang for lang in langs if lang != "en" and lang not in LOCALES]
    if unknown:
        raise SystemExit(f"no catalogue locale known for {', '.join(unknown)}; choose from en, {', '.join(LOCALES)}")
    missing = [lang for lang in langs if lang != "en" and not any(
        (LOCALE_DIR / LOCALES[lang] / "LC_MESSAGES" / f"{d}.mo").is_file() for d in DOMAINS)]
    if missing:
        raise SystemExit(f"no bash/coreutils translation installed for {', '.join(missing)} under {LOCALE_DIR} "
                         "(a Docker image may strip /usr/share/locale: reinstall bash and coreutils without "
                         "dpkg path-exclude rules)")


def build(out: Path, langs: list[str], use_man: bool = True, install: bool = True) -> CorpusReport:
    """Write ``out/{detect,eval}/<lang>.txt`` (one document per line) and ``out/corpus.json``; return the sizes."""
    check_languages(langs)
    report = CorpusReport(list(langs))
    if use_man and install:
        packages = [MAN_PAGES[lang][0] for lang in langs if lang in MAN_PAGES and MAN_PAGES[lang][0]]
        report.installed = install_packages(packages)
    docs, key_of = language_documents(langs, use_man)
    for lang in langs:
        sides = split_documents(docs[lang], key_of)
        report.sizes[lang] = {}
        for split, chosen in sides.items():
            (out / split).mkdir(parents=True, exist_ok=True)
            (out / split / f"{lang}.txt").write_text("".join(d.text + "\n" for d in chosen), encoding="utf-8")
            report.sizes[lang][split] = size_of(chosen)
    (out / "corpus.json").write_text(json.dumps(report.to_dict(), indent=1), encoding="utf-8")
    return report


def lines_of(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8") as fh:
        yield from (line.rstrip("\n") for line in fh if line.strip())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="corpus folder; gets detect/<lang>.txt and eval/<lang>.txt")
    ap.add_argument("--langs", default="en,de,fr,es,ru,pl,ja,zh,ko,vi")
    ap.add_argument("--no-man", action="store_true", help="gettext messages only (the earlier corpus)")
    ap.add_argument("--no-install", action="store_true", help="use the man pages installed, install nothing")
    args = ap.parse_args(argv)
    langs = [x.strip() for x in args.langs.split(",") if x.strip()]
    report = build(args.out, langs, use_man=not args.no_man, install=not args.no_install)
    print(report.table())
    log(f"wrote {args.out}: {len(langs)} languages; installed: {', '.join(report.installed) or 'nothing'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
