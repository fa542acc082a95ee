"""Data loaders and metric glue of the langneuron-eval lm-eval tasks.

lm-eval loads this file by its path: the task templates next to it (``_<family>_yaml``) refer to
``!function utils.<name>``, which lm-eval resolves relative to the YAML file that contains the tag,
so the same files work from a source checkout (``tasks/``) and installed (``langneuron_eval/tasks``).
The generated per-language YAMLs in the family folders include a template with ``include:
../_<family>_yaml``. Metric logic lives in :mod:`langneuron_eval.metrics` (unit-tested there).

Loaders are lm-eval ``custom_dataset`` functions. lm-eval calls them as
``f(**task_metadata, **dataset_kwargs)`` and the task metadata contains every ``--model_args`` key
(``pretrained``, ``lang``, ``mode``...). Hence the ``corpus_*`` argument names, which cannot collide
with a model argument, and the ``**_`` catch-all. Shipped data comes from
:mod:`langneuron_eval.demo_corpus` (split ``eval``, held out from the ``train``/``detect`` splits
that neuron detection uses); the ``*_hub`` loaders download public benchmarks with ``datasets``.
"""

from __future__ import annotations

from typing import Any

from langneuron_eval import lid, metrics

LANGUAGES = ("en", "de", "fr", "es", "zh", "ja")

# Language-neutral prompts of lang_steer_prompted_<lang> (no words, so they favour no language).
NEUTRAL_PROMPTS = ("1.", "-", "*", '"', "(", "#", ">", "[", ":", "...")


def _dataset(rows: list[dict[str, Any]], split: str = "test") -> Any:
    from datasets import Dataset, DatasetDict

    if not rows:
        raise ValueError("the task's data loader produced no documents")
    return DatasetDict({split: Dataset.from_list(rows)})


def _corpus() -> Any:
    from langneuron_eval import demo_corpus

    return demo_corpus


# --------------------------------------------------------------------------------- lang_ppl

def load_ppl(corpus_lang: str, corpus_split: str = "eval", **_: Any) -> Any:
    texts = _corpus().sentences(corpus_lang, corpus_split)
    return _dataset([{"id": i, "lang": corpus_lang, "text": t} for i, t in enumerate(texts)])


def process_ppl(doc: dict[str, Any], results: list[float]) -> dict[str, tuple[float, int]]:
    """Token-weighted log-likelihood of the whole line, normalised by words and by UTF-8 bytes.

    Words are whitespace-separated, so word perplexity is not meaningful for Chinese and Japanese
    (one "word" per line); compare languages with byte perplexity or bits per byte.
    """
    (loglikelihood,) = results
    text = doc["text"]
    n_bytes = len(text.encode("utf-8"))
    return {"word_perplexity": (loglikelihood, len(text.split())),
            "byte_perplexity": (loglikelihood, n_bytes),
            "bits_per_byte": (loglikelihood, n_bytes)}


# ------------------------------------------------------------------------------- lang_steer

def load_steer(corpus_lang: str, corpus_n: int = 100, corpus_prompted: bool = False, **_: Any) -> Any:
    """``corpus_n`` generations per task: BOS-only prompts (Kojima et al.), or neutral prompts in turn."""
    prompts = NEUTRAL_PROMPTS if corpus_prompted else ("",)
    rows = [{"id": i, "lang": corpus_lang, "prompt": prompts[i % len(prompts)]} for i in range(int(corpus_n))]
    return _dataset(rows)


def process_steer(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    return metrics.lang_rate_scores(results[0], doc["lang"], LANGUAGES)


# ------------------------------------------------------------------------------------- xqa

def load_xqa(corpus_lang: str, corpus_split: str = "eval", corpus_cross_lingual: bool = False, **_: Any) -> Any:
    items = _corpus().qa_items(corpus_lang, corpus_split, cross_lingual=bool(corpus_cross_lingual))
    rows = [{"id": str(it["id"]), "lang": corpus_lang, "context": it["context"], "question": it["question"],
             "answers": {"text": list(it["answers"]["text"]),
                         "answer_start": [int(a) for a in it["answers"]["answer_start"]]}}
            for it in items]
    return _dataset(rows)


def process_xqa(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    return metrics.qa_scores(results[0], doc["answers"]["text"])


# ------------------------------------------------------------------------------------ xmath

def load_xmath(corpus_lang: str, corpus_split: str = "eval", **_: Any) -> Any:
    items = _corpus().math_items(corpus_lang, corpus_split)
    rows = [{"id": i, "lang": corpus_lang, "question": it["question"], "answer_number": float(it["answer_number"]),
             "equation": str(it.get("equation", ""))} for i, it in enumerate(items)]
    return _dataset(rows)


def load_xmath_hub(corpus_lang: str, corpus_path: str = "juletxara/mgsm", corpus_name: str | None = None,
                   corpus_split: str = "test", **_: Any) -> Any:
    """MGSM from the Hub (250 test questions per language), mapped to the shipped format."""
    import datasets

    ds = datasets.load_dataset(corpus_path, corpus_name or corpus_lang, split=corpus_split)
    rows = [{"id": i, "lang": corpus_lang, "question": r["question"], "answer_number": float(r["answer_number"]),
             "equation": str(r.get("equation_solution") or "")} for i, r in enumerate(ds)]
    return _dataset(rows)


def process_xmath(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    """``acc``: the last number equals the answer; ``acc_in_lang``: and the output's LID is the task language."""
    text = results[0]
    correct = metrics.numbers_equal(metrics.extract_last_number(text), doc["answer_number"])
    return {"acc": float(correct), "acc_in_lang": float(correct and lid.detect(text) == doc["lang"])}


# ---------------------------------------------------------------------------------- lang_mt

def load_mt(corpus_lang: str, corpus_split: str = "eval", corpus_n: int | None = None, **_: Any) -> Any:
    """``corpus_n`` English -> ``corpus_lang`` pairs (a deterministic subset; all when None)."""
    pairs = _corpus().parallel_pairs(corpus_lang, corpus_split, n=None if corpus_n is None else int(corpus_n))
    return _dataset([{"id": i, "lang": corpus_lang, "src": en, "tgt": tgt} for i, (en, tgt) in enumerate(pairs)])


def load_mt_hub(corpus_lang: str, corpus_name: str, corpus_path: str = "openlanguagedata/flores_plus",
                corpus_src: str = "eng_Latn", corpus_split: str = "devtest", **_: Any) -> Any:
    """FLORES+ English -> ``corpus_name`` sentence pairs, aligned by their ``id`` (gated dataset: log in first)."""
    import datasets

    src = datasets.load_dataset(corpus_path, corpus_src, split=corpus_split)
    tgt = datasets.load_dataset(corpus_path, corpus_name, split=corpus_split)
    by_id = {r["id"]: r["text"] for r in tgt}
    rows = [{"id": r["id"], "lang": corpus_lang, "src": r["text"], "tgt": by_id[r["id"]]}
            for r in src if r["id"] in by_id]
    return _dataset(rows)


def process_mt(doc: dict[str, Any], results: list[str]) -> dict[str, Any]:
    text = results[0].strip()
    lang = doc["lang"]
    return {"lang_rate": float(lid.detect(text) == lang), "bleu": (doc["tgt"], text, lang),
            "chrf": (doc["tgt"], text, lang)}


def agg_bleu(items: list[tuple[str, str, str]]) -> float:
    return metrics.corpus_bleu(items)


def agg_chrf(items: list[tuple[str, str, str]]) -> float:
    return metrics.corpus_chrf(items)
