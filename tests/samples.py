"""The one factory of sample events for the tests, the screenshots and the benchmarks: fixed
clocks, fixed IDs, no I/O, no randomness. (It lives with the tests so that no test data ships
in the package; scripts/ and bench/ put this folder on their path.)

* :func:`event` makes one event with a stream ID, a trace and a span derived from ``n``.
* :func:`sample_events`: a small platform at work. Jobs flow api-server -> worker -> machine
  -> worker -> webhook-service; job-0005 waits 12 s to be claimed (a gap); job-0009 fails;
  monitor heartbeats in between. :func:`fleet_job` is one of those jobs.
* :func:`flood`: many small events for load tests.
* :func:`crossing_job`: one job (``JOB``) across four services with a 12.3 s gap, a warning
  carrying :data:`HOSTILE` text and a failed webhook attempt; :func:`crossing_timeline` is its
  timeline, :func:`fleet_edges` handoff edges as over many jobs.
* :func:`incident_sample`: 24 ordinary jobs and four that went wrong (slow to be claimed,
  a 9 s gap, failed, stuck), a heartbeat and a monitor note full of terminal controls, at a
  clock the caller chooses (the CLI's tests put it half an hour before now).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from emp_tui.analysis import HandoffEdge, Timeline, job_timeline
from emp_tui.events import TelemetryEvent, trace_id_for_job

START_MS = 1_795_780_800_000  # 2026-11-27T12:00:00Z
"""The fixed clock :func:`sample_events` starts at."""
T0 = 1_764_000_000_000  # 2025-11-24T16:00:00Z
"""The fixed clock of :func:`crossing_job`."""
JOB = "job_7f3a"

HOSTILE = "[bold red]boom[/] \x1b[31mred\x1b[0m\r\bX\x07 $(rm -rf /)"
"""Markup, terminal controls and a shell command: shown as typed, never obeyed."""
HOSTILE_TEXT = "\x1b[31mred\x1b[0m\nnext\u202eevil\x9b2J\x7f"
"""Controls, C1, DEL and a right-to-left override."""


def event(
    n: int,
    ms: int,
    service: str,
    event_type: str,
    data: dict[str, Any] | None = None,
    *,
    job_id: str | None = None,
    worker_id: str | None = None,
    machine_id: str | None = None,
    level: str | None = None,
) -> TelemetryEvent:
    """One event at ``ms`` with stream ID ``<ms>-<n>``, span ``n`` and the job's trace (for
    an event without a job, trace ``n``)."""
    made = TelemetryEvent.create(
        service,
        event_type,
        data,
        timestamp=ms,
        job_id=job_id,
        worker_id=worker_id,
        machine_id=machine_id,
        trace_id=trace_id_for_job(job_id) if job_id else f"{n:032x}",
        span_id=f"{n:016x}",
        level=level,
    )
    return replace(made, id=f"{ms}-{n}")


def with_stream_ids(events: list[TelemetryEvent]) -> list[TelemetryEvent]:
    """``events`` in time order with the IDs XADD gives in that order: the time, and a
    sequence number for events in the same millisecond."""
    ordered: list[TelemetryEvent] = []
    last_ms, counter = -1, 0
    for made in sorted(events, key=lambda e: (e.timestamp, e.id or "")):
        counter = counter + 1 if made.timestamp == last_ms else 0
        last_ms = made.timestamp
        ordered.append(replace(made, id=f"{made.timestamp}-{counter}"))
    return ordered


# -- a platform at work ---------------------------------------------------------------------


def fleet_job(
    index: int, start_ms: int, *, seq: int = 0, gap_ms: int = 0, fail: bool = False
) -> list[TelemetryEvent]:
    """Job ``job-<index>`` from creation to its webhook; its events are numbered from
    ``seq + 1``."""
    job = f"job-{index:04d}"
    worker = f"worker-{index % 4 + 1}"
    machine = f"machine-{index % 2 + 1}"
    t = start_ms
    out: list[TelemetryEvent] = []

    def add(delay: int, service: str, event_type: str, **kw: Any) -> None:
        nonlocal t
        t += delay
        ids = {"worker_id": kw.pop("worker", None), "machine_id": kw.pop("machine", None)}
        n = seq + len(out) + 1
        out.append(event(n, t, service, event_type, kw, job_id=job, **ids))

    add(0, "api-server", "job.created", jobType="comfyui", priority="normal", userId="user-7")
    add(4, "api-server", "job.queued", queueName="default", position=index % 5)
    add(30 + gap_ms, "worker", "job.claimed", worker=worker)
    add(12, "worker", "connector.processing_started", worker=worker, connector="comfyui")
    add(40, "machine", "machine.model_loaded", worker=worker, machine=machine, model="sdxl")
    add(
        900 + index % 7 * 50,
        "machine",
        "machine.inference_completed",
        worker=worker,
        machine=machine,
        steps=30,
    )
    if fail:
        add(
            15,
            "worker",
            "connector.processing_failed",
            worker=worker,
            error="CUDA out of memory",
            durationMs=980,
        )
        add(5, "worker", "job.failed", worker=worker, reason="connector error")
        add(20, "webhook-service", "webhook.delivered", status=200, event="job.failed")
    else:
        add(15, "worker", "connector.processing_completed", worker=worker, durationMs=960)
        add(5, "worker", "job.completed", worker=worker, outputs=1)
        add(20, "webhook-service", "webhook.delivered", status=200, event="job.completed")
    return out


def sample_events(jobs: int = 24, *, start_ms: int = START_MS) -> list[TelemetryEvent]:
    """``jobs`` jobs started 250 ms apart, interleaved in time order, with heartbeats. Job 5
    waits 12 s to be claimed (a gap); job 9 fails."""
    events: list[TelemetryEvent] = []
    seq = 0
    for index in range(jobs):
        flow = fleet_job(
            index,
            start_ms + index * 250,
            seq=seq,
            gap_ms=12_000 if index == 5 else 0,
            fail=index == 9,
        )
        seq += len(flow)
        events.extend(flow)
    span = jobs * 250 + 14_000
    for beat in range(0, span, 2000):
        seq += 1
        events.append(
            event(seq, start_ms + beat + 1, "monitor", "monitor.heartbeat", {"queued": beat % 7})
        )
    return with_stream_ids(events)


def flood(count: int, *, start_ms: int = START_MS, jobs: int = 1000) -> Iterator[TelemetryEvent]:
    """``count`` small events spread over ``jobs`` jobs, for load tests."""
    types = ("job.progress_updated", "connector.processing_started", "machine.heartbeat")
    services = ("worker", "machine", "api-server")
    for n in range(count):
        job = f"job-{n % jobs:05d}"
        yield TelemetryEvent(
            timestamp=start_ms + n,
            service=services[n % 3],
            event_type=types[n % 3],
            trace_id=trace_id_for_job(job),
            job_id=job,
            worker_id=f"worker-{n % 16}",
            data={"progress": n % 100, "n": n},
            id=f"{start_ms + n}-0",
        )


# -- one job across the platform ------------------------------------------------------------


def job_event(
    n: int,
    at_ms: int,
    service: str,
    event_type: str,
    data: dict[str, Any] | None = None,
    *,
    job_id: str = JOB,
    level: str | None = None,
) -> TelemetryEvent:
    """An event of job ``job_id`` at ``T0 + at_ms``."""
    return event(n, T0 + at_ms, service, event_type, data, job_id=job_id, level=level)


def crossing_job(job_id: str = JOB) -> list[TelemetryEvent]:
    """A job that crosses four services, with a 12.3 s gap and a failed webhook attempt."""
    steps: list[tuple[int, str, str, dict[str, Any], str | None]] = [
        (0, "api-server", "job.created", {"workflow": "txt2img", "priority": 5}, None),
        (12, "api-server", "job.queued", {"queue": "default"}, None),
        (340, "worker", "job.claimed", {"workerId": "w-1"}, None),
        (380, "worker", "connector.processing_started", {"connector": "comfyui"}, None),
        (900, "machine", "machine.assigned", {"machineId": "m-42"}, None),
        (1_200, "machine", "comfyui.executing", {"node": 3}, None),
        (3_000, "machine", "comfyui.progress_updated", {"progress": 50}, None),
        (4_500, "worker", "connector.retry_scheduled", {"message": HOSTILE}, "warn"),
        (16_800, "machine", "comfyui.completed", {"durationMs": 15_600}, None),
        (17_000, "worker", "connector.processing_completed", {"durationMs": 16_620}, None),
        (
            17_300,
            "webhook-service",
            "webhook.delivery_failed",
            {"error": "HTTP 502 from https://hooks.example.test/emp", "attempt": 1},
            None,
        ),
        (19_400, "webhook-service", "webhook.delivered", {"attempt": 2, "status": 200}, None),
        (19_500, "api-server", "job.completed", {"outputs": 1}, None),
    ]
    return [
        job_event(n, at, service, event_type, data, job_id=job_id, level=level)
        for n, (at, service, event_type, data, level) in enumerate(steps, start=1)
    ]


def crossing_timeline(gap_ms: int = 5_000, job_id: str = JOB) -> Timeline:
    return job_timeline(crossing_job(job_id), job_id, gap_ms=gap_ms, now_ms=T0 + 60_000)


def fleet_edges() -> list[HandoffEdge]:
    """Edges as over many jobs: one failing (webhook), one slow (machine), one backwards."""
    return [
        HandoffEdge("api-server", "worker", 412, 38.0, 120.0, 410.0, 0.0),
        HandoffEdge("worker", "machine", 409, 850.0, 9_800.0, 31_000.0, 0.0),
        HandoffEdge("machine", "worker", 398, 120.0, 640.0, 2_100.0, 0.0),
        HandoffEdge("worker", "webhook-service", 377, 15.0, 60.0, 240.0, 0.08),
        HandoffEdge("webhook-service", "api-server", 371, 9.0, 22.0, 95.0, 0.0),
        HandoffEdge("monitor", "worker", 12, 4.0, 9.0, 11.0, 0.0),
    ]


# -- ordinary jobs and four that went wrong ------------------------------------------------


def _incident_job(
    job: str, start: int, claim_ms: int, run_ms: int, *, end: str | None
) -> list[tuple[int, str, str, dict[str, Any], str]]:
    steps: list[tuple[int, str, str, dict[str, Any], str]] = [
        (start, "api-server", "job.created", {"jobType": "comfyui"}, job),
        (start + 50, "api-server", "job.queued", {"queueName": "default"}, job),
        (start + 50 + claim_ms, "worker", "job.claimed", {}, job),
        (start + 60 + claim_ms, "worker", "connector.processing_started", {}, job),
    ]
    done = start + 60 + claim_ms + run_ms
    if end == "failed":
        error = {"error": "CUDA out of memory"}
        steps.append((done, "worker", "connector.processing_failed", error, job))
        steps.append((done + 20, "api-server", "job.failed", {"error": "CUDA OOM"}, job))
    else:
        steps.append((done, "worker", "connector.processing_completed", {}, job))
        if end == "completed":
            steps.append((done + 20, "api-server", "job.completed", {}, job))
    return steps


def incident_sample(base_ms: int) -> list[TelemetryEvent]:
    """From ``base_ms`` on: ``job_ok_0``..``job_ok_23`` (claimed in 200 ms, run 1 s, on w-0
    and w-1), ``job_slow`` (claimed after 3.2 s), ``job_gap`` (after 9 s), ``job_bad`` (fails:
    CUDA out of memory), ``job_stuck`` (claimed, never finished), a heartbeat of w-1 during
    job_gap's wait, and a monitor note of :data:`HOSTILE_TEXT`. Worker events carry their
    worker and machine m-1. In time order, with stream IDs."""
    steps: list[tuple[int, str, str, dict[str, Any], str]] = []
    workers: dict[str, str] = {}
    for n in range(24):
        workers[f"job_ok_{n}"] = f"w-{n % 2}"
        steps += _incident_job(f"job_ok_{n}", base_ms + n * 10_000, 200, 1000, end="completed")
    for job, at, worker, claim, run, end in (
        ("job_slow", 300_000, "w-0", 3200, 1000, "completed"),
        ("job_gap", 400_000, "w-1", 9000, 1000, "completed"),
        ("job_bad", 500_000, "w-1", 200, 500, "failed"),
        ("job_stuck", 600_000, "w-0", 200, 100, None),
    ):
        workers[job] = worker
        flow = _incident_job(job, base_ms + at, claim, run, end=end)
        steps += flow[:3] if job == "job_stuck" else flow
    events = [
        event(
            n,
            ms,
            service,
            event_type,
            data,
            job_id=job,
            worker_id=workers[job] if service == "worker" else None,
            machine_id="m-1" if service == "worker" else None,
        )
        for n, (ms, service, event_type, data, job) in enumerate(steps)
    ]
    n = len(events)
    events.append(
        event(n, base_ms + 400_500, "worker", "worker.heartbeat", worker_id="w-1", machine_id="m-1")
    )
    events.append(
        event(n + 1, base_ms + 700_000, "monitor", "monitor.note", {"text": HOSTILE_TEXT})
    )
    return with_stream_ids(events)


# -- what the Problems view is for -----------------------------------------------------------


def _openai_job(index: int, start_ms: int, seq: int) -> list[TelemetryEvent]:
    """An openai job that fails with ``upstream 503``."""
    job = f"job-oa{index:02d}"
    worker = f"api-worker-{index % 2 + 1}"
    user = f"user-{index % 3}"
    steps: list[tuple[int, str, str, dict[str, Any], str | None]] = [
        (0, "api-server", "job.created", {"jobType": "openai", "userId": user}, None),
        (5, "api-server", "job.queued", {"queueName": "default"}, None),
        (40, "worker", "job.claimed", {}, worker),
        (50, "worker", "connector.processing_started", {"connectorType": "openai"}, worker),
        (
            650,
            "worker",
            "connector.processing_failed",
            {"connectorType": "openai", "error": "upstream 503 Service Unavailable"},
            worker,
        ),
        (660, "worker", "job.failed", {"error": "upstream 503 Service Unavailable"}, worker),
    ]
    return [
        event(seq + n, start_ms + at, service, event_type, data, job_id=job, worker_id=who)
        for n, (at, service, event_type, data, who) in enumerate(steps, start=1)
    ]


def triage_sample(start_ms: int = START_MS) -> list[TelemetryEvent]:
    """:func:`sample_events`, then what the Problems view is for: the openai connector
    failing every job for 8 s (``job-oa00``..``job-oa07``, ``upstream 503``), ``job-0100``
    claimed by worker-9 and never heard of again, and events that break the standards (a
    legacy service's ``JobDone``, claims that do not name their worker)."""
    events = sample_events(start_ms=start_ms)
    seq = 10_000
    after = start_ms + 20_000
    for index in range(8):
        flow = _openai_job(index, after + index * 1000, seq)
        seq += len(flow)
        events.extend(flow)
    stuck = after + 2_000
    events.append(event(seq + 1, stuck, "api-server", "job.created", {"jobType": "comfyui"},
                        job_id="job-0100"))  # fmt: skip
    events.append(event(seq + 2, stuck + 5, "api-server", "job.queued", {}, job_id="job-0100"))
    events.append(event(seq + 3, stuck + 40, "worker", "job.claimed", {}, job_id="job-0100",
                        worker_id="worker-9"))  # fmt: skip
    seq += 3
    for n in range(4):
        events.append(event(seq + 1 + n, after + 500 + n * 700, "legacy-api", "JobDone",
                            {"ok": True}))  # fmt: skip
    seq += 4
    for n in range(3):
        job = f"job-01{n + 1:02d}"
        events.append(event(seq + 1 + n, after + 800 + n * 900, "worker", "job.claimed", {},
                            job_id=job))  # fmt: skip
        events.append(event(seq + 4 + n, after + 900 + n * 900, "worker", "job.completed", {},
                            job_id=job, worker_id="worker-1"))  # fmt: skip
    for beat in range(0, 30_000, 2000):
        seq += 1
        events.append(event(seq + 10, after + beat + 1, "monitor", "monitor.heartbeat", {}))
    return with_stream_ids(events)
