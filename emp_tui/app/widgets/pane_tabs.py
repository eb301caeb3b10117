"""The row of pane names shown on narrow terminals: the active one highlighted, each clickable;
then the problems found, counted by severity (a click shows them)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual import events
from textual.reactive import reactive
from textual.widget import Widget

from emp_tui.app.messages import PaneRequested

Badge = tuple[tuple[str, str], ...]
"""(inert text, style) parts."""


class PaneTabs(Widget):
    DEFAULT_CSS = """
    PaneTabs { height: 1; background: $panel; }
    """

    active: reactive[str] = reactive("")
    badge: reactive[Badge] = reactive((), always_update=True)
    """The problems' counts, shown after the tabs (``! ✖3 ▲2``)."""

    def __init__(self, panes: Sequence[str], **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.panes = list(panes)
        self.names = {pane: pane for pane in self.panes}

    def set_name(self, pane: str, name: str) -> None:
        """Call ``pane``'s tab ``name`` (pane 3 shows the timeline or the problems)."""
        if self.names.get(pane) != name:
            self.names[pane] = name
            self.refresh()

    def _labels(self) -> list[str]:
        return [f" {number} {self.names[pane]} " for number, pane in enumerate(self.panes, 1)]

    def render(self) -> Text:
        text = Text(no_wrap=True, end="")
        for name, label in zip(self.panes, self._labels(), strict=True):
            text.append(label, "reverse bold" if name == self.active else "dim")
            text.append(" ")
        if self.badge:
            text.append(" ! ", "bold")
            for part, style in self.badge:
                text.append(part, style or None)
        return text

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        start = 0
        for name, label in zip(self.panes, self._labels(), strict=True):
            if start <= offset.x < start + len(label):
                self.post_message(PaneRequested(name))
                return
            start += len(label) + 1
        if self.badge and offset.x >= start:
            self.post_message(PaneRequested("problems"))
