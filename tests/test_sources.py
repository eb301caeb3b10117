"""Sources against a real redis-server (paging, ID seeks, live tail across a restart) and
against files (rotation, .gz, corrupt lines, the byte-level pre-filter)."""

from __future__ import annotations

import asyncio
import gzip
from pathlib import Path

import orjson
import pytest
import redis
from redisproc import RedisProcess

from emp_tui.events import TelemetryEvent, trace_id_for_job
from emp_tui.query import parse_query
from emp_tui.sources import (
    FileStats,
    RedisTail,
    SourceError,
    aread_range,
    backfill,
    connect,
    expand_paths,
    merge,
    read_file,
    read_files,
    read_query,
    read_range,
)

STREAM = "emp:events"
T0 = 1_700_000_000_000


def event(n: int, job: str = "job_1", **kw: object) -> TelemetryEvent:
    return TelemetryEvent.create(
        str(kw.pop("service", "worker")),
        str(kw.pop("event_type", "job.progress_updated")),
        {"n": n},
        timestamp=T0 + n * 1000,
        job_id=job,
    )


def fill(client: redis.Redis, count: int, *, jobs: int = 3) -> list[str]:
    """``count`` entries with explicit IDs one second apart."""
    ids = []
    for n in range(count):
        entry_id = f"{T0 + n * 1000}-0"
        client.xadd(STREAM, event(n, f"job_{n % jobs}").encode(), id=entry_id)
        ids.append(entry_id)
    return ids


