"""The layout rules of docs/architecture.md that the import contract (pyproject.toml,
checked by lint-imports) cannot state: queries only in storage/, no import cycles."""

from __future__ import annotations

import re
from pathlib import Path

import grimp

PACKAGE = Path(__file__).resolve().parent.parent / "newsletter"
QUERY = re.compile(
    r"\b(select|sa\.insert|sa\.update|sa\.delete|sa\.text)\("
    r"|\bsession\.(exec|execute|get|delete|scalar|scalars|query)\("
)


def test_only_storage_builds_queries() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] == "storage":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if QUERY.search(line):
                offenders.append(f"newsletter/{relative}:{number}: {line.strip()}")
    assert offenders == []


def test_no_module_imports_another_that_imports_it_back() -> None:
    graph = grimp.build_graph("newsletter")
    modules = sorted(graph.modules)
    imports = {m: graph.find_modules_directly_imported_by(m) for m in modules}

    # a package's __init__ re-exporting its own modules is not a cycle worth refusing
    def edges(module: str) -> list[str]:
        return sorted(
            m
            for m in imports[module]
            if not (m.startswith(module + ".") or module.startswith(m + "."))
        )

    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in edges(module):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in modules:
        if module not in state:
            visit(module)
    assert cycles == []
