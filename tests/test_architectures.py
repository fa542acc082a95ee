"""Every causal-LM type of the installed transformers either works end to end or is refused with one line.

The slow part builds a tiny model of each of the ~200 types (``langneuron_eval.pipelines.support_table``), and
for each type that works recomputes the positive counts with plain forward hooks written here, one
sentence at a time, and checks that leaving an intervention restores the logits bit for bit. The
committed docs/architectures.md must be what this transformers version produces.
"""

from pathlib import Path

import pytest
import torch
import transformers

from langneuron_eval.core.interventions import Intervention, LanguageEdit
from langneuron_eval.pipelines import support_table as st

DOCS = Path(__file__).parents[1] / "docs" / "architectures.md"
# Dense decoder-only families users ask for; each must work (a regression in discovery shows up here by name).
MUST_WORK = ["llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "gemma3", "gpt2", "bloom",
             "gpt_neox", "xglm", "olmo", "olmo2", "olmo3", "phi", "phi3", "granite", "cohere", "cohere2",
             "smollm3", "exaone4", "apertus", "stablelm", "starcoder2", "falcon", "gptj", "opt", "mpt"]


def plain_hook_counts(pipe: st.Pipeline) -> tuple[torch.Tensor, torch.Tensor]:
    """Positive counts [K, L, N] and token counts [K], one sentence at a time, with raw torch hooks."""
    modules = [pipe.model.get_submodule(p) for p in pipe.sites.paths]
    K, L, N = len(pipe.corpus), len(modules), pipe.sites.intermediate_size
    positive, n_tokens = torch.zeros(K, L, N, dtype=torch.int64), torch.zeros(K, dtype=torch.int64)
    for k, texts in enumerate(pipe.corpus.values()):
        for text in texts:
            enc = pipe.tokenizer(text, return_tensors="pt", return_special_tokens_mask=True)
            keep = enc.pop("special_tokens_mask")[0] == 0  # [pos]: the recorder counts text tokens only
            seen = {}
            if pipe.sites.site == "down_in":  # the down projection's input
                hooks = [m.register_forward_pre_hook(lambda _m, args, i=i, seen=seen: seen.__setitem__(i, args[0]))
                         for i, m in enumerate(modules)]
            else:  # the activation module's output
                hooks = [m.register_forward_hook(lambda _m, _a, out, i=i, seen=seen: seen.__setitem__(i, out))
                         for i, m in enumerate(modules)]
            try:
                with torch.no_grad():
                    pipe.model(**enc)
            finally:
                for h in hooks:
                    h.remove()
            n_tokens[k] += int(keep.sum())
            for i in range(L):
                rows = seen[i].reshape(-1, N)  # [pos, N] (OPT hands its MLP [batch*pos, N])
                positive[k, i] += (rows[keep] > 0).sum(0)  # [counted pos, N] -> [N]
    return positive, n_tokens


def restores_logits(pipe: st.Pipeline) -> bool:
    enc = pipe.tokenizer(["Guten Morgen", "早上好"], return_tensors="pt", padding=True)
    edits = [LanguageEdit("deactivate", "de"), LanguageEdit("activate", "zh", 2.0)]
    with torch.no_grad():
        before = pipe.model(**enc).logits
        with Intervention(pipe.model, pipe.neurons, edits):
            pipe.model(**enc)
        return torch.equal(pipe.model(**enc).logits, before)


def run_checks(types=None):
    """(checks, {type: problem} for types whose counts or restore disagree, types inspected)."""
    problems, inspected = {}, []

    def inspect(pipe: st.Pipeline) -> None:
        inspected.append(pipe.model_type)
        if pipe.sites.moe is not None:  # expert units: recounted by hand from the weights in tests/test_moe.py
            if not restores_logits(pipe):
                problems[pipe.model_type] = "logits not restored"
            return
        positive, n_tokens = plain_hook_counts(pipe)
        if not torch.equal(pipe.stats.n_tokens, n_tokens):
            problems[pipe.model_type] = "token counts differ"
        elif not torch.equal(pipe.stats.positive_counts, positive):
            problems[pipe.model_type] = "positive counts differ"
        elif not restores_logits(pipe):
            problems[pipe.model_type] = "logits not restored"

    return st.check_all(types, inspect), problems, inspected


