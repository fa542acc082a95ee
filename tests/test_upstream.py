"""Public benchmarks from local copies in their upstream formats give the documents the Hub route gives.

The fixtures in ``tests/fixtures/upstream`` are invented miniatures written in each benchmark's own
distribution format. For each benchmark the test writes out, by hand, the rows the Hub dataset would
hold for the same content (its real column names and types) and checks that the task loader gives
identical documents from the Hub rows (``datasets.load_dataset`` replaced) and from the local files.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from datasets import Dataset

from langneuron_eval.errors import LangNeuronError
from langneuron_eval.lmeval import evaluation
from langneuron_eval.lmeval import public_benchmarks as upstream
from langneuron_eval.lmeval.plugin import tasks_dir

FIXTURES = Path(__file__).parent / "fixtures" / "upstream"

PASSAGE = "Der Leuchtturm von Nordholm wurde 1872 gebaut. Er ist 31 Meter hoch."
HUB = {  # (path, config, split) -> the rows the Hub holds for the fixtures' content, in the Hub's columns
    ("google/xquad", "xquad.de", "validation"): [
        {"id": "fx-0001", "context": "Der Leuchtturm von Nordholm wurde 1872 gebaut und ist 31 Meter hoch.",
         "question": "Wann wurde der Leuchtturm gebaut?", "answers": {"text": ["1872"], "answer_start": [34]}},
        {"id": "fx-0002", "context": "Der Leuchtturm von Nordholm wurde 1872 gebaut und ist 31 Meter hoch.",
         "question": "Wie hoch ist der Leuchtturm?",
         "answers": {"text": ["31 Meter", "31"], "answer_start": [54, 54]}},
        {"id": "fx-0003", "context": "Im Garten wachsen Tomaten, Bohnen und Kürbisse.",
         "question": "Was wächst zuerst genannt im Garten?", "answers": {"text": ["Tomaten"], "answer_start": [18]}}],
    ("juletxara/mgsm", "de", "test"): [
        {"question": "Lena hat 3 Äpfel und kauft 4 dazu. Wie viele Äpfel hat sie?", "answer": None,
         "answer_number": 7, "equation_solution": None},
        {"question": "Ein Zug fährt 2,125 Meter pro Minute. Wie weit fährt er in einer Minute?", "answer": None,
         "answer_number": 2125, "equation_solution": None},
        {"question": "Tom teilt 9 Kekse gerecht auf 2 Kinder auf. Wie viele Kekse bekommt jedes Kind?",
         "answer": None, "answer_number": 4.5, "equation_solution": None}],
    ("openlanguagedata/flores_plus", "eng_Latn", "devtest"): [
        {"id": i, "iso_639_3": "eng", "iso_15924": "Latn", "glottocode": "stan1293", "text": t}
        for i, t in enumerate(["The lighthouse was built in 1872.", "Tomatoes grow in the garden.",
                               "The train leaves at noon."], 1)],
    ("openlanguagedata/flores_plus", "deu_Latn", "devtest"): [
        {"id": i, "iso_639_3": "deu", "iso_15924": "Latn", "glottocode": "stan1295", "text": t}
        for i, t in enumerate(["Der Leuchtturm wurde 1872 gebaut.", "Im Garten wachsen Tomaten.",
                               "Der Zug fährt mittags ab."], 1)],
    ("facebook/belebele", "deu_Latn", "test"): [
        {"link": "https://example.org/wiki/Leuchtturm", "question_number": 1, "flores_passage": PASSAGE,
         "question": "Wann wurde der Leuchtturm gebaut? ", "mc_answer1": "1827", "mc_answer2": "1872",
         "mc_answer3": "1931", "mc_answer4": "Er wurde nie gebaut", "correct_answer_num": "2",
         "dialect": "deu_Latn", "ds": "2023-05-03"},
        {"link": "https://example.org/wiki/Leuchtturm", "question_number": 2, "flores_passage": PASSAGE,
         "question": "Wie hoch ist der Leuchtturm?", "mc_answer1": "31 Meter", "mc_answer2": "13 Meter",
         "mc_answer3": "72 Meter", "mc_answer4": "18 Meter", "correct_answer_num": "1",
         "dialect": "deu_Latn", "ds": "2023-05-03"}],
    ("cambridgeltl/xcopa", "zh", "test"): [
        {"premise": "灯塔的灯熄灭了。", "choice1": "停电了。", "choice2": "天很晴朗。", "question": "cause",
         "label": 0, "idx": 0, "changed": False},
        {"premise": "我把花浇了水。", "choice1": "花枯萎了。", "choice2": "花开得很好。", "question": "effect",
         "label": 1, "idx": 1, "changed": False}],
}

CASES = [  # loader, its dataset_kwargs (as the generated YAML gives them), the Hub datasets it reads
    ("load_xqa_hub", {"corpus_lang": "de", "corpus_name": "de"}, 3),
    ("load_xmath_hub", {"corpus_lang": "de", "corpus_path": "juletxara/mgsm", "corpus_name": "de"}, 3),
    ("load_mt_hub", {"corpus_lang": "de", "corpus_path": "openlanguagedata/flores_plus", "corpus_src": "eng_Latn",
                     "corpus_name": "deu_Latn", "corpus_split": "devtest"}, 3),
    ("load_belebele_hub", {"corpus_lang": "de", "corpus_name": "deu_Latn"}, 2),
    ("load_xcopa_hub", {"corpus_lang": "zh", "corpus_name": "zh"}, 2),
]


@pytest.fixture(scope="module")
def task_utils():
    spec = importlib.util.spec_from_file_location("_ln_test_upstream_utils", tasks_dir() / "utils.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def fake_hub(monkeypatch):
    """``datasets.load_dataset`` answering from HUB, recording each call."""
    import datasets

    calls = []

    def load_dataset(path, name=None, split=None, **_):
        calls.append((path, name, split))
        return Dataset.from_list(HUB[(path, name, split)])

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


def _docs(dataset_dict):
    return dataset_dict["test"].to_list()


@pytest.mark.parametrize("loader, kwargs, n", CASES, ids=[c[0] for c in CASES])
def test_local_copy_gives_the_hub_documents(task_utils, fake_hub, loader, kwargs, n):
    from_hub = _docs(getattr(task_utils, loader)(**kwargs))
    assert fake_hub, "the Hub route was not taken"
    fake_hub.clear()
    from_files = _docs(getattr(task_utils, loader)(**kwargs, data_dir=str(FIXTURES)))
    assert not fake_hub, "the local route must not touch the Hub"
    assert len(from_hub) == n and from_files == from_hub


def test_documents_keep_ids_and_gold_answers(task_utils):
    xqa = _docs(task_utils.load_xqa_hub(corpus_lang="de", data_dir=str(FIXTURES)))
    assert [d["id"] for d in xqa] == ["fx-0001", "fx-0002", "fx-0003"]
    assert xqa[1]["answers"] == {"text": ["31 Meter", "31"], "answer_start": [54, 54]}
    math = _docs(task_utils.load_xmath_hub(corpus_lang="de", data_dir=str(FIXTURES)))
    assert [d["answer_number"] for d in math] == [7.0, 2125.0, 4.5]  # "2,125" is two thousand ...
    bele = _docs(task_utils.load_belebele_hub(corpus_lang="de", corpus_name="deu_Latn", data_dir=str(FIXTURES)))
    assert [d["label"] for d in bele] == [1, 0]  # correct_answer_num is 1-based
    copa = _docs(task_utils.load_xcopa_hub(corpus_lang="zh", data_dir=str(FIXTURES)))
    assert [(d["id"], d["label"]) for d in copa] == [(0, 0), (1, 1)]
    val = _docs(task_utils.load_xcopa_hub(corpus_lang="zh", corpus_split="validation", data_dir=str(FIXTURES)))
    assert [d["premise"] for d in val] == ["孩子笑了。"]


@pytest.mark.parametrize("root", ["floresp-v2.0-rc.3", "flores200_dataset", "parquet"])
def test_every_flores_layout(task_utils, fake_hub, tmp_path, root):
    if root == "parquet":  # a snapshot of the Hub repository: <split>/<code>.parquet
        (tmp_path / "devtest").mkdir()
        for code in ("eng_Latn", "deu_Latn"):
            Dataset.from_list(HUB[("openlanguagedata/flores_plus", code, "devtest")]).to_parquet(
                tmp_path / "devtest" / f"{code}.parquet")
        data_dir = tmp_path
    else:
        data_dir = FIXTURES / root
    kwargs = {"corpus_lang": "de", "corpus_name": "deu_Latn"}
    assert _docs(task_utils.load_mt_hub(**kwargs, data_dir=str(data_dir))) == _docs(task_utils.load_mt_hub(**kwargs))


def test_flores_200_copy_found_under_its_earlier_code(task_utils, tmp_path):
    (tmp_path / "devtest").mkdir()
    (tmp_path / "devtest" / "eng_Latn.devtest").write_text("One.\nTwo.\n", encoding="utf-8")
    (tmp_path / "devtest" / "zho_Hans.devtest").write_text("一。\n二。\n", encoding="utf-8")  # FLORES+ says cmn_Hans
    docs = _docs(task_utils.load_mt_hub(corpus_lang="zh", corpus_name="cmn_Hans", data_dir=str(tmp_path)))
    assert [(d["id"], d["src"], d["tgt"]) for d in docs] == [(1, "One.", "一。"), (2, "Two.", "二。")]


def test_data_dir_may_be_the_file_or_an_ancestor(task_utils):
    direct = _docs(task_utils.load_xmath_hub(corpus_lang="de", data_dir=str(FIXTURES / "url-nlp/mgsm/mgsm_de.tsv")))
    assert direct == _docs(task_utils.load_xmath_hub(corpus_lang="de", data_dir=str(FIXTURES / "url-nlp")))
    with pytest.raises(LangNeuronError, match="this task reads mgsm_fr.tsv"):
        task_utils.load_xmath_hub(corpus_lang="fr", data_dir=str(FIXTURES / "url-nlp/mgsm/mgsm_de.tsv"))
    with pytest.raises(LangNeuronError, match="no mgsm/mgsm_fr.tsv or mgsm_fr.tsv under data_dir"):
        task_utils.load_xmath_hub(corpus_lang="fr", data_dir=str(FIXTURES))
    with pytest.raises(LangNeuronError, match="does not exist"):
        task_utils.load_xqa_hub(corpus_lang="de", data_dir=str(FIXTURES / "nowhere"))


def test_malformed_upstream_files_fail_with_one_line(tmp_path):
    (tmp_path / "mgsm_de.tsv").write_text("eine Frage ohne Antwort\n", encoding="utf-8")
    with pytest.raises(LangNeuronError, match="line 1 has 1 tab-separated fields"):
        upstream.mgsm("de", "de", str(tmp_path))
    (tmp_path / "deu_Latn.jsonl").write_text('{"question": "Wer?"}\n', encoding="utf-8")
    with pytest.raises(LangNeuronError, match="line 1 lacks link"):
        upstream.belebele("de", "deu_Latn", str(tmp_path))
    (tmp_path / "xquad.de.json").write_text('{"version": "1.1"}', encoding="utf-8")
    with pytest.raises(LangNeuronError, match="not SQuAD v1.1 JSON"):
        upstream.xquad("de", "de", str(tmp_path))


def test_task_languages_come_from_the_data_file():
    bele = upstream.task_languages("belebele")
    assert bele["zh"] == "zho_Hans" and bele["hi"] == "hin_Deva"  # the usual script, not romanised/traditional
    assert bele["de"] == "deu_Latn" and "ary" not in bele
    assert set(upstream.task_languages("xcopa")) == {"et", "ht", "id", "it", "qu", "sw", "ta", "th", "tr", "vi", "zh"}
    assert set(upstream.task_languages("xcopa")) <= set(upstream.benchmarks()["xcopa"]["connectors"])


def _lm_eval_xcopa_utils():
    import lm_eval

    path = Path(lm_eval.__file__).parent / "tasks" / "xcopa" / "utils.py"
    spec = importlib.util.spec_from_file_location("_lm_eval_xcopa_utils", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_prompts_follow_lm_evals_own_tasks():
    """Built through lm-eval with metadata data_dir: XCOPA's prompt and choices equal lm-eval's xcopa_zh ones."""
    tm = evaluation.make_task_manager(metadata={"data_dir": str(FIXTURES)})
    tasks = tm.load(["xcopa_hub_zh", "belebele_hub_de"])["tasks"]
    xcopa, bele = tasks["xcopa_hub_zh"], tasks["belebele_hub_de"]
    theirs = _lm_eval_xcopa_utils()
    for doc in xcopa.test_docs():
        assert xcopa.doc_to_text(doc) == theirs.doc_to_text_zh(doc)
        assert xcopa.doc_to_choice(doc) == theirs.doc_to_choice(doc)
        assert xcopa.doc_to_target(doc) == doc["label"]
    doc = bele.test_docs()[0]
    assert bele.doc_to_text(doc) == (f"P: {PASSAGE}\nQ: Wann wurde der Leuchtturm gebaut?\nA: 1827\nB: 1872\n"
                                     "C: 1931\nD: Er wurde nie gebaut\nAnswer:")
    assert bele.doc_to_choice(doc) == ["A", "B", "C", "D"] and bele.doc_to_target(doc) == 1


def test_our_task_names_do_not_shadow_lm_evals():
    """Our folder is on every include path, so a task or group named like one of lm-eval's would replace it."""
    import re

    import lm_eval

    theirs = set()
    for path in (Path(lm_eval.__file__).parent / "tasks").rglob("*yaml"):
        theirs |= set(re.findall(r"^(?:task|group|tag): *['\"]?([\w.-]+)", path.read_text(encoding="utf-8"), re.M))
    assert {"xcopa_zh", "xcopa", "belebele", "belebele_deu_Latn"} <= theirs  # the scan sees lm-eval's names
    ours = set(evaluation.make_task_manager().all_tasks)
    assert {"belebele_hub_de", "xcopa_hub_zh", "belebele_hub", "xcopa_hub"} <= ours
    assert not ours & theirs


