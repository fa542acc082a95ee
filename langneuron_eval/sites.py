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
2. :data:`ADAPTERS` (filled by :func:`register_adapter`) and adapters that installed packages declare
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

import difflib
import importlib.metadata as md
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch.nn as nn

from .errors import LangNeuronError

FFN_SITES = ("act_out", "down_in")  # one module per layer, the FFN units
SITES = (*FFN_SITES, "linear_out")
DEFAULT_SITE = "act_out"
ENTRY_POINT_GROUP = "langneuron_eval.adapters"
SITE_OPTION = {"act_out": "--act-module", "down_in": "--down-module"}  # the CLI option naming each site's module


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
                              "expected a langneuron_eval.sites.Adapter")
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


def check_site(site: str) -> str:
    if site not in SITES:
        raise LangNeuronError(f"unknown neuron site {site!r}; choose one of {', '.join(SITES)}")
    return site


def _get(root: nn.Module, dotted: str) -> Any:
    obj: Any = root
    for part in dotted.split(".") if dotted else ():
        obj = getattr(obj, part)
    return obj


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

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"model_type": self.model_type, "num_layers": self.num_layers,
                             "intermediate_size": self.intermediate_size, "site": self.site}
        if self.module is not None:
            d["module"] = self.module
        if self.segments is not None:
            d["segments"] = [[s.path, s.offset, s.width] for s in self.segments]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelFingerprint:
        try:
            module, segs = d.get("module"), d.get("segments")
            segments = None if segs is None else tuple(Segment(str(p), int(o), int(w)) for p, o, w in segs)
            return cls(str(d["model_type"]), int(d["num_layers"]), int(d["intermediate_size"]), str(d["site"]),
                       None if module is None else str(module), segments)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise LangNeuronError(f"malformed model fingerprint {d!r}: {e}") from None

    def describe(self) -> str:
        where = f" ({self.module})" if self.module else ""
        if self.segments:
            where = f" ({', '.join(f'{s.path} {s.width}' for s in self.segments)})"
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
                                self.segments or None)


# ---------------------------------------------------------------------------------------------- discovery
# Names of the down projection inside an MLP container, most specific first.
DOWN_NAMES = ("down_proj", "dense_4h_to_h", "fc2", "c_proj", "fc_out", "w2", "w_out", "wo", "proj_down",
              "output_linear", "lin2", "layer_2", "linear_2", "down", "output")
LAYER_LIST_NAMES = ("layers", "h", "layer", "blocks", "block", "decoder_layers")
# Sub-modules an MLP is never inside (its activation is elsewhere: attention, SSM mixers, norms, routers).
_NOT_MLP = re.compile(r"attention|attn|mixer|mamba|norm|router|deltanet|mlstm|temporal|conv|rwkv", re.I)
# Class-name endings of such modules (class names start with the model's name, e.g. RecurrentGemmaMlp).
_NOT_MLP_CLASS = re.compile(r"(attention|attn|mixer|norm|normgated|router|deltanet|recurrentblock|rglru|conv|"
                            r"shortconvolution)$", re.I)
_MOE = re.compile(r"(moe|moelayer|moeblock)$", re.I)  # class-name endings of MoE blocks
_SSM = re.compile(r"mamba|mixer|ssm|rwkv|lstm|recurrent|deltanet|rglru|conv", re.I)
_ACTIVATION = re.compile(r"activation|gelu|relu|silu|swish|swiglu|geglu|mish|tanh|sigmoid|softplus|xielu|elu\b|"
                         r"^act", re.I)
_NON_MULTIMODAL = re.compile(r"(^|\.)(vision|visual|image|audio|speech|vqmodel|vision_tower|vision_model|"
                             r"image_encoder|audio_tower)", re.I)


@dataclass(frozen=True)
class LayerMLP:
    """The dense MLP of one decoder layer: paths relative to the layer (``act`` None when a function)."""

    act: str | None
    down: str
    width: int
    gated: bool


