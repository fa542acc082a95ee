"""README leads with the two fresh-machine commands, and CI runs exactly the README's test command."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _readme_commands():
    readme = ROOT / "README.md"
    if not readme.exists():
        pytest.skip("README.md not shipped in this installation")
    return re.findall(r"```bash\n(.+?)\n```", readme.read_text(encoding="utf-8"), flags=re.S)


def test_readme_leads_with_install_and_run_then_install_and_test():
    first, second = _readme_commands()[:2]
    assert "pip install torch==2.13.0" in first and "langneuron demo" in first
    assert "pip install torch==2.13.0" in second and "pytest" in second
    # torch is pinned in the same pip command, before the package, so no CUDA build is pulled
    assert "pip install torch==2.13.0 ." in first


def test_ci_runs_exactly_the_readme_test_command():
    test_cmd = _readme_commands()[1].strip()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert test_cmd in [line.strip() for line in ci.splitlines()]
