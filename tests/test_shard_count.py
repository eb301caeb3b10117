"""Readers find how many shards the emitters use: the count the emitters record beside the
trim policy, else a SCAN for the shard keys when the stream itself does not exist; and they
say when EMP_EVENTS_SHARDS disagrees. On a real redis-server and on a real 3-master Redis
Cluster (both started by the tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from collector_helpers import CollectorProcess, base_env, read_lines, wait_until
from redisproc import RedisProcess

from emp_tui.telemetry import EventClient
from emp_tui.topology import (
    client_for_url,
    find_shards,
    recorded_shards,
    shard_keys,
    trim_policy_key,
)

STREAM = "emp:events"
JOBS = [f"job_{n}" for n in range(24)]


def emit(url: str, shards: int) -> None:
    """What a service told EMP_EVENTS_SHARDS=``shards`` writes: one event per job."""
    client = EventClient("worker", redis_url=url, stream=STREAM, shards=shards, enabled=True)
    try:
        for job in JOBS:
            client.event("job.created", job_id=job)
        assert client.flush(10)
    finally:
        client.close()


def cli(url: str, *args: str, shards: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "TZ": "UTC"}
    env.pop("EMP_EVENTS_SHARDS", None)
    if shards is not None:
        env["EMP_EVENTS_SHARDS"] = shards
    return subprocess.run(
        [sys.executable, "-m", "emp_tui.cli", "--redis-url", url, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def found_jobs(done: subprocess.CompletedProcess[str]) -> set[str]:
    assert done.returncode == 0, done.stderr
    return {orjson.loads(line)["jobId"] for line in done.stdout.splitlines()}


@pytest.fixture(params=["server", "cluster"])
def url(request: pytest.FixtureRequest) -> str:
    name = "redis_url" if request.param == "server" else "cluster_url"
    return str(request.getfixturevalue(name))


def test_the_emitter_records_its_count_and_readers_use_it(url: str) -> None:
    emit(url, 4)
    client = client_for_url(url)
    try:
        assert client.hget(trim_policy_key(STREAM), "shards") == b"4"
        assert not client.exists(STREAM)
        assert sum(client.xlen(key) for key in shard_keys(STREAM, 4)) == len(JOBS)
        assert find_shards(client, STREAM, None).count == 4
        assert find_shards(client, STREAM, None).source == "recorded"
        assert find_shards(client, STREAM, None).warning is None
    finally:
        client.close()
    done = cli(url, "search", "--json", "type:job.created")
    assert found_jobs(done) == set(JOBS)
    assert done.stderr == ""
    health = cli(url, "health", "--json")
    assert health.returncode == 0, health.stderr
    stream = next(
        record
        for record in map(orjson.loads, health.stdout.splitlines())
        if record.get("kind") == "stream"
    )
    assert stream["shards"] == 4
    assert stream["length"] == len(JOBS)


def test_a_configured_count_other_than_the_recorded_one_is_said(url: str) -> None:
    emit(url, 4)
    done = cli(url, "search", "--json", "type:job.created", shards="2")
    assert found_jobs(done) < set(JOBS)  # two shards of four: some jobs are missed...
    assert "EMP_EVENTS_SHARDS=2, but the emitters of emp:events record 4 shards" in done.stderr
    more = cli(url, "search", "--json", "type:job.created", shards="8")
    assert found_jobs(more) == set(JOBS)  # eight keys read, four of them hold it all
    assert "record 4 shards: reading 8, so 4 of them are empty or stale" in more.stderr
    agreed = cli(url, "search", "--json", "type:job.created", shards="4")
    assert found_jobs(agreed) == set(JOBS)
    assert agreed.stderr == ""


def test_without_a_record_the_shard_keys_are_found_and_said(url: str) -> None:
    emit(url, 4)
    client = client_for_url(url)
    try:
        client.delete(trim_policy_key(STREAM))  # emitters of another language, or long gone
        found = find_shards(client, STREAM, None)
        assert (found.count, found.source) == (4, "found")
    finally:
        client.close()
    done = cli(url, "search", "--json", "type:job.created")
    assert found_jobs(done) == set(JOBS)
    assert "emp:events does not exist but 4 of its shard keys do" in done.stderr
    assert "set EMP_EVENTS_SHARDS=4" in done.stderr
    told_one = cli(url, "search", "--json", "type:job.created", shards="1")
    assert "EMP_EVENTS_SHARDS=1 reads none of them" in told_one.stderr
    assert told_one.returncode != 0  # nothing found, and the reason said


def test_one_stream_needs_no_count_and_no_warning(url: str) -> None:
    emit(url, 1)
    client = client_for_url(url)
    try:
        client.xadd(f"{STREAM}:{{7}}", {"not": "a shard of ours"})  # a stray key: not looked at
        found = find_shards(client, STREAM, None)
        assert (found.count, found.source, found.warning) == (1, "recorded", None)
        client.delete(trim_policy_key(STREAM))
        found = find_shards(client, STREAM, None)
        assert (found.count, found.source, found.warning) == (1, "default", None)
    finally:
        client.close()
    done = cli(url, "search", "--json", "type:job.created")
    assert found_jobs(done) == set(JOBS)
    assert done.stderr == ""


def test_events_left_in_the_one_key_when_shards_came_are_said(url: str) -> None:
    emit(url, 1)  # before the emitters were told EMP_EVENTS_SHARDS=4
    emit(url, 4)
    done = cli(url, "search", "--json", "type:job.created")
    assert len(done.stdout.splitlines()) == len(JOBS)  # the four shards' events
    assert "emp:events itself holds events too" in done.stderr
    one = cli(url, "search", "--json", "type:job.created", shards="1")
    assert len(one.stdout.splitlines()) == len(JOBS)  # and the one key's, when asked
    assert "record 4 shards" in one.stderr


def test_a_collector_started_before_redis_waits_for_the_count(
    redis_proc: RedisProcess, tmp_path: Path
) -> None:
    """The usual start order of a stack: the collector before Redis and the services. It waits
    for Redis to say how many shards to read, then reads the count the emitters record."""
    redis_proc.stop()
    env = base_env(redis_proc.url, tmp_path)
    proc = CollectorProcess(env, tmp_path / "collector.err").start()
    try:
        wait_until(lambda: "waiting for Redis" in proc.output(), what="the waiting note")
        redis_proc.start()
        emit(redis_proc.url, 4)
        log_path = Path(env["EMP_COLLECTOR_LOG_PATH"])
        wait_until(
            lambda: (
                {line.get("jobId") for line in read_lines(log_path)} >= set(JOBS)
                if log_path.exists()
                else False
            ),
            what="every job's event in the file",
        )
        assert "reading 4 shards, as the emitters of emp:events record" in proc.output()
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0, proc.output()
    finally:
        proc.stop_quietly()


def test_a_collector_stopped_while_it_waits_for_redis_exits_cleanly(tmp_path: Path) -> None:
    env = base_env(f"unix://{tmp_path}/none.sock", tmp_path)
    proc = CollectorProcess(env, tmp_path / "collector.err").start()
    try:
        wait_until(lambda: "waiting for Redis" in proc.output(), what="the waiting note")
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0, proc.output()
        assert "Traceback" not in proc.output()
    finally:
        proc.stop_quietly()


def test_a_running_collector_reads_the_shards_the_emitters_move_to(
    redis_proc: RedisProcess, tmp_path: Path
) -> None:
    """Services reconfigured with EMP_EVENTS_SHARDS=4 while a collector reads the one key:
    it reads the four shard keys too, without a restart, and what the one key still held."""
    emit(redis_proc.url, 1)
    env = base_env(redis_proc.url, tmp_path)
    log_path = Path(env["EMP_COLLECTOR_LOG_PATH"])
    proc = CollectorProcess(env, tmp_path / "collector.err").start()

    def jobs_written() -> list[str]:
        lines = read_lines(log_path) if log_path.exists() else []
        return [line["jobId"] for line in lines if line["eventType"] == "job.created"]

    try:
        wait_until(lambda: sorted(jobs_written()) == sorted(JOBS), what="the one key's events")
        emit(redis_proc.url, 4)
        wait_until(lambda: len(jobs_written()) == 2 * len(JOBS), what="the four shards' events")
        said = "now record 4 shards: reading emp:events:{0}, emp:events:{1}, emp:events:{2}"
        assert said in proc.output()
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0, proc.output()
    finally:
        proc.stop_quietly()
    admin = client_for_url(redis_proc.url)
    try:
        for key in [STREAM, *shard_keys(STREAM, 4)]:
            assert admin.xpending(key, "emp-collector")["pending"] == 0
    finally:
        admin.close()
    assert sorted(jobs_written()) == sorted(JOBS * 2)  # each event once


@pytest.mark.parametrize(
    ("value", "count"),
    [
        (b"4", 4),
        ("16", 16),
        (None, None),
        (b"\xff\xfe", None),  # not UTF-8
        (b"0", None),
        (b"-3", None),
        (b"1e3", None),
        (b"\xd9\xa4", None),  # an Arabic-Indic 4: a digit, not a count
        (b"9" * 5000, None),  # past the limit int() puts on digits
        (str(10**6).encode(), None),  # past MAX_SHARDS
    ],
)
def test_a_recorded_count_is_read_only_when_it_is_one(value: object, count: int | None) -> None:
    """What an emitter (or anyone) left in the record: a count, or nothing to follow."""
    assert recorded_shards(value) == count
