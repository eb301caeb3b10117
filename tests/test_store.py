"""EventStore: stream order with stable sequence numbers, each stream ID once, the newest kept
within its capacity, a job index, and filtering that looks only where it must."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import pytest

from emp_tui.events import TelemetryEvent, trace_id_for_job
from emp_tui.query import Query, parse_query
from emp_tui.sources import merge
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


def loose(ms: int, note: str = "") -> TelemetryEvent:
    """An event without a stream ID, as some files hold them."""
    return TelemetryEvent.create("worker", "job.claimed", {"note": note}, timestamp=ms)


@dataclass(frozen=True)
class CountingQuery(Query):
    """A query that records every event it is asked about."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "asked", [])

    def matches(self, event: TelemetryEvent) -> bool:
        self.asked.append(event)  # type: ignore[attr-defined]
        return super().matches(event)


def counting(text: str) -> CountingQuery:
    query = parse_query(text, now_ms=0)
    return CountingQuery(**{f.name: getattr(query, f.name) for f in fields(query)})


def test_add_many_holds_events_oldest_first_with_a_job_index() -> None:
    store = EventStore()
    events = [ev(0, "job_1", "api-server"), ev(1, "job_2"), ev(2, "job_1", "worker")]
    seqs = store.add_many(events)
    assert len(seqs) == 3 and seqs == sorted(seqs)
    assert list(store) == events
    assert len(store) == 3
    assert store[0] is events[0] and store[-1] is events[2]
    assert [store.event(seq) for seq in seqs] == events
    assert store.seqs() == seqs and store.oldest_seq == seqs[0]
    assert store.by_job("job_1") == [events[0], events[2]]
    assert store.by_job("nope") == []
    assert store.job_ids() == ["job_1", "job_2"]  # job_1 has the newest event
    assert store.job_ids(limit=1) == ["job_1"]
    with pytest.raises(IndexError):
        store[3]


def test_same_stream_id_is_held_once() -> None:
    store = EventStore()
    first = store.add(ev(0))
    assert first is not None
    assert store.add(ev(0)) is None
    assert store.add_many([ev(0), ev(1), ev(1)]) == [store.seqs()[1]]
    assert len(store) == 2
    # Events without a stream ID are never duplicates of each other.
    event = loose(5)
    assert store.add(event) is not None and store.add(event) is not None
    assert len(store) == 4


def test_stream_order_whatever_the_order_of_arrival_with_stable_sequence_numbers() -> None:
    store = EventStore()
    newest = store.add_many([ev(50), ev(51), ev(52)])
    page = store.add_many([ev(10), ev(11)])  # a page of history, older than all held
    middle = store.add_many([ev(30), ev(20)])  # among them, in any order
    assert [e.timestamp - 1_000_000 for e in store] == [10, 11, 20, 30, 50, 51, 52]
    assert store.seqs() == sorted(page + middle + newest)
    # Nothing moved: every sequence number still finds the same event.
    assert [store.event(seq).timestamp - 1_000_000 for seq in newest] == [50, 51, 52]
    assert [store.event(seq).timestamp - 1_000_000 for seq in page] == [10, 11]
    assert [store.event(seq).timestamp - 1_000_000 for seq in middle] == [20, 30]
    assert store.by_job("job_1") == list(store)


def test_stream_ids_order_by_number_and_the_sequence_part() -> None:
    store = EventStore()
    ids = ["10-0", "9-0", "5-10", "5-9", "5-0", "18446744073709551615-18446744073709551615"]
    store.add_many([replace(ev(0), id=entry_id) for entry_id in ids])
    assert [e.id for e in store] == ["5-0", "5-9", "5-10", "9-0", "10-0", ids[-1]]


