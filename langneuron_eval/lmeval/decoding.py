"""Decoding that drops finished rows: the loop behind the ``langneuron`` model's ``generate`` calls.

Why: ``generate`` keeps every row of a batch until the last row stops; a row that stopped still pays a full forward
pass per step. On the demo model, BOS-only samples end with EOS long before their batch's longest row, and lm-eval's
stop strings (``MultiTokenEOSCriteria``) end a batch only when every row has produced the *same* stop string, while
greedy QA answers end at their first line break (benchmarks/RESULTS.md: 0.45 and 0.34 of the row-steps).
:class:`CompactDecoding` is handed to ``generate`` as its ``custom_generate`` decoding method: ``generate`` still
does all the preparation (attention mask, position ids, cache, logits processors and stopping criteria from the
generation config), and the loop removes a row from the batch, cache included, once it is finished.

When a row is finished:

* **sampling**: when ``generate``'s own loop would pad it (EOS, max length, per-row criteria). Every step draws the
  noise ``torch.multinomial`` draws for the whole original batch (``argmax(probs / Exp(1))``, one exponential per
  row and vocabulary entry) and the rows still running use their own rows of it, and the batch ends at the step
  where ``generate``'s would (lm-eval's stop strings are checked on the whole batch, finished rows padded, as
  ``generate`` sees it). So the random stream advances exactly as in ``generate``: same tokens, same seeds for
  whatever is sampled next.
* **greedy**: also as soon as its decoded continuation contains one of lm-eval's stop strings. lm-eval keeps the
  text before the first stop string (``postprocess_generated_text``) and later tokens cannot change that text, so
  the strings lm-eval scores are the same; the token tensor holds pad tokens after the stop string where
  ``generate`` would have gone on (lm-eval discards them), and ends when the last row's text is final.

In both, every token a row keeps comes from the same prefill and per-step forward passes; only a matrix product over
fewer rows may differ in the last bits, which could flip an exact tie. Anything this loop does not know to be
row-local (beams, an unknown logits processor or stopping criterion, extra per-row inputs, a streamer, several
processes) falls back to ``generate``'s own loop, and a cache that cannot drop rows (linear attention, state-space
layers) keeps its finished rows with pad tokens, as ``generate`` does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import torch

RowScope = Callable[[Sequence[int]], AbstractContextManager[Any]]  # context under which these original rows run

# Logits processors whose output for a row depends only on that row's ids and scores (their order is kept).
_ROW_LOCAL_PROCESSORS = frozenset({
    "SuppressTokensLogitsProcessor", "SuppressTokensAtBeginLogitsProcessor", "MinLengthLogitsProcessor",
    "MinNewTokensLengthLogitsProcessor", "RepetitionPenaltyLogitsProcessor", "NoRepeatNGramLogitsProcessor",
    "NoBadWordsLogitsProcessor", "SequenceBiasLogitsProcessor", "InfNanRemoveLogitsProcessor",
    "TemperatureLogitsWarper", "TopKLogitsWarper", "TopPLogitsWarper", "MinPLogitsWarper",
})
# Stopping criteria that answer per row (or for the whole batch at once, as max length and time do).
_ROW_CRITERIA = frozenset({"MaxLengthCriteria", "EosTokenCriteria", "StopStringCriteria", "MaxTimeCriteria"})
# Inputs generate keeps per row besides the cache; all of them are [batch, seq].
_ROW_INPUTS = ("attention_mask", "position_ids", "token_type_ids")


def _lm_eval_stop(criterion: Any) -> str | None:
    """The stop string of lm-eval's ``MultiTokenEOSCriteria`` (a batch-level criterion), else ``None``."""
    if type(criterion).__name__ == "MultiTokenEOSCriteria" and isinstance(getattr(criterion, "sequence", None), str):
        return criterion.sequence
    return None


