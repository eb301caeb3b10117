"""What the app shows, decided without Textual.

:class:`AppState` holds the events at hand (an :class:`~emp_tui.store.EventStore`), the filter
and the rows of the stream it selects, the jobs opened (the back stack of Esc), the open job's
timeline, the graph's scope and the figures of the status bar. The app feeds it events and
the user's requests, and shows what it answers; the app's widgets, messages and workers stay
in :mod:`emp_tui.app.app`. Rows are the store's sequence numbers, ascending (stream order).

Arriving events wait in a queue until :meth:`AppState.drain` (the app's frame timer) moves
them into the store and the rows at once, so ten thousand events a second cost a few dozen
screen updates.
"""

from __future__ import annotations

import time
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from emp_tui.analysis import (
    Comparison,
    HandoffEdge,
    Timeline,
    compare_with_usual,
    handoffs,
    job_timeline,
)
from emp_tui.events import TelemetryEvent
from emp_tui.query import Query, parse_query
from emp_tui.store import EventStore

__all__ = [
    "REFERENCE_JOBS",
    "AppState",
    "EmptyHint",
    "Figures",
    "GraphView",
    "Ingested",
    "narrows",
]

REFERENCE_JOBS = 200
"""How many recent other jobs a timeline's "slower than usual" compares with."""
COMPARE_JOBS = 2000
"""How many recent other jobs "compare with usual" looks among for jobs of the same type."""
RATE_WINDOW = 30
"""Seconds of events/s history kept for the sparkline."""
WARM_BUDGET = 20_000
"""At most this many events get their search text ready each second."""

Clock = Callable[[], float]
GraphScope = Literal["job", "all"]


def narrows(previous: Query, query: Query) -> bool:
    """Whether ``query`` is ``previous`` with more terms (every term must match, so it can
    only match fewer events). A relative ``until`` moves with the clock, so not then."""
    old = previous.text.strip()
    return (
        bool(old)
        and previous.until_ms is None
        and query.text.startswith(old)
        and query.text[len(old) : len(old) + 1].isspace()
    )


@dataclass(frozen=True)
class Ingested:
    """What a drain changed."""

    rows: list[int]
    """Rows the stream shows now and did not before (ascending)."""
    oldest: int | None
    """The oldest sequence number held: rows before it are gone."""
    job_changed: bool
    """The open job has new events: its timeline is out of date."""
    graph_changed: bool
    """The graph shows the filtered events and new ones match."""
    events: list[TelemetryEvent] = field(default_factory=list)
    """The events the store took (those it already held are not among them)."""


@dataclass(frozen=True)
class GraphView:
    """What the handoff graph shows in the current scope."""

    edges: list[HandoffEdge]
    nodes: list[str] | None
    """The box order (the open job's services), or None to let the graph choose."""
    detail: str
    """What the scope is: the job, or the filter."""


@dataclass(frozen=True)
class EmptyHint:
    """Why the stream shows nothing, for the app to word."""

    kind: Literal["unreachable", "connecting", "no_match", "connected", "empty"]
    source: str = ""
    error: str | None = None


@dataclass(frozen=True)
class Figures:
    """The status bar's figures about the events."""

    rates: tuple[int, ...]
    buffered: int
    shown: int
    malformed: int
    dropped: int


