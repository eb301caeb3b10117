"""Analysis of events: timelines, gaps, handoffs, durations, stats, comparison with the
usual, correlation.

Pure functions over :class:`~emp_tui.events.TelemetryEvent` values: no I/O, no clock unless
one is passed in (``now_ms``), no Textual. The app, the CLI, export and the detectors of
:mod:`emp_tui.problems` share them.

Vocabulary:

* a job's **timeline** is its events in time order, each a :class:`Step` with its time from
  the job's first event and from the previous step;
* a **gap** is a step whose delta is over an absolute threshold (``gap_ms``, default 5 s) or
  "slower than usual": well above the p95 of the same step (same pair of event types, else
  the same pair of services) across the other jobs at hand (:class:`UsualSteps`);
* a **handoff** is a step where the service changes; aggregated over jobs they are the edges
  of the service graph;
* a **duration** comes from a start event paired with its end (``*_started``/``*.starting``/
  ``*.executing`` with the next ``*_completed``/``*.completed``/``*.ready``/``*_failed`` of the
  same operation and correlation key), or from an explicit ``durationMs``/``*TimeMs`` in data
  (an explicit ``durationMs`` on the end event wins over the difference of timestamps);
* a job's **type** is what it asks a worker for (``jobType``, else the queue or connector);
  :func:`compare_with_usual` sets one job beside the typical jobs of its type.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from emp_tui.config import DEFAULT_GAP_MS, DEFAULT_STALL_THRESHOLD_MS
from emp_tui.events import TelemetryEvent
from emp_tui.stream_ids import order_key

__all__ = [
    "Comparison",
    "Correlation",
    "Duration",
    "FieldComparison",
    "Gap",
    "Handoff",
    "HandoffEdge",
    "Related",
    "SequenceDifference",
    "Step",
    "StepComparison",
    "Timeline",
    "TypeStats",
    "Usual",
    "UsualSteps",
    "compare_with_usual",
    "correlate",
    "durations",
    "event_type_stats",
    "handoffs",
    "is_slower_than_usual",
    "job_handoffs",
    "job_status",
    "job_timeline",
    "job_type",
    "percentile",
    "sort_events",
]

DEFAULT_STALL_MS: Final = 5 * 60_000
# "Slower than usual": above SLOW_FACTOR x the usual p95 and at least SLOW_MIN_EXCESS_MS over
# it, judged only when the other jobs give at least SLOW_MIN_SAMPLES of the same step.
SLOW_FACTOR: Final = 2.0
SLOW_MIN_EXCESS_MS: Final = 250
SLOW_MIN_SAMPLES: Final = 3

JOB_COMPLETED_TYPES: Final = frozenset({"job.completed", "job.succeeded", "job.finished"})
JOB_FAILED_TYPES: Final = frozenset(
    {
        "job.failed",
        "job.creation_failed",
        "job.cancelled",
        "job.canceled",
        "job.timed_out",
        "job.timeout",
        "job.error",
    }
)
# Where a job says what it asks for: the data field of which event type.
JOB_TYPE_FIELDS: Final = (
    ("job.created", "jobType"),
    ("job.queued", "queueName"),
    ("connector.processing_started", "connectorType"),
    ("connector.processing_completed", "connectorType"),
    ("connector.processing_failed", "connectorType"),
)

Status = Literal["completed", "failed", "queued", "running", "stalled", "unknown"]


# -- basics ---------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0..100) with linear interpolation between closest ranks.
    Raises ValueError for no values."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= p <= 100:
        raise ValueError("p must be between 0 and 100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


def job_type(events: Iterable[TelemetryEvent]) -> str | None:
    """What the job asks a worker for: ``jobType`` of its ``job.created``, else the queue it
    went to, else the connector that ran it. None when its events do not say."""
    found: dict[str, str] = {}
    wanted = dict(JOB_TYPE_FIELDS)
    for event in events:
        key = wanted.get(event.event_type)
        if key is not None and event.event_type not in found:
            value = event.data.get(key)
            if isinstance(value, str) and value:
                found[event.event_type] = value
    for event_type, _ in JOB_TYPE_FIELDS:
        if event_type in found:
            return found[event_type]
    return None


def _order_key(event: TelemetryEvent) -> tuple[int, int, int]:
    return (event.timestamp, *order_key(event.id, event.timestamp))


_TIMESTAMP: Final = operator.attrgetter("timestamp")


def sort_events(events: Iterable[TelemetryEvent]) -> list[TelemetryEvent]:
    """Events by their own timestamp, ties broken by stream ID. Without ties (the usual
    case) the timestamps alone decide, and no stream ID is parsed."""
    ordered = sorted(events, key=_TIMESTAMP)
    if len(set(map(_TIMESTAMP, ordered))) < len(ordered):
        ordered.sort(key=_order_key)  # some share a millisecond: their IDs decide
    return ordered


def _by_job(events: Iterable[TelemetryEvent]) -> dict[str, list[TelemetryEvent]]:
    jobs: dict[str, list[TelemetryEvent]] = defaultdict(list)
    for event in events:
        if event.job_id:
            jobs[event.job_id].append(event)
    return {job: sort_events(evs) for job, evs in jobs.items()}


def job_status(
    events: Sequence[TelemetryEvent],
    *,
    now_ms: int | None = None,
    stall_ms: int = DEFAULT_STALL_MS,
) -> Status:
    """completed/failed by the job's latest terminal event; else queued while no worker has
    taken it (no claim, no event from a worker), running, or stalled when ``now_ms`` is over
    ``stall_ms`` past its last event; unknown with no events."""
    if not events:
        return "unknown"
    for event in reversed(events):
        if event.event_type in JOB_COMPLETED_TYPES:
            return "completed"
        if event.event_type in JOB_FAILED_TYPES:
            return "failed"
    if not any(e.worker_id is not None or e.event_type == "job.claimed" for e in events):
        return "queued"
    if now_ms is not None and now_ms - max(e.timestamp for e in events) > stall_ms:
        return "stalled"
    return "running"


# -- timelines and gaps ---------------------------------------------------------------------


@dataclass(frozen=True)
class Gap:
    after_index: int  # index in the timeline of the step the gap ends at
    start_ms: int
    end_ms: int
    duration_ms: int
    kind: Literal["threshold", "slower_than_usual"]
    usual_p95_ms: float | None
    from_service: str
    to_service: str
    from_type: str
    to_type: str


@dataclass(frozen=True)
class Step:
    event: TelemetryEvent
    offset_ms: int  # from the job's first event
    delta_ms: int  # from the previous step (0 for the first)
    service_changed: bool
    gap: Gap | None


@dataclass(frozen=True)
class Timeline:
    job_id: str
    steps: list[Step]
    gaps: list[Gap]
    start_ms: int
    end_ms: int
    duration_ms: int
    services: list[str]  # in order of first appearance
    status: Status
    # For a job with no terminal event: how long it has been silent at ``now_ms``.
    silent_ms: int | None = None

    @property
    def events(self) -> list[TelemetryEvent]:
        return [step.event for step in self.steps]


@dataclass(frozen=True, slots=True)
class Usual:
    """How long something usually takes among the jobs at hand."""

    p50_ms: float
    p95_ms: float
    samples: int


class UsualSteps:
    """How long each step usually takes among some jobs: by pair of event types (from, to),
    else by pair of services when the service changes; and how long a job usually stays
    quiet after an event of a type (:meth:`after`). Each job's events must be in time order.
    A step seen fewer than SLOW_MIN_SAMPLES times has no usual."""

    def __init__(self, jobs: Iterable[Sequence[TelemetryEvent]]) -> None:
        by_types: dict[tuple[str, str], list[float]] = defaultdict(list)
        by_services: dict[tuple[str, str], list[float]] = defaultdict(list)
        after: dict[str, list[float]] = defaultdict(list)
        for evs in jobs:
            for prev, cur in itertools.pairwise(evs):
                delta = float(cur.timestamp - prev.timestamp)
                by_types[(prev.event_type, cur.event_type)].append(delta)
                after[prev.event_type].append(delta)
                if prev.service != cur.service:
                    by_services[(prev.service, cur.service)].append(delta)
        self._types = by_types
        self._services = by_services
        self._after = after
        self._cache: dict[tuple[str, ...], Usual | None] = {}

    def _usual(self, key: tuple[str, ...], values: list[float] | None) -> Usual | None:
        if key not in self._cache:
            usual = None
            if values and len(values) >= SLOW_MIN_SAMPLES:
                ordered = sorted(values)
                usual = Usual(percentile(ordered, 50), percentile(ordered, 95), len(ordered))
            self._cache[key] = usual
        return self._cache[key]

    def between(self, prev: TelemetryEvent, cur: TelemetryEvent) -> Usual | None:
        """The usual time from ``prev`` to ``cur``: the same pair of event types, else (when
        the service changes) the same pair of services."""
        usual = self._usual(
            ("t", prev.event_type, cur.event_type),
            self._types.get((prev.event_type, cur.event_type)),
        )
        if usual is None and prev.service != cur.service:
            usual = self._usual(
                ("s", prev.service, cur.service), self._services.get((prev.service, cur.service))
            )
        return usual

    def p95(self, prev: TelemetryEvent, cur: TelemetryEvent) -> float | None:
        usual = self.between(prev, cur)
        return None if usual is None else usual.p95_ms

    def after(self, event_type: str) -> Usual | None:
        """The usual time from an event of ``event_type`` to the job's next event."""
        return self._usual(("a", event_type), self._after.get(event_type))


