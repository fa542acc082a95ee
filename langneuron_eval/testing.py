"""Tiny offline models and data for tests, here and in third-party detector packages.

Everything is built locally from configs (random init) with a byte-level tokenizer that needs no
download, so tests run with ``HF_HUB_OFFLINE=1``. Pytest fixtures are provided by
``langneuron_eval.testing_fixtures`` (``pytest_plugins = ["langneuron_eval.testing_fixtures"]``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>")

# Hand-sized configs of the architectures the fast tests use (small enough to build in well under a second);
# any other causal-LM type is shrunk generically by tiny_configs().
TINY_CONFIGS: dict[str, dict[str, Any]] = {
    "llama": dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=256),
    "mistral": dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, max_position_embeddings=256),
    "qwen2": dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=256),
    "qwen3": dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=8, max_position_embeddings=256),
    "gemma": dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=8, max_position_embeddings=256),
    "gemma2": dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                   num_key_value_heads=2, head_dim=8, max_position_embeddings=256),
    "gpt2": dict(n_embd=32, n_layer=2, n_head=4, n_positions=256),
    "bloom": dict(hidden_size=32, n_layer=2, n_head=4),
    "gpt_neox": dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                     max_position_embeddings=256),
    "xglm": dict(d_model=32, ffn_dim=48, num_layers=2, attention_heads=4, max_position_embeddings=256),
}


def make_tokenizer(out_dir: str | os.PathLike | None = None):
    """A byte-level tokenizer (256 byte tokens + specials): covers every script, needs no training or network."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    byte_vocab = list(pre_tokenizers.ByteLevel.alphabet())
    vocab = {t: i for i, t in enumerate(SPECIAL_TOKENS)}
    for t in sorted(byte_vocab):
        vocab[t] = len(vocab)
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tk.decoder = decoders.ByteLevel()
    tk.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                      special_tokens=[("<s>", 1)])
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                  unk_token="<unk>")
    if out_dir is not None:
        tok.save_pretrained(str(out_dir))
    return tok


def make_tiny_model(model_type: str = "llama", out_dir: str | os.PathLike | None = None, seed: int = 0,
                    **overrides: Any):
    """A random-init causal LM of ``model_type`` with the byte tokenizer.

    Types in :data:`TINY_CONFIGS` use those sizes; any other ``*ForCausalLM`` type of the installed
    transformers is shrunk generically by :func:`tiny_config`. Returns ``(model, tokenizer)``; with
    ``out_dir`` both are saved there (safetensors) so that the directory works as ``--model``/``pretrained=``.
    """
    tok = make_tokenizer()
    if model_type in TINY_CONFIGS:
        from transformers import AutoConfig, AutoModelForCausalLM

        kwargs = dict(TINY_CONFIGS[model_type])
        kwargs.update(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)
        kwargs.update(overrides)
        config = AutoConfig.for_model(model_type, **kwargs)
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config)
    else:
        model = _build_shrunk(model_type, tok, seed, overrides)
    model.eval()
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        model.save_pretrained(str(out_dir))
        tok.save_pretrained(str(out_dir))
    return model, tok


# ------------------------------------------------------------------------------- any architecture, shrunk
_LAYER_COUNTS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers", "decoder_layers", "num_decoder_layers",
                 "encoder_layers", "num_encoder_layers")
