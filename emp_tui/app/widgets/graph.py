"""The service handoff graph: services as boxes, handoffs as labelled arcs, and an edge table.

The widget renders :class:`emp_tui.analysis.HandoffEdge` values; it aggregates nothing itself.
The app computes the edges for the current scope and hands them over::

    graph = HandoffGraph(id="graph", slow_ms=5000)
    graph.set_edges(handoffs(job_events), nodes=timeline.services, detail="job_7f3a")

Scope: ``graph.scope`` is ``"job"`` (this job) or ``"all"`` (all buffered jobs matching the
filter). ``g`` flips it and posts :class:`HandoffGraph.ScopeToggled` ``(scope)`` (handler
``on_handoff_graph_scope_toggled``); the app recomputes the edges for that scope and calls
:meth:`HandoffGraph.set_edges`. Setting ``graph.scope`` from code posts nothing.

Layout: forward handoffs (left to right in the node order) are arcs above the boxes, the
others arcs below, each labelled with its count and p95 when there is room. Failing edges
(``error_share > 0``) are red, slow ones (``p95_ms > slow_ms``) yellow, in the arcs and in the
table below them (problems first, then by count). When the boxes do not fit even with names
shortened, only the table is shown. The widget scrolls (it is a VerticalScroll).

Keys (Binding ids in brackets): ``g`` toggles the scope [graph.toggle_scope]; the usual
scrolling keys scroll.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Final, Literal

from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Static

from emp_tui.app.render import inert_text
from emp_tui.app.style import ERROR_COLOR, WARN_COLOR, service_color
from emp_tui.config import DEFAULT_GAP_MS
from emp_tui.text import duration, inert, plural

if TYPE_CHECKING:
    from textual.dom import DOMNode

    from emp_tui.analysis import HandoffEdge

Scope = Literal["job", "all"]
SCOPE_LABELS: Final[dict[str, str]] = {
    "job": "this job",
    "all": "all jobs at hand",
}
MAX_LEVELS: Final = 6  # arc rows on each side of the boxes; further edges are in the table only
_BOX_GAP: Final = 2
_MAX_EXTRA_GAP: Final = 14
_MAX_NAME: Final = 24
_TIMES: Final = "\N{MULTIPLICATION SIGN}"


def is_failing(edge: HandoffEdge) -> bool:
    return edge.error_share > 0


def is_slow(edge: HandoffEdge, slow_ms: float) -> bool:
    return edge.p95_ms > slow_ms


def edge_style(edge: HandoffEdge, slow_ms: float) -> str:
    if is_failing(edge):
        return f"bold {ERROR_COLOR}"
    if is_slow(edge, slow_ms):
        return f"bold {WARN_COLOR}"
    return service_color(edge.source)


def sort_edges(edges: Iterable[HandoffEdge], slow_ms: float) -> list[HandoffEdge]:
    """Failing edges first (most failing first), then slow ones (slowest first), then by count."""

    def key(edge: HandoffEdge) -> tuple[int, float, int, str, str]:
        if is_failing(edge):
            return (0, -edge.error_share, -edge.count, edge.source, edge.target)
        if is_slow(edge, slow_ms):
            return (1, -edge.p95_ms, -edge.count, edge.source, edge.target)
        return (2, 0.0, -edge.count, edge.source, edge.target)

    return sorted(edges, key=key)


def node_order(edges: Sequence[HandoffEdge], nodes: Sequence[str] | None = None) -> list[str]:
    """Left-to-right order of the boxes: ``nodes`` as given (then any others), or else the
    flow of the edges: start where most work leaves, then follow the heaviest handoffs."""
    order = list(dict.fromkeys(nodes or ()))
    names = list(dict.fromkeys([*order, *(n for e in edges for n in (e.source, e.target))]))
    if nodes:
        return names
    balance = dict.fromkeys(names, 0)
    for edge in edges:
        balance[edge.source] += edge.count
        balance[edge.target] -= edge.count
    remaining = sorted(names, key=lambda n: (-balance[n], n))
    placed: list[str] = []
    while remaining:
        placed_set = set(placed)
        pull = {
            n: sum(e.count for e in edges if e.target == n and e.source in placed_set)
            for n in remaining
        }
        best = min(remaining, key=lambda n: (-pull[n], -balance[n], n))
        placed.append(best)
        remaining.remove(best)
    return placed


# -- the diagram ------------------------------------------------------------------------------


@dataclass
class _Arc:
    edge: HandoffEdge
    above: bool
    source: int  # box indexes in the node order
    target: int
    level: int = 0
    source_col: int = 0
    target_col: int = 0

    @property
    def left(self) -> int:
        return min(self.source_col, self.target_col)

    @property
    def right(self) -> int:
        return max(self.source_col, self.target_col)


@dataclass
class _Grid:
    width: int
    height: int
    chars: list[list[str]] = field(init=False)
    styles: list[list[str]] = field(init=False)

    def __post_init__(self) -> None:
        self.chars = [[" "] * self.width for _ in range(self.height)]
        self.styles = [[""] * self.width for _ in range(self.height)]

    def put(self, row: int, col: int, char: str, style: str) -> None:
        if 0 <= row < self.height and 0 <= col < self.width:
            self.chars[row][col] = char
            self.styles[row][col] = style

    def lines(self) -> list[Text]:
        out: list[Text] = []
        for chars, styles in zip(self.chars, self.styles, strict=True):
            line = Text(no_wrap=True, end="")
            start = 0
            for c in range(1, self.width + 1):
                if c == self.width or styles[c] != styles[start]:
                    line.append("".join(chars[start:c]), style=styles[start] or None)
                    start = c
            line.rstrip()
            out.append(line)
        return out


def _narrow(name: str) -> str:
    """``name`` with every character that is not one cell wide shown as ``?`` (the diagram
    is a grid of single cells; the table shows the name as it is)."""
    if cell_len(name) == len(name):
        return name
    return "".join(char if cell_len(char) == 1 else "?" for char in name)


def _fit_names(names: list[str], room: int) -> list[str] | None:
    """``names`` cut (with …) so that their lengths sum to at most ``room``; None if < 3 each."""
    lengths = [min(len(n), _MAX_NAME) for n in names]
    if sum(lengths) <= room:
        cap = _MAX_NAME
    else:
        cap = max(lengths)
        while cap >= 3 and sum(min(n, cap) for n in lengths) > room:
            cap -= 1
        if cap < 3:
            return None
    return [n if len(n) <= cap else n[: cap - 1] + "…" for n in names]


def _arc_label(edge: HandoffEdge, room: int) -> str:
    failed = f" ✖{edge.error_share * 100:.0f}%" if is_failing(edge) else ""
    for label in (
        f" {edge.count}{_TIMES} p95 {duration(edge.p95_ms)}{failed} ",
        f" {edge.count}{_TIMES}{failed} ",
        f" {edge.count}{_TIMES} ",
        f"{edge.count}",
    ):
        if len(label) <= room:
            return label
    return ""


def diagram_lines(
    edges: Sequence[HandoffEdge],
    nodes: Sequence[str] | None,
    width: int,
    slow_ms: float,
) -> tuple[list[Text], int]:
    """The arc diagram at ``width`` cells, and how many edges only the table shows."""
    order = node_order(edges, nodes)
    if not order:
        return [], 0
    names = [_narrow(inert(n, 80)) for n in order]
    box_gap = _BOX_GAP
    room = width - 4 * len(order) - box_gap * (len(order) - 1)
    whole = sum(min(len(n), _MAX_NAME) for n in names)
    if room < whole <= room + len(order) - 1:
        # Names whole rather than the room between the boxes (one cell is enough there).
        box_gap = 1
        room = width - 4 * len(order) - box_gap * (len(order) - 1)
    labels = _fit_names(names, room)
    if labels is None:
        return [], len(edges)
    index = {name: i for i, name in enumerate(order)}
    # Spare width goes between the boxes (up to a point), where the arc labels sit.
    spare = room - sum(len(label) for label in labels)
    gap = box_gap + (min(spare // (len(order) - 1), _MAX_EXTRA_GAP) if len(order) > 1 else 0)
    box_x: list[int] = []
    box_w: list[int] = []
    x = 0
    for label in labels:
        box_x.append(x)
        box_w.append(len(label) + 4)
        x += len(label) + 4 + gap
    total_w = x - gap

    arcs = [
        _Arc(edge, index[edge.source] < index[edge.target], index[edge.source], index[edge.target])
        for edge in edges
        if edge.source != edge.target
    ]
    # Ports: on each box, the arcs that come from (or go to) the left side take the left
    # part, nearest first; the right side's arcs the right part, farthest first. Nested arcs
    # then never cross each other's legs.
    for above in (True, False):
        for box in range(len(order)):
            ends: list[tuple[int, int, _Arc, bool]] = []
            for arc in arcs:
                if arc.above != above:
                    continue
                for is_source, here, there in (
                    (True, arc.source, arc.target),
                    (False, arc.target, arc.source),
                ):
                    if here == box:
                        side = 0 if there < box else 1
                        distance = abs(there - box)
                        ends.append((side, distance if side == 0 else -distance, arc, is_source))
            ends.sort(key=lambda end: (end[0], end[1]))
            inner = box_w[box] - 2
            for slot, (_side, _dist, arc, is_source) in enumerate(ends):
                col = box_x[box] + 1 + (slot * inner + inner // 2) // max(len(ends), 1)
                if len(ends) > inner:
                    col = box_x[box] + 1 + min(slot, inner - 1)
                if is_source:
                    arc.source_col = col
                else:
                    arc.target_col = col

    # Levels: shortest arcs nearest the boxes, arcs that do not overlap share a row.
    dropped = 0
    levels: dict[bool, list[list[_Arc]]] = {True: [], False: []}
    for arc in sorted(arcs, key=lambda a: (a.right - a.left, -a.edge.count)):
        rows = levels[arc.above]
        for level, members in enumerate(rows):
            if all(arc.right + 1 < other.left or other.right + 1 < arc.left for other in members):
                members.append(arc)
                arc.level = level + 1
                break
        else:
            if len(rows) < MAX_LEVELS:
                rows.append([arc])
                arc.level = len(rows)
            else:
                dropped += 1
    top = len(levels[True])
    bottom = len(levels[False])
    # rows: top levels (farthest first), a stub row, the boxes (3), a stub row, bottom levels
    box_row = top + 1 if top else 0
    grid_h = box_row + 3 + (bottom + 1 if bottom else 0)
    grid = _Grid(total_w, grid_h)

    def level_row(arc: _Arc) -> int:
        return top - arc.level if arc.above else box_row + 3 + arc.level

    placed = [arc for arc in arcs if arc.level > 0]
    # Which columns each row's legs pass through, so that labels can avoid them.
    legs: dict[int, set[int]] = {}
    for arc in placed:
        row = level_row(arc)
        span = range(row + 1, box_row) if arc.above else range(box_row + 3, row)
        for r in span:
            legs.setdefault(r, set()).update((arc.source_col, arc.target_col))

    for arc in placed:
        row = level_row(arc)
        style = edge_style(arc.edge, slow_ms)
        left, right = arc.left, arc.right
        for c in range(left + 1, right):
            grid.put(row, c, "─", style)
        if arc.above:
            grid.put(row, left, "╭", style)
            grid.put(row, right, "╮", style)
        else:
            grid.put(row, left, "╰", style)
            grid.put(row, right, "╯", style)
        # The label goes in the longest stretch of the arc that no other leg crosses.
        blocked = legs.get(row, set())
        best_start, best_len, run_start = left + 1, 0, left + 1
        for c in range(left + 1, right + 1):
            if c == right or c in blocked:
                if c - run_start > best_len:
                    best_start, best_len = run_start, c - run_start
                run_start = c + 1
        label = _arc_label(arc.edge, best_len)
        if label:
            start = best_start + (best_len - len(label)) // 2
            for offset, char in enumerate(label):
                grid.put(row, start + offset, char, f"bold {style}".replace("bold bold", "bold"))

    for arc in placed:
        row = level_row(arc)
        style = edge_style(arc.edge, slow_ms)
        span = range(row + 1, box_row) if arc.above else range(box_row + 3, row)
        for r in span:
            for c in (arc.source_col, arc.target_col):
                crossing = grid.chars[r][c] in "─┼"
                grid.put(r, c, "┼" if crossing else "│", style)
        stub = box_row - 1 if arc.above else box_row + 3
        grid.put(stub, arc.target_col, "▼" if arc.above else "▲", style)

    for i, label in enumerate(labels):
        color = service_color(order[i])
        x0, w = box_x[i], box_w[i]
        grid.put(box_row, x0, "╭", color)
        grid.put(box_row, x0 + w - 1, "╮", color)
        grid.put(box_row + 2, x0, "╰", color)
        grid.put(box_row + 2, x0 + w - 1, "╯", color)
        for c in range(x0 + 1, x0 + w - 1):
            grid.put(box_row, c, "─", color)
            grid.put(box_row + 2, c, "─", color)
        grid.put(box_row + 1, x0, "│", color)
        grid.put(box_row + 1, x0 + w - 1, "│", color)
        for offset, char in enumerate(label):
            grid.put(box_row + 1, x0 + 2 + offset, char, f"bold {color}")
    for arc in placed:
        border = box_row if arc.above else box_row + 2
        grid.put(border, arc.source_col, "┴" if arc.above else "┬", edge_style(arc.edge, slow_ms))
    return grid.lines(), dropped


# -- the table --------------------------------------------------------------------------------


def _errors(edge: HandoffEdge) -> str:
    return f"{edge.error_share * 100:.0f}%" if edge.error_share > 0 else "-"


# (title, cells, value) in display order; a narrow table drops "max", then "p50".
_TABLE_COLUMNS: Final[tuple[tuple[str, int, Callable[[HandoffEdge], str]], ...]] = (
    ("count", 6, lambda edge: str(edge.count)),
    ("p50", 7, lambda edge: duration(edge.p50_ms)),
    ("p95", 7, lambda edge: duration(edge.p95_ms)),
    ("max", 7, lambda edge: duration(edge.max_ms)),
    ("errors", 7, _errors),
)
_DROP_ORDER: Final = ("max", "p50")


def table_lines(edges: Sequence[HandoffEdge], width: int, slow_ms: float) -> list[Text]:
    """The edges as a table, problems first, fitted to ``width`` cells.

    A narrow table keeps the names whole as long as it can: it first drops the ``max`` and
    ``p50`` columns, then shortens the notes to their mark (``✖``, ``⚠``), then the names
    (the longer column first, down to 10 cells), then drops the notes (the row colour still
    tells), then shortens the names further; what is still too wide is cut."""
    rows = sort_edges(edges, slow_ms)
    widths = [
        max(min(max((cell_len(inert(getattr(e, side), 40)) for e in rows), default=4), 18), 4)
        for side in ("source", "target")
    ]
    columns = list(_TABLE_COLUMNS)
    failing = any(is_failing(e) for e in rows)
    notes: str | None = None
    if failing or any(is_slow(e, slow_ms) for e in rows):
        notes = "long"

    def note_cells() -> int:
        if notes is None:
            return 0
        return 3 if notes == "short" else (11 if failing else 8)

    def needed() -> int:
        names = sum(widths) + 3
        return names + sum(cells + 1 for _, cells, _ in columns) + note_cells()

    def shorten(floor: int) -> None:
        # The longer name column first: the shorter one is often whole already.
        while needed() > width and max(widths) > floor:
            widths[widths.index(max(widths))] -= 1

    for title in _DROP_ORDER:
        if needed() > width:
            columns = [column for column in columns if column[0] != title]
    if needed() > width and notes is not None:
        notes = "short"
    shorten(10)
    if needed() > width:
        notes = None
    shorten(6)
    from_w, to_w = widths

    header = Text(no_wrap=True, end="", style="bold")
    header.append(f"{'from':<{from_w}}   {'to':<{to_w}}")
    for title, cells, _ in columns:
        header.append(f" {title:>{cells}}")
    out = [header]
    for edge in rows:
        style = ""
        note = ""
        if is_failing(edge):
            style, note = ERROR_COLOR, "  ✖ failing"
        elif is_slow(edge, slow_ms):
            style, note = WARN_COLOR, "  ⚠ slow"
        if notes == "short":
            note = note[:3]
        line = Text(no_wrap=True, end="")
        line.append_text(_name_cell(edge.source, from_w))
        line.append(" → ", style="dim")
        line.append_text(_name_cell(edge.target, to_w))
        values = "".join(f" {value(edge):>{cells}}" for _, cells, value in columns)
        line.append(values, style=style or None)
        if notes and note:
            line.append(note, style=f"bold {style}")
        out.append(line)
    for line in out:
        line.truncate(width, overflow="ellipsis")
    return out


def _name_cell(name: str, width: int) -> Text:
    cell = inert_text(name, service_color(name), limit=80)
    cell.truncate(width, overflow="ellipsis", pad=True)
    return cell


# -- widgets ----------------------------------------------------------------------------------


class WidthLines(Widget):
    """A block of lines that depends on the width it is given (cached per width)."""

    DEFAULT_CSS = """
    WidthLines { height: auto; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._cache: tuple[int, list[Text]] | None = None

    def invalidate(self) -> None:
        self._cache = None
        self.refresh(layout=True)

    def build(self, width: int) -> list[Text]:
        raise NotImplementedError

    def lines_for(self, width: int) -> list[Text]:
        if self._cache is None or self._cache[0] != width:
            self._cache = (width, self.build(width))
        return self._cache[1]

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self.lines_for(width))

    def render(self) -> Text:
        return Text("\n", no_wrap=True, end="").join(self.lines_for(self.content_region.width))


