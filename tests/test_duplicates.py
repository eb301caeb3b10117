"""At least once, shown once: an emitter resends a batch after Redis was paused past its
socket timeout (the stream then holds those events twice, under other stream IDs, with the
same eventId), and every reader collapses the copies: the sources' range reads, backfill,
live tail, files and merge, and the CLI as a user runs it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from redisproc import RedisProcess

from emp_tui.events import SeenEvents, TelemetryEvent, decode
from emp_tui.export import write_events
from emp_tui.query import parse_query
from emp_tui.sources import (
    FileStats,
    RedisTail,
    backfill,
    merge,
    read_files,
    read_query,
    read_range,
)
from emp_tui.telemetry import EventClient

STREAM = "emp:events"
JOB = "job_dup"
BIN = Path(sys.executable).parent


def wait_for(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def raw_entries(url: str) -> list[TelemetryEvent]:
    """The stream as it is, copies and all."""
    with redis.Redis.from_url(url) as client:
        return [decode(entry_id, fields) for entry_id, fields in client.xrange(STREAM)]


@pytest.fixture(scope="module")
def resent() -> Any:
    """A stream in which an emitter's resend left copies: Redis stopped (SIGSTOP) while a
    batch was on its way, the emitter timed out and, once Redis went on (SIGCONT), sent the
    batch again. Yields (url, the number of distinct events)."""
    with RedisProcess() as server:
        assert server.proc is not None
        client = EventClient(
            "worker", redis_url=server.url, socket_timeout=0.5, max_backoff=0.2, batch_size=50
        )
        try:
            for i in range(20):
                client.job_event(JOB, "job.progress_updated", {"i": i})
            assert client.flush(10)
            server.proc.send_signal(signal.SIGSTOP)
            try:
                for i in range(20, 70):
                    client.job_event(JOB, "job.progress_updated", {"i": i})
                # The batch is written to the socket, then its replies time out.
                wait_for(lambda: not client.stats.connected, "the emitter to time out")
            finally:
                server.proc.send_signal(signal.SIGCONT)
            assert client.flush(30)
            for i in range(70, 80):
                client.job_event(JOB, "job.progress_updated", {"i": i})
            assert client.flush(10)
        finally:
            client.close(timeout=5)
        # The emitter noted its outage (telemetry.circuit_changed, open then closed): these
        # tests read the job's events only.
        with redis.Redis.from_url(server.url) as r:
            notes = [i for i, f in r.xrange(STREAM) if f[b"eventType"].startswith(b"telemetry.")]
            assert len(notes) == 2
            r.xdel(STREAM, *notes)
        yield server.url, 80


def test_the_resend_left_copies_with_the_same_event_id(resent: Any) -> None:
    url, distinct = resent
    entries = raw_entries(url)
    copies = Counter(e.event_id for e in entries)
    assert len(copies) == distinct and None not in copies
    assert len(entries) > distinct  # what the readers below have to collapse
    resent_ids = {event_id for event_id, n in copies.items() if n > 1}
    assert {e.data["i"] for e in entries if e.event_id in resent_ids} <= set(range(20, 70))


def _assert_once(events: list[TelemetryEvent] | list[dict[str, Any]], distinct: int) -> None:
    def field(event: Any, name: str, attr: str) -> Any:
        return event[name] if isinstance(event, dict) else getattr(event, attr)

    event_ids = [field(e, "eventId", "event_id") for e in events]
    assert len(event_ids) == distinct and len(set(event_ids)) == distinct
    assert sorted(field(e, "data", "data")["i"] for e in events) == list(range(distinct))


def test_range_reads_show_each_event_once(resent: Any) -> None:
    url, distinct = resent
    with redis.Redis.from_url(url) as client:
        _assert_once(list(read_range(client, STREAM)), distinct)
        _assert_once(list(read_range(client, STREAM, reverse=True, page=7)), distinct)
        _assert_once(read_query(client, STREAM, parse_query(f"job:{JOB}"), limit=500), distinct)


async def test_backfill_and_tail_show_each_event_once(resent: Any) -> None:
    url, distinct = resent
    _assert_once(await backfill(url, STREAM, limit=1000), distinct)
    entries = raw_entries(url)
    already = SeenEvents()
    already.first_time(entries[0])  # shown before: backfill leaves it out
    rest = await backfill(url, STREAM, limit=1000, seen=already)
    assert len(rest) == distinct - 1 and entries[0].event_id not in {e.event_id for e in rest}

    # The older half shown, then a tail from there that knows what was shown: copies on
    # either side of the seam are collapsed.
    seam = len(entries) // 2
    seen = SeenEvents()
    shown = [e for e in entries[: seam + 1] if seen.first_time(e)]
    tail = RedisTail(url, STREAM, start_id=entries[seam].id or "0-0", seen=seen)
    with redis.Redis.from_url(url) as client:  # a last event, to know the tail got to the end
        end = TelemetryEvent.create("worker", "test.end", event_id="end").encode()
        client.xadd(STREAM, end)  # type: ignore[arg-type]
    try:
        async with asyncio.timeout(60):
            while not shown or shown[-1].event_id != "end":
                shown += await anext(tail)
    finally:
        await tail.aclose()
        with redis.Redis.from_url(url) as client:  # the other tests count the events
            client.xdel(STREAM, *[e.id for e in raw_entries(url) if e.event_id == "end"])
    _assert_once(shown[:-1], distinct)


def test_files_and_merge_show_each_event_once(resent: Any, tmp_path: Path) -> None:
    url, distinct = resent
    entries = raw_entries(url)
    # A collector that redelivered writes a line twice with the same stream ID; files also
    # hold the resend's copies under their own stream IDs.
    log = tmp_path / "events.log"
    write_events(entries + entries[:10], log, "jsonl")
    stats = FileStats()
    from_files = list(read_files([log], None, stats))
    _assert_once(from_files, distinct)
    assert stats.duplicates == len(entries) + 10 - distinct
    with redis.Redis.from_url(url) as client:
        _assert_once(merge(from_files, read_range(client, STREAM)), distinct)


def test_the_cli_shows_each_event_once(resent: Any, tmp_path: Path) -> None:
    url, distinct = resent

    def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [BIN / "emp-tui", *map(str, args)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "NO_COLOR": "1", "TZ": "UTC"},
        )
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
        return done

    def records(done: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in done.stdout.splitlines()]

    _assert_once(records(cli("--redis-url", url, "search", "--json")), distinct)
    _assert_once(records(cli("--redis-url", url, "search", f"job:{JOB}", "--json")), distinct)
    out = tmp_path / "export.jsonl"
    cli("--redis-url", url, "export", f"job:{JOB}", "-o", out)
    _assert_once([orjson.loads(line) for line in out.read_bytes().splitlines()], distinct)
    both = records(cli("--redis-url", url, "--file", out, "search", "--json"))
    _assert_once(both, distinct)
    (perf,) = records(cli("--redis-url", url, "perf", "--json"))
    assert perf["eventType"] == "job.progress_updated" and perf["count"] == distinct
    timeline = cli("--redis-url", url, "timeline", JOB).stdout
    assert timeline.count("job.progress_updated") == distinct


async def test_the_collector_delivers_each_event_once(resent: Any, tmp_path: Path) -> None:
    """The collector writes one line per event and acks the copies unsent (counted)."""
    from collector_helpers import pending_count, read_lines, running, settings_for, until

    url, distinct = resent
    settings = settings_for(url, tmp_path, EMP_COLLECTOR_CONSUMER="dedupe")
    copies = len(raw_entries(url)) - distinct
    async with running(settings) as collector:
        health = collector.health
        await until(lambda: health.read + health.duplicates >= distinct + copies)
        await until(
            lambda: all(
                lane.acks.waiting == 0 and not lane.acks.inflight for lane in collector.lanes
            )
        )
    _assert_once(read_lines(settings.log_path), distinct)
    assert collector.health.duplicates == copies
    with redis.Redis.from_url(url) as client:
        assert pending_count(client) == 0
