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
    Histogram,
    Timeline,
    compare_with_usual,
    handoffs,
    histogram,
    job_timeline,
    missing_start,
)
from emp_tui.events import TelemetryEvent
from emp_tui.history import Holdings, JobHistory, Span, TimeRange, event_ms
from emp_tui.history import now_ms as history_now_ms
from emp_tui.query import TIME_FORMS, Query, parse_duration_ms, parse_query, parse_time_ms
from emp_tui.sources import merge
from emp_tui.store import EventStore

__all__ = [
    "REFERENCE_JOBS",
    "WINDOW_STEPS_MS",
    "AppState",
    "EmptyHint",
    "Figures",
    "GraphView",
    "Ingested",
    "JobView",
    "LoadPlan",
    "Progress",
    "RangeView",
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

PAGE_BEFORE = 5000
"""Events a step above the oldest one loaded brings in."""
KEPT_JOBS = 20
"""Whole jobs fetched from the sources that are kept (the back stack's)."""
WINDOW_STEPS_MS = (
    5 * 60_000,
    15 * 60_000,
    30 * 60_000,
    3_600_000,
    2 * 3_600_000,
    6 * 3_600_000,
    12 * 3_600_000,
    86_400_000,
    7 * 86_400_000,
)
"""The widths ``[`` and ``]`` step the range through; past the last, everything held."""

Clock = Callable[[], float]
GraphScope = Literal["job", "all"]
Source = Literal["stream", "logs"]
PlanKind = Literal["fresh", "add", "before"]


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
    newest: int | None
    """The newest sequence number held: rows after it are gone (a page of older history
    came in and the newest went)."""
    job_changed: bool
    """The open job has new events: its timeline is out of date."""
    graph_changed: bool
    """The graph shows all jobs (those the filter matches) and new events may change it."""
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
class LoadPlan:
    """A read of the sources the app needs to show a range: ``kind`` is a ``fresh`` start
    (what is held goes first), an ``add`` of what the range holds beyond what is held (its
    older part, or the newer part the app did not take while it looked at the past), or the
    page ``before`` the oldest event held (which lets the newest go when the store is
    full)."""

    kind: PlanKind
    since_ms: int | None
    until_ms: int | None
    limit: int
    keep: Literal["newest", "oldest"]
    generation: int
    sources: tuple[Source, ...]


@dataclass
class Progress:
    """How far one source's part of a load has got."""

    read: int = 0
    total: int | None = None
    """What the source holds in the range, when it can say (the stream)."""
    exact: bool = False
    reached_ms: int | None = None
    done: bool = False
    cut: bool = False
    """Stopped at the memory cap with more of the range left."""
    error: str | None = None


@dataclass(frozen=True)
class RangeView:
    """What the status line says about the range: what is loaded beside what the sources
    hold, a load under way, what the cap left out, and whether the live tail is held back."""

    loaded: int
    first_ms: int | None
    last_ms: int | None
    """The loaded span (the oldest and newest event held)."""
    since_ms: int | None
    until_ms: int | None
    """The range asked for."""
    now_ms: int
    stream: Span | None
    logs: Span | None
    loading: int | None
    """Events read so far by a load under way (None: none)."""
    loading_total: int | None
    loading_exact: bool
    loading_percent: int | None
    """For sources that cannot count ahead (files): how far back in time it has got."""
    left_out: int | None
    """Events of the range the cap left out (estimated), or -1 when unknown how many."""
    capacity: int
    partial: bool
    """The sources hold events outside what is loaded, so a filter without time bounds
    answers for the loaded range only."""
    held_back: int | None
    """The app looks at the past: live events are not taken (this many so far); None when
    following."""
    closed_by_filter: bool
    full: bool = True
    """The store holds its capacity (else the events left out are older ones the range's
    first read did not take, ``first_load``: they come a page at a time from the top)."""


@dataclass(frozen=True)
class JobView:
    """The open job: whether its whole story has come from the sources yet, and whether they
    may lack its start."""

    job_id: str
    fetched: bool
    events: int
    missing_start_ms: int | None
    """Its first event came this long after the sources begin, and is not its creation: its
    earlier events may have been trimmed away (None: nothing to say)."""
    sources_start_ms: int | None
    notes: tuple[str, ...] = ()


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
        self,
        *,
        capacity: int,
        gap_ms: int,
        clock: Clock = time.time,
        live: bool = False,
        sources: tuple[Source, ...] = (),
        window_ms: int = 15 * 60_000,
        first_load: int | None = None,
    ) -> None:
        self.store = EventStore(capacity)
        self.first_load = capacity if first_load is None else max(1, min(first_load, capacity))
        """How many events a range's first read takes (its newest); older ones come a page
        at a time from the top of the stream (plan_before), up to the capacity."""
        self.clock = clock
        self.live = live
        self.blind_since_ms: int | None = None
        """When the live stream stopped answering (None while it answers): "now" stays there,
        so that its silence is not taken for the services' (stalled jobs, a silent platform)."""
        self.sources: tuple[Source, ...] = sources
        """What the app reads: the stream, the logs, both, or neither (events are given)."""
        self.window_ms = window_ms
        self.holdings = Holdings()
        """What the sources hold, as last heard."""
        self.base_range: TimeRange | None = None
        """The range asked for by the settings and ``[``/``]`` (None: not decided yet); the
        filter's ``since:``/``until:`` stand in for it while present."""
        self.covered: TimeRange | None = None
        """What the store holds of the sources completely (None: nothing loaded yet)."""
        self.plan: LoadPlan | None = None
        self.progress: dict[Source, Progress] = {}
        self.generation = 0
        self.left_out: int | None = None
        """Events of the range the cap left out (estimated; -1: some, how many unknown)."""
        self.newest_gone = False
        """A page of older history pushed the newest events out: the live tail is held back
        until the newest are loaded again."""
        self.held_back = 0
        self.jobs: dict[str, JobHistory] = {}
        """Whole jobs fetched from the sources (the open one's and the back stack's)."""
        self.query: Query = parse_query("")
        self.found_span: tuple[str, TimeRange] | None = None
        """A filter naming IDs and where its events lie in the logs, when that is outside
        what the store holds: the range shown while that filter stands."""
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
        self._pending_older: list[TelemetryEvent] = []
        self._arrived = 0
        self._rates: deque[int] = deque([0] * RATE_WINDOW, maxlen=RATE_WINDOW)
        self._unwarmed: deque[TelemetryEvent] = deque(maxlen=capacity)

    # -- the stream -----------------------------------------------------------------------

    def queue(self, events: Iterable[TelemetryEvent], *, live: bool = False) -> None:
        """Hold ``events`` for the next :meth:`drain`. ``live`` ones count towards the
        events/s rate (a backfill or a file does not); while the app looks at the past
        (:attr:`detached`) they are counted and not taken: the newest are loaded again
        when it comes back."""
        before = len(self._pending)
        if live and self.detached:
            count = sum(1 for _ in events)
            self.held_back += count
            self._arrived += count
            return
        self._pending.extend(events)
        if live:
            self._arrived += len(self._pending) - before

    @property
    def has_pending(self) -> bool:
        return bool(self._pending or self._pending_older)

    def drain(self) -> Ingested:
        """Move the queued events into the store, and those the filter matches into the
        rows."""
        pending, self._pending = self._pending, []
        older, self._pending_older = self._pending_older, []
        store = self.store
        fresh = store.add_many(pending)
        if older:
            newest_before = store.newest_seq
            fresh_older = store.add_many(older, keep="oldest")
            newest_after = store.newest_seq
            if newest_before is not None and newest_after is not None:
                if newest_after < newest_before:
                    self.newest_gone = True
                fresh = [seq for seq in fresh if seq <= newest_after]
            fresh = sorted({*fresh, *fresh_older})
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
        newest = store.newest_seq
        if rows and oldest is not None and rows[0] < oldest:
            del rows[: bisect_left(rows, oldest)]
        if rows and newest is not None and rows[-1] > newest:
            del rows[bisect_left(rows, newest + 1) :]
        if new_rows:
            later = not rows or new_rows[0] > rows[-1]
            rows.extend(new_rows)
            if not later:  # older events among those shown: two sorted runs to merge
                rows.sort()
        job = self.current_job
        return Ingested(
            rows=new_rows,
            oldest=oldest,
            newest=newest,
            job_changed=job is not None and any(event.job_id == job for event in events),
            # All jobs with a filter: the jobs it matches, whole, so an event of one of them
            # that the filter does not match changes the graph too (redrawn once a second).
            graph_changed=self.graph_scope == "all"
            and (bool(new_rows) or any(event.job_id for event in events)),
            events=events,
        )

    def parse(self, text: str) -> Query:
        """``text`` as a query (QueryError when it does not parse); relative times count
        from "now" (:meth:`now_ms`)."""
        return parse_query(text, now_ms=self.now_ms())

    def apply(self, query: Query) -> None:
        """Filter with ``query``: the rows become the events it matches among those held.
        Pending events are drained first. A range that ends in the past stops the taking of
        live events (see :attr:`detached`); :meth:`plan_for` says what to read for it."""
        if self.has_pending:
            self.drain()
        was_detached = self.detached
        if self.found_span is not None and self.found_span[0] != query.text:
            self.found_span = None
        previous, self.query = self.query, query
        if self.detached and not was_detached and self.covered is not None:
            self._close_coverage()
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

    def export_events(self) -> list[TelemetryEvent]:
        """What an export of the filter writes: the events shown, except that a filter that
        names jobs whose whole story was fetched takes their events from it (a job is always
        whole, also where the store holds only part of it)."""
        query = self.query
        if query.job_ids and all(job in self.jobs for job in query.job_ids):
            events = merge(*(self.job_events(job) for job in sorted(query.job_ids)))
            return [event for event in events if query.matches(event)]
        return self.shown_events()

    # -- the range of history -------------------------------------------------------------

    def set_holdings(self, *, stream: Span | None = None, logs: Span | None = None) -> None:
        """What a source holds now (the other source's stays as it was)."""
        self.holdings = Holdings(
            stream if stream is not None else self.holdings.stream,
            logs if logs is not None else self.holdings.logs,
        )

    def resolve_range(
        self, since: str | None = None, until: str | None = None, window: str | None = None
    ) -> TimeRange:
        """The range the settings ask for: ``since``/``until`` as the query language writes
        times (relative ones count from "now"), else the last ``window`` (or
        :attr:`window_ms`) of what the sources hold: up to the newest event they hold, so
        that a stream quiet for an hour opens on its last minutes, not on nothing. Raises
        ValueError for a time or window that does not read."""
        now = self.now_ms()
        window_ms = self.window_ms
        if window:
            parsed = parse_duration_ms(window)
            if parsed is None:
                raise ValueError(f"bad window {window!r}: use e.g. 15m, 2h, 1d")
            window_ms = parsed
        until_ms = None
        if until:
            until_ms = parse_time_ms(until, now)
            if until_ms is None:
                raise ValueError(f"bad --until {until!r}: use {TIME_FORMS}")
        if since:
            since_ms = parse_time_ms(since, now)
            if since_ms is None:
                raise ValueError(f"bad --since {since!r}: use {TIME_FORMS}")
        else:
            anchor = until_ms if until_ms is not None else self.holdings.last_ms
            since_ms = (now if anchor is None else anchor) - window_ms
        if until_ms is not None and since_ms > until_ms:
            raise ValueError("--since is later than --until")
        self.window_ms = window_ms
        return TimeRange(since_ms, until_ms)

    def effective_range(self, query: Query | None = None) -> TimeRange | None:
        """The range the app shows: the filter's ``since:``/``until:`` where it has them,
        else the base range (None: not decided yet)."""
        query = self.query if query is None else query
        base = self.base_range
        found = self._found_for(query)
        if found is not None:
            return found
        if base is None and query.since_ms is None and query.until_ms is None:
            return None
        since = query.since_ms
        if since is None and base is not None:
            since = base.since_ms
        until = query.until_ms
        if until is None and base is not None:
            until = base.until_ms
        return TimeRange(since, until)

    def base_until_ms(self) -> int | None:
        """Where the base range ends (``--until``) when that is what ends the range shown
        (no ``until:`` in the filter, no job's span found in the logs); else None."""
        base = self.base_range
        if base is None or self.query.until_ms is not None or self._found_for(self.query):
            return None
        return base.until_ms

    def _found_for(self, query: Query) -> TimeRange | None:
        """The span the logs' search found for ``query``'s IDs, while it is the filter's."""
        found = self.found_span
        return found[1] if found is not None and found[0] == query.text else None

    def seeks_ids(self, query: Query) -> bool:
        """Whether the logs are to be searched for ``query``'s events: it names IDs (the
        log index finds their lines) and no time, and the store does not hold every event
        of the logs."""
        if "logs" not in self.sources or not query.required_literals():
            return False
        if query.since_ms is not None or query.until_ms is not None:
            return False
        logs, held = self.holdings.logs, self.covered
        if logs is None or logs.first_ms is None:
            return False
        whole = (
            held is not None
            and self.left_out is None
            and held.covers(TimeRange(logs.first_ms, logs.last_ms))
        )
        return not whole

    def ids_found(self, text: str, span: TimeRange | None) -> TimeRange | None:
        """The logs' search for the filter ``text`` found its events in ``span``: the range
        to load when it lies outside what the store holds (the filter still standing);
        None when there is nothing to load."""
        if span is None or text != self.query.text:
            return None
        held = self.covered
        if held is not None and self.left_out is None and held.covers(span):
            return None
        self.found_span = (text, span)
        return span

    @property
    def detached(self) -> bool:
        """The app looks at the past: the range ends before now, or a page of older history
        pushed the newest events out. Live events are then counted, not taken."""
        if self.newest_gone:
            return True
        target = self.effective_range()
        return (
            target is not None and target.until_ms is not None and target.until_ms < self.now_ms()
        )

    def widen(self, direction: int) -> TimeRange | None:
        """The base range one step wider (``direction`` 1) or narrower (-1) in
        :data:`WINDOW_STEPS_MS`, ending where it ends; the widest step is everything the
        sources hold. None when there is no step further that way."""
        base = self.base_range
        if base is None:
            return None
        end = base.until_ms if base.until_ms is not None else self.holdings.last_ms
        end = self.now_ms() if end is None else end
        width = None if base.since_ms is None else end - base.since_ms
        steps = WINDOW_STEPS_MS
        if direction > 0:
            if width is None:
                return None
            wider = [ms for ms in steps if ms > width + 1000]
            since = end - wider[0] if wider else None
        else:
            narrower = [ms for ms in steps if width is None or ms < width - 1000]
            if not narrower:
                return None
            since = end - narrower[-1]
        return TimeRange(since, base.until_ms)

    def plan_for(
        self, target: TimeRange, sources: tuple[Source, ...] | None = None
    ) -> LoadPlan | None:
        """What must be read from ``sources`` (default: all of the app's) to show ``target``,
        given what the store holds completely; None when nothing: it holds the range, or is
        full of the range's newest events already (the cap keeps the newest)."""
        sources = self.sources if sources is None else sources
        if not sources:
            return None
        capacity = self.store.capacity
        held = self.covered
        if held is None or not self.store:
            return self._plan(
                "fresh", target.since_ms, target.until_ms, self.first_load, "newest", sources
            )
        if held.covers(target):
            return None
        low_ok = held.since_ms is None or (
            target.since_ms is not None and target.since_ms >= held.since_ms
        )
        high_ok = held.until_ms is None or (
            target.until_ms is not None and target.until_ms <= held.until_ms
        )
        overlaps = (
            target.until_ms is None or held.since_ms is None or target.until_ms >= held.since_ms
        ) and (held.until_ms is None or target.since_ms is None or target.since_ms <= held.until_ms)
        if overlaps and high_ok and held.since_ms is not None:
            room = capacity - len(self.store)
            if room <= 0:
                return None
            return self._plan("add", target.since_ms, held.since_ms - 1, room, "newest", sources)
        if overlaps and low_ok and held.until_ms is not None:
            self.newest_gone = False
            return self._plan("add", held.until_ms, target.until_ms, capacity, "newest", sources)
        return self._plan(
            "fresh", target.since_ms, target.until_ms, self.first_load, "newest", sources
        )

    def plan_source(self, source: Source, target: TimeRange) -> LoadPlan:
        """Read ``target`` from one source that the range's load went without (the stream,
        when Redis answered only after the logs had been read)."""
        return self._plan(
            "add" if self.store else "fresh",
            target.since_ms,
            target.until_ms,
            self.store.capacity if self.store else self.first_load,
            "newest",
            (source,),
        )

    def plan_before(self) -> LoadPlan | None:
        """The page before the oldest event held (a step above the top of the stream); None
        when the sources hold nothing older, or a load is under way. Events held from before
        what the store holds completely (a filter's events found in the logs, shown ahead of
        their time's load) do not count: the page is the one before that."""
        if not self.sources or self.loading or not self.store:
            return None
        oldest = event_ms(self.store[0])
        start = self.holdings.first_ms
        if self.covered is not None:
            if self.covered.since_ms is None:
                return None
            oldest = max(oldest, self.covered.since_ms)
        if start is not None and oldest <= start:
            return None
        limit = min(PAGE_BEFORE, max(1, self.store.capacity // 2))  # half the store at most
        return self._plan("before", None, oldest, limit, "oldest", self.sources)

    def _plan(
        self,
        kind: PlanKind,
        since_ms: int | None,
        until_ms: int | None,
        limit: int,
        keep: Literal["newest", "oldest"],
        sources: tuple[Source, ...],
    ) -> LoadPlan:
        """Start a load: what is read from now on belongs to it (older ones are ignored)."""
        self.generation += 1
        plan = LoadPlan(kind, since_ms, until_ms, limit, keep, self.generation, sources)
        self.plan = plan
        if kind == "fresh":
            self.store.clear()
            self.rows = []
            self._pending.clear()
            self._pending_older.clear()
            self.covered = None
            self.left_out = None
            self.newest_gone = False
            self.held_back = 0
        self.progress = {}
        for source in sources:
            span = self.holdings.stream if source == "stream" else self.holdings.logs
            total, exact = (0, False) if span is None else span.estimate(since_ms, until_ms)
            self.progress[source] = Progress(
                total=total if span and span.count is not None else None, exact=exact
            )
        return plan

    @property
    def loading(self) -> bool:
        return any(not p.done for p in self.progress.values())

    def loaded_page(
        self,
        generation: int,
        source: Source,
        events: list[TelemetryEvent],
        read: int,
        reached_ms: int | None,
    ) -> bool:
        """A page of a load came; whether it belongs to the load under way (if not, it is
        ignored)."""
        plan = self.plan
        progress = self.progress.get(source)
        if plan is None or generation != plan.generation or progress is None or progress.done:
            return False
        if plan.keep == "oldest":
            self._pending_older.extend(events)
        else:
            self._pending.extend(events)
        progress.read = read
        progress.reached_ms = reached_ms
        return True

    def loaded_all(
        self,
        generation: int,
        source: Source,
        *,
        read: int,
        reached_ms: int | None,
        cut: bool,
        error: str | None = None,
    ) -> bool:
        """A source's part of a load ended (``cut``: at the cap, or cancelled, with more of
        the range left; ``error``: it failed). Once every source's has, what the store
        holds completely is known. Whether it belonged to the load under way."""
        plan = self.plan
        progress = self.progress.get(source)
        if plan is None or generation != plan.generation or progress is None or progress.done:
            return False  # a load replaced or stopped (Esc) meanwhile
        progress.read, progress.reached_ms, progress.cut = read, reached_ms, cut
        progress.error, progress.done = error, True
        if not self.loading:
            if self.has_pending:  # the app drains first, to show what the drain changes
                self.drain()
            self._finish(plan)
        return True

    def cancel_load(self) -> bool:
        """Esc while loading: what was read stays, the rest is not read. Whether a load was
        under way."""
        plan = self.plan
        if plan is None or not self.loading:
            return False
        for progress in self.progress.values():
            if not progress.done:
                progress.done, progress.cut = True, True
        if self.has_pending:
            self.drain()
        self._finish(plan)
        return True

    def _finish(self, plan: LoadPlan) -> None:
        """What the store holds completely, after ``plan``: from where the read got down to
        (the range's start, or just above where the cap or Esc stopped it) up to its end,
        joined to what it held before."""
        low = plan.since_ms
        stopped = [
            p.reached_ms for p in self.progress.values() if p.cut and p.reached_ms is not None
        ]
        if stopped:
            low = max(stopped) + 1
        read = sum(p.read for p in self.progress.values())
        if plan.kind == "before":
            if not stopped and read < plan.limit:
                low = None  # the page came up short: the sources hold nothing older
                self.left_out = None
            elif self.left_out is not None and self.left_out > 0:
                self.left_out = max(1, self.left_out - read)  # still an estimate
        else:
            self.left_out = self._left_out(plan, low) if stopped and low is not None else None
        held = self.covered
        if plan.kind == "fresh" or held is None:
            self.covered = TimeRange(low, plan.until_ms)
        else:
            since = None if low is None or held.since_ms is None else min(low, held.since_ms)
            until = (
                None
                if plan.until_ms is None or held.until_ms is None
                else max(plan.until_ms, held.until_ms)
            )
            self.covered = TimeRange(since, until)
        if self.newest_gone:
            self._close_coverage()

    def _close_coverage(self) -> None:
        """The store stops taking live events: it holds the sources completely up to its
        newest event only."""
        held = self.covered
        if held is None or not self.store:
            return
        newest = event_ms(self.store[-1])
        until = newest if held.until_ms is None else min(held.until_ms, newest)
        self.covered = TimeRange(held.since_ms, until)

    def _left_out(self, plan: LoadPlan, low: int) -> int:
        """How many of the range's events the cut left out: the stream can say (from its
        count); for files, the rate of what was read over the time not reached."""
        counted = [p for p in self.progress.values() if p.total is not None]
        if counted and len(counted) == len(self.progress):
            missing = sum((p.total or 0) - p.read for p in counted)
            if missing > 0:
                return missing
        newest = plan.until_ms if plan.until_ms is not None else self.holdings.last_ms
        read = sum(p.read for p in self.progress.values())
        if plan.since_ms is None or newest is None or newest <= low:
            return -1
        return max(0, round(read * (low - plan.since_ms) / (newest - low)))

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
        """The one rule (:func:`emp_tui.history.now_ms`): the wall clock while reading a live
        stream (the moment it stopped answering, while it does not); otherwise the newest
        event the sources hold (the newest at hand when they have not said), so that a
        recording's jobs are silent (or stalled) relative to the rest of it."""
        if not self.live and self.holdings.newest_ms is None and self.store:
            return self.store[-1].timestamp
        now = history_now_ms(live=self.live, holdings=self.holdings, clock=self.clock)
        if self.live and self.blind_since_ms is not None:
            return min(now, self.blind_since_ms)
        return now

    def problems_scope(self) -> tuple[TimeRange | None, int]:
        """What the problem finder is held to and when it judges: the range the app shows
        when the events at hand reach beyond it (a filter's ``since:``/``until:``, a job
        found in the logs) or it lies in the past, else None; and "now" (:meth:`now_ms`),
        or while the app looks at the past, the end of what it looks at, so that a job that
        went on after the range is not taken for stalled for the hours since."""
        now = self.now_ms()
        target = self.effective_range()
        store = self.store
        within = None
        detached = self.detached
        if target is not None and store:
            first, last = event_ms(store[0]), event_ms(store[-1])
            if (
                detached
                or (target.since_ms is not None and target.since_ms > first)
                or (target.until_ms is not None and target.until_ms < last)
            ):
                within = target  # and the view names it
        if not detached:
            return within, now
        if target is not None and target.until_ms is not None:
            return within, min(now, target.until_ms)
        return within, event_ms(store[-1]) if store else now

    def refresh_timeline(self) -> Timeline | None:
        """Build the open job's timeline again (the events at hand or the threshold changed);
        None when no job is open."""
        job = self.current_job
        self.timeline = None if job is None else self._build_timeline(job)
        return self.timeline

    def job_events(self, job_id: str) -> list[TelemetryEvent]:
        """All of ``job_id``'s events known: those fetched whole from the sources with those
        held (the live tail's since), each once, in stream order."""
        fetched = self.jobs.get(job_id)
        held = self.store.by_job(job_id)
        if fetched is None:
            return held
        if not held:
            return list(fetched.events)
        return merge(fetched.events, held)

    def job_fetched(self, job: JobHistory) -> bool:
        """The whole of a job came from the sources; whether it is the open job (its
        timeline is rebuilt from it)."""
        self.jobs[job.job_id] = job
        if len(self.jobs) > KEPT_JOBS:
            wanted = set(self.job_history)
            for other in list(self.jobs):
                if len(self.jobs) <= KEPT_JOBS:
                    break
                if other not in wanted:
                    del self.jobs[other]
        if job.job_id == self.current_job:
            self.refresh_timeline()
            return True
        return False

    def job_view(self) -> JobView | None:
        """What the timeline's header says about the open job's completeness."""
        job_id = self.current_job
        if job_id is None:
            return None
        fetched = self.jobs.get(job_id)
        timeline = self.timeline
        events = timeline.events if timeline is not None else []
        start = self.holdings.first_ms
        whole = fetched is not None or not self.sources  # no source: what is given is all
        return JobView(
            job_id=job_id,
            fetched=whole,
            events=len(events),
            missing_start_ms=missing_start(events, start) if whole else None,
            sources_start_ms=start,
            notes=fetched.notes if fetched is not None else (),
        )

    def _build_timeline(self, job_id: str) -> Timeline:
        """``job_id``'s timeline from all its events known (:meth:`job_events`); "slower
        than usual" compares its steps with those of the most recent other jobs held."""
        store = self.store
        reference: list[TelemetryEvent] = []
        for other in store.job_ids(REFERENCE_JOBS):
            if other != job_id:
                reference.extend(store.by_job(other))
        self.timeline = job_timeline(
            self.job_events(job_id),
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
        if not self.live or self.blind_since_ms is not None:
            return False
        return timeline is not None and timeline.silent_ms is not None

    # -- the graph ------------------------------------------------------------------------

    def graph_view(self) -> GraphView:
        """The handoffs of the open job, or of the events the filter shows."""
        if self.graph_scope == "job":
            job = self.current_job
            if job is None:
                return GraphView([], None, "no job open: Enter on an event, or j")
            nodes = self.timeline.services if self.timeline is not None else None
            return GraphView(handoffs(self.job_events(job)), nodes, job)
        query = self.query
        if query.is_empty:
            return GraphView(handoffs(self.store), None, "no filter")
        return GraphView(handoffs(self.matching_jobs_events()), None, f"jobs matching {query.text}")

    def jump_candidates(
        self, selected: TelemetryEvent | None, problem_jobs: Iterable[str]
    ) -> tuple[list[str], dict[str, str]]:
        """The jobs the jump dialog offers, the likeliest first: the selected event's job and
        the open one, the jobs the Problems view names, then those held, the most recent
        first; and why the first ones are there."""
        reasons: dict[str, str] = {}
        if selected is not None and selected.job_id:
            reasons[selected.job_id] = "selected event"
        if self.current_job:
            reasons.setdefault(self.current_job, "open")
        for job in problem_jobs:
            reasons.setdefault(job, "problem")
        recent = self.store.job_ids()
        return list(dict.fromkeys([*reasons, *recent])), reasons

    def histogram(self, buckets: int) -> Histogram | None:
        """The events the filter shows in ``buckets`` slices of the loaded span (None while
        nothing is loaded)."""
        store = self.store
        if not store:
            return None
        since, until = event_ms(store[0]), event_ms(store[-1])
        return histogram(self.shown_events(), since, until, buckets)

    def matching_jobs_events(self) -> list[TelemetryEvent]:
        """Every held event of the jobs that have an event the filter shows: ``level:error``
        gives the whole journeys of the jobs with an error, whose handoffs carry them."""
        jobs = dict.fromkeys(e.job_id for e in self.shown_events() if e.job_id)
        events: list[TelemetryEvent] = []
        for job in jobs:
            events.extend(self.store.by_job(job))
        return events

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

    def range_view(self) -> RangeView:
        """What the status line says about the range and the sources."""
        store = self.store
        target = self.effective_range()
        loading = total = percent = None
        exact = True
        if self.loading:
            loading = sum(p.read for p in self.progress.values())
            totals = [p for p in self.progress.values() if p.total is not None]
            if totals and len(totals) == len(self.progress):
                total = sum(p.total or 0 for p in totals)
                exact = all(p.exact for p in totals)
            else:
                percent = self._percent()
        stream, logs = self.holdings.stream, self.holdings.logs
        oldest_held = self.holdings.first_ms
        covered = self.covered
        partial = bool(store) and (
            covered is None
            or (
                covered.since_ms is not None
                and oldest_held is not None
                and oldest_held < covered.since_ms
            )
            or self.left_out is not None
        )
        return RangeView(
            loaded=len(store),
            first_ms=event_ms(store[0]) if store else None,
            last_ms=event_ms(store[-1]) if store else None,
            since_ms=target.since_ms if target is not None else None,
            until_ms=target.until_ms if target is not None else None,
            now_ms=self.now_ms(),
            stream=stream,
            logs=logs,
            loading=loading,
            loading_total=total,
            loading_exact=exact,
            loading_percent=percent,
            left_out=self.left_out,
            capacity=store.capacity,
            full=len(store) >= store.capacity,
            partial=partial and self.query.since_ms is None,
            held_back=self.held_back if self.detached else None,
            closed_by_filter=self.query.until_ms is not None and self.detached,
        )

    def _percent(self) -> int | None:
        """How far back in time a load without counts has got, 0..100."""
        plan = self.plan
        newest = self.holdings.last_ms
        if plan is None or newest is None:
            return None
        top = newest if plan.until_ms is None else min(plan.until_ms, newest)
        bottom = plan.since_ms if plan.since_ms is not None else self.holdings.first_ms
        reached = [p.reached_ms for p in self.progress.values() if p.reached_ms is not None]
        if bottom is None or top <= bottom or not reached:
            return 0 if bottom is not None else None
        return max(0, min(100, round((top - min(reached)) * 100 / (top - bottom))))

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
        if self.loading:
            return  # the load has the time; what it brings is warmed after
        unwarmed = self._unwarmed
        for _ in range(min(WARM_BUDGET, len(unwarmed))):
            unwarmed.popleft().search_text()
