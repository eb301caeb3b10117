"""What is wrong, with the evidence: detectors over events. Pure: no I/O, no clock, no Textual.

:func:`find_problems` runs every detector over the events at hand and returns
:class:`Finding` values, the most severe first and, among equals, the newest first. A finding
says what is wrong in one line that carries the numbers ("orphaned: worker gpu-02-w2 restarted
(exit 137) at 06:00:58, 18s after the last event of job_8034b610a9f7 (comfyui), which never
ended"), names its
subjects (job, worker, machine, service, connector), its time span and count, and its
evidence: a filter in the query language of :mod:`emp_tui.query` and/or a job to open.

The detectors read what the services say about themselves and about jobs, never the monitor
service's verdicts (its ``stalledJobs`` lists): without any monitor event they find the same
problems. What events cannot tell (the collectors' health, how the stream is trimmed) comes
in as plain values the caller has read: the collectors' health hashes as dicts of strings
(:func:`emp_tui.health.read_collectors`) and a :class:`StreamState` (from XINFO, with
:meth:`StreamState.from_xinfo`).

"Now" is an argument (``now_ms``): the wall clock while reading a live stream, otherwise the
newest event the sources hold (the default here).

The detectors, each over a :class:`Facts` (the events indexed once):

* :func:`stalled_jobs`: open jobs quiet past the threshold (``stall``), or whose worker
  restarted, crashed or took another job meanwhile (``orphaned``);
* :func:`failure_clusters`: failed jobs grouped by a normalised error signature and job type,
  a burst told apart from the steady rate of the same error; other errors grouped alike;
* :func:`slow_jobs`: finished jobs far slower than usual for their type, naming the step;
* :func:`queue_waits`: job types whose wait for a worker is abnormal, explained by capacity
  (which machines and workers serve the type, since when, which failed to start, bursts);
* :func:`never_claimed`: jobs waiting for a type no worker advertises;
* :func:`service_failures`: services a machine failed to start;
* :func:`traffic_bursts`: job arrivals well over their usual rate;
* :func:`silent_services`, :func:`clock_skew`;
* :func:`collector_problems`: trim loss, collector lag or absence (from the caller's inputs).
"""

from __future__ import annotations

import bisect
import itertools
import math
import operator
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Final, Literal

from emp_tui import text
from emp_tui.analysis import (
    JOB_COMPLETED_TYPES,
    JOB_FAILED_TYPES,
    SLOW_FACTOR,
    Usual,
    UsualSteps,
    is_slower_than_usual,
    percentile,
)
from emp_tui.analysis import job_type as type_of_job
from emp_tui.config import DEFAULT_GAP_MS, DEFAULT_STALL_THRESHOLD_MS
from emp_tui.events import DEFAULT_MAXLEN, TelemetryEvent
from emp_tui.query import quote_value
from emp_tui.stream_ids import order_key, parse_id, stream_id_ms

__all__ = [
    "KINDS",
    "SEVERITIES",
    "SEVERITY_RANK",
    "Facts",
    "Finding",
    "GroupState",
    "StreamState",
    "Thresholds",
    "clock_skew",
    "collector_problems",
    "error_signature",
    "failure_clusters",
    "find_problems",
    "never_claimed",
    "queue_waits",
    "service_failures",
    "silent_services",
    "slow_jobs",
    "stalled_jobs",
    "traffic_bursts",
]

Severity = Literal["critical", "error", "warn", "info"]
SEVERITIES: Final[tuple[Severity, ...]] = ("critical", "error", "warn", "info")
# Higher is more severe, like events.LEVEL_RANK.
SEVERITY_RANK: Final[dict[str, int]] = {"info": 0, "warn": 1, "error": 2, "critical": 3}

KINDS: Final = (
    "stalled",
    "orphaned",
    "failure-cluster",
    "slow-job",
    "queue-wait",
    "never-claimed",
    "service-failed",
    "traffic-burst",
    "silent-service",
    "clock-skew",
    "trim-loss",
    "collector-lag",
    "collector-absent",
)

STANDING_KINDS: Final = frozenset({"collector-absent"})
"""Kinds that describe how the pipeline is set up rather than something that happened: they
follow the incidents of their severity."""

DEFAULT_STALL_MS: Final = DEFAULT_STALL_THRESHOLD_MS
DEFAULT_SILENT_MS: Final = 60_000
DEFAULT_SKEW_MS: Final = 60_000
# A wait for a worker this long is an error, not a warning.
QUEUE_WAIT_ERROR_MS: Final = 30_000
# Arrivals are counted in buckets of BURST_BUCKET_MS; a bucket BURST_FACTOR x over the usual
# (the median bucket) is hot, and consecutive hot buckets with BURST_MIN_EXCESS jobs over the
# usual are a burst.
BURST_BUCKET_MS: Final = 5_000
BURST_FACTOR: Final = 1.6
BURST_MIN_EXCESS: Final = 20
# Failures of one signature close together (gaps under the larger of 2 x gap_ms and five
# typical gaps between finished jobs of the type) are a burst when there are at least
# FAILURE_BURST_MIN of them and so many that the rate of the same error elsewhere would give
# as many that fast with a probability under FAILURE_BURST_P (Poisson), failing at least
# FAILURE_BURST_SHARE of the jobs of the type meanwhile; an outage (critical) fails
# OUTAGE_SHARE of them.
FAILURE_BURST_MIN: Final = 5
FAILURE_BURST_P: Final = 1e-6
FAILURE_BURST_SHARE: Final = 0.3
OUTAGE_SHARE: Final = 0.9
# Steady failures of one kind are a warning (not info) past this share of the type's jobs.
FAILURE_STEADY_WARN_SHARE: Final = 0.2
# One machine holding this share of a cluster's failures is named.
MACHINE_SHARE: Final = 0.8
# Slow jobs are judged against at least this many completed jobs of their type; a job is
# slow when it took SLOW_JOB_FACTOR x their p95, or one of its steps took SLOW_FACTOR x the
# step's usual p95; either way gap_ms or more past that p95.
SLOW_JOB_MIN_SAMPLES: Final = 10
SLOW_JOB_FACTOR: Final = 3.0
# A service is judged silent only when it spoke regularly: at least this many events, over at
# least as long as it has now been silent, and silent for SILENT_FACTOR x its mean interval.
SILENT_MIN_EVENTS: Final = 10
SILENT_FACTOR: Final = 10.0
# Clock skew: each service's timestamps against the stream's clock, compared with the other
# services' in windows of SKEW_WINDOW entries in stream order, over at most SKEW_SAMPLE events.
SKEW_WINDOW: Final = 200
SKEW_SAMPLE: Final = 4_000
# Collector lag as a share of the stream's MAXLEN: a warning, then an error.
LAG_WARN_SHARE: Final = 0.1
LAG_ERROR_SHARE: Final = 0.5
LAG_WARN_MIN: Final = 1_000
# A stream this close to its MAXLEN is trimming.
TRIMMING_SHARE: Final = 0.95
# What is usual for a type is learnt from at most this many of its jobs, spread over the
# range; services are counted on a sample of SERVICE_SAMPLE events.
USUAL_SAMPLE: Final = 100
SERVICE_SAMPLE: Final = 5_000
# Job IDs listed in an evidence filter at most; past it the filter names the type instead.
EVIDENCE_JOBS: Final = 20

# Workers say which connectors they serve in one of these data fields (a list of names).
_ADVERTISE_KEYS: Final = ("connectorTypes", "connectors", "capabilities", "jobTypes")
# A worker's own events that mean it stopped running what it held.
_WORKER_LOSS_SUFFIXES: Final = (
    ".starting",
    ".restarted",
    ".crashed",
    ".stopped",
    ".exited",
    ".terminated",
    ".disconnected",
    ".died",
    ".killed",
    ".error",
    "_failed",
    ".failed",
)
_MACHINE_LOSS_SUFFIXES: Final = (
    ".starting",
    ".restarted",
    ".crashed",
    ".stopped",
    ".shutdown",
    ".shutting_down",
    ".terminated",
    ".failed",
)
# A job with events of these families is past its end (webhooks report a finished job); one
# with none of the lifecycle families is not known to run at all.
_AFTER_END_PREFIXES: Final = ("webhook.",)
_LIFECYCLE_PREFIXES: Final = ("job.", "connector.")
_ERROR_KEYS: Final = ("error", "message", "reason", "errorMessage")
_SERVICE_KEYS: Final = ("serviceName", "service", "name")

_by_time = operator.attrgetter("timestamp")
_by_service = operator.attrgetter("service")