def test_events_without_a_stream_id_go_by_their_time_after_the_streams_entries() -> None:
    store = EventStore()
    at_5 = replace(ev(0), id="5-0", timestamp=5)
    at_5_late = replace(ev(0), id="5-1", timestamp=5)
    store.add_many([at_5, replace(ev(0), id="9-0", timestamp=9)])
    first, second = loose(5, "first"), loose(5, "second")
    store.add(first)
    store.add_many([second, loose(3), loose(-2)])
    store.add(at_5_late)
    assert [(e.id, e.timestamp, e.data.get("note")) for e in store] == [
        (None, -2, ""),
        (None, 3, ""),
        ("5-0", 5, None),
        ("5-1", 5, None),
        (None, 5, "first"),
        (None, 5, "second"),
        ("9-0", 9, None),
    ]
    # A third one of the same millisecond comes after the two held.
    store.add(loose(5, "third"))
    assert [e.data.get("note") for e in store if e.id is None and e.timestamp == 5] == [
        "first",
        "second",
        "third",
    ]


def test_ids_that_are_not_stream_ids_are_held_by_time_and_never_taken_for_others() -> None:
    store = EventStore()
    store.add(replace(ev(0), id="10-0", timestamp=10))
    odd = [
        "010-0",
        "10",
        "abc",
        "1-2-3",
        "+10-0",
        "\u0661\u0660-0",
    ]  # the last: Arabic-Indic digits
    for entry_id in odd:
        assert store.add(replace(ev(0), id=entry_id, timestamp=10)) is not None
    assert len(store) == 1 + len(odd)
    assert store[0].id == "10-0"


def test_capacity_keeps_the_newest_and_their_index_entries() -> None:
    store = EventStore(capacity=3)
    events = [ev(i, f"job_{i % 2}") for i in range(10)]
    store.add_many(events[:5])
    store.add_many(events[5:])
    assert len(store) == 3
    assert store.evicted == 7
    assert list(store) == events[7:]
    assert store.by_job("job_1") == [events[7], events[9]]
    assert store.by_job("job_0") == [events[8]]
    assert store[0] is events[7]
    # Full: an event older than all held is refused (and counted), a newer one pushes out
    # the oldest.
    assert store.add(events[0]) is None
    assert store.evicted == 8 and list(store) == events[7:]
    newer = ev(20, "job_0")
    assert store.add(newer) is not None
    assert list(store) == [*events[8:], newer]
    # A batch bigger than the store: only the sequence numbers of those held come back.
    batch = [ev(i, "job_2") for i in range(30, 40)]
    held = EventStore(capacity=4).add_many(batch)
    assert len(held) == 4
    # A job whose every event was let go is gone from the job list.
    small = EventStore(capacity=2)
    small.add_many([ev(0, "old"), ev(1, "new"), ev(2, "new")])
    assert small.job_ids() == ["new"]
    assert small.by_job("old") == []


def test_many_evictions_keep_every_lookup_right() -> None:
    store = EventStore(capacity=100)
    events = [ev(i, f"job_{i % 7}") for i in range(1000)]
    for start in range(0, 1000, 30):
        store.add_many(events[start : start + 30])
    assert [store[i] for i in range(100)] == events[900:]
    assert store.events(store.seqs()) == events[900:]
    assert store.by_job("job_3") == [e for e in events[900:] if e.job_id == "job_3"]


def test_job_ids_follow_stream_order_when_older_events_come_later() -> None:
    store = EventStore()
    store.add_many([ev(50, "job_live"), ev(51, "job_both")])
    store.add_many([ev(10, "job_old"), ev(60, "job_both")])  # job_both now newest
    assert store.job_ids() == ["job_both", "job_live", "job_old"]
    store.add_many([ev(5, "job_older")])
    assert store.job_ids() == ["job_both", "job_live", "job_old", "job_older"]
    store.add_many([ev(70, "job_live")])
    assert store.job_ids() == ["job_live", "job_both", "job_old", "job_older"]


def _sample_store() -> tuple[EventStore, list[TelemetryEvent]]:
    store = EventStore()
    events = [ev(i, f"job_{i % 3}", "worker" if i % 2 else "api-server") for i in range(60)]
    store.add_many(events)
    return store, events


def test_select_matches_what_the_query_matches() -> None:
    store, events = _sample_store()
    for text in ("service:api-server", "job:job_1 service:worker", "", "-job:job_1", "job_2"):
        query = parse_query(text, now_ms=0)
        assert store.events(store.select(query)) == [e for e in events if query.matches(e)]
    assert store.select(parse_query("job:job_1 job:job_2")) == []


