"""Turn the seed repositories' activation files into :class:`~langneuron_eval.core.stats.ActivationStats`.

Researchers already hold per-language activation counts made by the reference code, often for 7B
models that took hours per language to record. Two layouts exist, both ``torch.save``'d dicts, one
file per language, the language code being the second dot-separated part of the name:

``activation.<lang>.train.<model>`` (Tang et al., LAPE)
    ``n``: tokens run through the model (an int); ``over_zero``: ``[L, N]`` int32, tokens whose gate
    activation is > 0. Files from before December 2024 also hold ``sum1`` .. ``sum4``, float32 sums of
    the activations' powers; ``sum1`` and ``sum2`` become our activation sums and squared sums.
``activation.<lang>.<Model>-<tag>.pt`` (Zhang et al., NJUNLP)
    ``total_tokens`` and ``over_zero`` (int64). Next to each, ``prefix.activation.<lang>...pt``
    counts the instruction alone; the reference statistic is over *response* tokens, full minus
    prefix, with negative differences clamped to 0. We do the same when the prefix files are there.

Counts are taken as they are, except where a cell counts more positive tokens than the file's token
count (NJUNLP's shipped Mistral files have a dozen such cells after the prefix subtraction, the two
token counts having been measured differently): such cells are clamped to the token count and the
report says how many. Files are loaded with ``torch.load(weights_only=True)``, which refuses pickled
code. The model shape comes from the tensors; the model type and site are the user's to name, as the
files do not record them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from langneuron_eval.core.adapters import REGISTRY as ADAPTERS
from langneuron_eval.core.adapters import config_intermediate_size
from langneuron_eval.core.fingerprint import ModelFingerprint
from langneuron_eval.core.sites import check_site
from langneuron_eval.core.stats import ActivationStats
from langneuron_eval.errors import LangNeuronError
from langneuron_eval.fileio import check_readable, sha256_file
from langneuron_eval.languages import normalize
from langneuron_eval.provenance import versions

_NAME = re.compile(r"^(?P<prefix>prefix\.)?activation\.(?P<lang>[^.]+)\.(?P<tag>.+)$")
FORMATS = {"n": "lape", "total_tokens": "njunlp"}  # token-count key -> reference code


@dataclass(frozen=True)
class ReferenceFile:
    """One language's activation file and, for NJUNLP's response-token statistic, its prefix file."""

    lang: str  # canonical code
    path: Path
    prefix_path: Path | None = None


@dataclass
class ImportConfig:
    """What the files do not say: the model type and site, which languages, whether to subtract prefixes."""

    model_type: str
    site: str = "act_out"
    langs: list[str] | None = None  # order of the statistics; None: every language found, sorted
    tag: str | None = None  # the part after activation.<lang>. when a folder holds several models
    subtract_prefix: bool = True  # NJUNLP: response tokens = full run - instruction-only run
    model: str | None = None  # recorded in the metadata only


@dataclass
class ImportReport:
    """What the import changed, per language: cells clamped down to the token count, or up to 0."""

    fmt: str
    clamped_above: dict[str, int] = field(default_factory=dict)
    clamped_below: dict[str, int] = field(default_factory=dict)
    has_sums: bool = False

    def warnings(self) -> list[str]:
        out = []
        for counts, what in ((self.clamped_above, "count more positive tokens than the file's token count; "
                              "clamped to the token count"),
                             (self.clamped_below, "are negative after subtracting the prefix counts; clamped "
                              "to 0 as the reference code does")):
            if any(counts.values()):
                per = ", ".join(f"{lang} {k}" for lang, k in counts.items() if k)
                out.append(f"{sum(counts.values())} cells ({per}) {what}")
        return out


# ------------------------------------------------------------------------------ finding files

def _parse_name(path: Path) -> re.Match[str] | None:
    return _NAME.match(path.name)


def _normalize(code: str, where: str) -> str:
    try:
        return normalize(code, lid_only=False)
    except LangNeuronError as e:
        raise LangNeuronError(f"{where}: {e}") from None


def _scan_folder(folder: Path, tag: str | None) -> list[tuple[str, Path]]:
    """(language code as written, file) for every ``activation.<lang>.<tag>`` file of one model."""
    found = [(m, p) for p in sorted(folder.iterdir()) if p.is_file() and (m := _parse_name(p)) and not m["prefix"]]
    tags = sorted({m["tag"] for m, _ in found})
    if not found:
        raise LangNeuronError(f"{folder} holds no activation.<lang>.<model> files")
    if tag is None and len(tags) > 1:
        raise LangNeuronError(f"{folder} holds activation files of several models ({', '.join(tags)}); "
                              "choose one with --tag")
    if tag is not None and tag not in tags:
        raise LangNeuronError(f"{folder} has no activation.<lang>.{tag} files (found: {', '.join(tags)})")
    return [(m["lang"], p) for m, p in found if tag is None or m["tag"] == tag]


def _expand(source: str, tag: str | None) -> list[tuple[str, Path]]:
    """A source is a folder, an ``activation.<lang>.*`` file, or ``lang=path``."""
    lang, sep, rest = source.partition("=")
    if sep and not Path(source).exists():
        return [(lang.strip(), Path(rest.strip()))]
    path = Path(source)
    if path.is_dir():
        return _scan_folder(path, tag)
    if not path.exists():
        raise LangNeuronError(f"activation file or folder not found: {source}")
    m = _parse_name(path)
    if not m or m["prefix"]:
        raise LangNeuronError(f"cannot tell the language of {source}: name it activation.<lang>.<model> "
                              "or pass lang=PATH")
    return [(m["lang"], path)]


def _prefix_of(path: Path) -> Path | None:
    candidate = path.with_name("prefix." + path.name)
    return candidate if candidate.is_file() else None


def find_reference_files(sources: Sequence[str], config: ImportConfig) -> list[ReferenceFile]:
    """Resolve sources to one readable file per language, in the order wanted; loads nothing."""
    if not sources:
        raise LangNeuronError("no activation files given (a folder, activation.<lang>.<model> files, or lang=PATH)")
    by_lang: dict[str, ReferenceFile] = {}
    for source in sources:
        for code, path in _expand(source, config.tag):
            lang = _normalize(code, str(path))
            if lang in by_lang:
                raise LangNeuronError(f"two activation files for language {lang!r}: {by_lang[lang].path} and {path}")
            by_lang[lang] = ReferenceFile(lang, path, _prefix_of(path) if config.subtract_prefix else None)
    wanted = [_normalize(c, "--langs") for c in config.langs] if config.langs else sorted(by_lang)
    missing = [lang for lang in wanted if lang not in by_lang]
    if missing:
        raise LangNeuronError(f"no activation file for {', '.join(missing)} (found: {', '.join(sorted(by_lang))})")
    if len(set(wanted)) != len(wanted):
        raise LangNeuronError(f"--langs names a language twice: {', '.join(config.langs or [])}")
    for lang in wanted:
        check_readable(by_lang[lang].path, "activation file")
    return [by_lang[lang] for lang in wanted]


# ------------------------------------------------------------------------------ reading files

@dataclass
class _Counts:
    """One file's content: token count, positive counts [L, N], and (LAPE before 2024-12) sums."""

    fmt: str
    n: int
    over_zero: torch.Tensor  # [L, N] int64
    sums: tuple[torch.Tensor, torch.Tensor] | None  # ([L, N], [L, N]) float64


