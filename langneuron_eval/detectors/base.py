"""The detector interface: statistics in, per-language neuron sets out.

A detector is anything that, given an :class:`~langneuron_eval.core.stats.ActivationStats` and keyword
parameters, returns which ``(layer, neuron)`` units belong to each language. Two forms are accepted
so that a third-party method needs no boilerplate:

* a subclass of :class:`Detector` with a ``Params`` dataclass and a ``detect(stats, params)`` method
  (the built-ins use this form), or
* a plain callable ``fn(stats, **params)``; its parameters are read from a ``Params`` dataclass
  attribute if it has one, otherwise from its signature (annotations or default values give the types).

Parameters are declared as dataclass fields because they arrive from the command line as strings
(``--param top_rate=0.05``) and must be converted by their declared type, checked against the valid
names, and written back with their defaults into the neuron file so that a run can be repeated.
A field whose name ends in ``_`` (``lambda_``) is exposed without it (``lambda``), for names that
are Python keywords.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Union

from langneuron_eval.core.stats import ActivationStats
from langneuron_eval.errors import LangNeuronError

Unit = tuple[int, int]


@dataclass
class DetectionResult:
    """What a detector returns.

    Attributes:
        languages: language code -> list of ``(layer, neuron)`` units (any order; duplicates are removed).
        extra: detector-specific JSON-serialisable details (thresholds, scores, classes), stored verbatim
            in the neuron file's ``extra`` field.
        kind: ``"neurons"``, or ``"experts"`` when the pairs are ``(decoder layer, expert)`` of an MoE model.
    """

    languages: dict[str, list[Unit]]
    extra: dict[str, Any] = field(default_factory=dict)
    kind: str = "neurons"


@dataclass
class NoParams:
    """Parameters of a detector that takes none."""


class Detector:
    """Base class of the built-in detectors (and a convenient one for third-party detectors).

    Subclasses set ``Params`` to a dataclass whose fields (with defaults) are the detector's parameters
    and implement :meth:`detect`. Calling an instance with keyword arguments converts and checks them
    first, so ``LapeDetector()(stats, top_rate=0.02)`` works from Python as well.
    """

    name: ClassVar[str] = ""
    Params: ClassVar[type] = NoParams

    def detect(self, stats: ActivationStats, params: Any) -> DetectionResult:
        raise NotImplementedError

    def describe(self) -> str:
        """One line for ``langneuron detect --list``: the first line of the class docstring."""
        doc = inspect.getdoc(type(self)) or ""
        return doc.splitlines()[0] if doc else ""

    def param_specs(self) -> list[ParamSpec]:
        return param_specs(self.Params)

    def make_params(self, raw: Mapping[str, Any] | None = None) -> Any:
        return make_params(self.Params, raw or {}, self.name or type(self).__name__)

    def __call__(self, stats: ActivationStats, **params: Any) -> DetectionResult:
        return self.detect(stats, self.make_params(params))


class FunctionDetector(Detector):
    """Adapts a plain callable ``fn(stats, **params)`` to the :class:`Detector` interface."""

    def __init__(self, fn: Callable[..., Any], name: str, params_cls: type | None = None) -> None:
        self.fn = fn
        self.name = name  # type: ignore[misc]  # instance attribute shadows the ClassVar on purpose
        self.Params = params_cls or getattr(fn, "Params", None) or params_from_signature(fn, name)  # type: ignore[misc]

    def describe(self) -> str:
        doc = inspect.getdoc(self.fn) or ""
        return doc.splitlines()[0] if doc else ""

    def detect(self, stats: ActivationStats, params: Any) -> DetectionResult:
        kwargs = {f.name: getattr(params, f.name) for f in dataclasses.fields(params)}
        return normalize_result(self.fn(stats, **kwargs), self.name)


def as_detector(obj: Any, name: str) -> Detector:
    """Turn a registered object (Detector subclass or instance, other class, or function) into a Detector.

    A class that is not a :class:`Detector` is instantiated without arguments and its instance must be
    callable; a function is wrapped as it is.
    """
    if isinstance(obj, Detector):
        return obj
    if isinstance(obj, type):
        try:
            inst = obj()
        except TypeError as e:
            raise LangNeuronError(f"detector {name!r}: class {obj.__name__} cannot be created without arguments ({e})") from None
        if isinstance(inst, Detector):
            if not inst.name:
                inst.name = name  # type: ignore[misc]
            return inst
        if not callable(inst):
            raise LangNeuronError(f"detector {name!r}: instances of {obj.__name__} are not callable")
        return FunctionDetector(inst, name, getattr(obj, "Params", None))
    if callable(obj):
        return FunctionDetector(obj, name)
    raise LangNeuronError(f"detector {name!r} is a {type(obj).__name__}, not a class or callable")


def normalize_result(obj: Any, name: str) -> DetectionResult:
    """Accept a DetectionResult, any object with ``languages`` (and ``extra``), or such a dict."""
    kind = getattr(obj, "kind", "neurons")
    if isinstance(obj, DetectionResult):
        langs, extra = obj.languages, obj.extra
    elif isinstance(obj, Mapping) and "languages" in obj:
        langs, extra = obj["languages"], obj.get("extra") or {}
    elif hasattr(obj, "languages"):
        langs, extra = obj.languages, getattr(obj, "extra", None) or {}
    else:
        raise LangNeuronError(f"detector {name!r} returned {type(obj).__name__}; expected a result with 'languages'")
    if not isinstance(langs, Mapping):
        raise LangNeuronError(f"detector {name!r} returned languages of type {type(langs).__name__}, expected a dict")
    out: dict[str, list[Unit]] = {}
    for lang, units in langs.items():
        try:
            out[str(lang)] = sorted({(int(a), int(b)) for a, b in units})
        except (TypeError, ValueError):
            raise LangNeuronError(f"detector {name!r}: languages[{lang!r}] is not a list of (layer, neuron) pairs") from None
    if not isinstance(extra, Mapping):
        raise LangNeuronError(f"detector {name!r} returned extra of type {type(extra).__name__}, expected a dict")
    return DetectionResult(out, dict(extra), kind)


# ---------------------------------------------------------------------------------------------- parameters
@dataclass(frozen=True)
class ParamSpec:
    """One declared parameter: public name, dataclass field, type, default and help text."""

    name: str
    field: str
    type: Any
    default: Any
    help: str = ""

    def type_name(self) -> str:
        return _type_name(self.type)


def param_specs(params_cls: type) -> list[ParamSpec]:
    if not dataclasses.is_dataclass(params_cls):
        raise LangNeuronError(f"detector parameters {params_cls!r} must be a dataclass")
    hints = typing.get_type_hints(params_cls)
    specs = []
    for f in dataclasses.fields(params_cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = dataclasses.MISSING
        specs.append(ParamSpec(f.name.rstrip("_") or f.name, f.name, hints.get(f.name, Any), default,
                               str(f.metadata.get("help", ""))))
    return specs


def make_params(params_cls: type, raw: Mapping[str, Any], detector: str) -> Any:
    """Build ``params_cls`` from user values: unknown names and unconvertible values become one-line errors."""
    specs = {s.name: s for s in param_specs(params_cls)}
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        spec = specs.get(key) or specs.get(key.rstrip("_"))
        if spec is None:
            valid = ", ".join(specs) or "none"
            close = difflib.get_close_matches(key, list(specs), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise LangNeuronError(f"unknown parameter {key!r} for detector {detector!r}{hint}; valid parameters: {valid}")
        kwargs[spec.field] = coerce_value(spec, value, detector)
    missing = [s.name for s in specs.values() if s.field not in kwargs and s.default is dataclasses.MISSING]
    if missing:
        raise LangNeuronError(f"detector {detector!r} needs parameter(s): {', '.join(missing)} (pass --param NAME=VALUE)")
    try:
        return params_cls(**kwargs)
    except LangNeuronError:
        raise
    except (TypeError, ValueError) as e:
        raise LangNeuronError(f"invalid parameters for detector {detector!r}: {e}") from None


def params_to_dict(params: Any) -> dict[str, Any]:
    """Public-name -> value, every field including defaults (what the neuron file records)."""
    return {f.name.rstrip("_") or f.name: getattr(params, f.name) for f in dataclasses.fields(params)}


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
_NONE = {"none", "null", "auto", ""}


def _is_optional(tp: Any) -> tuple[bool, Any]:
    origin = typing.get_origin(tp)
    if origin is Union or origin is types.UnionType:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) < len(typing.get_args(tp)):
            return True, (args[0] if len(args) == 1 else Union[tuple(args)])  # noqa: UP007
    return False, tp


def _type_name(tp: Any) -> str:
    optional, inner = _is_optional(tp)
    if typing.get_origin(inner) is Literal:
        base = "|".join(str(a) for a in typing.get_args(inner))
    else:
        base = getattr(inner, "__name__", str(inner))
    return f"{base} or none" if optional else base


def coerce_value(spec: ParamSpec, value: Any, detector: str) -> Any:
    """Convert a CLI string (or check a Python value) to the parameter's declared type."""
    optional, tp = _is_optional(spec.type)

    def bad(why: str = "") -> LangNeuronError:
        return LangNeuronError(f"parameter {spec.name!r} of detector {detector!r} expects {_type_name(spec.type)}, "
                               f"got {value!r}{why}")

    if value is None or (optional and isinstance(value, str) and value.strip().lower() in _NONE):
        if optional or spec.type is Any:
            return None
        raise bad()
    if tp is Any:
        return value
    if typing.get_origin(tp) is Literal:
        choices = typing.get_args(tp)
        if value in choices:
            return value
        if isinstance(value, str):
            for c in choices:
                if str(c) == value.strip():
                    return c
        raise bad(f" (choose one of {', '.join(map(str, choices))})")
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise bad(" (use true or false)")
    if tp is int:
        if isinstance(value, bool):
            raise bad()
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                raise bad() from None
        raise bad()
    if tp is float:
        if isinstance(value, bool):
            raise bad()
        if isinstance(value, (int, float)):
            out = float(value)
        elif isinstance(value, str):
            try:
                out = float(value.strip())
            except ValueError:
                raise bad() from None
        else:
            raise bad()
        if not math.isfinite(out):
            raise bad(" (must be finite)")
        return out
    if tp is str:
        return value if isinstance(value, str) else str(value)
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise bad()


