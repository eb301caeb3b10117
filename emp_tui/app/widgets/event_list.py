"""The live stream: a virtualized list of events drawn with the Line API.

Only the rows on screen are rendered, each once (an LRU cache of strips keyed by the event's
sequence number, whether the cursor is on it, how far its data is scrolled and its mark).
The list holds the store's sequence numbers, ascending (stream order), not events:
``lookup(seq)`` (given by the app) finds the event in the store. New rows arrive in batches
(:meth:`EventList.add_rows`), at the app's frame rate, never one message per event; they are
usually the newest, but may fall among the rows already shown.

The columns are as wide as the values of the rows shown need (:class:`~emp_tui.app.render.Seen`:
they only grow until the rows are replaced), the data takes the rest; ←/→ scroll the selected
row's data. A row whose time is before the row above's is marked (the rows are in arrival
order).

Follow mode keeps the newest row in view. Scrolling up, moving the cursor or pressing space
(an app binding) pauses it; while paused the border says how many rows arrived since; End
(which also puts the cursor on the newest row) or ``f`` resumes. A step above the oldest row
(↑ or PgUp on it, Home when there, the wheel at the top) posts :class:`OlderWanted`: the app
may bring in the history before it.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence

from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from emp_tui.app.messages import EventSelected, FollowChanged, JobRequested, OlderWanted
from emp_tui.app.render import RowLayout, Seen, event_row
from emp_tui.events import TelemetryEvent
from emp_tui.text import data_summary

MEASURED = 500
"""How many of the newest rows set the columns' widths at once (the others as they show)."""


