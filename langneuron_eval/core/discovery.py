"""Finding the decoder-layer list and each layer's dense MLP from the module tree alone.

The names and class names below are what transformers' causal LMs use; the FFN width comes from the
down projection's weight, never from the config. Mixture-of-experts and state-space layers are told
apart here so that the refusal can name them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch.nn as nn

from langneuron_eval.errors import LangNeuronError

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


def is_linear(m: nn.Module) -> bool:
    """A dense projection: ``nn.Linear`` (and quantised subclasses) or GPT-2's ``Conv1D``."""
    if isinstance(m, nn.Linear):
        return True
    w = getattr(m, "weight", None)
    return type(m).__name__ == "Conv1D" and w is not None and w.dim() == 2


def in_width(m: nn.Module) -> int:
    """Input width of a projection: what its pre-hook sees in the last dimension."""
    for attr in ("in_features", "nx"):
        if isinstance(getattr(m, attr, None), int):
            return int(getattr(m, attr))
    return int(m.weight.shape[0] if type(m).__name__ == "Conv1D" else m.weight.shape[-1])


def out_width(m: nn.Module) -> int:
    for attr in ("out_features", "nf"):
        if isinstance(getattr(m, attr, None), int):
            return int(getattr(m, attr))
    return int(m.weight.shape[-1] if type(m).__name__ == "Conv1D" else m.weight.shape[0])


def _is_activation(m: nn.Module) -> bool:
    """An activation module: torch's or transformers' activations, or a leaf whose class name says so."""
    if isinstance(m, (nn.Softmax, nn.Dropout, nn.Identity)) or is_linear(m) or any(True for _ in m.children()):
        return False
    mod = type(m).__module__
    return (mod.startswith("torch.nn.modules.activation") or mod.startswith("transformers.activations")
            or bool(_ACTIVATION.search(type(m).__name__)))


def moe_block(layer: nn.Module) -> nn.Module | None:
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


def join_path(*parts: str) -> str:
    return ".".join(p for p in parts if p)


def _mlp_in(container: nn.Module, path: str) -> LayerMLP | None:
    """The activation and down projection among ``container``'s children, if it is an MLP."""
    children = dict(container.named_children())
    linears = {n: c for n, c in children.items() if is_linear(c)}
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
    width = in_width(linears[down_name])
    ups = [c for n, c in linears.items() if n != down_name]
    gated = len(ups) >= 2 or any(out_width(u) == 2 * width for u in ups)
    return LayerMLP(join_path(path, act_name) if act_name else None, join_path(path, down_name), width, gated)


def _output_dense_mlp(container: nn.Module, path: str) -> LayerMLP | None:
    """BERT-family layout: an up block with the activation, then ``output.dense`` as the down projection.

    BERT: ``intermediate`` (dense + act) and ``output.dense`` under the layer; Reformer: the same under
    ``feed_forward``.
    """
    down = getattr(getattr(container, "output", None), "dense", None)
    if not isinstance(down, nn.Module) or not is_linear(down):
        return None
    act = next((n for n, c in container.named_modules() if n and n.split(".")[0] != "output"
                and _is_activation(c) and not _NOT_MLP.search(n)), None)
    if act is None:
        return None
    return LayerMLP(join_path(path, act), join_path(path, "output.dense"), in_width(down), False)


def find_layer_mlp(layer: nn.Module, index: int) -> LayerMLP:
    """The dense MLP of one decoder layer, or a one-line refusal naming the layer type."""
    kind = type(layer).__name__
    moe = moe_block(layer)
    if moe is not None:
        raise LangNeuronError(
            f"layer {index} ({kind}) is a mixture-of-experts layer ({type(moe).__name__}): its units are inside "
            "the experts, which `langneuron record` finds by itself (docs/moe.md), not at a dense site")
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


def get_path(root: nn.Module, dotted: str) -> Any:
    obj: Any = root
    for part in dotted.split(".") if dotted else ():
        obj = getattr(obj, part)
    return obj
