"""The package's layering (docs/ARCHITECTURE.md, "Rules"): every import, function-level ones included,
points down the stages, and the module graph has no cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import mirror

PACKAGE = Path(mirror.__file__).resolve().parent

# Layer of each top-level part of the package: a module may import its own part or a lower layer, never a
# higher one nor another part of the same layer.
LAYERS = {
    "core": 0,
    "deltas": 1,
    "catalog": 2,
    "lookup": 3,
    "engines": 3,
    "download": 4,
    "load": 4,
    "update": 4,
    "serve": 5,
    "export": 6,
    "watch": 6,
    "http": 7,
    "synthetic": 8,
    "pipeline": 9,
    "cli": 10,
    "__main__": 11,
    "__init__": 0,
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).with_suffix("")
        parts = ["mirror", *rel.parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every mirror module `name` imports (module level or inside functions)."""
    found = set()
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + [base]
                ).strip(".")
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        found |= {t for t in targets if t in known and t != name}
    return found


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def test_every_part_has_a_layer():
    assert {_part(m) for m in _modules()} <= set(LAYERS), "add the new part to LAYERS and ARCHITECTURE.md"


def test_imports_point_down():
    wrong = []
    for module, targets in _graph().items():
        for target in targets:
            a, b = _part(module), _part(target)
            if a != b and (LAYERS[b] >= LAYERS[a]) and b != "__init__":
                wrong.append(f"{module} -> {target}")
    assert not wrong, "upward or sideways imports:\n" + "\n".join(sorted(wrong))


def test_no_import_cycle():
    graph = _graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt) :] + [node, nxt]) if nxt in stack else nxt)
            elif nxt not in state:
                visit(nxt, [*stack, node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_checker_sees_function_level_and_relative_imports(tmp_path):
    """The walker itself: an import inside a function and a relative import are both found."""
    path = tmp_path / "m.py"
    path.write_text("def f():\n    from mirror.core import schema\nfrom ..core import sql\n")
    found = _imports("mirror.export.m", path, {"mirror.core.schema", "mirror.core.sql", "mirror.core"})
    assert found == {"mirror.core.schema", "mirror.core.sql"}


def test_no_private_name_is_imported_from_another_module():
    """A helper two modules need is public in the lowest module that fits (`from mirror.x import _helper`
    reaches into another module's internals)."""
    wrong = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("mirror")):
                wrong += [
                    f"{name}: from {node.module} import {a.name}"
                    for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__")
                ]
    assert not wrong, "private names imported across modules:\n" + "\n".join(sorted(wrong))


def test_every_duckdb_connection_comes_from_open_duckdb():
    """MIRROR_THREADS bounds all of the mirror's DuckDB work only if every connection is opened by
    mirror.core.config.open_duckdb: no other module calls duckdb.connect."""
    calls = []
    for name, path in _modules().items():
        if name == "mirror.core.config":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            func = node.func if isinstance(node, ast.Call) else None
            if (
                isinstance(func, ast.Attribute)
                and func.attr == "connect"
                and isinstance(func.value, ast.Name)
                and func.value.id == "duckdb"
            ):
                calls.append(f"{name}:{node.lineno}")
    assert calls == []
