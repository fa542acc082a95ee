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

Leaving the context removes every hook, so the model is restored exactly. Distinct interventions nest:
the inner one edits what the outer one produced and each removes only its own hooks; entering the same
object again while it is active is refused.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from langneuron_eval.core.fingerprint import NeuronSites
from langneuron_eval.core.hooks import hook_sites
from langneuron_eval.core.moe_interventions import MoEEdits
from langneuron_eval.core.neurons import NeuronFile
from langneuron_eval.core.sites import resolve_for_file
from langneuron_eval.errors import LangNeuronError

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
        if check_mode(self.mode) == "none":
            raise LangNeuronError("a LanguageEdit needs mode deactivate, activate or scale, not none")


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
class _LayerOps:
    """All edits of one layer, fused: each unit ends up either set to a value or scaled by a factor.

    A chain of edits on one unit composes to ``x -> a*x + b``; "set v" makes it ``(0, v)`` and
    "scale s" multiplies both by ``s``, so a unit that was ever set has ``a = 0`` and one that was
    only scaled has ``b = 0``. Two indexed writes per layer therefore apply any number of
    languages' edits, which keeps the per-decoding-step cost of the hook flat.
    """

    set_index: torch.Tensor  # [n_set] long
    set_values: torch.Tensor  # [n_set] float32
    scale_index: torch.Tensor  # [n_scale] long
    scale_factors: torch.Tensor  # [n_scale] float32

    def to(self, device: torch.device, dtype: torch.dtype) -> _LayerOps:
        return _LayerOps(self.set_index.to(device), self.set_values.to(device, dtype),
                         self.scale_index.to(device), self.scale_factors.to(device, dtype))


def compile_edits(neurons: NeuronFile, edits: Sequence[LanguageEdit]) -> dict[int, _LayerOps]:
    """Turn language edits into fused per-layer index/value tensors, once, outside the hot path.

    Edits apply in order: a unit shared by a deactivated and a later activated language ends up activated.
    """
    affine: dict[int, dict[int, tuple[float, float]]] = {}  # layer -> unit -> (a, b) of a*x + b
    for edit in edits:
        units = neurons.units(edit.lang)
        if edit.mode == "activate":
            value = parse_value(edit.value)
            vals = [value] * len(units) if isinstance(value, float) else neurons.value_table(edit.lang, value)
            vals = [v * edit.strength for v in vals]
        else:
            vals = [0.0] * len(units)
        for (layer, unit), v in zip(units, vals):
            per_unit = affine.setdefault(layer, {})
            if edit.mode == "scale":
                a, b = per_unit.get(unit, (1.0, 0.0))
                per_unit[unit] = (a * edit.strength, b * edit.strength)
            else:
                per_unit[unit] = (0.0, v)
    compiled = {}
    for layer, per_unit in affine.items():
        order = sorted(per_unit)
        sets = [u for u in order if per_unit[u][0] == 0.0]
        scales = [u for u in order if per_unit[u][0] != 0.0]
        compiled[layer] = _LayerOps(torch.tensor(sets, dtype=torch.long),
                                    torch.tensor([per_unit[u][1] for u in sets], dtype=torch.float32),
                                    torch.tensor(scales, dtype=torch.long),
                                    torch.tensor([per_unit[u][0] for u in scales], dtype=torch.float32))
    return compiled


def split_by_segment(ops: dict[int, _LayerOps], sites: NeuronSites) -> dict[tuple[int, int], _LayerOps]:
    """Fused per-layer ops keyed by (layer, segment offset), indices relative to the segment.

    At ``linear_out`` a hook sees one linear module's output at a time; splitting once here keeps the
    hook at two indexed writes per module. At the FFN sites every layer is one segment at offset 0.
    """
    if not sites.segments:
        return {(layer, 0): o for layer, o in ops.items()}
    out = {}
    for layer, o in ops.items():
        for seg in sites.segments:
            lo, hi = seg.offset, seg.offset + seg.width
            s = (o.set_index >= lo) & (o.set_index < hi)
            c = (o.scale_index >= lo) & (o.scale_index < hi)
            if bool(s.any()) or bool(c.any()):
                out[(layer, lo)] = _LayerOps(o.set_index[s] - lo, o.set_values[s], o.scale_index[c] - lo,
                                             o.scale_factors[c])
    return out