def is_slower_than_usual(delta_ms: float, usual_p95_ms: float | None) -> bool:
    """Well above the usual: over SLOW_FACTOR x its p95 and SLOW_MIN_EXCESS_MS past it."""
    return (
        usual_p95_ms is not None
        and delta_ms > usual_p95_ms * SLOW_FACTOR
        and delta_ms - usual_p95_ms >= SLOW_MIN_EXCESS_MS
    )


def job_timeline(
    events: Iterable[TelemetryEvent],
    job_id: str,
    *,
    gap_ms: int = DEFAULT_GAP_MS,
    reference: Iterable[TelemetryEvent] | None = None,
    now_ms: int | None = None,
    stall_ms: int = DEFAULT_STALL_MS,
) -> Timeline:
    """The timeline of ``job_id`` among ``events`` (other jobs' events are ignored).

    ``reference`` holds the other jobs at hand, for "slower than usual"; by default the other
    jobs in ``events`` are used. A step over ``gap_ms`` is a ``threshold`` gap; one under it
    but well above the usual p95 of the same step is ``slower_than_usual``."""
    events = list(events)
    own = sort_events(e for e in events if e.job_id == job_id)
    others = _by_job(e for e in (events if reference is None else reference) if e.job_id != job_id)
    usual = UsualSteps(others.values())

    steps: list[Step] = []
    gaps: list[Gap] = []
    services: dict[str, None] = {}
    start = own[0].timestamp if own else 0
    prev: TelemetryEvent | None = None
    for index, event in enumerate(own):
        services.setdefault(event.service, None)
        gap: Gap | None = None
        if prev is None:
            delta, changed = 0, False
        else:
            delta = event.timestamp - prev.timestamp
            changed = event.service != prev.service
            p95 = usual.p95(prev, event)
            kind: Literal["threshold", "slower_than_usual"] | None = None
            if delta > gap_ms:
                kind = "threshold"
            elif is_slower_than_usual(delta, p95):
                kind = "slower_than_usual"
            if kind is not None:
                gap = Gap(
                    after_index=index,
                    start_ms=prev.timestamp,
                    end_ms=event.timestamp,
                    duration_ms=delta,
                    kind=kind,
                    usual_p95_ms=p95,
                    from_service=prev.service,
                    to_service=event.service,
                    from_type=prev.event_type,
                    to_type=event.event_type,
                )
                gaps.append(gap)
        steps.append(Step(event, event.timestamp - start, delta, changed, gap))
        prev = event
    end = own[-1].timestamp if own else 0
    status = job_status(own, now_ms=now_ms, stall_ms=stall_ms)
    silent = (
        max(0, now_ms - end)
        if now_ms is not None and own and status in ("queued", "running", "stalled")
        else None
    )
    return Timeline(
        job_id=job_id,
        steps=steps,
        gaps=gaps,
        start_ms=start,
        end_ms=end,
        duration_ms=end - start,
        services=list(services),
        status=status,
        silent_ms=silent,
    )


