"""The detail pane: the selected event's full JSON, highlighted, nothing in it interpreted."""

from __future__ import annotations

from rich.highlighter import JSONHighlighter
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from emp_tui.app.render import event_json
from emp_tui.events import TelemetryEvent
from emp_tui.text import inert

_HIGHLIGHT = JSONHighlighter()


class DetailPane(VerticalScroll, can_focus=True):
    """Shows one event. ``show(None)`` shows a hint instead."""

    DEFAULT_CSS = """
    DetailPane > Static { width: 1fr; }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.event: TelemetryEvent | None = None

    def compose(self) -> ComposeResult:
        yield Static(Text("Select an event in the stream (↑/↓, or a click).", "dim"))

    def show(self, event: TelemetryEvent | None) -> None:
        self.event = event
        body = self.query_one(Static)
        if event is None:
            body.update(Text("Select an event in the stream (↑/↓, or a click).", "dim"))
            self.border_subtitle = ""
            return
        text = Text(event_json(event))
        _HIGHLIGHT.highlight(text)
        body.update(text)
        self.border_subtitle = inert(f"{event.event_type} · y to copy", 60)
        self.scroll_home(animate=False)
