"""Where the "neurons" of each architecture live: one adapter table keyed by ``config.model_type``.

A neuron is unit ``j`` of the FFN intermediate layer ``i``. Two hook sites are defined for every
architecture, named by what the hook sees:

``act_out``
    Output of the FFN non-linearity. In gated MLPs (Llama, Mistral, Qwen2, Gemma) this is the gate
    activation ``act_fn(gate_proj(x))`` that LAPE (Tang et al.) and Zhang et al. threshold at 0;
    elsewhere it is the activation fed to the down projection. This is the default site.
``down_in``
    Input of the FFN down projection. In gated MLPs this is ``act_fn(gate_proj(x)) * up_proj(x)``;
    in ungated MLPs it equals ``act_out``. Zeroing a unit is the same at both sites, but setting it
    to a non-zero value is not, so every stats and neuron file records its site.

To support a new architecture, add one :class:`Adapter` to :data:`ADAPTERS` (or call
:func:`register_adapter`) naming the decoder-layer list, the two modules and how to read the
intermediate size from the config.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch.nn as nn

from .errors import LangNeuronError

SITES = ("act_out", "down_in")
DEFAULT_SITE = "act_out"


@dataclass(frozen=True)
class Adapter:
    """How to find the FFN neurons of one architecture.

    Attributes:
        layers: dotted path from the ``*ForCausalLM`` model to the list of decoder layers.
        act: dotted path from a decoder layer to the activation module (its output is ``act_out``).
        down: dotted path from a decoder layer to the down projection (its input is ``down_in``).
        intermediate_size: reads the number of FFN units per layer from the config.
        gated: whether ``down_in`` differs from ``act_out`` (gate * up).
    """

    layers: str
    act: str
    down: str
    intermediate_size: Callable[[Any], int]
    gated: bool = False

    def module_path(self, site: str) -> str:
        return {"act_out": self.act, "down_in": self.down}[site]


def _attr(name: str) -> Callable[[Any], int]:
    return lambda cfg: int(getattr(cfg, name))


def _four_times_hidden(inner_attr: str | None, hidden_attr: str) -> Callable[[Any], int]:
    def size(cfg: Any) -> int:
        inner = getattr(cfg, inner_attr, None) if inner_attr else None
        return int(inner) if inner else 4 * int(getattr(cfg, hidden_attr))

    return size


_GATED = dict(layers="model.layers", act="mlp.act_fn", down="mlp.down_proj",
              intermediate_size=_attr("intermediate_size"), gated=True)

ADAPTERS: dict[str, Adapter] = {
    "llama": Adapter(**_GATED),
    "mistral": Adapter(**_GATED),
    "qwen2": Adapter(**_GATED),
    "qwen3": Adapter(**_GATED),
    "gemma": Adapter(**_GATED),
    "gemma2": Adapter(**_GATED),
    "gpt2": Adapter("transformer.h", "mlp.act", "mlp.c_proj", _four_times_hidden("n_inner", "n_embd")),
    "bloom": Adapter("transformer.h", "mlp.gelu_impl", "mlp.dense_4h_to_h", _four_times_hidden(None, "hidden_size")),
    "gpt_neox": Adapter("gpt_neox.layers", "mlp.act", "mlp.dense_4h_to_h", _attr("intermediate_size")),
    "xglm": Adapter("model.layers", "activation_fn", "fc2", _attr("ffn_dim")),
}


def register_adapter(model_type: str, adapter: Adapter) -> None:
    """Add or replace the adapter for ``model_type`` (for architectures not in the table)."""
    ADAPTERS[model_type] = adapter


def get_adapter(model_type: str) -> Adapter:
    try:
        return ADAPTERS[model_type]
    except KeyError:
        raise LangNeuronError(
            f"unsupported architecture model_type={model_type!r}; supported: {', '.join(sorted(ADAPTERS))}. "
            "To add one, call langneuron_eval.sites.register_adapter(model_type, Adapter(layers=..., act=..., "
            "down=..., intermediate_size=...)) naming its decoder layers, activation module and down projection"
        ) from None


def check_site(site: str) -> str:
    if site not in SITES:
        raise LangNeuronError(f"unknown neuron site {site!r}; choose one of {', '.join(SITES)}")
    return site


def _get(root: nn.Module, dotted: str) -> Any:
    obj: Any = root
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class ModelFingerprint:
    """The shape facts a stats or neuron file must share with the model it is applied to."""

    model_type: str
    num_layers: int
    intermediate_size: int
    site: str

    def to_dict(self) -> dict[str, Any]:
        return {"model_type": self.model_type, "num_layers": self.num_layers,
                "intermediate_size": self.intermediate_size, "site": self.site}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelFingerprint:
        try:
            return cls(str(d["model_type"]), int(d["num_layers"]), int(d["intermediate_size"]), str(d["site"]))
        except (KeyError, TypeError, ValueError) as e:
            raise LangNeuronError(f"malformed model fingerprint {d!r}: {e}") from None

    def describe(self) -> str:
        return f"{self.model_type} with {self.num_layers} layers x {self.intermediate_size} units at site {self.site}"


@dataclass(frozen=True)
class NeuronSites:
    """The hookable modules of one loaded model at one site."""

    model_type: str
    site: str
    adapter: Adapter
    modules: tuple[nn.Module, ...]  # one per layer
    intermediate_size: int

    @property
    def num_layers(self) -> int:
        return len(self.modules)

    @property
    def is_pre_hook(self) -> bool:
        """``down_in`` is the *input* of a module, so it needs a forward pre-hook."""
        return self.site == "down_in"

    @property
    def fingerprint(self) -> ModelFingerprint:
        return ModelFingerprint(self.model_type, self.num_layers, self.intermediate_size, self.site)


def resolve_sites(model: nn.Module, site: str = DEFAULT_SITE) -> NeuronSites:
    """Find the per-layer modules of ``site`` in a Hugging Face causal LM."""
    check_site(site)
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type is None:
        raise LangNeuronError("model has no config.model_type; expected a Hugging Face transformers model")
    adapter = get_adapter(model_type)
    try:
        layers = _get(model, adapter.layers)
        modules = tuple(_get(layer, adapter.module_path(site)) for layer in layers)
    except AttributeError as e:
        raise LangNeuronError(
            f"the {model_type!r} adapter does not match this model's modules ({e}); "
            "this transformers version may have renamed them - override it with sites.register_adapter"
        ) from None
    for m in modules:
        if not isinstance(m, nn.Module):
            raise LangNeuronError(
                f"{model_type!r}: {adapter.module_path(site)} is a function, not a module, so it cannot be hooked"
            )
    if len({id(m) for m in modules}) != len(modules):
        raise LangNeuronError(f"{model_type!r}: layers share one {adapter.module_path(site)} module; cannot hook per layer")
    return NeuronSites(model_type, site, adapter, modules, adapter.intermediate_size(config))
