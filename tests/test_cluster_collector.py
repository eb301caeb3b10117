"""The collector on a real Redis Cluster (three masters with a replica each, started once per
test session by the ``redis_cluster`` fixture) and a stream of four shards: every event the
emitter sent reaches the files, once, with one consumer group per shard; and a master that
is killed (its replica takes over) and started again (it comes back as a replica) costs the
collector no event."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from collector_helpers import read_lines, running, settings_for, until
from rediscluster import RedisClusterProcess

from collector.health import format_table
from collector.pipeline import settle_shards
from emp_tui.telemetry import EventClient
from emp_tui.topology import client_for_url, shard_key, shard_keys

STREAM = "emp:events"
SHARDS = 4
GROUP = "emp-collector"


def emit(client: EventClient, jobs: range, steps: int, tag: str) -> None:
    """Events of ``jobs`` (``steps`` each) and one without a job per step."""
    for step in range(steps):
        for job in jobs:
            client.job_event(f"job_{job}", "job.progress_updated", {"step": step, "tag": tag})
        client.event("health_check.performed", {"step": step, "tag": tag})


def delivered(log: Path) -> list[dict[str, Any]]:
    """The lines of the test's events (not the emitter's own notes: telemetry.*)."""
    lines = read_lines(log) if log.exists() else []
    return [line for line in lines if not line["eventType"].startswith("telemetry.")]


def test_emitter_to_collector_to_files_over_four_shards_loses_nothing(
    cluster_url: str, tmp_path: Path
) -> None:
    jobs, steps = 60, 25
    expected = jobs * steps + steps
    log = tmp_path / "logs" / "events.log"
    settings = settings_for(cluster_url, tmp_path, EMP_EVENTS_SHARDS=str(SHARDS))

    async def scenario() -> None:
        async with running(settings) as collector:
            assert [lane.key for lane in collector.lanes] == shard_keys(STREAM, SHARDS)
            client = EventClient("worker", redis_url=cluster_url, shards=SHARDS, maxlen=100_000)
            try:
                emit(client, range(jobs), steps, "one")
                assert await asyncio.to_thread(client.flush, 30.0)
                assert client.stats.dropped == 0
            finally:
                await asyncio.to_thread(client.close)
            await until(lambda: len(delivered(log)) >= expected, 60, "every event in the file")
            # Health per shard: each lane read its shard, and nothing is left behind.
            await until(lambda: all(lane.health.lag == 0 for lane in collector.lanes), 20, "lag 0")
            assert all(lane.health.read > 0 for lane in collector.lanes)
            assert sum(lane.health.read for lane in collector.lanes) == expected
            fields = collector.health.fields()
            assert fields["shards"] == str(SHARDS)
            assert [fields[f"shard.{n}.key"] for n in range(SHARDS)] == shard_keys(STREAM, SHARDS)
            table = format_table([fields])  # emp-collector --health
            for n, key in enumerate(shard_keys(STREAM, SHARDS)):
                assert f"shard {key}: state=running read={fields[f'shard.{n}.read']} " in table

    asyncio.run(scenario())
    lines = delivered(log)
    ids = [line["eventId"] for line in lines]
    assert len(ids) == expected and len(set(ids)) == expected  # 0 lost, none twice
    # One job's events are in order, on its shard.
    job = [line for line in lines if line.get("jobId") == "job_7"]
    assert [line["data"]["step"] for line in job] == list(range(steps))
    # Every shard's group has acked everything.
    admin = client_for_url(cluster_url)
    try:
        for key in shard_keys(STREAM, SHARDS):
            assert admin.xpending(key, GROUP)["pending"] == 0
            assert admin.xlen(key) > 0
    finally:
        admin.close()


def test_collector_survives_a_master_killed_and_started_again(
    cluster_url: str, redis_cluster: RedisClusterProcess, tmp_path: Path
) -> None:
    """Events flow before the master of shard 0 dies, while its replica takes over, and after
    it is started again: every event the emitter sent (it spills while a shard has no master)
    is in the file, and every shard's group has acked it."""
    log = tmp_path / "logs" / "events.log"
    settings = settings_for(cluster_url, tmp_path, EMP_EVENTS_SHARDS=str(SHARDS))
    key = shard_keys(STREAM, SHARDS)[0]
    on_key = [n for n in range(400) if shard_key(STREAM, SHARDS, f"job_{n}", "x") == key][:5]

    async def scenario() -> int:
        async with running(settings) as collector:
            client = EventClient(
                "worker", redis_url=cluster_url, shards=SHARDS, maxlen=100_000,
                max_backoff=0.3, socket_timeout=1.0, spill_dir=tmp_path / "spill",
            )  # fmt: skip
            sent = 0
            try:
                for round_, tag in enumerate(("before", "failover", "after", "restarted")):
                    jobs = range(round_ * 20, round_ * 20 + 20)
                    emit(client, jobs, 5, tag)
                    for job in on_key:  # shard 0 gets events in every round
                        client.job_event(f"job_{job}", "job.progress_updated", {"tag": tag})
                    sent += 20 * 5 + 5 + len(on_key)
                    if tag == "before":
                        assert await asyncio.to_thread(client.flush, 30.0)
                        await until(lambda n=sent: len(delivered(log)) >= n, 60, "the first round")
                        victim = redis_cluster.master_of(key)
                        redis_cluster.kill(victim)
                    elif tag == "failover":
                        await asyncio.to_thread(
                            redis_cluster.wait_for_master_of, key, other_than=victim
                        )
                    elif tag == "after":
                        await until(
                            lambda n=sent: len(delivered(log)) >= n, 90, "rounds after the failover"
                        )
                        redis_cluster.start(victim)
                        await asyncio.to_thread(redis_cluster.wait_healthy)
                assert await asyncio.to_thread(client.flush, 60.0)
                assert client.stats.dropped == 0
            finally:
                await asyncio.to_thread(client.close)
            await until(lambda: len({line["eventId"] for line in delivered(log)}) >= sent, 90)
            await until(lambda: collector.health.state == "running", 30, "running again")
            (lane,) = [lane for lane in collector.lanes if lane.key == key]
            # The lane is reading again, and it read shard 0's events of every round, those
            # after the failover from the promoted replica. It counts a reconnect only when
            # the cluster client's own retries did not ride through the failover, which
            # depends on how soon the replica is promoted, so the count is not asserted.
            assert lane.health.state == "running"
            assert lane.health.read >= 4 * len(on_key)
            return sent

    sent = asyncio.run(scenario())
    lines = delivered(log)
    tags = {line["data"]["tag"] for line in lines}
    assert tags == {"before", "failover", "after", "restarted"}
    unique = {line["eventId"] for line in lines}
    assert len(unique) == sent  # at least once: a lost ack may write an entry twice
    admin = redis_cluster.client()
    try:
        for shard in shard_keys(STREAM, SHARDS):
            assert admin.xpending(shard, GROUP)["pending"] == 0
    finally:
        admin.close()


