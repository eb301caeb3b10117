"""The row of pane names shown on narrow terminals: the active one highlighted, each clickable."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual import events
from textual.reactive import reactive
from textual.widget import Widget

from emp_tui.app.messages import PaneRequested


class PaneTabs(Widget):
    DEFAULT_CSS = """
    PaneTabs { height: 1; background: $panel; }
    """

    active: reactive[str] = reactive("")

    def __init__(self, panes: Sequence[str], **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.panes = list(panes)

    def _labels(self) -> list[str]:
        return [f" {number} {name} " for number, name in enumerate(self.panes, 1)]

    def render(self) -> Text:
        text = Text(no_wrap=True, end="")
        for name, label in zip(self.panes, self._labels(), strict=True):
            text.append(label, "reverse bold" if name == self.active else "dim")
            text.append(" ")
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