# -- handoffs -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Handoff:
    """One change of service within a job."""

    job_id: str
    from_service: str
    to_service: str
    from_type: str
    to_type: str
    start_ms: int
    end_ms: int
    duration_ms: int
    error: bool  # either side of the handoff is an error-level event


@dataclass(frozen=True)
class HandoffEdge:
    source: str
    target: str
    count: int
    p50_ms: float
    p95_ms: float
    max_ms: float
    error_share: float  # 0..1, share of these handoffs with an error-level event on a side


def job_handoffs(events: Iterable[TelemetryEvent], job_id: str | None = None) -> list[Handoff]:
    """The handoffs of every job in ``events`` (or of ``job_id`` only), in time order per job."""
    out: list[Handoff] = []
    for job, evs in _by_job(events).items():
        if job_id is not None and job != job_id:
            continue
        for prev, cur in itertools.pairwise(evs):
            if prev.service != cur.service:
                out.append(
                    Handoff(
                        job_id=job,
                        from_service=prev.service,
                        to_service=cur.service,
                        from_type=prev.event_type,
                        to_type=cur.event_type,
                        start_ms=prev.timestamp,
                        end_ms=cur.timestamp,
                        duration_ms=cur.timestamp - prev.timestamp,
                        error=prev.level == "error" or cur.level == "error",
                    )
                )
    return out