def params_from_signature(fn: Callable[..., Any], name: str) -> type:
    """A Params dataclass built from ``fn(stats, *, a: float = 0.1, ...)`` (parameters after the first)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return NoParams
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable forward references: fall back to default values' types
        hints = {}
    fields: list[tuple[str, Any, Any]] = []
    for i, (pname, p) in enumerate(sig.parameters.items()):
        if i == 0 or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        tp = hints.get(pname)
        if tp is None:
            tp = type(p.default) if p.default is not p.empty and p.default is not None else Any
        if p.default is p.empty:
            fields.append((pname, tp))  # type: ignore[arg-type]
        else:
            fields.append((pname, tp, field(default=p.default)))
    required = [f for f in fields if len(f) == 2]
    optional = [f for f in fields if len(f) == 3]
    return dataclasses.make_dataclass(f"{name.replace(':', '_').replace('.', '_')}_Params", required + optional)


def check_rate(name: str, value: float, allow_zero: bool = False) -> None:
    """Rates are fractions of a population: (0, 1] (or [0, 1])."""
    lo_ok = value >= 0 if allow_zero else value > 0
    if not (lo_ok and value <= 1):
        interval = "[0, 1]" if allow_zero else "(0, 1]"
        raise LangNeuronError(f"{name} must be in {interval}, got {value}")
