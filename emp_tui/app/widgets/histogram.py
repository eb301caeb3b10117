"""A one-line histogram of the events the filter shows over the loaded span (lnav's and
Kibana's habit): a burst of failures and its window are seen at a glance. Slices with errors
are drawn in the error colour; the slice of the selected event is drawn reversed; the span's
ends are labelled.

The app gives the strip a function that computes the :class:`~emp_tui.analysis.Histogram` for
a number of slices (the state's), says when the events changed (:meth:`TimeStrip.invalidate`)
and where the cursor is (:meth:`TimeStrip.mark`); the strip asks again when its width
changes."""

from __future__ import annotations

from collections.abc import Callable

from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from emp_tui.analysis import Histogram
from emp_tui.app.style import ERROR_COLOR, MUTED_COLOR
from emp_tui.text import clock

_BARS = " ▁▂▃▄▅▆▇█"
_LABEL = 8  # HH:MM:SS


class TimeStrip(Widget):
    """Counts of the shown events over time, one cell a slice."""

    DEFAULT_CSS = """
    TimeStrip { height: 1; padding: 0 1; background: $panel; }
    """

    def __init__(
        self, compute: Callable[[int], Histogram | None], *, id: str | None = None
    ) -> None:
        super().__init__(id=id)
        self._compute = compute
        self.histogram: Histogram | None = None
        self.cursor_ms: int | None = None
        self._stale = True

    def buckets(self) -> int:
        """How many slices fit between the two time labels."""
        return max(self.content_size.width - 2 * (_LABEL + 1), 4)

    def invalidate(self) -> None:
        """The events changed: count them again when next drawn."""
        self._stale = True
        self.refresh()

    def on_resize(self) -> None:
        self.invalidate()

    def mark(self, ms: int | None) -> None:
        if ms != self.cursor_ms:
            self.cursor_ms = ms
            self.refresh()

    def render(self) -> Text:
        if self._stale or (
            self.histogram is not None and len(self.histogram.counts) != self.buckets()
        ):
            self.histogram = self._compute(self.buckets())
            self._stale = False
        hist = self.histogram
        text = Text(no_wrap=True, end="")
        if hist is None or not hist.counts:
            text.append("no events loaded", MUTED_COLOR)
            return text
        text.append(clock(hist.since_ms)[:_LABEL] + " ", MUTED_COLOR)
        top = max(hist.counts)
        last = len(_BARS) - 1
        cursor = None if self.cursor_ms is None else hist.bucket_of(self.cursor_ms)
        for index, (count, errors) in enumerate(zip(hist.counts, hist.errors, strict=True)):
            level = 0 if not count else max(1, round(count / top * last)) if top else 0
            style = Style(color=ERROR_COLOR, bold=True) if errors else Style(color="grey70")
            if index == cursor:
                style += Style(reverse=True)
                char = _BARS[max(level, 1)]
            else:
                char = _BARS[level]
            text.append(char, style)
        text.append(" " + clock(hist.until_ms)[:_LABEL], MUTED_COLOR)
        return text