class HandoffDiagram(WidthLines):
    def build(self, width: int) -> list[Text]:
        graph = self.parent
        if not isinstance(graph, HandoffGraph) or not graph.edges:
            return []
        lines, dropped = diagram_lines(graph.edges, graph.nodes, width, graph.slow_ms)
        if not lines:
            return [Text("(too narrow for the diagram: the edges are in the table)", "dim")]
        if dropped:
            lines.append(Text(f"(+{dropped} more edges in the table)", "dim", end=""))
        return lines


class HandoffTable(WidthLines):
    def build(self, width: int) -> list[Text]:
        graph = self.parent
        if not isinstance(graph, HandoffGraph) or not graph.edges:
            return []
        return table_lines(graph.edges, width, graph.slow_ms)


class HandoffGraph(VerticalScroll, can_focus=True):
    """Services and the handoffs between them, for one job or for all matching jobs.

    Construct with ``HandoffGraph(edges=(), *, nodes=None, scope="job", slow_ms=5000,
    detail="", id=...)``; update with :meth:`set_edges`. See the module docstring.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("g", "toggle_scope", "Scope job/all", id="graph.toggle_scope"),
    ]
    DEFAULT_CSS = """
    HandoffGraph {
        height: 1fr;
        padding: 0 1;
        & > #graph-scope { height: auto; margin: 0 0 1 0; }
        & > #graph-empty { height: auto; color: $text-muted; padding: 1 1; display: none; }
        & > HandoffDiagram { margin: 0 0 1 0; }
        &.-empty > #graph-empty { display: block; }
        &.-empty > HandoffDiagram, &.-empty > HandoffTable { display: none; }
    }
    """

    scope: reactive[Scope] = reactive[Scope]("job", init=False)

    @dataclass
    class ScopeToggled(Message):
        """The user switched the scope: recompute the edges for ``scope`` and set_edges()."""

        scope: Scope
        source: Widget | None = None

        @property
        def control(self) -> DOMNode | None:
            return self.source

    def __init__(
        self,
        edges: Iterable[HandoffEdge] = (),
        *,
        nodes: Sequence[str] | None = None,
        scope: Scope = "job",
        slow_ms: float = DEFAULT_GAP_MS,
        detail: str = "",
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.edges: list[HandoffEdge] = list(edges)
        self.nodes: list[str] | None = list(nodes) if nodes is not None else None
        self.slow_ms = slow_ms
        self.detail = detail
        self.set_reactive(HandoffGraph.scope, scope)
        self._label = Static(id="graph-scope")
        self._empty = Static("no handoffs yet", id="graph-empty")
        self._diagram = HandoffDiagram(id="graph-diagram")
        self._table = HandoffTable(id="graph-table")

    def compose(self) -> ComposeResult:
        yield self._label
        yield self._empty
        yield self._diagram
        yield self._table

    def on_mount(self) -> None:
        self._show()

    def set_edges(
        self,
        edges: Iterable[HandoffEdge],
        *,
        nodes: Sequence[str] | None = None,
        detail: str | None = None,
        slow_ms: float | None = None,
    ) -> None:
        """Show ``edges`` (``nodes``: the box order, e.g. a timeline's services; ``detail``:
        what the scope is, e.g. the job ID or the filter text; ``slow_ms``: p95 above it is
        slow)."""
        self.edges = list(edges)
        self.nodes = list(nodes) if nodes is not None else None
        if detail is not None:
            self.detail = detail
        if slow_ms is not None:
            self.slow_ms = slow_ms
        if self.is_mounted:
            self._show()

    def action_toggle_scope(self) -> None:
        self.scope = "all" if self.scope == "job" else "job"
        self.post_message(self.ScopeToggled(self.scope, self))

    def watch_scope(self) -> None:
        if self.is_mounted:
            self._show()

    def _show(self) -> None:
        self.set_class(not self.edges, "-empty")
        # The key in the border, where it never wraps into the header's lines.
        self.border_subtitle = "g: this job" if self.scope == "all" else "g: all jobs"
        self._label.update(self._label_text())
        self._diagram.invalidate()
        self._table.invalidate()

    def _label_text(self) -> Text:
        text = Text(end="", no_wrap=True, overflow="ellipsis")
        text.append("Handoffs", style="bold")
        text.append(" · scope: ", style="dim")
        text.append(SCOPE_LABELS.get(self.scope, self.scope), style="bold")
        if self.detail:
            text.append(" (")
            text.append_text(inert_text(self.detail, limit=80))
            text.append(")")
        if self.edges:
            text.append("\n")
            handoffs = sum(edge.count for edge in self.edges)
            text.append(
                f"{plural(len(self.edges), 'edge')} · {plural(handoffs, 'handoff')}", style="dim"
            )
            failing = sum(1 for edge in self.edges if is_failing(edge))
            slow = sum(1 for edge in self.edges if is_slow(edge, self.slow_ms))
            if failing:
                text.append(f" · {failing} failing", style=f"bold {ERROR_COLOR}")
            if slow:
                text.append(
                    f" · {slow} slow (p95 > {duration(self.slow_ms)})", style=f"bold {WARN_COLOR}"
                )
        return text
