"""The comparison with usual: the open job beside typical jobs of its type (its steps against
the usual p50/p95, events missing or extra against the usual sequence, fields that differ).
The app builds the :class:`~emp_tui.analysis.Comparison`; the words come from
:func:`emp_tui.app.triage.comparison_lines`."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from emp_tui.analysis import Comparison
from emp_tui.app.triage import comparison_lines
from emp_tui.app.widgets.problems import line_text


class CompareView(VerticalScroll, can_focus=True):
    """Shows one :class:`Comparison` (``show(None)``: nothing)."""

    DEFAULT_CSS = """
    CompareView > Static { width: 1fr; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.comparison: Comparison | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="compare-body")

    def show(self, comparison: Comparison | None) -> None:
        self.comparison = comparison
        body = self.query_one("#compare-body", Static)
        if comparison is None:
            body.update(Text("No job open.", "dim"))
            return
        text = Text(no_wrap=True, overflow="ellipsis")
        for index, line in enumerate(comparison_lines(comparison)):
            if index:
                text.append("\n")
            text.append_text(line_text(line))
        body.update(text)
        self.scroll_home(animate=False)
