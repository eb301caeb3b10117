"""The health figures of the events at hand and of the collectors' hashes (emp_tui.health),
which the app's health pane shows: pure functions, no Redis."""

from __future__ import annotations

import pytest

from emp_tui.events import CIRCUIT_EVENT_TYPE, DROPPED_EVENT_TYPE, TelemetryEvent
from emp_tui.health import (
    GroupState,
    StreamState,
    collector_rate,
    delivery_success,
    emitter_figures,
    entries_rate,
    number_field,
    rates_by_service,
)

T0 = 1_795_780_800_000


def _event(at: int, service: str, kind: str = "job.created", data: dict | None = None):
    return TelemetryEvent.create(service, kind, data or {}, timestamp=at)


def test_rates_count_each_service_in_equal_buckets() -> None:
    events = [_event(T0 + s * 1000, "worker") for s in range(60)]
    events += [_event(T0 + 59_000, "api-server")] * 3
    events.append(_event(T0 - 1, "worker"))  # before the range: not counted
    bucket_ms, rates = rates_by_service(events, T0, T0 + 60_000, buckets=30)
    assert bucket_ms == 2000
    worker, api = rates
    assert (worker.service, worker.total, worker.counts) == ("worker", 60, [2] * 30)
    assert worker.per_minute == pytest.approx(60.0) and worker.peak_per_minute == 60.0
    assert (api.service, api.total, api.counts[-1], sum(api.counts)) == ("api-server", 3, 3, 3)
    assert api.peak_per_minute == 90.0  # 3 in a 2 s bar


def test_rate_buckets_are_whole_seconds_or_whole_minutes() -> None:
    assert rates_by_service([], T0, T0 + 44_000)[0] == 2000
    assert rates_by_service([], T0, T0 + 5_000)[0] == 1000
    assert rates_by_service([], T0, T0 + 24 * 3_600_000)[0] == 48 * 60_000
    assert rates_by_service([], T0, T0 + 31 * 60_000)[0] == 2 * 60_000


def test_emitter_figures_add_up_drops_and_keep_the_last_circuit_state() -> None:
    drop, circuit = DROPPED_EVENT_TYPE, CIRCUIT_EVENT_TYPE
    events = [
        _event(T0, "worker", drop, {"count": 5, "reasons": {"buffer_full": 5}}),
        _event(T0 + 1, "worker", drop, {"count": 2, "reasons": {"buffer_full": 1, "x": 1}}),
        _event(T0 + 2, "worker", drop, {"count": "lots", "reasons": ["odd"]}),
        _event(T0 + 3, "machine", circuit, {"state": "open", "reason": "unreachable"}),
        _event(T0 + 4, "machine", circuit, {"state": "closed", "reason": "replayed"}),
        _event(T0 + 5, "machine", circuit, {"state": "open", "reason": "memory", "spilled": 9}),
        _event(T0 + 6, "machine", "job.created"),
    ]  # fmt: skip
    machine, worker = emitter_figures(events)
    assert (worker.dropped, worker.drop_reports, worker.reasons) == (
        7,
        3,
        {"buffer_full": 6, "x": 1},
    )
    assert worker.circuit is None
    assert (machine.circuit, machine.circuit_reason, machine.circuit_at_ms) == (
        "open",
        "memory",
        T0 + 5,
    )
    assert (machine.circuit_changes, machine.opened, machine.spilled) == (3, 2, 9)
    assert machine.drop_reports == 0


def test_collector_rate_between_readings_else_since_start() -> None:
    first = {"read": "100", "updated_ms": "10000", "started_ms": "0"}
    second = {"read": "400", "updated_ms": "15000", "started_ms": "0"}
    assert collector_rate(first) == (10.0, True)
    assert collector_rate(second, first) == (60.0, False)
    restarted = {"read": "10", "updated_ms": "16000", "started_ms": "15000"}
    assert collector_rate(restarted, second) == (10.0, True)  # another run: not a delta
    assert collector_rate(second, second) == (pytest.approx(400 / 15), True)  # not updated
    assert collector_rate({"read": "x"}) == (None, False)


def test_delivery_success_is_exported_over_exported_and_dead_lettered() -> None:
    assert delivery_success({"exported": "90", "dead_lettered": "10"}) == 0.9
    assert delivery_success({"exported": "0", "dead_lettered": "0", "spooled": "50"}) is None


def _state(first_id: str, *, length: int = 10, added: int | None = None) -> StreamState:
    return StreamState(
        stream="s", now_ms=T0, length=length, first_id=first_id, last_id=first_id,
        recent_by_service={}, groups=[], memory_bytes=None, collectors=[], entries_added=added,
    )  # fmt: skip


def test_trimmed_and_groups_behind_the_oldest_entry() -> None:
    assert _state("5-0", added=None).trimmed is None
    assert _state("5-0", length=10, added=25).trimmed == 15
    state = _state("1000-5")
    group = GroupState(name="g", consumers=1, pending=0, lag=0, last_delivered_id="1000-4")
    assert state.behind_oldest(group)
    assert not state.behind_oldest(GroupState("g", 1, 0, 0, "1000-5"))
    assert not state.behind_oldest(GroupState("g", 0, 0, 0, "0-0"))  # never read


def test_entries_rate_between_two_readings() -> None:
    assert entries_rate(1000, 10, 3000, 30) == 10.0
    assert entries_rate(1000, None, 3000, 30) is None  # Redis 6.2: no entries-read
    assert entries_rate(1000, 10, 1000, 30) is None  # no time passed
    assert entries_rate(1000, 40, 3000, 30) is None  # the group was made again


def test_number_fields_are_ascii_digits_only() -> None:
    fields = {"read": "12", "lag": "", "pending": "\u00b2", "rss": "-3", "x": "1e3"}
    assert [number_field(fields, name) for name in ("read", "lag", "pending", "rss", "x")] == [
        12, None, None, None, None,
    ]  # fmt: skip
    assert number_field(fields, "absent") is None
