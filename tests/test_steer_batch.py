"""Batched steering: every target language's generations in one pass, each row under its own task's intervention.

The reference is the unbatched route: one lm-eval pass per task with the model-wide intervention. Greedy outputs
must agree row by row; sampled ones are reproducible per seed. Paired gains are checked on hand-built outcomes.
"""

from __future__ import annotations

import json

import pytest

from langneuron_eval.core.fingerprint import ModelFingerprint
from langneuron_eval.core.interventions import InterventionSpec
from langneuron_eval.core.neurons import NeuronFile
from langneuron_eval.errors import LangNeuronError
from langneuron_eval.evidence import paired_rate_gain, rate_interval
from langneuron_eval.lmeval import evaluation
from langneuron_eval.lmeval.model import LangNeuronLM
from langneuron_eval.pipelines.measurements import OUTCOMES_KEY, EvalConfig, _rate_figures, steering_gains

LANGS = ("en", "zh", "de")
GREEDY = {"max_gen_toks": 6, "do_sample": False}


@pytest.fixture(scope="module")
def neurons(tmp_path_factory):
    """Disjoint units per language of the tiny Llama, activated far from their usual values."""
    path = tmp_path_factory.mktemp("steer") / "neurons.json"
    units = {"en": [(0, u) for u in range(0, 16)], "zh": [(1, u) for u in range(16, 32)],
             "de": [(0, u) for u in range(32, 48)] + [(1, u) for u in range(32, 48)]}
    NeuronFile(ModelFingerprint("llama", 2, 48, "act_out"), "handmade", units,
               values={lang: {"mean": [4.0] * len(us)} for lang, us in units.items()}).save(path)
    return path


def _lm(model_dir, neurons, **kwargs):
    # batch 5 over 3 tasks x 4 prompts: every batch mixes tasks (and prompt lengths, for the prompted family)
    return LangNeuronLM(pretrained=str(model_dir), neurons=str(neurons), device="cpu", dtype="float32",
                        batch_size=5, **kwargs)


@pytest.fixture(scope="module")
def lm(tiny_model_dir, neurons):
    return _lm(tiny_model_dir, neurons)


@pytest.fixture(scope="module")
def tm():
    return evaluation.make_task_manager()


def _spec(lang, positions="all"):
    return InterventionSpec.from_args("activate", lang, "mean", 3.0, positions, "others")


def _texts(res, task):
    return [s["filtered_resps"][0] for s in sorted(res["samples"][task], key=lambda s: s["doc_id"])]


def _run(lm, tm, tasks, seeds=evaluation.DEFAULT_SEEDS, gen=GREEDY):
    return evaluation.evaluate(lm, tasks, limit=4, task_manager=tm, log_samples=True, gen_kwargs=gen, seeds=seeds,
                               bootstrap_iters=0, environment=False)


@pytest.mark.parametrize("positions", ["all", "generated"])
def test_batched_greedy_generations_equal_one_pass_per_task(lm, tm, positions):
    # the prompted family: neutral prompts of different lengths, so lm-eval's length sort interleaves the tasks
    tasks = {f"lang_steer_prompted_{lang}": lang for lang in LANGS}
    lm.set_intervention(mode="none")
    plain = _run(lm, tm, list(tasks))
    one = {}
    for task, lang in tasks.items():
        lm.set_intervention(mode="activate", lang=lang, value="mean", strength=3.0, positions=positions,
                            deactivate="others")
        one[task] = _texts(_run(lm, tm, [task]), task)
    lm.set_intervention(mode="none")
    with lm.task_interventions({task: _spec(lang, positions) for task, lang in tasks.items()}):
        batched = _run(lm, tm, list(tasks))
    assert {task: _texts(batched, task) for task in tasks} == one
    # the check has teeth: each task's steering changes its outputs, and differently from the other tasks'
    for task in tasks:
        assert one[task] != _texts(plain, task)
    assert len({tuple(texts) for texts in one.values()}) == len(tasks)
    per_task = batched["config"]["langneuron"]["per_task"]
    assert {t: info["lang"] for t, info in per_task.items()} == {t: [lang] for t, lang in tasks.items()}


