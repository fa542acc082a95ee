"""The versions every output records, so a file says which code made it."""

from __future__ import annotations

import importlib.metadata
import platform

from langneuron_eval import __version__


def versions() -> dict[str, str]:
    """Versions of this package, Python and the libraries whose numerics or formats shape the outputs."""
    out = {"langneuron_eval": __version__, "python": platform.python_version()}
    for dist in ("torch", "transformers", "lm_eval", "numpy", "safetensors"):
        try:
            out[dist] = importlib.metadata.version(dist.replace("_", "-"))
        except importlib.metadata.PackageNotFoundError:
            continue
    return out