def test_select_looks_only_at_the_jobs_events_when_the_query_names_one() -> None:
    store, events = _sample_store()
    query = counting("job:job_1 service:worker")
    found = store.events(store.select(query))
    assert found == [e for e in events if e.job_id == "job_1" and e.service == "worker"]
    assert query.asked == store.by_job("job_1")  # type: ignore[attr-defined]


def test_select_looks_only_within_the_time_bounds() -> None:
    store, events = _sample_store()
    since, until = events[20].timestamp, events[29].timestamp
    # As since:/until: would set them (they take dates and durations, not epoch ms).
    query = replace(counting("service:worker"), since_ms=since, until_ms=until)
    found = store.events(store.select(query))
    assert found == [e for e in events[20:30] if e.service == "worker"]
    assert query.asked == events[20:30]  # type: ignore[attr-defined]


def test_select_within_earlier_rows_looks_only_at_them() -> None:
    store, events = _sample_store()
    workers = store.select(parse_query("service:worker"))
    query = counting("service:worker job_2")
    found = store.events(store.select(query, within=workers))
    assert found == [e for e in events if e.service == "worker" and e.job_id == "job_2"]
    assert query.asked == store.events(workers)  # type: ignore[attr-defined]
    # With a job named too, still only among the rows given.
    query = counting("job:job_2 service:worker")
    assert store.events(store.select(query, within=workers)) == found
    assert len(query.asked) == len(found)  # type: ignore[attr-defined]


def test_malformed_counted_and_clear_resets() -> None:
    store = EventStore()
    store.add(TelemetryEvent.from_json_line(b"not json"))
    store.add(ev(1))
    assert store.malformed == 1
    store.clear()
    assert len(store) == 0 and store.malformed == 0 and store.job_ids() == []
    assert store.oldest_seq is None
    assert store.add(ev(1)) is not None


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        EventStore(capacity=0)


def test_a_resent_event_is_held_once_until_it_leaves() -> None:
    """An emitter that resent an event after an ambiguous timeout wrote it twice, under two
    stream IDs with one eventId: the store holds the first and counts the copy."""
    store = EventStore(capacity=3)
    first = replace(ev(1), event_id="00000a0000000001")
    copy = replace(ev(2), event_id="00000a0000000001")
    assert store.add_many([first, copy]) == store.seqs()
    assert list(store) == [first] and store.duplicates == 1
    assert store.add(copy) is None and store.duplicates == 2
    # Once the event has left the store (pushed out by newer ones), its ID is forgotten.
    store.add_many([replace(ev(n), event_id=f"id-{n}") for n in (3, 4, 5)])
    assert first not in list(store)
    late = replace(ev(6), event_id="00000a0000000001")
    assert store.add(late) is not None and list(store)[-1] == late


def test_two_shards_entries_with_one_stream_id_are_both_held() -> None:
    """Each shard of a sharded stream numbers its own entries: ``5-0`` on two shards is two
    events. The same entry read twice is still one."""
    one = TelemetryEvent.create("worker", "job.claimed", job_id="a", timestamp=5, event_id="e1")
    two = TelemetryEvent.create("worker", "job.claimed", job_id="b", timestamp=5, event_id="e2")
    one, two = replace(one, id="5-0"), replace(two, id="5-0")
    store = EventStore()
    assert len(store.add_many([one, two])) == 2
    assert store.add_many([one, two, replace(one)]) == []  # read again: held already
    assert len(store) == 2 and store.duplicates == 0
    assert {e.job_id for e in store} == {"a", "b"}


def test_merge_keeps_one_sources_twins_and_drops_another_sources_copies() -> None:
    a = replace(TelemetryEvent.create("worker", "x.a", timestamp=5), id="5-0")
    b = replace(TelemetryEvent.create("worker", "x.b", timestamp=5), id="5-0")
    assert a.event_id is None and b.event_id is None
    merged = merge([a, b], [a])  # two shards' entries, then a file holding one of them
    assert [e.event_type for e in merged] == ["x.a", "x.b"]
