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

import difflib
import importlib
import importlib.metadata as md
import logging
import threading
from collections.abc import Callable
from typing import Any

from langneuron_eval.errors import LangNeuronError

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "langneuron_eval.detectors"

_BUILTINS: dict[str, str] = {
    "lape": "langneuron_eval.detectors.lape:LapeDetector",
    "kojima_ap": "langneuron_eval.detectors.kojima:KojimaAPDetector",
    "zhang": "langneuron_eval.detectors.zhang:ZhangDetector",
    "random": "langneuron_eval.detectors.baselines:RandomDetector",
    "lap": "langneuron_eval.detectors.baselines:LapDetector",
}

Placeholder = str | md.EntryPoint


def _target_path(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '')}:{getattr(obj, '__qualname__', getattr(obj, '__name__', ''))}"


def load_target(target: Placeholder) -> Any:
    """Import a ``module:attr`` string (attr may be dotted) or load an entry point; errors as one line."""
    if isinstance(target, md.EntryPoint):
        what = f"entry point {target.name}={target.value}"
        loader: Callable[[], Any] = target.load
    else:
        mod, sep, attr = target.partition(":")
        if not sep or not mod or not attr:
            raise LangNeuronError(f"invalid detector target {target!r}: expected 'module:attr'")
        what = target

        def loader() -> Any:
            obj: Any = importlib.import_module(mod)
            for part in attr.split("."):
                obj = getattr(obj, part)
            return obj

    try:
        return loader()
    except LangNeuronError:
        raise
    except Exception as e:  # ImportError, AttributeError, or anything the plugin's import raises
        raise LangNeuronError(f"cannot load detector {what}: {e.__class__.__name__}: {e}") from None


class DetectorRegistry:
    """Thread-safe name -> detector (or lazy placeholder) map with entry-point discovery."""

    def __init__(self, builtins: dict[str, str] | None = None, group: str = ENTRY_POINT_GROUP) -> None:
        self._objs: dict[str, Any] = dict(builtins or {})
        self._origins: dict[str, str] = {name: "built-in" for name in self._objs}
        self._group = group
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ registration
    def register(self, name: str, target: Any = None) -> Callable[[Any], Any]:
        """Register ``target`` (object or ``"module:attr"``) under ``name``; without target, a decorator.

        Re-registering the same object, or a class whose lazy placeholder names it, is allowed;
        registering a different object under a taken name is a ``ValueError`` (a programming error).
        """

        def store(obj: Any) -> Any:
            with self._lock:
                current = self._objs.get(name)
                if current is not None and current is not obj and current != obj:
                    same_path = isinstance(current, str) and current == _target_path(obj)
                    same_class = (not isinstance(current, (str, md.EntryPoint))
                                  and _target_path(current) == _target_path(obj))
                    if not (same_path or same_class):
                        raise ValueError(f"detector name {name!r} is already registered to {current!r}")
                self._objs[name] = obj
                self._origins.setdefault(name, "registered")
                if isinstance(obj, type) and hasattr(obj, "name") and not getattr(obj, "name", ""):
                    obj.name = name
            return obj

        if target is not None:
            store(target)
            return lambda x: x
        return store

    def discover(self) -> None:
        """Add entry points of the plugin group that are not registered yet (built-ins win on a name clash)."""
        try:
            eps = md.entry_points(group=self._group)
        except Exception as e:  # a broken installed distribution must not break the built-ins
            log.warning("could not read %s entry points: %s", self._group, e)
            return
        with self._lock:
            for ep in eps:
                if ep.name in self._objs:
                    if self._origins.get(ep.name, "").startswith("entry point") or self._objs[ep.name] == ep:
                        continue
                    log.warning("ignoring entry point %s=%s: the name is taken by the %s detector",
                                ep.name, ep.value, self._origins.get(ep.name))
                    continue
                self._objs[ep.name] = ep
                dist = getattr(getattr(ep, "dist", None), "name", None)
                self._origins[ep.name] = f"entry point ({dist})" if dist else "entry point"

    # ------------------------------------------------------------------ lookup
    def names(self) -> list[str]:
        self.discover()
        return sorted(self._objs)

    def origin(self, name: str) -> str:
        return self._origins.get(name, "module:attr")

    def __contains__(self, name: str) -> bool:
        if name not in self._objs:
            self.discover()
        return name in self._objs

    def get(self, name: str) -> Any:
        """The registered object for ``name`` (materialised), or a ``module:attr`` target loaded directly."""
        if name not in self._objs:
            self.discover()
        if name not in self._objs:
            if ":" in name:
                return load_target(name)
            raise LangNeuronError(self._unknown_message(name))
        obj = self._objs[name]
        if isinstance(obj, (str, md.EntryPoint)):
            with self._lock:
                obj = self._objs[name]
                if isinstance(obj, (str, md.EntryPoint)):
                    loaded = load_target(obj)
                    # the module may have registered the class itself (via the decorator) while importing
                    self._objs[name] = loaded
                    obj = loaded
        return obj

    def _unknown_message(self, name: str) -> str:
        known = sorted(self._objs)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        return (f"unknown detector {name!r}{hint}; available: {', '.join(known)} "
                "(or give a 'module:attr' target; see `langneuron detect --list`)")


REGISTRY = DetectorRegistry(_BUILTINS)


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
    from langneuron_eval.detectors.base import as_detector

    return as_detector(REGISTRY.get(name_or_target), name_or_target)
