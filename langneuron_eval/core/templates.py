"""User-given module-path templates (``model.layers.{layer}.mlp.act_fn``), checked before loading."""

from __future__ import annotations

import difflib
import re

import torch
import torch.nn as nn

from langneuron_eval.errors import LangNeuronError


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


def probe_width(model: nn.Module, module: nn.Module, pre: bool) -> int:
    """Width of the tensor ``module`` sees (input if ``pre``), from a one-token forward stopped at it."""
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
