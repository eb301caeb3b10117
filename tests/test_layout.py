"""The direction of imports that README's Layout section describes, read from the source (every
import, also those inside functions)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = [
    "stream_ids",
    "events",
    "text",
    "redact",
    "env",
    "query",
    "lint",
    "config",
    "topology",
    "analysis",
    "problems",
    "store",
    "sources",
    "logindex",
    "history",
    "export",
    "health",
    "spill",
    "telemetry",
]
"""The core in README's order: each module imports only those before it (so none imports the
app, the CLI or the demo)."""


def imported(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def ours(names: set[str]) -> set[str]:
    return {name for name in names if name.split(".")[0] in ("emp_tui", "collector")}


@pytest.mark.parametrize("position", range(len(CORE)))
def test_a_core_module_imports_only_those_before_it(position: int) -> None:
    module = CORE[position]
    allowed = {f"emp_tui.{name}" for name in CORE[:position]} | {"emp_tui"}
    assert ours(imported(ROOT / "emp_tui" / f"{module}.py")) <= allowed


def test_the_collector_imports_only_the_core() -> None:
    allowed = {f"emp_tui.{name}" for name in CORE}
    for path in (ROOT / "collector").rglob("*.py"):
        used = {name for name in ours(imported(path)) if name.startswith("emp_tui")}
        assert used <= allowed, path
