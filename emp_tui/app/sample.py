"""Deterministic events for the tests, the screenshots and the benchmark: a fixed clock, fixed
IDs, jobs that flow api-server -> worker -> machine -> worker -> webhook-service, one job with a
long gap, one that fails, and monitor heartbeats in between. Pure: no I/O, no randomness."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from emp_tui.events import TelemetryEvent, trace_id_for_job

START_MS = 1_795_780_800_000  # 2026-11-27T10:00:00Z
"""The fixed clock every sample starts at."""


def _event(
    seq: int,
    ms: int,
    service: str,
    event_type: str,
    job_id: str | None,
    *,
    worker: str | None = None,
    machine: str | None = None,
    level: str | None = None,
    **data: object,
) -> TelemetryEvent:
    event = TelemetryEvent.create(
        service,
        event_type,
        data,
        timestamp=ms,
        job_id=job_id,
        worker_id=worker,
        machine_id=machine,
        trace_id=trace_id_for_job(job_id) if job_id else f"{seq:032x}",
        span_id=f"{seq + 1:016x}",
        level=level,
    )
    # The stream ID Redis would have given it: the time, and a sequence for ties.
    return replace(event, id=f"{ms}-{seq}")


def job_events(
    index: int, start_ms: int, *, seq: int = 0, gap_ms: int = 0, fail: bool = False
) -> list[TelemetryEvent]:
    """One job's events, from creation to its webhook."""
    job = f"job-{index:04d}"
    worker = f"worker-{index % 4 + 1}"
    machine = f"machine-{index % 2 + 1}"
    t = start_ms
    out: list[TelemetryEvent] = []

    def add(delay: int, service: str, event_type: str, **kw: object) -> None:
        nonlocal t
        t += delay
        out.append(_event(seq + len(out), t, service, event_type, job, **kw))  # type: ignore[arg-type]

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
        flow = job_events(
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
        events.append(
            _event(seq, start_ms + beat + 1, "monitor", "monitor.heartbeat", None, queued=beat % 7)
        )
        seq += 1
    events.sort(key=lambda event: (event.timestamp, event.id or ""))
    # Give them stream IDs in arrival order, as XADD would.
    ordered: list[TelemetryEvent] = []
    last_ms, counter = -1, 0
    for event in events:
        counter = counter + 1 if event.timestamp == last_ms else 0
        last_ms = event.timestamp
        ordered.append(replace(event, id=f"{event.timestamp}-{counter}"))
    return ordered


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