def unsupported(model: Any, logits_processor: Sequence[Any], stopping_criteria: Sequence[Any],
                generation_config: Any, model_kwargs: dict[str, Any], synced_gpus: bool, streamer: Any) -> str | None:
    """Why this ``generate`` call must keep ``generate``'s own loop, or ``None`` when rows can be dropped."""
    cfg = generation_config
    checks = [
        (synced_gpus or streamer is not None, "several processes or a streamer"),
        (bool(getattr(model.config, "is_encoder_decoder", False)), "an encoder-decoder model"),
        (int(cfg.num_beams or 1) != 1, "beam search"),
        (bool(cfg.return_dict_in_generate), "return_dict_in_generate"),
        (cfg._pad_token_tensor is None, "no pad token"),
        (not all(hasattr(model, m) for m in ("_prefill", "prepare_inputs_for_generation",
                                             "_update_model_kwargs_for_generation")),
         "this transformers version's generate internals"),
    ]
    for failed, reason in checks:
        if failed:
            return reason
    for p in logits_processor:
        if type(p).__name__ not in _ROW_LOCAL_PROCESSORS:
            return f"logits processor {type(p).__name__}"
    for c in stopping_criteria:
        if type(c).__name__ not in _ROW_CRITERIA and _lm_eval_stop(c) is None:
            return f"stopping criterion {type(c).__name__}"
    cache = _cache_of(model_kwargs)
    if cache is not None and type(cache).__name__ != "DynamicCache":
        return f"a {type(cache).__name__}"  # e.g. a static cache, which generate may compile
    for key, value in model_kwargs.items():
        if key == "inputs_embeds" and value is not None:
            return "inputs_embeds"
        if isinstance(value, torch.Tensor) and (key not in _ROW_INPUTS or value.dim() != 2):
            return f"per-row input {key}"
    return None


def _cache_of(model_kwargs: dict[str, Any]) -> Any:
    """The cache among ``generate``'s model inputs, whatever its key in this transformers version."""
    from transformers.cache_utils import Cache

    return next((v for v in model_kwargs.values() if isinstance(v, Cache)), None)


def _shrinkable(cache: Any) -> bool:
    """Whether the cache can drop batch rows: a dynamic cache of plain (or sliding-window) attention layers."""
    from transformers.cache_utils import DynamicCache, DynamicLayer, DynamicSlidingWindowLayer

    layers = getattr(cache, "layers", None)
    return (type(cache) is DynamicCache and bool(layers)
            and all(type(layer) in (DynamicLayer, DynamicSlidingWindowLayer) for layer in layers))


def _select_rows(model_kwargs: dict[str, Any], keep: torch.Tensor) -> dict[str, Any]:
    """Keep rows ``keep`` of the cache and of every per-row input (``unsupported`` admitted only [batch, seq] ones)."""
    cache = _cache_of(model_kwargs)
    if cache is not None:
        cache.batch_select_indices(keep.cpu())  # CPU indices select rows on any device (layers may be spread)
    return {k: (v[keep] if k in _ROW_INPUTS and isinstance(v, torch.Tensor) else v) for k, v in model_kwargs.items()}


@dataclass
class _Batch:
    """The loop's state: the rows still in the batch (original indices), their ids, and the full output so far."""

    rows: torch.Tensor  # [running rows] original row index
    ids: torch.LongTensor  # [running rows, length]
    out: torch.LongTensor  # [batch, max_length], every row; pad after a finished row's last token
    running: torch.Tensor  # [running rows] bool: still producing tokens (False only where the cache cannot shrink)
    prompt_len: int

    @property
    def length(self) -> int:
        return self.ids.shape[1]


