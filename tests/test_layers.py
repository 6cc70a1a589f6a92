"""The package layout is the pipeline: each stage imports only the stages before it, and no module cycle exists.

Read from the source (ast), every import counted, also those inside functions: a late import is still a
dependency. Stages, lowest first (the README's architecture section draws them)::

    core → models → data → rationales → imports → distill → results → builtin → serving → ui → cli
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "workbench"
STAGES = ("core", "models", "data", "rationales", "imports", "distill", "results", "builtin", "serving", "ui", "cli")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every workbench module a file imports (``from workbench.x import y`` counts ``workbench.x.y`` when that is a
    module of its own)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("workbench")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("workbench"):
            assert node.level == 0, f"{path}: relative import (the layer test reads absolute ones)"
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names if _is_module(f"{node.module}.{a.name}")}
    return out


def _is_module(name: str) -> bool:
    rel = Path(*name.split(".")[1:])
    return (PACKAGE / rel).with_suffix(".py").is_file() or (PACKAGE / rel / "__init__.py").is_file()


def stage_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in STAGES else None


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in PACKAGE.rglob("*.py")}


def test_every_module_lives_in_a_stage():
    loose = sorted(m for m in graph() if stage_of(m) is None and m not in ("workbench", "workbench.__main__"))
    assert not loose, f"modules outside the stage packages: {loose}"


def test_no_stage_imports_a_later_one():
    wrong = []
    for module, deps in graph().items():
        here = stage_of(module)
        if here is None:
            continue
        for dep in deps:
            there = stage_of(dep)
            if there is not None and STAGES.index(there) > STAGES.index(here):
                wrong.append(f"{module} → {dep}")
    assert not wrong, "a lower stage imports a higher one:\n" + "\n".join(sorted(wrong))


def test_no_import_cycles():
    full = graph()
    g = {m: {d for d in deps if d in full and d != m and not _parent_package(m, d)} for m, deps in full.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(g[node]):
            if state.get(dep) == 1:
                cycles.append(" → ".join(path[path.index(dep):] + [dep]) if dep in path else f"{node} → {dep}")
            elif dep not in state:
                visit(dep, path + [dep])
        state[node] = 2

    for node in sorted(g):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def _parent_package(module: str, dep: str) -> bool:
    """A package's ``__init__`` re-exporting its own modules is not a cycle."""
    return module.startswith(dep + ".") or dep.startswith(module + ".")


@pytest.mark.parametrize("rule", ["lower imports higher", "cycle"])
def test_the_layer_checks_fail_on_a_violation(tmp_path, monkeypatch, rule):
    """The checks above can fail: a throw-away tree with the violation they look for."""
    root = tmp_path / "workbench"
    for stage in ("core", "data"):
        (root / stage).mkdir(parents=True)
        (root / stage / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    if rule == "lower imports higher":
        (root / "core" / "a.py").write_text("def f():\n    from workbench.data import b\n")
        (root / "data" / "b.py").write_text("")
        check = test_no_stage_imports_a_later_one
    else:
        (root / "data" / "a.py").write_text("from workbench.data import b\n")
        (root / "data" / "b.py").write_text("from workbench.data import a\n")
        check = test_no_import_cycles
    monkeypatch.setitem(globals(), "PACKAGE", root)
    with pytest.raises(AssertionError):
        check()
