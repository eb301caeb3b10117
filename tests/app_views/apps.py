"""Tiny apps that host one widget each, recording the messages the widget posts."""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import App, ComposeResult
from textual.message import Message

from emp_tui.analysis import HandoffEdge, Timeline
from emp_tui.app.widgets.graph import HandoffGraph
from emp_tui.app.widgets.timeline import TimelineView


class TimelineApp(App[None]):
    """A TimelineView filling the screen."""

    def __init__(
        self,
        timeline: Timeline | None,
        *,
        job_id: str | None = None,
        gap_threshold_ms: int = 5_000,
    ) -> None:
        super().__init__()
        self.timeline = timeline
        self.job_id = job_id
        self.gap_threshold_ms = gap_threshold_ms
        self.posted: list[Message] = []

    def compose(self) -> ComposeResult:
        yield TimelineView(
            self.timeline,
            job_id=self.job_id,
            gap_threshold_ms=self.gap_threshold_ms,
            id="timeline",
        )

    def on_mount(self) -> None:
        self.query_one(TimelineView).focus()

    def on_timeline_view_event_selected(self, message: TimelineView.EventSelected) -> None:
        self.posted.append(message)

    def on_timeline_view_gap_threshold_changed(
        self, message: TimelineView.GapThresholdChanged
    ) -> None:
        self.posted.append(message)


class GraphApp(App[None]):
    """A HandoffGraph filling the screen."""

    def __init__(
        self,
        edges: Sequence[HandoffEdge],
        *,
        nodes: Sequence[str] | None = None,
        slow_ms: float = 5_000,
        detail: str = "",
    ) -> None:
        super().__init__()
        self.edges = list(edges)
        self.nodes = nodes
        self.slow_ms = slow_ms
        self.detail = detail
        self.posted: list[Message] = []

    def compose(self) -> ComposeResult:
        yield HandoffGraph(
            self.edges, nodes=self.nodes, slow_ms=self.slow_ms, detail=self.detail, id="graph"
        )

    def on_mount(self) -> None:
        self.query_one(HandoffGraph).focus()

    def on_handoff_graph_scope_toggled(self, message: HandoffGraph.ScopeToggled) -> None:
        self.posted.append(message)