def handoffs(events: Iterable[TelemetryEvent]) -> list[HandoffEdge]:
    """Handoffs of all jobs aggregated into service-graph edges, the busiest first."""
    grouped: dict[tuple[str, str], list[Handoff]] = defaultdict(list)
    for handoff in job_handoffs(events):
        grouped[(handoff.from_service, handoff.to_service)].append(handoff)
    edges = []
    for (source, target), items in grouped.items():
        times = [float(h.duration_ms) for h in items]
        edges.append(
            HandoffEdge(
                source=source,
                target=target,
                count=len(items),
                p50_ms=percentile(times, 50),
                p95_ms=percentile(times, 95),
                max_ms=max(times),
                error_share=sum(h.error for h in items) / len(items),
            )
        )
    edges.sort(key=lambda e: (-e.count, e.source, e.target))
    return edges


# -- durations ------------------------------------------------------------------------------

_START_SUFFIXES: Final = ("_started",)
_ENTITY_STARTS: Final = (".starting", ".executing")
_END_SUFFIXES: Final = ("_completed", "_failed")
_ENTITY_ENDS: Final = (".completed", ".ready", ".failed")


def _start_operation(event_type: str) -> str | None:
    for suffix in _START_SUFFIXES:
        if event_type.endswith(suffix) and len(event_type) > len(suffix):
            return event_type[: -len(suffix)]
    for suffix in _ENTITY_STARTS:
        if event_type.endswith(suffix) and len(event_type) > len(suffix):
            return event_type[: -len(suffix)]
    return None


def _end_operation(event_type: str) -> str | None:
    for suffix in (*_END_SUFFIXES, *_ENTITY_ENDS):
        if event_type.endswith(suffix) and len(event_type) > len(suffix):
            return event_type[: -len(suffix)]
    return None


def _correlation_key(event: TelemetryEvent) -> str:
    return event.job_id or event.machine_id or event.worker_id or event.trace_id or event.service


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) and math.isfinite(value) and value >= 0:
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) and number >= 0 else None
    return None


@dataclass(frozen=True)
class Duration:
    """How long something took. ``name`` is the operation (``connector.processing``) for a
    start/end pair or ``durationMs``, or ``<eventType>:<field>`` for another ``*TimeMs``."""

    name: str
    key: str  # the correlation key: jobId, else machineId, workerId, traceId
    duration_ms: float
    end: TelemetryEvent
    start: TelemetryEvent | None = None
    source: Literal["paired", "explicit"] = "paired"
    outcome: Literal["completed", "failed"] | None = None
    field: str | None = None  # the data field an explicit duration came from

    @property
    def event_type(self) -> str:
        return self.end.event_type