def test_a_collector_not_told_the_shard_count_reads_the_emitters_record(
    cluster_url: str, tmp_path: Path, caplog: Any
) -> None:
    """Emitters with EMP_EVENTS_SHARDS=4 record it; a collector started without it reads the
    four shards, and one told another count says so, and reads the four too."""
    jobs, steps = 20, 5
    expected = jobs * steps + steps
    log = tmp_path / "logs" / "events.log"
    client = EventClient("worker", redis_url=cluster_url, shards=SHARDS, maxlen=100_000)
    try:
        emit(client, range(jobs), steps, "recorded")
        assert client.flush(30.0)
    finally:
        client.close()

    other = tmp_path / "other"
    told = settle_shards(
        settings_for(cluster_url, other, EMP_EVENTS_SHARDS="2", EMP_COLLECTOR_GROUP="other")
    )
    assert told.shards == 2
    assert "EMP_EVENTS_SHARDS=2, but the emitters of emp:events record 4 shards" in caplog.text

    async def told_two() -> None:  # while it runs, it reads the other two shards too
        async with running(told) as collector:
            await until(lambda: len(collector.lanes) == 4, 20, "the two shards added")
            assert [lane.key for lane in collector.lanes] == shard_keys(STREAM, SHARDS)
            await until(lambda: len(delivered(other / "logs" / "events.log")) >= expected, 60)
        said = "now record 4 shards: reading emp:events:{2}, emp:events:{3} too (4 lanes)"
        assert said in caplog.text and "EMP_EVENTS_SHARDS=2 is out of date" in caplog.text

    asyncio.run(told_two())
    assert len(delivered(other / "logs" / "events.log")) == expected

    settings = settle_shards(settings_for(cluster_url, tmp_path))
    assert (settings.shards, settings.shards_given) == (SHARDS, False)

    async def scenario() -> None:
        async with running(settings) as collector:
            assert [lane.key for lane in collector.lanes] == shard_keys(STREAM, SHARDS)
            await until(lambda: len(delivered(log)) >= expected, 60, "every event in the file")

    asyncio.run(scenario())
    assert len(delivered(log)) == expected