_SIZES = {  # attribute -> tiny value; widths are distinct so that shapes identify modules
    "hidden_size": 32, "n_embd": 32, "d_model": 32, "embed_dim": 32, "n_embed": 32, "dim": 32,
    "intermediate_size": 48, "ffn_dim": 48, "n_inner": 48, "d_ff": 48, "decoder_ffn_dim": 48,
    "encoder_ffn_dim": 48, "ffn_hidden_size": 48, "d_inner": 48, "dff": 48, "dim_ff": 48,
    "moe_intermediate_size": 40, "shared_expert_intermediate_size": 40, "shared_experts_intermediate_size": 40,
    "num_attention_heads": 4, "n_head": 4, "num_heads": 4, "n_heads": 4, "decoder_attention_heads": 4,
    "encoder_attention_heads": 4, "attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
    "num_experts": 4, "num_local_experts": 4, "n_routed_experts": 4, "num_experts_per_tok": 2,
    "num_experts_per_token": 2,
    "d_head": 8, "d_kv": 8, "mamba_n_heads": 4, "mamba_d_head": 16, "mamba_d_state": 16, "mamba_n_groups": 1,
    "num_kv_shared_layers": 0, "rotary_dim": 4, "qk_rope_head_dim": 8, "qk_nope_head_dim": 8, "v_head_dim": 8,
    "kv_lora_rank": 16, "q_lora_rank": 16, "first_k_dense_replace": 1, "num_blocks": 2, "feed_forward_size": 48,
    "mamba_d_ssm": 64, "chunk_size": 16,
}
_FILL_NONE = {"head_dim": 8, "num_key_value_heads": 2}  # defaults left None that some models read directly
_EXPERT_GROUPS = ("n_group", "num_expert_group")  # group-limited routing (DeepSeek-V3 style): groups of experts
# Config fields a few types need beyond the generic shrink (validators tie them to the sizes above).
TYPE_FIXES: dict[str, dict[str, Any]] = {
    "dory": {"n_input_layers": 1, "n_recurrent_layers": 0, "n_output_layers": 1},
    "reformer": {"axial_pos_embds_dim": [16, 16], "axial_pos_shape": [16, 32], "max_position_embeddings": 512,
                 "attn_layers": ["local", "local"], "num_hashes": 1},
    "zaya": {"num_experts_per_tok": 1},
    "mamba2": {"head_dim": 16},
    "bamba": {"attn_layer_indices": [1]},  # one attention layer, as in the real checkpoints
    "recurrent_gemma": {"block_types": ["recurrent", "attention"]},
    "minicpm3": {"num_key_value_heads": 4},
    "youtu": {"num_key_value_heads": 4},
    "xlstm": {"embedding_dim": 32, "num_blocks": 2, "qk_dim_factor": 0.5, "v_dim_factor": 1.0},
    "gemma4_assistant": {"hidden_size_per_layer_input": 0},
    "deepseek_v2": {"num_experts_per_tok": 2},  # None by default: the router's top-k would be None
    # qk_head_dim is derived from the original head sizes (192) before they are shrunk; the experts' own width
    "longcat_flash": {"qk_head_dim": 16, "expert_ffn_hidden_size": 40},
    "bailing_hybrid": {"linear_num_heads": 4, "linear_head_dim": 8},  # its linear attention: 32 x 128 otherwise
    "cohere_compass_text": {"rope_parameters": {"full_attention": {"rope_type": "default", "rope_theta": 1e4},
                                                "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}}},
}
SPARE_IDS = 8  # vocabulary ids after the byte tokenizer's, for image/audio placeholder tokens


def causal_lm_class(model_type: str):
    """The ``*ForCausalLM`` class the installed transformers maps ``model_type`` to.

    Image-text-to-text wrappers without one (``llava``, ...) give their ``*ForConditionalGeneration`` class.
    """
    import transformers
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES,
    )

    name = MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(model_type) or MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES[model_type]
    return getattr(transformers, name)


def _shrink(d: dict[str, Any], tok: Any, depth: int = 0) -> dict[str, Any]:
    """A shrunk copy of a config dict (sub-config dicts too): 2 layers, tiny widths, the byte tokenizer's ids."""
    d = {k: (_shrink(v, tok, depth + 1) if isinstance(v, dict) and "model_type" in v and depth < 3 else v)
         for k, v in d.items()}
    old_layers = next((d[n] for n in _LAYER_COUNTS if isinstance(d.get(n), int)), None)
    for name in _LAYER_COUNTS:
        if isinstance(d.get(name), int):
            d[name] = 2
    original = dict(d)
    d.update({n: v for n, v in _SIZES.items() if isinstance(d.get(n), int)})
    d.update({n: v for n, v in _FILL_NONE.items() if n in d and d[n] is None})
    _tie_moe_and_mla(d, original)
    if old_layers:  # per-layer lists (layer_types, ...) keep their first and last entries: both kinds of a hybrid
        d.update({n: [v[0], v[-1]] for n, v in d.items() if isinstance(v, list) and len(v) == old_layers})
    if isinstance(d.get("per_layer_config"), dict):
        d["per_layer_config"] = {k: v for k, v in d["per_layer_config"].items() if int(k) < 2}
    vocab = len(tok) + SPARE_IDS
    if isinstance(d.get("vocab_size"), int):
        d["vocab_size"] = vocab
    spare = iter(range(len(tok), vocab))
    for name, value in list(d.items()):
        if name in ("pad_token_id", "bos_token_id", "eos_token_id"):
            d[name] = getattr(tok, name)
        elif (name.endswith("_token_id") or name.endswith("_token_index")) and isinstance(value, int):
            d[name] = next(spare, vocab - 1)  # placeholder tokens the byte tokenizer never produces
    if isinstance(d.get("max_position_embeddings"), int) and d["max_position_embeddings"] > 512:
        d["max_position_embeddings"] = 512
    if "is_decoder" in d:
        d["is_decoder"] = True
    return d


def _tie_moe_and_mla(d: dict[str, Any], original: dict[str, Any]) -> None:
    """Fields that must agree with the shrunk sizes, which the generic shrink would break.

    * Multi-head latent attention (``kv_lora_rank``) has as many key/value heads as query heads; its
      attention reads ``num_key_value_heads`` as the head count, so it follows ``num_attention_heads``.
    * Group-limited routing splits the (4) experts into groups: 2 groups of 2, of which the router keeps 1.
      Configs with a single group are left alone.
    """
    heads = d.get("num_attention_heads")
    if (isinstance(d.get("kv_lora_rank"), int) and isinstance(heads, int)
            and original.get("num_key_value_heads") == original.get("num_attention_heads")):
        d["num_key_value_heads"] = heads
    for name in _EXPERT_GROUPS:
        if isinstance(d.get(name), int) and d[name] > 1:
            d[name] = 2
            if isinstance(d.get("topk_group"), int):
                d["topk_group"] = 1


def _assign(cfg: Any, values: dict[str, Any]) -> None:
    """Set shrunk values on an already-built config (and its sub-configs), skipping read-only fields."""
    for name, value in values.items():
        current = vars(cfg).get(name)
        if isinstance(value, dict) and hasattr(current, "to_dict"):
            _assign(current, value)
            continue
        try:
            setattr(cfg, name, value)
        except Exception:  # read-only properties keep their defaults
            pass


def tiny_configs(model_type: str, tok: Any = None, **overrides: Any) -> list[Any]:
    """Shrunk configs of ``model_type``'s causal-LM class to try in order, built offline from the config class.

    The first is validated from scratch (the config class derives dependent fields); the second sets the
    same values on the default config, for the few classes whose validators reject the first.
    """
    tok = tok or make_tokenizer()
    config_class = causal_lm_class(model_type).config_class
    default = config_class()
    shrunk = {**_shrink(default.to_dict(), tok), **TYPE_FIXES.get(model_type, {}), **overrides}
    shrunk.pop("transformers_version", None)
    out = []
    try:
        out.append(config_class.from_dict(shrunk))
    except Exception:
        pass
    try:
        _assign(default, shrunk)
    except Exception:  # per-layer configs refuse global reads; the first config is all there is
        return out
    return out + [default]


def _build_shrunk(model_type: str, tok: Any, seed: int, overrides: dict[str, Any]):
    """A model from the first of :func:`tiny_configs` that builds; the first error if none does."""
    cls, errors = causal_lm_class(model_type), []
    for config in tiny_configs(model_type, tok, **overrides):
        torch.manual_seed(seed)
        try:
            model = cls._from_config(config)
        except Exception as e:
            errors.append(e)
            continue
        if hasattr(model, "set_default_language") and getattr(config, "languages", None):
            model.set_default_language(config.languages[0])  # X-MOD: one adapter per language
        return model
    raise errors[0]


TINY_CORPUS: dict[str, list[str]] = {
    "en": ["The weather is nice today.", "My brother reads a book in the garden.", "We are going to the market.",
           "The children play football after school."],
    "de": ["Das Wetter ist heute schön.", "Mein Bruder liest ein Buch im Garten.", "Wir gehen auf den Markt.",
           "Die Kinder spielen nach der Schule Fußball."],
    "zh": ["今天天气很好。", "我哥哥在花园里看书。", "我们去市场。", "孩子们放学后踢足球。"],
}


def write_tiny_corpus(out_dir: str | os.PathLike, corpus: dict[str, list[str]] | None = None) -> Path:
    """Write ``<lang>.txt`` files (one sentence per line) for ``langneuron record --corpus DIR``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for lang, lines in (corpus or TINY_CORPUS).items():
        (out / f"{lang}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out
