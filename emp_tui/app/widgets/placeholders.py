"""Stand-ins for panes whose widgets are not mounted yet: they say what would be there."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class PanePlaceholder(Static, can_focus=True):
    def __init__(self, what: str, **kwargs: object) -> None:
        super().__init__(Text(what, "dim"), **kwargs)  # type: ignore[arg-type]
