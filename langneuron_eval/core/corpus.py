"""Corpus input for ``langneuron record``: where each language's text comes from, read lazily.

Accepted forms (``--corpus`` may be given several times):

* a folder holding ``<lang>.txt`` (one text per line) and/or ``<lang>.jsonl`` (one JSON object per line
  with a ``text`` field) files;
* ``lang=path`` pairs pointing at such files;
* ``lang=hf:DATASET[:CONFIG][@SPLIT][#COLUMN]`` for a Hugging Face dataset, streamed (needs a network or a
  filled cache; default split ``train``, column ``text``).

Texts are yielded one at a time so that memory does not grow with the corpus.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from langneuron_eval.errors import LangNeuronError
from langneuron_eval.fileio import sha256_file
from langneuron_eval.languages import LANG_CODE
from langneuron_eval.lid import detect

_HF = re.compile(r"^hf:(?P<ds>[^:@#]+)(:(?P<cfg>[^@#]+))?(@(?P<split>[^#]+))?(#(?P<col>.+))?$")


def check_lang(code: str) -> str:
    if not LANG_CODE.match(code):
        raise LangNeuronError(
            f"invalid language code {code!r}; use ISO 639 codes such as en, de, zh (optionally with a script/region suffix)")
    return code


@dataclass(frozen=True)
class CorpusSource:
    """One language's text source."""

    lang: str
    location: str  # file path or hf:... spec
    kind: str  # "txt" | "jsonl" | "hf"

    def texts(self) -> Iterator[str]:
        """Non-empty texts, stripped of the line break; JSONL lines need a string ``text`` field."""
        if self.kind == "hf":
            yield from self._hf_texts()
            return
        path = Path(self.location)
        try:
            with open(path, encoding="utf-8") as f:
                for lineno, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    if self.kind == "txt":
                        yield line.rstrip("\n")
                        continue
                    try:
                        obj = json.loads(line)
                        text = obj["text"]
                    except (json.JSONDecodeError, KeyError, TypeError):
                        raise LangNeuronError(f"{path}:{lineno}: expected a JSON object with a \"text\" field") from None
                    if not isinstance(text, str):
                        raise LangNeuronError(f"{path}:{lineno}: \"text\" must be a string")
                    if text.strip():
                        yield text
        except UnicodeDecodeError:
            raise LangNeuronError(f"corpus file {path} is not UTF-8 text") from None
        except OSError as e:
            raise LangNeuronError(f"cannot read corpus file {path}: {e.strerror or e}") from None

    def _hf_texts(self) -> Iterator[str]:
        m = _HF.match(self.location)
        assert m is not None
        try:
            import datasets

            ds = datasets.load_dataset(m["ds"], m["cfg"], split=m["split"] or "train", streaming=True)
        except Exception as e:  # hub/network failures come in many types
            first = (str(e).strip().splitlines() or [e.__class__.__name__])[0]
            raise LangNeuronError(f"cannot load dataset {self.location!r} for {self.lang}: {first}") from None
        col = m["col"] or "text"
        for row in ds:
            if col not in row:
                raise LangNeuronError(f"dataset {self.location!r} has no column {col!r} (columns: {', '.join(row)})")
            text = row[col]
            if isinstance(text, str) and text.strip():
                yield text

    def fingerprint(self) -> dict[str, str]:
        """What identifies this text, for provenance: the file's sha256 (and where it was) or the dataset spec.

        The absolute path lets a later step compare its evaluation text with this text line by line while
        the file is still there (:func:`check_overlap`); the sha256 says whether it is still the same text.
        """
        if self.kind == "hf":
            return {"source": self.location}
        return {"source": Path(self.location).name, "sha256": sha256_file(self.location),
                "path": str(Path(self.location).resolve())}


def _file_source(lang: str, path: Path) -> CorpusSource:
    if not path.exists():
        raise LangNeuronError(f"corpus file for {lang} not found: {path}")
    if path.is_dir():
        raise LangNeuronError(f"corpus path for {lang} is a directory, expected a .txt or .jsonl file: {path}")
    kind = "jsonl" if path.suffix == ".jsonl" else "txt"
    try:
        with open(path, encoding="utf-8") as f:
            has_text = any(line.strip() for line in f)
    except UnicodeDecodeError:
        raise LangNeuronError(f"corpus file {path} is not UTF-8 text") from None
    except OSError as e:
        raise LangNeuronError(f"cannot read corpus file {path}: {e.strerror or e}") from None
    if not has_text:
        raise LangNeuronError(f"corpus file for {lang} is empty: {path}")
    return CorpusSource(lang, str(path), kind)