def _is_linear(m: nn.Module) -> bool:
    """A dense projection: ``nn.Linear`` (and quantised subclasses) or GPT-2's ``Conv1D``."""
    if isinstance(m, nn.Linear):
        return True
    w = getattr(m, "weight", None)
    return type(m).__name__ == "Conv1D" and w is not None and w.dim() == 2


def _in_width(m: nn.Module) -> int:
    """Input width of a projection: what its pre-hook sees in the last dimension."""
    for attr in ("in_features", "nx"):
        if isinstance(getattr(m, attr, None), int):
            return int(getattr(m, attr))
    return int(m.weight.shape[0] if type(m).__name__ == "Conv1D" else m.weight.shape[-1])


def _out_width(m: nn.Module) -> int:
    for attr in ("out_features", "nf"):
        if isinstance(getattr(m, attr, None), int):
            return int(getattr(m, attr))
    return int(m.weight.shape[-1] if type(m).__name__ == "Conv1D" else m.weight.shape[0])


def _is_activation(m: nn.Module) -> bool:
    """An activation module: torch's or transformers' activations, or a leaf whose class name says so."""
    if isinstance(m, (nn.Softmax, nn.Dropout, nn.Identity)) or _is_linear(m) or any(True for _ in m.children()):
        return False
    mod = type(m).__module__
    return (mod.startswith("torch.nn.modules.activation") or mod.startswith("transformers.activations")
            or bool(_ACTIVATION.search(type(m).__name__)))


def _is_moe(layer: nn.Module) -> nn.Module | None:
    """The mixture-of-experts block of a layer, if any (outside attention)."""
    for path, m in layer.named_modules():
        if not path or any(_NOT_MLP_CLASS.search(type(a).__name__) or re.search(r"attn|attention", p)
                           for p, a in _ancestors(layer, path)[:-1]):
            continue
        if _MOE.search(type(m).__name__) or isinstance(getattr(m, "experts", None), nn.Module):
            return m
    return None


def _ancestors(layer: nn.Module, path: str) -> list[tuple[str, nn.Module]]:
    """(name, module) of every module from the layer's child down to ``path`` itself."""
    out, m = [], layer
    for part in path.split("."):
        m = getattr(m, part)
        out.append((part, m))
    return out


def _inside_non_mlp(layer: nn.Module, path: str) -> bool:
    return bool(path) and any(_NOT_MLP_CLASS.search(type(a).__name__) or _NOT_MLP.search(name)
                              for name, a in _ancestors(layer, path))


def _join(*parts: str) -> str:
    return ".".join(p for p in parts if p)


def _mlp_in(container: nn.Module, path: str) -> LayerMLP | None:
    """The activation and down projection among ``container``'s children, if it is an MLP."""
    children = dict(container.named_children())
    linears = {n: c for n, c in children.items() if _is_linear(c)}
    lower = {n.lower(): n for n in linears}
    down_name = next((lower[n] for n in DOWN_NAMES if n in lower), None)
    act_name = None
    if isinstance(container, nn.Sequential):  # [up, act, down]: the projection right after the activation
        names = list(children)
        acts = [i for i, n in enumerate(names) if _is_activation(children[n])]
        if acts:
            act_name = names[acts[0]]
            down_name = next((n for n in names[acts[0] + 1:] if n in linears), None)
    if down_name is None or not any(n != down_name and any(True for _ in c.parameters())
                                    for n, c in children.items()):
        return None  # an MLP has an input projection besides the down projection
    if act_name is None:
        act_name = next((n for n, c in container.named_modules() if n and n.split(".")[0] != down_name
                         and _is_activation(c) and not _NOT_MLP.search(n)), None)
    width = _in_width(linears[down_name])
    ups = [c for n, c in linears.items() if n != down_name]
    gated = len(ups) >= 2 or any(_out_width(u) == 2 * width for u in ups)
    return LayerMLP(_join(path, act_name) if act_name else None, _join(path, down_name), width, gated)


