"""One small registry for everything users can plug in (detectors, model adapters), after lm-eval's.

Names map to objects or to lazy ``"module:attr"`` strings imported on first use, so listing names
imports nothing heavy. Installed packages add entries through an entry-point group (name = key,
value = ``module:attr``), discovered when a name is looked up or the names are listed. Unknown names
get a one-line error with "did you mean ...?".
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

Placeholder = str | md.EntryPoint


def _target_path(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '')}:{getattr(obj, '__qualname__', getattr(obj, '__name__', ''))}"


def load_target(target: Placeholder, kind: str = "object") -> Any:
    """Import a ``module:attr`` string (attr may be dotted) or load an entry point; errors as one line."""
    if isinstance(target, md.EntryPoint):
        what = f"entry point {target.name}={target.value}"
        loader: Callable[[], Any] = target.load
    else:
        mod, sep, attr = target.partition(":")
        if not sep or not mod or not attr:
            raise LangNeuronError(f"invalid {kind} target {target!r}: expected 'module:attr'")
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
        raise LangNeuronError(f"cannot load {kind} {what}: {e.__class__.__name__}: {e}") from None


class Registry:
    """Thread-safe name -> object (or lazy placeholder) map with entry-point discovery.

    ``kind`` names what is registered in messages ("detector", "adapter"); ``hint`` ends the message for an
    unknown name.
    """

    def __init__(self, kind: str, group: str, builtins: dict[str, Any] | None = None, hint: str = "") -> None:
        self.kind, self.hint = kind, hint
        self._objs: dict[str, Any] = dict(builtins or {})
        self._origins: dict[str, str] = {name: "built-in" for name in self._objs}
        self._group = group
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ registration
    def register(self, name: str, target: Any = None, replace: bool = False) -> Callable[[Any], Any]:
        """Register ``target`` (object or ``"module:attr"``) under ``name``; without target, a decorator.

        Re-registering the same object, or a class whose lazy placeholder names it, is allowed;
        registering a different object under a taken name is a ``ValueError`` (a programming error)
        unless ``replace``.
        """

        def store(obj: Any) -> Any:
            with self._lock:
                current = self._objs.get(name)
                if current is not None and current is not obj and current != obj and not replace:
                    same_path = isinstance(current, str) and current == _target_path(obj)
                    same_class = (not isinstance(current, (str, md.EntryPoint))
                                  and _target_path(current) == _target_path(obj))
                    if not (same_path or same_class):
                        raise ValueError(f"{self.kind} name {name!r} is already registered to {current!r}")
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
                    log.warning("ignoring entry point %s=%s: the name is taken by the %s %s",
                                ep.name, ep.value, self._origins.get(ep.name), self.kind)
                    continue
                self._objs[ep.name] = ep
                dist = getattr(getattr(ep, "dist", None), "name", None)
                self._origins[ep.name] = f"entry point ({dist})" if dist else "entry point"

    def entry_points(self) -> dict[str, str]:
        """name -> ``module:attr`` of every entry point installed in the group (for listings and docs)."""
        try:
            return {ep.name: ep.value for ep in md.entry_points(group=self._group)}
        except Exception:
            return {}

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

    def find(self, name: str) -> Any | None:
        """The object for ``name`` (materialised), or None when no built-in, registration or entry point has it."""
        return self.get(name) if name in self else None

    def copy(self) -> Registry:
        """An independent registry with the same entries (tests register into a copy)."""
        other = Registry(self.kind, self._group, hint=self.hint)
        with self._lock:
            other._objs, other._origins = dict(self._objs), dict(self._origins)
        return other

    def get(self, name: str) -> Any:
        """The registered object for ``name`` (materialised), or a ``module:attr`` target loaded directly."""
        if name not in self._objs:
            self.discover()
        if name not in self._objs:
            if ":" in name:
                return load_target(name, self.kind)
            raise LangNeuronError(self._unknown_message(name))
        obj = self._objs[name]
        if isinstance(obj, (str, md.EntryPoint)):
            with self._lock:
                obj = self._objs[name]
                if isinstance(obj, (str, md.EntryPoint)):
                    loaded = load_target(obj, self.kind)
                    # the module may have registered the class itself (via the decorator) while importing
                    self._objs[name] = loaded
                    obj = loaded
        return obj

    def _unknown_message(self, name: str) -> str:
        known = sorted(self._objs)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        tail = f" {self.hint}" if self.hint else ""
        return f"unknown {self.kind} {name!r}{hint}; available: {', '.join(known) or 'none'}{tail}"