class _GenerationSteps:
    """Tells prefill from decoding steps inside ``generate`` for ``positions=generated`` (needs ``model``,
    ``positions``, ``_generating`` and ``_step`` on the instance)."""

    model: nn.Module
    positions: str
    _generating: bool
    _step: int

    @contextlib.contextmanager
    def generating(self) -> Iterator[None]:
        """Mark a ``generate`` call so ``positions=generated`` can tell prefill from decoding steps."""
        def count_step(_mod, _args, _kwargs, _out):
            self._step += 1

        self._generating, self._step = True, 0
        # only positions=generated reads the step; a hook on the whole model would cost every step otherwise
        handle = (self.model.register_forward_hook(count_step, with_kwargs=True)
                  if self.positions == "generated" else None)
        try:
            yield
        finally:
            if handle is not None:
                handle.remove()
            self._generating, self._step = False, 0


class Intervention(_GenerationSteps):
    """Applies language edits to a model while active; a no-op with no edits.

    Usage::

        iv = Intervention(model, neurons, [LanguageEdit("activate", "zh", "mean", 8.0)])
        with iv:
            model(**batch)
    """

    def __init__(self, model: nn.Module, neurons: NeuronFile | None, edits: Sequence[LanguageEdit] = (),
                 positions: str = "all", sites: NeuronSites | None = None) -> None:
        check_positions(positions)
        if edits and neurons is None:
            raise LangNeuronError("an intervention needs a neuron file")
        self.model = model
        self.positions = positions
        self.edits = list(edits)
        # the file's site, and the module template it was recorded with (None: discovery)
        self.sites = sites or resolve_for_file(model, neurons.fingerprint if neurons is not None else None)
        if neurons is not None:
            neurons.check_model(self.sites.fingerprint)
        # mixture-of-experts files: expert units and routing are edited inside the MoE blocks (docs/moe.md)
        self._moe = MoEEdits.for_sites(model, self.sites, neurons, self.edits, positions, compile_edits)
        self._ops = (split_by_segment(compile_edits(neurons, self.edits), self.sites)
                     if self.edits and self._moe is None else {})
        self._device_ops: dict[tuple[int, int, torch.device, torch.dtype], _LayerOps] = {}
        self._stack: contextlib.ExitStack | None = None
        self._generating = False
        self._step = 0
        self.edit_calls = 0  # how many site tensors were edited; tests use it to see hooks fire while decoding

    @property
    def active(self) -> bool:
        return bool(self._ops) or self._moe is not None

    def _ops_for(self, layer: int, offset: int, like: torch.Tensor) -> _LayerOps:
        key = (layer, offset, like.device, like.dtype)
        ops = self._device_ops.get(key)
        if ops is None:
            ops = self._device_ops[key] = self._ops[(layer, offset)].to(like.device, like.dtype)
        return ops

    def _edit(self, layer: int, acts: torch.Tensor, offset: int = 0) -> torch.Tensor | None:
        # acts: [batch, pos, d_mlp] (at linear_out one module's [batch, pos, width], units from offset)
        if (layer, offset) not in self._ops:
            return None
        if self.positions == "generated":
            if not self._generating:
                return None
            start = acts.shape[1] - 1 if self._step == 0 else 0  # prefill: only the position that predicts
        else:
            start = 0
        ops = self._ops_for(layer, offset, acts)
        # Without autograd the site tensor is a fresh temporary read only by the next operation, so it is
        # edited in place (no copy per layer and decoding step); with autograd a copy keeps gradients right.
        out = acts if not torch.is_grad_enabled() else acts.clone()
        view = out[:, start:] if start else out  # [batch, pos', d_mlp]
        if ops.set_index.numel():
            view[..., ops.set_index] = ops.set_values
        if ops.scale_index.numel():
            view[..., ops.scale_index] *= ops.scale_factors
        self.edit_calls += 1
        return out

    def __enter__(self) -> Intervention:
        # Entering the same object twice would register its hooks twice (a scale applied squared) and lose the
        # first set of handles (hooks left behind on exit); distinct Interventions nest (inner applied last).
        if self._stack is not None:
            raise LangNeuronError("this Intervention is already active; a nested `with` on the same object would "
                                  "apply its edits twice - nest a second Intervention instead")
        self._stack = contextlib.ExitStack()
        if self._ops:
            self._stack.enter_context(hook_sites(self.sites, self._edit))
        if self._moe is not None:
            self._stack.enter_context(self._moe.hooks())
        return self

    def __exit__(self, *exc) -> None:
        assert self._stack is not None
        self._stack.close()
        self._stack = None



