"""Public benchmarks from the Hub or from a local copy in the benchmark's own (upstream) format.

The ``*_hub_*`` task families (``tasks/utils.py``) call one function per benchmark here. Without a
local copy they read the Hub with ``datasets``; with lm-eval's ``--metadata '{"data_dir": PATH}'``
they read the files the benchmark's authors distribute, so an offline cluster or a user with a
download can run them. Each reader returns rows shaped like the Hub's (same columns, same order), and
the Hub rows and the local rows go through the *same* function to become task documents, so the two
routes give the same documents; ``tests/test_upstream.py`` checks this on fixtures written in each
upstream format.

``data_dir`` may be the file itself or any folder that holds it, directly or up to three levels down
(an unpacked release, a clone of the benchmark's repository, or one folder for every benchmark). The
languages, Hub names and formats live in ``data/benchmarks.json``.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from langneuron_eval.errors import LangNeuronError
from langneuron_eval.languages import normalize, table

DATA_FILE = Path(__file__).resolve().parents[1] / "data" / "benchmarks.json"
SEARCH_DEPTH = 3  # folder levels below data_dir searched for a benchmark file


@functools.lru_cache(maxsize=1)
def benchmarks() -> dict[str, dict[str, Any]]:
    """The contents of ``data/benchmarks.json``: per benchmark its Hub name, split, codes and format."""
    return {k: v for k, v in json.loads(DATA_FILE.read_text(encoding="utf-8")).items() if not k.startswith("_")}


def task_languages(benchmark: str) -> dict[str, str]:
    """Canonical language code -> the benchmark's own code, one per language.

    Codes the language table cannot name are left out; where two codes name one language (Belebele's
    ``hin_Deva`` and romanised ``hin_Latn``) the one in the language's usual script is kept.
    """
    out: dict[str, str] = {}
    for code in benchmarks()[benchmark]["codes"]:
        try:
            lang = normalize(code, lid_only=False)
        except LangNeuronError:
            continue
        script = code.partition("_")[2]
        if lang not in out or (script and script == table()[lang].script):
            out[lang] = code
    return dict(sorted(out.items()))


# ------------------------------------------------------------------------------ finding files

def _walk(root: Path, names: set[str], depth: int) -> Path | None:
    """The first file named one of ``names`` under ``root`` (breadth-first, sorted, ``depth`` levels)."""
    level = [root]
    for _ in range(depth + 1):
        nxt = []
        for folder in level:
            try:
                entries = sorted(folder.iterdir())
            except OSError:
                continue
            for entry in entries:
                if entry.name in names and entry.is_file():
                    return entry
            nxt.extend(e for e in entries if e.is_dir() and not e.name.startswith("."))
        level = nxt
    return None


def find_file(data_dir: str | os.PathLike, relpaths: Iterable[str], task: str) -> Path:
    """Locate a benchmark file: ``data_dir`` itself, ``data_dir/<relpath>``, or its name further down.

    ``relpaths`` are the layouts the benchmark ships in, most usual first (``mgsm/mgsm_de.tsv``).
    """
    relpaths = list(relpaths)
    root = Path(data_dir).expanduser()
    names = {Path(r).name for r in relpaths}
    if root.is_file():
        if root.name in names:
            return root
        raise LangNeuronError(f"{task}: data_dir {root} is a file, but this task reads {' or '.join(sorted(names))}")
    if not root.is_dir():
        raise LangNeuronError(f"{task}: data_dir {root} does not exist")
    for rel in relpaths:
        if (root / rel).is_file():
            return root / rel
    found = _walk(root, names, SEARCH_DEPTH)
    if found is None:
        raise LangNeuronError(f"{task}: no {' or '.join(relpaths)} under data_dir {root} "
                              f"(searched {SEARCH_DEPTH} folder levels)")
    return found


def _jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise LangNeuronError(f"{path}: line {i} is not JSON ({e.msg})") from None
    return rows


def _need(row: dict[str, Any], keys: Iterable[str], path: Path, where: str) -> None:
    missing = [k for k in keys if k not in row]
    if missing:
        raise LangNeuronError(f"{path}: {where} lacks {', '.join(missing)}; is this the benchmark's upstream format?")


def _hub(path: str, name: str, split: str) -> Any:
    import datasets

    try:
        return datasets.load_dataset(path, name, split=split)
    except (ConnectionError, OSError, ValueError) as e:  # offline, gated, or no such config
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise LangNeuronError(f"cannot load {path} ({name}, split {split}) from the Hub: {first}; for a local copy "
                              "in the benchmark's own format pass --metadata '{\"data_dir\": PATH}' "
                              "(docs/benchmarks.md)") from None


def _rows(data_dir: str | os.PathLike | None, local: Any, hub: tuple[str, str, str]) -> Any:
    """Hub-shaped rows: ``local()`` (which finds and reads the upstream file) or the Hub dataset."""
    return local() if data_dir else _hub(*hub)


# ----------------------------------------------------------------------------------- XQuAD

def read_xquad(path: Path) -> list[dict[str, Any]]:
    """SQuAD v1.1 JSON (``xquad.<lang>.json``) as google/xquad rows: id, context, question, answers."""
    try:
        articles = json.loads(path.read_text(encoding="utf-8"))["data"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise LangNeuronError(f"{path} is not SQuAD v1.1 JSON with a 'data' list ({e})") from None
    rows = []
    for article in articles:
        for para in article["paragraphs"]:
            for qa in para["qas"]:
                _need(qa, ("id", "question", "answers"), path, "a question")
                rows.append({"id": qa["id"], "context": para["context"], "question": qa["question"],
                             "answers": {"text": [a["text"] for a in qa["answers"]],
                                         "answer_start": [int(a["answer_start"]) for a in qa["answers"]]}})
    return rows


def xquad_docs(rows: Iterable[dict[str, Any]], lang: str) -> list[dict[str, Any]]:
    """Task documents of xqa_hub_<lang> (the shipped xqa format) from google/xquad-shaped rows."""
    return [{"id": str(r["id"]), "lang": lang, "context": r["context"], "question": r["question"],
             "answers": {"text": list(r["answers"]["text"]),
                         "answer_start": [int(a) for a in r["answers"]["answer_start"]]}} for r in rows]


def xquad(lang: str, code: str, data_dir: str | None = None, path: str = "google/xquad",
          split: str = "validation") -> list[dict[str, Any]]:
    name = f"xquad.{code}.json"
    return xquad_docs(_rows(data_dir, lambda: read_xquad(find_file(data_dir, [name], f"xqa_hub_{lang}")),
                            (path, f"xquad.{code}", split)), lang)


# ------------------------------------------------------------------------------------ MGSM

def _answer_number(text: str, path: Path, line: int) -> int | float:
    try:
        value = float(text.strip().replace(",", ""))  # 2,125 and 114,200 occur: thousands separators
    except ValueError:
        raise LangNeuronError(f"{path}: line {line}: answer {text!r} is not a number") from None
    return int(value) if value.is_integer() else value


def read_mgsm(path: Path) -> list[dict[str, Any]]:
    """``mgsm_<lang>.tsv`` (question TAB answer, no header) as juletxara/mgsm test rows."""
    rows = []
    with open(path, encoding="utf-8", newline="") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            fields = line.rstrip("\r\n").split("\t")
            if len(fields) != 2:
                raise LangNeuronError(f"{path}: line {i} has {len(fields)} tab-separated fields, expected 2 "
                                      "(question, answer)")
            rows.append({"question": fields[0], "answer": None,
                         "answer_number": _answer_number(fields[1], path, i), "equation_solution": None})
    return rows


def mgsm_docs(rows: Iterable[dict[str, Any]], lang: str) -> list[dict[str, Any]]:
    """Task documents of xmath_hub_<lang> (the shipped xmath format) from juletxara/mgsm-shaped rows."""
    return [{"id": i, "lang": lang, "question": r["question"], "answer_number": float(r["answer_number"]),
             "equation": str(r.get("equation_solution") or "")} for i, r in enumerate(rows)]


def mgsm(lang: str, code: str, data_dir: str | None = None, path: str = "juletxara/mgsm",
         split: str = "test") -> list[dict[str, Any]]:
    name = f"mgsm_{code}.tsv"
    return mgsm_docs(_rows(data_dir, lambda: read_mgsm(find_file(data_dir, [f"mgsm/{name}", name],
                                                                  f"xmath_hub_{lang}")),
                           (path, code, split)), lang)


# ---------------------------------------------------------------------------------- FLORES+

def flores_layouts(code: str, split: str) -> list[str]:
    """Where a language's split lives in the three distributions, newest first."""
    return [f"{split}/{code}.parquet",  # openlanguagedata/flores_plus on the Hub (a snapshot of it)
            f"{split}/{split}.{code}",  # FLORES+ 2.0 release zip (floresp-v2.0-rc.3/)
            f"{split}/{code}.{split}"]  # FLORES-200 (flores200_dataset/)