class AppState:
    """The events at hand and what of them the app shows.

    ``live``: the app reads a live stream, so "now" is the wall clock (``clock``); otherwise
    it is the newest event at hand."""

    def __init__(
        self, *, capacity: int, gap_ms: int, clock: Clock = time.time, live: bool = False
    ) -> None:
        self.store = EventStore(capacity)
        self.clock = clock
        self.live = live
        self.query: Query = parse_query("")
        self.rows: list[int] = []
        """What the stream shows: the sequence numbers of the events the filter matches."""
        self.gap_ms = gap_ms
        self.job_history: list[str] = []
        self.timeline: Timeline | None = None
        """The open job's timeline, as last built."""
        self.graph_scope: GraphScope = "job"
        self.corrupt = 0
        """Lines the sources skipped as unreadable (the store never saw them)."""
        self._pending: list[TelemetryEvent] = []
        self._arrived = 0
        self._rates: deque[int] = deque([0] * RATE_WINDOW, maxlen=RATE_WINDOW)
        self._unwarmed: deque[TelemetryEvent] = deque(maxlen=capacity)

    # -- the stream -----------------------------------------------------------------------

    def queue(self, events: Iterable[TelemetryEvent], *, live: bool = False) -> None:
        """Hold ``events`` for the next :meth:`drain`. ``live`` ones count towards the
        events/s rate (a backfill or a file does not)."""
        before = len(self._pending)
        self._pending.extend(events)
        if live:
            self._arrived += len(self._pending) - before

    @property
    def has_pending(self) -> bool:
        return bool(self._pending)

    def drain(self) -> Ingested:
        """Move the queued events into the store, and those the filter matches into the
        rows."""
        pending, self._pending = self._pending, []
        store = self.store
        fresh = store.add_many(pending)
        events = store.events(fresh)
        self._unwarmed.extend(events)
        query = self.query
        if query.is_empty:
            new_rows = fresh
        else:
            matches = query.matches
            new_rows = [seq for seq, event in zip(fresh, events, strict=True) if matches(event)]
        rows = self.rows
        oldest = store.oldest_seq
        if rows and oldest is not None and rows[0] < oldest:
            del rows[: bisect_left(rows, oldest)]
        if new_rows:
            later = not rows or new_rows[0] > rows[-1]
            rows.extend(new_rows)
            if not later:  # older events among those shown: two sorted runs to merge
                rows.sort()
        job = self.current_job
        return Ingested(
            rows=new_rows,
            oldest=oldest,
            job_changed=job is not None and any(event.job_id == job for event in events),
            graph_changed=bool(new_rows) and self.graph_scope == "all",
            events=events,
        )

    def parse(self, text: str) -> Query:
        """``text`` as a query (QueryError when it does not parse); relative times count
        from the clock."""
        return parse_query(text, now_ms=int(self.clock() * 1000))

    def apply(self, query: Query) -> None:
        """Filter with ``query``: the rows become the events it matches. Pending events are
        drained first."""
        if self._pending:
            self.drain()
        previous, self.query = self.query, query
        if narrows(previous, query):
            # Terms added to the query: only the events shown now can still match.
            self.rows = self.store.select(query, within=self.rows)
        else:
            self.rows = self.store.select(query)

    def shown_events(self) -> list[TelemetryEvent]:
        """The events the stream shows, oldest first."""
        return self.store.events(self.rows)

    def row_at(self, ms: int) -> int | None:
        """The row of the last event at or before ``ms`` (the first row when all are later;
        None when there are none). By timestamp: the rows are in stream order, so a service
        whose clock runs behind may put it a row or two off."""
        if not self.rows:
            return None
        event = self.store.event
        index = bisect_right(self.rows, ms, key=lambda seq: event(seq).timestamp)
        return max(index - 1, 0)

    # -- jobs -----------------------------------------------------------------------------

    @property
    def current_job(self) -> str | None:
        return self.job_history[-1] if self.job_history else None

    def open_job(self, job_id: str) -> Timeline:
        """Open ``job_id`` (on top of the back stack) and build its timeline."""
        if not self.job_history or self.job_history[-1] != job_id:
            self.job_history.append(job_id)
        return self._build_timeline(job_id)

    def back(self) -> str | None:
        """Close the open job; the one opened before it (its timeline rebuilt), if any."""
        if self.job_history:
            self.job_history.pop()
        self.refresh_timeline()
        return self.current_job

    def now_ms(self) -> int:
        """The wall clock while reading a live stream; otherwise the newest event at hand,
        so that a recording's jobs are silent (or stalled) relative to the rest of it."""
        if self.live or not self.store:
            return int(self.clock() * 1000)
        return self.store[-1].timestamp

    def refresh_timeline(self) -> Timeline | None:
        """Build the open job's timeline again (the events at hand or the threshold changed);
        None when no job is open."""
        job = self.current_job
        self.timeline = None if job is None else self._build_timeline(job)
        return self.timeline

    def _build_timeline(self, job_id: str) -> Timeline:
        """``job_id``'s timeline from the events at hand; "slower than usual" compares its
        steps with those of the most recent other jobs."""
        store = self.store
        reference: list[TelemetryEvent] = []
        for other in store.job_ids(REFERENCE_JOBS):
            if other != job_id:
                reference.extend(store.by_job(other))
        self.timeline = job_timeline(
            store.by_job(job_id),
            job_id,
            gap_ms=self.gap_ms,
            reference=reference,
            now_ms=self.now_ms(),
        )
        return self.timeline

    def compare_open_job(self) -> Comparison | None:
        """The open job beside typical jobs of its type among the recent ones at hand (its
        events as its timeline has them); None when no job is open."""
        job = self.current_job
        if job is None:
            return None
        timeline = self.timeline
        own = timeline.events if timeline is not None and timeline.job_id == job else []
        store = self.store
        reference: list[TelemetryEvent] = []
        for other in store.job_ids(COMPARE_JOBS):
            if other != job:
                reference.extend(store.by_job(other))
        return compare_with_usual(own or store.by_job(job), job, reference=reference)

    def timeline_ages(self) -> bool:
        """Whether the open timeline changes with the clock alone (a live job's silence)."""
        timeline = self.timeline
        return self.live and timeline is not None and timeline.silent_ms is not None

    # -- the graph ------------------------------------------------------------------------

    def graph_view(self) -> GraphView:
        """The handoffs of the open job, or of the events the filter shows."""
        if self.graph_scope == "job":
            job = self.current_job
            if job is None:
                return GraphView([], None, "no job open: Enter on an event, or j")
            nodes = self.timeline.services if self.timeline is not None else None
            return GraphView(handoffs(self.store.by_job(job)), nodes, job)
        query = self.query
        detail = "no filter" if query.is_empty else f"filter {query.text}"
        return GraphView(handoffs(self.shown_events()), None, detail)

    # -- what the status bar and an empty stream say ------------------------------------------

    def empty_hint(self, connection: str, source: str, error: str | None) -> EmptyHint:
        """Why the stream is empty, given the reader's ``connection`` state."""
        if connection in ("reconnecting", "disconnected"):
            return EmptyHint("unreachable", source, error)
        if connection == "connecting":
            return EmptyHint("connecting", source)
        if self.store and not self.query.is_empty:
            return EmptyHint("no_match")
        if connection == "connected":
            return EmptyHint("connected", source)
        return EmptyHint("empty")

    def figures(self) -> Figures:
        store = self.store
        return Figures(
            rates=tuple(self._rates),
            buffered=len(store),
            shown=len(self.rows),
            malformed=store.malformed + self.corrupt,
            dropped=store.evicted,
        )

    def tick(self) -> None:
        """Once a second: the events/s history moves on, and the search text of events that
        arrived gets ready (a few ms of work a second at 10k events/s), so that a free-text
        filter over everything held costs a lookup per event instead of building its text."""
        self._rates.append(self._arrived)
        self._arrived = 0
        unwarmed = self._unwarmed
        for _ in range(min(WARM_BUDGET, len(unwarmed))):
            unwarmed.popleft().search_text()
