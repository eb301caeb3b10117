"""The README's key table and query table say what the code does: every key the main screen
binds is in the key table, every key the table names is bound; every field the query parser
knows is in the query table, every field it names is known, and every example parses."""

from __future__ import annotations

import re
from pathlib import Path

from textual.binding import Binding, BindingType

from emp_tui.app.app import EmpTuiApp
from emp_tui.app.widgets.event_list import EventList
from emp_tui.app.widgets.filter_bar import FilterInput
from emp_tui.app.widgets.graph import HandoffGraph
from emp_tui.app.widgets.problems import ProblemList, ProblemsView
from emp_tui.app.widgets.timeline import StepList, TimelineView
from emp_tui.query import FIELD_ALIASES, KNOWN_FIELDS, parse_query

README = Path(__file__).resolve().parent.parent / "README.md"

KEY_NAMES = {
    "slash": "/",
    "space": "space",
    "exclamation_mark": "!",
    "question_mark": "?",
    "plus": "+",
    "equals_sign": "=",
    "minus": "-",
    "left_square_bracket": "[",
    "right_square_bracket": "]",
    "escape": "Esc",
    "enter": "Enter",
    "up": "↑",
    "down": "↓",
    "left": "←",
    "right": "→",
    "pageup": "PgUp",
    "pagedown": "PgDn",
    "home": "Home",
    "end": "End",
    "tab": "Tab",
}
"""Textual's key names as the README writes them (letters and digits as they are)."""
WORDS = {"while", "loading", "click", "shift+Tab", "ctrl+p", "in", "the", "filter", "bar"}
"""Words of the key column that are not keys the main screen binds (ctrl+p is Textual's)."""


def _table(title_line: str) -> list[tuple[str, str]]:
    """The rows (first cell, rest) of the README table whose header line is ``title_line``."""
    lines = README.read_text().splitlines()
    start = lines.index(title_line) + 2
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split(" | ")]
        rows.append((cells[0], " | ".join(cells[1:])))
    return rows


def _bindings() -> list[Binding]:
    classes: list[type] = [
        EmpTuiApp,
        EventList,
        FilterInput,
        TimelineView,
        StepList,
        HandoffGraph,
        ProblemsView,
        ProblemList,
    ]
    found: list[BindingType] = []
    for cls in classes:
        found += cls.BINDINGS
    return [b for b in found if isinstance(b, Binding)]


def _shown(key: str) -> str:
    return KEY_NAMES.get(key, key)


def test_every_bound_key_is_in_the_key_table() -> None:
    rows = _table("| key | does |")
    assert len(rows) > 10
    written = {key for keys, _ in rows for key in _named_keys(keys)}
    written |= {key for _, does in rows for key in re.findall(r"`([^`]+)`", does)}
    missing = []
    for binding in _bindings():
        for key in binding.key.split(","):
            if _shown(key.strip()) not in written:
                missing.append(f"{_shown(key.strip())} ({binding.id})")
    assert not missing, f"bound but not in the README's key table: {missing}"


def _named_keys(cell: str) -> list[str]:
    """The keys a first cell of the key table names: `x`, `1`-`4`, bare words like End."""
    keys: list[str] = []
    for first, last in re.findall(r"`(\d)`-`(\d)`", cell):
        keys += [str(n) for n in range(int(first), int(last) + 1)]
    cell = re.sub(r"`\d`-`\d`", "", cell)
    keys += re.findall(r"`([^`]+)`", cell)
    bare = re.sub(r"`[^`]+`", " ", cell)
    for mark in "·/()":
        bare = bare.replace(mark, " ")
    keys += [word for word in bare.split() if word not in WORDS]
    return keys


def test_every_key_the_table_names_is_bound() -> None:
    bound = {_shown(key.strip()) for b in _bindings() for key in b.key.split(",")}
    bound |= {"ctrl+p", "Tab"}  # the palette and the focus chain: Textual's own bindings
    named = [key for keys, _ in _table("| key | does |") for key in _named_keys(keys)]
    assert {"/", "z", "End", "←", "Y", "4"} <= set(named)
    unbound = sorted({key for key in named if key not in bound})
    assert not unbound, f"in the README's key table but bound nowhere: {unbound}"


def test_the_query_table_names_every_field_and_each_example_parses() -> None:
    rows = _table("| term | matches |")
    first = " ".join(terms for terms, _ in rows)
    examples = re.findall(r"`([^`]+)`", first)
    named = {
        m.group(1).lower() if "." not in m.group(1) else m.group(1)
        for e in examples
        if (m := re.match(r"-?([a-zA-Z.<>]+):", e))
    }
    named = {"data.<key>" if name.startswith("data.") else name for name in named}
    assert set(KNOWN_FIELDS) <= named, f"not in the table: {set(KNOWN_FIELDS) - named}"
    aliases = {name for name in named if name in FIELD_ALIASES}
    assert aliases == set(FIELD_ALIASES), (
        f"aliases not in the table: {set(FIELD_ALIASES) - aliases}"
    )
    unknown = named - set(KNOWN_FIELDS) - set(FIELD_ALIASES)
    assert not unknown, f"in the table, unknown to the parser: {unknown}"
    parsed = 0
    for example in examples:
        if example.endswith(":"):
            continue  # a field's name alone (`span:`), not an example
        parse_query(example.replace(":ID", ":job_1"), now_ms=1_800_000_000_000)
        parsed += 1
    assert parsed > 20
