"""EventClient.event(timestamp=...): the simulation stamps events with its own clock."""

from __future__ import annotations

from simhelp import read_events

from emp_tui.telemetry import EventClient


def test_an_explicit_timestamp_replaces_the_time_of_the_call(redis_url: str) -> None:
    client = EventClient("worker", redis_url=redis_url, stream="emp:events")
    client.job_event("job_1", "job.claimed", {"claimTimeMs": 5}, timestamp=1_800_000_000_123)
    client.event("worker.ready", worker_id="w-1")
    assert client.close(5)
    stamped, unstamped = read_events(redis_url)
    assert (stamped.timestamp, stamped.job_id, stamped.data) == (
        1_800_000_000_123,
        "job_1",
        {"claimTimeMs": 5},
    )
    assert stamped.malformed is None
    # Without it, the wall clock: the stream entry's own time, give or take the flush.
    assert stamped.id is not None and unstamped.id is not None
    entry_ms = int(unstamped.id.split("-")[0])
    assert abs(unstamped.timestamp - entry_ms) < 60_000
