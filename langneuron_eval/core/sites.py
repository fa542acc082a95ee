"""Where the "neurons" of a causal LM live: found from the module tree, with overrides for the rest.

A neuron is unit ``j`` of the FFN intermediate layer ``i``. Two hook sites are defined, named by what
the hook sees:

``act_out``
    Output of the FFN non-linearity. In gated MLPs (Llama, Mistral, Qwen2, Gemma) this is the gate
    activation ``act_fn(gate_proj(x))`` that LAPE (Tang et al.) and Zhang et al. threshold at 0;
    elsewhere it is the activation fed to the down projection. This is the default site.
``down_in``
    Input of the FFN down projection. In gated MLPs this is ``act_fn(gate_proj(x)) * up_proj(x)``;
    in ungated MLPs it equals ``act_out``. Zeroing a unit is the same at both sites, but setting it
    to a non-zero value is not, so every stats and neuron file records its site.
``linear_out``
    Output of every linear module of a decoder layer (attention projections included), the unit scope
    of Kojima et al.'s code. The modules are taken in registration order (e.g. q, k, v, o, gate, up,
    down) and laid end to end: a layer's unit ``j`` is index ``j - offset`` of the module whose
    :class:`Segment` covers it. The segment table is stored in the file fingerprint.

How the modules are found, first match wins:

1. a module-path template given by the user (``--act-module``/``--down-module``, ``act_module=``/
   ``down_module=`` in lm-eval ``--model_args``), e.g. ``model.layers.{layer}.mlp.act_fn``; it is
   recorded in the file fingerprint so later steps reuse it;
2. :data:`~langneuron_eval.core.adapters.REGISTRY` (filled by :func:`register_adapter`) and adapters that installed packages declare
   in the entry-point group ``langneuron_eval.adapters`` (name = ``config.model_type``, value =
   ``module:attr`` of an :class:`Adapter`);
3. discovery (:func:`discover_layout`): the decoder-layer list of the text decoder (multimodal wrappers
   included), and in each layer the dense MLP's activation module and down projection, recognised by
   module names and types; the width comes from the down projection's weight, not the config.

Layers that are not dense MLPs are refused with one line naming the layer type: mixture-of-experts
layers (a unit would be (layer, expert, index) and most tokens never reach most experts; we chose not
to support them), and state-space or recurrent blocks without an MLP.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch.nn as nn

from langneuron_eval.core.adapters import Adapter, get_adapter
from langneuron_eval.core.discovery import discover_layout, get_path, in_width, is_linear, join_path
from langneuron_eval.core.fingerprint import ModelFingerprint, NeuronSites
from langneuron_eval.core.linear_sites import resolve_linear_sites
from langneuron_eval.core.moe_record import moe_sites
from langneuron_eval.core.templates import match_template, normalize_template, probe_width
from langneuron_eval.errors import LangNeuronError

FFN_SITES = ("act_out", "down_in")  # one module per layer, the FFN units
SITES = (*FFN_SITES, "linear_out")
DEFAULT_SITE = "act_out"
SITE_OPTION = {"act_out": "--act-module", "down_in": "--down-module"}  # the CLI option naming each site's module


def check_site(site: str) -> str:
    if site not in SITES:
        raise LangNeuronError(f"unknown neuron site {site!r}; choose one of {', '.join(SITES)}")
    return site


def _override_for(site: str, override: str | Mapping[str, str] | None) -> str | None:
    if override is None or isinstance(override, str):
        return override
    return override.get(site) or None


def _from_template(model: nn.Module, model_type: str, site: str, template: str) -> NeuronSites:
    template = normalize_template(template)
    found = match_template(model, template, SITE_OPTION[site])
    modules = tuple(found[i] for i in range(len(found)))
    names = {id(m): n for n, m in model.named_modules()}
    width = in_width(modules[0]) if site == "down_in" and is_linear(modules[0]) else \
        probe_width(model, modules[0], site == "down_in")
    return NeuronSites(model_type, site, None, modules, width, tuple(names[id(m)] for m in modules), template)


def _from_adapter(model: nn.Module, model_type: str, site: str, adapter: Adapter) -> NeuronSites:
    if adapter.module_path(site) is None:
        _refuse_function_activation(model_type)
    try:
        layers = get_path(model, adapter.layers)
        modules = tuple(get_path(layer, adapter.module_path(site)) for layer in layers)
        downs = [get_path(layer, adapter.down) for layer in layers]
    except AttributeError as e:
        raise LangNeuronError(
            f"the {model_type!r} adapter does not match this model's modules ({e}); this transformers version "
            "may have renamed them - name the modules with --act-module/--down-module") from None
    width = adapter.intermediate_size(model.config) if adapter.intermediate_size else in_width(downs[0])
    paths = tuple(f"{adapter.layers}.{i}.{adapter.module_path(site)}" for i in range(len(modules)))
    return NeuronSites(model_type, site, adapter, modules, int(width), paths)


def _refuse_function_activation(model_type: str) -> None:
    raise LangNeuronError(
        f"{model_type!r}: the MLP activation is a function call, not a module, so act_out cannot be hooked; "
        "use --site down_in (the down projection's input)")


def _discovered(model: nn.Module, model_type: str, site: str) -> NeuronSites:
    layers_path, mlps = discover_layout(model)
    widths = sorted({m.width for m in mlps})
    if len(widths) > 1:
        raise LangNeuronError(f"{model_type!r}: the FFN width differs between layers ({widths}); one width per "
                              "model is supported")
    rel = [m.act if site == "act_out" else m.down for m in mlps]
    if site == "act_out" and any(r is None for r in rel):
        _refuse_function_activation(model_type)
    paths = tuple(join_path(layers_path, str(i), r) for i, r in enumerate(rel))
    adapter = Adapter(layers_path, mlps[0].act, mlps[0].down, None, mlps[0].gated)
    return NeuronSites(model_type, site, adapter, tuple(get_path(model, p) for p in paths), widths[0], paths)


def resolve_sites(model: nn.Module, site: str = DEFAULT_SITE,
                  override: str | Mapping[str, str] | None = None) -> NeuronSites:
    """Find the per-layer modules of ``site`` in a Hugging Face causal LM.

    Args:
        override: a module-path template with ``{layer}`` for ``site`` (or a ``{site: template}``
            mapping); it wins over adapters and discovery and is recorded in the fingerprint.
    """
    check_site(site)
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type is None:
        raise LangNeuronError("model has no config.model_type; expected a Hugging Face transformers model")
    if site == "linear_out":
        return resolve_linear_sites(model, model_type)  # module templates name one module per layer: not used here
    template = _override_for(site, override)
    if template:
        sites = _from_template(model, model_type, site, template)
    else:
        adapter = get_adapter(model_type)
        sites = _from_adapter(model, model_type, site, adapter) if adapter else _discovered(model, model_type, site)
    for path, m in zip(sites.paths, sites.modules):
        if not isinstance(m, nn.Module):
            raise LangNeuronError(f"{model_type!r}: {path} is a function, not a module, so it cannot be hooked")
    if len({id(m) for m in sites.modules}) != len(sites.modules):
        other = "down_in" if site == "act_out" else "act_out"
        raise LangNeuronError(f"{model_type!r}: every layer calls one shared {site} module ({sites.paths[0]}), so "
                              f"its layers cannot be told apart; use --site {other}")
    return sites


def resolve_for_file(model: nn.Module, fingerprint: ModelFingerprint | None,
                     override: str | Mapping[str, str] | None = None) -> NeuronSites:
    """The sites a stats or neuron file was made at: its site, and its module template unless overridden."""
    if fingerprint is None:
        return resolve_sites(model, DEFAULT_SITE, override)
    if fingerprint.moe is not None:  # expert units: edited inside the experts' forward (core/moe_interventions.py)
        return moe_sites(model, fingerprint.site)
    return resolve_sites(model, fingerprint.site, _override_for(fingerprint.site, override) or fingerprint.module)