def durations(events: Iterable[TelemetryEvent]) -> list[Duration]:
    """Durations from start/end pairs and from explicit ``durationMs``/``*TimeMs`` fields."""
    pending: dict[tuple[str, str], list[TelemetryEvent]] = defaultdict(list)
    out: list[Duration] = []
    for event in sort_events(events):
        key = _correlation_key(event)
        start_op = _start_operation(event.event_type)
        if start_op is not None:
            pending[(start_op, key)].append(event)
        end_op = _end_operation(event.event_type)
        explicit = _number(event.data.get("durationMs")) if event.data else None
        outcome: Literal["completed", "failed"] | None = None
        if end_op is not None:
            outcome = "failed" if event.event_type.endswith("failed") else "completed"
            queue = pending.get((end_op, key))
            start = queue.pop(0) if queue else None
            if explicit is not None:
                out.append(
                    Duration(end_op, key, explicit, event, start, "explicit", outcome, "durationMs")
                )
            elif start is not None:
                elapsed = float(event.timestamp - start.timestamp)
                out.append(Duration(end_op, key, elapsed, event, start, "paired", outcome))
        elif explicit is not None:
            name = start_op or event.event_type
            out.append(Duration(name, key, explicit, event, None, "explicit", None, "durationMs"))
        for data_key, value in (event.data or {}).items():
            if isinstance(data_key, str) and data_key.endswith("TimeMs"):
                number = _number(value)
                if number is not None:
                    out.append(
                        Duration(
                            f"{event.event_type}:{data_key}",
                            key,
                            number,
                            event,
                            None,
                            "explicit",
                            outcome,
                            data_key,
                        )
                    )
    return out


# -- per-type stats -------------------------------------------------------------------------


@dataclass(frozen=True)
class TypeStats:
    event_type: str
    count: int
    errors: int  # error-level events
    timed: int  # events that carried a duration
    avg_ms: float | None
    p50_ms: float | None
    p95_ms: float | None
    max_ms: float | None
    services: list[str] = field(default_factory=list)


def event_type_stats(events: Iterable[TelemetryEvent]) -> list[TypeStats]:
    """Per event type: how many, how many errors, and the durations that end with that type
    (paired, or an explicit ``durationMs``). The most frequent first."""
    events = list(events)
    counts: dict[str, int] = defaultdict(int)
    errors: dict[str, int] = defaultdict(int)
    services: dict[str, dict[str, None]] = defaultdict(dict)
    for event in events:
        counts[event.event_type] += 1
        if event.level == "error":
            errors[event.event_type] += 1
        services[event.event_type].setdefault(event.service, None)
    times: dict[str, list[float]] = defaultdict(list)
    for duration in durations(events):
        if duration.field in (None, "durationMs"):
            times[duration.event_type].append(duration.duration_ms)
    stats = []
    for event_type, count in counts.items():
        values = times.get(event_type, [])
        stats.append(
            TypeStats(
                event_type=event_type,
                count=count,
                errors=errors[event_type],
                timed=len(values),
                avg_ms=sum(values) / len(values) if values else None,
                p50_ms=percentile(values, 50) if values else None,
                p95_ms=percentile(values, 95) if values else None,
                max_ms=max(values) if values else None,
                services=list(services[event_type]),
            )
        )
    stats.sort(key=lambda s: (-s.count, s.event_type))
    return stats


# -- comparison with the usual -------------------------------------------------------------

# A type of event in at least this share of the typical jobs belongs to the usual sequence;
# one in less than RARE_SHARE of them is extra.
USUAL_SHARE: Final = 0.5
RARE_SHARE: Final = 0.1
# The fields set beside the typical jobs': (name, event type, data key); the connector is the
# job's type, the worker and the machine come from its correlation IDs.
COMPARED_FIELDS: Final = (
    ("connector", "", ""),
    ("worker", "", ""),
    ("machine", "", ""),
    ("attempt", "job.claimed", "attempt"),
    ("priority", "job.created", "priority"),
)
# Fields whose values are many and spread (one worker among thirty is not unusual): they
# differ only with a value none of the typical jobs had.
SPREAD_FIELDS: Final = frozenset({"worker", "machine"})


@dataclass(frozen=True)
class StepComparison:
    """One step of the job (``index`` is its end in the job's timeline) against the usual
    time of the same step among the typical jobs."""

    index: int
    from_type: str
    to_type: str
    from_service: str
    to_service: str
    duration_ms: int
    usual: Usual | None
    slower: bool  # slower than usual (see is_slower_than_usual)

    @property
    def excess_ms(self) -> float | None:
        """How far past the usual p95 (negative when under it)."""
        return None if self.usual is None else self.duration_ms - self.usual.p95_ms


