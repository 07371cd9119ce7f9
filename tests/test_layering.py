"""The package's floors, read from the source: no import loop inside `runtime/`, `train/` or
`export/`, and no import pointing up (runtime never imports train or export; train never
imports export). Every import counts: at the top, inside a function, or for type checking
only, since each ties the modules together for a reader as much as for Python."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("runtime", "train", "export")
# What a package may import of the others: the floors, bottom first.
ALLOWED = {"runtime": set(), "train": {"runtime"}, "export": {"runtime", "train"}}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """The project modules one file imports (relative imports resolved)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = (node.module or "").removeprefix("brain_tumor_edge.")
            if target.split(".")[0] not in PACKAGES:
                continue
            for alias in node.names:  # `from . import x` names a module, `from .m import f` a name
                candidate = f"{target}.{alias.name}"
                found.add(candidate if _source(candidate) else target)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                target = alias.name.removeprefix("brain_tumor_edge.")
                if target.split(".")[0] in PACKAGES:
                    found.add(target)
    found.discard(name)
    return {module for module in found if _source(module)}


def _source(module: str) -> Path | None:
    path = ROOT.joinpath(*module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _graph() -> dict[str, set[str]]:
    files = [path for package in PACKAGES for path in sorted((ROOT / package).glob("*.py"))]
    return {_module_name(path): _imports(path) for path in files}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of two or more modules (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for following in graph.get(node, ()):
            if following not in index:
                visit(following)
                low[node] = min(low[node], low[following])
            elif following in on_stack:
                low[node] = min(low[node], index[following])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_the_walker_sees_the_imports_it_should() -> None:
    """The walker itself: it finds imports of every form (else the tests below prove nothing)."""
    graph = _graph()
    assert "runtime.errors" in graph["runtime.model"]  # from .errors import ...
    assert "runtime.preprocess" in graph["train.checkpoint"]  # from ..runtime.preprocess import ...
    assert any(module.startswith("train.") for module in graph["export.pipeline"])
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_loops() -> None:
    assert _cycles(_graph()) == []


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_points_up(package: str) -> None:
    upward = {
        f"{module} -> {target}"
        for module, targets in _graph().items()
        if module.split(".")[0] == package
        for target in targets
        if target.split(".")[0] not in {package} | ALLOWED[package]
    }
    assert not upward


def test_results_is_the_ground_floor() -> None:
    """The records that flow import nothing of the runtime but the reasons' vocabulary,
    which itself imports nothing of the runtime."""
    graph = _graph()
    assert graph["runtime.results"] <= {"runtime.reasons"}
    assert graph["runtime.reasons"] == set()
