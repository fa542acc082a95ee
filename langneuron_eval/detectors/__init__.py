"""Language-specific neuron detectors: a registry of methods and the helper that turns one run into a neuron file.

Importing this package is cheap (no torch): the registry names built-in detectors by ``module:attr``
strings and imports them on first use. Public API::

    from langneuron_eval.detectors import register_detector, get_detector, available_detectors, run_detector
    nf = run_detector("lape", stats, {"top_rate": "0.02"})   # -> NeuronFile

See docs/detectors.md for every method's rule and how to add a third-party detector.
"""

from __future__ import annotations

from typing import Any

from langneuron_eval.detectors.registry import (
    ENTRY_POINT_GROUP,
    available_detectors,
    get_detector,
    register_detector,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "DetectionResult",
    "Detector",
    "available_detectors",
    "get_detector",
    "register_detector",
    "run_detector",
]

_LAZY = {
    "DetectionResult": ("base", "DetectionResult"),
    "Detector": ("base", "Detector"),
    "run_detector": ("runner", "run_detector"),
}


def __getattr__(name: str) -> Any:  # PEP 562: import torch-dependent parts only when used
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(f"{__name__}.{module}"), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