# ------------------------------------------------------------------------------------------ one condition per row
@dataclass(frozen=True)
class _RowOps:
    """One layer's (segment's) edits for a whole batch: flat (row, unit) pairs, each row its condition's units."""

    set_rows: torch.Tensor  # [n_set] long
    set_units: torch.Tensor  # [n_set] long
    set_values: torch.Tensor  # [n_set]
    scale_rows: torch.Tensor  # [n_scale] long
    scale_units: torch.Tensor  # [n_scale] long
    scale_factors: torch.Tensor  # [n_scale]

    def to(self, device: torch.device, dtype: torch.dtype) -> _RowOps:
        return _RowOps(self.set_rows.to(device), self.set_units.to(device), self.set_values.to(device, dtype),
                       self.scale_rows.to(device), self.scale_units.to(device), self.scale_factors.to(device, dtype))


def _row_ops(per_row: Sequence[_LayerOps | None]) -> _RowOps | None:
    """Concatenate the fused ops of each row's condition, tagging every unit with its row."""
    present = [(r, o) for r, o in enumerate(per_row) if o is not None]
    if not present:
        return None

    def rows_of(index_of: Any) -> torch.Tensor:
        return torch.cat([torch.full((index_of(o).numel(),), r, dtype=torch.long) for r, o in present])

    return _RowOps(rows_of(lambda o: o.set_index), torch.cat([o.set_index for _, o in present]),
                   torch.cat([o.set_values for _, o in present]), rows_of(lambda o: o.scale_index),
                   torch.cat([o.scale_index for _, o in present]), torch.cat([o.scale_factors for _, o in present]))