def test_rows_leaving_the_batch_keep_their_own_task_intervention(lm, tm, tiny_model_dir, neurons):
    """Stop strings end rows at different steps; as the batch shrinks each row keeps its task's edits.

    The reference: one pass per task under the model-wide intervention, in ``generate``'s own loop.
    """
    tasks = {f"lang_steer_prompted_{lang}": lang for lang in LANGS}
    gen = {"max_gen_toks": 16, "do_sample": False, "until": list("aeiou")}
    ref = _lm(tiny_model_dir, neurons, compact_generation=False)
    one = {}
    for task, lang in tasks.items():
        ref.set_intervention(mode="activate", lang=lang, value="mean", strength=3.0, deactivate="others")
        one[task] = _texts(_run(ref, tm, [task], gen=gen), task)
    before = dict(lm.decoding_stats)
    with lm.task_interventions({task: _spec(lang) for task, lang in tasks.items()}):
        batched = _run(lm, tm, list(tasks), gen=gen)
    assert {task: _texts(batched, task) for task in tasks} == one
    assert len({len(t) for texts in one.values() for t in texts}) > 2  # rows did end at different steps
    row_steps = lm.decoding_stats["row_steps"] - before["row_steps"]
    assert 0 < row_steps < lm.decoding_stats["row_steps_unshrunk"] - before["row_steps_unshrunk"]


def test_sampled_batched_generations_repeat_per_seed(lm, tm):
    tasks = [f"lang_steer_{lang}" for lang in LANGS]
    sample = {"max_gen_toks": 6, "do_sample": True, "temperature": 1.0}
    runs = {}
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        with lm.task_interventions({t: _spec(lang) for t, lang in zip(tasks, LANGS)}):
            res = _run(lm, tm, tasks, evaluation.seeds_of(seed), sample)
        runs[name] = {t: _texts(res, t) for t in tasks}
    assert runs["a"] == runs["b"]
    assert runs["a"] != runs["c"]


def test_task_interventions_refuse_what_they_cannot_do(lm):
    lm.set_intervention(mode="activate", lang="en", value=1.0)
    with pytest.raises(LangNeuronError, match="mode=none"):
        with lm.task_interventions({"lang_steer_zh": _spec("zh")}):
            pass
    lm.set_intervention(mode="none")
    with pytest.raises(LangNeuronError, match="share positions"):
        with lm.task_interventions({"lang_steer_zh": _spec("zh"), "lang_steer_en": _spec("en", "generated")}):
            pass
    with pytest.raises(LangNeuronError, match="not in neuron file"):
        with lm.task_interventions({"lang_steer_fr": _spec("fr")}):
            pass
    from lm_eval.api.instance import Instance

    req = Instance("loglikelihood_rolling", {}, ("some text",), 0, metadata=("lang_ppl_zh", 0, 1))
    with lm.task_interventions({"lang_ppl_zh": _spec("zh")}):
        with pytest.raises(LangNeuronError, match="generation only"):
            lm.loglikelihood_rolling([req])
    assert lm._plan is None  # left cleanly after the error
    assert evaluation.seeds_of(None) == evaluation.DEFAULT_SEEDS and evaluation.seeds_of(7) == (7, 7, 7, 7)
    with pytest.raises(LangNeuronError, match="seed"):
        evaluation.seeds_of("7")


