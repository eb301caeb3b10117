"""The job timeline: one swimlane per service on a time axis, then the job's steps as a list.

The widget renders an :class:`emp_tui.analysis.Timeline`; it computes no gaps, percentiles or
handoffs of its own. The app builds the timeline and hands it over::

    view = TimelineView(id="timeline", gap_threshold_ms=5000)
    ...
    view.set_timeline(job_timeline(events, job_id, gap_ms=view.gap_threshold_ms, reference=...))
    view.set_timeline(None, job_id="job_123")     # "no events for job job_123"

Messages (they bubble; ``control`` is the TimelineView, so ``@on(TimelineView.X, "#id")`` works):

* :class:`TimelineView.EventSelected` ``(event, step_index)``: Enter on a step, or a click on
  one. Handler name ``on_timeline_view_event_selected``.
* :class:`TimelineView.GapThresholdChanged` ``(ms)``: ``+``/``-`` or :meth:`set_gap_threshold`.
  The app recomputes the timeline with ``gap_ms=ms`` and calls :meth:`set_timeline`; until then
  the widget shows the old gaps (the header names the new threshold).
* :class:`TimelineView.StepHighlighted` ``(event, step_index)``: the cursor moved (replaces an
  older one still queued), for a detail pane that follows the cursor.

Keys (Binding ids in brackets): ``n``/``N`` next/previous gap or error, wrapping around
[timeline.next_marker, timeline.previous_marker]; ``+``/``-`` gap threshold up/down a step of
:data:`THRESHOLD_STEPS_MS` [timeline.threshold_up, timeline.threshold_down]; Enter shows the
event [timeline.select]; ``l`` shows or hides the lanes (by default they hide when fewer
than :data:`MIN_STEP_ROWS` steps would fit under them) [timeline.toggle_lanes];
up/down/j/k, PageUp/PageDown, Home/End move the cursor [timeline.cursor_up, ...].

The step list is a Line-API :class:`~textual.scroll_view.ScrollView`: only visible rows are
rendered, each once per (row, width, cursor, focus) thanks to an LRU cache of strips.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Final

from rich.style import Style
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Static

from emp_tui.app.render import inert_text
from emp_tui.app.style import (
    ERROR_COLOR,
    LEVEL_MARKS,
    OK_COLOR,
    PENDING_COLOR,
    RUNNING_COLOR,
    WARN_COLOR,
    service_color,
)
from emp_tui.config import DEFAULT_GAP_MS
from emp_tui.events import LEVEL_RANK
from emp_tui.text import data_summary, duration, inert, offset, plural

if TYPE_CHECKING:
    from typing import Self

    from textual.dom import DOMNode

    from emp_tui.analysis import Gap, Step, Timeline
    from emp_tui.app.state import JobView
    from emp_tui.events import TelemetryEvent

# What + and - step through; a threshold set in between moves to the next value in the list.
THRESHOLD_STEPS_MS: Final = (
    100,
    250,
    500,
    1_000,
    2_000,
    5_000,
    10_000,
    30_000,
    60_000,
    300_000,
)
_STATUS_STYLE: Final = {
    "completed": f"bold {OK_COLOR}",
    "failed": f"bold {ERROR_COLOR}",
    "stalled": f"bold {WARN_COLOR}",
    "running": f"bold {RUNNING_COLOR}",
    "queued": f"bold {PENDING_COLOR}",
    "unknown": "dim",
}
# With less room than this for steps under the lanes, the lanes hide (``l`` shows them).
MIN_STEP_ROWS: Final = 6
_MAX_LABEL: Final = 16  # service names in lanes and rows are cut to this many cells
_MAX_TYPE: Final = 32


def _is_error(step: Step) -> bool:
    return step.event.level == "error"


def _is_marker(step: Step) -> bool:
    """Steps that n/N stop at: the end of a gap, and errors."""
    return step.gap is not None or _is_error(step)


def gap_label(gap: Gap, threshold_ms: int) -> str:
    """``⚠ gap 12.3s (threshold 5s)`` or ``⚠ slower than usual: 8.1s vs p95 1.2s``."""
    if gap.kind == "slower_than_usual" and gap.usual_p95_ms is not None:
        return (
            f"⚠ slower than usual: {duration(gap.duration_ms)} vs p95 {duration(gap.usual_p95_ms)}"
        )
    return f"⚠ gap {duration(gap.duration_ms)} (threshold {duration(threshold_ms)})"


@dataclass(frozen=True)
class _Columns:
    """Cell widths of the step rows for one render width."""

    service: int
    event_type: int
    data: int

    FLAG: ClassVar[int] = 2
    OFFSET: ClassVar[int] = 10
    DELTA: ClassVar[int] = 9

    @classmethod
    def fit(cls, width: int, service_len: int, type_len: int) -> _Columns:
        service = min(max(service_len, 7), _MAX_LABEL)
        event_type = min(max(type_len, 9), _MAX_TYPE)
        fixed = cls.FLAG + cls.OFFSET + 1 + cls.DELTA + 2
        # Leave the data summary about a quarter of a narrow row: shrink the event type to 18,
        # then the service to 10, then the event type to 12.
        want_data = max(12, (width - fixed) // 4)
        over = fixed + service + 1 + event_type + 1 + want_data - width
        for column, floor in (("type", 18), ("service", 10), ("type", 12)):
            if over <= 0:
                break
            if column == "type":
                cut = max(min(over, event_type - floor), 0)
                event_type -= cut
            else:
                cut = max(min(over, service - floor), 0)
                service -= cut
            over -= cut
        data = max(width - fixed - service - 1 - event_type - 1, 0)
        return cls(service=service, event_type=event_type, data=data)


def _cell(text: str, width: int, style: str | Style = "", *, right: bool = False) -> Text:
    """``text`` (already inert) fitted to exactly ``width`` cells."""
    cell = Text(text, style=style, no_wrap=True, end="")
    cell.truncate(width, overflow="ellipsis", pad=not right)
    if right and cell.cell_len < width:
        cell.pad_left(width - cell.cell_len)
    return cell


class StepList(ScrollView, can_focus=True, inherit_bindings=False):
    """The steps of a timeline, one row each, with a row before each gap (part of TimelineView).

    Row 0 of the widget is a column header that stays put; the steps scroll under it.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor(-1)", "Previous step", show=False, id="timeline.cursor_up"),
        Binding("down,j", "cursor(1)", "Next step", show=False, id="timeline.cursor_down"),
        Binding("pageup", "page(-1)", "Page up", show=False, id="timeline.page_up"),
        Binding("pagedown", "page(1)", "Page down", show=False, id="timeline.page_down"),
        Binding("home", "cursor_to(0)", "First step", show=False, id="timeline.first"),
        Binding("end", "cursor_to(-1)", "Last step", show=False, id="timeline.last"),
    ]
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "timeline--header",
        "timeline--cursor",
        "timeline--gap",
        "timeline--slow",
        "timeline--error",
        "timeline--marker",
    }
    DEFAULT_CSS = """
    StepList {
        overflow-x: hidden;
        overflow-y: auto;
        height: 1fr;
        & > .timeline--header { color: $text-muted; text-style: bold; }
        & > .timeline--cursor { background: $surface-lighten-2; }
        &:focus > .timeline--cursor { background: $accent 45%; }
        & > .timeline--gap { color: $warning; background: $warning 12%; text-style: bold; }
        & > .timeline--slow { color: $warning; background: $warning 8%; }
        & > .timeline--error { color: $error; }
        & > .timeline--marker { color: $warning; text-style: bold; }
    }
    """

    cursor: reactive[int] = reactive(0, repaint=False, init=False)

    def __init__(self, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self._timeline: Timeline | None = None
        self._threshold_ms = DEFAULT_GAP_MS
        # (step index, is the gap row before that step)
        self._rows: list[tuple[int, bool]] = []
        self._row_of_step: list[int] = []
        self._service_len = 7
        self._type_len = 9
        self._generation = 0
        self._cache: LRUCache[tuple[int, int, int, bool, bool], Strip] = LRUCache(1024)

    # -- state ------------------------------------------------------------------------------

    @property
    def step_count(self) -> int:
        return len(self._row_of_step)

    def load(self, timeline: Timeline | None, threshold_ms: int, cursor: int) -> None:
        """Show ``timeline`` with the cursor on step ``cursor``."""
        self._timeline = timeline
        self._threshold_ms = threshold_ms
        rows: list[tuple[int, bool]] = []
        row_of_step: list[int] = []
        service_len = type_len = 0
        steps = timeline.steps if timeline is not None else []
        for index, step in enumerate(steps):
            if step.gap is not None:
                rows.append((index, True))
            row_of_step.append(len(rows))
            rows.append((index, False))
            service_len = max(service_len, len(inert(step.event.service, _MAX_LABEL + 1)))
            type_len = max(type_len, len(inert(step.event.event_type, _MAX_TYPE + 1)))
        self._rows = rows
        self._row_of_step = row_of_step
        self._service_len = service_len
        self._type_len = type_len
        self._generation += 1
        self._cache.clear()
        self.virtual_size = Size(0, len(rows) + 1)
        self.set_reactive(StepList.cursor, self.validate_cursor(cursor))
        self.refresh()
        self.call_after_refresh(self._scroll_to_cursor)

    def set_threshold(self, threshold_ms: int) -> None:
        self._threshold_ms = threshold_ms
        self._generation += 1
        self._cache.clear()
        self.refresh()

    def validate_cursor(self, cursor: int) -> int:
        return max(0, min(cursor, len(self._row_of_step) - 1))

    def watch_cursor(self, old: int, new: int) -> None:
        self._refresh_row(old)
        self._refresh_row(new)
        self._scroll_to_cursor()
        timeline = self._timeline
        if timeline is not None and 0 <= new < len(timeline.steps):
            self.post_message(TimelineView.StepHighlighted(timeline.steps[new].event, new, self))

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._generation += 1
        self._cache.clear()

    def _refresh_row(self, step_index: int) -> None:
        if 0 <= step_index < len(self._row_of_step):
            row = self._row_of_step[step_index]
            self.refresh(Region(0, row - self.scroll_offset.y + 1, self.size.width, 1))

    def _scroll_to_cursor(self) -> None:
        if not self._row_of_step:
            return
        row = self._row_of_step[self.cursor]
        top = row - 1 if row > 0 and self._rows[row - 1][1] else row  # keep its gap row in view
        visible = max(self.scrollable_content_region.height - 1, 1)
        scroll_y = self.scroll_offset.y
        if top < scroll_y:
            self.scroll_to(y=top, animate=False, immediate=True)
        elif row > scroll_y + visible - 1:
            self.scroll_to(y=row - visible + 1, animate=False, immediate=True)

    # -- actions ----------------------------------------------------------------------------

    def action_cursor(self, delta: int) -> None:
        self.cursor = self.validate_cursor(self.cursor + delta)

    def action_cursor_to(self, index: int) -> None:
        self.cursor = self.validate_cursor(index if index >= 0 else self.step_count - 1)

    def action_page(self, direction: int) -> None:
        page = max(self.scrollable_content_region.height - 2, 1)
        self.cursor = self.validate_cursor(self.cursor + direction * page)

    def on_click(self, event: events.Click) -> None:
        where = event.get_content_offset(self)
        if where is None or where.y == 0:
            return
        row = where.y - 1 + self.scroll_offset.y
        if 0 <= row < len(self._rows):
            self.cursor = self._rows[row][0]
            self.post_message(TimelineView.EventSelected(self._selected_event(), self.cursor, self))

    def _selected_event(self) -> TelemetryEvent:
        assert self._timeline is not None
        return self._timeline.steps[self.cursor].event

    # -- rendering --------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.rich_style
        if y == 0:
            key = (self._generation, -1, width, False, False)
            strip = self._cache.get(key)
            if strip is None:
                strip = self._strip(self._header_text(width), width, "timeline--header")
                self._cache[key] = strip
            return strip
        index = y - 1 + self.scroll_offset.y
        if index >= len(self._rows) or self._timeline is None:
            return Strip.blank(width, base)
        step_index, is_gap = self._rows[index]
        is_cursor = not is_gap and step_index == self.cursor
        key = (self._generation, index, width, is_cursor, self.has_focus)
        strip = self._cache.get(key)
        if strip is None:
            step = self._timeline.steps[step_index]
            if is_gap:
                assert step.gap is not None
                kind = "timeline--gap" if step.gap.kind == "threshold" else "timeline--slow"
                strip = self._strip(self._gap_text(step.gap), width, kind)
            else:
                strip = self._strip(
                    self._step_text(step, width), width, self._row_class(step), cursor=is_cursor
                )
            self._cache[key] = strip
        return strip

    def _strip(
        self, text: Text, width: int, component: str | None, *, cursor: bool = False
    ) -> Strip:
        style = self.rich_style
        if component is not None:
            style = self.get_component_rich_style(component)
        if cursor:
            cursor_style = self.get_component_rich_style("timeline--cursor")
            style += Style(bgcolor=cursor_style.bgcolor)
        text.stylize_before(style)
        text.truncate(width, overflow="ellipsis")
        segments = list(text.render(self.app.console, end=""))
        return Strip(segments, text.cell_len).adjust_cell_length(width, style)

    def _row_class(self, step: Step) -> str | None:
        if _is_error(step):
            return "timeline--error"
        if step.gap is not None:
            return "timeline--slow"
        return None

    def _columns(self, width: int) -> _Columns:
        return _Columns.fit(width, self._service_len, self._type_len)

    def _header_text(self, width: int) -> Text:
        cols = self._columns(width)
        return Text.assemble(
            _cell("", _Columns.FLAG),
            _cell("offset", _Columns.OFFSET, right=True),
            " ",
            _cell("delta", _Columns.DELTA, right=True),
            "  ",
            _cell("service", cols.service),
            " ",
            _cell("eventType", cols.event_type),
            " ",
            _cell("data", cols.data),
            no_wrap=True,
            end="",
        )

    def _step_text(self, step: Step, width: int) -> Text:
        cols = self._columns(width)
        event = step.event
        if _is_error(step):
            flag, flag_style = "✖", f"bold {ERROR_COLOR}"
        elif step.gap is not None:
            flag, flag_style = "⚠", f"bold {WARN_COLOR}"
        elif event.level == "warn":
            flag, flag_style = "▲", WARN_COLOR
        elif event.malformed:
            flag, flag_style = "?", WARN_COLOR
        else:
            flag, flag_style = "", ""
        delta_style = "bold" if step.gap is not None else "dim"
        summary = data_summary(event.data, limit=max(cols.data, 1) + 1)
        if event.malformed:
            summary = f"malformed: {inert(event.malformed, 80)}  {summary}"
        return Text.assemble(
            _cell(flag, _Columns.FLAG, flag_style),
            _cell(offset(step.offset_ms), _Columns.OFFSET, right=True),
            " ",
            _cell(offset(step.delta_ms), _Columns.DELTA, delta_style, right=True),
            "  ",
            _cell(inert(event.service, 80), cols.service, service_color(event.service)),
            " ",
            _cell(inert(event.event_type, 120), cols.event_type),
            " ",
            _cell(summary, cols.data, "" if event.malformed is None else WARN_COLOR),
            no_wrap=True,
            end="",
        )

    def _gap_text(self, gap: Gap) -> Text:
        indent = " " * (_Columns.FLAG + 4)
        return Text.assemble(
            indent,
            gap_label(gap, self._threshold_ms),
            "   ",
            inert_text(gap.from_service, limit=40),
            " → ",
            inert_text(gap.to_service, limit=40),
            "   ",
            inert_text(gap.from_type, limit=60),
            " → ",
            inert_text(gap.to_type, limit=60),
            no_wrap=True,
            end="",
        )


class SwimLanes(Widget):
    """One lane per service on the job's time axis (part of TimelineView).

    Each event is a mark in its service's lane (``·`` debug, ``●`` info, ``▲`` warn, ``✖``
    error; the worst level wins a shared cell). A line follows the job: it stays in the lane
    of its last event (``━`` in the warning colour across a gap) and turns down or up
    (``╮``/``╯``, ``│``) to the next service at the column of that service's event. The
    bottom row is the axis: gaps again as ``━``, the cursor's event as ``▲``. A click on a
    lane puts the cursor on the step nearest to that time.
    """

    DEFAULT_CSS = """
    SwimLanes {
        height: auto;
        max-height: 14;
        padding: 0 0 1 0;
    }
    """

    cursor: reactive[int] = reactive(0)

    @dataclass
    class Clicked(Message):
        """A click on the lanes, nearest to step ``step_index``."""

        step_index: int

    def __init__(self, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self._timeline: Timeline | None = None

    def load(self, timeline: Timeline | None, cursor: int) -> None:
        self._timeline = timeline
        self.set_reactive(SwimLanes.cursor, cursor)
        self.refresh(layout=True)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        timeline = self._timeline
        return len(timeline.services) + 1 if timeline is not None and timeline.steps else 0

    def render(self) -> Text:
        timeline = self._timeline
        if timeline is None or not timeline.steps:
            return Text("")
        lines = lane_lines(timeline, self.content_region.width or self.size.width, self.cursor)
        return Text("\n", no_wrap=True, end="").join(lines)

    def on_click(self, event: events.Click) -> None:
        timeline = self._timeline
        where = event.get_content_offset(self)
        if timeline is None or not timeline.steps or where is None:
            return
        label_w, area = _lane_geometry(timeline, self.content_region.width)
        column = where.x - label_w - 2
        if area < 4 or not 0 <= column < area:
            return
        at_ms = column * timeline.duration_ms / (area - 1)
        nearest = min(
            range(len(timeline.steps)),
            key=lambda i: abs(timeline.steps[i].offset_ms - at_ms),
        )
        self.post_message(self.Clicked(nearest))


def _lane_geometry(timeline: Timeline, width: int) -> tuple[int, int]:
    """(cells for the service names, cells for the time axis) at ``width``."""
    names = (len(inert(s, _MAX_LABEL + 1)) for s in timeline.services)
    label_w = min(max(names, default=1), _MAX_LABEL)
    return label_w, width - label_w - 2


def lane_lines(timeline: Timeline, width: int, cursor: int) -> list[Text]:
    """The swimlane rows of ``timeline`` at ``width`` cells, then the axis row."""
    services = timeline.services
    label_w, area = _lane_geometry(timeline, width)
    if area < 4:
        return [Text("(too narrow for lanes)", style="dim", end="")]
    span = timeline.duration_ms

    def col(offset_ms: int) -> int:
        if span <= 0:
            return 0
        return max(0, min(area - 1, round(offset_ms * (area - 1) / span)))

    lane_of = {service: lane for lane, service in enumerate(services)}
    glyphs = [[" "] * area for _ in services]
    styles: list[list[str]] = [[""] * area for _ in services]
    ranks = [[-1] * area for _ in services]
    colors = [service_color(service) for service in services]
    columns = [col(step.offset_ms) for step in timeline.steps]

    steps = timeline.steps
    lanes = [lane_of.get(step.event.service) for step in steps]
    # The job's path: it stays in the lane of its last event until the next one (a gap in
    # the warning colour), then turns to the next event's lane at that event's column.
    for index in range(len(steps) - 1):
        lane = lanes[index]
        if lane is None:
            continue
        waiting = steps[index + 1].gap is not None
        glyph = "━" if waiting else "─"
        style = f"bold {WARN_COLOR}" if waiting else f"dim {colors[lane]}"
        for c in range(columns[index] + 1, columns[index + 1]):
            glyphs[lane][c] = glyph
            styles[lane][c] = style
    corners: list[tuple[int, int, str, str]] = []
    for index in range(1, len(steps)):
        source, target = lanes[index - 1], lanes[index]
        if source is None or target is None or source == target:
            continue
        c = columns[index]
        for lane in range(min(source, target) + 1, max(source, target)):
            glyphs[lane][c] = "┼" if glyphs[lane][c] in "─━" else "│"
            styles[lane][c] = f"dim {colors[source]}"
        if columns[index - 1] < c:
            corners.append((source, c, "╮" if target > source else "╯", colors[source]))
    for lane, c, glyph, style in corners:
        glyphs[lane][c] = glyph
        styles[lane][c] = style
    for c, lane, step in zip(columns, lanes, steps, strict=True):
        if lane is None:
            continue
        level = step.event.level
        rank = LEVEL_RANK.get(level, LEVEL_RANK["info"])
        if rank >= ranks[lane][c]:
            ranks[lane][c] = rank
            glyphs[lane][c] = LEVEL_MARKS.get(level, LEVEL_MARKS["info"])
            if level == "error":
                styles[lane][c] = f"bold {ERROR_COLOR}"
            elif level == "warn":
                styles[lane][c] = f"bold {WARN_COLOR}"
            elif level == "debug":
                styles[lane][c] = f"dim {colors[lane]}"
            else:
                styles[lane][c] = f"bold {colors[lane]}"

    lines: list[Text] = []
    for lane, service in enumerate(services):
        line = Text(no_wrap=True, end="")
        line.append_text(_cell(inert(service, 80), label_w, colors[lane], right=True))
        line.append(" │", style="dim")
        _append_cells(line, glyphs[lane], styles[lane])
        lines.append(line)

    axis = ["─"] * area
    axis_styles = ["dim"] * area
    for gap in timeline.gaps:
        start = col(gap.start_ms - timeline.start_ms)
        for c in range(start, col(gap.end_ms - timeline.start_ms) + 1):
            axis[c] = "━"
            axis_styles[c] = f"bold {WARN_COLOR}"
    at = ""
    if 0 <= cursor < len(timeline.steps):
        axis[columns[cursor]] = "▲"
        axis_styles[columns[cursor]] = "bold reverse"
        at = offset(timeline.steps[cursor].offset_ms)
    line = Text(no_wrap=True, end="")
    line.append_text(_cell(at, label_w, "bold", right=True))
    line.append(" ╰", style="dim")
    _append_cells(line, axis, axis_styles)
    lines.append(line)
    return lines


def _append_cells(line: Text, glyphs: list[str], styles: list[str]) -> None:
    """Append cells to ``line``, one span per run of equal style."""
    start = 0
    for c in range(1, len(glyphs) + 1):
        if c == len(glyphs) or styles[c] != styles[start]:
            line.append("".join(glyphs[start:c]), style=styles[start] or None)
            start = c


class TimelineView(Widget):
    """One job's timeline: a header, swimlanes per service, and the list of steps.

    Construct with ``TimelineView(timeline=None, *, gap_threshold_ms=5000, id=...)`` and
    update with :meth:`set_timeline`. See the module docstring for messages and keys.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "next_marker", "Next gap/error", id="timeline.next_marker"),
        Binding("N", "previous_marker", "Prev gap/error", id="timeline.previous_marker"),
        Binding("plus,equals_sign", "threshold(1)", "Gap threshold +", id="timeline.threshold_up"),
        Binding("minus", "threshold(-1)", "Gap threshold -", id="timeline.threshold_down"),
        Binding("enter", "select", "Show event", id="timeline.select"),
        Binding("l", "toggle_lanes", "Lanes on/off", id="timeline.toggle_lanes"),
    ]
    DEFAULT_CSS = """
    TimelineView {
        height: 1fr;
        layout: vertical;
        & > #timeline-header { height: 1; padding: 0 1; }
        & > #timeline-note { display: none; height: auto; max-height: 3; padding: 0 1; }
        &.-note > #timeline-note { display: block; }
        & > #timeline-empty { display: none; height: auto; padding: 1 2; color: $text-muted; }
        &.-empty > #timeline-empty { display: block; }
        &.-empty > SwimLanes, &.-empty > StepList { display: none; }
        &.-no-lanes > SwimLanes { display: none; }
    }
    """

    @dataclass
    class EventSelected(Message):
        """The user chose a step (Enter or click): show ``event`` in detail."""

        event: TelemetryEvent
        step_index: int
        source: Widget | None = None

        @property
        def control(self) -> DOMNode | None:
            return self.source.parent if isinstance(self.source, StepList) else self.source

    @dataclass
    class StepHighlighted(Message):
        """The cursor moved to step ``step_index``."""

        event: TelemetryEvent
        step_index: int
        source: Widget | None = None

        @property
        def control(self) -> DOMNode | None:
            return self.source.parent if isinstance(self.source, StepList) else self.source

        def can_replace(self, message: Message) -> bool:
            return (
                isinstance(message, TimelineView.StepHighlighted) and message.source is self.source
            )

    @dataclass
    class GapThresholdChanged(Message):
        """The user changed the gap threshold: recompute the timeline with ``gap_ms=ms``."""

        ms: int
        source: Widget | None = None

        @property
        def control(self) -> DOMNode | None:
            return self.source

    show_lanes: reactive[bool | None] = reactive[bool | None](None, init=False)
    """Show the swimlanes: True, False, or None to show them when the widget is tall enough."""

    def __init__(
        self,
        timeline: Timeline | None = None,
        *,
        gap_threshold_ms: int = DEFAULT_GAP_MS,
        job_id: str | None = None,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._timeline = timeline
        self._whole: JobView | None = None
        self._job_id = timeline.job_id if timeline is not None else job_id
        self._threshold_ms = max(1, int(gap_threshold_ms))
        self._header = Static(id="timeline-header")
        self._note = Static(id="timeline-note")
        self._empty = Static(id="timeline-empty")
        self._lanes = SwimLanes()
        self._steps = StepList()

    def compose(self) -> ComposeResult:
        yield self._header
        yield self._note
        yield self._empty
        yield self._lanes
        yield self._steps

    def on_mount(self) -> None:
        self._show(cursor=0)

    # -- the app's API ----------------------------------------------------------------------

    @property
    def timeline(self) -> Timeline | None:
        return self._timeline

    @property
    def job_id(self) -> str | None:
        return self._job_id

    @property
    def gap_threshold_ms(self) -> int:
        return self._threshold_ms

    @property
    def cursor(self) -> int:
        """Index of the step under the cursor (0 when there are none)."""
        return self._steps.cursor

    @property
    def selected_step(self) -> Step | None:
        timeline = self._timeline
        if timeline is None or not timeline.steps:
            return None
        return timeline.steps[self._steps.cursor]

    def set_timeline(
        self,
        timeline: Timeline | None,
        *,
        job_id: str | None = None,
        gap_threshold_ms: int | None = None,
        whole: JobView | None = None,
    ) -> None:
        """Show ``timeline`` (None or no steps: "no events for job <job_id>"). ``whole``
        says whether the job's events have all come from the sources yet, and whether they
        may lack its start (the header says so).

        For the same job as before (a live update, or the recomputation after a threshold
        change) the cursor stays on the same event, or on the last step when it was on the
        last step and new ones came; for another job it goes to the first step.
        ``gap_threshold_ms`` only relabels (it posts nothing).
        """
        previous = self.selected_step
        same_job = (
            timeline is not None
            and self._timeline is not None
            and (timeline.job_id == self._timeline.job_id)
        )
        self._timeline = timeline
        self._whole = whole
        self._job_id = timeline.job_id if timeline is not None else job_id
        if gap_threshold_ms is not None:
            self._threshold_ms = max(1, int(gap_threshold_ms))
        cursor = 0
        if same_job and previous is not None and timeline is not None:
            was_last = self._steps.cursor == self._steps.step_count - 1
            if was_last and len(timeline.steps) > self._steps.step_count:
                cursor = len(timeline.steps) - 1  # on the last step: follow new ones
            else:
                cursor = _find_event(timeline, previous.event, fallback=self._steps.cursor)
        if self.is_mounted:
            self._show(cursor)

    def set_gap_threshold(self, ms: int) -> None:
        """Use ``ms`` as the gap threshold and post GapThresholdChanged (when it changed)."""
        ms = max(1, int(ms))
        if ms == self._threshold_ms:
            return
        self._threshold_ms = ms
        if self.is_mounted:
            self._header.update(self._header_text())
            self._steps.set_threshold(ms)
        self.post_message(self.GapThresholdChanged(ms, self))

    def select_step(self, index: int) -> None:
        """Move the cursor to step ``index`` (clamped)."""
        self._steps.cursor = self._steps.validate_cursor(index)

    def focus(self, scroll_visible: bool = True) -> Self:
        """Focus goes to the step list, where the keys work."""
        self._steps.focus(scroll_visible)
        return self

    # -- actions ----------------------------------------------------------------------------

    def action_next_marker(self) -> None:
        self._jump(1)

    def action_previous_marker(self) -> None:
        self._jump(-1)

    def action_threshold(self, direction: int) -> None:
        current = self._threshold_ms
        if direction > 0:
            bigger = [ms for ms in THRESHOLD_STEPS_MS if ms > current]
            target = bigger[0] if bigger else current
        else:
            smaller = [ms for ms in THRESHOLD_STEPS_MS if ms < current]
            target = smaller[-1] if smaller else current
        if target == current:
            self.app.bell()
            return
        self.set_gap_threshold(target)

    def action_toggle_lanes(self) -> None:
        self.show_lanes = self.has_class("-no-lanes")

    def action_select(self) -> None:
        step = self.selected_step
        if step is None:
            self.app.bell()
            return
        self.post_message(self.EventSelected(step.event, self._steps.cursor, self))

    def _jump(self, direction: int) -> None:
        """Cursor to the next (1) or previous (-1) gap or error, wrapping around the ends."""
        timeline = self._timeline
        if timeline is None:
            self.app.bell()
            return
        markers = [i for i, step in enumerate(timeline.steps) if _is_marker(step)]
        if not markers:
            self.app.bell()
            self.notify(
                f"No gap over {duration(self._threshold_ms)} and no error in this job "
                "(- lowers the threshold).",
                timeout=4,
            )
            return
        here = self._steps.cursor
        ahead = [i for i in markers if i > here] if direction > 0 else []
        behind = [i for i in markers if i < here] if direction < 0 else []
        if ahead or behind:
            self._steps.cursor = ahead[0] if ahead else behind[-1]
            return
        target = markers[0] if direction > 0 else markers[-1]
        if target == here:
            self.notify("This is the job's only gap or error.", timeout=3)
            return
        where = ("after", "first") if direction > 0 else ("before", "last")
        self.notify(f"No gap or error {where[0]} this step: wrapped to the {where[1]}.", timeout=3)
        self._steps.cursor = target

    # -- internals --------------------------------------------------------------------------

    def on_timeline_view_step_highlighted(self, message: TimelineView.StepHighlighted) -> None:
        self._lanes.cursor = message.step_index

    def on_swim_lanes_clicked(self, message: SwimLanes.Clicked) -> None:
        message.stop()
        self.select_step(message.step_index)

    def _show(self, cursor: int) -> None:
        timeline = self._timeline
        empty = timeline is None or not timeline.steps
        self.set_class(empty, "-empty")
        if empty:
            job = self._job_id
            message = Text("no events for job ", end="") if job else Text("no job selected", end="")
            if job:
                message.append_text(inert_text(job, "bold", limit=120))
            self._empty.update(message)
        self._header.update(self._header_text())
        note = self._note_text()
        self.set_class(note is not None, "-note")
        self._note.update(note or "")
        self._steps.load(timeline, self._threshold_ms, cursor)
        self._lanes.load(timeline, self._steps.cursor)
        self._fit_lanes()

    def on_resize(self) -> None:
        self._fit_lanes()
        self._header.update(self._header_text())

    def watch_show_lanes(self) -> None:
        self._fit_lanes()

    def _fit_lanes(self) -> None:
        """Lanes as asked (``show_lanes``), or when ``None`` only if the list keeps
        :data:`MIN_STEP_ROWS` rows below them."""
        timeline = self._timeline
        wanted = self.show_lanes
        if wanted is None:
            lanes = len(timeline.services) + 2 if timeline is not None else 0
            note = 2 if self.has_class("-note") else 0
            wanted = self.size.height >= 1 + note + lanes + 1 + MIN_STEP_ROWS
        self.set_class(not wanted, "-no-lanes")

    def _header_text(self) -> Text:
        """The job, its status and duration, its gaps and errors, the threshold and the
        counts: what does not fit the header's width goes, the least telling first (the
        counts, then the words around the threshold), before anything is cut."""
        timeline = self._timeline
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        text.append("job ", style="dim")
        text.append_text(inert_text(self._job_id or "-", "bold", limit=80))
        steps = timeline is not None and timeline.steps
        if timeline is not None and steps:
            text.append("  ")
            text.append(timeline.status, style=_STATUS_STYLE.get(timeline.status, ""))
            text.append(f"  {duration(timeline.duration_ms)}")
            silent = timeline.silent_ms
            if silent is not None and silent >= self._threshold_ms:
                # Still open and quiet for longer than a gap: the stall users come here for.
                quiet = "waiting" if timeline.status == "queued" else "silent"
                text.append(f" · {quiet} for {duration(silent)}", style=f"bold {WARN_COLOR}")
            if timeline.gaps:
                text.append(f" · {plural(len(timeline.gaps), 'gap')}", style=f"bold {WARN_COLOR}")
            errors = sum(1 for step in timeline.steps if _is_error(step))
            if errors:
                text.append(f" · {plural(errors, 'error')}", style=f"bold {ERROR_COLOR}")
        whole = self._whole
        if whole is not None and whole.job_id == self._job_id and not whole.fetched:
            text.append(" · reading the whole job…", style="dim italic")
        threshold = duration(self._threshold_ms)
        counts: list[str] = [""]
        if timeline is not None and steps:
            events = f" · {plural(len(timeline.steps), 'event')}"
            counts = [f"{events} · {plural(len(timeline.services), 'service')}", events, ""]
        room = self._header.content_size.width or 10_000
        for tail in (f" · gap threshold {threshold} (+/-)", f" · gaps > {threshold}"):
            for count in counts:
                if text.cell_len + len(tail) + len(count) <= room:
                    text.append(tail, style="dim")
                    text.append(count)
                    return text
        text.append(f" · gaps > {threshold}", style="dim")
        return text

    def _note_text(self) -> Text | None:
        """Under the header, when the sources may not hold the whole job: its earlier events
        are not shown, rather than a gap invented."""
        whole, timeline = self._whole, self._timeline
        if (
            whole is None
            or whole.job_id != self._job_id
            or whole.missing_start_ms is None
            or timeline is None
            or not timeline.steps
        ):
            return None
        first = timeline.steps[0].event.event_type
        text = Text("⚠ may lack its start: ", style=f"bold {WARN_COLOR}")
        text.append_text(inert_text(first, "bold", limit=60))
        text.append(
            f" is its first event held, {duration(whole.missing_start_ms)} after the oldest "
            "event the sources hold; earlier ones were trimmed away or never read",
            style=WARN_COLOR,
        )
        return text


def _find_event(timeline: Timeline, event: TelemetryEvent, *, fallback: int) -> int:
    """Index of ``event`` in ``timeline`` (by stream id, else by its identity fields)."""
    for index, step in enumerate(timeline.steps):
        other = step.event
        if event.id is not None and other.id == event.id:
            return index
        if (
            event.id is None
            and other.timestamp == event.timestamp
            and other.service == event.service
            and other.event_type == event.event_type
        ):
            return index
    return min(fallback, len(timeline.steps) - 1)