class EventList(ScrollView, can_focus=True):
    """The stream of (filtered) events, newest at the bottom."""

    BINDINGS = [
        Binding(
            "up",
            "cursor(-1)",
            "Previous event (at the top: older history)",
            show=False,
            id="stream.up",
        ),
        Binding("down", "cursor(1)", "Next event", show=False, id="stream.down"),
        Binding(
            "pageup",
            "page(-1)",
            "Page up (at the top: older history)",
            show=False,
            id="stream.page_up",
        ),
        Binding("pagedown", "page(1)", "Page down", show=False, id="stream.page_down"),
        Binding(
            "home", "first", "First event (again: older history)", show=False, id="stream.home"
        ),
        Binding("end", "follow", "Follow new events", show=False, id="stream.end"),
        Binding("enter", "open_job", "Open job", id="stream.open_job"),
        Binding(
            "right",
            "shift(1)",
            "More of the selected row's data",
            show=False,
            id="stream.data_right",
        ),
        Binding(
            "left",
            "shift(-1)",
            "Back along the selected row's data",
            show=False,
            id="stream.data_left",
        ),
    ]

    COMPONENT_CLASSES = {"event-list--cursor"}

    follow: reactive[bool] = reactive(True)
    new_while_paused: reactive[int] = reactive(0)

    def __init__(
        self,
        lookup: Callable[[int], TelemetryEvent],
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._lookup = lookup
        self.rows: list[int] = []
        self.cursor: int | None = None
        self._strips: LRUCache[tuple[int, bool, int, bool], Strip] = LRUCache(maxsize=1024)
        self._seen = Seen()
        self._layout = RowLayout.for_width(80, self._seen)
        self.shift = 0
        """How far the selected row's data is scrolled (←/→), in characters."""
        self._hint: Text | None = None
        self._hint_lines: list[Strip] = []
        self._range_closed: str | None = None
        """Why the list cannot follow (a filter's range ends in the past), or None."""

    # -- state set by the app -------------------------------------------------------------

    def set_rows(self, seqs: Sequence[int]) -> None:
        """Replace every row (a new filter). Keeps the selected event when it is still shown."""
        selected = self.selected_seq
        self.rows = list(seqs)
        self.cursor = None
        self._seen = Seen()  # the columns fit the new rows
        self._measure(self.rows[-MEASURED:])
        if selected is not None:
            index = _find(self.rows, selected)
            if index is not None:
                self.cursor = index
        self.new_while_paused = 0
        self._strips.clear()
        self._resize()
        if self.follow or self.cursor is None:
            self._scroll_to_end()
        else:
            self._show_cursor()
        self.refresh()
        if self.cursor is None and selected is not None:
            self.post_message(EventSelected(None))

    def add_rows(self, seqs: Sequence[int]) -> None:
        """New rows (ascending; one batch per frame): at the bottom, or among the rows shown
        when some are older. Paused, the same events stay in view and selected."""
        if not seqs:
            return
        self._measure(seqs[-MEASURED:])
        rows = self.rows
        top = int(self.scroll_y)
        if not rows or seqs[0] > rows[-1]:
            rows.extend(seqs)
            newest = len(seqs)
        else:
            top_seq = rows[top] if top < len(rows) else None
            selected = self.selected_seq
            newest = len(seqs) - bisect_right(seqs, rows[-1])
            rows.extend(seqs)
            rows.sort()  # two sorted runs: merged in linear time
            if selected is not None:
                self.cursor = bisect_left(rows, selected)
            if top_seq is not None:
                top = bisect_left(rows, top_seq)
        self._resize()
        if self.follow:
            self._scroll_to_end()
        else:
            self.new_while_paused += newest
            if top != int(self.scroll_y):
                self.scroll_to(y=top, animate=False, immediate=True, force=True)
        self.refresh()

    def drop_before(self, oldest_seq: int) -> None:
        """Forget rows whose events the store pushed out (everything below ``oldest_seq``)."""
        rows = self.rows
        if not rows or rows[0] >= oldest_seq:
            return
        count = bisect_left(rows, oldest_seq)
        del rows[:count]
        if self.cursor is not None:
            self.cursor -= count
            if self.cursor < 0:
                self.cursor = None
                self.post_message(EventSelected(None))
        self._resize()
        if self.follow:
            self._scroll_to_end()
        else:
            # Keep the same events on screen while rows vanish above them.
            self.scroll_to(
                y=max(self.scroll_y - count, 0), animate=False, immediate=True, force=True
            )
        self.refresh()

    def select_row(self, index: int) -> None:
        """Select row ``index`` (clamped) and keep it in view: the stream stops following."""
        if not self.rows:
            return
        self.follow = False
        self._move_cursor(index)

    def drop_after(self, newest_seq: int | None) -> None:
        """Forget rows whose events the store let go to take older history (everything
        above ``newest_seq``, or every row when it holds nothing)."""
        rows = self.rows
        keep = 0 if newest_seq is None else bisect_right(rows, newest_seq)
        if keep >= len(rows):
            return
        del rows[keep:]
        if self.cursor is not None and self.cursor >= len(rows):
            self.cursor = len(rows) - 1 if rows else None
            self.post_message(EventSelected(self.selected_event))
        self._resize()
        self.refresh()

    def set_hint(self, hint: Text | None) -> None:
        """What to say while there is no event to show (e.g. "waiting for Redis ...")."""
        if hint is not None and self._hint is not None and hint.plain == self._hint.plain:
            return
        self._hint = hint
        self._hint_lines = []
        self.refresh()

    # -- reading ------------------------------------------------------------------------------

    @property
    def selected_seq(self) -> int | None:
        if self.cursor is None or not 0 <= self.cursor < len(self.rows):
            return None
        return self.rows[self.cursor]

    @property
    def selected_event(self) -> TelemetryEvent | None:
        seq = self.selected_seq
        return None if seq is None else self._lookup(seq)

    # -- drawing ------------------------------------------------------------------------------

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()

    def _resize(self) -> None:
        self.virtual_size = Size(self._layout.width, len(self.rows))

    def _measure(self, seqs: Sequence[int]) -> bool:
        """Widen the columns to what the events of ``seqs`` need (never narrower: rows do not
        jump while they arrive); returns whether the layout changed."""
        seen = self._seen
        for seq in seqs:
            seen = seen.grown(self._lookup(seq)) or seen
        if seen == self._seen:
            return False
        self._seen = seen
        layout = RowLayout.for_width(self._layout.width, seen)
        if layout == self._layout:
            return False
        self._layout = layout
        self._strips.clear()
        return True

    @property
    def row_layout(self) -> RowLayout:
        """The columns' widths (the data column's is ``data_w``)."""
        return self._layout

    def on_resize(self) -> None:
        width = max(self.scrollable_content_region.width, 20)
        if width != self._layout.width:
            self._layout = RowLayout.for_width(width, self._seen)
            self._strips.clear()
        self._resize()
        if self.follow:
            self._scroll_to_end()

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.scrollable_content_region.width
        base = self.rich_style
        if not self.rows and self._hint is not None:
            return self._hint_line(y, width)
        if index >= len(self.rows):
            return Strip.blank(width, base)
        if width != self._layout.width and width >= 20:
            # The scrollbar came or went (no resize event): the rows fit the room there is.
            self._layout = RowLayout.for_width(width, self._seen)
            self._strips.clear()
        seq = self.rows[index]
        is_cursor = index == self.cursor
        shift = self.shift if is_cursor else 0
        event = self._lookup(seq)
        # Its time before the row above's: arrival order, marked (the row above may change
        # when older rows come in among them, or the top ones go).
        earlier = index > 0 and self._lookup(self.rows[index - 1]).timestamp > event.timestamp
        key = (seq, is_cursor, shift, earlier)
        strip = self._strips.get(key)
        if strip is None:
            if self._measure((seq,)):
                self.call_after_refresh(self.refresh)  # the rows drawn before: again
            text = event_row(event, self._layout, shift, earlier=earlier)
            text.stylize_before(base)
            if is_cursor:
                cursor_style = self.get_component_rich_style("event-list--cursor")
                text.stylize(Style(bgcolor=cursor_style.bgcolor, bold=True))
            strip = Strip(text.render(self.app.console), text.cell_len)
            self._strips[key] = strip
        style = base
        if is_cursor:
            style = self.get_component_rich_style("event-list--cursor")
        return strip.crop_extend(scroll_x, scroll_x + width, style)

    def _hint_line(self, y: int, width: int) -> Strip:
        if self._hint is None:
            return Strip.blank(width, self.rich_style)
        if not self._hint_lines or self._hint_lines[0].cell_length != width:
            lines = self._hint.wrap(self.app.console, max(width - 2, 10))
            self._hint_lines = []
            for line in lines:
                padded = Text(" ", end="") + line
                padded.stylize_before(self.rich_style)
                strip = Strip(padded.render(self.app.console), padded.cell_len)
                self._hint_lines.append(strip.crop_extend(0, width, self.rich_style))
        row = y - 1  # one blank line above
        if 0 <= row < len(self._hint_lines):
            return self._hint_lines[row]
        return Strip.blank(width, self.rich_style)

    def watch_follow(self, follow: bool) -> None:
        self.set_class(not follow, "-paused")
        if follow:
            self.new_while_paused = 0
            self._scroll_to_end()
        self._update_subtitle()
        self.post_message(FollowChanged(follow))

    def watch_new_while_paused(self) -> None:
        self._update_subtitle()

    def set_closed(self, why: str | None) -> None:
        """The shown range ends in the past (``why`` says where, and how to follow again): the
        list stops following, and its subtitle says so; None: a list that was closed follows
        again."""
        was, self._range_closed = self._range_closed, why
        if why is not None:
            self.follow = False
        elif was is not None:
            self.follow = True
        self._update_subtitle()

    def _update_subtitle(self) -> None:
        if self._range_closed is not None and not self.follow:
            self.border_subtitle = self._range_closed
        elif self.follow:
            self.border_subtitle = "following"
        elif self.new_while_paused:
            self.border_subtitle = f"paused · {self.new_while_paused:,} new · f to follow"
        else:
            self.border_subtitle = "paused · f to follow"

    def _scroll_to_end(self) -> None:
        target = max(len(self.rows) - self._page_height(), 0)
        self.scroll_to(y=target, animate=False, immediate=True, force=True)

    def _page_height(self) -> int:
        return max(self.scrollable_content_region.height, 1)

    def _show_cursor(self) -> None:
        if self.cursor is None:
            return
        top = self.scroll_y
        height = self._page_height()
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True, force=True)
        elif self.cursor >= top + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False, immediate=True, force=True)

    def _move_cursor(self, index: int | None) -> None:
        if not self.rows:
            return
        old = self.cursor
        if index is not None:
            index = min(max(index, 0), len(self.rows) - 1)
        self.cursor = index
        if old != index:
            self.shift = 0
            self.refresh()
            self.post_message(EventSelected(self.selected_event))
        self._show_cursor()

    # -- actions ------------------------------------------------------------------------------

    def action_cursor(self, delta: int) -> None:
        if not self.rows:
            return
        if delta < 0 and self.cursor == 0:
            self.post_message(OlderWanted())
            return
        if self.cursor is None:
            # The first move selects the newest row on screen.
            target = min(int(self.scroll_y) + self._page_height(), len(self.rows)) - 1
        else:
            target = self.cursor + delta
        self.follow = False
        self._move_cursor(target)

    def action_page(self, direction: int) -> None:
        if not self.rows:
            return
        self.follow = False
        current = self.cursor if self.cursor is not None else len(self.rows) - 1
        if direction < 0 and current == 0:
            self.post_message(OlderWanted())
            return
        self._move_cursor(current + direction * self._page_height())

    def action_first(self) -> None:
        self.follow = False
        if self.cursor == 0:
            self.post_message(OlderWanted())
            return
        self._move_cursor(0)

    def action_follow(self) -> None:
        """Follow new events, the cursor on the newest row (End)."""
        self.follow = True
        if self.rows:
            self._move_cursor(len(self.rows) - 1)

    def action_shift(self, direction: int) -> None:
        """Scroll the selected row's data (→: further, ←: back), for a value longer than the
        column; the other rows stay put."""
        event = self.selected_event
        if event is None:
            self.notify("Select an event first (↑/↓ or a click).", severity="warning")
            return
        room = max(self._layout.data_w - 2, 8)
        full = len(data_summary(event.data, 100_000, readable=True))
        most = max(full - room, 0)
        step = max(room * 3 // 4, 8)  # a page of data, with some of the last in view
        shift = min(max(self.shift + direction * step, 0), most)
        if shift == self.shift:
            self.app.bell()
            return
        self.shift = shift
        self.refresh()

    def action_open_job(self) -> None:
        event = self.selected_event
        if event is None:
            self.notify("Select an event first (↑/↓ or a click).", severity="warning")
        elif not event.job_id:
            self.notify("This event has no job ID.", severity="warning")
        else:
            self.post_message(JobRequested(event.job_id))

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self.follow = False
        if self.rows and self.scroll_y <= 0:
            self.post_message(OlderWanted())

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        index = int(self.scroll_y) + offset.y
        if not 0 <= index < len(self.rows):
            return
        self.follow = False
        self._move_cursor(index)
        column = int(self.scroll_x) + offset.x
        clicked = self._lookup(self.rows[index])
        start = self._layout.job_start
        if clicked.job_id and start <= column < start + min(
            self._layout.job_w, len(clicked.job_id)
        ):
            self.post_message(JobRequested(clicked.job_id))


def _find(rows: list[int], value: int) -> int | None:
    index = bisect_left(rows, value)
    return index if index < len(rows) and rows[index] == value else None
