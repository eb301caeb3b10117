"""The Problems view: what is wrong over the events at hand, most severe and newest first, then
the event standards; and the one-line banner that points at the worst problem on a narrow
terminal.

The view shows a :class:`~emp_tui.app.triage.ProblemsState` (rows, cursor), which the app
updates and hands down with :meth:`ProblemsView.show`; the rows are drawn with the Line API
(only those on screen, each once per cursor and width). Under the list, a strip says all of
the selected row: the whole title, its subjects and what the keys do. Enter, ``o`` and ``v``
post :class:`~emp_tui.app.messages.ProblemChosen`; the app opens the job or applies the
filter.
"""

from __future__ import annotations

import time
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Region, Size
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Static

from emp_tui.app.messages import PaneRequested, ProblemChosen
from emp_tui.app.style import severity_mark, severity_text_style
from emp_tui.app.triage import Line, OpenJob, ProblemsState
from emp_tui.text import inert


def line_text(line: Line, *, end: str = "") -> Text:
    """A line of (inert text, style) parts as Rich text."""
    text = Text(no_wrap=True, end=end)
    for part, style in line:
        text.append(part, style or None)
    return text


class ProblemList(ScrollView, can_focus=True, inherit_bindings=False):
    """The rows of a ProblemsState, one line each (part of ProblemsView)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor(-1)", "Previous problem", show=False, id="problems.up"),
        Binding("down", "cursor(1)", "Next problem", show=False, id="problems.down"),
        Binding("pageup", "page(-1)", "Page up", show=False, id="problems.page_up"),
        Binding("pagedown", "page(1)", "Page down", show=False, id="problems.page_down"),
        Binding("home", "cursor_to(0)", "First problem", show=False, id="problems.first"),
        Binding("end", "cursor_to(-1)", "Last row", show=False, id="problems.last"),
        Binding("enter", "choose", "Open its job or evidence", id="problems.open"),
        Binding("o", "open_job", "Open its job", id="problems.open_job"),
        Binding("v", "evidence", "Filter by its evidence", id="problems.evidence"),
    ]
    COMPONENT_CLASSES: ClassVar[set[str]] = {"problems--cursor"}
    DEFAULT_CSS = """
    ProblemList {
        overflow-x: hidden;
        overflow-y: auto;
        height: 1fr;
        & > .problems--cursor { background: $surface-lighten-2; }
        &:focus > .problems--cursor { background: $accent 45%; }
    }
    """

    def __init__(self, state: ProblemsState, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.state = state
        self._cache: LRUCache[tuple[int, int, int, bool, bool], Strip] = LRUCache(512)
        self.moved_at = 0.0
        """When the user last moved the cursor or chose a row (time.monotonic): the app holds
        new findings back for a moment, so that rows do not move under the keys."""

    def reload(self) -> None:
        """The state changed: draw it again, keeping the cursor in view."""
        self._cache.clear()
        self.virtual_size = Size(0, len(self.state.rows))
        self.refresh()
        self._scroll_to_cursor()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._cache.clear()

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        index = y + self.scroll_offset.y
        rows = self.state.rows
        if index >= len(rows):
            return Strip.blank(width, self.rich_style)
        is_cursor = index == self.state.cursor and rows[index].selectable
        key = (self.state.generation, index, width, is_cursor, self.has_focus)
        strip = self._cache.get(key)
        if strip is None:
            text = line_text(rows[index].line)
            style = self.rich_style
            if is_cursor:
                style += Style(bgcolor=self.get_component_rich_style("problems--cursor").bgcolor)
            text.stylize_before(style)
            text.truncate(width, overflow="ellipsis")
            strip = Strip(text.render(self.app.console), text.cell_len).adjust_cell_length(
                width, style
            )
            self._cache[key] = strip
        return strip

    def _refresh_row(self, index: int) -> None:
        self.refresh(Region(0, index - self.scroll_offset.y, self.size.width, 1))

    def _scroll_to_cursor(self) -> None:
        cursor = self.state.cursor
        height = max(self.scrollable_content_region.height, 1)
        top = self.scroll_offset.y
        if cursor < top:
            self.scroll_to(y=cursor, animate=False, immediate=True)
        elif cursor >= top + height:
            self.scroll_to(y=cursor - height + 1, animate=False, immediate=True)

    def _moved(self, old: int) -> None:
        self.moved_at = time.monotonic()
        if old != self.state.cursor:
            self._refresh_row(old)
            self._refresh_row(self.state.cursor)
            self._scroll_to_cursor()
            parent = self.parent
            if isinstance(parent, ProblemsView):
                parent.show_detail()

    def action_cursor(self, delta: int) -> None:
        old = self.state.cursor
        self.state.move(delta)
        self._moved(old)

    def action_page(self, direction: int) -> None:
        old = self.state.cursor
        self.state.move(direction * max(self.scrollable_content_region.height - 1, 1))
        self._moved(old)

    def action_cursor_to(self, index: int) -> None:
        old = self.state.cursor
        self.state.move_to(index)
        self._moved(old)

    def on_click(self, event: events.Click) -> None:
        where = event.get_content_offset(self)
        if where is None:
            return
        index = where.y + self.scroll_offset.y
        if 0 <= index < len(self.state.rows) and self.state.rows[index].selectable:
            old = self.state.cursor
            self.state.select(index)
            self._moved(old)
            if event.chain == 2:
                self.action_choose()

    def _chose(self) -> None:
        """A row was chosen: the cursor stays on it (Esc comes back to it)."""
        self.state.touched = True
        self.moved_at = time.monotonic()

    def action_choose(self) -> None:
        self._chose()
        row = self.state.selected
        if row is None or row.action is None:
            self.app.bell()
            if row is not None:
                self.notify("Nothing to open for this one.", severity="warning")
            return
        self.post_message(ProblemChosen(row.action))

    def action_open_job(self) -> None:
        self._chose()
        row = self.state.selected
        if row is None or not row.job:
            self.notify("This row names no job.", severity="warning")
            return
        self.post_message(ProblemChosen(OpenJob(row.job)))

    def action_evidence(self) -> None:
        self._chose()
        row = self.state.selected
        chosen = row.evidence_filter if row is not None else None
        if chosen is None:
            self.notify("This row has no evidence filter.", severity="warning")
            return
        self.post_message(ProblemChosen(chosen))


class ProblemsView(Widget):
    """The list of problems and, under it, all about the selected one. The app calls
    :meth:`show` whenever the state changed."""

    DEFAULT_CSS = """
    ProblemsView {
        layout: vertical;
        height: 1fr;
        & > #problems-detail {
            height: auto;
            max-height: 7;
            padding: 0 1;
            border-top: solid $panel-lighten-2;
        }
        &.-nothing > #problems-detail { display: none; }
    }
    """

    def __init__(
        self,
        state: ProblemsState,
        *,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.state = state
        self._list = ProblemList(state, id="problems-list")
        self._detail = Static(id="problems-detail")

    def compose(self) -> ComposeResult:
        yield self._list
        yield self._detail

    def on_mount(self) -> None:
        self.show()

    @property
    def list(self) -> ProblemList:
        return self._list

    def focus(self, scroll_visible: bool = True) -> ProblemsView:
        """Focus goes to the list, where the keys work."""
        self._list.focus(scroll_visible)
        return self

    def show(self) -> None:
        """Draw the state again (new findings, or the cursor moved)."""
        state = self.state
        counts = state.title()
        self.border_title = "3 problems" + (f" · {counts}" if counts else "")
        self.border_subtitle = state.subtitle()
        self._list.reload()
        self.show_detail()

    def show_detail(self) -> None:
        row = self.state.selected
        self.set_class(row is None, "-nothing")
        if row is None:
            self._detail.update("")
            return
        text = Text(overflow="fold")
        for index, line in enumerate(row.detail):
            if index:
                text.append("\n")
            text.append_text(line_text(line))
        self._detail.update(text)


class ProblemBanner(Widget):
    """One line on a narrow terminal: the worst problem, and ``!`` to see them all. A click
    shows the Problems view."""

    DEFAULT_CSS = """
    ProblemBanner { height: 1; background: $boost; }
    """

    def __init__(self, state: ProblemsState, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.state = state

    def render(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        top = self.state.top()
        if top is None:
            return text
        mark, style = severity_mark(top.severity)
        total = len(self.state.findings)
        text.append(f" {mark} ", style)
        text.append("! ", "bold")
        text.append(f"1/{total} " if total > 1 else "", "dim")
        text.append(inert(top.title, 300), severity_text_style(top.severity))
        return text

    def on_click(self) -> None:
        self.post_message(PaneRequested("problems"))
