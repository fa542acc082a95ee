"""Data loaders and metric glue of the langneuron-eval lm-eval tasks.

lm-eval loads this file by its path: the task templates next to it (``_<family>_yaml``) refer to
``!function utils.<name>``, which lm-eval resolves relative to the YAML file that contains the tag,
so the same files work from a source checkout (``tasks/``) and installed (``langneuron_eval/tasks``).
The generated per-language YAMLs in the family folders include a template with ``include:
../_<family>_yaml``. Metric logic lives in :mod:`langneuron_eval.lmeval.metrics` (unit-tested there).

Loaders are lm-eval ``custom_dataset`` functions. lm-eval calls them as
``f(**task_metadata, **dataset_kwargs)`` and the task metadata contains every ``--model_args`` key
(``pretrained``, ``lang``, ``mode``...). Hence the ``corpus_*`` argument names, which cannot collide
with a model argument, and the ``**_`` catch-all. Shipped data comes from
:mod:`langneuron_eval.demo_corpus` (split ``eval``, held out from the ``train``/``detect`` splits
that neuron detection uses); the ``*_hub`` loaders download public benchmarks with ``datasets``, or
read a local copy in the benchmark's own format when metadata ``data_dir`` is given (the readers and
the Hub-row mapping live in :mod:`langneuron_eval.lmeval.public_benchmarks`; docs/benchmarks.md).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from typing import Any

from lm_eval.api.metrics import mean
from lm_eval.api.task import ConfigurableTask

from langneuron_eval import languages, lid
from langneuron_eval.errors import LangNeuronError
from langneuron_eval.languages import written_with_spaces
from langneuron_eval.lmeval import metrics, prompts
from langneuron_eval.lmeval.engine import perplexity

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


# --------------------------------------------------------------------------------- prompts and targets
# Plain functions rather than Jinja templates in the YAMLs: lm-eval compiles a template string anew on every call
# (several calls per document), which cost the demo's QA step seconds. The texts are langneuron_eval.lmeval.prompts'.

def xqa_text(doc: dict[str, Any]) -> str:
    return prompts.qa_prompt(doc["context"], doc["question"])


def xqa_target(doc: dict[str, Any]) -> str:
    return doc["answers"]["text"][0]


def xmath_text(doc: dict[str, Any]) -> str:
    return prompts.math_prompt(doc["question"])


def xmath_target(doc: dict[str, Any]) -> str:
    return f"{doc['answer_number']:g}"


def mt_text(doc: dict[str, Any]) -> str:
    return prompts.mt_prompt(doc["src"])


# --------------------------------------------------------------------------------- lang_ppl

def load_ppl(corpus_lang: str, corpus_split: str = "eval", corpus: str | Sequence[str] | None = None,
             **_: Any) -> Any:
    """Held-out text of ``corpus_lang``: the user's (metadata ``corpus``, a ``record --corpus`` spec) or the demo's.

    Only the demo languages ship text; any other language needs ``--metadata '{"corpus": ...}'``.
    """
    if corpus:
        texts = _user_texts(corpus_lang, corpus)
    elif corpus_lang in languages.DEMO_LANGUAGES:
        texts = _corpus().sentences(corpus_lang, corpus_split)
    else:
        raise LangNeuronError(
            f"lang_ppl_{corpus_lang}: no text ships for {corpus_lang}; pass your held-out text with "
            f"--metadata '{{\"corpus\": \"{corpus_lang}=path/to/{corpus_lang}.txt\"}}' (or a folder of <lang>.txt files)")
    return _dataset([{"id": i, "lang": corpus_lang, "text": t} for i, t in enumerate(texts)])


def _user_texts(lang: str, spec: str | Sequence[str]) -> list[str]:
    """Every text of ``lang`` in a corpus spec (a folder of <lang>.txt/.jsonl, ``lang=path``, ``lang=hf:...``).

    The spec may name the language by any alias (``vie.txt``, ``zh-Hans=...``); an exact match wins.
    """
    from langneuron_eval.core.corpus import resolve_corpus, split_specs

    sources = resolve_corpus(split_specs(spec))
    match = [s for s in sources if s.lang == lang] or [s for s in sources if _known(s.lang, lid_only=False) == lang]
    if not match:
        have = ", ".join(s.lang for s in sources)
        raise LangNeuronError(f"lang_ppl_{lang}: the corpus given in metadata has no text for {lang} (it has {have})")
    return list(match[0].texts())


def _known(code: str, lid_only: bool = True) -> str | None:
    """The canonical code of ``code``, or None where :func:`languages.normalize` refuses it."""
    try:
        return languages.normalize(code, lid_only=lid_only)
    except LangNeuronError:
        return None


def process_ppl(doc: dict[str, Any], results: list[float]) -> dict[str, tuple[float, int]]:
    """The line's rolling log-likelihood, normalised by UTF-8 bytes (and by words where words are spaced).

    Word perplexity is declared only for languages written with spaces between words
    (:func:`langneuron_eval.languages.written_with_spaces`); elsewhere a whitespace "word" is a whole line.
    """
    (loglikelihood,) = results
    text = doc["text"]
    n_bytes = len(text.encode("utf-8"))
    out = {"byte_perplexity": (loglikelihood, n_bytes), "bits_per_byte": (loglikelihood, n_bytes)}
    if written_with_spaces(doc["lang"]):
        out["word_perplexity"] = (loglikelihood, len(text.split()))
    return out


def _sums(items: Sequence[tuple[float, int]]) -> tuple[float, float]:
    return math.fsum(ll for ll, _ in items), math.fsum(n for _, n in items)


def safe_perplexity(items: Sequence[tuple[float, int]]) -> float:
    """lm-eval's ``weighted_perplexity`` (``exp(-sum ll / sum n)``), ``inf`` past float range, NaN for 0/0."""
    return perplexity(*_sums(items))


