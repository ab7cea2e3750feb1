"""The walls between the top-level packages (README "Layout"): which may import what.

Read from the source with `ast`, so an import inside a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

from core.settings import PROJECT_ROOT

PACKAGES = (
    "core",
    "cli",
    "ingest",
    "expectations",
    "forecasting",
    "publishing",
    "synthetic",
    "orchestration",
    "bench",
)
#: Libraries that must stay usable without Dagster: no dagster, no orchestration.
DAGSTER_FREE = ("core", "ingest", "expectations", "publishing", "forecasting", "synthetic")
FORBIDDEN_IN_DAGSTER_FREE = ("dagster", "dagster_dbt", "orchestration")


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def package_imports() -> dict[str, dict[str, set[str]]]:
    """{package: {imported top-level name: {files importing it}}}."""
    graph: dict[str, dict[str, set[str]]] = {}
    for package in PACKAGES:
        edges: dict[str, set[str]] = {}
        for path in sorted((PROJECT_ROOT / package).rglob("*.py")):
            for module in imported_modules(path):
                edges.setdefault(module.split(".")[0], set()).add(
                    str(path.relative_to(PROJECT_ROOT))
                )
        graph[package] = edges
    return graph


def test_libraries_do_not_import_dagster_or_orchestration():
    graph = package_imports()
    offending = {
        (package, name, file)
        for package in DAGSTER_FREE
        for name in FORBIDDEN_IN_DAGSTER_FREE
        for file in graph[package].get(name, ())
    }
    assert not offending, f"Dagster-free packages import Dagster code: {sorted(offending)}"


def test_no_two_top_level_packages_import_each_other():
    graph = package_imports()
    deps = {p: {d for d in edges if d in PACKAGES and d != p} for p, edges in graph.items()}
    cycles = []

    def visit(package: str, path: list[str]) -> None:
        for dep in sorted(deps[package]):
            if dep in path:
                cycles.append(path[path.index(dep) :] + [dep])
            elif len(path) < len(PACKAGES):
                visit(dep, [*path, dep])

    for package in PACKAGES:
        visit(package, [package])
    assert not cycles, f"import cycles between top-level packages: {cycles[:5]}"


def test_core_imports_no_other_package_of_the_project():
    graph = package_imports()
    assert not set(graph["core"]) & set(PACKAGES) - {"core"}


def test_the_checks_see_real_imports():
    """Negative control: the detector finds imports that are known to exist."""
    graph = package_imports()
    assert "dagster" in graph["orchestration"]
    assert "ingest" in graph["orchestration"] and "expectations" in graph["ingest"]
