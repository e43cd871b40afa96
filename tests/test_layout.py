"""The package's layout holds: no import circles (a function-level import counts too), neither
kernel twin imports the other, and only fastnn.trainer calls train_epochs."""
import ast
import re
from pathlib import Path

import fastnn

PACKAGE = Path(fastnn.__file__).resolve().parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def python_sources() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def compiled_sources() -> list[Path]:
    return [PACKAGE / "_kernels.pyx"] + sorted((PACKAGE / "_compiled").glob("*.pxi"))


def imports_of(name: str, path: Path, modules: set) -> set:
    """The fastnn modules `name` imports anywhere in its file (a package's `from . import x`
    imports the module x when there is one)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = ".".join(base[:len(base) - node.level + 1])
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module
            if node.module:  # `from . import x` imports x, and its package only as every import does
                found.add(source)
            found.update(f"{source}.{alias.name}" for alias in node.names)
    return {m for m in found if m in modules and m != name}


def import_graph() -> dict:
    sources = python_sources()
    return {name: imports_of(name, path, set(sources)) for name, path in sources.items()}


def test_the_graph_is_read():
    graph = import_graph()
    assert "fastnn._contract" in graph["fastnn.model"] | graph["fastnn.trainer"]
    assert "fastnn.saving" in graph["fastnn.model"]


def test_no_import_circles():
    graph = import_graph()
    state, path = {}, []

    def visit(node):
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                raise AssertionError("import circle: " + " -> ".join(path[path.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_neither_twin_imports_the_other():
    graph = import_graph()
    for name, imported in graph.items():
        if name.startswith("fastnn._fallback"):
            assert not any(m.startswith("fastnn._kernels") for m in imported), name
    for path in compiled_sources():
        text = path.read_text()
        assert not re.search(r"^\s*(from|import)\s+\S*_fallback", text, re.MULTILINE), path.name


def test_only_the_trainer_calls_train_epochs():
    callers = sorted(name for name, path in python_sources().items()
                     if re.search(r"\.train_epochs\(", path.read_text()))
    assert callers == ["fastnn.trainer"]