def test_offline_without_a_local_copy_says_how_to_give_one(task_utils):
    with pytest.raises(LangNeuronError, match="data_dir"):  # tests run with HF_HUB_OFFLINE=1
        task_utils.load_xcopa_hub(corpus_lang="zh")


@pytest.mark.slow
def test_tasks_run_in_lm_eval_from_local_copies(tiny_model_dir):
    res = evaluation.evaluate("hf", ["belebele_hub_de", "xcopa_hub_zh", "xqa_hub_de", "xmath_hub_de", "lang_mt_hub_de"],
                              model_args={"pretrained": str(tiny_model_dir)}, batch_size=4, log_samples=True,
                              gen_kwargs={"max_gen_toks": 3}, metadata={"data_dir": str(FIXTURES)})
    counts = {task: r["sample_len"] for task, r in res["results"].items()}
    assert counts == {"belebele_hub_de": 2, "xcopa_hub_zh": 2, "xqa_hub_de": 3, "xmath_hub_de": 3, "lang_mt_hub_de": 3}
    assert {"acc,none", "acc_norm,none"} <= set(res["results"]["belebele_hub_de"])
    copa = res["samples"]["xcopa_hub_zh"][0]["arguments"]
    assert [a[0] for a in copa] == ["灯塔的灯熄灭了 因为"] * 2 and [a[1] for a in copa] == [" 停电了。", " 天很晴朗。"]