def read_flores(path: Path) -> list[dict[str, Any]]:
    """One language's split as flores_plus rows: the parquet's own columns, or ``id``/``text`` per line.

    Plain-text files carry no ids; a sentence's id is its line number (from 1), the same for every
    language, which is all the English-target alignment needs.
    """
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    lines = path.read_text(encoding="utf-8").splitlines()
    return [{"id": i, "text": text} for i, text in enumerate(lines, 1)]


def flores_docs(src_rows: Iterable[dict[str, Any]], tgt_rows: Iterable[dict[str, Any]], lang: str) -> list[dict[str, Any]]:
    """English -> ``lang`` pairs of lang_mt_hub_<lang>, aligned by id, in English order."""
    by_id = {r["id"]: r["text"] for r in tgt_rows}
    return [{"id": r["id"], "lang": lang, "src": r["text"], "tgt": by_id[r["id"]]} for r in src_rows if r["id"] in by_id]


def flores(lang: str, code: str, src: str = "eng_Latn", data_dir: str | None = None,
           path: str = "openlanguagedata/flores_plus", split: str = "devtest") -> list[dict[str, Any]]:
    earlier = benchmarks()["flores"].get("earlier_codes", {})

    def side(c: str) -> Any:
        layouts = [rel for name in (c, *earlier.get(c, [])) for rel in flores_layouts(name, split)]
        return _rows(data_dir, lambda: read_flores(find_file(data_dir, layouts, f"lang_mt_hub_{lang}")),
                     (path, c, split))

    return flores_docs(side(src), side(code), lang)


