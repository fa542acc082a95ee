"""The package imports one way: cli -> pipelines -> leaderboard -> lmeval / detectors -> core -> vocabulary.

Read from the source (every import statement, function-level ones included), so a new upward import or a
cycle fails here before it confuses a reader.
"""

from __future__ import annotations

import ast
from pathlib import Path

import langneuron_eval

PKG = Path(langneuron_eval.__file__).resolve().parent
# rank of each subpackage; a module may import only modules of its own rank or below
RANKS = {"": 0, "evidence": 0, "data": 0, "demo_corpus": 0, "core": 1, "detectors": 2, "lmeval": 2,
         "tasks": 2, "leaderboard": 3, "pipelines": 4, "cli": 5}  # tasks/: lm-eval task code, inside once installed
AUX = {"testing": 4, "testing_fixtures": 4}  # top-level helpers for tests: may use anything below cli
TOP_LEVEL_LIMIT = 8  # modules directly in langneuron_eval/, __init__ included


def _module(path: Path) -> str:
    rel = path.relative_to(PKG).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join(["langneuron_eval", *parts])


def _rank(module: str) -> int:
    parts = module.split(".")[1:]
    if not parts:
        return 0
    if len(parts) == 1 and parts[0] in AUX:
        return AUX[parts[0]]
    return RANKS.get(parts[0], 0) if (PKG / parts[0]).is_dir() else 0


def _imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PKG.rglob("*.py"):
        mod = _module(path)
        found = graph.setdefault(mod, set())
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("langneuron_eval"):
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("langneuron_eval"))
    return graph


def test_no_module_imports_a_higher_layer():
    upward = sorted(f"{mod} -> {dep}" for mod, deps in _imports().items() for dep in deps
                    if _rank(dep) > _rank(mod))
    assert upward == []


def test_no_import_cycle_between_subpackages():
    def group(m: str) -> str:
        parts = m.split(".")
        if len(parts) > 1 and parts[1] in AUX:
            return "<testing>"
        return parts[1] if len(parts) > 1 and (PKG / parts[1]).is_dir() else "<top>"

    edges = {(group(m), group(d)) for m, deps in _imports().items() for d in deps if group(m) != group(d)}
    cycles = sorted(f"{a} <-> {b}" for a, b in edges if (b, a) in edges and a < b)
    assert cycles == []


def test_the_top_level_stays_small():
    top = sorted(p.name for p in PKG.glob("*.py"))
    assert len(top) <= TOP_LEVEL_LIMIT, top
