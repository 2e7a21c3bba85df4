"""The engine's shape (issue 11): no import cycles, no GUI in the engine, and front ends on the public API only.

Read from the source with ``ast`` (every import, also those inside functions), so a lazy import cannot hide a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parent.parent / "engine"
GUI = {"tkinter", "pystray", "PIL", "plyer", "gi", "dbus", "tray", "datauploader_icons"}


def _module(path: Path) -> str:
    """``engine/catalogue/__init__.py`` → ``engine.catalogue``."""
    rel = path.relative_to(ENGINE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module(p) for p in ENGINE.rglob("*.py")}


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = {f"{node.module}.{a.name}" for a in node.names}
            found |= names
            if not names <= MODULES:  # `from engine import jwt` imports the module jwt, not the package's API
                found.add(node.module)
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module(p): p for p in ENGINE.rglob("*.py")}
    return {m: {i for i in _imports(p) if i in modules and i != m} for m, p in modules.items()}


def test_no_import_cycles() -> None:
    graph = _graph()
    # The package itself only re-exports; edges into it would be the cycle "a module needs the whole package".
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    # Front ends import the package (the public API), the package imports the engine: that is one direction.
    real = [c for c in cycles if not (c[0].startswith("engine.cli") or c[-1].startswith("engine.cli"))]
    assert not real, real


def test_engine_imports_no_gui_and_no_tray() -> None:
    for path in ENGINE.rglob("*.py"):
        bad = {i for i in _imports(path) if i.split(".")[0] in GUI}
        assert not bad, f"{path}: {bad}"


def test_cli_uses_only_the_public_api() -> None:
    public = set(__import__("engine").__all__)
    for path in ENGINE.glob("cli*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("engine"):
                if node.module == "engine":
                    assert {a.name for a in node.names} <= public, (path, [a.name for a in node.names])
                else:
                    assert node.module.startswith("engine.cli"), f"{path} imports {node.module}"


def test_the_built_in_command_list_matches_the_parser() -> None:
    """The CLI skips reading installed packages' metadata for built-in commands; its list must be complete."""
    import argparse

    from engine.cli import BUILT_IN, build_parser

    parser = build_parser(plugins=False)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == BUILT_IN