def safe_bits_per_byte(items: Sequence[tuple[float, int]]) -> float:
    """lm-eval's ``bits_per_byte`` (``-sum ll / sum bytes / ln 2``), NaN when there are no bytes."""
    loglikelihood, n_bytes = _sums(items)
    return -loglikelihood / n_bytes / math.log(2) if n_bytes else math.nan


# ------------------------------------------------------------------------------- lang_steer

STEER_HALVES = ("dev", "test")


def load_steer(corpus_lang: str, corpus_n: int = 100, corpus_prompted: bool = False,
               langs: str | Sequence[str] | None = None, neurons: str | None = None,
               corpus_half: str | None = None, **_: Any) -> Any:
    """``corpus_n`` generations per task: BOS-only prompts (Kojima et al.), or neutral prompts in turn.

    Each document carries the languages its output is bucketed into (``langs``, '+'-joined), see
    :func:`breakdown_languages`; ``neurons`` is the ``--model_args`` key of the ``langneuron`` model.
    Metadata ``corpus_half`` (``dev`` or ``test``, used by ``langneuron sweep``) keeps the first or the second
    half of the neutral prompts, so that a setting chosen on one half is reported on prompts it never saw.
    """
    prompts = NEUTRAL_PROMPTS if corpus_prompted else ("",)
    if corpus_half is not None:
        if corpus_half not in STEER_HALVES:
            raise LangNeuronError(f"corpus_half must be one of {', '.join(STEER_HALVES)}, got {corpus_half!r}")
        half = max(1, len(prompts) // 2)
        prompts = prompts[:half] if corpus_half == "dev" else (prompts[half:] or prompts)
    tracked = "+".join(breakdown_languages(corpus_lang, langs, neurons))
    rows = [{"id": i, "lang": corpus_lang, "prompt": prompts[i % len(prompts)], "langs": tracked}
            for i in range(int(corpus_n))]
    return _dataset(rows)


def breakdown_languages(target: str, langs: str | Sequence[str] | None = None,
                        neurons: str | None = None) -> list[str]:
    """The languages whose share ``lang_rate_<l>`` a steering task reports, the target first.

    Metadata ``langs`` when given; else the languages of the neuron file the model was loaded with
    (those lid.176 can identify); else the demo languages.
    """
    if langs:
        chosen = languages.normalize_many(langs)
    elif neurons:
        stat = os.stat(neurons) if os.path.exists(neurons) else None
        key = (stat.st_mtime_ns, stat.st_size) if stat else None
        chosen = [code for code in (_known(x) for x in _neuron_languages(str(neurons), key)) if code]
    else:
        chosen = list(languages.DEMO_LANGUAGES)
    return list(dict.fromkeys([languages.normalize(target), *chosen]))


@functools.lru_cache(maxsize=4)
def _neuron_languages(path: str, version: tuple[int, int] | None) -> tuple[str, ...]:
    """The languages of a neuron file, read once per file version (a group builds up to 176 tasks from it).

    ``version`` (modification time, size) only keys the cache, so a rewritten file is read again.
    """
    from langneuron_eval.core.neurons import NeuronFile

    return tuple(NeuronFile.load(path).languages)


class LangSteerTask(ConfigurableTask):
    """lang_steer task whose declared metrics follow the breakdown languages of its documents.

    The YAML's ``metric_list`` can only name a fixed set; the ``lang_rate_<l>`` names are known once the
    documents are built (metadata ``langs`` or the neuron file), so they are declared here with lm-eval's
    own aggregation (mean) and direction (lower is better), as the YAML does for ``lang_rate_other``.
    """

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__(config={k: v for k, v in (config or {}).items() if k != "class"})
        first = self.dataset[self.config.test_split][0]  # every document carries the same languages
        for lang in first["langs"].split("+"):
            if lang != first["lang"]:
                self._aggregation_list[f"lang_rate_{lang}"] = mean
                self._higher_is_better[f"lang_rate_{lang}"] = False


def process_steer(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    """Language shares and text quality of one generation (docs/steering_quality.md)."""
    return metrics.steer_scores(results[0], doc["lang"], doc["langs"].split("+"))


# ------------------------------------------------------------------------------------- xqa

def load_xqa(corpus_lang: str, corpus_split: str = "eval", corpus_cross_lingual: bool = False, **_: Any) -> Any:
    items = _corpus().qa_items(corpus_lang, corpus_split, cross_lingual=bool(corpus_cross_lingual))
    rows = [{"id": str(it["id"]), "lang": corpus_lang, "context": it["context"], "question": it["question"],
             "answers": {"text": list(it["answers"]["text"]),
                         "answer_start": [int(a) for a in it["answers"]["answer_start"]]}}
            for it in items]
    return _dataset(rows)


def load_xqa_hub(corpus_lang: str, corpus_name: str | None = None, corpus_path: str = "google/xquad",
                 corpus_split: str = "validation", data_dir: str | None = None, **_: Any) -> Any:
    """XQuAD from the Hub or, with metadata ``data_dir``, its xquad.<lang>.json (langneuron_eval.lmeval.public_benchmarks)."""
    from langneuron_eval.lmeval import public_benchmarks as upstream

    return _dataset(upstream.xquad(corpus_lang, corpus_name or corpus_lang, data_dir, corpus_path, corpus_split))


def process_xqa(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    return metrics.qa_scores(results[0], doc["answers"]["text"])


# ------------------------------------------------------------------------------------ xmath

def load_xmath(corpus_lang: str, corpus_split: str = "eval", **_: Any) -> Any:
    items = _corpus().math_items(corpus_lang, corpus_split)
    rows = [{"id": i, "lang": corpus_lang, "question": it["question"], "answer_number": float(it["answer_number"]),
             "equation": str(it.get("equation", ""))} for i, it in enumerate(items)]
    return _dataset(rows)


def load_xmath_hub(corpus_lang: str, corpus_path: str = "juletxara/mgsm", corpus_name: str | None = None,
                   corpus_split: str = "test", data_dir: str | None = None, **_: Any) -> Any:
    """MGSM (250 test questions per language) from the Hub or, with metadata ``data_dir``, its mgsm_<lang>.tsv."""
    from langneuron_eval.lmeval import public_benchmarks as upstream

    return _dataset(upstream.mgsm(corpus_lang, corpus_name or corpus_lang, data_dir, corpus_path, corpus_split))


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
                corpus_src: str = "eng_Latn", corpus_split: str = "devtest", data_dir: str | None = None,
                **_: Any) -> Any:
    """FLORES+ English -> ``corpus_name`` pairs aligned by ``id``, from the Hub (gated: log in first) or ``data_dir``."""
    from langneuron_eval.lmeval import public_benchmarks as upstream

    return _dataset(upstream.flores(corpus_lang, corpus_name, corpus_src, data_dir, corpus_path, corpus_split))


def process_mt(doc: dict[str, Any], results: list[str]) -> dict[str, Any]:
    text = results[0].strip()
    lang = doc["lang"]
    return {"lang_rate": float(lid.detect(text) == lang), "bleu": (doc["tgt"], text, lang),
            "chrf": (doc["tgt"], text, lang)}


def agg_bleu(items: list[tuple[str, str, str]]) -> float:
    return metrics.corpus_bleu(items)


def agg_chrf(items: list[tuple[str, str, str]]) -> float:
    return metrics.corpus_chrf(items)


# ------------------------------------------------------------------- belebele_hub, xcopa_hub

def load_belebele_hub(corpus_lang: str, corpus_name: str, corpus_path: str = "facebook/belebele",
                      corpus_split: str = "test", data_dir: str | None = None, **_: Any) -> Any:
    """Belebele (900 questions) from the Hub or, with metadata ``data_dir``, its <flores_code>.jsonl."""
    from langneuron_eval.lmeval import public_benchmarks as upstream

    return _dataset(upstream.belebele(corpus_lang, corpus_name, data_dir, corpus_path, corpus_split))


def load_xcopa_hub(corpus_lang: str, corpus_name: str | None = None, corpus_path: str = "cambridgeltl/xcopa",
                   corpus_split: str = "test", data_dir: str | None = None, **_: Any) -> Any:
    """XCOPA (500 test items) from the Hub or, with metadata ``data_dir``, its data/<lang>/test.<lang>.jsonl."""
    from langneuron_eval.lmeval import public_benchmarks as upstream

    return _dataset(upstream.xcopa(corpus_lang, corpus_name or corpus_lang, data_dir, corpus_path, corpus_split))