def xrange_calls(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return int(stats.get("cmdstat_xrange", {}).get("calls", 0)) + int(
        stats.get("cmdstat_xrevrange", {}).get("calls", 0)
    )


# -- Redis ----------------------------------------------------------------------------------


def test_connect_unreachable_is_one_line_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as info:
        connect(f"unix://{tmp_path}/nothing.sock", timeout=0.5)
    assert "cannot reach Redis" in str(info.value)
    assert "\n" not in str(info.value)
    with pytest.raises(SourceError, match="bad Redis URL"):
        connect("http://nope")


def test_read_range_pages_through_everything(redis_url: str) -> None:
    client = connect(redis_url)
    ids = fill(client, 95)
    got = list(read_range(client, STREAM, page=10))
    assert [e.id for e in got] == ids
    assert [e.data["n"] for e in got] == list(range(95))
    newest_first = list(read_range(client, STREAM, reverse=True, page=7))
    assert [e.id for e in newest_first] == ids[::-1]
    assert list(read_range(client, "emp:nothing")) == []


def test_paging_handles_same_millisecond_ids(redis_url: str) -> None:
    client = connect(redis_url)
    for seq in range(25):
        client.xadd(STREAM, event(seq).encode(), id=f"{T0}-{seq}")
    assert [e.id for e in read_range(client, STREAM, page=4)] == [f"{T0}-{s}" for s in range(25)]
    rev = [e.id for e in read_range(client, STREAM, reverse=True, page=4)]
    assert rev == [f"{T0}-{s}" for s in reversed(range(25))]


def test_query_time_bounds_seek_by_id(redis_url: str) -> None:
    client = connect(redis_url)
    ids = fill(client, 1000)
    q = parse_query(f"since:{T0 + 500_000} until:{T0 + 524_000}", now_ms=T0 + 2_000_000)
    before = xrange_calls(client)
    got = read_query(client, STREAM, q, page=10)
    assert [e.id for e in got] == ids[500:525]
    # 25 entries, 10 a page: a seek takes 3 reads; a scan from the start would take 100.
    assert xrange_calls(client) - before <= 3


def test_query_limit_takes_the_most_recent_matches(redis_url: str) -> None:
    client = connect(redis_url)
    fill(client, 60, jobs=3)
    got = read_query(client, STREAM, parse_query("job:job_1"), limit=4, page=5)
    assert [e.data["n"] for e in got] == [46, 49, 52, 55, 58][-4:]
    assert read_query(client, STREAM, parse_query("job:none"), limit=4) == []
    everything = read_query(client, STREAM, parse_query("job:job_2"))
    assert [e.data["n"] for e in everything] == list(range(2, 60, 3))


def test_read_range_reports_wrong_type(redis_url: str) -> None:
    client = connect(redis_url)
    client.set(STREAM, "not a stream")
    with pytest.raises(SourceError, match="cannot read stream"):
        list(read_range(client, STREAM))


def test_malformed_entries_are_read_flagged(redis_url: str) -> None:
    client = connect(redis_url)
    client.xadd(STREAM, {"service": "worker", "data": "{broken"})
    (got,) = read_range(client, STREAM)
    assert got.malformed and "data is not JSON" in got.malformed


async def next_batch(tail: RedisTail, *, want_state: str | None = None) -> list[TelemetryEvent]:
    """The next non-empty batch (or, with want_state, wait until the tail reports it)."""
    while True:
        batch = await asyncio.wait_for(tail.__anext__(), timeout=30)
        if want_state is not None:
            if tail.state == want_state:
                return batch
        elif batch:
            return batch


async def test_live_tail_from_now_and_across_a_restart(redis_proc: RedisProcess) -> None:
    client = redis_proc.client()
    client.xadd(STREAM, event(0).encode())  # already there: a "$" tail does not show it
    states: list[str] = []
    tail = RedisTail(
        redis_proc.url,
        STREAM,
        block_ms=100,
        backoff_initial=0.05,
        backoff_max=0.2,
        on_state=lambda state, _error: states.append(state),
    )
    try:
        await next_batch(tail, want_state="connected")
        client.xadd(STREAM, event(1).encode())
        client.xadd(STREAM, event(2).encode())
        got = await next_batch(tail)
        while len(got) < 2:
            got += await next_batch(tail)
        assert [e.data["n"] for e in got] == [1, 2]

        redis_proc.stop(kill=True)
        await next_batch(tail, want_state="reconnecting")
        assert tail.error
        redis_proc.start()
        client = redis_proc.client()
        client.xadd(STREAM, event(3).encode())
        got = await next_batch(tail)
        assert [e.data["n"] for e in got] == [3]
        assert tail.state == "connected" and tail.error is None
        assert tail.reconnects >= 1
    finally:
        await tail.aclose()
        client.close()
    assert tail.state == "disconnected"
    assert states[0] == "connected" and states[-1] == "disconnected"
    assert states.index("reconnecting") < len(states) - 1 - states[::-1].index("connected")


async def test_tail_from_an_id_catches_up(redis_url: str) -> None:
    client = connect(redis_url)
    ids = fill(client, 5)
    tail = RedisTail(redis_url, STREAM, start_id=ids[1], block_ms=100)
    try:
        got = await next_batch(tail)
        assert [e.id for e in got] == ids[2:]
        assert tail.last_id == ids[-1]
    finally:
        await tail.aclose()


# -- files ----------------------------------------------------------------------------------


def write_lines(path: Path, lines: list[bytes], *, gz: bool = False) -> None:
    blob = b"".join(line if line.endswith(b"\n") else line + b"\n" for line in lines)
    path.write_bytes(gzip.compress(blob) if gz else blob)


def with_id(e: TelemetryEvent, n: int) -> bytes:
    obj = e.to_dict()
    obj["id"] = f"{T0 + n}-0"
    return orjson.dumps(obj)


def test_rotated_and_gz_files_read_oldest_first(tmp_path: Path) -> None:
    log = tmp_path / "events.log"
    write_lines(tmp_path / "events.log.2.gz", [with_id(event(0), 0)], gz=True)
    write_lines(tmp_path / "events.log.1", [with_id(event(1), 1)])
    write_lines(log, [with_id(event(2), 2)])
    write_lines(tmp_path / "events.log.bak~", [b"ignored: not a rotation"])
    assert [p.name for p in expand_paths([log])] == [
        "events.log.2.gz",
        "events.log.1",
        "events.log",
    ]
    assert [e.data["n"] for e in read_files([log])] == [0, 1, 2]
    # A directory stands for its log files.
    assert sorted(e.data["n"] for e in read_files([tmp_path])) == [0, 1, 2]


def test_corrupt_lines_are_counted_reported_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "events.log"
    write_lines(
        path,
        [with_id(event(0), 0), b"{not json", b"", b"[1, 2]", b'"text"', with_id(event(1), 1),
         b'{"service": "worker"}'],
    )  # fmt: skip
    stats = FileStats()
    got = list(read_file(path, None, stats))
    # The object with missing fields is an event (flagged), the non-objects are corrupt.
    assert [e.malformed is None for e in got] == [True, True, False]
    assert stats.corrupt == 3
    assert stats.problems[0].startswith(f"{path}:2: line is not JSON")
    assert stats.problems[1].startswith(f"{path}:4: line is not a JSON object")


def test_missing_and_unreadable_files_raise_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file"):
        expand_paths([tmp_path / "nope.log"])
    with pytest.raises(SourceError, match="cannot read"):
        list(read_file(tmp_path))  # a directory where a file was expected
    bad_gz = tmp_path / "bad.log.gz"
    bad_gz.write_bytes(b"\x1f\x8b" + b"garbage" * 10)
    with pytest.raises(SourceError, match="cannot read"):
        list(read_file(bad_gz))


def test_file_without_read_permission(tmp_path: Path) -> None:
    import os

    if os.geteuid() == 0:
        pytest.skip("root reads files whatever their mode; the directory case covers it")
    locked = tmp_path / "locked.log"
    locked.write_bytes(b"{}\n")
    locked.chmod(0)
    with pytest.raises(SourceError, match="cannot read"):
        list(read_file(locked))


def test_prefilter_never_drops_what_the_matcher_accepts(tmp_path: Path) -> None:
    target = "job_42"
    lines = [
        with_id(event(0, target), 0),  # top-level jobId
        # jobId only inside data (lifted by the reader)
        orjson.dumps({"timestamp": T0, "service": "worker", "eventType": "x.y",
                      "traceId": trace_id_for_job(target), "data": {"jobId": target}}),
        # data as a JSON string with the ID inside
        orjson.dumps({"timestamp": T0, "service": "worker", "eventType": "x.y",
                      "traceId": "ab" * 16, "data": orjson.dumps({"jobId": target}).decode()}),
        # a different job whose data mentions the target: read, then rejected by the matcher
        orjson.dumps({"timestamp": T0, "service": "worker", "eventType": "x.y",
                      "traceId": "ab" * 16, "jobId": "job_7", "data": {"note": target}}),
        with_id(event(1, "job_420"), 1),  # a longer ID containing the target
        b"{corrupt " + target.encode(),
    ] + [with_id(event(n, f"job_{n}"), n) for n in range(100, 400)]  # fmt: skip
    path = tmp_path / "events.log"
    write_lines(path, lines)
    q = parse_query(f"job:{target}")
    assert q.required_literals()
    fast = list(read_file(path, q))
    slow = [e for e in read_file(path) if q.matches(e)]
    assert fast == slow
    assert len(fast) == 3
    # Two required IDs (AND) and alternatives work the same way.
    q2 = parse_query("job:job_150,job_151 worker:w-1")
    assert list(read_file(path, q2)) == [e for e in read_file(path) if q2.matches(e)] == []
    q3 = parse_query("job:job_150,job_151,job_42")
    assert list(read_file(path, q3)) == [e for e in read_file(path) if q3.matches(e)]
    assert len(list(read_file(path, q3))) == 5
    # An ID that an encoder may escape (Go writes < as \u003c) is never pre-filtered.
    escaped = tmp_path / "escaped.log"
    write_lines(
        escaped,
        [
            b'{"timestamp": 1, "service": "worker", "eventType": "x.y", '
            b'"traceId": "' + b"ab" * 16 + b'", "jobId": "a\\u003cb"}'
        ],
    )
    (hit,) = read_file(escaped, parse_query("job:a<b"))
    assert hit.job_id == "a<b"


def test_prefilter_works_across_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import emp_tui.sources as sources

    monkeypatch.setattr(sources, "CHUNK", 300)
    lines = [with_id(event(n, f"job_{n % 5}"), n) for n in range(200)]
    plain, packed = tmp_path / "events.log", tmp_path / "events.log.1.gz"
    write_lines(plain, lines)  # searched in place (mmap)
    write_lines(packed, lines, gz=True)  # searched chunk by chunk
    q = parse_query("job:job_3")
    for path in (plain, packed):
        assert [e.data["n"] for e in read_file(path, q)] == list(range(3, 200, 5))
        assert [e.data["n"] for e in read_file(path)] == list(range(200))


def test_json_array_exports_are_read(tmp_path: Path) -> None:
    path = tmp_path / "export.json"
    path.write_bytes(orjson.dumps([event(0).to_dict(), 5, event(1).to_dict()]))
    stats = FileStats()
    assert [e.data["n"] for e in read_file(path, None, stats)] == [0, 1]
    assert stats.corrupt == 1
    (tmp_path / "bad.json").write_bytes(b"[1, 2")
    with pytest.raises(SourceError, match="not a JSON array"):
        list(read_file(tmp_path / "bad.json"))


def test_merge_orders_and_deduplicates_by_stream_id() -> None:
    a = [TelemetryEvent.from_json_line(with_id(event(n), n)) for n in (0, 2, 4)]
    b = [TelemetryEvent.from_json_line(with_id(event(n), n)) for n in (1, 2, 3)]
    loose = event(5)  # no stream ID: placed by its own timestamp
    merged = merge(a, b, [loose])
    assert [e.data["n"] for e in merged] == [0, 1, 2, 3, 4, 5]


async def test_backfill_then_tail_without_a_gap(redis_url: str) -> None:
    client = connect(redis_url)
    ids = fill(client, 30, jobs=3)
    got = await backfill(redis_url, STREAM, limit=8, page=3)
    assert [e.id for e in got] == ids[-8:]
    only = await backfill(redis_url, STREAM, limit=100, query=parse_query("job:job_1"), page=4)
    assert [e.data["n"] for e in only] == list(range(1, 30, 3))
    assert await backfill(redis_url, "emp:empty") == []
    tail = RedisTail(redis_url, STREAM, start_id=got[-1].id or "$", block_ms=100)
    try:
        await next_batch(tail, want_state="connected")
        client.xadd(STREAM, event(99).encode())
        (new,) = await next_batch(tail)
        assert new.data["n"] == 99
    finally:
        await tail.aclose()


async def test_aread_range_pages(redis_url: str) -> None:
    import redis.asyncio

    ids = fill(connect(redis_url), 20)
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        forward = [e.id async for e in aread_range(client, STREAM, page=6)]
        backward = [e.id async for e in aread_range(client, STREAM, reverse=True, page=6)]
    finally:
        await client.aclose()
    assert forward == ids and backward == ids[::-1]


async def test_backfill_unreachable(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="cannot reach Redis"):
        await backfill(f"unix://{tmp_path}/none.sock", STREAM)