class RowInterventions(_GenerationSteps):
    """Several interventions in one forward pass: each batch row carries its own condition.

    ``conditions[k]`` is the edit list of condition ``k`` (``()``: no intervention). Inside
    ``with riv.rows([k_row0, k_row1, ...]):`` row ``r`` of every site tensor is edited as
    ``Intervention(model, neurons, conditions[k_r])`` would edit it alone: the same fused per-layer ops
    (:func:`compile_edits`), written by two indexed writes per layer over flat (row, unit) pairs
    (``acts[rows, :, units] = values``, ``acts[rows, :, units] *= factors``). The cost stays proportional to the
    edited units, as for one intervention; a dense per-row mask would cost batch x positions x units per layer and
    turn an ``inf`` activation times 0 into NaN. This lets a perplexity matrix score the K+1 conditions
    ("none", "deactivate language i") of one document in one batch. Only ``positions="all"`` edits
    log-likelihood passes (as for :class:`Intervention`); ``positions="generated"`` edits only inside
    :meth:`generating`.
    """

    def __init__(self, model: nn.Module, neurons: NeuronFile | None, conditions: Sequence[Sequence[LanguageEdit]],
                 positions: str = "all", sites: NeuronSites | None = None) -> None:
        check_positions(positions)
        if any(conditions) and neurons is None:
            raise LangNeuronError("an intervention needs a neuron file")
        self.model, self.positions = model, positions
        self.sites = sites or resolve_for_file(model, neurons.fingerprint if neurons is not None else None)
        if neurons is not None:
            neurons.check_model(self.sites.fingerprint)
        if self.sites.moe is not None:
            raise LangNeuronError("per-row conditions (ppl-matrix, batched steering) do not support mixture-of-experts "
                                  "neuron files yet")
        self._ops = [split_by_segment(compile_edits(neurons, c), self.sites) if c else {} for c in conditions]
        self._keys = sorted({key for ops in self._ops for key in ops})
        self._cache: dict[tuple[int, ...], dict[tuple[int, int], _RowOps]] = {}
        self._device_cache: dict[tuple[tuple[int, ...], tuple[int, int], torch.device, torch.dtype], _RowOps] = {}
        self._generating, self._step = False, 0

    def _batch_ops(self, conds: tuple[int, ...]) -> dict[tuple[int, int], _RowOps]:
        if conds not in self._cache:
            if len(self._cache) > 256:  # batches repeat a few patterns; keep the cache bounded all the same
                self._cache.clear()
                self._device_cache.clear()
            built = {key: _row_ops([self._ops[k].get(key) for k in conds]) for key in self._keys}
            self._cache[conds] = {key: ops for key, ops in built.items() if ops is not None}
        return self._cache[conds]

    @contextlib.contextmanager
    def rows(self, conds: Sequence[int]) -> Iterator[None]:
        """Edit row ``r`` of every forward pass in the block by condition ``conds[r]``."""
        conds = tuple(int(k) for k in conds)
        if any(k < 0 or k >= len(self._ops) for k in conds):
            raise LangNeuronError(f"row conditions {conds} name a condition outside 0..{len(self._ops) - 1}")
        ops = self._batch_ops(conds)
        if not ops:
            yield
            return

        def edit(layer: int, acts: torch.Tensor, offset: int = 0) -> torch.Tensor | None:
            # acts: [batch, pos, d_mlp] (at linear_out one module's [batch, pos, width], units from offset)
            row_ops = ops.get((layer, offset))
            if row_ops is None:
                return None
            if acts.shape[0] != len(conds):
                raise LangNeuronError(f"a batch of {acts.shape[0]} rows under {len(conds)} row conditions")
            start = self._start(acts)
            if start is None:
                return None
            key = (conds, (layer, offset), acts.device, acts.dtype)
            o = self._device_cache.get(key) or self._device_cache.setdefault(key, row_ops.to(acts.device, acts.dtype))
            out = acts if not torch.is_grad_enabled() else acts.clone()
            if o.set_rows.numel():
                out[o.set_rows, start:, o.set_units] = o.set_values[:, None]
            if o.scale_rows.numel():
                out[o.scale_rows, start:, o.scale_units] *= o.scale_factors[:, None]
            return out

        with hook_sites(self.sites, edit):
            yield

    def _start(self, acts: torch.Tensor) -> int | None:
        """First edited position (``None``: none), as :class:`Intervention` decides it."""
        if self.positions == "all":
            return 0
        if not self._generating:
            return None
        return acts.shape[1] - 1 if self._step == 0 else 0


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise LangNeuronError(f"unknown intervention mode={mode!r}; choose one of {', '.join(MODES)}")
    return mode


def check_positions(positions: str) -> str:
    if positions not in POSITIONS:
        raise LangNeuronError(f"unknown positions={positions!r}; choose one of {', '.join(POSITIONS)}")
    return positions


def check_request(mode: str, langs: Sequence[str], lang_without_mode: bool = False) -> None:
    """The one place that checks a mode against its target languages (CLI, Python and ``--model_args``).

    ``lang_without_mode`` allows ``lang`` with ``mode=none`` (``deactivate=others`` uses it to name the
    language to keep).
    """
    check_mode(mode)
    if mode != "none" and not langs:
        raise LangNeuronError(f"mode={mode} needs lang=<code> (several joined with '+', e.g. lang=zh+ja)")
    if mode == "none" and langs and not lang_without_mode:
        raise LangNeuronError(f"lang={'+'.join(langs)} is set but mode=none; pass mode=deactivate, activate or scale")


def edits_from_args(mode: str, langs: Sequence[str], value: str | float = "mean", strength: float = 1.0,
                    deactivate: Sequence[str] = ()) -> list[LanguageEdit]:
    """Build the edit list from the flat options a CLI or ``--model_args`` offers.

    ``deactivate`` languages are zeroed first, then ``mode`` is applied to ``langs`` (so a neuron shared by a
    deactivated and an activated language ends up activated).
    """
    check_request(mode, langs)
    edits = [LanguageEdit("deactivate", lang) for lang in deactivate]
    if mode != "none":
        edits += [LanguageEdit(mode, lang, value, strength) for lang in langs]
    return edits