@dataclass(frozen=True)
class SequenceDifference:
    """An event type the job has more or fewer of than the typical jobs."""

    event_type: str
    count: int  # in this job
    usual_count: int  # the most common count among the typical jobs (0 when most lack it)
    share: float  # of the typical jobs that have at least one
    change: Literal["missing", "extra", "fewer", "more"]


@dataclass(frozen=True)
class FieldComparison:
    """A field of the job (its worker, machine, connector, attempt, priority) against the
    values the typical jobs had."""

    name: str
    value: str | None
    usual: str | None  # the most common value among the typical jobs
    usual_share: float
    value_share: float  # of the typical jobs with this job's value
    distinct: int  # distinct values among the typical jobs
    differs: bool


@dataclass(frozen=True)
class Comparison:
    """A job beside the typical jobs of its type: rows ready to render."""

    job_id: str
    job_type: str | None
    typical: int  # how many jobs it is compared with
    duration_ms: int
    usual_duration: Usual | None
    steps: list[StepComparison]
    sequence: list[SequenceDifference]  # only where the job differs
    usual_sequence: list[str]  # the most common sequence of event types
    fields: list[FieldComparison]

    @property
    def slower_steps(self) -> list[StepComparison]:
        return [step for step in self.steps if step.slower]


def _field_value(name: str, event_type: str, key: str, evs: Sequence[TelemetryEvent]) -> str | None:
    if name == "connector":
        return job_type(evs)
    if name in ("worker", "machine"):
        attr = "worker_id" if name == "worker" else "machine_id"
        return next((getattr(e, attr) for e in reversed(evs) if getattr(e, attr)), None)
    for event in reversed(evs):
        if event.event_type == event_type and key in event.data:
            value = event.data[key]
            return value if isinstance(value, str) else str(value)
    return None


def _usual_of(values: list[float]) -> Usual | None:
    if len(values) < SLOW_MIN_SAMPLES:
        return None
    ordered = sorted(values)
    return Usual(percentile(ordered, 50), percentile(ordered, 95), len(ordered))


def compare_with_usual(
    events: Iterable[TelemetryEvent],
    job_id: str,
    *,
    reference: Iterable[TelemetryEvent] | None = None,
) -> Comparison:
    """``job_id`` beside the typical jobs of its type: each step's time against the usual
    p50/p95 of that step, the event types it lacks or has in excess against the usual
    sequence, and its fields against theirs.

    The typical jobs are the completed jobs of the same type among ``reference`` (default:
    the other jobs in ``events``); all the jobs of that type when fewer than
    SLOW_MIN_SAMPLES completed; every other job when the job's type is unknown."""
    events = list(events)
    own = sort_events(e for e in events if e.job_id == job_id)
    others = _by_job(e for e in (events if reference is None else reference) if e.job_id != job_id)
    kind = job_type(own)
    same = [evs for evs in others.values() if kind is None or job_type(evs) == kind]
    typical = [evs for evs in same if job_status(evs) == "completed"]
    if len(typical) < SLOW_MIN_SAMPLES:
        typical = same

    usual = UsualSteps(typical)
    steps = []
    for index, (prev, cur) in enumerate(itertools.pairwise(own), start=1):
        step_usual = usual.between(prev, cur)
        p95 = None if step_usual is None else step_usual.p95_ms
        delta = cur.timestamp - prev.timestamp
        steps.append(
            StepComparison(
                index=index,
                from_type=prev.event_type,
                to_type=cur.event_type,
                from_service=prev.service,
                to_service=cur.service,
                duration_ms=delta,
                usual=step_usual,
                slower=is_slower_than_usual(delta, p95),
            )
        )

    counts = [Counter(e.event_type for e in evs) for evs in typical]
    mine = Counter(e.event_type for e in own)
    sequence: list[SequenceDifference] = []
    if counts:
        for event_type in dict.fromkeys([*mine, *(t for c in counts for t in c)]):
            share = sum(1 for c in counts if event_type in c) / len(counts)
            usual_count = Counter(c.get(event_type, 0) for c in counts).most_common(1)[0][0]
            count = mine.get(event_type, 0)
            change: Literal["missing", "extra", "fewer", "more"] | None = None
            if count == 0 and share >= USUAL_SHARE:
                change = "missing"
            elif count > 0 and share < RARE_SHARE:
                change = "extra"
            elif share >= USUAL_SHARE and count < usual_count:
                change = "fewer"
            elif share >= USUAL_SHARE and count > usual_count:
                change = "more"
            if change is not None:
                sequence.append(SequenceDifference(event_type, count, usual_count, share, change))
    modal = Counter(tuple(e.event_type for e in evs) for evs in typical).most_common(1)

    fields = []
    for name, event_type, key in COMPARED_FIELDS:
        value = _field_value(name, event_type, key, own)
        seen = Counter(_field_value(name, event_type, key, evs) for evs in typical)
        seen.pop(None, None)
        total = sum(seen.values())
        top, top_count = seen.most_common(1)[0] if seen else (None, 0)
        value_share = seen.get(value, 0) / total if total and value is not None else 0.0
        # A value none of them had, or (but for a worker or a machine, one among many) a
        # value few of them had.
        differs = bool(total) and (
            value is None
            or value not in seen
            or (name not in SPREAD_FIELDS and value_share < RARE_SHARE)
        )
        fields.append(
            FieldComparison(
                name=name,
                value=value,
                usual=top,
                usual_share=top_count / total if total else 0.0,
                value_share=value_share,
                distinct=len(seen),
                differs=differs,
            )
        )

    return Comparison(
        job_id=job_id,
        job_type=kind,
        typical=len(typical),
        duration_ms=own[-1].timestamp - own[0].timestamp if own else 0,
        usual_duration=_usual_of([float(evs[-1].timestamp - evs[0].timestamp) for evs in typical]),
        steps=steps,
        sequence=sequence,
        usual_sequence=list(modal[0][0]) if modal else [],
        fields=fields,
    )


