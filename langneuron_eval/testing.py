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

# Small enough to build in well under a second; every adapter in sites.ADAPTERS has one.
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
    """A random-init causal LM of ``model_type`` sized by :data:`TINY_CONFIGS`, with the byte tokenizer.

    Returns ``(model, tokenizer)``; with ``out_dir`` both are saved there (safetensors) so that the
    directory works as ``--model``/``pretrained=``.
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    tok = make_tokenizer()
    kwargs = dict(TINY_CONFIGS[model_type])
    kwargs.update(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                  pad_token_id=tok.pad_token_id)
    kwargs.update(overrides)
    config = AutoConfig.for_model(model_type, **kwargs)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.eval()
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        model.save_pretrained(str(out_dir))
        tok.save_pretrained(str(out_dir))
    return model, tok


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
