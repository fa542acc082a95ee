"""The ``langneuron`` lm-eval model on the tiny offline Llama: parity with ``hf``, hooks, errors, provenance."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import torch
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM

from langneuron_eval.core.fingerprint import ModelFingerprint
from langneuron_eval.core.interventions import Intervention, LanguageEdit
from langneuron_eval.core.neurons import NeuronFile
from langneuron_eval.errors import LangNeuronError
from langneuron_eval.lmeval import evaluation
from langneuron_eval.lmeval.model import LangNeuronLM
from langneuron_eval.lmeval.results import metric as results_metric
from langneuron_eval.testing import TINY_CORPUS

LAYERS, UNITS = 2, 48  # TINY_CONFIGS["llama"]


def _neuron_file(path, layers=LAYERS, units=UNITS, model_type="llama"):
    """zh owns every unit of every layer (so deactivating it must change the model), de and en a few."""
    nf = NeuronFile(
        ModelFingerprint(model_type, layers, units, "act_out"), "handmade",
        {"zh": [(layer, u) for layer in range(layers) for u in range(units)],
         "de": [(0, 3), (1, 5)], "en": [(1, 7)]},
        values={"zh": {"mean": [0.5] * (layers * units)}, "de": {"mean": [0.1, 0.2]}})
    nf.save(path, force=True)
    return path


@pytest.fixture(scope="module")
def neurons(tmp_path_factory):
    return _neuron_file(tmp_path_factory.mktemp("neurons") / "neurons.json")


@pytest.fixture(scope="module")
def task_manager():
    return evaluation.make_task_manager()


@pytest.fixture(scope="module")
def lm(tiny_model_dir, neurons):
    return LangNeuronLM(pretrained=str(tiny_model_dir), neurons=str(neurons), device="cpu", dtype="float32",
                        batch_size=8)


def _ppl_samples(results, task):
    return [s["filtered_resps"] for s in results["samples"][task]]


def _numbers(result: dict) -> dict:
    """Numeric metrics, perplexities as logs (exp turns a 1e-8 difference of a large log into 1e-5)."""
    return {k: math.log(v) if "perplexity" in k else v for k, v in result.items() if isinstance(v, float)}


def test_mode_none_agrees_with_hf_per_document(tiny_model_dir, neurons, task_manager):
    """lang_ppl tasks run through the engine (issue #22): hf's numbers to 1e-6 relative, per document."""
    tasks = ["lang_ppl_zh", "lang_ppl_en"]
    common = {"pretrained": str(tiny_model_dir), "dtype": "float32"}
    hf = evaluation.evaluate("hf", tasks, model_args=common, limit=4, batch_size=4, task_manager=task_manager,
                             log_samples=True)
    ln = evaluation.evaluate("langneuron", tasks, model_args={**common, "neurons": str(neurons), "mode": "none"},
                             limit=4, batch_size=4, task_manager=task_manager, log_samples=True)
    for task in tasks:
        ref, got = _ppl_samples(hf, task), _ppl_samples(ln, task)
        assert len(ref) == len(got) == 4
        for a, b in zip(ref, got):
            assert float(np.ravel(b)[0]) == pytest.approx(float(np.ravel(a)[0]), rel=1e-6)
        assert _numbers(ln["results"][task]) == pytest.approx(_numbers(hf["results"][task]), rel=1e-6)
    assert ln["config"]["langneuron"]["mode"] == "none"


def test_engine_under_an_intervention_agrees_with_the_hf_path(lm):
    """loglikelihood_rolling (engine, intervention entered per batch) against hf's path through _model_call."""
    texts = [t for v in TINY_CORPUS.values() for t in v]
    reqs = [Instance("loglikelihood_rolling", {}, (t,), i) for i, t in enumerate(texts)]
    lm.set_intervention(mode="deactivate", lang="zh")
    try:
        got = lm.loglikelihood_rolling(reqs)
        ref = HFLM.loglikelihood_rolling(lm, reqs, disable_tqdm=True)
    finally:
        lm.set_intervention(mode="none")
    assert got == pytest.approx(ref, rel=1e-6)
    plain = lm.loglikelihood_rolling(reqs)
    assert max(abs(a / b - 1) for a, b in zip(got, plain)) > 1e-4  # the intervention changed the scores


def test_all_conditions_in_one_call_equal_one_pass_per_condition(lm):
    """score_conditions (rows of a batch under different interventions) = one intervention per pass."""
    texts = [t for v in TINY_CORPUS.values() for t in v]
    edits = {"none": (), "zh": (LanguageEdit("deactivate", "zh"),), "de": (LanguageEdit("deactivate", "de"),),
             "act": (LanguageEdit("activate", "de", "mean", 3.0), LanguageEdit("scale", "en", strength=0.5))}
    conds = [c for c in edits for _ in texts]
    got = lm.score_conditions(texts * len(edits), conds, edits)
    reqs = [Instance("loglikelihood_rolling", {}, (t,), i) for i, t in enumerate(texts)]
    per_pass = {"none": dict(mode="none"), "zh": dict(mode="deactivate", lang="zh"),
                "de": dict(mode="deactivate", lang="de")}
    for k, cond in enumerate(edits):
        if cond == "act":  # activate de then scale en, as one Intervention
            lm.intervention = Intervention(lm.model, lm.neuron_file, edits["act"], sites=lm.intervention.sites)
        else:
            lm.set_intervention(**per_pass[cond])
        ref = lm.loglikelihood_rolling(reqs)
        assert [s.loglikelihood for s in got[k * len(texts):(k + 1) * len(texts)]] == pytest.approx(ref, rel=1e-6)
    lm.set_intervention(mode="none")
    assert len({round(s.loglikelihood, 3) for s in got}) > len(texts)  # the conditions differ


def test_deactivation_changes_the_language_ppl_and_restores_exactly(lm, task_manager):
    def ppl():
        res = evaluation.evaluate(lm, ["lang_ppl_zh"], limit=4, task_manager=task_manager)
        return results_metric(res, "lang_ppl_zh", "byte_perplexity")

    lm.set_intervention(mode="none")
    base = ppl()
    lm.set_intervention(mode="deactivate", lang="zh")
    deactivated = ppl()
    assert abs(deactivated / base - 1) > 1e-5  # every FFN unit zeroed: the model must change
    lm.set_intervention(mode="deactivate", lang="zh", positions="generated")
    assert ppl() == base  # positions=generated edits nothing outside generation
    lm.set_intervention(mode="none")
    assert ppl() == base  # hooks removed: bit-identical again


def _generate(lm, n_new, prompt="Hello"):
    ids = torch.tensor([lm.tok_encode(prompt)])
    return lm._model_generate(ids, max_length=ids.shape[1] + n_new, stop=[], do_sample=False,
                              min_new_tokens=n_new), ids.shape[1]


@pytest.mark.parametrize("positions", ["all", "generated"])
def test_hooks_fire_at_every_decoding_step(lm, positions):
    lm.set_intervention(mode="activate", lang="de", value=2.0, positions=positions)
    iv = lm.intervention
    counts = []
    for n in (3, 7):
        before = iv.edit_calls
        out, prompt_len = _generate(lm, n)
        assert out.shape[1] == prompt_len + n
        counts.append(iv.edit_calls - before)
    # one edit per layer holding neurons (de has units in both layers) per forward pass; n tokens = n passes
    assert counts == [3 * LAYERS, 7 * LAYERS]
    lm.set_intervention(mode="none")


def _prefill_down_inputs(lm, n_new=2):
    """Inputs of layer 0's down projection (= act_out * up) in the prefill pass of a greedy generation."""
    seen = []
    handle = lm.model.model.layers[0].mlp.down_proj.register_forward_pre_hook(
        lambda _m, args: seen.append(args[0].detach().clone()))
    try:
        _, prompt_len = _generate(lm, n_new)
    finally:
        handle.remove()
    return seen[0], prompt_len  # [1, prompt_len, d_mlp]


def test_positions_generated_leaves_the_prompt_untouched(lm):
    lm.set_intervention(mode="none")
    clean, p = _prefill_down_inputs(lm)
    lm.set_intervention(mode="activate", lang="zh", value=3.0, positions="generated")
    gen, _ = _prefill_down_inputs(lm)
    lm.set_intervention(mode="activate", lang="zh", value=3.0, positions="all")
    every, _ = _prefill_down_inputs(lm)
    lm.set_intervention(mode="none")
    assert torch.equal(gen[:, : p - 1], clean[:, : p - 1])  # prompt positions: untouched
    assert not torch.equal(gen[:, p - 1], clean[:, p - 1])  # the position that predicts the first new token
    assert not torch.equal(every[:, : p - 1], clean[:, : p - 1])


def test_results_config_records_the_intervention(tiny_model_dir, neurons, task_manager):
    args = {"pretrained": str(tiny_model_dir), "neurons": str(neurons), "mode": "activate", "lang": "zh",
            "value": 2.0, "strength": 1.5, "positions": "generated", "deactivate": "others"}
    res = evaluation.evaluate("langneuron", ["lang_steer_zh"], model_args=args, limit=2, batch_size=2,
                              task_manager=task_manager, gen_kwargs={"max_gen_toks": 2})
    info = res["config"]["langneuron"]
    assert info["mode"] == "activate" and info["lang"] == ["zh"]
    assert info["value"] == 2.0 and info["strength"] == 1.5 and info["positions"] == "generated"
    assert sorted(info["deactivate"]) == ["de", "en"] and info["deactivate_arg"] == "others"
    assert info["neurons"] == str(neurons.resolve())
    assert info["neurons_sha256"] == hashlib.sha256(neurons.read_bytes()).hexdigest()
    assert info["neurons_content_sha256"] == NeuronFile.load(neurons).sha256()
    assert info["detector"] == "handmade"
    assert "lang_rate,none" in res["results"]["lang_steer_zh"]


def test_environment_report_is_made_once_per_process(lm, task_manager, monkeypatch):
    """lm-eval's environment report (torch's collect_env, subprocesses) is reused, not rebuilt per evaluation."""
    import lm_eval.evaluator as ev

    calls = []

    def report(storage):
        calls.append(1)
        storage.update({"pretty_env_info": "report", "transformers_version": "x"})

    monkeypatch.setattr(ev, "add_env_info", report)
    monkeypatch.setattr(evaluation, "_ENV_REPORTS", {})
    runs = [evaluation.evaluate(lm, ["lang_steer_zh"], limit=1, task_manager=task_manager,
                                gen_kwargs={"max_gen_toks": 1}) for _ in range(2)]
    assert len(calls) == 1
    assert [r["pretty_env_info"] for r in runs] == ["report", "report"]
    off = evaluation.evaluate(lm, ["lang_steer_zh"], limit=1, task_manager=task_manager,
                              gen_kwargs={"max_gen_toks": 1}, environment=False)
    assert "pretty_env_info" not in off and len(calls) == 1


def test_lm_eval_parses_none_to_None():
    # `--model_args mode=none` reaches the model as None through lm-eval's simple_parse_args_string
    from langneuron_eval.core.interventions import InterventionSpec

    assert InterventionSpec.from_args(mode=None).mode == "none"
    spec = InterventionSpec.from_args(mode="activate", lang="zh+ja", value="p90", strength=4)
    assert spec.langs == ("zh", "ja") and spec.value == "p90" and spec.strength == 4.0


def test_shape_mismatch_is_one_line_naming_both_shapes(tiny_model_dir, tmp_path):
    wrong = _neuron_file(tmp_path / "wrong.json", layers=3, units=64)
    with pytest.raises(LangNeuronError) as err:
        LangNeuronLM(pretrained=str(tiny_model_dir), neurons=str(wrong), device="cpu", dtype="float32")
    msg = str(err.value)
    assert "\n" not in msg
    assert "3 layers x 64 units" in msg and "2 layers x 48 units" in msg


@pytest.mark.parametrize("arg", ["compact_generation", "suppress_non_text"])
def test_bad_boolean_model_arg_is_one_line_before_the_model_loads(tiny_model_dir, monkeypatch, arg):
    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(HFLM, "__init__", no_model)
    with pytest.raises(LangNeuronError, match=f"^{arg} must be true or false, got 'maybe'$"):
        LangNeuronLM(pretrained=str(tiny_model_dir), device="cpu", **{arg: "maybe"})


def test_empty_prompt_starts_from_bos(tiny_model_dir):
    # A tokenizer that adds no BOS (here: add_bos_token=False) would give hf an empty input tensor.
    lm = LangNeuronLM(pretrained=str(tiny_model_dir), device="cpu", dtype="float32", add_bos_token=False)
    ids, mask = lm.tok_batch_encode(["", ""])
    assert ids.tolist() == [[lm.prefix_token_id]] * 2 and mask.tolist() == [[1], [1]]
    assert lm.intervention is None  # no neurons: plain hf, no hooks at all
