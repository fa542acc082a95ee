"""Explicit layouts for architectures that discovery cannot read, registered in code or by entry points.

An :class:`Adapter` names, for one ``config.model_type``, the decoder-layer list, the activation module and
the down projection. Adapters come from :data:`ADAPTERS` (filled by :func:`register_adapter`) or from the
entry-point group ``langneuron_eval.adapters`` of installed packages.
"""

from __future__ import annotations

import importlib.metadata as md
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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
ADAPTERS: dict[str, Adapter] = {
    "xlm": Adapter("transformer.ffns", None, "lin2"),
}


def register_adapter(model_type: str, adapter: Adapter) -> None:
    """Add or replace the adapter for ``model_type``; it wins over entry points and discovery."""
    ADAPTERS[model_type] = adapter


def _entry_point_adapter(model_type: str) -> Adapter | None:
    """The adapter an installed package declares for ``model_type`` (group ``langneuron_eval.adapters``)."""
    try:
        eps = [ep for ep in md.entry_points(group=ENTRY_POINT_GROUP) if ep.name == model_type]
    except Exception:  # a broken installed distribution must not break discovery
        return None
    if not eps:
        return None
    ep = eps[0]
    try:
        obj = ep.load()
    except Exception as e:
        raise LangNeuronError(f"cannot load adapter entry point {ep.name}={ep.value}: "
                              f"{e.__class__.__name__}: {e}") from None
    if callable(obj) and not isinstance(obj, Adapter):
        obj = obj()
    if not isinstance(obj, Adapter):
        raise LangNeuronError(f"adapter entry point {ep.name}={ep.value} gives a {type(obj).__name__}, "
                              "expected a langneuron_eval.core.adapters.Adapter")
    return obj


def entry_point_adapters() -> dict[str, str]:
    """model_type -> ``module:attr`` of every adapter entry point installed (for listings and docs)."""
    try:
        return {ep.name: ep.value for ep in md.entry_points(group=ENTRY_POINT_GROUP)}
    except Exception:
        return {}


def get_adapter(model_type: str) -> Adapter | None:
    """The explicit adapter for ``model_type`` (registered or from an entry point), or None: discover."""
    adapter = ADAPTERS.get(model_type)
    if adapter is None:
        adapter = _entry_point_adapter(model_type)
        if adapter is not None:
            ADAPTERS[model_type] = adapter
    return adapter


_FOUR_TIMES_HIDDEN = {"gpt2": "n_embd", "gpt-sw3": "n_embd", "bloom": "hidden_size"}  # FFN width not in the config


def config_intermediate_size(config: Any) -> int | None:
    """FFN units per layer from a config alone, for tools that read no weights; None if the config does not say.

    Loaded models take the width from the down projection's weight instead (:func:`resolve_sites`).
    """
    adapter = ADAPTERS.get(getattr(config, "model_type", ""))
    if adapter is not None and adapter.intermediate_size is not None:
        return int(adapter.intermediate_size(config))
    cfg = config.get_text_config() if hasattr(config, "get_text_config") else config
    for name in ("intermediate_size", "ffn_dim", "n_inner", "d_ff", "ffn_hidden_size", "decoder_ffn_dim"):
        value = getattr(cfg, name, None)
        if isinstance(value, int):
            return value
    hidden = _FOUR_TIMES_HIDDEN.get(getattr(config, "model_type", ""))
    return 4 * int(getattr(cfg, hidden)) if hidden else None