def _token_count(value: Any, path: Path, key: str) -> int:
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point():
        value = int(value.item())
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise LangNeuronError(f"{path}: {key!r} must be a non-negative integer token count, got {value!r}")
    return value


def _count_tensor(value: Any, path: Path) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.dim() != 2:
        raise LangNeuronError(f"{path}: 'over_zero' must be a [layers, neurons] tensor, got "
                              f"{list(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__}")
    if value.is_floating_point():
        if not torch.isfinite(value).all() or not torch.equal(value, value.round()):
            raise LangNeuronError(f"{path}: 'over_zero' holds non-integer values; it should count tokens")
    elif value.dtype == torch.bool or value.is_complex():
        raise LangNeuronError(f"{path}: 'over_zero' has dtype {value.dtype}; expected integer counts")
    return value.to(torch.int64)


def read_reference_file(path: Path) -> _Counts:
    """Load one reference file safely (tensors and plain Python values only) and check its fields."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError for pickled code, RuntimeError/EOFError for truncated files
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise LangNeuronError(f"{path} is not a readable torch.save file of tensors ({first})") from None
    if not isinstance(obj, dict):
        raise LangNeuronError(f"{path}: expected a dict with 'over_zero' and a token count, got {type(obj).__name__}")
    keys = [k for k in FORMATS if k in obj]
    if "over_zero" not in obj or len(keys) != 1:
        raise LangNeuronError(f"{path}: expected keys 'over_zero' and one of 'n' (LAPE) or 'total_tokens' "
                              f"(NJUNLP), found {', '.join(map(str, obj)) or 'none'}")
    over_zero = _count_tensor(obj["over_zero"], path)
    sums = None
    if all(isinstance(obj.get(k), torch.Tensor) and obj[k].shape == over_zero.shape for k in ("sum1", "sum2")):
        sums = (obj["sum1"].to(torch.float64), obj["sum2"].to(torch.float64))
    return _Counts(FORMATS[keys[0]], _token_count(obj[keys[0]], path, keys[0]), over_zero, sums)


def _response_counts(full: _Counts, prefix: _Counts, path: Path) -> tuple[_Counts, int]:
    """NJUNLP's statistic: full-run minus instruction-only counts; returns it and the cells clamped to 0."""
    if prefix.over_zero.shape != full.over_zero.shape:
        raise LangNeuronError(f"{path}: its prefix file has shape {list(prefix.over_zero.shape)}, the file "
                              f"{list(full.over_zero.shape)}")
    diff = full.over_zero - prefix.over_zero
    negative = int((diff < 0).sum())
    return _Counts(full.fmt, max(full.n - prefix.n, 0), diff.clamp(min=0), None), negative


