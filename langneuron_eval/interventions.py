"""Interventions on language neurons, as a context manager over forward hooks.

Modes, per language (several can be combined, applied in the order given):

``deactivate``  set the language's neurons to 0 (LAPE, Zhang et al.).
``activate``    set them to a value times ``strength``: a per-neuron statistic of that language stored in
                the neuron file (``mean``, ``median``, ``pNN``, e.g. ``p90``) or a constant number
                (Kojima et al. force the per-language median; LAPE's paper the mean).
``scale``       multiply them by ``strength``.

Positions: ``all`` edits every position of every forward pass (prompt and generated tokens; the
reference codes' behaviour). ``generated`` edits only while generating, and there only the positions
that produce new tokens: the last prompt position in the first (prefill) pass and every later decoding
step. Outside :meth:`Intervention.generating` (e.g. log-likelihood requests) ``generated`` edits nothing.

Leaving the context removes every hook, so the model is restored exactly.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn

from .errors import LangNeuronError
from .hooks import hook_sites
from .neurons import NeuronFile
from .sites import NeuronSites, resolve_sites

MODES = ("none", "deactivate", "activate", "scale")
POSITIONS = ("all", "generated")
_PCT = re.compile(r"^p(\d{1,2}(\.\d+)?|100)$")


@dataclass(frozen=True)
class LanguageEdit:
    """One language's neurons and what to do with them."""

    mode: str
    lang: str
    value: str | float = "mean"
    strength: float = 1.0

    def __post_init__(self) -> None:
        if self.mode not in MODES[1:]:
            raise LangNeuronError(f"unknown intervention mode {self.mode!r}; choose one of {', '.join(MODES)}")


def parse_value(value: str | float) -> str | float:
    """``mean`` | ``median`` | ``pNN`` | a number -> a statistic name or a float."""
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    if text in ("mean", "median") or _PCT.match(text):
        return text
    try:
        return float(text)
    except ValueError:
        raise LangNeuronError(f"invalid activation value {value!r}; use mean, median, pNN (e.g. p90) or a number") from None


@dataclass(frozen=True)
class _Op:
    kind: str  # "set" | "scale"
    index: torch.Tensor  # [n] long, neurons in this layer
    values: torch.Tensor  # [n] float32


def compile_edits(neurons: NeuronFile, edits: Sequence[LanguageEdit]) -> dict[int, list[_Op]]:
    """Turn language edits into per-layer index/value tensors, once, outside the hot path."""
    per_layer: dict[int, list[_Op]] = {}
    for edit in edits:
        units = neurons.units(edit.lang)
        if edit.mode == "activate":
            value = parse_value(edit.value)
            if isinstance(value, float):
                vals = [value] * len(units)
            else:
                vals = neurons.value_table(edit.lang, value)
            vals = [v * edit.strength for v in vals]
        elif edit.mode == "scale":
            vals = [edit.strength] * len(units)
        else:
            vals = [0.0] * len(units)
        grouped: dict[int, tuple[list[int], list[float]]] = {}
        for (layer, unit), v in zip(units, vals):
            idx, vs = grouped.setdefault(layer, ([], []))
            idx.append(unit)
            vs.append(v)
        kind = "scale" if edit.mode == "scale" else "set"
        for layer, (idx, vs) in grouped.items():
            per_layer.setdefault(layer, []).append(
                _Op(kind, torch.tensor(idx, dtype=torch.long), torch.tensor(vs, dtype=torch.float32)))
    return per_layer


class Intervention:
    """Applies language edits to a model while active; a no-op with no edits.

    Usage::

        iv = Intervention(model, neurons, [LanguageEdit("activate", "zh", "mean", 8.0)])
        with iv:
            model(**batch)
    """

    def __init__(self, model: nn.Module, neurons: NeuronFile | None, edits: Sequence[LanguageEdit] = (),
                 positions: str = "all", sites: NeuronSites | None = None) -> None:
        if positions not in POSITIONS:
            raise LangNeuronError(f"unknown positions {positions!r}; choose one of {', '.join(POSITIONS)}")
        if edits and neurons is None:
            raise LangNeuronError("an intervention needs a neuron file")
        self.model = model
        self.positions = positions
        self.edits = list(edits)
        site = neurons.fingerprint.site if neurons is not None else "act_out"
        self.sites = sites or resolve_sites(model, site)
        if neurons is not None:
            neurons.check_model(self.sites.fingerprint)
        self._ops = compile_edits(neurons, self.edits) if self.edits else {}
        self._device_ops: dict[tuple[int, torch.device, torch.dtype], list[tuple[str, torch.Tensor, torch.Tensor]]] = {}
        self._stack: contextlib.ExitStack | None = None
        self._generating = False
        self._step = 0
        self.edit_calls = 0  # how many site tensors were edited; tests use it to see hooks fire while decoding

    @property
    def active(self) -> bool:
        return bool(self._ops)

    def _ops_for(self, layer: int, like: torch.Tensor) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
        key = (layer, like.device, like.dtype)
        if key not in self._device_ops:
            self._device_ops[key] = [(op.kind, op.index.to(like.device), op.values.to(like.device, like.dtype))
                                     for op in self._ops.get(layer, [])]
        return self._device_ops[key]

    def _edit(self, layer: int, acts: torch.Tensor) -> torch.Tensor | None:
        # acts: [batch, pos, d_mlp]
        ops = self._ops_for(layer, acts) if layer in self._ops else None
        if not ops:
            return None
        if self.positions == "generated":
            if not self._generating:
                return None
            start = acts.shape[1] - 1 if self._step == 0 else 0  # prefill: only the position that predicts
        else:
            start = 0
        out = acts.clone()
        view = out[:, start:]  # [batch, pos', d_mlp]
        for kind, index, values in ops:
            if kind == "set":
                view[..., index] = values
            else:
                view[..., index] = view[..., index] * values
        self.edit_calls += 1
        return out

    @contextlib.contextmanager
    def generating(self) -> Iterator[None]:
        """Mark a ``generate`` call so ``positions=generated`` can tell prefill from decoding steps."""
        def count_step(_mod, _args, _kwargs, _out):
            self._step += 1

        self._generating, self._step = True, 0
        handle = self.model.register_forward_hook(count_step, with_kwargs=True)
        try:
            yield
        finally:
            handle.remove()
            self._generating, self._step = False, 0

    def __enter__(self) -> Intervention:
        self._stack = contextlib.ExitStack()
        if self._ops:
            self._stack.enter_context(hook_sites(self.sites, self._edit))
        return self

    def __exit__(self, *exc) -> None:
        assert self._stack is not None
        self._stack.close()
        self._stack = None


def edits_from_args(mode: str, langs: Sequence[str], value: str | float = "mean", strength: float = 1.0,
                    deactivate: Sequence[str] = ()) -> list[LanguageEdit]:
    """Build the edit list from the flat options a CLI or ``--model_args`` offers.

    ``deactivate`` languages are zeroed first, then ``mode`` is applied to ``langs`` (so a neuron shared by a
    deactivated and an activated language ends up activated).
    """
    if mode not in MODES:
        raise LangNeuronError(f"unknown intervention mode {mode!r}; choose one of {', '.join(MODES)}")
    if mode != "none" and not langs:
        raise LangNeuronError(f"mode={mode} needs lang=<code> (several joined with '+')")
    if mode == "none" and langs:
        raise LangNeuronError("lang= is set but mode=none; pass mode=deactivate, activate or scale")
    edits = [LanguageEdit("deactivate", lang) for lang in deactivate]
    if mode != "none":
        edits += [LanguageEdit(mode, lang, value, strength) for lang in langs]
    return edits