# -- the finding ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One thing that is wrong. ``title`` is one line with the evidence numbers; ``count`` is
    what the kind counts (jobs, failures, events); ``first_ms``/``last_ms`` its time span.
    ``service`` is an emitting service (api-server, worker) or a service a machine runs
    (comfyui); ``connector`` the job type. ``evidence`` is a filter in the query language
    that shows the events behind it; ``job_id`` a job to open. ``data`` holds the numbers
    behind the title, for scripts."""

    kind: str
    severity: Severity
    title: str
    first_ms: int
    last_ms: int
    count: int = 1
    job_id: str | None = None
    jobs: tuple[str, ...] = ()
    worker_id: str | None = None
    machine_id: str | None = None
    service: str | None = None
    connector: str | None = None
    evidence: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @property
    def key(self) -> str:
        """A stable identity: the same problem keeps it while more events arrive."""
        subjects = (self.job_id, self.worker_id, self.machine_id, self.service, self.connector)
        return ":".join([self.kind, *(s for s in subjects if s), str(self.first_ms)])

    @property
    def rank(self) -> tuple[int, int, int, int]:
        """Sort key: the most severe first; of one severity, what happened before a standing
        state of the setup (no collector, which is "new" at every look and would otherwise
        head the list over the story); then the newest; of two as new (two jobs silent until
        now), the one that has lasted longer."""
        standing = 1 if self.kind in STANDING_KINDS else 0
        return -SEVERITY_RANK[self.severity], standing, -self.last_ms, self.first_ms

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "severity": self.severity,
            "title": self.title,
            "firstMs": self.first_ms,
            "lastMs": self.last_ms,
            "count": self.count,
            "jobId": self.job_id,
            "jobs": list(self.jobs),
            "workerId": self.worker_id,
            "machineId": self.machine_id,
            "service": self.service,
            "connector": self.connector,
            "evidence": self.evidence,
            "key": self.key,
            "data": dict(self.data),
        }


def _sorted(findings: Iterable[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (*f.rank, f.kind, f.title))


# -- inputs that are not events -------------------------------------------------------------


@dataclass(frozen=True)
class GroupState:
    """A consumer group of the stream, as XINFO GROUPS tells it."""

    name: str
    last_delivered_id: str | None = None
    lag: int | None = None  # None when Redis cannot tell (before 7, or after deletions)
    pending: int | None = None
    consumers: int | None = None


@dataclass(frozen=True)
class StreamState:
    """The stream, as XINFO STREAM tells it, and the MAXLEN its emitters trim it to."""

    key: str
    length: int
    maxlen: int = DEFAULT_MAXLEN
    first_id: str | None = None
    last_id: str | None = None
    groups: tuple[GroupState, ...] = ()

    @classmethod
    def from_xinfo(
        cls,
        key: str,
        stream: Mapping[Any, Any],
        groups: Sequence[Mapping[Any, Any]] = (),
        *,
        maxlen: int = DEFAULT_MAXLEN,
    ) -> StreamState:
        """From what redis-py's ``xinfo_stream`` and ``xinfo_groups`` return (bytes or
        text, as the client decodes)."""

        def entry_id(entry: Any) -> str | None:
            if isinstance(entry, list | tuple) and entry:
                return _decoded(entry[0])
            return None

        def number(value: Any) -> int | None:
            text = _decoded(value)
            return int(text) if text is not None and text.isascii() and text.isdigit() else None

        def field_of(info: Mapping[Any, Any], name: str) -> Any:
            return info.get(name, info.get(name.encode()))

        return cls(
            key=key,
            length=number(field_of(stream, "length")) or 0,
            maxlen=maxlen,
            first_id=entry_id(field_of(stream, "first-entry")),
            last_id=entry_id(field_of(stream, "last-entry")),
            groups=tuple(
                GroupState(
                    name=_decoded(field_of(group, "name")) or "?",
                    last_delivered_id=_decoded(field_of(group, "last-delivered-id")),
                    lag=number(field_of(group, "lag")),
                    pending=number(field_of(group, "pending")),
                    consumers=number(field_of(group, "consumers")),
                )
                for group in groups
            ),
        )

    @classmethod
    def combined(cls, key: str, shards: Sequence[StreamState]) -> StreamState:
        """The shards of a sharded stream as one: lengths and lags summed, each trimmed to
        its MAXLEN (so the whole holds their sum), the oldest first entry, the newest last,
        a group's last delivered ID its oldest over the shards (where it is furthest
        behind)."""
        if len(shards) == 1:
            return shards[0]

        def id_order(entry_id: str | None) -> tuple[int, int]:
            return order_key(entry_id, 0)

        firsts = [s.first_id for s in shards if s.first_id is not None]
        lasts = [s.last_id for s in shards if s.last_id is not None]
        by_name: dict[str, list[GroupState]] = {}
        for shard in shards:
            for group in shard.groups:
                by_name.setdefault(group.name, []).append(group)

        def total(values: list[int | None]) -> int | None:
            return None if any(v is None for v in values) else sum(v or 0 for v in values)

        groups = []
        for name, parts in by_name.items():
            delivered = [g.last_delivered_id for g in parts if g.last_delivered_id is not None]
            consumers = [g.consumers for g in parts if g.consumers is not None]
            groups.append(
                GroupState(
                    name=name,
                    last_delivered_id=min(delivered, key=id_order) if delivered else None,
                    lag=total([g.lag for g in parts]) if len(parts) == len(shards) else None,
                    pending=total([g.pending for g in parts]),
                    consumers=max(consumers) if consumers else None,
                )
            )
        return cls(
            key=key,
            length=sum(s.length for s in shards),
            maxlen=sum(s.maxlen for s in shards),
            first_id=min(firsts, key=id_order) if firsts else None,
            last_id=max(lasts, key=id_order) if lasts else None,
            groups=tuple(groups),
        )


def _decoded(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


@dataclass(frozen=True)
class Thresholds:
    """``gap_ms``: a step or a wait over it is worth a look (the timeline's gap threshold);
    ``stall_ms``: an open job quiet this long (or SLOW_FACTOR x the usual time of its next
    step, when longer) is stalled; ``silent_ms``: a regular service silent this long;
    ``skew_ms``: a service whose clock is this far from the others'."""

    gap_ms: int = DEFAULT_GAP_MS
    stall_ms: int = DEFAULT_STALL_MS
    silent_ms: int = DEFAULT_SILENT_MS
    skew_ms: int = DEFAULT_SKEW_MS


# -- facts: the events indexed once ---------------------------------------------------------


@dataclass(eq=False, slots=True)
class JobFacts:
    """What one job's events say, its events in time order (ties keep the order given). Built
    by :meth:`Facts.job` for the jobs a detector looks at closely."""

    id: str
    events: list[TelemetryEvent]
    type: str | None = None
    queued_ms: int | None = None
    claim: TelemetryEvent | None = None  # the first claim
    last_claim: TelemetryEvent | None = None
    terminal: TelemetryEvent | None = None  # the last end (completed or failed)
    outcome: Literal["completed", "failed"] | None = None

    @property
    def last(self) -> TelemetryEvent:
        """Its newest event."""
        return self.events[-1]

    @property
    def running(self) -> bool:
        """Whether its events say it runs: some of its lifecycle (``job.*``, ``connector.*``)
        and none sent only once a job has ended (webhooks). An API error that names a job
        does not make one."""
        return not any(e.event_type.startswith(_AFTER_END_PREFIXES) for e in self.events) and any(
            e.event_type.startswith(_LIFECYCLE_PREFIXES) for e in self.events
        )

    @property
    def worker(self) -> str | None:
        return self.last_claim.worker_id if self.last_claim is not None else None

    @property
    def machine(self) -> str | None:
        if self.last_claim is None:
            return None
        claimed = self.last_claim
        return claimed.machine_id or _text(claimed.data.get("machineId"))


def _job_facts(job_id: str, events: list[TelemetryEvent], job_type: str | None) -> JobFacts:
    events.sort(key=_by_time)
    job = JobFacts(job_id, events, type=job_type)
    for event in events:
        role = _ROLES.get(event.event_type)
        if role == _QUEUED:
            if job.queued_ms is None:
                job.queued_ms = event.timestamp
        elif role == _CLAIMED:
            job.claim = job.claim or event
            job.last_claim = event
        elif role in (_COMPLETED, _FAILED):
            job.terminal = event
            job.outcome = "completed" if role == _COMPLETED else "failed"
    return job


@dataclass(eq=False, slots=True)
class WorkerFacts:
    id: str
    machine: str | None = None
    serves: dict[str, int | None] = field(default_factory=dict)  # connector -> ready at (ms)
    events: list[TelemetryEvent] = field(default_factory=list)  # its own (not jobs') events
    claims: list[str] = field(default_factory=list)  # the jobs it held last, in the order given


@dataclass(eq=False, slots=True)
class MachineFacts:
    id: str
    starting_ms: int | None = None
    ready: TelemetryEvent | None = None
    events: list[TelemetryEvent] = field(default_factory=list)  # its own (not jobs') events
    started: dict[str, int] = field(default_factory=dict)  # service -> last started (ms)
    failed: list[tuple[str, TelemetryEvent]] = field(default_factory=list)  # (service, event)

    @property
    def startup_ms(self) -> int | None:
        """How long it took to start: the ``startupTimeMs`` it reported, else measured."""
        if self.ready is None:
            return None
        reported = self.ready.data.get("startupTimeMs")
        if isinstance(reported, int | float) and not isinstance(reported, bool):
            return int(reported)
        if self.starting_ms is not None:
            return self.ready.timestamp - self.starting_ms
        return None


@dataclass(frozen=True, slots=True)
class _ServiceFacts:
    first_ms: int
    last_ms: int
    count: int


@dataclass(frozen=True, slots=True)
class _Burst:
    first_ms: int
    last_ms: int
    jobs: int
    excess: int
    factor: float
    usual_per_s: float


@dataclass(frozen=True, slots=True)
class _Wait:
    job_id: str
    queued_ms: int
    wait_ms: int
    claimed: bool


@dataclass(frozen=True, slots=True)
class _Episode:
    """Jobs of one type that waited long for a worker, close together in time."""

    type: str
    waits: tuple[_Wait, ...]
    first_ms: int
    last_ms: int

    @property
    def longest(self) -> _Wait:
        return max(self.waits, key=lambda w: w.wait_ms)


class Facts:
    """The events indexed once for every detector: jobs, workers, machines, services, errors.
    ``now_ms`` defaults to the newest event's timestamp."""

    def __init__(
        self,
        events: Iterable[TelemetryEvent],
        *,
        now_ms: int | None = None,
        thresholds: Thresholds | None = None,
    ) -> None:
        self.events = events if isinstance(events, list) else list(events)
        self.thresholds = thresholds or Thresholds()
        # Per job: its events in the order given, and its first creation, first queueing,
        # first and last claim and last end.
        self.by_job: dict[str, list[TelemetryEvent]] = {}
        self.created: dict[str, TelemetryEvent] = {}
        self.queued: dict[str, TelemetryEvent] = {}
        self.claims: dict[str, TelemetryEvent] = {}
        self.last_claims: dict[str, TelemetryEvent] = {}
        self.ends: dict[str, TelemetryEvent] = {}
        # The jobs with a step over gap_ms from an event to the next one of the same service
        # in the order given, once claimed and before their end. One service's events keep
        # their order in a stream (between services the order given can be off by the
        # emitters' flush delays), so these are the jobs that slow_jobs() looks at step by
        # step (besides those slow over all).
        self.stepped: set[str] = set()
        self.others: list[TelemetryEvent] = []  # the events of no job
        self.errors: list[TelemetryEvent] = []  # every error-level event
        self._index()
        newest = max(map(_by_time, self.events), default=None)
        self.now_ms: int = now_ms if now_ms is not None else (newest or 0)
        self.newest_ms: int = self.now_ms if newest is None else min(newest, self.now_ms)
        """The newest event's time: past it nothing is known (not even that no job came)."""
        self.start_ms: int = min(map(_by_time, self.events), default=self.now_ms)
        self.workers: dict[str, WorkerFacts] = {}
        self.machines: dict[str, MachineFacts] = {}
        self._index_fleet()
        self._jobs: dict[str, JobFacts] = {}
        self._usual: dict[str, UsualSteps] = {}
        self._run_gaps: dict[str, int] = {}

    def _index(self) -> None:
        """The one pass over every event. It runs for every event at hand: keep it lean (the
        detectors look closer at the few jobs that need it, through :meth:`job`)."""
        by_job, others, errors, stepped = self.by_job, self.others, self.errors, self.stepped
        created, queued, claims, last_claims, ends = (
            self.created,
            self.queued,
            self.claims,
            self.last_claims,
            self.ends,
        )
        roles, gap = _ROLES, self.thresholds.gap_ms
        for event in self.events:
            if event.level == "error":
                errors.append(event)
            job_id = event.job_id
            if job_id is None:
                others.append(event)
                continue
            evs = by_job.get(job_id)
            if evs is None:
                by_job[job_id] = [event]
            else:
                if job_id in claims and job_id not in ends:
                    previous: TelemetryEvent | None = evs[-1]
                    if evs[-1].service != event.service:
                        previous = _last_of(evs, event.service)
                    if previous is not None and event.timestamp - previous.timestamp > gap:
                        stepped.add(job_id)
                evs.append(event)
            role = roles.get(event.event_type)
            if role is None:
                continue
            if role == _CLAIMED:
                if job_id not in claims:
                    claims[job_id] = event
                last_claims[job_id] = event
            elif role >= _COMPLETED:
                ends[job_id] = event
            elif role == _CREATED:
                if job_id not in created:
                    created[job_id] = event
            elif job_id not in queued:
                queued[job_id] = event

    def job(self, job_id: str) -> JobFacts:
        """One job looked at closely (its events put in time order)."""
        job = self._jobs.get(job_id)
        if job is None:
            job = self._jobs[job_id] = _job_facts(
                job_id, self.by_job[job_id], self.job_type(job_id)
            )
        return job

    @cached_property
    def types(self) -> dict[str, str]:
        """Each job's type (see analysis.job_type): from its job.created (jobType), else its
        job.queued (queueName), else what its events say."""
        found = {
            job_id: name
            for job_id, event in self.queued.items()
            if (name := _text(event.data.get("queueName")))
        }
        found.update(
            (job_id, name)
            for job_id, event in self.created.items()
            if (name := _text(event.data.get("jobType")))
        )
        for job_id in self.by_job.keys() - found.keys():
            name = type_of_job(self.by_job[job_id])
            if name is not None:
                found[job_id] = name
        return found

    def job_type(self, job_id: str) -> str | None:
        return self.types.get(job_id)

    def user(self, job_id: str) -> str | None:
        """Who asked for the job: its job.created's user, else any of its events'."""
        created = self.created.get(job_id)
        if created is not None:
            user = created.user_id or _text(created.data.get("userId"))
            if user:
                return user
        return next((e.user_id for e in self.by_job.get(job_id, ()) if e.user_id), None)

    @cached_property
    def ends_by_type(self) -> dict[str, list[str]]:
        """The ended jobs of each type, in the order given."""
        found: dict[str, list[str]] = defaultdict(list)
        types = self.types
        for job_id in self.ends:
            name = types.get(job_id)
            if name is not None:
                found[name].append(job_id)
        return dict(found)

    def is_open(self, job_id: str) -> bool:
        """Not ended, and not waiting in a queue for a first claim."""
        return job_id not in self.ends and (job_id in self.claims or job_id not in self.queued)

    @cached_property
    def services(self) -> dict[str, _ServiceFacts]:
        """Per service: its first and last event and how many it sent. Past SERVICE_SAMPLE
        events, counted on a sample (but for the events of no job, all counted), and its
        first and last known to within the sample's stride."""
        events = self.events
        stride = max(1, len(events) // SERVICE_SAMPLE)
        sample = events[::stride] if stride > 1 else events
        counts = Counter(map(_by_service, self.others))
        for service, count in Counter(map(_by_service, sample)).items():
            counts[service] = max(counts[service], count * stride)
        first: dict[str, int] = {}
        last: dict[str, int] = {}
        looked = (self.others, sample, events[:stride], events[-stride:])
        for event in itertools.chain.from_iterable(looked):
            service, ts = event.service, event.timestamp
            if ts < first.get(service, ts + 1):
                first[service] = ts
            if ts > last.get(service, ts - 1):
                last[service] = ts
        return {s: _ServiceFacts(first[s], last[s], n) for s, n in counts.items()}

    # -- the fleet: workers, machines, what they serve ----------------------------------

    def _worker(self, worker_id: str) -> WorkerFacts:
        worker = self.workers.get(worker_id)
        if worker is None:
            worker = self.workers[worker_id] = WorkerFacts(worker_id)
        return worker

    def _machine(self, machine_id: str) -> MachineFacts:
        machine = self.machines.get(machine_id)
        if machine is None:
            machine = self.machines[machine_id] = MachineFacts(machine_id)
        return machine

    def _index_fleet(self) -> None:
        for event in sorted(self.others, key=_by_time):
            etype = event.event_type
            if event.worker_id:
                worker = self._worker(event.worker_id)
                worker.events.append(event)
                worker.machine = worker.machine or event.machine_id
                for name in _advertised(event):
                    ready = event.timestamp if etype.endswith(".ready") else None
                    if worker.serves.get(name) is None:
                        worker.serves[name] = ready
            elif event.machine_id:
                machine = self._machine(event.machine_id)
                machine.events.append(event)
                service = _service_name(event)
                if etype == "machine.starting":
                    machine.starting_ms = event.timestamp
                elif etype == "machine.ready":
                    machine.ready = event
                elif service and _is_service_failure(etype):
                    machine.failed.append((service, event))
                elif service and etype.endswith(("service_started", "service.started")):
                    machine.started[service] = event.timestamp
        # The workers that claimed jobs (the last claim of each: the one that held it).
        workers, types = self.workers, self.types
        for job_id, claim in self.last_claims.items():
            worker_id = claim.worker_id
            if not worker_id:
                continue
            holder = workers.get(worker_id)
            if holder is None:
                holder = workers[worker_id] = WorkerFacts(worker_id)
            holder.claims.append(job_id)
            if holder.machine is None:
                holder.machine = claim.machine_id or _text(claim.data.get("machineId"))
            kind = types.get(job_id)
            if kind and kind not in holder.serves:
                holder.serves[kind] = claim.timestamp
        for worker in self.workers.values():
            if worker.machine:
                self._machine(worker.machine)

    def serving(self, job_type: str) -> list[WorkerFacts]:
        """The workers that advertise ``job_type`` or have run a job of it."""
        return [w for w in self.workers.values() if job_type in w.serves]

    def usual_steps(self, job_type: str | None) -> UsualSteps:
        """How long each step usually takes in the completed jobs of ``job_type`` (at most
        USUAL_SAMPLE of them, spread over the range)."""
        key = job_type or ""
        usual = self._usual.get(key)
        if usual is None:
            done = [
                job_id
                for job_id in self.ends_by_type.get(key, ())
                if _ROLES[self.ends[job_id].event_type] == _COMPLETED
            ]
            usual = UsualSteps(
                sorted(self.by_job[job_id], key=_by_time)
                for job_id in done[:: max(1, len(done) // USUAL_SAMPLE)]
            )
            self._usual[key] = usual
        return usual

    def run_gap(self, job_type: str | None) -> int:
        """Failures this close together belong to one run: the larger of 2 x ``gap_ms`` and
        five typical gaps between the ends of jobs of ``job_type``."""
        key = job_type or ""
        gap = self._run_gaps.get(key)
        if gap is None:
            gap = 2 * self.thresholds.gap_ms
            ends = self.finished_by_type.get(key, [])
            if len(ends) >= 3:
                spread = ends[:: max(1, len(ends) // USUAL_SAMPLE)]
                typical = statistics.median(b - a for a, b in itertools.pairwise(spread))
                gap = max(gap, int(5 * typical * len(spread) / len(ends)))
            self._run_gaps[key] = gap
        return gap

    @cached_property
    def finished_by_type(self) -> dict[str, list[int]]:
        """The end times of the finished jobs of each type, in order."""
        return {
            name: sorted(self.ends[job_id].timestamp for job_id in ended)
            for name, ended in self.ends_by_type.items()
        }

    @cached_property
    def bursts(self) -> list[_Burst]:
        # Up to the newest event, not to now: a silence of every service is no news of
        # arrivals, and counted as none it would make all that came before a burst.
        created = sorted(e.timestamp for e in self.created.values())
        return _arrival_bursts(created, self.newest_ms)

    @cached_property
    def episodes(self) -> list[_Episode]:
        """Jobs that waited over ``gap_ms`` for a worker, by type and episode, of the types
        some worker serves (the others are never claimed)."""
        gap = self.thresholds.gap_ms
        waits: dict[str, list[_Wait]] = defaultdict(list)
        claims, ends, now = self.claims, self.ends, self.now_ms
        for job_id, queued in self.queued.items():
            claim = claims.get(job_id)
            if claim is not None:
                wait, claimed = claim.timestamp - queued.timestamp, True
            elif job_id not in ends:
                wait, claimed = now - queued.timestamp, False
            else:
                continue
            if wait > gap:
                name = self.job_type(job_id)
                if name:
                    waits[name].append(_Wait(job_id, queued.timestamp, wait, claimed))
        episodes: list[_Episode] = []
        for job_type, items in waits.items():
            if not self.serving(job_type):
                continue
            items.sort(key=lambda w: w.queued_ms)
            current: list[_Wait] = []
            end = 0
            for item in items:
                if current and item.queued_ms > end + gap:
                    episodes.append(_episode(job_type, current))
                    current = []
                if not current:
                    end = 0
                current.append(item)
                end = max(end, item.queued_ms + item.wait_ms)
            if current:
                episodes.append(_episode(job_type, current))
        return episodes


def _last_of(events: list[TelemetryEvent], service: str) -> TelemetryEvent | None:
    for event in reversed(events):
        if event.service == service:
            return event
    return None


def _episode(job_type: str, waits: list[_Wait]) -> _Episode:
    return _Episode(
        job_type,
        tuple(waits),
        min(w.queued_ms for w in waits),
        max(w.queued_ms + w.wait_ms for w in waits),
    )


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value or None
    if value is None or isinstance(value, dict | list):
        return None
    return str(value)


def _advertised(event: TelemetryEvent) -> list[str]:
    for key in _ADVERTISE_KEYS:
        value = event.data.get(key)
        if isinstance(value, list):
            return [item for item in value if isinstance(item, str) and item]
    return []


def _service_name(event: TelemetryEvent) -> str | None:
    for key in _SERVICE_KEYS:
        value = _text(event.data.get(key))
        if value:
            return value
    return None


def _is_service_failure(event_type: str) -> bool:
    return event_type.endswith(("service_failed", "service.failed", "start_failed"))


# What an event is to its job.
_CREATED, _QUEUED, _CLAIMED, _COMPLETED, _FAILED = range(5)
_ROLES: Final[dict[str, int]] = {
    **dict.fromkeys(JOB_COMPLETED_TYPES, _COMPLETED),
    **dict.fromkeys(JOB_FAILED_TYPES, _FAILED),
    "job.created": _CREATED,
    "job.queued": _QUEUED,
    "job.claimed": _CLAIMED,
}


def _error_text(event: TelemetryEvent) -> tuple[str, str | None]:
    """(data key, message) of what an error event says went wrong."""
    for key in _ERROR_KEYS:
        value = _text(event.data.get(key))
        if value:
            return key, value
    return "", None


# -- formatting -----------------------------------------------------------------------------


def _clock(ms: int) -> str:
    """HH:MM:SS in UTC."""
    try:
        return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return "??:??:??"


_d = text.duration


_plural = text.plural


def _short(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _names(names: Iterable[str], limit: int = 4) -> str:
    items = sorted(set(names))
    if len(items) <= limit:
        return ", ".join(items)
    return ", ".join(items[:limit]) + f" and {len(items) - limit} more"


def _jobs_filter(job_ids: Sequence[str], job_type: str | None) -> str:
    if len(job_ids) <= EVIDENCE_JOBS or not job_type:
        return "job:" + ",".join(quote_value(j) for j in job_ids[:EVIDENCE_JOBS])
    return f"type:job.created data.jobType:{quote_value(job_type)}"


# -- stalled and orphaned jobs --------------------------------------------------------------


def _exit_reason(event: TelemetryEvent) -> str:
    reason = _text(event.data.get("reason")) or _error_text(event)[1] or ""
    code = re.search(r"exit(?:ed)?(?: with)?(?: code)? (\d+)", reason)
    if code:
        return f"exit {code.group(1)}"
    return _short(reason, 40)


def _loss(facts: Facts, job: JobFacts) -> tuple[TelemetryEvent | None, str, int] | None:
    """The first sign, after the job's last event, that its worker or machine stopped running
    it: (event or None, what happened, when)."""
    after = job.last.timestamp
    found: list[tuple[int, TelemetryEvent | None, str]] = []
    worker = facts.workers.get(job.worker or "")
    if worker is not None:
        for event in worker.events:
            if event.timestamp >= after and event.event_type.endswith(_WORKER_LOSS_SUFFIXES):
                verb = event.event_type.rsplit(".", 1)[-1].replace("_", " ")
                if event.event_type.endswith((".starting", ".restarted")):
                    verb = "restarted"
                reason = _exit_reason(event)
                what = f"worker {worker.id} {verb}" + (f" ({reason})" if reason else "")
                found.append((event.timestamp, event, what))
                break
        took = [
            (claim.timestamp, other)
            for other in worker.claims
            if other != job.id and (claim := facts.last_claims[other]).timestamp > after
        ]
        if took:
            at, other = min(took)
            found.append((at, None, f"worker {worker.id} took {other}"))
    machine = facts.machines.get(job.machine or "")
    if machine is not None:
        for event in machine.events:
            if (
                event.timestamp > after
                and event.event_type.startswith("machine.")
                and (event.event_type.endswith(_MACHINE_LOSS_SUFFIXES))
            ):
                verb = event.event_type.rsplit(".", 1)[-1].replace("_", " ")
                if event.event_type.endswith((".starting", ".restarted")):
                    verb = "restarted"
                found.append((event.timestamp, event, f"machine {machine.id} {verb}"))
                break
    if not found:
        return None
    at, sign, what = min(found, key=lambda f: f[0])
    return sign, what, at


def stalled_jobs(facts: Facts) -> list[Finding]:
    """Open jobs that have been claimed (or never reached the queue) and then went quiet:
    ``orphaned`` when their worker restarted, crashed or took another job after their last
    event, or their machine restarted; else ``stalled`` when quiet over ``stall_ms`` (or
    SLOW_FACTOR x the usual time of their next step, when longer)."""
    now = facts.now_ms
    found: list[Finding] = []
    for job_id in facts.by_job:
        if not facts.is_open(job_id):
            continue
        job = facts.job(job_id)
        last = job.last
        lost = _loss(facts, job) if job.last_claim is not None else None
        quiet = now - last.timestamp
        if (lost is None and quiet <= facts.thresholds.stall_ms) or not job.running:
            continue
        kind = job.type or "?"
        if lost is not None:
            event, what, at = lost
            found.append(
                Finding(
                    kind="orphaned",
                    severity="error",
                    title=f"orphaned: {what} at {_clock(at)}, {_d(at - last.timestamp)} after "
                    f"the last event of {job.id} ({kind}), which never ended",
                    first_ms=last.timestamp,
                    last_ms=at,
                    job_id=job.id,
                    jobs=(job.id,),
                    worker_id=job.worker,
                    machine_id=job.machine,
                    connector=job.type,
                    evidence=f"worker:{quote_value(job.worker)}" if job.worker else None,
                    data={
                        "lastEvent": last.event_type,
                        "lostAtMs": at,
                        "lostBy": event.event_type if event is not None else "job.claimed",
                        "afterMs": at - last.timestamp,
                        "quietMs": quiet,
                    },
                )
            )
            continue
        usual = facts.usual_steps(job.type).after(last.event_type) if job.type else None
        threshold = _stall_limit_ms(facts.thresholds, usual.p95_ms if usual else None)
        if quiet <= threshold:
            continue
        progress = last.data.get("progress")
        detail = f" ({progress}%)" if isinstance(progress, int | float) else ""
        where = f"on {job.worker}" if job.worker else f"at {last.service}"
        usually = f"; it usually moves on within {_d(usual.p95_ms)}" if usual else ""
        found.append(
            Finding(
                kind="stalled",
                severity="error",
                title=f"stalled: {job.id} ({kind}) silent for {_d(quiet)} {where} after "
                f"{last.event_type}{detail}{usually}",
                first_ms=last.timestamp,
                last_ms=now,
                job_id=job.id,
                jobs=(job.id,),
                worker_id=job.worker,
                machine_id=job.machine,
                connector=job.type,
                evidence=f"job:{quote_value(job.id)}",
                data={
                    "lastEvent": last.event_type,
                    "quietMs": quiet,
                    "usualP50Ms": usual.p50_ms if usual else None,
                    "usualP95Ms": usual.p95_ms if usual else None,
                },
            )
        )
    return found


# -- failure clusters -----------------------------------------------------------------------

_UUID: Final = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I)
_HEX: Final = re.compile(r"\b(?:0x[0-9a-f]+|(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{8,})\b", re.I)
# A word joined by _ or - with two digits or more: job_3bab8d88348a, gpu-02-w2, user_001
# (not dall-e-3 or a1111, which name a thing rather than one of many).
_WORD: Final = re.compile(r"\b[A-Za-z][A-Za-z0-9]*(?:[_-][A-Za-z0-9]+)+\b")
_NUMBER: Final = re.compile(r"(?<![\w.-])\d+(?:\.\d+)?(?!\w)")


def _id_or_word(found: re.Match[str]) -> str:
    word = found.group(0)
    return "<id>" if sum(c.isdigit() for c in word) >= 2 else word


def error_signature(message: str) -> str:
    """``message`` with what varies between occurrences taken out: UUIDs, hex, IDs such as
    ``job_3bab8d88348a`` and standalone numbers become ``<uuid>``, ``<hex>``, ``<id>``,
    ``<n>``; names with digits in them (``a1111``, ``llama3:70b``) stay."""
    text = _UUID.sub("<uuid>", message.strip())
    text = _HEX.sub("<hex>", text)
    text = _WORD.sub(_id_or_word, text)
    return _NUMBER.sub("<n>", text)


def _signature_glob(signature: str) -> str:
    return re.sub(r"<(?:uuid|hex|id|n)>", "*", signature)


@dataclass(eq=False, slots=True)
class _Failure:
    at: int
    event: TelemetryEvent  # what says why
    message: str
    job_id: str | None
    user: str | None
    machine: str | None


def _bursts_of(
    facts: Facts, items: list[_Failure], job_type: str | None
) -> tuple[list[list[_Failure]], list[_Failure]]:
    """Split a cluster's failures (in time order) into bursts and the steady rest."""
    gap = facts.run_gap(job_type)
    runs: list[list[_Failure]] = []
    for item in items:
        if runs and item.at - runs[-1][-1].at <= gap:
            runs[-1].append(item)
        else:
            runs.append([item])
    span = max(facts.newest_ms - facts.start_ms, gap)
    bursts: list[list[_Failure]] = []
    steady: list[_Failure] = []
    for run in runs:
        run_span = max(run[-1].at - run[0].at, gap)
        # The same error's rate elsewhere (one more than seen, so that none is not "never").
        background = (len(items) - len(run) + 1) / max(span - run_span, gap)
        dense = len(run) >= FAILURE_BURST_MIN and (
            _poisson_tail(len(run), background * run_span) < FAILURE_BURST_P
        )
        if dense and job_type is not None:
            dense = _share(facts, job_type, run) >= FAILURE_BURST_SHARE
        if dense:
            bursts.append(run)
        else:
            steady.extend(run)
    return bursts, steady


def _poisson_tail(count: int, expected: float) -> float:
    """P(X >= count) for X ~ Poisson(expected), for count above expected (else 1)."""
    if count <= expected:
        return 1.0
    first = math.exp(-expected + count * math.log(expected) - math.lgamma(count + 1))
    return min(1.0, first / (1 - expected / (count + 1)))


def _share(facts: Facts, job_type: str, items: Sequence[_Failure]) -> float:
    """The share of the type's jobs that ended between the first and last of ``items`` that
    are among them."""
    ends = facts.finished_by_type.get(job_type, [])
    total = bisect.bisect_right(ends, items[-1].at) - bisect.bisect_left(ends, items[0].at)
    return min(1.0, len(items) / total) if total else 1.0


def _cluster_finding(
    facts: Facts,
    items: Sequence[_Failure],
    signature: str,
    job_type: str | None,
    *,
    burst: bool,
    background: int,
    other_bursts: Sequence[int] = (),
) -> Finding:
    first, last = items[0].at, items[-1].at
    message = _short(Counter(i.message for i in items).most_common(1)[0][0])
    example = items[-1].event
    job_ids = tuple(dict.fromkeys(i.job_id for i in items if i.job_id))
    users = {i.user for i in items if i.user}
    machines = Counter(i.machine for i in items if i.machine)
    machine: str | None = None
    if machines:
        top, top_count = machines.most_common(1)[0]
        runs_on = {w.machine for w in facts.serving(job_type)} if job_type else set()
        if top_count >= MACHINE_SHARE * len(items) and len(runs_on - {None}) > 1:
            machine = top
    key, _ = _error_text(example)
    glob = quote_value(_signature_glob(error_signature(_error_text(example)[1] or message)))
    evidence = f"type:{example.event_type}"
    if job_type and example.data.get("connectorType") == job_type:
        evidence += f" data.connectorType:{quote_value(job_type)}"
    if key:
        evidence += f" data.{key}:{glob}"
    on = f", on {machine}" if machine else ""
    count = len(items)
    data: dict[str, Any] = {
        "signature": signature,
        "message": message,
        "users": len(users),
        "machines": dict(machines),
        "background": background,
    }
    if job_type is not None:
        # A burst against the jobs of its type that ended meanwhile; the steady rest against
        # all of them.
        ended = len(facts.finished_by_type.get(job_type, ())) or count
        share = _share(facts, job_type, items) if burst else min(1.0, count / ended)
        data["share"] = share
        what = f'{_plural(count, job_type + " job")} failed with "{message}"'
        share_text = f"{share:.0%} of {job_type} jobs, {_plural(len(users), 'user')}"
    else:
        share = 0.0
        what = (
            f'{_plural(count, example.event_type + " event")} from {example.service}: "{message}"'
        )
        share_text = _plural(len(users), "user") if users else ""
    share_part = f": {share_text}" if share_text else ""
    if burst:
        severity: Severity = (
            "critical"
            if job_type is not None and share >= OUTAGE_SHARE and count >= 10
            else "error"
        )
        usually = (
            f"; otherwise {background} in {_d(facts.newest_ms - facts.start_ms)}"
            if background
            else "; none otherwise"
        )
        title = (
            f"failure burst: {what} in {_d(last - first)} ({_clock(first)}-{_clock(last)})"
            f"{share_part}{on}{usually}"
        )
    else:
        severity = (
            "warn"
            if job_type is not None
            and share >= FAILURE_STEADY_WARN_SHARE
            and count >= FAILURE_BURST_MIN
            else "info"
        )
        besides = (
            f"; besides the burst at {', '.join(_clock(ms) for ms in other_bursts)}"
            if other_bursts
            else ""
        )
        title = f"failures: {what}, {_clock(first)}-{_clock(last)}{share_part}{on}{besides}"
    return Finding(
        kind="failure-cluster",
        severity=severity,
        title=title,
        first_ms=first,
        last_ms=last,
        count=count,
        job_id=job_ids[-1] if job_ids else None,
        jobs=job_ids,
        machine_id=machine,
        service=example.service,
        connector=job_type,
        evidence=evidence,
        data=data,
    )


def failure_clusters(facts: Facts) -> list[Finding]:
    """Failed jobs by normalised error signature and job type (machines named when one holds
    most of them), and other error events by signature, type and service. A burst (dense,
    far above the same error's rate elsewhere, failing a good share of the type's jobs) is
    its own finding, apart from the steady rest."""
    clusters: dict[tuple[str, str | None, str], list[_Failure]] = defaultdict(list)
    signatures: dict[str, str] = {}

    def sign(message: str) -> str:
        found = signatures.get(message)
        if found is None:
            found = signatures[message] = error_signature(message)
        return found

    failed = {
        job_id: end for job_id, end in facts.ends.items() if _ROLES[end.event_type] == _FAILED
    }
    # What says why a job failed: its last error with a message before its end, else its end.
    why: dict[str, TelemetryEvent] = {}
    for event in facts.errors:
        end = failed.get(event.job_id or "")
        if end is not None and event.timestamp < end.timestamp and _error_text(event)[1]:
            why[end.job_id or ""] = event
    for job_id, end in failed.items():
        cause = why.get(job_id, end)
        message = _error_text(cause)[1] or cause.event_type
        claim = facts.last_claims.get(job_id)
        machine = (claim.machine_id or _text(claim.data.get("machineId"))) if claim else None
        clusters[(sign(message), facts.job_type(job_id) or "?", "")].append(
            _Failure(end.timestamp, cause, message, job_id, facts.user(job_id), machine)
        )
    for event in facts.errors:
        if event.job_id in failed or event.event_type in JOB_FAILED_TYPES:
            continue
        if _is_service_failure(event.event_type):
            continue
        message = _error_text(event)[1] or event.event_type
        key = (sign(message), None, f"{event.service}\0{event.event_type}")
        clusters[key].append(
            _Failure(event.timestamp, event, message, event.job_id, event.user_id, event.machine_id)
        )
    found: list[Finding] = []
    for (signature, job_type, _), items in clusters.items():
        items.sort(key=lambda i: i.at)
        bursts, steady = _bursts_of(facts, items, job_type)
        for burst in bursts:
            found.append(
                _cluster_finding(
                    facts, burst, signature, job_type, burst=True, background=len(steady)
                )
            )
        if steady:
            found.append(
                _cluster_finding(
                    facts,
                    steady,
                    signature,
                    job_type,
                    burst=False,
                    background=len(steady),
                    other_bursts=[b[0].at for b in bursts],
                )
            )
    return found


# -- slow jobs ------------------------------------------------------------------------------


def slow_jobs(facts: Facts) -> list[Finding]:
    """Finished jobs far slower than usual for their type, from their claim to their end
    (the wait for a worker is :func:`queue_waits`' business): SLOW_JOB_FACTOR x the usual
    p95 of the type, or one step SLOW_FACTOR x the usual p95 of that step; either way
    ``gap_ms`` past that p95. The step that took the time is named against its usual
    p50/p95."""
    gap = facts.thresholds.gap_ms
    claims, stepped = facts.claims, facts.stepped
    found: list[Finding] = []
    ends = facts.ends
    for job_type, ended in facts.ends_by_type.items():
        jobs = [
            (end.timestamp - claim.timestamp, job_id, _ROLES[end.event_type] == _COMPLETED)
            for job_id in ended
            if (claim := claims.get(job_id)) is not None and (end := ends[job_id])
        ]
        completed = [float(took) for took, _, done in jobs if done]
        if len(completed) > USUAL_SAMPLE:
            completed = completed[:: len(completed) // USUAL_SAMPLE]
        if len(completed) < SLOW_JOB_MIN_SAMPLES:
            continue
        completed.sort()
        p50, p95 = percentile(completed, 50), percentile(completed, 95)
        for took, job_id, _ in jobs:
            long_total = took > SLOW_JOB_FACTOR * p95 and took - p95 >= gap
            if not long_total and job_id not in stepped:
                continue
            job = facts.job(job_id)
            usual_steps = facts.usual_steps(job_type)
            steps = [
                (prev, cur, cur.timestamp - prev.timestamp, _usual_step(usual_steps, prev, cur))
                for prev, cur in _processing_steps(job)
            ]
            # The step to name: the one furthest past its usual p95 among those far slower
            # than usual; for a job slow all over, the one furthest past its usual p50.
            far = [step for step in steps if _far_slower(gap, step[2], step[3])]
            if far:
                prev, cur, delta, usual = max(
                    far, key=lambda s: s[2] - (s[3].p95_ms if s[3] else 0)
                )
            elif long_total and steps:
                prev, cur, delta, usual = max(
                    steps, key=lambda s: s[2] - (s[3].p50_ms if s[3] else 0)
                )
            else:
                continue
            assert job.claim is not None and job.terminal is not None
            started, ended_ms = job.claim.timestamp, job.terminal.timestamp
            usual_text = f" (usual {_d(usual.p50_ms)}, p95 {_d(usual.p95_ms)})" if usual else ""
            on = f" on {job.worker}" if job.worker else ""
            found.append(
                Finding(
                    kind="slow-job",
                    severity="warn",
                    title=f"slow: {job.id} ({job_type}) took {_d(took)} (usual {_d(p50)}, "
                    f"p95 {_d(p95)}): {_d(delta)} from {prev.event_type} to "
                    f"{cur.event_type}{usual_text}{on}",
                    first_ms=started,
                    last_ms=ended_ms,
                    job_id=job.id,
                    jobs=(job.id,),
                    worker_id=job.worker,
                    machine_id=job.machine,
                    connector=job_type,
                    evidence=f"job:{quote_value(job.id)}",
                    data={
                        "tookMs": took,
                        "usualP50Ms": p50,
                        "usualP95Ms": p95,
                        "step": [prev.event_type, cur.event_type],
                        "stepMs": delta,
                        "stepUsualP50Ms": usual.p50_ms if usual else None,
                        "stepUsualP95Ms": usual.p95_ms if usual else None,
                        "outcome": job.outcome,
                    },
                )
            )
    return found


def _usual_step(usual_steps: UsualSteps, prev: TelemetryEvent, cur: TelemetryEvent) -> Usual | None:
    """The usual time of a step: the same pair of event types (or services), else how long
    jobs usually stay quiet after an event of ``prev``'s type."""
    return usual_steps.between(prev, cur) or usual_steps.after(prev.event_type)


def _far_slower(gap: int, delta: int, usual: Usual | None) -> bool:
    """Whether a step is far slower than usual: slower than usual and ``gap`` past the
    usual p95 (over ``gap`` when nothing is usual for it)."""
    if usual is None:
        return delta > gap
    return is_slower_than_usual(delta, usual.p95_ms) and delta - usual.p95_ms >= gap


def _processing_steps(job: JobFacts) -> list[tuple[TelemetryEvent, TelemetryEvent]]:
    """The steps of a job, in time order, from its first claim to its end."""
    events = job.events
    begin = next(i for i, e in enumerate(events) if e is job.claim)
    stop = next(i for i in range(begin, len(events)) if events[i] is job.terminal) + 1
    return [(events[i - 1], events[i]) for i in range(begin + 1, stop)]


# -- arrivals, queue waits and capacity -----------------------------------------------------


def _arrival_bursts(created: list[int], now_ms: int) -> list[_Burst]:
    if len(created) < BURST_MIN_EXCESS:
        return []
    start = created[0]
    buckets = [0] * ((max(now_ms, created[-1]) - start) // BURST_BUCKET_MS + 1)
    for at in created:
        buckets[(at - start) // BURST_BUCKET_MS] += 1
    full = buckets[:-1] or buckets
    usual = max(statistics.median(full), 1.0)
    bursts: list[_Burst] = []
    run: list[int] = []
    for index, count in enumerate([*buckets, 0]):
        if count >= BURST_FACTOR * usual and count - usual >= 3:
            run.append(index)
            continue
        if run:
            jobs = sum(buckets[i] for i in run)
            excess = round(jobs - usual * len(run))
            if excess >= BURST_MIN_EXCESS:
                lo = start + run[0] * BURST_BUCKET_MS
                hi = start + (run[-1] + 1) * BURST_BUCKET_MS
                inside = created[bisect.bisect_left(created, lo) : bisect.bisect_left(created, hi)]
                bursts.append(
                    _Burst(
                        inside[0],
                        inside[-1],
                        jobs,
                        excess,
                        jobs / (usual * len(run)),
                        usual * 1000 / BURST_BUCKET_MS,
                    )
                )
            run = []
    return bursts


def traffic_bursts(facts: Facts) -> list[Finding]:
    """Job arrivals well over their usual rate: a warning when jobs waited for a worker
    meanwhile, else information."""
    found = []
    for burst in facts.bursts:
        hit = [
            e for e in facts.episodes if e.first_ms <= burst.last_ms and e.last_ms >= burst.first_ms
        ]
        waited = ""
        if hit:
            longest = max(hit, key=lambda e: e.longest.wait_ms)
            waited = (
                f"; {_names(e.type for e in hit)} jobs waited for a worker, up to "
                f"{_d(longest.longest.wait_ms)}"
            )
        found.append(
            Finding(
                kind="traffic-burst",
                severity="warn" if hit else "info",
                title=f"traffic burst: {burst.jobs} jobs created in "
                f"{_d(burst.last_ms - burst.first_ms)} from {_clock(burst.first_ms)}, "
                f"{burst.factor:.1f}x the usual {burst.usual_per_s:.1f}/s "
                f"(+{burst.excess} jobs){waited}",
                first_ms=burst.first_ms,
                last_ms=burst.last_ms,
                count=burst.jobs,
                evidence="type:job.created",
                data={
                    "factor": round(burst.factor, 2),
                    "usualPerSecond": round(burst.usual_per_s, 2),
                    "excess": burst.excess,
                    "waitingTypes": sorted({e.type for e in hit}),
                },
            )
        )
    return found


def _serves_service(job_type: str, service: str) -> bool:
    """Whether a machine's service (``openai-proxy``) hosts a job type (``openai``)."""
    a, b = job_type.lower(), service.lower()
    return a == b or a in b or b in a


def queue_waits(facts: Facts) -> list[Finding]:
    """Job types whose wait for a worker (``job.queued`` to ``job.claimed``, or to now while
    still waiting) went over ``gap_ms``, in episodes, explained by capacity from the events:
    the machines and workers that serve the type, when they became ready and after how long a
    start, which failed to start its service, and bursts of arrivals meanwhile."""
    found = []
    for episode in facts.episodes:
        job_type = episode.type
        workers = facts.serving(job_type)
        machines = sorted({w.machine for w in workers if w.machine})
        ready: dict[str, int] = {}
        for worker in workers:
            at = worker.serves.get(job_type)
            if at is not None and worker.machine:
                ready[worker.machine] = min(ready.get(worker.machine, at), at)
        count = len(episode.waits)
        longest = episode.longest
        waiting = sum(1 for w in episode.waits if not w.claimed)
        waited = f"{_plural(count, 'job')} waited up to {_d(longest.wait_ms)}"
        machine: str | None = None
        if len(machines) == 1:
            machine = machines[0]
            facts_m = facts.machines.get(machine)
            at = ready.get(machine)
            startup = facts_m.startup_ms if facts_m is not None else None
            if at is not None and at > episode.first_ms:
                after = f" after a {_d(startup)} start" if startup is not None else ""
                title = f"only {machine} serves {job_type}; ready at {_clock(at)}{after}; {waited}"
            else:
                title = (
                    f"only {machine} serves {job_type} "
                    f"({_plural(len(workers), 'worker')}); {waited}"
                )
        else:
            first_ready = min(ready.items(), key=lambda kv: kv[1]) if ready else None
            burst = next(
                (
                    b
                    for b in facts.bursts
                    if b.first_ms <= episode.last_ms and b.last_ms >= episode.first_ms
                ),
                None,
            )
            fleet = (
                f"{_plural(len(machines), 'machine')}, {_plural(len(workers), 'worker')} "
                f"serve {job_type}"
            )
            if first_ready is not None and first_ready[1] > episode.first_ms + (
                facts.thresholds.gap_ms
            ):
                machine = first_ready[0]
                facts_m = facts.machines.get(machine)
                startup = facts_m.startup_ms if facts_m is not None else None
                after = f", after a {_d(startup)} start" if startup is not None else ""
                title = (
                    f"{job_type}: no worker was ready until {_clock(first_ready[1])} "
                    f"({machine}{after}); {waited}; {fleet}"
                )
            elif burst is not None:
                title = (
                    f"{job_type}: {waited} while job arrivals ran {burst.factor:.1f}x the "
                    f"usual rate ({_clock(burst.first_ms)}-{_clock(burst.last_ms)}); {fleet}"
                )
            else:
                title = f"{job_type}: {waited} for a worker; {fleet}"
        failed = sorted(
            {
                m.id
                for m in facts.machines.values()
                for service, event in m.failed
                if _serves_service(job_type, service)
                and event.timestamp <= episode.last_ms
                and m.started.get(service, -1) < event.timestamp
            }
        )
        if failed:
            title += f"; {job_type} failed to start on {_names(failed)}"
        if waiting:
            title += f"; {waiting} still waiting"
        evidence = (
            f"machine:{quote_value(machine)} type:machine.*,pm2.*,worker.*"
            if machine
            else _jobs_filter([w.job_id for w in episode.waits], job_type)
        )
        found.append(
            Finding(
                kind="queue-wait",
                severity="error" if longest.wait_ms >= QUEUE_WAIT_ERROR_MS else "warn",
                title=title,
                first_ms=episode.first_ms,
                last_ms=episode.last_ms,
                count=count,
                job_id=longest.job_id,
                jobs=tuple(w.job_id for w in episode.waits),
                machine_id=machine,
                connector=job_type,
                evidence=evidence,
                data={
                    "maxWaitMs": longest.wait_ms,
                    "stillWaiting": waiting,
                    "machines": machines,
                    "workers": len(workers),
                    "readyMs": ready,
                    "failedOn": failed,
                },
            )
        )
    return found


def never_claimed(facts: Facts) -> list[Finding]:
    """Jobs waiting (over ``gap_ms``) for a type that no worker advertises or has run."""
    waiting: dict[str, list[JobFacts]] = defaultdict(list)
    claims, ends, types = facts.claims, facts.ends, facts.types
    for job_id in facts.queued.keys() - claims.keys() - ends.keys():
        kind = types.get(job_id)
        if kind:
            waiting[kind].append(facts.job(job_id))
    served = sorted({name for w in facts.workers.values() for name in w.serves})
    found = []
    for job_type, jobs in waiting.items():
        if facts.serving(job_type):
            continue
        jobs.sort(key=lambda j: j.queued_ms or 0)
        oldest = jobs[0]
        assert oldest.queued_ms is not None
        wait = facts.now_ms - oldest.queued_ms
        if wait <= facts.thresholds.gap_ms:
            continue
        who = (
            f"workers serve {_names(served, 6)}" if served else "no worker has said what it serves"
        )
        if len(jobs) == 1:
            what = f"{oldest.id} ({job_type}) waiting for {_d(wait)}"
        else:
            what = f"{len(jobs)} {job_type} jobs waiting, the oldest ({oldest.id}) for {_d(wait)}"
        ids = [j.id for j in jobs]
        found.append(
            Finding(
                kind="never-claimed",
                severity="error",
                title=f"never claimed: {what}; no worker advertises {job_type} ({who})",
                first_ms=oldest.queued_ms,
                last_ms=facts.now_ms,
                count=len(jobs),
                job_id=oldest.id,
                jobs=tuple(ids),
                connector=job_type,
                evidence=_jobs_filter(ids, job_type),
                data={"oldestWaitMs": wait, "served": served},
            )
        )
    return found


# -- machines' services ---------------------------------------------------------------------


def service_failures(facts: Facts) -> list[Finding]:
    """Services a machine failed to start (``pm2.service_failed`` and the like): an error, or
    critical when no other machine runs that service; information once it started after."""
    found = []
    for machine in facts.machines.values():
        for service, event in machine.failed:
            later = machine.started.get(service, -1) > event.timestamp
            others = sorted(
                m.id for m in facts.machines.values() if m is not machine and service in m.started
            )
            error = _error_text(event)[1]
            because = f": {_short(error, 60)}" if error else ""
            degraded = machine.ready is not None and bool(machine.ready.data.get("degraded"))
            if later:
                severity: Severity = "info"
                then = f"; started at {_clock(machine.started[service])}"
            elif others:
                severity = "error"
                then = (
                    f"; {machine.id} came up degraded" if degraded else ""
                ) + f"; {_plural(len(others), 'other machine')} run {service}"
            else:
                severity = "critical"
                then = f"; no other machine runs {service}"
            connector = next(
                (
                    name
                    for w in facts.workers.values()
                    for name in w.serves
                    if _serves_service(name, service)
                ),
                None,
            )
            found.append(
                Finding(
                    kind="service-failed",
                    severity=severity,
                    title=f"{service} failed to start on {machine.id} at "
                    f"{_clock(event.timestamp)}{because}{then}",
                    first_ms=event.timestamp,
                    last_ms=event.timestamp,
                    machine_id=machine.id,
                    service=service,
                    connector=connector,
                    evidence=f"machine:{quote_value(machine.id)} type:pm2.*,machine.*",
                    data={"error": error, "otherMachines": others, "startedLater": later},
                )
            )
    return found


# -- services and clocks --------------------------------------------------------------------


def silent_services(facts: Facts) -> list[Finding]:
    """Services that spoke regularly and then stopped: silent over ``silent_ms``, over
    SILENT_FACTOR x their mean interval, and for no longer than they had been speaking (a
    service that only speaks at start-up, like a machine's, is not silent afterwards)."""
    now = facts.now_ms
    if not facts.services:
        return []
    newest = max(seen.last_ms for seen in facts.services.values())
    if now - newest > facts.thresholds.silent_ms:
        return [
            Finding(
                kind="silent-service",
                severity="warn",
                title=f"silent: no service has sent anything for {_d(now - newest)} "
                f"(since {_clock(newest)})",
                first_ms=newest,
                last_ms=now,
                count=len(facts.services),
                data={"silentMs": now - newest, "services": sorted(facts.services)},
            )
        ]
    silent: list[tuple[str, _ServiceFacts, int]] = []
    for service, seen in facts.services.items():
        span = seen.last_ms - seen.first_ms
        if seen.count < SILENT_MIN_EVENTS:
            continue
        silence = now - seen.last_ms
        interval = span / (seen.count - 1)
        if (
            silence > facts.thresholds.silent_ms
            and silence > SILENT_FACTOR * interval
            and span >= silence
        ):
            silent.append((service, seen, silence))
    return [
        Finding(
            kind="silent-service",
            severity="warn",
            title=f"silent: {service} has sent nothing for {_d(silence)} (since "
            f"{_clock(seen.last_ms)}); before, one event every "
            f"{_d((seen.last_ms - seen.first_ms) / (seen.count - 1))}",
            first_ms=seen.last_ms,
            last_ms=now,
            count=seen.count,
            service=service,
            evidence=f"service:{quote_value(service)}",
            data={"silentMs": silence, "events": seen.count},
        )
        for service, seen, silence in silent
    ]


def clock_skew(facts: Facts) -> list[Finding]:
    """Services whose timestamps are ``skew_ms`` or more from the other services', measured
    against the time the stream gave each event (its entry ID) and compared with the other
    services' events near it in the stream, so a replay or simulation that stamps its own
    times (all services alike) is not taken for skew."""
    stride = max(1, len(facts.events) // SKEW_SAMPLE)
    offsets: list[tuple[str, int]] = []
    for event in facts.events[::stride]:
        ms = stream_id_ms(event.id)
        if ms is not None:
            offsets.append((event.service, event.timestamp - ms))
    residuals: dict[str, list[float]] = defaultdict(list)
    counts: Counter[str] = Counter()
    for start in range(0, len(offsets), SKEW_WINDOW):
        window: dict[str, list[int]] = defaultdict(list)
        for service, offset in offsets[start : start + SKEW_WINDOW]:
            window[service].append(offset)
        if len(window) < 2:
            continue
        medians = {s: statistics.median(v) for s, v in window.items()}
        # Against the median service: one skewed service among three or more stands out,
        # while the others agree with each other.
        middle = statistics.median(medians.values())
        for service, median in medians.items():
            residuals[service].append(median - middle)
            counts[service] += len(window[service])
    found = []
    for service, values in residuals.items():
        skew = statistics.median(values)
        if abs(skew) < facts.thresholds.skew_ms:
            continue
        direction = "ahead of" if skew > 0 else "behind"
        events = counts[service] * stride
        found.append(
            Finding(
                kind="clock-skew",
                severity="warn",
                title=f"clock skew: {service}'s timestamps run {_d(abs(skew))} {direction} "
                f"the other services' (by the stream's clock, {_plural(events, 'event')})",
                first_ms=facts.start_ms,
                last_ms=facts.now_ms,
                count=events,
                service=service,
                evidence=f"service:{quote_value(service)}",
                data={"skewMs": skew},
            )
        )
    return found


# -- the collectors and the stream ----------------------------------------------------------


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    value = value.strip()
    return int(value) if value.isascii() and value.isdigit() else None


def collector_problems(
    facts: Facts,
    collectors: Sequence[Mapping[str, str]] | None,
    stream: StreamState | None,
) -> list[Finding]:
    """From what the caller read: each collector's health hash (``trimmed_lost``, ``lag``,
    ``state``), none at all (``collectors=[]``; None means not known), and the stream's state
    (at its MAXLEN; consumer groups behind its oldest entry)."""
    now = facts.now_ms
    found: list[Finding] = []
    maxlen = stream.maxlen if stream is not None else DEFAULT_MAXLEN
    key = stream.key if stream is not None else "the stream"
    span_s = (facts.newest_ms - facts.start_ms) / 1000
    rate = (len(facts.events) - 1) / span_s if span_s > 0 else 0.0
    window = f", about {_d(maxlen / rate * 1000)} at {rate:.0f} events/s" if rate else ""

    def finding(kind: str, severity: Severity, title: str, **kw: Any) -> None:
        found.append(Finding(kind, severity, title, now, now, **kw))

    if collectors is not None and not collectors:
        finding(
            "collector-absent",
            "warn",
            f"no collector is reading {key}: what MAXLEN trims (~{maxlen:,} entries"
            f"{window}) is gone for good",
            data={"maxlen": maxlen, "eventsPerSecond": rate},
        )
    for health in collectors or ():
        name = health.get("consumer", "?")
        lost = _int(health.get("trimmed_lost"))
        if lost:
            started = _int(health.get("started_ms"))
            since = f" since it started at {_clock(started)}" if started else ""
            finding(
                "trim-loss",
                "error",
                f"trim loss: collector {name} lost {lost:,} events to MAXLEN trimming before "
                f"it read them{since}",
                count=lost,
                service=name,
                data={"consumer": name, "trimmedLost": lost},
            )
        lag = _int(health.get("lag"))
        if lag is not None and lag >= max(LAG_WARN_MIN, LAG_WARN_SHARE * maxlen):
            share = lag / maxlen
            finding(
                "collector-lag",
                "error" if share >= LAG_ERROR_SHARE else "warn",
                f"collector {name} is {lag:,} entries behind ({share:.0%} of MAXLEN "
                f"{maxlen:,}): past MAXLEN, trimming takes what it has not read",
                count=lag,
                service=name,
                data={"consumer": name, "lag": lag, "maxlen": maxlen},
            )
        state = health.get("state", "running")
        if state != "running":
            finding(
                "collector-lag",
                "warn",
                f"collector {name} is {state}",
                service=name,
                data={"consumer": name, "state": state},
            )
    if stream is None:
        return found
    first_ms = stream_id_ms(stream.first_id)
    for group in stream.groups:
        delivered = group.last_delivered_id
        read_to, oldest = parse_id(delivered), parse_id(stream.first_id)
        if read_to is None or oldest is None or read_to >= oldest:
            continue
        if read_to == (0, 0):
            continue  # created at 0: it has not started reading
        finding(
            "trim-loss",
            "error",
            f"trim loss: consumer group {group.name} is behind the stream's oldest entry "
            f"(last read {delivered}, oldest {stream.first_id}): what came between was "
            "trimmed before it read it",
            data={"group": group.name, "lastDeliveredId": delivered, "firstId": stream.first_id},
        )
    last_ms = stream_id_ms(stream.last_id)
    if stream.length >= TRIMMING_SHARE * maxlen and first_ms is not None and last_ms is not None:
        finding(
            "trim-loss",
            "info",
            f"{key} is at its MAXLEN ({stream.length:,} entries): it holds the last "
            f"{_d(last_ms - first_ms)}; older events exist only where a collector wrote them",
            count=stream.length,
            data={"length": stream.length, "maxlen": maxlen, "holdsMs": last_ms - first_ms},
        )
    return found


# -- all of them ----------------------------------------------------------------------------

DETECTORS: Final[tuple[Callable[[Facts], list[Finding]], ...]] = (
    stalled_jobs,
    failure_clusters,
    slow_jobs,
    queue_waits,
    never_claimed,
    service_failures,
    traffic_bursts,
    silent_services,
    clock_skew,
)


def find_problems(
    events: Iterable[TelemetryEvent],
    *,
    now_ms: int | None = None,
    gap_ms: int = DEFAULT_GAP_MS,
    stall_ms: int = DEFAULT_STALL_MS,
    silent_ms: int = DEFAULT_SILENT_MS,
    skew_ms: int = DEFAULT_SKEW_MS,
    collectors: Sequence[Mapping[str, str]] | None = None,
    stream: StreamState | None = None,
) -> list[Finding]:
    """Every detector over ``events``: the findings, most severe first, then newest first.

    ``now_ms`` defaults to the newest event's timestamp (pass the wall clock while reading a
    live stream). ``collectors`` are the collectors' health hashes (``[]``: none is running;
    None: not known); ``stream`` the stream's state."""
    facts = Facts(
        events,
        now_ms=now_ms,
        thresholds=Thresholds(
            gap_ms=gap_ms, stall_ms=stall_ms, silent_ms=silent_ms, skew_ms=skew_ms
        ),
    )
    found: list[Finding] = []
    for detector in DETECTORS:
        found.extend(detector(facts))
    found.extend(collector_problems(facts, collectors, stream))
    return _sorted(_in_flight_when_all_went_silent(found, facts.thresholds))


def _in_flight_when_all_went_silent(found: list[Finding], limits: Thresholds) -> list[Finding]:
    """Every service went silent at once (the platform stopped, or its telemetry did): the
    jobs running then are not each stalled, they are part of that silence, which names them
    and is critical for it (nothing running is known to move on; a warning otherwise). A
    job already quiet past its stall threshold when the last event came was stalled before:
    it stays a finding of its own."""
    silence = next((f for f in found if f.kind == "silent-service" and f.service is None), None)
    if silence is None:
        return found
    in_flight = [
        finding
        for finding in found
        if finding.kind == "stalled"
        and silence.first_ms - finding.first_ms
        <= _stall_limit_ms(limits, finding.data.get("usualP95Ms"))
    ]
    if not in_flight:
        return found
    folded = set(map(id, in_flight))
    jobs = tuple(f.job_id for f in in_flight if f.job_id)
    types = Counter(f.connector or "?" for f in in_flight)
    merged = replace(
        silence,
        severity="critical",
        title=f"{silence.title}; {_plural(len(jobs), 'job')} "
        + ("was" if len(jobs) == 1 else "were")
        + " running then ("
        + ", ".join(f"{count} {name}" for name, count in types.most_common())
        + ")",
        jobs=jobs,
        evidence=_jobs_filter(jobs, None),
        data={**silence.data, "inFlight": list(jobs)},
    )
    return [merged if f is silence else f for f in found if id(f) not in folded]


def _stall_limit_ms(limits: Thresholds, usual_p95_ms: float | None) -> float:
    """How long an open job may be quiet before it is stalled: ``stall_ms``, or SLOW_FACTOR
    x the usual time of its next step (its p95), when longer."""
    return max(limits.stall_ms, SLOW_FACTOR * usual_p95_ms if usual_p95_ms else 0)