# -- correlation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Related:
    """An event related to the job, listed once with every way it is related: ``by`` says
    how (``trace``, ``worker``, ``machine``) and ``keys`` through what (the trace, worker or
    machine ID), pairwise."""

    event: TelemetryEvent
    by: tuple[str, ...]
    keys: tuple[str, ...]

    @property
    def other_job(self) -> bool:
        """Whether it belongs to another job (rather than to the worker or machine itself)."""
        return self.event.job_id is not None


@dataclass(frozen=True)
class Correlation:
    job_id: str
    timeline: Timeline
    handoffs: list[Handoff]
    trace_ids: list[str]
    by_trace: list[TelemetryEvent]  # other events (not this job's) sharing its trace
    by_worker: dict[str, list[TelemetryEvent]]  # other events of its workers, in its window
    by_machine: dict[str, list[TelemetryEvent]]  # other events of its machines, in its window
    window_start_ms: int
    window_end_ms: int
    related: list[Related] = field(default_factory=list)
    """Every event of ``by_trace``, ``by_worker`` and ``by_machine`` once, in time order."""

    def most_telling(self, limit: int | None) -> list[Related]:
        """At most ``limit`` of :attr:`related`, in time order: the workers' and machines'
        own events (a restart, a crash) before other jobs' events, and of each, those
        nearest the job's life before those further off."""
        if limit is None or len(self.related) <= limit:
            return list(self.related)
        start, end = self.timeline.start_ms, self.timeline.end_ms

        def distance(item: Related) -> int:
            at = item.event.timestamp
            return 0 if start <= at <= end else min(abs(at - start), abs(at - end))

        chosen = sorted(self.related, key=lambda r: (r.other_job, distance(r)))[:limit]
        kept = {id(item) for item in chosen}
        return [item for item in self.related if id(item) in kept]


