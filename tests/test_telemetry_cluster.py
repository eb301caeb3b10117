"""The emitter on a real Redis Cluster (three masters with a replica each, started once per
test session by the ``redis_cluster`` fixture) and sharded streams: the URL form, the shard
keys and how events are spread, a master killed while events flow."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot
from rediscluster import RedisClusterProcess

from emp_tui.events import TelemetryEvent, decode, dedupe
from emp_tui.telemetry import EventClient
from emp_tui.topology import (
    client_for_url,
    is_cluster_url,
    shard_key,
    shard_keys,
    shards_from_env,
    trim_policy_key,
)

STREAM = "emp:events"


def wait_for(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


def read_shards(client: RedisCluster, shards: int) -> dict[str, list[TelemetryEvent]]:
    return {
        key: [decode(i, f) for i, f in client.xrange(key)] for key in shard_keys(STREAM, shards)
    }


# -- the core functions, without a server --------------------------------------------------------


def test_shard_keys_and_the_shard_of_an_event() -> None:
    assert shard_keys(STREAM, 1) == [STREAM]
    assert shard_keys(STREAM, 4) == [f"emp:events:{{{n}}}" for n in range(4)]
    # Stable across processes and languages: CRC-32 of the UTF-8 job ID (Node's
    # zlib.crc32("job_123") is 1285419075), else of the service.
    assert shard_key(STREAM, 4, "job_123", "api-server") == "emp:events:{3}"
    assert shard_key(STREAM, 4, None, "api-server") == "emp:events:{0}"
    assert shard_key(STREAM, 4, "", "worker") == "emp:events:{2}"
    assert shard_key(STREAM, 1, "job_123", "api-server") == STREAM
    assert shard_key(STREAM, 4, "job_\udcff", "x") in shard_keys(STREAM, 4)  # never raises
    for shards in (4, 16):
        slots = {key_slot(k.encode()) for k in shard_keys(STREAM, shards)}
        assert len(slots) == shards  # each key a hash slot of its own
    assert trim_policy_key(STREAM) == "emp:telemetry:trim:emp:events"


def test_shards_from_the_environment() -> None:
    assert shards_from_env({}) == 1
    assert shards_from_env({"EMP_EVENTS_SHARDS": " 4 "}) == 4
    for bad in ("0", "-2", "four", "1.5", "5000"):
        with pytest.raises(ValueError, match="EMP_EVENTS_SHARDS"):
            shards_from_env({"EMP_EVENTS_SHARDS": bad})


def test_cluster_urls() -> None:
    assert is_cluster_url("redis+cluster://h:7000") and is_cluster_url("REDISS+CLUSTER://h:1")
    assert not is_cluster_url("redis://h:6379/0") and not is_cluster_url("unix:///tmp/r.sock")
    plain = client_for_url("redis://127.0.0.1:1/0")
    assert isinstance(plain, redis.Redis)
    plain.close()
    with pytest.raises(ValueError, match="bad cluster node"):
        client_for_url("redis+cluster://h:notaport")


# -- on the cluster --------------------------------------------------------------------------


def test_a_cluster_url_with_a_dead_first_node_finds_the_others(
    cluster_url: str, redis_cluster: RedisClusterProcess
) -> None:
    live = ",".join(n.address for n in redis_cluster.nodes)
    client = client_for_url(f"redis+cluster://127.0.0.1:1,{live}")
    try:
        assert isinstance(client, RedisCluster)
        client.set("k", "v")
        assert client.get("k") == b"v"
    finally:
        client.close()


def test_events_of_many_jobs_over_4_shards_all_arrive_each_job_on_one_shard_in_order(
    cluster_url: str,
    redis_cluster: RedisClusterProcess,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    jobs, steps = 300, 10
    client = EventClient(
        "worker", redis_url=cluster_url, shards=4, maxlen=100_000,
        spill_dir=tmp_path / "spill", memory_check_interval=0.05,  # INFO on every master
    )  # fmt: skip
    other = EventClient("monitor", redis_url=cluster_url, shards=4, maxlen=100_000)
    try:
        for step in range(steps):
            for job in range(jobs):
                client.job_event(f"job_{job}", "job.progress_updated", {"step": step})
            client.event("worker.heartbeat", worker_id="w-1")
            other.event("health_check.performed", {"step": step})
        assert client.flush(30) and other.flush(30)
        time.sleep(0.2)  # a few memory checks on the cluster's masters
        assert client.stats.circuit == "closed"
    finally:
        client.close(5)
        other.close(5)
    assert "flusher error" not in caplog.text
    assert client.stats.sent == jobs * steps + steps and other.stats.sent == steps

    cluster = redis_cluster.client()
    try:
        by_shard = read_shards(cluster, 4)
        policy = cluster.hgetall(trim_policy_key(STREAM))
    finally:
        cluster.close()
    assert all(by_shard.values())  # every shard got some
    masters = {redis_cluster.master_of(key).port for key in by_shard}
    assert len(masters) >= 2  # the shards are spread over the cluster
    where: dict[str, set[str]] = defaultdict(set)
    steps_of: dict[str, list[int]] = defaultdict(list)
    for key, events in by_shard.items():
        for event in events:
            assert event.malformed is None
            owner = event.job_id or event.service
            where[owner].add(key)
            steps_of[owner].append(event.data.get("step", -1))
            assert key == shard_key(STREAM, 4, event.job_id, event.service)
    assert len([o for o in where if o.startswith("job_")]) == jobs
    assert all(len(keys) == 1 for keys in where.values())  # one owner, one shard
    for job in range(jobs):
        assert steps_of[f"job_{job}"] == list(range(steps))  # in order
    assert steps_of["monitor"] == list(range(steps))
    assert policy[b"shards"] == b"4" and policy[b"maxlen"] == b"100000"


def test_the_emitter_survives_a_master_killed_and_its_replica_taking_over(
    cluster_url: str, redis_cluster: RedisClusterProcess
) -> None:
    """Events flow at 500/s over 4 shards; the master holding one shard is killed (SIGKILL);
    its replica takes over; every event arrives (each once for a reader) and in order per
    job. The killed node comes back as a replica (the next test's fixture waits for it)."""
    victim_key = shard_keys(STREAM, 4)[0]
    victim = redis_cluster.master_of(victim_key)
    client = EventClient(
        "api-server", redis_url=cluster_url, shards=4, maxlen=100_000, max_backoff=0.3,
        socket_timeout=1.0,
    )  # fmt: skip
    sent = 0

    def emit_for(seconds: float) -> None:
        nonlocal sent
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            for _ in range(10):
                client.job_event(f"job_{sent % 40}", "job.progress_updated", {"i": sent})
                sent += 1
            time.sleep(0.02)

    try:
        emit_for(1.0)
        assert client.flush(10)
        redis_cluster.kill(victim)
        emit_for(0.5)
        promoted = redis_cluster.wait_for_master_of(victim_key, other_than=victim)
        emit_for(1.0)
        assert client.flush(60), client.stats
        stats = client.stats
    finally:
        client.close(5)
    assert promoted is not victim
    assert (stats.emitted, stats.sent, stats.dropped, stats.failed) == (sent, sent, 0, 0)

    cluster = redis_cluster.client()
    try:
        by_shard = read_shards(cluster, 4)
    finally:
        cluster.close()
    progress = [e for events in by_shard.values() for e in events if e.job_id]
    shown = list(dedupe(progress))
    assert sorted(e.data["i"] for e in shown) == list(range(sent))  # none lost
    for events in by_shard.values():
        per_job: dict[str, list[int]] = defaultdict(list)
        for event in dedupe(e for e in events if e.job_id):
            per_job[event.job_id or ""].append(event.data["i"])
        assert all(ids == sorted(ids) for ids in per_job.values())
    states = [e.data["state"] for events in by_shard.values() for e in events
              if e.event_type == "telemetry.circuit_changed"]  # fmt: skip
    assert states.count("open") == states.count("closed") >= 1  # the failover was noticed
    redis_cluster.start(victim)


async def test_async_clients_for_a_cluster_url_and_a_plain_one(
    cluster_url: str, redis_url: str
) -> None:
    """What the collector and the app build on: one function, either kind of server."""
    import redis.asyncio
    from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

    from emp_tui.topology import async_client_for_url

    cluster = async_client_for_url(cluster_url)
    plain = async_client_for_url(redis_url)
    try:
        assert isinstance(cluster, AsyncRedisCluster)
        assert isinstance(plain, redis.asyncio.Redis)
        for client in (cluster, plain):
            for key in shard_keys(STREAM, 4):
                await client.xadd(key, {"k": "v"})
            assert [await client.xlen(key) for key in shard_keys(STREAM, 4)] == [1, 1, 1, 1]
    finally:
        await cluster.aclose()
        await plain.aclose()
