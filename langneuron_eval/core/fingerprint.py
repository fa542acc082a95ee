"""The shape facts a stats or neuron file shares with the model it was made on, and the hookable sites of a loaded one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch.nn as nn

from langneuron_eval.core.adapters import Adapter
from langneuron_eval.errors import LangNeuronError


@dataclass(frozen=True)
class Segment:
    """One linear module's outputs inside a layer's flat unit range (site ``linear_out``).

    ``path`` is relative to the decoder layer (the same in every layer); the module's output index
    ``i`` is the layer's unit ``offset + i``.
    """

    path: str
    offset: int
    width: int


@dataclass(frozen=True)
class ModelFingerprint:
    """The shape facts a stats or neuron file must share with the model it is applied to.

    ``module`` is the user's module-path template for the site (None: found by adapter or discovery);
    ``segments`` the linear modules of a ``linear_out`` layer. Each is written only when set, so files
    without them stay byte-identical to older versions.
    """

    model_type: str
    num_layers: int
    intermediate_size: int
    site: str
    module: str | None = None
    segments: tuple[Segment, ...] | None = None
    # mixture-of-experts layout (langneuron_eval.core.moe_units.MoEUnits.to_dict()); None for dense models
    moe: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"model_type": self.model_type, "num_layers": self.num_layers,
                             "intermediate_size": self.intermediate_size, "site": self.site}
        if self.module is not None:
            d["module"] = self.module
        if self.segments is not None:
            d["segments"] = [[s.path, s.offset, s.width] for s in self.segments]
        if self.moe is not None:
            d["moe"] = self.moe
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelFingerprint:
        try:
            module, segs = d.get("module"), d.get("segments")
            segments = None if segs is None else tuple(Segment(str(p), int(o), int(w)) for p, o, w in segs)
            moe = d.get("moe")
            if moe is not None and not isinstance(moe, dict):
                raise TypeError("moe must be an object")
            return cls(str(d["model_type"]), int(d["num_layers"]), int(d["intermediate_size"]), str(d["site"]),
                       None if module is None else str(module), segments, moe)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise LangNeuronError(f"malformed model fingerprint {d!r}: {e}") from None

    def describe(self) -> str:
        where = f" ({self.module})" if self.module else ""
        if self.segments:
            where = f" ({', '.join(f'{s.path} {s.width}' for s in self.segments)})"
        if self.moe is not None:
            m = self.moe
            where = (f" ({len(m['moe_layers'])} MoE layers x {m['num_experts']} experts x {m['expert_width']} units"
                     + (f" + a shared expert of {m['shared_width']}" if m.get("shared_width") else "") + ")")
        return (f"{self.model_type} with {self.num_layers} layers x {self.intermediate_size} units "
                f"at site {self.site}{where}")

    def unit_name(self, unit: int) -> tuple[str, int]:
        """A layer's flat unit index -> (module path within the layer, index in that module's output)."""
        for s in self.segments or ():
            if s.offset <= unit < s.offset + s.width:
                return s.path, unit - s.offset
        return self.site, unit


@dataclass(frozen=True)
class NeuronSites:
    """The hookable modules of one loaded model at one site."""

    model_type: str
    site: str
    adapter: Adapter | None
    modules: tuple[nn.Module, ...]  # one per layer
    intermediate_size: int
    paths: tuple[str, ...] = ()  # the module path of each entry of ``modules``
    template: str | None = None  # the user's module-path template, when one was given
    # linear_out: ``modules`` are the decoder layers themselves (the recorder stops after the last one);
    # the hooked modules are ``segment_modules[layer][i]``, whose outputs are units of ``segments[i]``
    segments: tuple[Segment, ...] = ()
    segment_modules: tuple[tuple[nn.Module, ...], ...] = ()
    moe: dict[str, Any] | None = None  # mixture-of-experts layout (see ModelFingerprint.moe)

    @property
    def num_layers(self) -> int:
        return len(self.modules)

    @property
    def is_pre_hook(self) -> bool:
        """``down_in`` is the *input* of a module, so it needs a forward pre-hook."""
        return self.site == "down_in"

    def hook_points(self) -> list[list[tuple[nn.Module, int]]]:
        """Per layer, every (module to hook, offset of its tensor in the layer's units); offset 0 at FFN sites."""
        if self.segments:
            return [[(m, s.offset) for m, s in zip(mods, self.segments)] for mods in self.segment_modules]
        return [[(m, 0)] for m in self.modules]

    @property
    def fingerprint(self) -> ModelFingerprint:
        return ModelFingerprint(self.model_type, self.num_layers, self.intermediate_size, self.site, self.template,
                                self.segments or None, self.moe)
