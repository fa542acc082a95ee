"""Make ``lm_eval --model langneuron`` and our tasks work in plain lm-eval 0.4.13, which has no plugin API.

Three ways in, all ending in :func:`register_model` and :func:`patch_task_manager`:

1. **The import hook** (default when installed). ``langneuron_eval_lmeval.pth`` in site-packages
   puts a tiny finder on ``sys.meta_path`` at interpreter start. It imports nothing itself; only when
   some code imports ``lm_eval.models`` or ``lm_eval.tasks.manager`` does it load this module, let
   the module load normally and then

   * register ``"langneuron"`` -> ``"langneuron_eval.lmeval.model:LangNeuronLM"`` in
     ``lm_eval.api.registry.model_registry`` as a lazy string, *after* lm-eval's own models: lm-eval
     imports ``lm_eval.models`` (and so registers ``hf`` ...) only while the registry is empty, so
     registering any earlier would hide every built-in model;
   * wrap ``TaskManager.__init__`` so the installed task folder (``langneuron_eval/tasks``) is added
     to ``include_path``, before any user ``--include_path`` (user tasks still override ours).

   Off switch: ``LANGNEURON_EVAL_DISABLE_LM_EVAL_HOOK=1`` (then nothing is touched).
2. **The console script** ``langneuron-eval`` (:func:`lm_eval_main`): registers both explicitly
   and runs lm-eval's CLI, so it works with the hook disabled.
3. **Programmatic**: call :func:`register` before ``lm_eval.simple_evaluate`` (or use
   :mod:`langneuron_eval.lmeval.evaluation`).

Uncaught :class:`~langneuron_eval.errors.LangNeuronError` (bad ``--model_args``) is printed by lm-eval's
CLI as one line instead of a traceback (``LANGNEURON_EVAL_TRACEBACK=1`` shows the traceback).
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from langneuron_eval.errors import LangNeuronError

MODEL_NAME = "langneuron"
MODEL_TARGET = "langneuron_eval.lmeval.model:LangNeuronLM"
DISABLE_ENV = "LANGNEURON_EVAL_DISABLE_LM_EVAL_HOOK"
TRACEBACK_ENV = "LANGNEURON_EVAL_TRACEBACK"
_PATCH_MARK = "_langneuron_eval_patched"


def hook_disabled() -> bool:
    return os.environ.get(DISABLE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def tasks_dir() -> Path:
    """The folder holding our task YAMLs: ``langneuron_eval/tasks`` when installed, else the repo's ``tasks/``."""
    pkg = Path(__file__).resolve().parents[1]
    installed = pkg / "tasks"
    if installed.is_dir():
        return installed
    source = pkg.parent / "tasks"
    if source.is_dir() and (pkg.parent / "pyproject.toml").is_file():
        return source
    raise FileNotFoundError(f"langneuron-eval task folder not found next to {pkg}")


# ------------------------------------------------------------------------------- registrations

def register_model() -> None:
    """Register ``langneuron`` in lm-eval's model registry, as a lazy string (idempotent).

    Imports ``lm_eval.models`` first so that lm-eval's built-in models are registered before ours.
    """
    import lm_eval.models  # noqa: F401  (fills the registry with the built-in models)
    from lm_eval.api.registry import model_registry

    if MODEL_NAME not in model_registry:
        model_registry.register(MODEL_NAME, target=MODEL_TARGET)


def _merge_include_path(include_path: Any, ours: Path) -> list[str | Path]:
    """Our folder first (later paths override earlier ones in lm-eval), without duplicates."""
    if include_path is None or include_path == "":
        user: list[str | Path] = []
    elif isinstance(include_path, (list, tuple)):
        user = list(include_path)
    else:
        user = [include_path]
    resolved = {Path(p).expanduser().resolve() for p in user}
    return user if ours.resolve() in resolved else [ours, *user]


def patch_task_manager() -> None:
    """Wrap ``TaskManager.__init__`` so our task folder is always on ``include_path`` (idempotent)."""
    from lm_eval.tasks.manager import TaskManager

    _patch_task_manager_class(TaskManager)


def _patch_task_manager_class(cls: type) -> None:
    original = cls.__init__
    if getattr(original, _PATCH_MARK, False):
        return
    signature = inspect.signature(original)

    @functools.wraps(original)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        try:
            bound = signature.bind(self, *args, **kwargs)
        except TypeError:
            return original(self, *args, **kwargs)  # let lm-eval report the bad call
        bound.apply_defaults()
        if bound.arguments.get("include_defaults", True):
            try:
                ours = tasks_dir()
            except FileNotFoundError:
                ours = None
            if ours is not None:
                bound.arguments["include_path"] = _merge_include_path(bound.arguments.get("include_path"), ours)
        return original(*bound.args, **bound.kwargs)

    setattr(__init__, _PATCH_MARK, True)
    cls.__init__ = __init__


