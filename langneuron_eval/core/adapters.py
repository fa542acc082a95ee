"""Explicit layouts for architectures that discovery cannot read, registered in code or by entry points.

An :class:`Adapter` names, for one ``config.model_type``, the decoder-layer list, the activation module and
the down projection. Adapters come from :data:`REGISTRY` (filled by :func:`register_adapter`) or from the
entry-point group ``langneuron_eval.adapters`` of installed packages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from langneuron_eval.core.registry import Registry
from langneuron_eval.errors import LangNeuronError

ENTRY_POINT_GROUP = "langneuron_eval.adapters"


@dataclass(frozen=True)
class Adapter:
    """How to find the FFN neurons of one architecture when discovery cannot.

    Attributes:
        layers: dotted path from the ``*ForCausalLM`` model to the list of decoder layers.
        act: dotted path from a decoder layer to the activation module (its output is ``act_out``);
            None when the activation is a function call (then only ``down_in`` can be hooked).
        down: dotted path from a decoder layer to the down projection (its input is ``down_in``).
        intermediate_size: reads the number of FFN units per layer from the config; None: read it from
            the down projection's weight.
        gated: whether ``down_in`` differs from ``act_out`` (gate * up).
    """

    layers: str
    act: str | None
    down: str
    intermediate_size: Callable[[Any], int] | None = None
    gated: bool = False

    def module_path(self, site: str) -> str | None:
        return {"act_out": self.act, "down_in": self.down}[site]


# Explicit layouts for architectures discovery cannot see. XLM keeps its FFNs in a list of their own
# (``transformer.ffns``, parallel to ``transformer.attentions``) and applies GELU as a function.
REGISTRY = Registry("adapter", ENTRY_POINT_GROUP, {"xlm": Adapter("transformer.ffns", None, "lin2")})


def register_adapter(model_type: str, adapter: Adapter) -> None:
    """Add or replace the adapter for ``model_type``; it wins over entry points and discovery."""
    REGISTRY.register(model_type, adapter, replace=True)


def entry_point_adapters() -> dict[str, str]:
    """model_type -> ``module:attr`` of every adapter entry point installed (for listings and docs)."""
    return REGISTRY.entry_points()


def get_adapter(model_type: str) -> Adapter | None:
    """The explicit adapter for ``model_type`` (registered or from an entry point), or None: discover.

    An entry point may name an :class:`Adapter` or a callable that returns one.
    """
    obj = REGISTRY.find(model_type)
    if obj is None or isinstance(obj, Adapter):
        return obj
    made = obj() if callable(obj) else obj
    if not isinstance(made, Adapter):
        raise LangNeuronError(f"adapter entry point {model_type}={REGISTRY.entry_points().get(model_type)} gives a "
                              f"{type(made).__name__}, expected a langneuron_eval.core.adapters.Adapter")
    REGISTRY.register(model_type, made, replace=True)
    return made


_FOUR_TIMES_HIDDEN = {"gpt2": "n_embd", "gpt-sw3": "n_embd", "bloom": "hidden_size"}  # FFN width not in the config


def config_intermediate_size(config: Any) -> int | None:
    """FFN units per layer from a config alone, for tools that read no weights; None if the config does not say.

    Loaded models take the width from the down projection's weight instead (:func:`resolve_sites`).
    """
    adapter = REGISTRY.find(getattr(config, "model_type", ""))
    adapter = adapter if isinstance(adapter, Adapter) else None
    if adapter is not None and adapter.intermediate_size is not None:
        return int(adapter.intermediate_size(config))
    cfg = config.get_text_config() if hasattr(config, "get_text_config") else config
    for name in ("intermediate_size", "ffn_dim", "n_inner", "d_ff", "ffn_hidden_size", "decoder_ffn_dim"):
        value = getattr(cfg, name, None)
        if isinstance(value, int):
            return value
    hidden = _FOUR_TIMES_HIDDEN.get(getattr(config, "model_type", ""))
    return 4 * int(getattr(cfg, hidden)) if hidden else None
