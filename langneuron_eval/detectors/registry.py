"""Detector registry, in the style of lm-eval's ``lm_eval/api/registry.py``.

Names map to detector objects or to lazy ``"module:attr"`` strings that are imported on first use,
so importing this module (and listing the methods) does not import torch-heavy detector code.
Sources, in order of precedence:

1. built-ins (lazy strings below), replaced by the class itself once its module is imported;
2. ``@register_detector("name")`` / :func:`register_detector` calls;
3. third-party packages declaring an entry point in the group ``langneuron_eval.detectors``
   (entry-point name = method name, value = ``module:attr``), discovered when a name is looked up or
   the methods are listed.

``get_detector("pkg.module:Attr")`` also accepts a ``module:attr`` string that is not registered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langneuron_eval.core.registry import Registry
from langneuron_eval.errors import LangNeuronError

ENTRY_POINT_GROUP = "langneuron_eval.detectors"

_BUILTINS: dict[str, str] = {
    "lape": "langneuron_eval.detectors.lape:LapeDetector",
    "kojima_ap": "langneuron_eval.detectors.kojima:KojimaAPDetector",
    "zhang": "langneuron_eval.detectors.zhang:ZhangDetector",
    "random": "langneuron_eval.detectors.baselines:RandomDetector",
    "lap": "langneuron_eval.detectors.baselines:LapDetector",
    "lape_experts": "langneuron_eval.detectors.experts:ExpertLapeDetector",
}

REGISTRY = Registry("detector", ENTRY_POINT_GROUP, _BUILTINS,
                    hint="(or give a 'module:attr' target; see `langneuron detect --list`)")


def register_detector(name: str, target: Any = None) -> Callable[[Any], Any]:
    """Register a detector under ``name``: ``@register_detector("mine")`` or ``register_detector("mine", "pkg:Cls")``."""
    return REGISTRY.register(name, target)


def available_detectors() -> list[str]:
    """Every registered, built-in and entry-point detector name, sorted."""
    return REGISTRY.names()


def get_detector(name_or_target: str):
    """A ready-to-run :class:`~langneuron_eval.detectors.base.Detector` for a name or ``module:attr`` target.

    Raises:
        LangNeuronError: unknown name (with "did you mean ...?") or a target that cannot be imported.
    """
    # lazy: listing detector names must not import torch (``langneuron detect --list`` stays fast)
    from langneuron_eval.detectors.base import as_detector

    return as_detector(REGISTRY.get(name_or_target), name_or_target)


def parse_params(items: list[str] | None) -> dict[str, str]:
    """``--param NAME=VALUE`` items -> dict; values stay strings (the detector converts them by declared type).

    A name given twice is refused rather than silently overwritten: the run would not be the one asked for.
    """
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise LangNeuronError(f"--param {item!r} is not NAME=VALUE")
        if name.strip() in out:
            raise LangNeuronError(f"--param {name.strip()!r} given twice")
        out[name.strip()] = value.strip()
    return out