def test_a_few_layouts_quickly():
    if "lfm2" not in st.causal_lm_types():
        pytest.skip(f"transformers {transformers.__version__} has no lfm2 (a function-call activation)")
    checks, problems, inspected = run_checks(["llama", "gpt2", "mixtral", "jetmoe", "lfm2"])
    by = {c.model_type: c for c in checks}
    assert problems == {}
    assert sorted(inspected) == ["gpt2", "lfm2", "llama", "mixtral"]
    assert by["llama"].status == st.WORKS and by["llama"].sites["act_out"] == "model.layers.{layer}.mlp.act_fn"
    assert by["lfm2"].status == st.WORKS and by["lfm2"].sites["act_out"].startswith("refused")  # down_in only
    assert by["mixtral"].status == st.WORKS and by["mixtral"].moe
    assert by["mixtral"].sites["act_out"].startswith("model.layers.{layer}.mlp.experts (4 x ")
    assert by["jetmoe"].status == st.REFUSED and "fused experts" in by["jetmoe"].reason  # experts not observable
    text = st.render_markdown(checks)
    assert "**works: 4**" in text and "| mixtral | MixtralForCausalLM |" in text and "| MoE |" in text


@pytest.fixture(scope="module")
def all_types():
    return run_checks()


@pytest.mark.slow
def test_no_type_crashes(all_types):
    checks, _, _ = all_types
    assert [(c.model_type, c.reason) for c in checks if c.status == st.FAILS] == []
    assert len(checks) == len(st.causal_lm_types())


@pytest.mark.slow
def test_every_working_type_counts_like_plain_hooks_and_restores(all_types):
    checks, problems, inspected = all_types
    assert problems == {}
    assert sorted(inspected) == sorted(c.model_type for c in checks if c.status == st.WORKS)


@pytest.mark.slow
def test_dense_families_work_and_refusals_are_one_line(all_types):
    checks, _, _ = all_types
    by = {c.model_type: c for c in checks}
    present = [t for t in MUST_WORK if t in by]  # an older transformers may lack the newest families
    assert {t: by[t].status for t in present} == {t: st.WORKS for t in present}
    for c in checks:
        if c.status in (st.REFUSED, st.NOT_TESTABLE):
            assert c.reason and "\n" not in c.reason


def committed_outcomes(markdown: str) -> dict[str, str]:
    """model type -> its section ("Works", "Refused", ...) and, for working types, the whole row (the sites)."""
    section, out = "", {}
    for line in markdown.splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        elif line.startswith("| ") and not line.startswith("| model type"):
            model_type = line.split("|")[1].strip()
            out[model_type] = f"{section}: {line}" if section == "Works" else section
    return out


@pytest.mark.slow
def test_committed_table_is_what_this_transformers_produces(all_types):
    """Same transformers version: the table byte for byte. Another version: every model type both versions
    know keeps its outcome (and, when it works, its modules); types only one version has are not compared."""
    checks, _, _ = all_types
    committed = DOCS.read_text(encoding="utf-8")
    fresh = st.render_markdown(checks)
    regenerate = "python -m langneuron_eval.pipelines.support_table --out docs/architectures.md"
    if f"transformers {transformers.__version__}:" in committed:
        assert fresh == committed, f"docs/architectures.md is stale: {regenerate}"
        return
    old, new = committed_outcomes(committed), committed_outcomes(fresh)
    shared = sorted(set(old) & set(new))
    assert len(shared) >= 0.8 * len(old), "the committed table and this transformers share too few model types"
    changed = {t: (old[t], new[t]) for t in shared if old[t] != new[t]}
    assert changed == {}, f"outcomes differ from docs/architectures.md under transformers " \
                          f"{transformers.__version__}: {sorted(changed)}; {regenerate}"