# ---------------------------------------------------------------------- the request, as users type it
OTHERS = "others"  # deactivate=others: every language of the neuron file except lang


def split_langs(value: Any, what: str) -> tuple[str, ...]:
    """``"zh+ja"`` (lm-eval's --model_args splits on commas, so languages are joined with '+')."""
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        parts = value.split("+")
    elif isinstance(value, Iterable):
        parts = [str(v) for v in value]
    else:
        raise LangNeuronError(f"{what}={value!r} is not a language code; join several with '+', e.g. {what}=zh+ja")
    langs = [p.strip() for p in parts]
    if any(not p for p in langs):
        raise LangNeuronError(f"{what}={value!r} has an empty language code; join several with '+', e.g. {what}=zh+ja")
    return tuple(dict.fromkeys(langs))


def as_float(value: Any, what: str) -> float:
    if isinstance(value, bool):
        raise LangNeuronError(f"{what}={value!r} is not a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise LangNeuronError(f"{what}={value!r} is not a number") from None


@dataclass(frozen=True)
class InterventionSpec:
    """The intervention requested through ``--model_args``, validated before the model is loaded.

    Attributes:
        mode: none | deactivate | activate | scale (applied to ``langs``).
        langs: target languages of ``mode``.
        value: activation value for ``activate``: ``mean``, ``median``, ``pNN`` or a number.
        strength: multiplier of the activation value (``activate``) or of the activation (``scale``).
        positions: ``all`` (prompt and generated tokens) or ``generated`` (only while generating).
        deactivate: languages zeroed *before* ``mode`` is applied, or ``("others",)``.
    """

    mode: str = "none"
    langs: tuple[str, ...] = ()
    value: str | float = "mean"
    strength: float = 1.0
    positions: str = "all"
    deactivate: tuple[str, ...] = ()

    @classmethod
    def from_args(cls, mode: Any = "none", lang: Any = None, value: Any = "mean", strength: Any = 1.0,
                  positions: Any = "all", deactivate: Any = None) -> InterventionSpec:
        # lm-eval's argument parser turns the string "none" into None
        mode = check_mode("none" if mode is None else str(mode).strip().lower())
        positions = check_positions("all" if positions is None else str(positions).strip().lower())
        langs = split_langs(lang, "lang")
        deact = split_langs(deactivate, "deactivate")
        if OTHERS in deact and len(deact) > 1:
            raise LangNeuronError("deactivate=others cannot be combined with other languages")
        if OTHERS in deact and not langs:
            raise LangNeuronError("deactivate=others needs lang=<code>: 'others' means every language except lang")
        check_request(mode, langs, lang_without_mode=deact == (OTHERS,))
        return cls(mode, langs, parse_value(value if value is not None else "mean"),
                   as_float(1.0 if strength is None else strength, "strength"), positions, deact)

    @property
    def needs_neurons(self) -> bool:
        return self.mode != "none" or bool(self.deactivate)

    def deactivated(self, neurons: NeuronFile | None) -> tuple[str, ...]:
        """``deactivate`` with ``others`` expanded against the neuron file's languages."""
        if self.deactivate == (OTHERS,):
            have = list(neurons.languages) if neurons is not None else []
            return tuple(lang for lang in have if lang not in self.langs)
        return self.deactivate

    def check_against(self, neurons: NeuronFile, path: str) -> None:
        """Fail before the (slow) model load when the file cannot serve this intervention."""
        have = list(neurons.languages)
        for lang in (*self.langs, *self.deactivated(neurons)):
            if lang not in neurons.languages:
                raise LangNeuronError(
                    f"language {lang!r} is not in neuron file {path} (it has: {', '.join(have) or 'none'})")
        if self.mode == "activate" and isinstance(self.value, str):
            for lang in self.langs:
                neurons.value_table(lang, self.value)  # raises a one-line error naming the missing statistic

    def edits(self, neurons: NeuronFile | None):
        langs = self.langs if self.mode != "none" else ()
        return edits_from_args(self.mode, langs, self.value, self.strength, self.deactivated(neurons))