def register() -> None:
    """Everything at once: the ``langneuron`` model and our task folder (for programmatic use)."""
    register_model()
    patch_task_manager()


# ---------------------------------------------------------------------- one-line errors in lm_eval

def _format_error(exc: BaseException) -> str:
    prog = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "lm_eval"
    return f"{prog}: error: {exc}"


def install_excepthook() -> None:
    """Print an uncaught LangNeuronError as one line (lm-eval's CLI would print a traceback)."""
    previous = sys.excepthook
    if getattr(previous, _PATCH_MARK, False):
        return

    def hook(exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
        if issubclass(exc_type, LangNeuronError) and not os.environ.get(TRACEBACK_ENV):
            print(_format_error(exc), file=sys.stderr)
            return
        previous(exc_type, exc, tb)

    setattr(hook, _PATCH_MARK, True)
    sys.excepthook = hook


# ------------------------------------------------------------------------------ the import hook

def _after_models(_module: Any) -> None:
    register_model()
    install_excepthook()


def _after_task_manager(module: Any) -> None:
    _patch_task_manager_class(module.TaskManager)


_AFTER: dict[str, Callable[[Any], None]] = {
    "lm_eval.models": _after_models,
    "lm_eval.tasks.manager": _after_task_manager,
}


class _PostImportLoader:
    """Runs the real loader, then ``callback(module)``; restores the real loader on the module."""

    def __init__(self, loader: Any, callback: Callable[[Any], None]) -> None:
        self._loader = loader
        self._callback = callback

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        try:
            self._loader.exec_module(module)
        finally:
            module.__loader__ = self._loader
            if getattr(module, "__spec__", None) is not None:
                module.__spec__.loader = self._loader
        if not hook_disabled():
            self._callback(module)

    def __getattr__(self, name: str) -> Any:  # get_source, get_filename, is_package, ...
        return getattr(self._loader, name)


def find_spec(name: str, path: Sequence[str] | None = None, target: Any = None) -> Any:
    """``sys.meta_path`` protocol, called by the boot finder of the ``.pth`` file for the two modules."""
    callback = _AFTER.get(name)
    if callback is None or hook_disabled():
        return None
    for finder in list(sys.meta_path):
        if getattr(finder, "langneuron_boot", False):
            continue
        find = getattr(finder, "find_spec", None)
        if find is None:
            continue
        spec = find(name, path, target)
        if spec is not None:
            break
    else:
        return None
    if spec.loader is None or not hasattr(spec.loader, "exec_module"):
        return spec
    spec.loader = _PostImportLoader(spec.loader, callback)
    return spec


PTH_LINE = (
    'import os, sys; os.environ.get("LANGNEURON_EVAL_DISABLE_LM_EVAL_HOOK", "").strip().lower() in '
    '("1", "true", "yes", "on") or any(getattr(f, "langneuron_boot", False) for f in sys.meta_path) or '
    'sys.meta_path.insert(0, type("LangNeuronEvalBootFinder", (), '
    '{"langneuron_boot": True, "find_spec": staticmethod(lambda name, path=None, target=None: '
    '__import__("langneuron_eval.lmeval.plugin", fromlist=["find_spec"]).find_spec(name, path, target) '
    'if name in ("lm_eval.models", "lm_eval.tasks.manager") else None)})())'
)
"""The single line of ``langneuron_eval_lmeval.pth`` (kept here so a test checks the file matches).

It must stay cheap: the line runs in every interpreter start of the environment, so it defines a
finder inline and imports nothing from this package (``import langneuron_eval`` alone costs
~50 ms, for ``importlib.metadata``) until lm-eval itself is being imported. It installs at most one
finder: venvs with a ``lib64 -> lib`` symlink process the same ``.pth`` file twice.
"""


def install_import_hook() -> None:
    """Run the ``.pth`` line in this process (for tests, or environments where ``.pth`` files are skipped)."""
    exec(PTH_LINE, {})  # idempotent: adds the finder only if none is installed
    if "lm_eval.models" in sys.modules and not hook_disabled():
        _after_models(sys.modules["lm_eval.models"])
    if "lm_eval.tasks.manager" in sys.modules and not hook_disabled():
        _after_task_manager(sys.modules["lm_eval.tasks.manager"])


# ------------------------------------------------------------------------------- console script

def lm_eval_main(argv: Sequence[str] | None = None) -> int:
    """``langneuron-eval``: lm-eval's CLI with ``langneuron`` and our tasks registered explicitly."""
    register()
    from lm_eval.__main__ import cli_evaluate

    if argv is not None:
        sys.argv = [sys.argv[0] if sys.argv else "langneuron-eval", *argv]
    try:
        cli_evaluate()
    except LangNeuronError as e:
        if os.environ.get(TRACEBACK_ENV):
            raise
        print(_format_error(e), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(lm_eval_main())
