"""Dependencies point one way (postbacks -> events -> partners; project/ imports no app, but
for the URL table) and no module imports itself back through others. Read from the source
(AST), not by importing: a lazy import inside a function counts too."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("partners", "events", "postbacks", "project")
FORBIDDEN = {
    "partners": {"events", "postbacks"},
    "events": {"postbacks"},
    "postbacks": set(),
    "project": {"partners", "events", "postbacks"},
}
MAY_IMPORT_APPS = {"project.urls"}  # the URL table names every app's views


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")}


def imports_of(name: str) -> set[str]:
    """The project modules `name` imports (a package's module where `from package import module`)."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {target for target in found if target in MODULES and target != name}


GRAPH = {name: imports_of(name) for name in MODULES}


def test_dependencies_point_one_way():
    wrong = sorted(
        (name, target)
        for name, targets in GRAPH.items()
        for target in targets
        if name not in MAY_IMPORT_APPS and target.split(".")[0] in FORBIDDEN[name.split(".")[0]]
    )
    assert wrong == []


def test_no_import_cycle():
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            raise AssertionError("import cycle: " + " -> ".join([*path[path.index(name) :], name]))
        if name in done:
            return
        for target in sorted(GRAPH[name]):
            visit(target, [*path, name])
        done.add(name)

    for name in sorted(GRAPH):
        visit(name, [])
