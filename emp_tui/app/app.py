"""The emp-tui app: the live stream, the filter bar, the detail pane, the job timeline, the
handoff graph and the status bar, on one screen.

What to show (the events at hand, the filter's rows, the jobs opened, the graph's scope) is
decided by :class:`~emp_tui.app.state.AppState`, without Textual; the app composes the widgets,
routes the messages and shows what the state answers. It does no I/O itself: each source is a
named worker that posts :mod:`emp_tui.app.messages`, and one handler deals with any worker
that fails. Arriving events are queued and drained into the store and the stream at a fixed
frame rate, so ten thousand events a second cost a few dozen screen updates.

The first screen waits for nothing it does not show: the dialogs and screens (jump, export,
help, health) are imported when first opened, and the Redis client only when Redis is read,
so `emp-tui --file` starts without them (tests/test_import_hygiene.py).
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Final

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.dom import DOMNode
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Footer
from textual.worker import Worker, WorkerState, get_current_worker

from emp_tui.analysis import Timeline
from emp_tui.app.clipboard import clipboard_reach
from emp_tui.app.commands import EmpCommands
from emp_tui.app.messages import (
    ClipboardChecked,
    CollectorHealth,
    ConnectionChanged,
    EventSelected,
    EventsReceived,
    EventsWanted,
    EventWritten,
    ExportFinished,
    FilterLeft,
    FilterSubmitted,
    FollowChanged,
    HealthRead,
    HealthWanted,
    HistoryDone,
    HistoryPage,
    IdsFound,
    JobFetched,
    JobRequested,
    OlderWanted,
    PaneRequested,
    ProblemChosen,
    ProblemsFound,
    SourceHeld,
)
from emp_tui.app.readers import read_pipeline_health
from emp_tui.app.state import AppState, EmptyHint, GraphScope, Ingested, LoadPlan, Source
from emp_tui.app.triage import (
    Handoff,
    Navigation,
    OpenJob,
    Pacer,
    ProblemsState,
    Slot,
    TriageRequest,
    triage,
)
from emp_tui.app.widgets.compare import CompareView
from emp_tui.app.widgets.detail import DetailPane
from emp_tui.app.widgets.event_list import EventList
from emp_tui.app.widgets.filter_bar import FilterBar, FilterInput
from emp_tui.app.widgets.graph import HandoffGraph
from emp_tui.app.widgets.histogram import TimeStrip
from emp_tui.app.widgets.pane_tabs import PaneTabs
from emp_tui.app.widgets.problems import ProblemBanner, ProblemsView
from emp_tui.app.widgets.status_bar import Status, StatusBar
from emp_tui.app.widgets.timeline import TimelineView
from emp_tui.config import AppConfig, config_path, redacted_url
from emp_tui.events import TelemetryEvent
from emp_tui.health import ServiceRate, emitter_figures, rates_by_service, read_stream_state
from emp_tui.history import (
    Holdings,
    JobHistory,
    ReadStats,
    TimeRange,
    event_ms,
    logs_span,
    probe_stream,
    read_job,
    read_logs_back,
    read_stream_back,
)
from emp_tui.lint import Linter
from emp_tui.logindex import read_indexed
from emp_tui.problems import StreamState
from emp_tui.query import TIME_FORMS, Query, QueryError, parse_duration_ms, parse_time_ms
from emp_tui.sources import ConnectionState, RedisTail, SourceError, connect, find_shards_at
from emp_tui.store import EventStore
from emp_tui.text import clock, inert
from emp_tui.topology import SHARDS_ENV, shard_keys

if TYPE_CHECKING:
    from emp_tui.app.screens.export import ExportRequest
    from emp_tui.app.screens.help import KeyRow, Section

FRAME_SECONDS = 1 / 20
"""How often queued events are drained into the store and the screen."""
FIRST_PAINT_WAIT_S = 0.5
"""How long a reader waits for its first page to be drawn before it reads on anyway."""
UI_BURST_SECONDS = 0.1
"""How long a burst of work the user waits for may keep the GIL (see :func:`_ui_first`)."""
PANES = ("stream", "detail", "timeline", "graph")
SLOTS: tuple[Slot, ...] = ("timeline", "problems", "compare")
"""What pane 3 shows (the timeline's place): the open job's timeline, the Problems view (while
no job is open, or after ``!``) or the job compared with usual (``u``)."""
WIDE_FROM = 120
"""From this many columns every pane shows; narrower, one at a time."""
BACKOFF_INITIAL = 0.2
BACKOFF_MAX = 5.0
RESTART_SECONDS = 2.0
"""How long after an unexpected failure the live reader starts again."""
HEALTH_SECONDS = 5.0
PROBLEMS_SECONDS = 3.0
"""Problems are looked for again at most this often (and less often when that takes long)."""
PROBLEMS_HOLD_SECONDS = 2.0
"""New findings wait this long after a key moved the Problems view's cursor: rows do not
move under the keys."""
DEFAULT_KEYMAP: dict[str, str] = {"timeline.cursor_down": "down"}
"""Keys the app rebinds in its widgets by default (config.toml's [keymap] goes on top):
``j`` is "jump to job" everywhere, so the timeline's cursor keeps only ↓ (and ``k``/↑)."""

FOCUS_ROWS: list[KeyRow] = [
    (
        "tab",
        "next pane: filter bar → 1 stream → 2 detail → 3 → 4 graph (narrower than "
        f"{WIDE_FROM} columns: the filter bar and the pane shown)",
        "",
    ),
    ("shift+tab", "the same, backwards", ""),
    ("enter esc", "in the filter bar: apply or clear the filter, then back to the stream", ""),
]
"""Where Tab goes (Textual's focus chain, in the order the panes are composed)."""

Clock = Callable[[], float]
_HINT_ALERT = "bold #ff5f5f"
_HINT_ERROR = "#ff8787"


GC_THRESHOLDS: Final = (5_000, 10, 1_000)
"""The cyclic collector's thresholds while the app runs (Python's are 700, 10, 10)."""


def _spare_the_store_from_full_collections() -> None:
    """The store holds up to 100,000 events for minutes: each full collection walks them all
    (100-170 ms with the store full, about once a second at 10k events/s, each a stall of the
    screen and of a job being opened). Young objects are still collected as often as
    before; a full collection waits for some 50 million allocations instead of 700,000."""
    gc.set_threshold(*GC_THRESHOLDS)


@contextmanager
def _ui_first() -> Iterator[None]:
    """A burst of work the user waits for (opening a job): once this thread has the GIL it
    keeps it for the burst instead of handing it to the background threads (the problem
    finder, a job's fetch) every few milliseconds, which made a 30 ms build take 150 ms."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(UI_BURST_SECONDS)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


class EmpTuiApp(App[int]):
    """A terminal debugger for the EMP platform's telemetry events."""

    CSS_PATH = "app.tcss"
    COMMANDS = App.COMMANDS | {EmpCommands}
    TITLE = "emp-tui"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (WIDE_FROM, "-wide")]

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "focus_filter", "Filter", id="filter"),
        # ? and q early: the footer shows the keys in this order, and keeps these at 80 columns.
        Binding("question_mark", "help", "Help", id="help"),
        Binding("q", "quit", "Quit", id="quit"),
        Binding("space", "toggle_follow", "Pause/follow", id="pause"),
        Binding("f", "follow", "Follow", show=False, id="follow"),
        Binding("j", "jump_to_job", "Jump to job", id="jump"),
        Binding("exclamation_mark", "show_problems", "Problems", id="problems"),
        Binding("u", "compare", "Compare with usual", id="compare"),
        Binding("h", "show_health", "Pipeline health", show=False, id="health"),
        Binding("n", "next_gap", "Next gap", show=False, id="next_gap"),
        Binding("N", "previous_gap", "Previous gap", show=False, id="previous_gap"),
        Binding(
            "plus,equals_sign",
            "threshold(1)",
            "Raise the gap threshold",
            show=False,
            id="threshold_up",
        ),
        Binding(
            "minus",
            "threshold(-1)",
            "Lower the gap threshold",
            show=False,
            id="threshold_down",
        ),
        Binding("g", "toggle_graph_scope", "Graph scope", show=False, id="graph_scope"),
        Binding("left_square_bracket", "widen(1)", "Widen the time range", show=False, id="widen"),
        Binding(
            "right_square_bracket",
            "widen(-1)",
            "Narrow the time range",
            show=False,
            id="narrow",
        ),
        Binding(
            "escape",
            "cancel_load",
            "Stop loading history (while it loads)",
            show=False,
            priority=True,
            id="cancel_load",
        ),
        Binding("e", "export", "Export", id="export"),
        Binding("y", "copy_event", "Copy JSON", id="copy"),
        Binding(
            "Y", "write_event", "Write the event's JSON to a file", show=False, id="write_event"
        ),
        Binding("escape", "go_back", "Back", show=False, id="back"),
        Binding("1", "show_pane('stream')", "Stream pane", show=False, id="pane_stream"),
        Binding("2", "show_pane('detail')", "Detail pane", show=False, id="pane_detail"),
        Binding("3", "show_pane('timeline')", "Timeline pane", show=False, id="pane_timeline"),
        Binding("4", "show_pane('graph')", "Graph pane", show=False, id="pane_graph"),
        Binding("z", "zoom", "Zoom the focused pane (again: back)", show=False, id="zoom"),
    ]

    active_pane: reactive[str] = reactive("stream")
    zoomed: reactive[str | None] = reactive(None)
    """The pane shown on the whole screen (``z``), or None."""

    def __init__(
        self,
        *,
        config: AppConfig | None = None,
        redis_url: str | None = None,
        stream: str = "emp:events",
        shards: int = 1,
        shards_configured: bool = True,
        files: Iterable[Path] = (),
        job_id: str | None = None,
        query: str | None = None,
        clock: Clock = time.time,
        live: bool = True,
        since: str | None = None,
        until: str | None = None,
        cursor_blink: bool = True,
    ) -> None:
        self.config = config or AppConfig()
        self.cursor_blink = cursor_blink
        """Whether text cursors blink (off for deterministic tests and screenshots)."""
        super().__init__()
        self.theme = (
            self.config.theme if self.config.theme in self.available_themes else ("textual-dark")
        )
        self.redis_url = redis_url
        self.stream_key = stream
        self.shards = shards
        """The stream's shards (``emp:events:{0}``...): each read, merged."""
        self.shards_settled = shards_configured and redis_url is None
        """Whether :attr:`shards` is final; else the live reader asks the stream first (the
        count the emitters recorded, or ``shards`` checked against it)."""
        self._shards_configured = shards_configured
        self.shards_warning: str | None = None
        """What finding the shard count had to say (shown as a notification)."""
        self._shards_said: int | None = None
        """The recorded shard count last said to differ from a given one."""
        self._tail: RedisTail | None = None
        """The live tail, while it runs."""
        self._tail_keys: list[str] = []
        """Every key the tail followed once the emitters' shards moved (kept by a new tail)."""
        self.files = list(files)
        self.start_job = job_id
        self.start_query = query or ""
        self.clock = clock
        self.live = live and redis_url is not None
        self.since = since
        self.until = until
        sources: list[Source] = []
        if self.live:
            sources.append("stream")
        if self.files:
            sources.append("logs")
        self.state = AppState(
            capacity=self.config.buffer_size,
            gap_ms=self.config.gap_threshold_ms,
            clock=clock,
            live=redis_url is not None,
            sources=tuple(sources),
            window_ms=parse_duration_ms(self.config.window) or 15 * 60_000,
            first_load=self.config.first_load,
        )
        """What the app shows: ask it, show its answers."""
        self._stream_loaded = False
        """The stream's part of the range was asked of it (it may answer after the logs)."""
        self._stream_failed = False
        self._stream_waiting = False
        self._older_notice_at = 0.0
        self._status_bar = StatusBar(id="status")
        self.problems = ProblemsState()
        """The Problems view's rows and cursor."""
        self.navigation = Navigation()
        """What pane 3 shows, and where Esc goes back to."""
        self.problems_pacer = Pacer(PROBLEMS_SECONDS)
        self.linter = Linter(self.config.lint)
        """Scores every event the app takes in against the event standards, as it arrives
        (a few microseconds each, in the frame that takes it)."""
        self._collectors: list[dict[str, str]] | None = None
        """The collectors' health hashes: None until read (and offline)."""
        self._stream_state: StreamState | None = None
        self._found = 0  # searches received, and the newest shown
        self._shown_found = 0
        self._timeline_dirty = False
        self._timeline_shown_at = 0.0
        self._graph_dirty = False
        self._graph_shown_at = 0.0
        self._strip_dirty = True
        self._strip_shown_at = 0.0
        self.last_error: str | None = None
        """The last problem a source reported (also shown as a notification)."""
        self.last_export: ExportFinished | None = None
        self.ready_at: float | None = None
        self._last_redis_id: str | None = None
        self._main_actions = {
            binding.action.partition("(")[0]
            for binding in self.BINDINGS
            if isinstance(binding, Binding) and binding.action != "quit"
        }
        self.keymap: dict[str, str] = {**DEFAULT_KEYMAP, **self.config.keymap}
        self._status = Status(
            state="connecting" if self.live else "offline",
            source=self._source_label(),
            capacity=self.store.capacity,
        )

    # -- layout ---------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield FilterBar(self.start_query, id="filter-bar")
        yield PaneTabs(PANES, id="pane-tabs")
        yield ProblemBanner(self.problems, id="problem-banner")
        yield TimeStrip(self.state.histogram, id="histogram")
        with Vertical(id="panes"):
            with Horizontal(id="top", classes="row"):
                stream = EventList(self.store.event, id="stream", classes="pane")
                stream.border_title = "1 stream"
                yield stream
                detail = DetailPane(id="detail", classes="pane")
                detail.border_title = "2 detail"
                yield detail
            with Horizontal(id="bottom", classes="row"):
                yield self._timeline_widget()
                yield ProblemsView(self.problems, id="problems", classes="pane slot")
                compare = CompareView(id="compare", classes="pane slot")
                compare.border_title = "3 compare"
                yield compare
                yield self._graph_widget()
        yield self._status_bar
        yield Footer()

    def _timeline_widget(self) -> Widget:
        pane = TimelineView(gap_threshold_ms=self.state.gap_ms, id="timeline", classes="pane slot")
        pane.border_title = "3 timeline"
        return pane

    def _graph_widget(self) -> Widget:
        pane = HandoffGraph(
            scope=self.state.graph_scope, slow_ms=self.state.gap_ms, id="graph", classes="pane"
        )
        pane.border_title = "4 handoffs"
        return pane

    def on_ready(self) -> None:
        """When the first screen was composed and painted (the benchmark reads it)."""
        self.ready_at = time.perf_counter()

    @property
    def ui_attached(self) -> bool:
        """False while the app shuts down: its timers and workers may still deliver after
        the widgets are gone, and must then leave the screen alone."""
        return self._status_bar.is_attached

    def on_mount(self) -> None:
        _spare_the_store_from_full_collections()
        self.set_keymap(self.keymap)
        self.set_interval(FRAME_SECONDS, self._drain, name="frame")
        self.set_interval(1.0, self._tick_second, name="rate")
        self._show_pane_classes()
        self.query_one(EventList).focus()
        if self.start_query:
            self.apply_filter(self.start_query)
        if self.start_job:
            self.open_job(self.start_job)
        self._push_status()
        self._update_hint()
        if self.files:
            self.probe_logs()
        if self.live and self.redis_url is not None:
            self.live_reader(self.redis_url, self.stream_key)
            self.watch_collectors(self.redis_url, self.stream_key)

    def check_range(self) -> None:
        """Raise ValueError (one line) when ``--since``, ``--until`` or the configured window
        does not read, before the app starts."""
        if parse_duration_ms(self.config.window) is None:
            raise ValueError(f"bad window {self.config.window!r}: use e.g. 15m, 2h, 1d")
        now = int(self.clock() * 1000)
        for name, value in (("--since", self.since), ("--until", self.until)):
            if value and parse_time_ms(value, now) is None:
                raise ValueError(f"bad {name} {value!r}: use {TIME_FORMS}")

    # -- the stream ---------------------------------------------------------------------------

    @property
    def stream_list(self) -> EventList:
        return self.query_one(EventList)

    @property
    def store(self) -> EventStore:
        """The events at hand (the state's)."""
        return self.state.store

    @property
    def timeline(self) -> Timeline | None:
        """The open job's timeline."""
        return self.state.timeline

    @property
    def current_job(self) -> str | None:
        return self.state.current_job

    @property
    def gap_ms(self) -> int:
        return self.state.gap_ms

    @property
    def graph_scope(self) -> GraphScope:
        return self.state.graph_scope

    def add_events(self, events: Iterable[TelemetryEvent], *, live: bool = False) -> None:
        """Queue events for the next frame (what the readers' messages end up doing).
        ``live`` ones count towards the events/s rate (a backfill or a file does not)."""
        self.state.queue(events, live=live)

    @property
    def status(self) -> Status:
        """What the status bar shows."""
        return self._status

    def shown_events(self) -> list[TelemetryEvent]:
        """The events the stream shows (those the filter matches), oldest first."""
        return self.state.shown_events()

    def drain_now(self) -> None:
        """Move every queued event into the store and the stream (the frame timer's job)."""
        self._drain()

    def _drain(self) -> None:
        if not self.ui_attached:
            return
        state = self.state
        if not state.has_pending:
            if self._timeline_dirty or self._graph_dirty:
                self._refresh_views()
            return
        ingested = state.drain()
        self._show_ingested(ingested)

    def _show_ingested(self, ingested: Ingested) -> None:
        """Put what a drain changed on screen."""
        self.linter.add(ingested.events)
        self.problems_pacer.changed()
        if self.problems.triage is None:
            self.problems.waiting(len(self.store))
            self.query_one(ProblemsView).show()
        self._maybe_find_problems()
        stream = self.stream_list
        if ingested.oldest is not None:
            stream.drop_before(ingested.oldest)
        if self.state.newest_gone:
            stream.follow = False  # the newest went to make room for the past
            stream.drop_after(ingested.newest)
        stream.add_rows(ingested.rows)
        self._push_status()
        if ingested.job_changed:
            self._timeline_dirty = True
        if ingested.graph_changed:
            self._graph_dirty = True
        self._strip_dirty = True
        self._refresh_views()

    def _refresh_views(self) -> None:
        """Live updates of the open timeline (4 a second at most) and of the all-jobs graph
        (one a second at most): recomputing them is not free with 100k events at hand."""
        now = time.monotonic()
        job = self.current_job
        if self._timeline_dirty and job is not None and now - self._timeline_shown_at >= 0.25:
            self._refresh_timeline()
        if self._graph_dirty and now - self._graph_shown_at >= 1.0:
            self._refresh_graph()
        if self._strip_dirty and now - self._strip_shown_at >= 1.0:
            self._refresh_strip()

    def _refresh_strip(self) -> None:
        """The histogram of the shown events over the loaded span (once a second at most
        while events arrive, at once for a new filter)."""
        self.query_one(TimeStrip).invalidate()
        self._strip_shown_at = time.monotonic()
        self._strip_dirty = False

    def _tick_second(self) -> None:
        if not self.ui_attached:
            return
        self.state.tick()
        self._push_status()
        if self.state.timeline_ages():
            self._timeline_dirty = True  # an open job's silence grows with the clock
        self._refresh_views()
        self._maybe_find_problems()

    def _source_label(self) -> str:
        if self.redis_url is not None:
            shards = f" ({self.shards} shards)" if self.shards > 1 else ""
            return f"{redacted_url(self.redis_url)} {self.stream_key}{shards}"
        if self.files:
            names = ", ".join(path.name for path in self.files[:3])
            return names + (" …" if len(self.files) > 3 else "")
        return ""

    def _push_status(self, **changes: object) -> None:
        """Record ``changes`` (a reader's state, say) and show the status; what the stream
        list knows is added while the widgets are there to ask."""
        values: dict[str, object] = asdict(self.state.figures())
        if self.state.sources:
            values["range"] = self.state.range_view()
        attached = self.ui_attached
        if attached:
            stream = self.stream_list
            values["paused_new"] = None if stream.follow else stream.new_while_paused
        values.update(changes)
        self._status = replace(self._status, **values)  # type: ignore[arg-type]
        if attached:
            self._status_bar.status = self._status

    # -- the filter ---------------------------------------------------------------------------

    @on(FilterSubmitted)
    def _on_filter_submitted(self, message: FilterSubmitted) -> None:
        """Enter (or Esc clearing it): once applied, the keys go back to the stream; a query
        that does not parse keeps them in the bar, beside its error."""
        if self.apply_filter(message.text):
            self._leave_filter()

    @on(FilterLeft)
    def _on_filter_left(self) -> None:
        self._leave_filter()

    def _leave_filter(self) -> None:
        if self.is_narrow:
            self.active_pane = "stream"
        self.stream_list.focus()

    def apply_filter(self, text: str) -> bool:
        """Filter the stream with ``text`` (the filter bar does this on Enter). A query that
        does not parse is shown under the bar and the previous filter stays; returns whether
        ``text`` was applied."""
        bar = self.query_one(FilterBar)
        try:
            query = self.state.parse(text)
        except QueryError as error:
            bar.reject(text, error.message, error.position, error.token)
            return False
        self.drain_now()
        shown = self.state.effective_range()
        self.state.apply(query)
        if self.state.effective_range() != shown:
            self.problems_pacer.changed()  # the problems are those of the range shown
            self._maybe_find_problems()
        self.stream_list.set_rows(self.state.rows)
        self._show_range_end()
        bar.accept(text)
        if self.files and self.state.seeks_ids(query):
            # Its events may lie outside what is loaded. The range waits for the search
            # (_on_ids_found): a load beside it would slow it down, and be replaced when
            # the events lie elsewhere.
            self.find_ids(query, self.files)
        else:
            self._load_filter_range()
        self._push_status()
        self._update_hint()
        if self.state.graph_scope == "all":
            self._refresh_graph()
        self._refresh_strip()
        return True

    def _show_range_end(self) -> None:
        """The list's border while the range shown ends in the past (``until:`` in the
        filter, or ``--until``): where it ends, and how to follow again."""
        state = self.state
        why = None
        if state.detached and state.query.until_ms is not None:
            why = f"ends {clock(state.query.until_ms)[:8]} (until:) · clear it to follow"
        elif state.detached and (end := state.base_until_ms()) is not None:
            why = f"ends {clock(end)[:8]} (--until) · f follows"
        self.stream_list.set_closed(why)

    def _load_filter_range(self) -> None:
        """Load what the filter's range lacks (once the range is decided)."""
        target = self.state.effective_range()
        if target is not None and self.state.base_range is not None:
            self._load(self.state.plan_for(target))

    # -- selection, detail, jump ------------------------------------------------------------

    @on(EventSelected)
    def _on_event_selected(self, message: EventSelected) -> None:
        self.query_one(DetailPane).show(message.event)
        self.query_one(TimeStrip).mark(None if message.event is None else message.event.timestamp)

    @on(FollowChanged)
    def _on_follow_changed(self, message: FollowChanged) -> None:
        """Following again (f, End, space) from the past: the newest are read again first;
        a filter whose until: ends in the past cannot follow."""
        state = self.state
        if message.follow and state.detached:
            target = state.effective_range()
            if state.newest_gone and target is not None:
                self._load(state.plan_for(target))
            elif state.query.until_ms is not None:
                self.notify(
                    "The filter's until: ends the range in the past: clear it to follow.",
                    severity="warning",
                )
                self.stream_list.follow = False
            elif state.base_until_ms() is not None and state.base_range is not None:
                # --until: following drops it, and reads up to the newest.
                state.base_range = TimeRange(state.base_range.since_ms, None)
                self.notify("Following: the range runs to the newest events now.", timeout=4)
                self._load_filter_range()
                self._show_range_end()
        self._push_status()

    @on(JobRequested)
    def _on_job_requested(self, message: JobRequested) -> None:
        self.open_job(message.job_id)

    def open_job(self, job_id: str) -> None:
        """Show ``job_id``'s timeline (and push it on the back stack): at once from what is
        held, then whole, once its events come from every source (a worker)."""
        if job_id == self.state.current_job:
            # Asked for again: its timeline shows, over the Problems view or a comparison.
            self.navigation.reopened(len(self.state.job_history))
        with _ui_first():
            self.state.open_job(job_id)
            self._show_timeline()
        if self.is_narrow:
            self.active_pane = "timeline"
        if self.state.sources:
            self.fetch_job(job_id, self.state.holdings)

    def _refresh_timeline(self) -> None:
        """Build the open job's timeline again from the events at hand, and show it."""
        self.state.refresh_timeline()
        self._show_timeline()

    def _show_timeline(self) -> None:
        """Show the state's timeline of the open job (or none), and the graph with it."""
        view = self.query_one(TimelineView)
        job = self.state.current_job
        if job is None:
            view.set_timeline(None)
            view.border_title = "3 timeline"
        else:
            view.set_timeline(
                self.state.timeline,
                job_id=job,
                gap_threshold_ms=self.gap_ms,
                whole=self.state.job_view(),
            )
            view.border_title = f"3 timeline · {inert(job, 40)}"
        self._timeline_shown_at = time.monotonic()
        self._timeline_dirty = False
        if self.state.graph_scope == "job":
            self._refresh_graph()
        self._show_pane_classes()

    def _refresh_graph(self) -> None:
        view = self.state.graph_view()
        self.query_one(HandoffGraph).set_edges(
            view.edges, nodes=view.nodes, detail=view.detail, slow_ms=self.gap_ms
        )
        self._graph_shown_at = time.monotonic()
        self._graph_dirty = False

    @on(TimelineView.EventSelected)
    @on(TimelineView.StepHighlighted)
    def _on_timeline_step(
        self, message: TimelineView.EventSelected | TimelineView.StepHighlighted
    ) -> None:
        self.query_one(DetailPane).show(message.event)

    @on(TimelineView.GapThresholdChanged)
    def _on_gap_threshold_changed(self, message: TimelineView.GapThresholdChanged) -> None:
        self.state.gap_ms = message.ms
        if self.current_job:
            self._refresh_timeline()

    @on(HandoffGraph.ScopeToggled)
    def _on_scope_toggled(self, message: HandoffGraph.ScopeToggled) -> None:
        self.state.graph_scope = message.scope
        self._refresh_graph()

    # -- panes --------------------------------------------------------------------------------

    @property
    def is_narrow(self) -> bool:
        return self.size.width < WIDE_FROM

    def watch_active_pane(self) -> None:
        self._show_pane_classes()

    def watch_zoomed(self) -> None:
        self._show_pane_classes()

    def focused_pane(self) -> str | None:
        """Which of the four panes holds the focus (None: the filter bar, or nothing)."""
        node: DOMNode | None = self.focused
        while node is not None:
            if node.id in PANES:
                return node.id
            if node.id in SLOTS:
                return "timeline"
            node = node.parent
        return None

    @property
    def slot(self) -> Slot:
        """What pane 3 shows: ``problems``, ``timeline`` or ``compare``."""
        return self.navigation.slot(self.state.current_job, len(self.state.job_history))

    def _show_pane_classes(self) -> None:
        if not self.is_running:
            return
        active = self.active_pane
        slot = self.slot
        for name in PANES:
            if name != "timeline":
                self.query_one(f"#{name}").set_class(name == active, "-active")
        for name in SLOTS:
            widget = self.query_one(f"#{name}")
            widget.set_class(name == slot, "-shown")
            widget.set_class(name == slot and active == "timeline", "-active")
        self.query_one("#top").set_class(active in ("stream", "detail"), "-active")
        self.query_one("#bottom").set_class(active in ("timeline", "graph"), "-active")
        zoomed = self.zoomed
        self.screen_stack[0].set_class(zoomed is not None, "-zoom")
        for name in PANES:
            if name != "timeline":
                self.query_one(f"#{name}").set_class(name == zoomed, "-zoomed")
        for name in SLOTS:
            self.query_one(f"#{name}").set_class(zoomed == "timeline" and name == slot, "-zoomed")
        self.query_one("#top").set_class(zoomed in ("stream", "detail"), "-zoomed")
        self.query_one("#bottom").set_class(zoomed in ("timeline", "graph"), "-zoomed")

        tabs = self.query_one(PaneTabs)
        tabs.active = active
        tabs.set_name("timeline", slot)
        self._show_problem_marks()

    def _show_problem_marks(self) -> None:
        """The counts in the tab row and, on a narrow terminal while pane 3 is not showing
        the problems, the banner with the worst one."""
        self.query_one(PaneTabs).badge = self.problems.badge()
        banner = self.query_one(ProblemBanner)
        hidden = self.active_pane == "timeline" and self.slot == "problems"
        banner.set_class(self.problems.top() is not None and not hidden, "-on")
        banner.refresh()

    @on(PaneRequested)
    def _on_pane_requested(self, message: PaneRequested) -> None:
        if message.pane == "problems":
            self.action_show_problems()
        else:
            self.action_show_pane(message.pane)

    # -- actions ------------------------------------------------------------------------------

    def action_focus_filter(self) -> None:
        # At once, not after the keys already queued (focus() waits for them): what is typed
        # right after / goes into the bar, not to the stream's keys (e is export there).
        self.screen.set_focus(self.query_one(FilterBar).input)

    def action_toggle_follow(self) -> None:
        stream = self.stream_list
        if stream.follow:
            stream.follow = False
        else:
            self.action_follow()

    def action_follow(self) -> None:
        """Follow the newest events (from the past, they are read again first: see
        _on_follow_changed)."""
        self.stream_list.follow = True

    def action_cancel_load(self) -> None:
        """Esc while history loads: stop, keep what came."""
        self.workers.cancel_group(self, "load-stream")
        self.workers.cancel_group(self, "load-logs")
        self.drain_now()
        if self.state.cancel_load():
            self.notify("Stopped loading: older events of the range are not loaded.")
        self.drain_now()
        self._push_status()

    def action_widen(self, direction: int) -> None:
        """``[`` widens the time range a step (older history), ``]`` narrows it."""
        state = self.state
        if state.query.since_ms is not None or state.query.until_ms is not None:
            self.notify(
                "The filter's since:/until: set the range: edit them, or clear the filter.",
                severity="warning",
            )
            return
        wider = state.widen(direction)
        if wider is None:
            self.bell()
            return
        state.base_range = wider
        self._load(state.plan_for(wider))
        self._push_status()

    def action_zoom(self) -> None:
        """The focused pane on the whole screen (tmux's prefix-z), and back."""
        if self.zoomed is not None:
            self.zoomed = None
            return
        pane = self.focused_pane() or self.active_pane
        self.active_pane = pane
        self.zoomed = pane

    def action_show_pane(self, name: str) -> None:
        self.active_pane = name
        if self.zoomed is not None:
            self.zoomed = name  # zoomed stays zoomed: on the pane asked for
        pane = self.query_one(f"#{self.slot if name == 'timeline' else name}")
        if pane.focusable or isinstance(pane, TimelineView | ProblemsView):
            pane.focus()

    def _focus_slot(self) -> None:
        """Show pane 3 (on a narrow terminal) and focus what it shows."""
        if self.is_narrow:
            self.active_pane = "timeline"
        self._show_pane_classes()
        self.query_one(f"#{self.slot}").focus()

    def action_go_back(self) -> None:
        """Undo the last step: the Problems view or a comparison shown over a job (back to
        its timeline), a filter applied from the Problems view (the one before comes back),
        a job (back to the one opened before, or to the Problems view it was opened from);
        from the first job, back to the stream."""
        back = self.navigation.back(len(self.state.job_history))
        if back.kind in ("pin", "compare"):
            self._focus_slot()
            return
        if back.kind == "filter":
            self.apply_filter(back.text)
            self._focus_slot()
            return
        if back.kind != "none":
            previous = self.state.back()
            self._show_timeline()
            if back.kind == "problems":
                self._focus_slot()
                return
            if previous is not None:
                return
        self.active_pane = "stream"
        self.stream_list.focus()

    def action_show_problems(self) -> None:
        """The Problems view in pane 3 (over the open job until Esc), focused."""
        self.navigation.pin(self.state.current_job, len(self.state.job_history))
        self._focus_slot()

    def action_compare(self) -> None:
        """The open job beside typical jobs of its type (``u`` again or Esc: back)."""
        job = self.state.current_job
        depth = len(self.state.job_history)
        if job is None:
            self.notify("No job open: Enter on an event or a problem, or j.", severity="warning")
            return
        if self.slot == "compare":
            self.navigation.uncompare(depth)
            self._focus_slot()
            return
        view = self.query_one(CompareView)
        view.show(self.state.compare_open_job())
        view.border_title = f"3 compare · {inert(job, 40)}"
        view.border_subtitle = "u or Esc: back to the timeline"
        self.navigation.compare(depth)
        self._focus_slot()

    @on(ProblemChosen)
    def _on_problem_chosen(self, message: ProblemChosen) -> None:
        """Enter in the Problems view: open the job (Esc comes back), or filter the stream by
        the evidence (Esc restores the filter before)."""
        action = message.action
        depth = len(self.state.job_history)
        if isinstance(action, OpenJob):
            if action.job_id != self.state.current_job:
                self.navigation.chose_job(depth)
            self.open_job(action.job_id)
            self._focus_slot()
            return
        previous = self.state.query.text
        if self.apply_filter(action.query):
            self.navigation.chose_filter(depth, previous)
            self.active_pane = "stream"
            self.stream_list.focus()
            row = None if action.at_ms is None else self.state.row_at(action.at_ms)
            if row is not None:
                self.stream_list.select_row(row)
            elif not self.state.rows:
                chosen = self.problems.selected
                other = f"; o opens {inert(chosen.job, 60)}" if chosen and chosen.job else ""
                self.notify(
                    "No event at hand matches its evidence (they may be older than those "
                    f"loaded): Esc goes back{other}.",
                    severity="warning",
                    markup=False,
                )

    def action_jump_to_job(self) -> None:
        from emp_tui.app.screens.jump import JumpToJobScreen  # a dialog: loaded when opened

        selected = self.stream_list.selected_event
        initial = selected.job_id if selected is not None and selected.job_id else ""
        problems = [row.job for row in self.problems.rows if row.job]
        known, reasons = self.state.jump_candidates(selected, problems)

        def chosen(job_id: str | None) -> None:
            if job_id:
                self.open_job(job_id)

        self.push_screen(JumpToJobScreen(known, initial, reasons), chosen)

    def _timeline_in_view(self) -> TimelineView | None:
        if self.current_job is None:
            self.notify("No job open: Enter on an event with a job ID, or j.", severity="warning")
            return None
        if self.is_narrow:
            self.active_pane = "timeline"
        return self.query_one(TimelineView)

    def action_next_gap(self) -> None:
        view = self._timeline_in_view()
        if view is not None:
            view.action_next_marker()

    def action_previous_gap(self) -> None:
        view = self._timeline_in_view()
        if view is not None:
            view.action_previous_marker()

    def action_threshold(self, direction: int) -> None:
        self.query_one(TimelineView).action_threshold(direction)

    def action_toggle_graph_scope(self) -> None:
        self.query_one(HandoffGraph).action_toggle_scope()

    @property
    def export_dir(self) -> Path:
        """Where exports go by default: config ``export_dir``, else where emp-tui runs."""
        return Path(self.config.export_dir or ".").expanduser().absolute()

    def action_export(self) -> None:
        from emp_tui.app.screens.export import ExportScreen  # a dialog: loaded when opened

        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(self.clock()))
        default = self.export_dir / f"emp-events-{stamp}.jsonl"
        events = self.state.export_events()

        def chosen(request: ExportRequest | None) -> None:
            if request is not None:
                self.export_events(events, request)

        self.push_screen(ExportScreen(default, len(events), self.state.query.text), chosen)

    @work(thread=True, exclusive=True, group="export", exit_on_error=False, name="export")
    def export_events(self, events: list[TelemetryEvent], request: ExportRequest) -> None:
        """Write the filtered events (as they were when the dialog was confirmed)."""
        from emp_tui.export import write_events  # with the dialog, not at start-up

        try:
            if request.path.parent == self.export_dir:
                request.path.parent.mkdir(parents=True, exist_ok=True)
            count = write_events(events, request.path, request.fmt, overwrite=request.overwrite)
        except (OSError, ValueError) as error:
            message = (
                f"Export to {request.path} failed: {error.strerror or error}"
                if isinstance(error, OSError) and not isinstance(error, FileExistsError)
                else f"Export failed: {error}"
            )
            self.post_message(ExportFinished(request.path, request.fmt, 0, message))
            return
        self.post_message(ExportFinished(request.path, request.fmt, count))

    @on(ExportFinished)
    def _on_export_finished(self, message: ExportFinished) -> None:
        if message.error:
            self.last_error = message.error
            self.notify(inert(message.error, 300), severity="error", markup=False, timeout=10)
            return
        self.last_export = message
        where = inert(str(message.path.absolute()), 300)
        self.notify(
            f"Exported {message.count:,} events ({message.fmt}) to {where}",
            title="Export",
            markup=False,
        )

    def _selected_event(self) -> TelemetryEvent | None:
        """The event the detail pane shows (the stream's, or the timeline's step)."""
        return self.query_one(DetailPane).event or self.stream_list.selected_event

    def action_copy_event(self) -> None:
        event = self._selected_event()
        if event is None:
            self.notify("Select an event first.", severity="warning")
            return
        text = event.to_json_line().decode().rstrip("\n")
        self.copy_to_clipboard(text)
        self.check_clipboard(len(text.encode()))

    @work(thread=True, exclusive=True, group="clipboard", exit_on_error=False, name="clipboard")
    def check_clipboard(self, size: int) -> None:
        """Whether the copy can have reached the clipboard (tmux is asked: a subprocess)."""
        self.post_message(ClipboardChecked(clipboard_reach(), size))

    @on(ClipboardChecked)
    def _on_clipboard_checked(self, message: ClipboardChecked) -> None:
        if message.reach is None:
            self.notify(f"Copied the event's JSON ({message.size:,} bytes) to the clipboard.")
            return
        key = self._keys(Binding("Y", "write_event", id="write_event"))
        self.notify(
            f"Sent the event's JSON ({message.size:,} bytes) with OSC 52, but it may not reach "
            f"the clipboard: {message.reach}. {key} writes it to a file in {self.export_dir}.",
            severity="warning",
            markup=False,
            timeout=10,
        )

    def action_write_event(self) -> None:
        event = self._selected_event()
        if event is None:
            self.notify("Select an event first.", severity="warning")
            return
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(event.timestamp / 1000))
        name = f"emp-event-{stamp}-{(event.id or event.event_id or 'event').replace('/', '_')}"
        self.write_event(event, self.export_dir / f"{name}.json")

    @work(thread=True, exclusive=True, group="export", exit_on_error=False, name="write event")
    def write_event(self, event: TelemetryEvent, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(event.to_json_line())
        except OSError as error:
            self.post_message(EventWritten(path, error.strerror or str(error)))
            return
        self.post_message(EventWritten(path))

    @on(EventWritten)
    def _on_event_written(self, message: EventWritten) -> None:
        where = inert(str(message.path.absolute()), 300)
        if message.error:
            self._report(f"Cannot write {where}: {message.error}")
            return
        self.notify(f"Wrote the event's JSON to {where}", markup=False)

    def action_show_health(self) -> None:
        """The pipeline's health (``h`` or Esc: back)."""
        from emp_tui.app.screens.health import HealthScreen  # a screen: loaded when opened

        self.push_screen(HealthScreen())

    @on(HealthWanted)
    def _on_health_wanted(self, message: HealthWanted) -> None:
        """Read the pipeline's health for the health pane, off the UI thread: the events at
        hand are handed over as a list (of references), the stream is read and the figures
        are counted in the worker."""
        from emp_tui.app.screens.health import HealthScreen  # loaded already: the screen asked

        if not isinstance(self.screen, HealthScreen):
            return
        view = self.state.range_view()
        now = self.state.now_ms()
        start = view.first_ms
        end = None if view.last_ms is None else max(view.last_ms, now if self.live else 0)
        store = self.store
        # The one copy on the UI thread (about 10 ms at 100k events, while the pane shows).
        self.read_health(store.events(store.seqs()), start, end, now)

    @work(thread=True, exclusive=True, group="health-pane", exit_on_error=False, name="health")
    def read_health(
        self, events: list[TelemetryEvent], start_ms: int | None, end_ms: int | None, now_ms: int
    ) -> None:
        """The figures of ``emp-tui health`` (:func:`emp_tui.health.read_stream_state`) and
        those of the events at hand, for the health pane."""
        stream = error = None
        url = self.redis_url if self.live else None
        if url is not None:
            from redis.exceptions import RedisError  # here: an offline app never imports redis

            try:
                client = connect(url)
                try:
                    stream = read_stream_state(client, self.stream_key, now_ms)
                finally:
                    client.close()
                if stream is None:
                    error = f"stream {self.stream_key} does not exist (no events yet?)"
            except SourceError as exc:
                error = str(exc)
            except (RedisError, OSError) as exc:
                error = f"cannot read the stream's state: {exc}"
        bucket_ms, rates = 1000, list[ServiceRate]()
        if start_ms is not None and end_ms is not None:
            bucket_ms, rates = rates_by_service(events, start_ms, end_ms)
        emitters = emitter_figures(events)
        count = len(events)
        del events
        self.post_message(
            HealthRead(
                now_ms=now_ms,
                stream_key=self.stream_key,
                live=url is not None,
                stream=stream,
                error=error,
                start_ms=start_ms,
                end_ms=end_ms,
                bucket_ms=bucket_ms,
                rates=rates,
                emitters=emitters,
                events=count,
            )
        )

    @on(HealthRead)
    def _on_health_read(self, message: HealthRead) -> None:
        from emp_tui.app.screens.health import HealthScreen  # loaded already: the screen asked

        screen = self.screen
        if isinstance(screen, HealthScreen):
            screen.show(message)

    def action_help(self) -> None:
        from emp_tui.app.screens.help import HelpScreen  # a screen: loaded when opened

        where = str(self.config.path or config_path())
        home = str(Path.home())
        if where.startswith(home + "/"):
            where = "~" + where[len(home) :]
        hint = f'Rebind keys in {where} under [keymap], e.g. export = "ctrl+e" (ids on the right).'
        self.push_screen(HelpScreen(self.key_sections(), hint))

    # -- keys, help and the palette -----------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The main screen's keys do nothing while a dialog is in front of it; Esc stops a
        load of history only while one is under way (else it does what it does where
        focus is)."""
        if action == "cancel_load":
            return self.state.loading and self.screen is self.screen_stack[0]
        return not (action in self._main_actions and self.screen is not self.screen_stack[0])

    def _keys(self, binding: Binding) -> str:
        keys = self.keymap.get(binding.id or "", binding.key)
        shown = []
        for key in keys.split(","):
            key = key.strip()
            shown.append(self.get_key_display(Binding(key, binding.action)))
        return " ".join(shown)

    def _rows(self, bindings: Iterable[BindingType]) -> list[KeyRow]:
        rows: list[KeyRow] = []
        for binding in bindings:
            if isinstance(binding, Binding):
                rows.append((self._keys(binding), binding.description, binding.id or ""))
        return rows

    def key_sections(self) -> list[Section]:
        """Every key of the app, by where it works (for the help screen)."""
        from emp_tui.app.screens.health import HealthScreen  # its keys; loaded when asked

        sections: list[Section] = [
            ("Anywhere", self._rows(self.BINDINGS)),
            ("Focus", FOCUS_ROWS),
            ("Stream", self._rows(EventList.BINDINGS)),
            ("Filter bar", self._rows(FilterInput.BINDINGS)),
        ]
        for title, pane_id in (
            ("Problems", "problems"),
            ("Timeline", "timeline"),
            ("Handoff graph", "graph"),
        ):
            # The pane's own keys and those of the widgets inside it that are ours.
            classes: dict[type[DOMNode], None] = {}
            for widget in self.query_one(f"#{pane_id}").walk_children(with_self=True):
                if type(widget).__module__.startswith("emp_tui."):
                    classes.setdefault(type(widget), None)
            rows = [row for cls in classes for row in self._rows(cls.BINDINGS)]
            if rows:
                sections.append((title, rows))
        sections.append(("Health pane", self._rows(HealthScreen.BINDINGS)))
        sections.append(
            ("Dialogs", [("Esc", "close a dialog, clear the filter, or go back", "back")])
        )
        palette = self._keys(Binding(self.COMMAND_PALETTE_BINDING, "command_palette"))
        sections.append(("Command palette", [(palette, "every action, by name", "")]))
        return sections

    def palette_commands(self) -> list[tuple[str, str, str]]:
        """(name, action, help) for every action of the main screen."""
        commands: list[tuple[str, str, str]] = []
        for binding in self.BINDINGS:
            if isinstance(binding, Binding) and binding.action != "quit":
                commands.append(
                    (binding.description, binding.action, f"key: {self._keys(binding)}")
                )
        commands.append(("Clear the filter", "clear_filter", "Esc in the filter bar"))
        commands.append(("Quit emp-tui", "quit", f"key: {self._keys(Binding('q', 'quit'))}"))
        return commands

    def action_clear_filter(self) -> None:
        self.query_one(FilterInput).value = ""
        self.apply_filter("")

    # -- workers ------------------------------------------------------------------------------

    @work(exclusive=True, group="redis", exit_on_error=False, name="live reader")
    async def live_reader(self, url: str, stream: str, resume_from: str | None = None) -> None:
        """Ask the stream what it holds (SourceHeld: the app then loads its part of the time
        range), then tail it for good from its newest entry (or, with ``resume_from``, from
        that ID). Redis being away is a state shown in the status bar, retried with backoff,
        never an error."""
        label = redacted_url(url)

        def report(state: ConnectionState, error: str | None) -> None:
            self.post_message(ConnectionChanged(state, label, error))

        delay = BACKOFF_INITIAL
        last_id: str | None = resume_from
        report("connecting", None)
        while last_id is None:
            try:
                if not self.shards_settled:
                    configured = self.shards if self._shards_configured else None
                    found = await asyncio.to_thread(find_shards_at, url, stream, configured)
                    self.shards, self.shards_settled = found.count, True
                    self.shards_warning = found.warning
                    self._push_status(source=self._source_label())  # "(4 shards)"
                    if found.warning:
                        self.notify(
                            inert(found.warning, 300), severity="warning", markup=False, timeout=20
                        )
                span = await asyncio.to_thread(probe_stream, url, stream, self.shards)
            except SourceError as error:
                report("reconnecting", str(error))
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)
                continue
            self.post_message(SourceHeld("stream", span))
            last_id = span.last_id or "0-0"
            self._last_redis_id = self._last_redis_id or last_id
        tail = RedisTail(url, stream, start_id=last_id, on_state=report, shards=self.shards)
        tail.add_keys(self._tail_keys)  # a tail started again keeps the keys a move added
        self._tail = tail
        try:
            async for batch in tail:
                if batch:
                    self.post_message(EventsReceived(batch, "redis"))
        finally:
            self._tail = None
            await tail.aclose()

    @work(exclusive=True, group="health", exit_on_error=False, name="collector health")
    async def watch_collectors(self, url: str, stream: str) -> None:
        """Every few seconds, what the collectors say about themselves (their lag), and the
        stream's state (its length, ends and consumer groups)."""
        from redis.exceptions import RedisError  # here: an offline app never imports redis

        while True:
            await asyncio.sleep(HEALTH_SECONDS)
            try:
                collectors, state, recorded = await read_pipeline_health(url, stream, self.shards)
            except (RedisError, OSError) as error:
                self.post_message(CollectorHealth([], error=str(error)))
            else:
                self.post_message(CollectorHealth(collectors, stream=state))
                self._follow_recorded_shards(stream, recorded)
            try:
                span = await asyncio.to_thread(probe_stream, url, stream, self.shards)
            except SourceError:
                continue  # the live reader reports Redis being away
            self.post_message(SourceHeld("stream", span))

    def _follow_recorded_shards(self, stream: str, recorded: int | None) -> None:
        """The emitters record another shard count than the app reads (services
        reconfigured while it runs): the live tail follows the new count's keys too
        (:meth:`~emp_tui.sources.RedisTail.add_keys`; those it follows are kept, as emitters
        not yet reconfigured still write there), unless a count was given (then the app says
        so, once per count)."""
        tail = self._tail
        if recorded is None or recorded == self.shards or not self.shards_settled:
            return
        if self._shards_configured:
            if recorded != self._shards_said:
                self._shards_said = recorded
                self.notify(
                    f"The emitters of {stream} now record {recorded} shards; this app reads "
                    f"{self.shards} as told: restart it with {SHARDS_ENV}={recorded}.",
                    severity="warning",
                    markup=False,
                    timeout=20,
                )
            return
        added = tail.add_keys(shard_keys(stream, recorded)) if tail is not None else []
        if tail is None or not added:
            return
        self._tail_keys = list(tail.keys)
        self.notify(
            f"The emitters of {stream} now write {recorded} shards: following "
            f"{', '.join(added)} too.",
            markup=False,
            timeout=10,
        )
        self.shards = recorded  # what is read of the past from now on
        self._push_status(source=self._source_label())

    def _maybe_find_problems(self) -> None:
        """Look for problems again when it is time (see :class:`Pacer`), in a thread."""
        pacer = self.problems_pacer
        now = time.monotonic()
        # A silence grows with the clock (not while the stream does not answer).
        ages = self.state.live and not self.state.detached and self.state.blind_since_ms is None
        if not self.store or not pacer.due(now, ages=ages):
            return
        pacer.start(now)
        self.problem_finder()

    @work(thread=True, exclusive=True, group="problems", exit_on_error=False, name="problems")
    def problem_finder(self) -> None:
        """The detectors over the events at hand (the event standards are scored as events
        arrive). The copy of the list of events is made once this thread runs, and held only
        while it looks (see :class:`Handoff`)."""
        worker = get_current_worker()
        handoff = Handoff()
        self.post_message(EventsWanted(handoff))
        taken = handoff.take(lambda: worker.is_cancelled)
        if taken is None:
            return
        events, request = taken
        found = triage(events, request, with_lint=False)
        del events, taken
        self.post_message(ProblemsFound(found))

    @on(EventsWanted)
    def _on_events_wanted(self, message: EventsWanted) -> None:
        within, now = self.state.problems_scope()
        request = TriageRequest(
            now_ms=now,
            within=within,
            gap_ms=self.gap_ms,
            collectors=self._collectors,
            stream=self._stream_state,
            lint=self.config.lint,
        )
        message.handoff.give(list(self.store), request)

    @on(ProblemsFound)
    def _on_problems_found(self, message: ProblemsFound) -> None:
        self.problems_pacer.done(message.triage.seconds)
        if not self.ui_attached:
            return
        self._found += 1
        number = self._found
        view = self.query_one(ProblemsView)
        held = PROBLEMS_HOLD_SECONDS - (time.monotonic() - view.list.moved_at)
        if held > 0 and view.list.has_focus:
            # The user is moving through the rows: show these a moment later.
            self.set_timer(held, lambda: self._show_found(message, number))
            return
        self._show_found(message, number)

    def _show_found(self, message: ProblemsFound, number: int) -> None:
        if not self.ui_attached or number < self._shown_found:
            return  # a newer search was shown meanwhile
        self._shown_found = number
        report = self.linter.report() if self.store else None
        self.problems.update(replace(message.triage, lint=report))
        self.query_one(ProblemsView).show()
        self._show_problem_marks()

    @work(thread=True, exclusive=True, group="logs-probe", exit_on_error=False, name="logs probe")
    def probe_logs(self) -> None:
        """What the --file paths (or the log directory) hold: their first and last times."""
        try:
            span = logs_span(self.files)
        except SourceError as error:
            self.post_message(SourceHeld("logs", None, str(error)))
            return
        self.post_message(SourceHeld("logs", span))

    @work(thread=True, exclusive=True, group="load-stream", exit_on_error=False, name="stream load")
    def load_stream(self, plan: LoadPlan, url: str, stream: str) -> None:
        """The stream's part of ``plan``, newest first, a page at a time; Esc (a cancel)
        stops it where it is."""
        worker = get_current_worker()
        stats = ReadStats()
        error: str | None = None
        try:
            client = connect(url)
            try:
                for page in read_stream_back(
                    client,
                    stream,
                    plan.since_ms,
                    plan.until_ms,
                    stats=stats,
                    limit=plan.limit,
                    shards=self.shards,
                ):
                    if worker.is_cancelled:
                        stats.cut = True
                        break
                    self._post_page(plan, "stream", page, stats)
            finally:
                client.close()
        except SourceError as exc:
            error = str(exc)
        self.post_message(
            HistoryDone(plan.generation, "stream", stats.read, stats.reached_ms, stats.cut, error)
        )

    @work(thread=True, exclusive=True, group="load-logs", exit_on_error=False, name="logs load")
    def load_logs(self, plan: LoadPlan, files: list[Path]) -> None:
        """The files' part of ``plan``, newest first; corrupt lines and unreadable files are
        counted and said, never fatal."""
        worker = get_current_worker()
        stats = ReadStats()
        error: str | None = None
        try:
            for page in read_logs_back(
                files, plan.since_ms, plan.until_ms, stats=stats, limit=plan.limit
            ):
                if worker.is_cancelled:
                    stats.cut = True
                    break
                self._post_page(plan, "logs", page, stats)
        except SourceError as exc:
            error = str(exc)
        self.post_message(
            HistoryDone(
                plan.generation,
                "logs",
                stats.read,
                stats.reached_ms,
                stats.cut,
                error,
                stats.files.notes(),
                stats.files.corrupt,
            )
        )

    def _post_page(
        self, plan: LoadPlan, source: str, page: list[TelemetryEvent], stats: ReadStats
    ) -> None:
        """A reader's page to the app (from the reader's thread). After a fresh load's first
        page it waits until that page is on screen (a moment at most): decoding the rest
        would hold the GIL while the first screen is drawn."""
        first = plan.kind == "fresh" and stats.read == len(page)
        painted = threading.Event() if first else None
        self.post_message(
            HistoryPage(plan.generation, source, page, stats.read, stats.reached_ms, painted)
        )
        if painted is not None:
            painted.wait(FIRST_PAINT_WAIT_S)

    @work(thread=True, exclusive=True, group="job", exit_on_error=False, name="job fetch")
    def fetch_job(self, job_id: str, holdings: Holdings) -> None:
        """Every event of ``job_id`` from every source, whatever is loaded. Opening another
        job stops it (between pages of the stream's scan): threads do not pile up."""
        worker = get_current_worker()
        client = None
        try:
            if self.live and self.redis_url is not None:
                try:
                    client = connect(self.redis_url)
                except SourceError as exc:
                    if not self.files:
                        raise
                    holdings = Holdings(None, holdings.logs)
                    note = f"{exc}: the job's events from the stream are missing"
                    job = read_job(job_id, paths=self.files, holdings=holdings)
                    job = replace(job, notes=(note, *job.notes))
                    self.post_message(JobFetched(job_id, job))
                    return
            job = read_job(
                job_id,
                client=client,
                stream=self.stream_key,
                paths=self.files,
                holdings=holdings,
                shards=self.shards,
                cancelled=lambda: worker.is_cancelled,
            )
            if worker.is_cancelled:
                return  # another job was opened meanwhile: this one is not whole
        except SourceError as exc:
            self.post_message(JobFetched(job_id, None, str(exc)))
            return
        finally:
            if client is not None:
                client.close()
        self.post_message(JobFetched(job_id, job))

    @work(thread=True, exclusive=True, group="ids", exit_on_error=False, name="ids search")
    def find_ids(self, query: Query, files: list[Path]) -> None:
        """Where the events of a filter naming IDs lie in the logs, and the events (a byte
        search finds the lines that hold the IDs; only those are decoded): up to a first
        load's worth of them, shown as they are while their time is loaded."""
        worker = get_current_worker()
        low = high = None
        count = 0
        found: list[TelemetryEvent] | None = []
        most = self.state.first_load  # more are not held at once: their time's load shows them
        try:
            for event in read_indexed(files, query):
                if worker.is_cancelled:
                    return
                ms = event_ms(event)
                low = ms if low is None else min(low, ms)
                high = ms if high is None else max(high, ms)
                count += 1
                if found is not None:
                    found.append(event)
                    if len(found) > most:
                        found = None
        except SourceError as exc:
            self.post_message(IdsFound(query.text, None, 0, str(exc)))
            return
        span = None if low is None else TimeRange(low, high)
        self.post_message(IdsFound(query.text, span, count, events=found))

    @on(IdsFound)
    def _on_ids_found(self, message: IdsFound) -> None:
        state = self.state
        if message.text != state.query.text:
            return  # another filter since, which loads what it needs
        if message.error is not None:
            self._report(f"cannot search the logs: {message.error}")
        target = None if message.error else state.ids_found(message.text, message.span)
        if target is None:  # its events lie in the range (or nowhere): the range's load
            self._load_filter_range()
            self._push_status()
            return
        plan = state.plan_for(target)
        if plan is not None:
            self.notify(
                inert(
                    f"{message.count:,} events of the filter in the logs, outside the loaded "
                    "range: loading their time",
                    200,
                ),
                timeout=4,
                markup=False,
            )
            self._load(plan)
        if message.events:
            # Every event of the logs that the filter matches (decoded, matched): on screen
            # now, the rest of their time read behind them (the store takes each once).
            state.queue(message.events)
            self.drain_now()
        self._push_status()

    def _load(self, plan: LoadPlan | None) -> None:
        """Start the workers that read ``plan`` from its sources."""
        if plan is None:
            return
        if plan.kind == "fresh":
            self.stream_list.set_rows([])
        if "stream" in plan.sources and self.redis_url is not None:
            self._stream_loaded = True
            self.load_stream(plan, self.redis_url, self.stream_key)
        if "logs" in plan.sources and self.files:
            self.load_logs(plan, self.files)
        self._push_status()

    def _start_range(self) -> None:
        """Once the sources have said what they hold: decide the range and load it."""
        state = self.state
        if state.base_range is not None:
            return
        waiting_for_stream = "stream" in state.sources and state.holdings.stream is None
        waiting_for_logs = "logs" in state.sources and state.holdings.logs is None
        if waiting_for_logs or (waiting_for_stream and not self._stream_failed):
            return
        try:
            state.base_range = state.resolve_range(self.since, self.until, self.config.window)
        except ValueError as error:
            self.notify(inert(str(error), 200), severity="error", markup=False)
            state.base_range = state.resolve_range()
        self._show_range_end()
        target = state.effective_range()
        if target is None:
            return
        sources = tuple(
            s for s in state.sources if s != "stream" or state.holdings.stream is not None
        )
        self._load(state.plan_for(target, sources))

    @on(SourceHeld)
    def _on_source_held(self, message: SourceHeld) -> None:
        state = self.state
        if message.error:
            self._report(message.error)
            if message.source == "logs":
                state.sources = tuple(s for s in state.sources if s != "logs")
        elif message.source == "stream" and message.span is not None:
            state.set_holdings(stream=message.span)
        elif message.source == "logs" and message.span is not None:
            state.set_holdings(logs=message.span)
            for reason in message.span.unreadable:
                self._report(f"skipped an unreadable file: {reason}")
        if state.base_range is None:
            self._start_range()
        elif message.source == "stream" and not self._stream_loaded:
            # The stream answered after the range was decided (Redis was away): its part.
            if message.span is not None and self._last_redis_id is None:
                self._last_redis_id = message.span.last_id
            self._stream_waiting = True
            if not state.loading:
                self._load_stream_part()
        self._push_status()

    def _load_stream_part(self) -> None:
        """Load the stream's part of the range, which the logs' load went without."""
        self._stream_waiting = False
        target = self.state.effective_range()
        if target is not None:
            self._load(self.state.plan_source("stream", target))

    @on(HistoryPage)
    def _on_history_page(self, message: HistoryPage) -> None:
        source: Source = "stream" if message.source == "stream" else "logs"
        belongs = self.state.loaded_page(
            message.generation, source, message.events, message.read, message.reached_ms
        )
        painted = message.painted
        if painted is not None:
            if belongs:
                self.drain_now()  # not at the next frame: the reader waits for it
                self.call_after_refresh(painted.set)
            else:
                painted.set()

    @on(HistoryDone)
    def _on_history_done(self, message: HistoryDone) -> None:
        source: Source = "stream" if message.source == "stream" else "logs"
        state = self.state
        self.drain_now()  # the pages before it onto the screen, before the load is judged
        belongs = state.loaded_all(
            message.generation,
            source,
            read=message.read,
            reached_ms=message.reached_ms,
            cut=message.cut,
            error=message.error,
        )
        if not belongs:
            return
        if message.error:
            self._report(message.error)
        for note in message.notes:
            self._report(note)
        state.corrupt += message.corrupt
        self.drain_now()
        if not state.loading:
            self._push_status()
            if self.current_job:
                self._refresh_timeline()
            if self._stream_waiting:
                self._load_stream_part()

    @on(JobFetched)
    def _on_job_fetched(self, message: JobFetched) -> None:
        if message.job is None:
            error = f"cannot read job {message.job_id}: {message.error}"
            self._report(error)
            # What is held is all there is to show; the header stops saying it is reading.
            failed = JobHistory(message.job_id, [], self.state.holdings, (error,))
            if self.state.job_fetched(failed):
                self._show_timeline()
            return
        for note in message.job.notes:
            self._report(note)
        if self.state.job_fetched(message.job):
            self._show_timeline()

    @on(OlderWanted)
    def _on_older_wanted(self, message: OlderWanted) -> None:
        state = self.state
        if state.loading:
            return
        plan = state.plan_before()
        if plan is None:
            now = time.monotonic()
            if now - self._older_notice_at > 3 and state.sources:
                self._older_notice_at = now
                self.notify("This is the oldest event the sources hold.", timeout=3)
            return
        self._load(plan)

    @on(EventsReceived)
    def _on_events_received(self, message: EventsReceived) -> None:
        if message.source == "redis" and message.events:
            self._last_redis_id = message.events[-1].id or self._last_redis_id
        self.add_events(message.events, live=not message.backfill)

    def _report(self, text: str) -> None:
        """A problem a source met, as a notification (and ``last_error``)."""
        self.last_error = text
        self.notify(inert(text, 300), severity="error", markup=False, timeout=10)

    @on(ConnectionChanged)
    def _on_connection_changed(self, message: ConnectionChanged) -> None:
        state = self.state
        if message.state == "connected":
            state.blind_since_ms = None
        elif message.state == "reconnecting" and state.blind_since_ms is None:
            state.blind_since_ms = state.now_ms()  # what is judged stays as of then
            self.problems_pacer.changed()
        if message.state == "reconnecting" and not self._stream_failed:
            self._stream_failed = True
            self._start_range()  # the logs need not wait for Redis
        self._push_status(state=message.state, error=message.error)
        self._update_hint()

    def _update_hint(self) -> None:
        """What the empty stream says: why there is nothing yet."""
        if not self.ui_attached:  # a reader's news may arrive while the app shuts down
            return
        status = self._status
        self.stream_list.set_hint(
            _hint_text(self.state.empty_hint(status.state, status.source, status.error))
        )

    @on(CollectorHealth)
    def _on_collector_health(self, message: CollectorHealth) -> None:
        # Unreadable is not the same as none running: only a reading says "no collector".
        self._collectors = None if message.error else message.collectors
        self._stream_state = message.stream if not message.error else self._stream_state
        self.problems_pacer.changed()
        lag: int | None = None
        state: str | None = None
        for collector in message.collectors:
            raw = collector.get("lag", "")
            if raw.isdigit():
                lag = max(lag or 0, int(raw))
                state = collector.get("state") or state
        self._push_status(collector_lag=lag, collector_state=state)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place a failed worker is reported: a notification, never a traceback. The
        live reader is started again a few seconds later: the stream must not go quiet."""
        if event.state in (WorkerState.ERROR, WorkerState.CANCELLED) and (
            event.worker.group == "problems"
        ):
            self.problems_pacer.done(0.0)
        if event.state != WorkerState.ERROR:
            return
        worker = event.worker
        error = worker.error
        text = f"{worker.name} failed: {type(error).__name__}: {error}"
        self.last_error = text
        self.notify(inert(text, 300), severity="error", markup=False, timeout=10)
        if worker.group == "redis" and self.live and self.redis_url is not None:
            self._push_status(state="reconnecting", error=inert(text, 200))
            url, stream = self.redis_url, self.stream_key
            resume = self._last_redis_id or "$"
            self.set_timer(RESTART_SECONDS, lambda: self.live_reader(url, stream, resume))


def _hint_text(hint: EmptyHint) -> Text:
    """``hint`` in words, its source and error made inert."""
    text = Text()
    source = inert(hint.source, 120)
    if hint.kind == "unreachable":
        text.append("Redis is unreachable", _HINT_ALERT)
        text.append(f" ({source}); retrying with backoff.\n", "")
        if hint.error:
            text.append(inert(hint.error, 400) + "\n", _HINT_ERROR)
        text.append("Events show here as soon as it answers. --file PATH reads logs offline.")
    elif hint.kind == "connecting":
        text.append(f"Connecting to {source} …", "dim")
    elif hint.kind == "no_match":
        text.append("No buffered event matches the filter. Esc in the filter bar clears it.")
    elif hint.kind == "connected":
        text.append(f"Connected to {source}; no events yet.", "dim")
    else:
        text.append("No events.", "dim")
    return text
