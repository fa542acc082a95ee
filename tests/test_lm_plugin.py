"""The lm-eval hook (.pth + meta-path finder), its off switch and the ``langneuron-eval`` console script.

From a source checkout the ``.pth`` file is not in site-packages, so subprocesses activate it the way
the interpreter does at start-up: ``site.addsitedir`` on a folder holding a copy of the file.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import langneuron_eval
from langneuron_eval.errors import LangNeuronError
from langneuron_eval.lmeval import plugin as lmeval_plugin

PKG_PARENT = Path(langneuron_eval.__file__).resolve().parents[1]
REPO_PTH = PKG_PARENT / "langneuron_eval_lmeval.pth"
INSTALLED_PTH = Path(sysconfig.get_paths()["purelib"]) / "langneuron_eval_lmeval.pth"


def _installed() -> bool:
    """True when langneuron_eval is imported from an installed distribution (not from a source tree)."""
    try:
        dist = importlib.metadata.distribution("langneuron-eval")
    except importlib.metadata.PackageNotFoundError:
        return False
    files = [str(f) for f in (dist.files or [])]
    return "langneuron_eval_lmeval.pth" in files and INSTALLED_PTH.exists() and PKG_PARENT == INSTALLED_PTH.parent


def _pth_file() -> Path:
    return INSTALLED_PTH if _installed() else REPO_PTH


@pytest.fixture(scope="module")
def site_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("site")
    shutil.copy(_pth_file(), d / "langneuron_eval_lmeval.pth")
    return d


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(PKG_PARENT), *filter(None, [env.get("PYTHONPATH")])])
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env.pop(lmeval_plugin.DISABLE_ENV, None)
    env.update(extra)
    return env


def _python(code: str, site_dir: Path, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    prelude = f"import site, sys\nsite.addsitedir({str(site_dir)!r})\n"
    return subprocess.run([sys.executable, "-c", prelude + code], cwd=cwd, env=_env(**env), capture_output=True,
                          text=True, timeout=600)


def _cli_script(*commands: list[str]) -> str:
    """Python running ``lm_eval <args>`` (the console script's code) once per command."""
    lines = ["from lm_eval.__main__ import cli_evaluate"]
    for args in commands:
        lines += [f"sys.argv = ['lm_eval', *{args!r}]", "cli_evaluate()", "print('@@done', flush=True)"]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ in-process units

def test_pth_file_is_the_single_cheap_line():
    assert REPO_PTH.read_text(encoding="utf-8") == lmeval_plugin.PTH_LINE + "\n"
    assert lmeval_plugin.PTH_LINE.startswith("import ")  # site.py executes only lines starting with "import"


def test_tasks_dir_holds_the_task_folders():
    d = lmeval_plugin.tasks_dir()
    assert (d / "utils.py").is_file() and (d / "lang_ppl" / "lang_ppl_zh.yaml").is_file()


def test_include_path_merge_keeps_user_paths():
    ours = lmeval_plugin.tasks_dir()
    assert lmeval_plugin._merge_include_path(None, ours) == [ours]
    assert lmeval_plugin._merge_include_path("/my/tasks", ours) == [ours, "/my/tasks"]
    assert lmeval_plugin._merge_include_path(["/a", "/b"], ours) == [ours, "/a", "/b"]
    assert lmeval_plugin._merge_include_path([str(ours)], ours) == [str(ours)]  # no duplicate indexing


def test_task_manager_patch_is_idempotent_and_respects_include_defaults():
    seen = []

    class FakeTaskManager:
        def __init__(self, verbosity=None, include_path=None, include_defaults=True, metadata=None):
            seen.append((include_path, include_defaults))

    lmeval_plugin._patch_task_manager_class(FakeTaskManager)
    lmeval_plugin._patch_task_manager_class(FakeTaskManager)
    FakeTaskManager(include_path="/user")
    FakeTaskManager(None, "/user")  # positional include_path
    FakeTaskManager(include_defaults=False, include_path="/only")
    ours = lmeval_plugin.tasks_dir()
    assert seen == [([ours, "/user"], True), ([ours, "/user"], True), ("/only", False)]


def test_excepthook_prints_one_line(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(sys, "excepthook", lambda *a: calls.append(a))
    monkeypatch.setattr(sys, "argv", ["lm_eval"])
    monkeypatch.delenv(lmeval_plugin.TRACEBACK_ENV, raising=False)
    lmeval_plugin.install_excepthook()
    sys.excepthook(LangNeuronError, LangNeuronError("neuron file not found: x.json"), None)
    assert capsys.readouterr().err == "lm_eval: error: neuron file not found: x.json\n"
    sys.excepthook(ValueError, ValueError("other"), None)
    assert len(calls) == 1  # everything else goes to the previous hook


# ---------------------------------------------------------------------------- subprocess checks

REGISTRY_CHECK = """
print('loaded at start:', sorted(m for m in ('torch', 'lm_eval', 'langneuron_eval') if m in sys.modules))
print('boot finders:', sum(bool(getattr(f, 'langneuron_boot', False)) for f in sys.meta_path))
from lm_eval.api.registry import get_model, model_registry
print('hf:', get_model('hf').__name__)
print('langneuron registered:', 'langneuron' in model_registry)
from lm_eval.tasks import TaskManager
print('task manager patched:', bool(getattr(TaskManager.__init__, '_langneuron_eval_patched', False)))
if 'langneuron' in model_registry:
    print('langneuron:', get_model('langneuron').__name__)
"""


def test_hook_registers_after_builtin_models(site_dir, tmp_path):
    p = _python(REGISTRY_CHECK, site_dir, tmp_path)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "loaded at start: []" in out  # the .pth line imports neither torch, lm_eval nor our package
    assert "boot finders: 1" in out
    assert "hf: HFLM" in out  # built-in models are not hidden
    assert "langneuron registered: True" in out and "langneuron: LangNeuronLM" in out
    assert "task manager patched: True" in out


def test_off_switch_touches_nothing(site_dir, tmp_path):
    p = _python(REGISTRY_CHECK, site_dir, tmp_path, **{lmeval_plugin.DISABLE_ENV: "1"})
    assert p.returncode == 0, p.stderr
    assert "boot finders: 0" in p.stdout
    assert "hf: HFLM" in p.stdout
    assert "langneuron registered: False" in p.stdout
    assert "task manager patched: False" in p.stdout


USER_TASK = """\
task: my_user_task
output_type: loglikelihood_rolling
custom_dataset: !function user_utils.load
test_split: test
doc_to_text: ""
doc_to_target: text
metric_list:
  - metric: word_perplexity
"""
USER_UTILS = """\
from datasets import Dataset, DatasetDict


def load(**_):
    return DatasetDict({"test": Dataset.from_list([{"text": "user supplied text"}])})
"""


@pytest.mark.slow
def test_plain_lm_eval_cli_with_the_hook(site_dir, tmp_path, tiny_model_dir):
    """``lm_eval ls tasks`` and ``--model hf`` still work, --include_path too, and bad model_args are one line."""
    user = tmp_path / "user_tasks"
    user.mkdir()
    (user / "my_task.yaml").write_text(USER_TASK)
    (user / "user_utils.py").write_text(USER_UTILS)
    out = tmp_path / "out"
    script = _cli_script(
        ["ls", "tasks", "--include_path", str(user)],
        ["--model", "hf", "--model_args", f"pretrained={tiny_model_dir}", "--tasks", "lang_ppl_en,my_user_task",
         "--include_path", str(user), "--limit", "2", "--output_path", str(out)],
        ["--model", "langneuron", "--model_args",
         f"pretrained={tiny_model_dir},neurons={tmp_path / 'missing.json'},mode=deactivate,lang=zh",
         "--tasks", "lang_ppl_en", "--limit", "1"])
    p = _python(script, site_dir, tmp_path)
    listing, hf_run, failed = (p.stdout.split("@@done") + ["", "", ""])[:3]
    assert "|lang_ppl_zh" in listing and "|hellaswag" in listing and "|my_user_task" in listing, p.stderr[-3000:]
    results = json.loads(next(out.rglob("results_*.json")).read_text())
    assert "byte_perplexity,none" in results["results"]["lang_ppl_en"]
    assert "word_perplexity,none" in results["results"]["my_user_task"]
    assert p.returncode != 0 and "Traceback" not in p.stderr, p.stderr[-3000:]
    last = [line for line in p.stderr.splitlines() if line.strip()][-1]
    assert last == f"lm_eval: error: neuron file not found: {tmp_path / 'missing.json'}"


def _write_neurons(path: Path) -> Path:
    from langneuron_eval.core.fingerprint import ModelFingerprint
    from langneuron_eval.core.neurons import NeuronFile

    NeuronFile(ModelFingerprint("llama", 2, 48, "act_out"), "handmade",
               {"zh": [(0, u) for u in range(48)], "de": [(1, 2)]},
               values={"zh": {"mean": [0.5] * 48}}).save(path, force=True)
    return path


@pytest.mark.slow
def test_console_script_works_with_the_hook_disabled(site_dir, tmp_path, tiny_model_dir):
    neurons = _write_neurons(tmp_path / "neurons.json")
    out = tmp_path / "out"
    base = ["--model", "langneuron", "--tasks", "lang_steer_zh", "--limit", "2", "--gen_kwargs", "max_gen_toks=4"]
    bad = [*base, "--model_args", f"pretrained={tiny_model_dir},neurons={neurons},mode=activate,lang=ko"]
    good = [*base, "--model_args", f"pretrained={tiny_model_dir},neurons={neurons},mode=activate,lang=zh,value=2.0",
            "--output_path", str(out)]
    script = ("from langneuron_eval.lmeval.plugin import lm_eval_main\n"
              f"print('rc bad', lm_eval_main({bad!r}), flush=True)\n"
              f"print('rc good', lm_eval_main({good!r}), flush=True)\n")
    p = _python(script, site_dir, tmp_path, **{lmeval_plugin.DISABLE_ENV: "1"})
    assert p.returncode == 0, p.stderr[-3000:]
    assert "rc bad 2" in p.stdout and "rc good 0" in p.stdout
    assert "error: language 'ko' is not in neuron file" in p.stderr and "Traceback" not in p.stderr
    results = json.loads(next(out.rglob("results_*.json")).read_text())
    assert "lang_rate,none" in results["results"]["lang_steer_zh"]
    assert results["config"]["langneuron"]["lang"] == ["zh"]


@pytest.mark.slow
@pytest.mark.skipif(not _installed(), reason="langneuron-eval is not installed as a distribution in this interpreter "
                    "(running from a source tree); install it (pip install '.[test]') to test the plain lm_eval CLI")
def test_installed_plain_lm_eval_from_outside_the_repo(tmp_path, tiny_model_dir):
    """Exactly what a user types, from a directory outside the repository, with no PYTHONPATH."""
    neurons = _write_neurons(tmp_path / "neurons.json")
    lm_eval = Path(sys.executable).parent / "lm_eval"
    assert lm_eval.exists(), f"no lm_eval script next to {sys.executable}"
    env = {k: v for k, v in _env().items() if k != "PYTHONPATH"}
    out = tmp_path / "out"
    cmd = [str(lm_eval), "--model", "langneuron", "--model_args",
           f"pretrained={tiny_model_dir},neurons={neurons},mode=activate,lang=zh", "--tasks", "lang_steer_zh",
           "--limit", "3", "--output_path", str(out)]
    p = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    results = json.loads(next(out.rglob("results_*.json")).read_text())
    zh = results["results"]["lang_steer_zh"]
    for metric in ("lang_rate", "line_pass_rate", "word_pass_rate", "distinct_2", "repetition_4", "on_target_fluent"):
        assert f"{metric},none" in zh and f"{metric}_stderr,none" in zh, metric  # steering judged as text (#24)
    info = results["config"]["langneuron"]
    assert info["mode"] == "activate" and info["neurons"] == str(neurons.resolve())
    assert Path(lmeval_plugin.__file__).resolve().parents[1] == Path(INSTALLED_PTH.parent, "langneuron_eval")
