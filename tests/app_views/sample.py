"""Deterministic events, timelines and handoff edges for the widget tests (fixed clock and IDs)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from emp_tui.analysis import HandoffEdge, Timeline, job_timeline
from emp_tui.events import TelemetryEvent, trace_id_for_job

T0 = 1_764_000_000_000  # 2025-11-24T16:00:00Z, a fixed clock
JOB = "job_7f3a"

HOSTILE = "[bold red]boom[/] \x1b[31mred\x1b[0m\r\bX\x07 $(rm -rf /)"


def event(
    n: int,
    at_ms: int,
    service: str,
    event_type: str,
    data: dict[str, Any] | None = None,
    *,
    job_id: str = JOB,
    level: str | None = None,
) -> TelemetryEvent:
    """One event at ``T0 + at_ms`` with a fixed stream ID (``n`` orders equal timestamps)."""
    made = TelemetryEvent.create(
        service,
        event_type,
        data,
        timestamp=T0 + at_ms,
        job_id=job_id,
        trace_id=trace_id_for_job(job_id),
        span_id=f"{n:016x}",
        level=level,
    )
    return replace(made, id=f"{T0 + at_ms}-{n}")


def job_events(job_id: str = JOB) -> list[TelemetryEvent]:
    """A job that crosses four services, with a 12.3 s gap and a failed webhook attempt."""
    return [
        event(
            1, 0, "api-server", "job.created", {"workflow": "txt2img", "priority": 5}, job_id=job_id
        ),
        event(2, 12, "api-server", "job.queued", {"queue": "default"}, job_id=job_id),
        event(3, 340, "worker", "job.claimed", {"workerId": "w-1"}, job_id=job_id),
        event(
            4,
            380,
            "worker",
            "connector.processing_started",
            {"connector": "comfyui"},
            job_id=job_id,
        ),
        event(5, 900, "machine", "machine.assigned", {"machineId": "m-42"}, job_id=job_id),
        event(6, 1_200, "machine", "comfyui.executing", {"node": 3}, job_id=job_id),
        event(7, 3_000, "machine", "comfyui.progress_updated", {"progress": 50}, job_id=job_id),
        event(
            8,
            4_500,
            "worker",
            "connector.retry_scheduled",
            {"message": HOSTILE},
            job_id=job_id,
            level="warn",
        ),
        event(9, 16_800, "machine", "comfyui.completed", {"durationMs": 15_600}, job_id=job_id),
        event(
            10,
            17_000,
            "worker",
            "connector.processing_completed",
            {"durationMs": 16_620},
            job_id=job_id,
        ),
        event(
            11,
            17_300,
            "webhook-service",
            "webhook.delivery_failed",
            {"error": "HTTP 502 from https://hooks.example.test/emp", "attempt": 1},
            job_id=job_id,
        ),
        event(
            12,
            19_400,
            "webhook-service",
            "webhook.delivered",
            {"attempt": 2, "status": 200},
            job_id=job_id,
        ),
        event(13, 19_500, "api-server", "job.completed", {"outputs": 1}, job_id=job_id),
    ]


def job_timeline_sample(gap_ms: int = 5_000, job_id: str = JOB) -> Timeline:
    return job_timeline(job_events(job_id), job_id, gap_ms=gap_ms, now_ms=T0 + 60_000)


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