def _output_dense_mlp(container: nn.Module, path: str) -> LayerMLP | None:
    """BERT-family layout: an up block with the activation, then ``output.dense`` as the down projection.

    BERT: ``intermediate`` (dense + act) and ``output.dense`` under the layer; Reformer: the same under
    ``feed_forward``.
    """
    down = getattr(getattr(container, "output", None), "dense", None)
    if not isinstance(down, nn.Module) or not _is_linear(down):
        return None
    act = next((n for n, c in container.named_modules() if n and n.split(".")[0] != "output"
                and _is_activation(c) and not _NOT_MLP.search(n)), None)
    if act is None:
        return None
    return LayerMLP(_join(path, act), _join(path, "output.dense"), _in_width(down), False)


def find_layer_mlp(layer: nn.Module, index: int) -> LayerMLP:
    """The dense MLP of one decoder layer, or a one-line refusal naming the layer type."""
    kind = type(layer).__name__
    moe = _is_moe(layer)
    if moe is not None:
        raise LangNeuronError(
            f"layer {index} ({kind}) is a mixture-of-experts layer ({type(moe).__name__}); langneuron-eval "
            "supports dense MLP layers only (see docs/sites.md)")
    found = None
    cands = [(path.count(".") if path else -1, path, m) for path, m in layer.named_modules()
             if not _inside_non_mlp(layer, path)]
    for _depth, path, m in sorted(cands, key=lambda c: c[0]):
        found = _output_dense_mlp(m, path) or _mlp_in(m, path)
        if found is not None:
            break
    if found is None:
        ssm = next((type(m).__name__ for p, m in layer.named_modules() if _SSM.search(type(m).__name__)
                    or _SSM.search(p)), None)
        what = f"a state-space/recurrent block ({ssm}) with no dense MLP" if ssm else "a layer with no dense MLP " \
            "that discovery recognises; name its modules with --act-module/--down-module"
        raise LangNeuronError(f"layer {index} ({kind}) is {what}")
    return found


def _text_num_layers(config: Any) -> int | None:
    cfg = config.get_text_config() if hasattr(config, "get_text_config") else config
    for attr in ("num_hidden_layers", "n_layer", "num_layers", "n_layers", "decoder_layers"):
        try:
            v = getattr(cfg, attr, None)
        except Exception:  # some configs raise for per-layer attributes
            v = None
        if isinstance(v, int):
            return v
    return None