def _scan_dir(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.suffix in (".txt", ".jsonl") and LANG_CODE.match(p.stem):
            if p.stem in found:
                raise LangNeuronError(f"{folder} has both {found[p.stem].name} and {p.name}; keep one per language")
            found[p.stem] = p
    return found


def resolve_corpus(specs: Sequence[str], langs: Sequence[str] | None = None) -> list[CorpusSource]:
    """Map ``--corpus`` arguments (and an optional ``--langs`` selection/order) to sources.

    Languages come out in the order of ``langs`` when given, else sorted by code, so the same
    arguments always give the same language order in the statistics file.
    """
    if not specs:
        raise LangNeuronError("no corpus given; pass --corpus DIR or --corpus lang=path")
    available: dict[str, str] = {}  # lang -> location
    for spec in specs:
        if "=" in spec and not Path(spec).exists():
            lang, loc = spec.split("=", 1)
            check_lang(lang)
            if lang in available:
                raise LangNeuronError(f"language {lang} is given twice in --corpus")
            available[lang] = loc
            continue
        folder = Path(spec)
        if not folder.exists():
            raise LangNeuronError(f"corpus not found: {spec} (expected a folder of <lang>.txt files or lang=path)")
        if folder.is_file():
            raise LangNeuronError(f"corpus {spec} is a single file; name its language as lang={spec}")
        found = _scan_dir(folder)
        if not found:
            raise LangNeuronError(f"corpus folder {folder} has no <lang>.txt or <lang>.jsonl files")
        for lang, path in found.items():
            available.setdefault(lang, str(path))
    order = list(langs) if langs else sorted(available)
    for lang in order:
        check_lang(lang)
    if len(set(order)) != len(order):
        raise LangNeuronError(f"duplicate language in --langs: {','.join(order)}")
    missing = [lang for lang in order if lang not in available]
    if missing:
        raise LangNeuronError(
            f"no corpus for language(s) {', '.join(missing)}; the corpus has {', '.join(sorted(available)) or 'none'}")
    sources = []
    for lang in order:
        loc = available[lang]
        if loc.startswith("hf:"):
            if not _HF.match(loc):
                raise LangNeuronError(f"malformed dataset spec {loc!r}; use hf:DATASET[:CONFIG][@SPLIT][#COLUMN]")
            sources.append(CorpusSource(lang, loc, "hf"))
        else:
            sources.append(_file_source(lang, Path(loc)))
    return sources


def split_specs(specs: str | Sequence[str]) -> list[str]:
    """A corpus spec as one string (comma-separated ``lang=path``s, or one folder) or a list -> a list of specs.

    This is the form lm-eval's ``--metadata '{"corpus": ...}'`` carries (one string); an existing path is
    never split, so a folder whose name holds a comma still works.
    """
    items = [specs] if isinstance(specs, str) else list(specs)
    out: list[str] = []
    for item in items:
        out.extend([item] if Path(item).exists() else [x.strip() for x in item.split(",") if x.strip()])
    return out


def _lines(location: str, kind: str, lang: str) -> set[str]:
    return {t.strip() for t in CorpusSource(lang, location, kind).texts()}


def _shared_lines(src: CorpusSource, recorded: dict[str, str]) -> int:
    """Lines of ``src`` also in the recorded file, if that file is still there and unchanged (else 0)."""
    path = recorded.get("path")
    if not path or not Path(path).is_file() or sha256_file(path) != recorded.get("sha256"):
        return 0
    kind = "jsonl" if Path(path).suffix == ".jsonl" else "txt"
    return len(_lines(src.location, src.kind, src.lang) & _lines(path, kind, src.lang))


def overlap_problems(eval_sources: Sequence[CorpusSource], recorded: dict[str, dict]) -> list[str]:
    """One line per evaluation source that shares text with the recorded (statistics) corpus.

    ``recorded`` is the ``corpus`` entry of a statistics file's metadata (language -> fingerprint). A source is
    flagged when it is the same file (equal sha256) or the same dataset spec as any recorded language's text, or
    when it shares lines with the recorded text of its own language (compared while that file is still readable
    and unchanged).
    """
    by_hash = {m["sha256"]: lang for lang, m in recorded.items() if m.get("sha256")}
    by_spec = {m["source"]: lang for lang, m in recorded.items() if not m.get("sha256") and m.get("source")}
    problems = []
    for src in eval_sources:
        if src.kind == "hf":
            if src.location in by_spec:
                problems.append(f"the evaluation text for {src.lang} ({src.location}) is the dataset the statistics "
                                f"were recorded on for {by_spec[src.location]}")
            continue
        digest = sha256_file(src.location)
        if digest in by_hash:
            problems.append(f"the evaluation text for {src.lang} ({src.location}) is the file the statistics were "
                            f"recorded on for {by_hash[digest]}")
            continue
        shared = _shared_lines(src, recorded.get(src.lang, {}))
        if shared:
            problems.append(f"{shared} lines of the evaluation text for {src.lang} ({src.location}) are also in the "
                            f"statistics' corpus ({recorded[src.lang]['path']})")
    return problems


def lid_mismatch(source: CorpusSource, sample: int = 200) -> tuple[float, str | None]:
    """Share of the first ``sample`` texts whose fastText LID label is not the declared language.

    Calibration corpora are often contaminated (RUCAIBox issue #19: English inside other languages'
    Wikipedia text), which silently dilutes every statistic. Returns the share and the most common
    wrong label (a code fastText's 176 labels lack is always "wrong": the check only warns).
    """
    import itertools
    from collections import Counter


    base = source.lang.split("_")[0].split("-")[0]
    labels = [detect(t) for t in itertools.islice(source.texts(), sample)]
    wrong = Counter(lab for lab in labels if lab != base)
    if not labels:
        return 0.0, None
    share = sum(wrong.values()) / len(labels)
    return share, (wrong.most_common(1)[0][0] if wrong else None)
