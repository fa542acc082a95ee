"""Training the embedded demo model: a tiny Llama-architecture LM trained from scratch on the demo corpus.

The base model learns plain text in every demo language plus question answering in English only; the
aligned twin is the base model fine-tuned on question answering in two languages (Zhang et al.'s
"aligned on zh/de" setting), so that the effect of alignment on the *other* languages can be measured.

Training is budgeted in tokens, not minutes (CPU speed varies between runs), seeded, and deterministic
up to the floating-point non-determinism of the CPU kernels.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from langneuron_eval.errors import LangNeuronError

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]


@dataclass
class DemoModelConfig:
    """Shape of the demo model (about 3M parameters; measured fastest-to-useful on 2 CPU cores)."""

    vocab_size: int = 4096
    hidden_size: int = 192
    intermediate_size: int = 768
    num_hidden_layers: int = 4
    num_attention_heads: int = 6
    max_position_embeddings: int = 256


@dataclass
class TrainConfig:
    """Optimisation settings; ``tokens`` is the training budget (non-padding tokens)."""

    tokens: int = 2_000_000
    batch_size: int = 32
    max_length: int = 128
    lr: float = 3e-3
    warmup: int = 100
    weight_decay: float = 0.1
    seed: int = 0
    bf16: bool = True
    extra: dict = field(default_factory=dict)


def train_tokenizer(texts: Sequence[str], vocab_size: int, out_dir: str | Path | None = None):
    """Byte-level BPE trained on the corpus: every script encodes, and frequent words get one token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE(unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tk.train_from_iterator(texts, trainer=trainer)
    bos = tk.token_to_id("<s>")
    tk.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                      special_tokens=[("<s>", bos)])
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                  unk_token="<unk>", model_max_length=256)
    if out_dir is not None:
        tok.save_pretrained(str(out_dir))
    return tok


def new_model(tok, shape: DemoModelConfig, seed: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=shape.hidden_size, intermediate_size=shape.intermediate_size,
                      num_hidden_layers=shape.num_hidden_layers, num_attention_heads=shape.num_attention_heads,
                      num_key_value_heads=shape.num_attention_heads,
                      max_position_embeddings=shape.max_position_embeddings, tie_word_embeddings=True,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(seed)
    return LlamaForCausalLM(cfg)


def _encode(tok, texts: Sequence[str], max_length: int) -> list[list[int]]:
    ids = tok(list(texts), add_special_tokens=True)["input_ids"]
    return [x[: max_length - 1] + [tok.eos_token_id] for x in ids]


def _batches(encoded: list[list[int]], batch_size: int, rng: random.Random):
    """Length-bucketed batches in random order: little padding, no systematic order of languages."""
    order = list(range(len(encoded)))
    rng.shuffle(order)
    buckets = [order[i: i + batch_size * 50] for i in range(0, len(order), batch_size * 50)]
    batches = []
    for bucket in buckets:
        bucket.sort(key=lambda i: len(encoded[i]))
        batches += [bucket[i: i + batch_size] for i in range(0, len(bucket), batch_size)]
    rng.shuffle(batches)
    return batches


def train(model, tok, texts: Sequence[str], cfg: TrainConfig, progress: bool = True,
          loss_mask: Callable[[str], int] | None = None) -> dict:
    """Train ``model`` on ``texts`` until ``cfg.tokens`` non-padding tokens have been seen.

    ``loss_mask(text)`` may return the number of leading characters whose tokens carry no loss (used to
    train only the answer of a QA example); by default every token carries loss.
    """
    from tqdm.auto import tqdm

    if not texts:
        raise LangNeuronError("no training texts")
    rng = random.Random(cfg.seed)
    torch.manual_seed(cfg.seed)
    encoded = _encode(tok, texts, cfg.max_length)
    prefix_tokens = None
    if loss_mask is not None:
        prefix_tokens = [len(tok(t[: loss_mask(t)], add_special_tokens=True)["input_ids"]) for t in texts]
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95))
    est_steps = max(1, cfg.tokens // max(1, cfg.batch_size * sum(map(len, encoded)) // len(encoded)))

    def lr_at(step: int) -> float:
        if step < cfg.warmup:
            return cfg.lr * (step + 1) / cfg.warmup
        frac = min(1.0, (step - cfg.warmup) / max(1, est_steps - cfg.warmup))
        return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))

    model.train()
    seen, step, losses = 0, 0, []
    bar = tqdm(total=cfg.tokens, unit="tok", unit_scale=True, desc="train", disable=not progress, dynamic_ncols=True)
    started = time.perf_counter()
    while seen < cfg.tokens:
        for batch in _batches(encoded, cfg.batch_size, rng):
            width = max(len(encoded[i]) for i in batch)
            ids = torch.full((len(batch), width), tok.pad_token_id, dtype=torch.long)
            labels = torch.full((len(batch), width), -100, dtype=torch.long)
            for r, i in enumerate(batch):
                x = torch.tensor(encoded[i])
                ids[r, : len(x)] = x
                labels[r, : len(x)] = x
                if prefix_tokens is not None:
                    labels[r, : prefix_tokens[i]] = -100
            mask = (ids != tok.pad_token_id).long()
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
                loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            n = int(mask.sum())
            seen += n
            step += 1
            losses.append(float(loss.detach()))
            bar.update(n)
            if step % 20 == 0:
                bar.set_postfix(loss=f"{sum(losses[-20:]) / 20:.3f}")
            if seen >= cfg.tokens:
                break
    bar.close()
    model.eval()
    return {"steps": step, "tokens": seen, "seconds": round(time.perf_counter() - started, 1),
            "final_loss": round(sum(losses[-50:]) / max(1, len(losses[-50:])), 4), "config": asdict(cfg)}


@torch.inference_mode()
def perplexity(model, tok, texts: Sequence[str], batch_size: int = 32, max_length: int = 128) -> float:
    """Token-level perplexity (exp of the mean NLL over all predicted tokens), for the train/held-out check."""
    encoded = _encode(tok, texts, max_length)
    total_nll, total = 0.0, 0
    for start in range(0, len(encoded), batch_size):
        chunk = encoded[start: start + batch_size]
        width = max(map(len, chunk))
        ids = torch.full((len(chunk), width), tok.pad_token_id, dtype=torch.long)
        for r, x in enumerate(chunk):
            ids[r, : len(x)] = torch.tensor(x)
        mask = (ids != tok.pad_token_id).long()
        labels = ids.masked_fill(mask == 0, -100)
        out = model(input_ids=ids, attention_mask=mask, labels=labels)
        n = int((labels[:, 1:] != -100).sum())
        total_nll += float(out.loss) * n
        total += n
    return math.exp(total_nll / max(1, total))
