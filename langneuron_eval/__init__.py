"""langneuron-eval: language-specific neurons in multilingual LLMs, measured with lm-evaluation-harness."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("langneuron-eval")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"

# In a source checkout that was never installed, the repo's top-level leaderboard/ folder stands in for the
# langneuron_eval.leaderboard subpackage the wheel maps it to (pyproject.toml, force-include).
_here = __import__("pathlib").Path(__file__).resolve().parent
if not (_here / "leaderboard").is_dir() and (_here.parent / "leaderboard" / "__init__.py").is_file():
    __path__.append(str(_here.parent))  # noqa: F821  (the package's own search path)

__all__ = ["__version__"]