def correlate(
    events: Iterable[TelemetryEvent],
    job_id: str,
    *,
    gap_ms: int = DEFAULT_GAP_MS,
    after_ms: int = DEFAULT_STALL_THRESHOLD_MS,
    now_ms: int | None = None,
    reference: Iterable[TelemetryEvent] | None = None,
) -> Correlation:
    """``job_id``'s timeline and handoffs, and the other events that share its trace (any
    time) or its workers or machines over the job's whole life and ``after_ms`` after its
    last event (what a worker did once it went quiet: restarted, crashed, took another job).
    Each related event once (:attr:`Correlation.related`). ``reference``: as for
    :func:`job_timeline`."""
    events = list(events)
    timeline = job_timeline(events, job_id, gap_ms=gap_ms, now_ms=now_ms, reference=reference)
    own = timeline.events
    traces = list(dict.fromkeys(e.trace_id for e in own if e.trace_id))
    workers = set(e.worker_id for e in own if e.worker_id)
    machines = set(e.machine_id for e in own if e.machine_id)
    lo, hi = timeline.start_ms, timeline.end_ms + after_ms
    trace_set = set(traces)
    by_trace: list[TelemetryEvent] = []
    by_worker: dict[str, list[TelemetryEvent]] = defaultdict(list)
    by_machine: dict[str, list[TelemetryEvent]] = defaultdict(list)
    related: list[Related] = []
    for event in sort_events(events):
        if event.job_id == job_id:
            continue
        how: list[tuple[str, str]] = []
        if event.trace_id in trace_set:
            by_trace.append(event)
            how.append(("trace", event.trace_id))
        if own and lo <= event.timestamp <= hi:
            if event.worker_id in workers:
                by_worker[event.worker_id].append(event)
                how.append(("worker", event.worker_id))
            if event.machine_id in machines:
                by_machine[event.machine_id].append(event)
                how.append(("machine", event.machine_id))
        if how:
            related.append(Related(event, tuple(b for b, _ in how), tuple(k for _, k in how)))
    return Correlation(
        job_id=job_id,
        timeline=timeline,
        handoffs=job_handoffs(own, job_id),
        trace_ids=traces,
        by_trace=by_trace,
        by_worker=dict(by_worker),
        by_machine=dict(by_machine),
        window_start_ms=lo,
        window_end_ms=hi,
        related=related,
    )


# -- where the sources may not hold the whole job ---------------------------------------------

JOB_START_TYPES: Final = frozenset({"job.created", "job.submitted"})
"""The event types a job's story begins with."""
START_HORIZON_MS: Final = 15 * 60_000
"""A job whose first event held comes this long after the sources begin is taken to have
begun after it even without its creation event (queue waits are shorter)."""


def missing_start(
    events: Sequence[TelemetryEvent],
    sources_start_ms: int | None,
    *,
    horizon_ms: int = START_HORIZON_MS,
) -> int | None:
    """When the sources may not hold the start of a job: how long after the sources' oldest
    moment (``sources_start_ms``: a stream trimmed by MAXLEN, logs that begin late) its first
    event held comes, that first event not being its creation. None when the job is whole at
    its start as far as can be told (it begins with ``job.created``, or long after the
    sources do). ``events`` are the job's, in time order."""
    if not events or sources_start_ms is None:
        return None
    first = events[0]
    if first.event_type in JOB_START_TYPES:
        return None
    lead = order_key(first.id, first.timestamp)[0] - sources_start_ms
    return max(lead, 0) if lead <= horizon_ms else None


# -- a histogram of events over time ----------------------------------------------------------


@dataclass(frozen=True)
class Histogram:
    """Events counted in equal slices of ``[since_ms, until_ms]``, and the errors among them."""

    since_ms: int
    until_ms: int
    counts: tuple[int, ...]
    errors: tuple[int, ...]

    @property
    def slice_ms(self) -> float:
        return max(self.until_ms - self.since_ms, 1) / max(len(self.counts), 1)

    def bucket_of(self, ms: int) -> int | None:
        """The slice ``ms`` falls in (None outside the span)."""
        if not self.counts or ms < self.since_ms or ms > self.until_ms:
            return None
        return min(int((ms - self.since_ms) / self.slice_ms), len(self.counts) - 1)


def histogram(
    events: Iterable[TelemetryEvent], since_ms: int, until_ms: int, buckets: int
) -> Histogram:
    """``events`` (by their own timestamps) in ``buckets`` equal slices of the span; events
    outside it are left out."""
    buckets = max(buckets, 1)
    until_ms = max(until_ms, since_ms)
    counts = [0] * buckets
    errors = [0] * buckets
    span = max(until_ms - since_ms, 1)
    for event in events:
        ms = event.timestamp
        if ms < since_ms or ms > until_ms:
            continue
        index = min((ms - since_ms) * buckets // span, buckets - 1)
        counts[index] += 1
        if event.level == "error":
            errors[index] += 1
    return Histogram(since_ms, until_ms, tuple(counts), tuple(errors))