@dataclass
class CompactDecoding:
    """``custom_generate`` for ``generate``: greedy or sampled decoding that removes each row once it is finished.

    ``row_scope(rows)``: the context a forward pass over these original rows runs in (per-row interventions follow
    the rows as the batch shrinks); ``None`` when every row runs alike. lm-eval's stop strings, and the tokenizer
    that decodes continuations to find them, come from its stopping criteria. ``stats`` adds up over calls: the
    row-steps computed, the row-steps had every row stayed to its batch's last step, and why a call fell back.
    """

    row_scope: RowScope | None = None
    stats: dict[str, Any] = field(default_factory=lambda: {"row_steps": 0, "row_steps_unshrunk": 0,
                                                           "fallbacks": []})

    def _scope(self, rows: Sequence[int]) -> AbstractContextManager[Any]:
        return self.row_scope(rows) if self.row_scope is not None else contextlib.nullcontext()

    def __call__(self, model: Any, input_ids: torch.LongTensor, logits_processor: Any, stopping_criteria: Any,
                 generation_config: Any, synced_gpus: bool = False, streamer: Any = None,
                 **model_kwargs: Any) -> torch.LongTensor:
        reason = unsupported(model, logits_processor, stopping_criteria, generation_config, model_kwargs,
                             synced_gpus, streamer)
        if reason is not None:
            self.stats["fallbacks"].append(reason)
            with self._scope(range(input_ids.shape[0])):
                return type(model)._sample(model, input_ids, logits_processor=logits_processor,
                                           stopping_criteria=stopping_criteria, generation_config=generation_config,
                                           synced_gpus=synced_gpus, streamer=streamer, **model_kwargs)
        optimise = getattr(model, "_optimize_model_for_decode", contextlib.nullcontext)
        with optimise():
            return self._decode(model, input_ids, logits_processor, stopping_criteria, generation_config, model_kwargs)

    def _decode(self, model: Any, input_ids: torch.LongTensor, logits_processor: Any, stopping_criteria: Any,
                generation_config: Any, model_kwargs: dict[str, Any]) -> torch.LongTensor:
        """The loop: prefill, then one token per running row per step; finished rows leave batch and cache."""
        batch, prompt_len = input_ids.shape
        max_length = max(int(generation_config.max_length), prompt_len + 1)
        pad = torch.as_tensor(generation_config._pad_token_tensor, dtype=input_ids.dtype, device=input_ids.device)
        out = input_ids.new_full((batch, max_length), int(pad))
        out[:, :prompt_len] = input_ids
        state = _Batch(torch.arange(batch, device=input_ids.device), input_ids, out,
                       torch.ones(batch, dtype=torch.bool, device=input_ids.device), prompt_len)
        sample = bool(generation_config.do_sample)
        with contextlib.ExitStack() as scope:
            scope.enter_context(self._scope(range(batch)))
            outputs = model._prefill(input_ids, generation_config, model_kwargs)
            shrink = _shrinkable(_cache_of({**model_kwargs, "cache": outputs.get("cache")}))
            while True:
                model_kwargs = model._update_model_kwargs_for_generation(outputs, model_kwargs)
                logits = outputs.logits[:, -1].to(copy=True, dtype=torch.float32, device=input_ids.device)
                scores = logits_processor(state.ids, logits)
                token = self._choose(scores, sample, batch, state.rows)
                # rows that finished but stay (a cache that cannot drop rows) get pad tokens, as in generate's loop
                token = torch.where(state.running, token, pad)
                state.ids = torch.cat([state.ids, token[:, None]], dim=-1)
                state.out[state.rows, state.length - 1] = token
                self.stats["row_steps"] += len(state.rows)
                if self._batch_ends(state, scores, stopping_criteria, sample, max_length):
                    break
                if shrink and not bool(state.running.all()):
                    keep = state.running.nonzero().squeeze(1)
                    state.rows, state.ids, state.running = state.rows[keep], state.ids[keep], state.running[keep]
                    model_kwargs = _select_rows(model_kwargs, keep)
                    scope.close()
                    scope.enter_context(self._scope(state.rows.tolist()))
                model_inputs = model.prepare_inputs_for_generation(state.ids, next_sequence_length=1, **model_kwargs)
                outputs = model(**model_inputs, return_dict=True)
        self.stats["row_steps_unshrunk"] += batch * (state.length - prompt_len)
        return state.out[:, :state.length]

    @staticmethod
    def _choose(scores: torch.Tensor, sample: bool, batch: int, rows: torch.Tensor) -> torch.Tensor:
        """The next token of each running row: the argmax, or ``torch.multinomial``'s draw made for the whole batch.

        ``torch.multinomial(probs, 1)`` is ``argmax(probs / q)`` with ``q`` exponential draws shaped like ``probs``
        (tested against it); drawing ``q`` for every original row keeps the random stream where ``generate`` leaves it.
        """
        if not sample:
            return scores.argmax(dim=-1)
        probs = torch.softmax(scores, dim=-1)
        noise = torch.empty((batch, probs.shape[-1]), dtype=probs.dtype, device=probs.device).exponential_(1)
        return torch.argmax(probs / noise[rows], dim=-1)

    @staticmethod
    def _batch_ends(state: _Batch, scores: torch.Tensor, stopping_criteria: Sequence[Any], sample: bool,
                    max_length: int) -> bool:
        """Mark finished rows (``state.running``); whether the whole batch is done."""
        done = torch.zeros(len(state.rows), dtype=torch.bool, device=state.ids.device)
        stops = [c for c in stopping_criteria if _lm_eval_stop(c) is not None]  # lm-eval's, one per stop string
        for criterion in stopping_criteria:
            if _lm_eval_stop(criterion) is None:
                hit = criterion(state.ids, scores)
                done |= hit.to(device=done.device, dtype=torch.bool) if isinstance(hit, torch.Tensor) else bool(hit)
        if state.length >= max_length:
            done[:] = True
        if stops and sample:
            # lm-eval's batch-level criteria, on the whole batch as generate holds it (finished rows padded)
            whole = state.out[:, :state.length]
            done[:] |= any([bool(c(whole, scores)) for c in stops])  # every criterion sees every step
        elif stops and not bool(done.all()):
            # greedy: a row whose text contains a stop string is final (decoded as lm-eval decodes it to cut it)
            texts = stops[0].tokenizer.batch_decode(state.ids[:, state.prompt_len:], skip_special_tokens=True)
            done |= torch.tensor([any(c.sequence in t for c in stops) for t in texts], device=done.device)
        state.running &= ~done
        return not bool(state.running.any())