def test_steering_gains_batched_equals_one_pass_per_language(lm, tm, tmp_path):
    cfg = EvalConfig(langs=LANGS, steer_limit=3, steer_strength=3.0)
    own = {"zh": EvalConfig(steer_strength=1.5, steer_positions="generated")}  # a setting of zh's own
    out, runs = {}, {}
    for batched in (True, False):
        labels = []
        rates, base = steering_gains(lm, list(LANGS), cfg, tm, tmp_path / str(batched), "t", batched=batched,
                                     seed=11, gen_kwargs=GREEDY, settings=own, on_run=labels.append)
        out[batched], runs[batched] = rates, len(labels)
    assert runs == {True: 3, False: 4}  # unsteered + one pass per positions value, or + one pass per language
    for lang in LANGS:
        b, u = out[True][lang], out[False][lang]
        assert b["outcomes"] == u["outcomes"] and b["gain"] == u["gain"] and b["ci_low"] == u["ci_low"]
        assert b["paired"] and b["n"] == 3 and b["outcomes"]["doc_id"] == [0, 1, 2]
        steered = b["outcomes"]["steered"]["lang_rate"]
        assert b["steered"] == pytest.approx(sum(steered) / 3)  # the outcomes are lm-eval's own per-sample scores
        wilson = rate_interval(int(sum(steered)), 3)
        assert b["steered_ci"] == pytest.approx([wilson.low, wilson.high])
        assert b["on_target_fluent"]["n"] == 3
        doc = json.loads((tmp_path / "True" / f"base-t-activate-{lang}" / "results_demo.json").read_text())
        assert list(doc["results"]) == [f"lang_steer_{lang}"] and doc["config"]["langneuron"]["lang"] == [lang]
        assert doc["config"]["langneuron"]["deactivate_arg"] == "others" and doc["config"]["torch_seed"] == 11
        assert doc["config"]["langneuron"]["strength"] == (1.5 if lang == "zh" else 3.0)
        assert doc["config"]["langneuron"]["positions"] == ("generated" if lang == "zh" else "all")
        assert "samples" not in doc and OUTCOMES_KEY not in doc
    # a cached unsteered result without outcomes still gives an interval, unpaired
    cached = {k: v for k, v in base.items() if k != OUTCOMES_KEY}
    rates, _ = steering_gains(lm, ["en", "zh"], cfg, tm, tmp_path / "cached", "t", base_res=cached, seed=11,
                              gen_kwargs=GREEDY)
    assert rates["en"]["paired"] is False and rates["en"]["n"] == 3 and rates["en"]["outcomes"] is None


def _outcome_res(task, docs, lang_rate, fluent):
    mean = sum(lang_rate) / len(lang_rate)
    return {"results": {task: {"lang_rate,none": mean, "lang_rate_stderr,none": 0.1}},
            OUTCOMES_KEY: {task: {"doc_id": docs, "lang_rate": lang_rate, "on_target_fluent": fluent}}}


def test_paired_gain_pairs_generations_by_document():
    task = "lang_steer_zh"
    # unsteered outcomes listed in another order than the steered ones, and one document only in the unsteered run
    base = _outcome_res(task, [3, 0, 2, 1, 4], [1.0, 0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0, 1.0])
    steered = _outcome_res(task, [0, 1, 2, 3], [0.0, 1.0, 1.0, 1.0], [1.0, 0.0, 0.0, 1.0])
    r = _rate_figures(base, steered, task, 0.95)
    # by document: before (0, 0, 0, 1) -> after (0, 1, 1, 1)
    expected = paired_rate_gain([0, 0, 0, 1], [0, 1, 1, 1], 0.95)
    assert r["n"] == 4 and r["outcomes"]["doc_id"] == [0, 1, 2, 3]
    assert r["outcomes"]["unsteered"]["lang_rate"] == [0.0, 0.0, 0.0, 1.0]
    assert (r["ci_low"], r["ci_high"], r["p_value"]) == (expected.interval.low, expected.interval.high,
                                                         expected.p_value)
    assert r["unsteered_ci"] == [expected.before.low, expected.before.high]
    assert r["on_target_fluent"]["gain"] == pytest.approx(0.5)  # (0,0,0,0) -> (1,0,0,1)
    misaligned = paired_rate_gain([1, 0, 0, 0], [0, 1, 1, 1], 0.95)  # pairing by list position would give this
    assert misaligned.interval.low < expected.interval.low - 0.3
