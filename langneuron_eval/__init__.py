"""langneuron-eval: language-specific neurons in multilingual LLMs, measured with lm-evaluation-harness."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("langneuron-eval")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
