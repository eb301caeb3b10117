"""The app's messages: workers post them up, widgets post them up, the app decides.

High-rate ones say so with ``can_replace`` so that a newer one replaces one still queued."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from textual.message import Message

from emp_tui.app.triage import Action, Handoff, Triage
from emp_tui.events import TelemetryEvent
from emp_tui.health import EmitterFigures, ServiceRate
from emp_tui.health import StreamState as StreamHealth
from emp_tui.history import JobHistory, Span, TimeRange
from emp_tui.problems import StreamState
from emp_tui.sources import ConnectionState


@dataclass
class EventsReceived(Message):
    """A batch of events from a source (backfill, live tail or file). Never replaced: each
    batch carries different events."""

    events: list[TelemetryEvent]
    source: str
    backfill: bool = False


@dataclass
class SourceDone(Message):
    """A finite read finished (a backfill or a file): ``count`` events, ``corrupt`` lines."""

    source: str
    count: int
    corrupt: int = 0
    error: str | None = None
    position: str | None = None
    """For the stream: the ID the tail goes on from."""


@dataclass
class ConnectionChanged(Message):
    """The live reader's connection state changed."""

    state: ConnectionState
    url: str
    error: str | None = None

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ConnectionChanged)


@dataclass
class CollectorHealth(Message):
    """What the collectors last reported about themselves (lag, state), newest first, and
    the stream's state (XINFO; None when the stream does not exist yet)."""

    collectors: list[dict[str, str]] = field(default_factory=list)
    error: str | None = None
    stream: StreamState | None = None

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, CollectorHealth)


@dataclass
class ExportFinished(Message):
    """The export worker wrote ``count`` events to ``path`` (or failed: ``error``)."""

    path: Path
    fmt: str
    count: int
    error: str | None = None


@dataclass
class ClipboardChecked(Message):
    """Whether the terminal can take what ``y`` sent (OSC 52): ``reach`` is ``None`` when it
    should, else why it may not."""

    reach: str | None
    size: int


@dataclass
class EventWritten(Message):
    """``Y`` wrote the selected event's JSON to ``path`` (or failed: ``error``)."""

    path: Path
    error: str | None = None


@dataclass
class EventSelected(Message):
    """The stream's cursor moved to this event (None: no selection)."""

    event: TelemetryEvent | None

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, EventSelected)


@dataclass
class JobRequested(Message):
    """Open this job's timeline (Enter on an event, a click on a job ID, the jump dialog)."""

    job_id: str


@dataclass
class FollowChanged(Message):
    """The stream started or stopped following new events."""

    follow: bool

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, FollowChanged)


@dataclass
class FilterSubmitted(Message):
    """The filter bar holds a query the user wants applied ("" clears it)."""

    text: str


@dataclass
class FilterLeft(Message):
    """Esc in an empty filter bar: the user is done with it (focus goes to the stream)."""


@dataclass
class PaneRequested(Message):
    """Show this pane (a click on its tab)."""

    pane: str


@dataclass
class ProblemsFound(Message):
    """The problem finder looked at the events at hand: what it found."""

    triage: Triage

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ProblemsFound)


@dataclass
class EventsWanted(Message):
    """The problem finder's thread is ready: hand it the events at hand."""

    handoff: Handoff


@dataclass
class ProblemChosen(Message):
    """Enter (or ``o``, ``v``) on a row of the Problems view: open a job or apply a filter."""

    action: Action


@dataclass
class SourceHeld(Message):
    """What a source holds (its span), as last asked; or why it could not say."""

    source: str
    span: Span | None
    error: str | None = None

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SourceHeld) and message.source == self.source


@dataclass
class HistoryPage(Message):
    """A page of a range read (newest first): ``read`` events so far, back to ``reached_ms``.
    ``generation`` names the load it belongs to (a newer load makes it stale)."""

    generation: int
    source: str
    events: list[TelemetryEvent]
    read: int
    reached_ms: int | None
    painted: threading.Event | None = None
    """Set once the page is on screen (the first page of a load): its reader waits for it
    before it decodes the rest, which would otherwise hold the GIL while the first screen
    is drawn."""


@dataclass
class HistoryDone(Message):
    """One source's part of a load ended: ``cut`` when it stopped (the cap, or Esc) with
    more of the range left; ``notes`` about corrupt lines and unreadable files."""

    generation: int
    source: str
    read: int
    reached_ms: int | None
    cut: bool
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    corrupt: int = 0


@dataclass
class JobFetched(Message):
    """A job's whole story from the sources (or why it could not be read)."""

    job_id: str
    job: JobHistory | None
    error: str | None = None


@dataclass
class IdsFound(Message):
    """Where the events of a filter naming IDs (``job:``, ``worker:``, ...) lie in the logs:
    ``span`` from the first to the last (None: the logs hold none), ``count`` of them, and
    the events themselves when there are few enough to show at once (None: too many)."""

    text: str
    span: TimeRange | None
    count: int
    error: str | None = None
    events: list[TelemetryEvent] | None = None


@dataclass
class OlderWanted(Message):
    """A step above the stream's oldest row (↑, PgUp, Home or the wheel at the top): the
    app may bring in the page of history before it."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, OlderWanted)


@dataclass
class HealthWanted(Message):
    """The health pane wants a fresh reading (when it opens, every few seconds, ``r``)."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, HealthWanted)


@dataclass
class HealthRead(Message):
    """A reading for the health pane: the stream's state as ``emp-tui health`` reads it (None
    offline, or with ``error`` when it could not be read), and the figures of the events at
    hand over ``start_ms``-``end_ms``: events per service in buckets of ``bucket_ms``, the
    emitters' own reports."""

    now_ms: int
    stream_key: str
    live: bool
    stream: StreamHealth | None
    error: str | None
    start_ms: int | None
    end_ms: int | None
    bucket_ms: int
    rates: list[ServiceRate]
    emitters: list[EmitterFigures]
    events: int

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, HealthRead)
