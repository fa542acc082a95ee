"""The shipped lm-eval tasks: generated configs, indexing, data sizes, and runs on the tiny offline Llama."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import langneuron_eval
from langneuron_eval import languages
from langneuron_eval.errors import LangNeuronError
from langneuron_eval.lmeval import evaluation, text_quality
from langneuron_eval.lmeval.plugin import tasks_dir

LANGS = languages.DEMO_LANGUAGES
NON_EN = LANGS[1:]


def _load_module(name):
    spec = importlib.util.spec_from_file_location(f"_ln_test_{name}", tasks_dir() / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def task_manager():
    return evaluation.make_task_manager()


@pytest.fixture(scope="module")
def task_utils():
    return _load_module("utils")


def test_generated_yamls_are_up_to_date():
    generator = _load_module("_generate_configs")
    stale = generator.generate(check=True)
    assert not stale, f"run `python tasks/_generate_configs.py`; stale: {[str(p) for p in stale]}"


def test_every_task_and_group_is_indexed(task_manager):
    """Our families, exactly (the *_hub_* families follow their benchmark's data file; tests/test_upstream.py)."""
    expected = (
        [f"lang_ppl_{x}" for x in languages.table()] + [f"lang_steer_{x}" for x in languages.LID_LANGUAGES]
        + [f"lang_steer_prompted_{x}" for x in languages.LID_LANGUAGES] + [f"xqa_{x}" for x in LANGS]
        + [f"xqa_xling_{x}" for x in NON_EN] + [f"xmath_{x}" for x in LANGS] + [f"lang_mt_{x}" for x in NON_EN])
    ours = [t for t in task_manager.all_subtasks if "_hub_" not in t]
    assert sorted(ours) == sorted(expected)
    hub = {"xqa_hub_de", "xqa_hub_zh", "xmath_hub_ja", *[f"lang_mt_hub_{x}" for x in NON_EN]}
    assert hub <= set(task_manager.all_subtasks)
    groups = {"lang_ppl", "lang_steer", "lang_steer_prompted", "lang_steer_lid176", "lang_steer_prompted_lid176",
              "xqa", "xqa_xling", "xmath", "lang_mt", "xqa_hub", "xmath_hub", "lang_mt_hub"}
    assert groups <= set(task_manager.all_groups)
    assert len([t for t in ours if t.startswith("lang_steer_prompted_")]) == 176
    # Hausa has a perplexity task (no LID needed) but no steering task (lid.176 cannot identify it)
    assert "lang_ppl_ha" in task_manager.all_tasks and "lang_steer_ha" not in task_manager.all_tasks
    assert "lang_mt_en" not in task_manager.all_tasks  # English -> English is no translation
    assert "xqa_hub_fr" not in task_manager.all_tasks and "xqa_hub_ja" not in task_manager.all_tasks  # not in XQuAD


def test_shipped_item_counts(task_utils):
    """Enough items for a stable score on a tiny model (the counts docs/lm_eval.md states)."""
    for lang in LANGS:
        ppl = task_utils.load_ppl(corpus_lang=lang)["test"]
        assert len(ppl) >= 200 and all(t.strip() for t in ppl["text"])
        assert len(task_utils.load_steer(corpus_lang=lang)["test"]) == 100
        assert len(task_utils.load_steer(corpus_lang=lang, corpus_prompted=True)["test"]) == 100
        assert len(task_utils.load_xqa(corpus_lang=lang)["test"]) >= 200
        assert len(task_utils.load_xmath(corpus_lang=lang)["test"]) >= 200
    for lang in NON_EN:
        assert len(task_utils.load_mt(corpus_lang=lang, corpus_n=200)["test"]) == 200  # as lang_mt_<lang> loads it
        assert len(task_utils.load_xqa(corpus_lang=lang, corpus_cross_lingual=True)["test"]) >= 200


def test_loaders_ignore_model_args_in_metadata(task_utils):
    # lm-eval calls custom_dataset(**metadata, **dataset_kwargs) and metadata holds every --model_args key
    docs = task_utils.load_ppl(pretrained="x", lang="zh", mode="activate", neurons="n.json", corpus_lang="de")
    assert set(docs["test"]["lang"]) == {"de"}
    steer = task_utils.load_steer(corpus_lang="zh")["test"]
    assert set(steer["prompt"]) == {""}  # BOS-only prompts
    prompted = task_utils.load_steer(corpus_lang="zh", corpus_prompted=True)["test"]
    assert set(prompted["prompt"]) == set(task_utils.NEUTRAL_PROMPTS)


def test_every_task_family_runs_on_the_tiny_model(tiny_model_dir, task_manager):
    tasks = ["lang_ppl_en", "lang_steer_zh", "lang_steer_prompted_de", "xqa_ja", "xqa_xling_fr", "xmath_zh",
             "lang_mt_de"]
    res = evaluation.evaluate("langneuron", tasks, model_args={"pretrained": str(tiny_model_dir), "dtype": "float32"},
                              limit=2, batch_size=4, task_manager=task_manager, log_samples=True,
                              gen_kwargs={"max_gen_toks": 6})
    r = res["results"]
    assert {"word_perplexity,none", "byte_perplexity,none", "bits_per_byte,none"} <= set(r["lang_ppl_en"])
    assert r["lang_ppl_en"]["byte_perplexity,none"] > 1
    steer = r["lang_steer_zh"]
    rates = ["lang_rate"] + [f"lang_rate_{x}" for x in LANGS if x != "zh"] + ["lang_rate_other"]
    assert all(f"{m},none" in steer and f"{m}_stderr,none" in steer for m in rates)
    assert sum(steer[f"{m},none"] for m in rates) == pytest.approx(1.0)
    quality = list(text_quality.HIGHER_IS_BETTER)  # per generation, mean with its stderr
    assert all(f"{m},none" in steer and f"{m}_stderr,none" in steer for m in quality)
    sample = res["samples"]["lang_steer_zh"][0]
    assert sample["on_target_fluent"] == text_quality.quality_scores(sample["resps"][0][0], "zh")["on_target_fluent"]
    assert steer["on_target_fluent,none"] <= steer["lang_rate,none"]  # success needs the target's label
    assert res["samples"]["lang_steer_zh"][0]["arguments"][0][0] == ""  # BOS-only prompt
    assert {"exact_match,none", "f1,none", "f1_char,none"} <= set(r["xqa_ja"])
    assert "f1_char,none" in r["xqa_xling_fr"]
    assert {"acc,none", "acc_in_lang,none"} <= set(r["xmath_zh"])
    assert {"lang_rate,none", "bleu,none", "chrf,none"} <= set(r["lang_mt_de"])
    assert all(r[t]["sample_len"] == 2 for t in tasks)
    prompt = res["samples"]["lang_mt_de"][0]["arguments"][0][0]
    assert prompt.startswith("Translate an English sentence into a target language.\nEnglish: ")
    assert prompt.endswith("\nTarget Language:") and "German" not in prompt
    # The prompts are exactly those the demo model is trained on (langneuron_eval.lmeval.prompts).
    from langneuron_eval.lmeval import prompts

    def first(task):
        sample = res["samples"][task][0]
        return sample["doc"], sample["arguments"][0][0]

    doc, text = first("xqa_ja")
    assert text == prompts.qa_prompt(doc["context"], doc["question"])
    doc, text = first("xqa_xling_fr")
    assert text == prompts.qa_prompt(doc["context"], doc["question"])
    doc, text = first("xmath_zh")
    assert text == prompts.math_prompt(doc["question"])
    doc, text = first("lang_mt_de")
    assert text == prompts.mt_prompt(doc["src"])


def test_group_aggregates(tiny_model_dir, task_manager):
    res = evaluation.evaluate("hf", ["lang_mt"], model_args={"pretrained": str(tiny_model_dir), "dtype": "float32"},
                              limit=1, batch_size=8, task_manager=task_manager, gen_kwargs={"max_gen_toks": 3})
    assert {"lang_rate,none", "bleu,none", "chrf,none"} <= set(res["groups"]["lang_mt"])
    assert res["groups"]["lang_mt"]["sample_len"] == len(NON_EN)
    assert all(f"lang_mt_{x}" in res["results"] for x in NON_EN)


def test_sampling_is_reproducible_with_lm_eval_seeds(tiny_model_dir, task_manager):
    def outputs(seeds):
        res = evaluation.evaluate("hf", ["lang_steer_en"], model_args={"pretrained": str(tiny_model_dir)},
                                  limit=3, batch_size=3, task_manager=task_manager, log_samples=True,
                                  gen_kwargs={"max_gen_toks": 8}, seeds=seeds)
        return [s["resps"] for s in res["samples"]["lang_steer_en"]]

    first = outputs((0, 1234, 1234, 1234))
    assert first == outputs((0, 1234, 1234, 1234))
    assert first != outputs((0, 1234, 99, 1234))  # the torch seed drives sampling
    assert len({str(x) for x in first}) == 3  # three different samples from the same empty prompt


def _fake_hub(calls):
    from datasets import Dataset

    def load_dataset(path, name=None, split=None, **kwargs):
        calls.append((path, name, split))
        if path == "google/xquad":
            return Dataset.from_list([{
                "id": "q1", "context": "Berlin ist die Hauptstadt von Deutschland.",
                "question": "Was ist die Hauptstadt?", "answers": {"text": ["Berlin"], "answer_start": [0]}}])
        if path == "juletxara/mgsm":
            return Dataset.from_list([{"question": "ジョンはりんごを3個持っています。2個もらうと何個？", "answer": None,
                                       "answer_number": 5, "equation_solution": None}])
        if path == "openlanguagedata/flores_plus":
            text = {"eng_Latn": ["The cat sleeps.", "It rains."], "cmn_Hans": ["猫在睡觉。", "下雨了。"]}[name]
            return Dataset.from_list([{"id": i + 1, "text": t} for i, t in enumerate(text)])
        raise AssertionError(f"unexpected dataset {path}")

    return load_dataset


def test_hub_variants_load_offline_with_their_real_schema(tiny_model_dir, task_manager, monkeypatch):
    import datasets

    calls = []
    monkeypatch.setattr(datasets, "load_dataset", _fake_hub(calls))
    res = evaluation.evaluate("hf", ["xqa_hub_de", "xmath_hub_ja", "lang_mt_hub_zh"],
                              model_args={"pretrained": str(tiny_model_dir)}, limit=2, batch_size=4,
                              task_manager=task_manager, gen_kwargs={"max_gen_toks": 3}, log_samples=True)
    assert ("google/xquad", "xquad.de", "validation") in calls
    assert ("juletxara/mgsm", "ja", "test") in calls
    assert ("openlanguagedata/flores_plus", "eng_Latn", "devtest") in calls
    assert ("openlanguagedata/flores_plus", "cmn_Hans", "devtest") in calls
    assert {"exact_match,none", "f1,none", "f1_char,none"} <= set(res["results"]["xqa_hub_de"])
    assert {"acc,none", "acc_in_lang,none"} <= set(res["results"]["xmath_hub_ja"])
    assert res["results"]["lang_mt_hub_zh"]["sample_len"] == 2
    assert res["samples"]["xmath_hub_ja"][0]["arguments"][0][0].startswith("Q: ジョン")


# ------------------------------------------------------------------ any language, the user's text

def test_steering_breakdown_follows_metadata_then_the_neuron_file_then_the_demo_set(task_utils, tmp_path):
    from langneuron_eval.core.fingerprint import ModelFingerprint
    from langneuron_eval.core.neurons import NeuronFile

    neurons = tmp_path / "neurons.json"
    NeuronFile(ModelFingerprint("llama", 2, 48, "act_out"), "handmade",
               {"vi": [(0, 1)], "th": [(0, 2)], "hau": [(1, 3)]}).save(neurons, force=True)
    assert task_utils.breakdown_languages("id", langs="vie+zh-Hans", neurons=str(neurons)) == ["id", "vi", "zh"]
    from_file = task_utils.breakdown_languages("id", neurons=str(neurons))
    assert from_file[0] == "id" and sorted(from_file[1:]) == ["th", "vi"]  # Hausa has no LID label: dropped
    assert task_utils.breakdown_languages("de") == list(LANGS[1:2]) + [x for x in LANGS if x != "de"]
    docs = task_utils.load_steer(corpus_lang="sw", langs=["en", "sw", "ar"])["test"]
    assert set(docs["langs"]) == {"sw+en+ar"}
    scores = task_utils.process_steer(docs[0], ["Habari ya asubuhi rafiki yangu, karibu nyumbani."])
    shares = {k: v for k, v in scores.items() if k.startswith("lang_rate")}
    assert shares == {"lang_rate": 1.0, "lang_rate_en": 0.0, "lang_rate_ar": 0.0, "lang_rate_other": 0.0}
    assert set(scores) - set(shares) == set(text_quality.HIGHER_IS_BETTER)
    with pytest.raises(LangNeuronError, match="unknown language code 'xx'"):
        task_utils.load_steer(corpus_lang="vi", langs="en+xx")


def test_steering_halves_split_the_neutral_prompts(task_utils):
    dev = task_utils.load_steer(corpus_lang="zh", corpus_n=20, corpus_prompted=True, corpus_half="dev")["test"]
    test = task_utils.load_steer(corpus_lang="zh", corpus_n=20, corpus_prompted=True, corpus_half="test")["test"]
    assert set(dev["prompt"]) | set(test["prompt"]) == set(task_utils.NEUTRAL_PROMPTS)
    assert not set(dev["prompt"]) & set(test["prompt"]) and len(dev) == len(test) == 20
    assert set(task_utils.load_steer(corpus_lang="zh", corpus_half="test")["test"]["prompt"]) == {""}
    with pytest.raises(LangNeuronError, match="corpus_half must be one of dev, test"):
        task_utils.load_steer(corpus_lang="zh", corpus_half="train")


def test_steer_task_declares_exactly_the_breakdown_metrics():
    tm = evaluation.make_task_manager(metadata={"langs": "en+th"})
    task = tm.load(["lang_steer_prompted_vi"])["tasks"]["lang_steer_prompted_vi"]
    assert task.higher_is_better() == {"lang_rate": True, "lang_rate_other": False, "lang_rate_en": False,
                                       "lang_rate_th": False, **text_quality.HIGHER_IS_BETTER}
    assert set(task.aggregation()) == set(task.higher_is_better())


def test_ppl_reads_the_users_corpus_and_refuses_a_language_without_text(task_utils, tmp_path):
    (tmp_path / "vi.txt").write_text("Xin chào các bạn.\n\nHôm nay trời đẹp quá.\n", encoding="utf-8")
    docs = task_utils.load_ppl(corpus_lang="vi", corpus=str(tmp_path))["test"]
    assert docs["text"] == ["Xin chào các bạn.", "Hôm nay trời đẹp quá."]
    pairs = task_utils.load_ppl(corpus_lang="de", corpus=f"vi={tmp_path / 'vi.txt'},de={tmp_path / 'vi.txt'}")
    assert len(pairs["test"]) == 2  # the user's text replaces the shipped German text
    with pytest.raises(LangNeuronError, match=r"lang_ppl_vi: no text ships for vi; pass .*--metadata"):
        task_utils.load_ppl(corpus_lang="vi")
    with pytest.raises(LangNeuronError, match=r"lang_ppl_th: the corpus given in metadata has no text for th \(it has vi\)"):
        task_utils.load_ppl(corpus_lang="th", corpus=str(tmp_path))
    (tmp_path / "vi.txt").rename(tmp_path / "vie.txt")  # any alias names the file
    assert task_utils.load_ppl(corpus_lang="vi", corpus=str(tmp_path))["test"]["text"][0] == "Xin chào các bạn."


def test_a_new_perplexity_language_is_one_yaml_file(tmp_path):
    """A language outside the table: a YAML including the shipped template by its path, no code."""
    (tmp_path / "ace.txt").write_text("Lôn jak u keude.\nGata pajan jak?\n", encoding="utf-8")
    user = tmp_path / "tasks"
    user.mkdir()
    (user / "lang_ppl_ace.yaml").write_text(
        f"include: {tasks_dir() / '_lang_ppl_yaml'}\ntask: lang_ppl_ace\ndataset_kwargs:\n  corpus_lang: ace\n")
    tm = evaluation.make_task_manager(include_path=user, metadata={"corpus": str(tmp_path)})
    task = tm.load(["lang_ppl_ace"])["tasks"]["lang_ppl_ace"]
    assert [d["text"] for d in task.test_docs()] == ["Lôn jak u keude.", "Gata pajan jak?"]


@pytest.mark.slow
def test_plain_lm_eval_steers_and_scores_a_language_outside_the_demo_set(tmp_path, tiny_model_dir):
    """``lm_eval --tasks lang_steer_vi,lang_ppl_vi --metadata '{"corpus": ...}'`` with the user's Vietnamese text."""
    from langneuron_eval.core.fingerprint import ModelFingerprint
    from langneuron_eval.core.neurons import NeuronFile

    text = tmp_path / "vi.txt"
    text.write_text("Xin chào các bạn.\nHôm nay trời đẹp quá.\nTôi thích học tiếng Việt.\n", encoding="utf-8")
    neurons = tmp_path / "neurons.json"
    NeuronFile(ModelFingerprint("llama", 2, 48, "act_out"), "handmade",
               {"vi": [(0, u) for u in range(48)], "th": [(1, 2)], "en": [(1, 3)]},
               values={"vi": {"mean": [0.5] * 48}}).save(neurons, force=True)
    out = tmp_path / "out"
    base = ["--model", "langneuron", "--limit", "2", "--gen_kwargs", "max_gen_toks=4",
            "--model_args", f"pretrained={tiny_model_dir},neurons={neurons},mode=activate,lang=vi"]
    runs = [[*base, "--tasks", "lang_steer_vi,lang_ppl_vi", "--metadata", json.dumps({"corpus": f"vi={text}"}),
             "--output_path", str(out)],
            [*base, "--tasks", "lang_ppl_vi"]]
    pkg_parent = Path(langneuron_eval.__file__).resolve().parents[1]
    script = (f"import site, sys\nsite.addsitedir({str(pkg_parent)!r})\nfrom lm_eval.__main__ import cli_evaluate\n"
              + "".join(f"sys.argv = ['lm_eval', *{args!r}]\ncli_evaluate()\nprint('@@done', flush=True)\n"
                        for args in runs))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join([str(pkg_parent), *filter(None, [os.environ.get("PYTHONPATH")])])}
    p = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=900)
    assert p.stdout.count("@@done") == 1, p.stderr[-3000:]
    doc = json.loads(next(out.rglob("results_*.json")).read_text())
    steer = doc["results"]["lang_steer_vi"]
    shares = ["lang_rate", "lang_rate_th", "lang_rate_en", "lang_rate_other"]  # the neuron file's languages
    assert sum(steer[f"{m},none"] for m in shares) == pytest.approx(1.0)
    assert doc["higher_is_better"]["lang_steer_vi"] == {"lang_rate": True, "lang_rate_other": False,
                                                        "lang_rate_th": False, "lang_rate_en": False,
                                                        **text_quality.HIGHER_IS_BETTER}
    # plain lm_eval reports every text-quality metric of the generations with its stderr
    assert all(f"{m},none" in steer and f"{m}_stderr,none" in steer for m in text_quality.HIGHER_IS_BETTER)
    assert doc["results"]["lang_ppl_vi"]["byte_perplexity,none"] > 1
    assert doc["n-samples"]["lang_ppl_vi"]["original"] == 3  # the three lines of the user's file
    last = [line for line in p.stderr.splitlines() if line.strip()][-1]
    assert last.startswith("lm_eval: error: lang_ppl_vi: no text ships for vi; pass your held-out text"), last
