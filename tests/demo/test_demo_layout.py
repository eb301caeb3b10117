"""The demo package's modules import each other in one direction only, at the top of the
module: model and scheduler at the bottom, then world, actors, the simulation, scenarios,
and the ground truth and the command line at the top."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import emp_tui.demo

PACKAGE = Path(emp_tui.demo.__file__).parent
PREFIX = "emp_tui.demo."


def demo_imports(path: Path) -> tuple[set[str], list[str]]:
    """The demo modules ``path`` imports at module level, and every import of an emp_tui
    module made anywhere else (inside a function, a class, or ``if TYPE_CHECKING``)."""
    tree = ast.parse(path.read_text())
    top: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module:
            top.add(node.module)
        elif isinstance(node, ast.Import):
            top.update(alias.name for alias in node.names)
    nested = []
    top_nodes = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in top_nodes:
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            nested += [name for name in names if name.startswith("emp_tui")]
    return {name for name in top if name.startswith(PREFIX)}, nested


def graph() -> dict[str, set[str]]:
    return {
        PREFIX + path.stem: demo_imports(path)[0]
        for path in sorted(PACKAGE.glob("*.py"))
        if path.stem not in ("__init__", "__main__")
    }


def test_no_demo_module_imports_one_that_imports_it_back() -> None:
    edges = graph()
    try:
        order = list(TopologicalSorter(edges).static_order())
    except CycleError as exc:  # pragma: no cover - the failure this test is for
        raise AssertionError(f"import cycle: {exc.args[1]}") from None
    rank = {name: n for n, name in enumerate(order)}
    # The layers named in the package's docstrings, bottom to top.
    layers = ["model", "world", "actors", "sim", "scenarios", "ground_truth"]
    ranks = [rank[PREFIX + name] for name in layers]
    assert ranks == sorted(ranks)
    assert PREFIX + "sim" not in edges[PREFIX + "actors"]
    assert PREFIX + "scenarios" not in edges[PREFIX + "sim"]


def test_no_import_of_emp_tui_hides_inside_a_function() -> None:
    for path in sorted(PACKAGE.glob("*.py")):
        assert demo_imports(path)[1] == [], path.name


def test_the_layout_check_sees_a_hidden_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "from emp_tui.demo.model import Job\n"
        "def f():\n    from emp_tui.demo.sim import Simulation\n"
    )
    assert demo_imports(module) == ({"emp_tui.demo.model"}, ["emp_tui.demo.sim"])