# --------------------------------------------------------------------------------- Belebele

BELEBELE_KEYS = ("link", "question_number", "flores_passage", "question", "mc_answer1", "mc_answer2",
                 "mc_answer3", "mc_answer4", "correct_answer_num")


def read_belebele(path: Path) -> list[dict[str, Any]]:
    """``<flores_code>.jsonl`` of the Belebele release: the same columns as facebook/belebele."""
    rows = _jsonl(path)
    for i, row in enumerate(rows, 1):
        _need(row, BELEBELE_KEYS, path, f"line {i}")
    return rows


def belebele_docs(rows: Iterable[dict[str, Any]], lang: str) -> list[dict[str, Any]]:
    """Documents of belebele_hub_<lang>: the row's fields plus ``label`` (0-based index of the right answer)."""
    docs = []
    for i, r in enumerate(rows):
        answer = str(r["correct_answer_num"]).strip()
        if answer not in ("1", "2", "3", "4"):
            raise LangNeuronError(f"belebele_hub_{lang}: row {i} has correct_answer_num {answer!r}, expected 1-4")
        docs.append({"id": i, "lang": lang, **{k: r[k] for k in BELEBELE_KEYS if k != "correct_answer_num"},
                     "question_number": int(r["question_number"]), "correct_answer_num": answer,
                     "label": int(answer) - 1})
    return docs


def belebele(lang: str, code: str, data_dir: str | None = None, path: str = "facebook/belebele",
             split: str = "test") -> list[dict[str, Any]]:
    name = f"{code}.jsonl"
    return belebele_docs(_rows(data_dir, lambda: read_belebele(find_file(data_dir, [name, f"Belebele/{name}"],
                                                                         f"belebele_hub_{lang}")),
                               (path, code, split)), lang)


# ------------------------------------------------------------------------------------ XCOPA

XCOPA_KEYS = ("premise", "choice1", "choice2", "question", "label", "idx")
XCOPA_FILES = {"test": "test", "validation": "val"}  # Hub split -> upstream file prefix


def read_xcopa(path: Path) -> list[dict[str, Any]]:
    """``test.<lang>.jsonl`` / ``val.<lang>.jsonl`` of cambridgeltl/xcopa: the Hub's columns."""
    rows = _jsonl(path)
    for i, row in enumerate(rows, 1):
        _need(row, XCOPA_KEYS, path, f"line {i}")
    return rows


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def xcopa_docs(rows: Iterable[dict[str, Any]], lang: str, code: str) -> list[dict[str, Any]]:
    """Documents of xcopa_hub_<lang> in COPA's usual zero-shot form.

    The premise loses its final punctuation and gains the language's "because" (question ``cause``) or
    "therefore" (``effect``); each choice, first letter lower-cased, is scored as its continuation.
    """
    cause, effect = benchmarks()["xcopa"]["connectors"][code]
    docs = []
    for r in rows:
        if r["question"] not in ("cause", "effect") or int(r["label"]) not in (0, 1):
            raise LangNeuronError(f"xcopa_hub_{lang}: item {r['idx']} has question {r['question']!r} and label "
                                  f"{r['label']!r}; expected cause/effect and 0/1")
        connector = cause if r["question"] == "cause" else effect
        docs.append({"id": int(r["idx"]), "lang": lang, **{k: r[k] for k in ("premise", "choice1", "choice2", "question")},
                     "label": int(r["label"]), "context": f"{r['premise'].strip()[:-1]} {connector}",
                     "choices": [_lower_first(r["choice1"]), _lower_first(r["choice2"])]})
    return docs


def xcopa(lang: str, code: str, data_dir: str | None = None, path: str = "cambridgeltl/xcopa",
          split: str = "test") -> list[dict[str, Any]]:
    if split not in XCOPA_FILES:
        raise LangNeuronError(f"xcopa_hub_{lang}: split {split!r} does not exist (test or validation)")
    name = f"{XCOPA_FILES[split]}.{code}.jsonl"
    return xcopa_docs(_rows(data_dir, lambda: read_xcopa(find_file(data_dir, [f"data/{code}/{name}", name],
                                                                   f"xcopa_hub_{lang}")),
                            (path, code, split)), lang, code)
