"""EventStore: bounded, deduplicated by stream ID, indexed by job, trace, service."""

from __future__ import annotations

import pytest

from emp_tui.events import TelemetryEvent, trace_id_for_job
from emp_tui.query import parse_query
from emp_tui.store import EventStore


def ev(n: int, job: str | None = "job_1", service: str = "worker", **kw: object) -> TelemetryEvent:
    return TelemetryEvent(
        timestamp=1_000_000 + n,
        service=service,
        event_type=str(kw.pop("event_type", "job.progress_updated")),
        trace_id=trace_id_for_job(job) if job else "ab" * 16,
        job_id=job,
        id=f"{1_000_000 + n}-0",
        **kw,  # type: ignore[arg-type]
    )


def test_append_iterates_oldest_first_and_indexes() -> None:
    store = EventStore()
    events = [ev(0, "job_1", "api-server"), ev(1, "job_2"), ev(2, "job_1", "worker")]
    assert store.extend(events) == 3
    assert list(store) == events
    assert len(store) == 3
    assert store[0] is events[0] and store[-1] is events[2]
    assert store[1:] == events[1:]
    assert store.by_job("job_1") == [events[0], events[2]]
    assert store.by_trace(trace_id_for_job("job_2")) == [events[1]]
    assert store.by_service("worker") == [events[1], events[2]]
    assert store.by_job("nope") == []
    assert store.services() == ["api-server", "worker"]
    assert store.job_ids() == ["job_1", "job_2"]  # job_1 seen most recently
    with pytest.raises(IndexError):
        store[3]


def test_same_stream_id_is_held_once() -> None:
    store = EventStore()
    assert store.append(ev(0))
    assert not store.append(ev(0))
    assert store.extend([ev(0), ev(1)]) == 1
    assert len(store) == 2
    # Events without a stream ID are never duplicates of each other.
    loose = TelemetryEvent.create("worker", "job.claimed", timestamp=5)
    assert store.append(loose) and store.append(loose)
    assert len(store) == 4


def test_capacity_evicts_oldest_and_their_index_entries() -> None:
    store = EventStore(capacity=3)
    events = [ev(i, f"job_{i % 2}") for i in range(10)]
    store.extend(events)
    assert len(store) == 3
    assert store.evicted == 7
    assert list(store) == events[7:]
    assert store.by_job("job_1") == [events[7], events[9]]
    assert store.by_job("job_0") == [events[8]]
    assert store[0] is events[7]
    # An evicted ID can come back.
    assert store.append(events[0])
    assert list(store)[-1] is events[0]
    # A job whose every event was evicted is gone from the job list.
    small = EventStore(capacity=2)
    small.extend([ev(0, "old"), ev(1, "new"), ev(2, "new")])
    assert small.job_ids() == ["new"]
    assert small.by_job("old") == []


def test_many_evictions_keep_random_access_right() -> None:
    store = EventStore(capacity=100)
    events = [ev(i, f"job_{i % 7}") for i in range(1000)]
    store.extend(events)
    assert [store[i] for i in range(100)] == events[900:]
    assert store.by_job("job_3") == [e for e in events[900:] if e.job_id == "job_3"]


def test_filter_uses_query_and_job_index() -> None:
    store = EventStore()
    events = [ev(i, f"job_{i % 3}", "worker" if i % 2 else "api-server") for i in range(12)]
    store.extend(events)
    q = parse_query("job:job_1 service:worker")
    assert store.filter(q) == [e for e in events if e.job_id == "job_1" and e.service == "worker"]
    q = parse_query("service:api-server")
    assert store.filter(q) == [e for e in events if e.service == "api-server"]
    assert store.filter(parse_query("")) == events
    assert store.filter(parse_query("job:job_1 job:job_2")) == []


def test_malformed_counted_and_clear_resets() -> None:
    store = EventStore()
    store.append(TelemetryEvent.from_json_line(b"not json"))
    store.append(ev(1))
    assert store.malformed == 1
    store.clear()
    assert len(store) == 0 and store.malformed == 0 and store.job_ids() == []
    assert store.append(ev(1))


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        EventStore(capacity=0)