def read_language(ref: ReferenceFile) -> tuple[_Counts, int, int]:
    """One language's counts (prefix subtracted when given); also the cells clamped above n and below 0."""
    counts = read_reference_file(ref.path)
    below = 0
    if ref.prefix_path is not None:
        counts, below = _response_counts(counts, read_reference_file(ref.prefix_path), ref.path)
    above = int((counts.over_zero > counts.n).sum())
    counts.over_zero = counts.over_zero.clamp(max=counts.n)
    return counts, above, below


# ------------------------------------------------------------------------------ assembling

def _check_model_type(model_type: str) -> str:
    """A transformers ``model_type`` or one in our adapter table; typos fail here, not at intervention time."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES


    if not model_type or (model_type not in CONFIG_MAPPING_NAMES and model_type not in ADAPTERS):
        raise LangNeuronError(f"unknown model type {model_type!r}: name the model's config.model_type "
                              "(e.g. llama, mistral, bloom), or pass --model to read it from its config")
    return model_type


def model_shape(model: str) -> tuple[str, int, int]:
    """(model_type, layers, FFN units per layer) from a model's config alone; no weights are read."""
    from transformers import AutoConfig


    try:
        cfg = AutoConfig.from_pretrained(model)
    except Exception as e:  # OSError for a missing path or an offline hub id, ValueError for a foreign config
        raise LangNeuronError(f"cannot read the config of --model {model}: {str(e).splitlines()[0]}") from None
    units = config_intermediate_size(cfg)
    if units is None:
        raise LangNeuronError(f"cannot tell the FFN width of model_type {cfg.model_type!r} from its config; "
                              "pass --model-type instead of --model")
    return cfg.model_type, int(cfg.num_hidden_layers), int(units)


def _check_shape(config: ImportConfig, L: int, N: int) -> None:
    if config.model is None:
        return
    model_type, layers, units = model_shape(config.model)
    if (layers, units) != (L, N) or model_type != config.model_type:
        raise LangNeuronError(f"the activation files are [{L} layers, {N} units] but --model {config.model} is a "
                              f"{model_type} with [{layers}, {units}]")


def _file_meta(ref: ReferenceFile) -> dict[str, Any]:
    meta: dict[str, Any] = {"file": ref.path.name, "sha256": sha256_file(ref.path)}
    if ref.prefix_path is not None:
        meta["prefix_file"] = ref.prefix_path.name
        meta["prefix_sha256"] = sha256_file(ref.prefix_path)
    return meta


def import_reference(refs: Sequence[ReferenceFile], config: ImportConfig) -> tuple[ActivationStats, ImportReport]:
    """Read every language's file and build statistics with a fingerprint of the tensors' shape."""
    _check_model_type(config.model_type)
    check_site(config.site)
    per_lang = [(ref, *read_language(ref)) for ref in refs]
    first_ref, first = per_lang[0][0], per_lang[0][1]
    for ref, counts, _, _ in per_lang:
        if counts.over_zero.shape != first.over_zero.shape:
            raise LangNeuronError(f"{ref.path} has shape {list(counts.over_zero.shape)} but {first_ref.path} "
                                  f"{list(first.over_zero.shape)}: files of different models")
        if counts.fmt != first.fmt:
            raise LangNeuronError(f"{ref.path} is a {counts.fmt} file but {first_ref.path} a {first.fmt} file")
    report = ImportReport(first.fmt, {r.lang: a for r, _, a, _ in per_lang}, {r.lang: b for r, _, _, b in per_lang},
                          has_sums=all(c.sums is not None for _, c, _, _ in per_lang))
    L, N = first.over_zero.shape
    _check_shape(config, int(L), int(N))

    stats = ActivationStats(
        languages=[r.lang for r in refs],
        n_tokens=torch.tensor([c.n for _, c, _, _ in per_lang], dtype=torch.int64),
        positive_counts=torch.stack([c.over_zero for _, c, _, _ in per_lang]),
        activation_sums=torch.stack([c.sums[0] for _, c, _, _ in per_lang]) if report.has_sums else None,
        activation_sq_sums=torch.stack([c.sums[1] for _, c, _, _ in per_lang]) if report.has_sums else None,
        fingerprint=ModelFingerprint(config.model_type, int(L), int(N), config.site),
        metadata={
            "model": config.model or "",
            "imported_from": {
                "format": report.fmt,
                "files": {r.lang: _file_meta(r) for r in refs},
                "response_tokens": any(r.prefix_path is not None for r in refs),
                "clamped_above_token_count": report.clamped_above,
                "clamped_below_zero": report.clamped_below,
            },
            "record_config": {"site": config.site},
            "versions": versions(),
            "seeds": {},
        },
    )
    return stats, report