def find_layer_list(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The decoder-layer list of the model's text decoder (multimodal towers excluded)."""
    try:
        decoder = model.get_decoder() if hasattr(model, "get_decoder") else model
    except Exception:
        decoder = model
    named = list(model.named_modules())
    prefix = next((p for p, m in named if m is decoder), "")
    if not any(isinstance(m, nn.ModuleList) for m in decoder.modules()):
        prefix = ""  # not a decoder stack (ModernBERT-decoder's ``decoder`` is its output projection)
    n_layers = _text_num_layers(getattr(model, "config", None))
    scored = []
    lists = [p for p, m in named if isinstance(m, nn.ModuleList)]
    for path, m in named:
        if not isinstance(m, nn.ModuleList) or len(m) == 0 or _NON_MULTIMODAL.search(path):
            continue
        if any(path.startswith(outer + ".") for outer in lists):
            continue  # a list inside a layer (several attentions or MLPs per layer), not the layer list
        if prefix and not path.startswith(prefix + "."):
            continue
        leaf = path.rsplit(".", 1)[-1]
        scored.append(((len(m) == n_layers, leaf in LAYER_LIST_NAMES, -path.count(".")), path, m))
    if not scored:
        raise LangNeuronError(f"{type(model).__name__}: found no list of decoder layers; name the modules "
                              "with --act-module/--down-module")
    scored.sort(key=lambda s: s[0], reverse=True)
    if len(scored) > 1 and scored[0][0] == scored[1][0]:
        raise LangNeuronError(
            f"{type(model).__name__} has several decoder-layer stacks ({scored[0][1]}, {scored[1][1]}); "
            "name the modules to hook with --act-module/--down-module")
    return scored[0][1], scored[0][2]


def discover_layout(model: nn.Module) -> tuple[str, list[LayerMLP]]:
    """Decoder-layer list path and each layer's dense MLP, found from the module tree."""
    path, layers = find_layer_list(model)
    return path, [find_layer_mlp(layer, i) for i, layer in enumerate(layers)]


# ---------------------------------------------------------------------------------------------- templates
def normalize_template(template: str) -> str:
    """``model.layers.*.mlp.act_fn`` -> ``model.layers.{layer}.mlp.act_fn`` (lm-eval's ``--model_args``
    refuses braces outside JSON, so a ``*`` path component stands for the layer index too)."""
    parts = template.split(".")
    if "{layer}" not in template and parts.count("*") == 1:
        return ".".join("{layer}" if p == "*" else p for p in parts)
    return template


def _template_regex(template: str) -> re.Pattern[str]:
    if template.count("{layer}") != 1:
        raise LangNeuronError(f"module template {template!r} must contain '{{layer}}' (or a '*' component) exactly "
                              "once, e.g. 'model.layers.{layer}.mlp.act_fn'")
    head, tail = template.split("{layer}")
    return re.compile(re.escape(head) + r"(\d+)" + re.escape(tail) + "$")


def match_template(model: nn.Module, template: str, option: str = "module template") -> dict[int, nn.Module]:
    """Layer index -> module for every module whose path fits ``template``; one line if none or gaps."""
    pattern = _template_regex(template)
    found = {int(m.group(1)): mod for name, mod in model.named_modules() if (m := pattern.match(name))}
    if not found:
        generic = sorted({re.sub(r"\.\d+(\.|$)", r".{layer}\1", n, count=1) for n, _ in model.named_modules()
                          if re.search(r"\.\d+(\.|$)", n)})
        close = difflib.get_close_matches(template, generic, n=3, cutoff=0.6)
        hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        raise LangNeuronError(f"{option} {template!r} matches no module of this "
                              f"{getattr(getattr(model, 'config', None), 'model_type', 'model')} model{hint}")
    if sorted(found) != list(range(len(found))):
        raise LangNeuronError(f"{option} {template!r} matches layers {sorted(found)}, not 0..N-1")
    return found


def check_template(template: str) -> str:
    """Validate a template's form before any model is loaded; returns it with ``{layer}``."""
    template = normalize_template(template)
    _template_regex(template)
    return template


def _probe_width(model: nn.Module, module: nn.Module, pre: bool) -> int:
    """Width of the tensor ``module`` sees (input if ``pre``), from a one-token forward stopped at it."""
    import torch

    class _Seen(Exception):
        pass

    seen: list[int] = []

    def look(*args):
        t = args[1][0] if pre else args[2]
        seen.append(int((t[0] if isinstance(t, tuple) else t).shape[-1]))
        raise _Seen

    handle = module.register_forward_pre_hook(look) if pre else module.register_forward_hook(look)
    device = model.get_input_embeddings().weight.device
    try:
        with torch.no_grad():
            model(input_ids=torch.zeros(1, 1, dtype=torch.long, device=device))
    except _Seen:
        pass
    finally:
        handle.remove()
    if not seen:
        raise LangNeuronError("the named module did not run in a forward pass; check the module template")
    return seen[0]


# ---------------------------------------------------------------------------------------------- resolution
def _override_for(site: str, override: str | Mapping[str, str] | None) -> str | None:
    if override is None or isinstance(override, str):
        return override
    return override.get(site) or None


def _from_template(model: nn.Module, model_type: str, site: str, template: str) -> NeuronSites:
    template = normalize_template(template)
    found = match_template(model, template, SITE_OPTION[site])
    modules = tuple(found[i] for i in range(len(found)))
    names = {id(m): n for n, m in model.named_modules()}
    width = _in_width(modules[0]) if site == "down_in" and _is_linear(modules[0]) else \
        _probe_width(model, modules[0], site == "down_in")
    return NeuronSites(model_type, site, None, modules, width, tuple(names[id(m)] for m in modules), template)


def _from_adapter(model: nn.Module, model_type: str, site: str, adapter: Adapter) -> NeuronSites:
    if adapter.module_path(site) is None:
        _refuse_function_activation(model_type)
    try:
        layers = _get(model, adapter.layers)
        modules = tuple(_get(layer, adapter.module_path(site)) for layer in layers)
        downs = [_get(layer, adapter.down) for layer in layers]
    except AttributeError as e:
        raise LangNeuronError(
            f"the {model_type!r} adapter does not match this model's modules ({e}); this transformers version "
            "may have renamed them - name the modules with --act-module/--down-module") from None
    width = adapter.intermediate_size(model.config) if adapter.intermediate_size else _in_width(downs[0])
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
    paths = tuple(_join(layers_path, str(i), r) for i, r in enumerate(rel))
    adapter = Adapter(layers_path, mlps[0].act, mlps[0].down, None, mlps[0].gated)
    return NeuronSites(model_type, site, adapter, tuple(_get(model, p) for p in paths), widths[0], paths)


# ---------------------------------------------------------------------------------------------- linear_out
def _layer_linears(layer: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every linear module of a decoder layer, in registration order, with its path in the layer."""
    return [(p, m) for p, m in layer.named_modules() if p and _is_linear(m)]


def _same_linears_everywhere(layers: nn.ModuleList) -> list[list[tuple[str, nn.Module]]]:
    """Each layer's linears; one line unless every layer has the same module paths and output widths."""
    per_layer = []
    for i, layer in enumerate(layers):
        moe = _is_moe(layer)
        if moe is not None:
            raise LangNeuronError(f"layer {i} ({type(layer).__name__}) is a mixture-of-experts layer "
                                  f"({type(moe).__name__}); site linear_out supports dense layers only")
        per_layer.append(_layer_linears(layer))
    first = [(p, _out_width(m)) for p, m in per_layer[0]]
    if not first:
        raise LangNeuronError(f"layer 0 ({type(layers[0]).__name__}) has no linear module to hook at linear_out")
    for i, linears in enumerate(per_layer):
        mine = [(p, _out_width(m)) for p, m in linears]
        if mine != first:
            raise LangNeuronError(
                f"layer {i} has linear modules {mine} but layer 0 has {first}; site linear_out needs the same "
                f"linear modules (and {sum(w for _, w in first)} units) in every layer")
    return per_layer


def _probe_calls(model: nn.Module, modules: list[nn.Module]) -> list[list[int]]:
    """The output widths each module produced in one two-token forward pass (one entry per call)."""
    import torch

    seen: dict[int, list[int]] = {id(m): [] for m in modules}

    def look(mod, _args, out):  # out: [batch, pos, width]
        t = out[0] if isinstance(out, tuple) else out
        seen[id(mod)].append(int(t.shape[-1]))

    handles = [m.register_forward_hook(look) for m in modules]
    device = model.get_input_embeddings().weight.device
    try:
        with torch.no_grad():
            ids = torch.zeros(1, 2, dtype=torch.long, device=device)
            model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False)
    finally:
        for h in handles:
            h.remove()
    return [seen[id(m)] for m in modules]


def _linear_sites(model: nn.Module, model_type: str) -> NeuronSites:
    """Site ``linear_out``: every linear module of every decoder layer, laid end to end per layer."""
    layers_path, layers = find_layer_list(model)
    per_layer = _same_linears_everywhere(layers)
    names = [f"{layers_path}.{i}.{p}" for i, linears in enumerate(per_layer) for p, _ in linears]
    flat = [m for linears in per_layer for _, m in linears]
    for name, m, calls in zip(names, flat, _probe_calls(model, flat)):
        if calls != [_out_width(m)]:
            raise LangNeuronError(
                f"{model_type!r}: {name} ran {len(calls)} times in one forward pass (widths {calls}); site "
                "linear_out needs every linear module of a layer to run once per forward pass")
    segments, offset = [], 0
    for path, m in per_layer[0]:
        segments.append(Segment(path, offset, _out_width(m)))
        offset += segments[-1].width
    return NeuronSites(model_type, "linear_out", None, tuple(layers), offset,
                       tuple(f"{layers_path}.{i}" for i in range(len(layers))), None, tuple(segments),
                       tuple(tuple(m for _, m in linears) for linears in per_layer))


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
        return _linear_sites(model, model_type)  # module templates name one module per layer: not used here
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
    return resolve_sites(model, fingerprint.site, _override_for(fingerprint.site, override) or fingerprint.module)


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
