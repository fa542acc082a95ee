"""Rolling log-likelihood at the speed of the forward pass: lm-eval's windows, batched, without full-vocabulary logits.

lm-eval's ``hf`` model scores a ``loglikelihood_rolling`` request by cutting the document's tokens into rolling
windows (:func:`lm_eval.utils.get_rolling_token_windows` + :func:`~lm_eval.utils.make_disjoint_window`), running
each window through the model and taking ``log_softmax`` over the whole vocabulary at every position of the batch.
On a 262,144-token vocabulary that is 4.3 GB of float32 per batch of 16 x 256 tokens, and most of it (context and
padding positions) is thrown away. :class:`RollingEngine` computes the same numbers differently:

1. every document is tokenised once (by the caller, e.g. ``HFLM.tok_encode``) and cut into *exactly* lm-eval's
   windows (same prefix token, same ``max_length``; lm-eval's own functions do the cutting);
2. the windows of all documents (and of all conditions, see below) are flattened, sorted by length (longest first,
   so an out-of-memory error shows on the first batch) and batched with right padding under a row and token budget
   (:class:`Budget`); causal attention means padding never reaches a scored position, so, as in ``hf``, no
   attention mask is passed;
3. the model runs with a pre-hook on its output layer that keeps the final hidden states and lets the output layer
   compute position 0 only; the log-likelihood of the target tokens is then computed from the hidden states of the
   *scored* positions only, in chunks of rows (output layer, ``log_softmax`` in float32, gather the targets), so
   at most one chunk of logits exists at a time (:attr:`Budget.logit_chunk_bytes`).

Logits post-processing (Gemma's ``final_logit_softcapping``, Cohere's ``logit_scale``, Granite's ``logits_scaling``)
happens in the model's ``forward`` after the output layer; the engine applies the one the configuration implies and
checks it, in every batch, against the model's own position-0 logits. A model whose logits cannot be reproduced
that way (an unknown post-processing, an output layer that is not called on the hidden states) is scored from the
model's full logits instead, with a warning: slower and bigger, never wrong.

Conditions: each document may carry a condition (any hashable, e.g. "deactivate zh"). Windows of different
conditions share batches; before each forward pass ``row_context(conditions_of_rows)`` is entered, so a per-row
intervention can edit each row its own way. ``mixed_rows=False`` keeps every batch to one condition for
interventions that can only edit a whole batch.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

from langneuron_eval.errors import LangNeuronError

log = logging.getLogger(__name__)

MiB = 1 << 20
MIN_FILL = 0.75  # a batch's windows are at least this share of its longest: padding stays under a quarter
# On a CPU, passes larger than this many padded tokens run slower per token (their activations leave the caches;
# benchmarks/bench_engine.py --part matrix); the memory rule still applies below it. Accelerators keep the memory
# rule alone.
CPU_MAX_BATCH_TOKENS = 3072
RowContext = Callable[[tuple[Hashable, ...]], AbstractContextManager[Any]]

# Config fields of logits post-processing in transformers' causal LMs: softcaps (``cap * tanh(x / cap)``) and scales.
_CAP_FIELDS = ("final_logit_softcapping", "logits_soft_cap")
_SCALE_FIELDS = (("logit_scale", "mul"), ("output_multiplier", "mul"), ("logits_scaling", "div"),
                 ("logits_scaling", "mul"))


# ------------------------------------------------------------------------------------------------ settings
@dataclass(frozen=True)
class RollingSpec:
    """How lm-eval cuts a document into windows: ``HFLM.prefix_token_id`` and ``HFLM.max_length``."""

    prefix_token_id: int
    max_length: int

    def __post_init__(self) -> None:
        if self.max_length < 1:
            raise LangNeuronError(f"max_length must be at least 1, got {self.max_length}")


@dataclass(frozen=True)
class Budget:
    """How big a forward pass and a chunk of logits may get.

    Attributes:
        batch_size: at most this many windows per forward pass (``None``: as many as the token budget allows).
            ``hf``'s integer ``batch_size`` maps here.
        max_batch_tokens: at most this many padded tokens (rows x longest window) per forward pass; ``None``
            derives it from ``memory_bytes`` (see :func:`auto_batch_tokens`).
        memory_bytes: activation memory one forward pass may use; ``None``: half the free memory of a CUDA
            device, 512 MiB on the CPU (where larger batches are not faster).
        logit_chunk_bytes: memory of one chunk of logits; each chunk scores
            ``max(1, logit_chunk_bytes // (vocab * (8 + b)))`` positions: 4 bytes per entry for the float32 logits,
            4 for their log-softmax, and ``b`` for the output layer's own output when its dtype is not float32
            (``b = 0`` for float32). So the logits never take more than this, whatever the batch size, length and
            vocabulary (the full-logits fallback excepted, where the model's own logits exist too).
    """

    batch_size: int | None = None
    max_batch_tokens: int | None = None
    memory_bytes: int | None = None
    logit_chunk_bytes: int = 256 * MiB

    def __post_init__(self) -> None:
        for name in ("batch_size", "max_batch_tokens", "memory_bytes", "logit_chunk_bytes"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise LangNeuronError(f"{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class DocScore:
    """One document's rolling log-likelihood (summed in float64) and the tokens and windows it covers."""

    loglikelihood: float
    tokens: int
    windows: int


@dataclass
class EngineStats:
    """What the engine did, for benchmarks and for the user's log."""

    forward_passes: int = 0
    windows: int = 0
    scored_tokens: int = 0
    padded_tokens: int = 0
    fallback: str | None = None  # why the full-logits path is used, None while the output-layer path is exact
    transform: str | None = None  # the logits post-processing found, e.g. "softcap(30.0)"


# ------------------------------------------------------------------------------------------------ windows
@dataclass(frozen=True)
class Window:
    """One forward-pass row: ``inputs`` and the ``targets`` predicted by its last ``len(targets)`` positions."""

    item: int  # index of the (document, condition) it belongs to
    inputs: tuple[int, ...]
    targets: tuple[int, ...]


def rolling_windows(tokens: Sequence[int], spec: RollingSpec) -> list[tuple[list[int], list[int]]]:
    """lm-eval's disjoint rolling windows ``(context, continuation)`` of one document, as ``hf`` builds them."""
    return [make_disjoint_window(w) for w in get_rolling_token_windows(
        token_list=list(tokens), prefix_token=spec.prefix_token_id, max_seq_len=spec.max_length, context_len=1)]


def flatten_windows(docs: Sequence[Sequence[int]], spec: RollingSpec) -> list[Window]:
    """All windows of all documents, as model rows: ``(context + continuation)[-(max_length+1):][:-1]`` (``hf``)."""
    out = []
    for item, tokens in enumerate(docs):
        for context, continuation in rolling_windows(tokens, spec):
            inputs = (context + continuation)[-(spec.max_length + 1):][:-1]
            out.append(Window(item, tuple(inputs), tuple(continuation)))
    return out


def plan_batches(windows: Sequence[Window], max_rows: int | None, max_tokens: int,
                 group: Sequence[int] | None = None, min_fill: float = MIN_FILL) -> list[list[int]]:
    """Window indices per forward pass: longest first, each batch within ``max_rows`` and ``max_tokens``.

    ``max_tokens`` bounds rows x the batch's longest window (the padded size); a window longer than it still gets
    a batch of its own. A window shorter than ``min_fill`` x the batch's longest starts a new batch, so padding
    stays under ``1 - min_fill`` of a batch's tokens. With ``group`` (a number per window), a batch never mixes
    two groups.
    """
    def key(i: int) -> tuple[int, int, int]:
        return (group[i] if group is not None else 0, -len(windows[i].inputs), windows[i].item)

    batches: list[list[int]] = []
    current: list[int] = []
    for i in sorted(range(len(windows)), key=key):
        if current:
            padded = len(windows[current[0]].inputs)
            full = (max_rows is not None and len(current) >= max_rows) or (len(current) + 1) * padded > max_tokens
            short = len(windows[i].inputs) < min_fill * padded
            if full or short or (group is not None and group[i] != group[current[0]]):
                batches.append(current)
                current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def encode_once(texts: Sequence[str], encode: Callable[[str], list[int]]) -> list[list[int]]:
    """Token lists of ``texts``, each distinct text encoded once (a matrix scores one text under many conditions)."""
    cache: dict[str, list[int]] = {}
    return [cache[t] if t in cache else cache.setdefault(t, list(encode(t))) for t in texts]


# Scripts written without spaces between words: a whitespace "word" there is a phrase or a whole line, so word
# perplexity is not a meaningful figure (and its exp overflows on weak models). Chinese, Japanese, Thai, Lao, Khmer,
# Burmese, Tibetan/Dzongkha (syllables separated by tsheg, not words by spaces) and Yi.
def perplexity(loglikelihood: float, count: int | float) -> float:
    """``exp(-loglikelihood / count)`` that never raises: ``inf`` past float range, ``nan`` for 0/0."""
    if count == 0:
        return math.nan if loglikelihood == 0 else math.inf
    try:
        return math.exp(-loglikelihood / count)
    except OverflowError:
        return math.inf


# ------------------------------------------------------------------------------------------------ memory rule
def _text_config(model: nn.Module) -> Any:
    config = getattr(model, "config", None)
    return config.get_text_config() if config is not None and hasattr(config, "get_text_config") else config


def auto_batch_tokens(model: nn.Module, memory_bytes: int, seq_len: int) -> int:
    """Padded tokens per forward pass whose activations fit in ``memory_bytes`` (an estimate, never below ``seq_len``).

    Without gradients a layer's temporaries are freed before the next layer runs, so the peak is one layer's:
    per token about ``b * (6 * hidden + 3 * ffn)`` bytes (residual stream, norms, attention projections, the MLP's
    gate/up/activation) plus a float32 attention-score row ``4 * heads * seq_len``; ``b`` is the parameter dtype's
    size. The key/value cache is not built (``use_cache=False``).
    """
    cfg = _text_config(model)
    hidden = int(getattr(cfg, "hidden_size", 0) or getattr(cfg, "n_embd", 0) or 1024)
    ffn = int(getattr(cfg, "intermediate_size", 0) or getattr(cfg, "n_inner", 0) or 4 * hidden)
    heads = int(getattr(cfg, "num_attention_heads", 0) or getattr(cfg, "n_head", 0) or 16)
    b = next(model.parameters()).element_size()
    per_token = b * (6 * hidden + 3 * ffn) + 4 * heads * seq_len
    return max(seq_len, memory_bytes // per_token)


def default_memory_bytes(device: torch.device) -> int:
    """Half the free memory of a CUDA device; 512 MiB elsewhere."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return max(256 * MiB, free // 2)
    return 512 * MiB


# ------------------------------------------------------------------------------------------------ output layer
@dataclass(frozen=True)
class LogitTransform:
    """``x -> cap * tanh((x op scale) / cap)``: the logits post-processing of a causal LM's ``forward``."""

    scale: float | None = None
    op: str = "mul"
    cap: float | None = None

    def apply_(self, logits: torch.Tensor) -> torch.Tensor:
        """In place, with the models' own operations in their order (so the result is bit-identical)."""
        if self.scale is not None:
            logits.mul_(self.scale) if self.op == "mul" else logits.div_(self.scale)
        if self.cap is not None:
            logits.div_(self.cap).tanh_().mul_(self.cap)
        return logits

    def __str__(self) -> str:
        parts = [f"{'x' if self.op == 'mul' else '/'}{self.scale:g}"] if self.scale is not None else []
        return "+".join(parts + ([f"softcap({self.cap:g})"] if self.cap is not None else [])) or "none"


def candidate_transforms(model: nn.Module) -> list[LogitTransform]:
    """Post-processings the configuration allows, most specific first; the identity last."""
    configs = [c for c in (getattr(model, "config", None), _text_config(model)) if c is not None]

    def numbers(name: str) -> list[float]:
        found = [getattr(c, name, None) for c in configs]
        return list(dict.fromkeys(float(v) for v in found if isinstance(v, (int, float)) and not isinstance(v, bool)
                                  and v > 0))

    caps = [c for name in _CAP_FIELDS for c in numbers(name)]
    scales = [(s, op) for name, op in _SCALE_FIELDS for s in numbers(name) if s != 1.0]
    out = [LogitTransform(s, op, c) for s, op in [*scales, (None, "mul")] for c in [*caps, None]]
    return list(dict.fromkeys(out))


class _HeadTap:
    """Hooks on the output layer: keep its input (final hidden states), let it compute position 0 only.

    The model then returns ``[batch, 1, vocab]`` logits, post-processed by its own ``forward``, which is what the
    engine checks its :class:`LogitTransform` against.
    """

    def __init__(self, head: nn.Module) -> None:
        self.head = head
        self.armed = False
        self.hidden: torch.Tensor | None = None  # [batch, pos, hidden]
        self.raw: torch.Tensor | None = None  # [batch, 1, vocab], the output layer's own output at position 0

    def _pre(self, _mod: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        if not self.armed or not args or not isinstance(args[0], torch.Tensor) or args[0].dim() != 3:
            return None
        self.hidden = args[0]
        return (args[0][:, :1], *args[1:])

    def _post(self, _mod: nn.Module, _args: tuple[Any, ...], out: Any) -> None:
        if self.armed and self.hidden is not None and isinstance(out, torch.Tensor):
            self.raw = out.detach().clone()  # the model may post-process in place

    @contextlib.contextmanager
    def armed_for_one_pass(self) -> Iterator[None]:
        self.hidden = self.raw = None
        handles = [self.head.register_forward_pre_hook(self._pre), self.head.register_forward_hook(self._post)]
        self.armed = True
        try:
            yield
        finally:
            self.armed = False
            for h in handles:
                h.remove()


# ------------------------------------------------------------------------------------------------ the engine
def _accepts(fn: Callable[..., Any], name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _input_device(model: nn.Module) -> torch.device:
    emb = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    weight = getattr(emb, "weight", None)
    return weight.device if isinstance(weight, torch.Tensor) else next(model.parameters()).device


def _model_logits(out: Any) -> torch.Tensor | None:
    logits = getattr(out, "logits", None)
    if logits is None and isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        logits = out[0]
    return logits if isinstance(logits, torch.Tensor) else None


@dataclass
class _Packed:
    """One batch as tensors: right-padded inputs and, per scored token, its row, position and target."""

    ids: torch.Tensor  # [batch, pos] long
    rows: torch.Tensor  # [n_scored] long
    positions: torch.Tensor  # [n_scored] long
    targets: torch.Tensor  # [n_scored] long
    items: torch.Tensor  # [n_scored] long, the (document, condition) each scored token belongs to


def _pack(windows: Sequence[Window], device: torch.device, pad_id: int = 0) -> _Packed:
    width = max(len(w.inputs) for w in windows)
    ids = torch.full((len(windows), width), pad_id, dtype=torch.long)
    rows: list[int] = []
    positions: list[int] = []
    targets: list[int] = []
    items: list[int] = []
    for r, w in enumerate(windows):
        n_in, n_t = len(w.inputs), len(w.targets)
        ids[r, :n_in] = torch.tensor(w.inputs, dtype=torch.long)
        rows += [r] * n_t
        positions += range(n_in - n_t, n_in)  # position p predicts token p + 1: the last n_t inputs score targets
        targets += w.targets
        items += [w.item] * n_t

    def as_long(values: list[int]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.long)

    return _Packed(ids.to(device), as_long(rows), as_long(positions), as_long(targets), as_long(items))


@dataclass
class RollingEngine:
    """Scores documents with lm-eval's rolling-window log-likelihood, batched, one chunk of logits at a time.

    Usage (what ``HFLM.loglikelihood_rolling`` computes, for token lists from ``HFLM.tok_encode``)::

        engine = RollingEngine(model, RollingSpec(lm.prefix_token_id, lm.max_length), Budget(batch_size=16))
        scores = engine.score([lm.tok_encode(text) for text in texts])   # list[DocScore]

    Args:
        model: a causal LM (``*ForCausalLM`` or any module whose output layer is ``get_output_embeddings()``).
        spec: the prefix token and ``max_length`` that cut documents into windows.
        budget: rows, tokens and memory per forward pass and per chunk of logits (:class:`Budget`).
        device: where the inputs go (default: the input embeddings' device).
        autocast_dtype: run under ``torch.autocast`` with this dtype (``hf``'s ``mixed_precision_dtype``).
    """

    model: nn.Module
    spec: RollingSpec
    budget: Budget = field(default_factory=Budget)
    device: torch.device | None = None
    autocast_dtype: torch.dtype | None = None
    stats: EngineStats = field(default_factory=EngineStats)

    def __post_init__(self) -> None:
        self.device = torch.device(self.device) if self.device is not None else _input_device(self.model)
        head = self.model.get_output_embeddings() if hasattr(self.model, "get_output_embeddings") else None
        self._tap = _HeadTap(head) if isinstance(head, nn.Module) else None
        if self._tap is None:
            self._fall_back("the model has no output-embeddings module")
        self._candidates = candidate_transforms(self.model)
        self._transform: LogitTransform | None = None
        self._call_kwargs = {"use_cache": False} if _accepts(self.model.forward, "use_cache") else {}

    # -------------------------------------------------------------------------------------------- public
    def score(self, docs: Sequence[Sequence[int]], conditions: Sequence[Hashable] | None = None,
              row_context: RowContext | None = None, mixed_rows: bool = True,
              on_batch: Callable[[int, int], None] | None = None) -> list[DocScore]:
        """Rolling log-likelihood of each token list, in input order.

        ``conditions[i]`` is document ``i``'s condition (default: one condition, ``None``); a document scored
        under several conditions is passed once per condition. Before each forward pass ``row_context`` is
        called with the condition of every row of the batch, and the pass runs inside the context it returns.
        ``on_batch(windows_done, windows_total)`` follows progress.
        """
        if conditions is not None and len(conditions) != len(docs):
            raise LangNeuronError(f"{len(conditions)} conditions for {len(docs)} documents")
        conds = tuple(conditions) if conditions is not None else (None,) * len(docs)
        windows = flatten_windows(docs, self.spec)
        if not windows:
            return [DocScore(0.0, 0, 0) for _ in docs]
        numbers = {c: k for k, c in enumerate(dict.fromkeys(conds))}
        group = None if mixed_rows else [numbers[conds[w.item]] for w in windows]
        totals = torch.zeros(len(docs), dtype=torch.float64)
        done = 0
        for batch in plan_batches(windows, self.budget.batch_size, self._max_tokens(windows), group):
            rows = [windows[i] for i in batch]
            row_conds = tuple(conds[w.item] for w in rows)

            def context(row_conds: tuple[Hashable, ...] = row_conds) -> AbstractContextManager[Any]:
                return row_context(row_conds) if row_context is not None else contextlib.nullcontext()

            packed = _pack(rows, self.device)
            logprobs = self._score_batch(packed, context)  # [n_scored] float32
            totals.index_add_(0, packed.items, logprobs.detach().to("cpu", torch.float64))
            done += len(rows)
            if on_batch is not None:
                on_batch(done, len(windows))
        n_tokens = [0] * len(docs)
        n_windows = [0] * len(docs)
        for w in windows:
            n_tokens[w.item] += len(w.targets)
            n_windows[w.item] += 1
        return [DocScore(float(totals[i]), n_tokens[i], n_windows[i]) for i in range(len(docs))]

    def chunk_rows(self, vocab: int, dtype: torch.dtype) -> int:
        """Positions per chunk of logits: ``logit_chunk_bytes // (vocab * (8 + b))`` (see :class:`Budget`)."""
        b = 0 if dtype == torch.float32 else torch.finfo(dtype).bits // 8
        return max(1, self.budget.logit_chunk_bytes // (vocab * (8 + b)))

    # -------------------------------------------------------------------------------------------- internals
    def _max_tokens(self, windows: Sequence[Window]) -> int:
        if self.budget.max_batch_tokens is not None:
            return self.budget.max_batch_tokens
        memory = self.budget.memory_bytes or default_memory_bytes(self.device)
        longest = max(len(w.inputs) for w in windows)
        tokens = auto_batch_tokens(self.model, memory, longest)
        return max(longest, min(tokens, CPU_MAX_BATCH_TOKENS)) if self.device.type == "cpu" else tokens

    def _fall_back(self, reason: str) -> None:
        if self.stats.fallback is None:
            log.warning("scoring from the model's full logits (slower, more memory): %s", reason)
        self.stats.fallback = reason

    def _score_batch(self, packed: _Packed, context: Callable[[], AbstractContextManager[Any]]) -> torch.Tensor:
        self.stats.forward_passes += 1
        self.stats.windows += packed.ids.shape[0]
        self.stats.scored_tokens += packed.targets.numel()
        self.stats.padded_tokens += packed.ids.numel()
        autocast = (torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)
                    if self.autocast_dtype is not None else contextlib.nullcontext())
        with torch.no_grad(), autocast:
            if self.stats.fallback is None:
                logprobs = self._score_from_hidden(packed, context)
                if logprobs is not None:
                    return logprobs
            with context():
                logits = _model_logits(self.model(input_ids=packed.ids, **self._call_kwargs))  # [batch, pos, vocab]
            if logits is None:
                raise LangNeuronError(f"{type(self.model).__name__} returns no logits; it is not a causal LM")
            rows, positions = packed.rows.to(logits.device), packed.positions.to(logits.device)
            return self._score_rows(lambda s: logits[rows[s], positions[s]], packed.targets, logits.shape[-1],
                                    logits.dtype)

    def _score_from_hidden(self, packed: _Packed,
                           context: Callable[[], AbstractContextManager[Any]]) -> torch.Tensor | None:
        """Log-probs from the final hidden states of the scored positions; ``None`` when the check fails."""
        assert self._tap is not None
        with context(), self._tap.armed_for_one_pass():
            returned = _model_logits(self.model(input_ids=packed.ids, **self._call_kwargs))  # [batch, 1, vocab]
        hidden, raw = self._tap.hidden, self._tap.raw
        reason = self._check(packed.ids, hidden, raw, returned)
        if reason is not None:
            self._fall_back(reason)
            return None
        assert hidden is not None and raw is not None and self._transform is not None
        states = hidden[packed.rows.to(hidden.device), packed.positions.to(hidden.device)]  # [n_scored, hidden]
        head, transform = self._tap.head, self._transform
        return self._score_rows(lambda s: transform.apply_(head(states[s])), packed.targets, raw.shape[-1], raw.dtype)

    def _check(self, ids: torch.Tensor, hidden: torch.Tensor | None, raw: torch.Tensor | None,
               returned: torch.Tensor | None) -> str | None:
        """Why the output-layer path would not reproduce the model's logits, or ``None`` when it does."""
        if hidden is None or raw is None:
            return "the output layer is not called on [batch, pos, hidden] states"
        if tuple(hidden.shape[:2]) != tuple(ids.shape):
            return f"the output layer sees {tuple(hidden.shape)} for inputs {tuple(ids.shape)}"
        if returned is None or returned.shape != raw.shape:
            return "the model's logits are not the output layer's output"
        tol = max(1e-5, 8 * torch.finfo(returned.dtype).eps)

        def matches(t: LogitTransform) -> bool:  # one row: a transform is the same for every row of a batch
            return torch.allclose(t.apply_(raw[:1].clone()).float(), returned[:1].float(), rtol=tol, atol=tol)

        if self._transform is None:
            self._transform = next((t for t in self._candidates if matches(t)), None)
            if self._transform is None:
                return "the model post-processes its logits in a way its configuration does not name"
            self.stats.transform = str(self._transform)
        elif not matches(self._transform):
            return f"the logits post-processing {self._transform} no longer reproduces the model's logits"
        return None

    def _score_rows(self, logits_of: Callable[[slice], torch.Tensor], targets: torch.Tensor, vocab: int,
                    dtype: torch.dtype) -> torch.Tensor:
        """``log_softmax(logits)[target]`` per row in float32, one chunk of rows at a time.

        ``torch.log_softmax`` itself, not an equivalent formula: its vectorised CPU kernel approximates ``exp``
        (per-token errors of a few 1e-6 against float64), and agreeing with ``hf`` to 1e-6 means reproducing that
        arithmetic. ``hf`` takes the softmax in the logits' own dtype; here it is float32 whatever the model's.
        """
        n = self.chunk_rows(vocab, dtype)
        out = torch.empty(targets.numel(), dtype=torch.float32)
        for start in range(0, targets.numel(), n):
            s = slice(start, start + n)
            logprobs = torch.log_softmax(logits_of(s), dim=-1, dtype=torch.float32)  # [n, vocab]
            out[s] = logprobs.gather(1, targets[s].to(logprobs.device)[:, None]).squeeze(1).cpu()
            del logprobs
        return out
