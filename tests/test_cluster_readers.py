"""Readers over a sharded stream, on a real Redis Cluster (three masters, started once per
test session by the ``redis_cluster`` fixture) and on one server: the CLI's commands, the
history reads, the live tail (one blocking read per shard, merged), and a tail that carries
on when the master of its shard is killed and its replica takes over."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
import redis
from rediscluster import RedisClusterProcess
from samples import incident_sample

from emp_tui.events import TelemetryEvent
from emp_tui.history import read_job, read_stream_back, stream_span
from emp_tui.query import parse_query
from emp_tui.sources import RedisTail, backfill, connect, read_query, read_range
from emp_tui.store import EventStore
from emp_tui.topology import client_for_url, shard_key, shard_keys

STREAM = "emp:events"
SHARDS = 4
NOW = time.time_ns() // 1_000_000
BASE = NOW - 30 * 60_000
EVENTS = incident_sample(BASE)


def spread(
    client: object, events: list[TelemetryEvent], *, job_everywhere: str | None = None
) -> None:
    """Write ``events`` to their shards (by :func:`shard_key`, as the emitter does); the
    events of ``job_everywhere`` round robin over every shard instead (as emitters with
    another shard count, or in another language, could have put them)."""
    keys = shard_keys(STREAM, SHARDS)
    turn = 0
    for event in events:
        if event.job_id == job_everywhere:
            key = keys[turn % SHARDS]
            turn += 1
        else:
            key = shard_key(STREAM, SHARDS, event.job_id, event.service)
        client.xadd(key, event.encode(), id=event.id)  # type: ignore[attr-defined]


def run(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "TZ": "UTC", "COLUMNS": "200"}
    env["EMP_EVENTS_SHARDS"] = str(SHARDS)
    return subprocess.run(
        [sys.executable, "-m", "emp_tui.cli", "--redis-url", url, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def records(done: subprocess.CompletedProcess[str]) -> list[dict]:  # type: ignore[type-arg]
    assert done.returncode == 0, done.stderr
    return [orjson.loads(line) for line in done.stdout.splitlines()]


@pytest.fixture
def loaded_cluster(cluster_url: str) -> str:
    client = client_for_url(cluster_url)
    try:
        # Shards' IDs are their own: one ID on two shards is two events.
        twin = EVENTS[-1]
        client.xadd(shard_keys(STREAM, SHARDS)[0], twin.encode(), id="5-0")
        other = TelemetryEvent.create("monitor", "health_check.performed", event_id="twin-1")
        client.xadd(shard_keys(STREAM, SHARDS)[1], other.encode(), id="5-0")
        spread(client, EVENTS, job_everywhere="job_gap")
    finally:
        client.close()
    return cluster_url


def test_the_shards_are_on_different_masters(
    loaded_cluster: str, redis_cluster: RedisClusterProcess
) -> None:
    """Otherwise the cluster tests would not test reads across nodes."""
    masters = {redis_cluster.master_of(key).port for key in shard_keys(STREAM, SHARDS)}
    assert len(masters) >= 2


def test_cli_search_reads_every_shard_in_stream_order(loaded_cluster: str) -> None:
    got = records(run(loaded_cluster, "search", "--json"))
    assert len(got) == len(EVENTS) + 2
    ids = [r["id"] for r in got]
    keys = [tuple(int(p) for p in i.split("-")) for i in ids]
    assert keys == sorted(keys)  # merged by stream ID across the shards
    assert ids.count("5-0") == 2  # the twins: two shards' entries, both shown
    limited = records(run(loaded_cluster, "search", "service:worker", "--limit", "3", "--json"))
    newest = [e for e in EVENTS if e.service == "worker"][-3:]
    assert [r["id"] for r in limited] == [e.id for e in newest]


def test_cli_timeline_of_a_job_spread_over_every_shard(loaded_cluster: str) -> None:
    got = records(run(loaded_cluster, "timeline", "job_gap", "--json"))
    summary = got[0]
    assert summary["kind"] == "summary" and summary["status"] == "completed"
    steps = [r["event"]["eventType"] for r in got if r["kind"] == "step"]
    assert steps[:3] == ["job.created", "job.queued", "job.claimed"]
    assert len(steps) == sum(1 for e in EVENTS if e.job_id == "job_gap")
    (gap,) = [r for r in got if r["kind"] == "gap"]
    assert gap["durationMs"] == 9000


def test_cli_export_perf_correlate_problems_and_lint_over_shards(
    loaded_cluster: str, tmp_path: Path
) -> None:
    out = tmp_path / "all.jsonl"
    done = run(loaded_cluster, "export", "--output", str(out))
    assert done.returncode == 0, done.stderr
    assert len(out.read_bytes().splitlines()) == len(EVENTS) + 2
    perf = run(loaded_cluster, "perf", "--json")
    assert perf.returncode == 0, perf.stderr
    correlate = run(loaded_cluster, "correlate", "job_bad", "--json")
    assert correlate.returncode == 0, correlate.stderr
    assert "job_bad" in correlate.stdout
    problems = run(loaded_cluster, "problems", "--json")
    assert problems.returncode in (0, 1), problems.stderr
    assert "job_stuck" in problems.stdout
    lint = run(loaded_cluster, "lint", "--json")
    assert lint.returncode in (0, 1), lint.stderr
    assert "Traceback" not in lint.stderr


def test_history_and_sources_over_shards(loaded_cluster: str) -> None:
    client = connect(loaded_cluster)
    try:
        span = stream_span(client, STREAM, SHARDS)
        assert span.count == len(EVENTS) + 2
        assert span.first_id == "5-0" and span.last_id == EVENTS[-1].id
        pages = list(
            read_stream_back(client, STREAM, BASE, None, first_page=7, page=11, shards=SHARDS)
        )
        got = [e for page in pages for e in page]
        assert [e.id for e in got] == [e.id for e in reversed(EVENTS)]
        forward = list(read_range(client, STREAM, shards=SHARDS, page=5))
        assert len(forward) == len(EVENTS) + 2
        found = read_query(client, STREAM, parse_query("job:job_gap"), shards=SHARDS)
        assert [e.id for e in found] == [e.id for e in EVENTS if e.job_id == "job_gap"]
        job = read_job("job_gap", client=client, stream=STREAM, shards=SHARDS)
        assert [e.id for e in job.events] == [e.id for e in EVENTS if e.job_id == "job_gap"]
    finally:
        client.close()
    newest = asyncio.run(backfill(loaded_cluster, STREAM, limit=5, shards=SHARDS))
    assert [e.id for e in newest] == [e.id for e in EVENTS[-5:]]
    # The store holds both twins (the same ID, two shards) and a copy of either once.
    store = EventStore()
    every = list(read_range(connect(loaded_cluster), STREAM, shards=SHARDS))
    store.add_many(every)
    store.add_many(every)
    assert len(store) == len(EVENTS) + 2


def test_single_key_is_read_as_before_with_one_shard(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    for event in EVENTS[:10]:
        client.xadd(STREAM, event.encode(), id=event.id)
    client.close()
    got = records(
        subprocess.run(
            [sys.executable, "-m", "emp_tui.cli", "--redis-url", redis_url, "search", "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "EMP_EVENTS_SHARDS": "1"},
        )
    )
    assert [r["id"] for r in got] == [e.id for e in EVENTS[:10]]


def test_a_bad_shard_count_is_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "emp_tui.cli", "search"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "EMP_EVENTS_SHARDS": "four"},
    )
    assert done.returncode == 2
    assert (
        done.stderr.startswith("emp-tui: EMP_EVENTS_SHARDS='four'")
        and "Traceback" not in done.stderr
    )


# -- the live tail -------------------------------------------------------------------------


async def collect(tail: RedisTail, count: int, timeout: float = 60.0) -> list[TelemetryEvent]:
    got: list[TelemetryEvent] = []

    async def fill() -> None:
        async for batch in tail:
            got.extend(batch)
            if len(got) >= count:
                return

    await asyncio.wait_for(fill(), timeout)
    return got


def test_live_tail_follows_every_shard(cluster_url: str) -> None:
    async def scenario() -> tuple[list[TelemetryEvent], list[str]]:
        states: list[str] = []
        tail = RedisTail(
            cluster_url, STREAM, shards=SHARDS, block_ms=200,
            on_state=lambda state, error: states.append(state),
        )  # fmt: skip
        first = await tail.__anext__()  # connected: every shard resolved its "$"
        assert first == [] and tail.state == "connected"
        client = client_for_url(cluster_url)
        sent = [
            TelemetryEvent.create("worker", "job.progress_updated", job_id=f"job_{n}")
            for n in range(40)
        ]
        for event in sent:
            client.xadd(shard_key(STREAM, SHARDS, event.job_id, event.service), event.encode())
        client.close()
        try:
            got = await collect(tail, len(sent))
        finally:
            await tail.aclose()
        return got, states

    got, states = asyncio.run(scenario())
    # Forty events without an eventId, several of which share a stream ID (each shard's IDs
    # are its own): every one delivered once.
    assert sorted(e.job_id or "" for e in got) == sorted(f"job_{n}" for n in range(40))
    assert states[-1] == "disconnected"


def test_live_tail_survives_the_master_of_its_shard_killed(
    cluster_url: str, redis_cluster: RedisClusterProcess
) -> None:
    """The master that holds one shard dies; its replica takes over; the tail reconnects to
    it and carries on from the last ID it delivered: what was written after is delivered."""
    key = shard_keys(STREAM, SHARDS)[0]
    job = next(f"job_{n}" for n in range(100) if shard_key(STREAM, SHARDS, f"job_{n}", "x") == key)

    async def scenario() -> list[TelemetryEvent]:
        tail = RedisTail(
            cluster_url, STREAM, shards=SHARDS, block_ms=200, backoff_max=0.5, start_id="0-0"
        )
        client = client_for_url(cluster_url)
        try:
            client.xadd(key, TelemetryEvent.create("worker", "a.before", job_id=job).encode())
            got = await collect(tail, 1)
            victim = redis_cluster.master_of(key)
            redis_cluster.kill(victim)
            await asyncio.to_thread(redis_cluster.wait_for_master_of, key, other_than=victim)
            after = client_for_url(cluster_url)
            after.xadd(key, TelemetryEvent.create("worker", "a.after", job_id=job).encode())
            after.close()
            got += await collect(tail, 1)
            assert tail.reconnects >= 1
            return got
        finally:
            client.close()
            await tail.aclose()

    got = asyncio.run(scenario())
    assert [e.event_type for e in got] == ["a.before", "a.after"]
