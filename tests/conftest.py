from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

sys.path.insert(0, str(Path(__file__).parent))

from rediscluster import ClusterUnavailable, RedisClusterProcess
from redisproc import RedisProcess


@pytest.fixture(scope="session")
def redis_session() -> Iterator[RedisProcess]:
    """One redis-server for the whole session; tests that share it get a flushed database."""
    with RedisProcess() as server:
        yield server


@pytest.fixture
def redis_url(redis_session: RedisProcess) -> Iterator[str]:
    """URL of a clean database on the shared server."""
    redis_session.start()  # a previous test may have stopped it
    with redis_session.client() as client:
        client.flushall()
    yield redis_session.url


@pytest.fixture
def rclient(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def redis_proc() -> Iterator[RedisProcess]:
    """A redis-server of this test's own, to kill and restart at will."""
    with RedisProcess() as server:
        yield server


@pytest.fixture(autouse=True)
def _no_telemetry_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see none of the machine's telemetry or Redis settings."""
    for name in (
        "REDIS_URL",
        "REDIS_HOST",
        "REDIS_PORT",
        "REDIS_PASSWORD",
        "REDIS_DB",
        "EMP_EVENTS_STREAM",
        "EMP_TELEMETRY_ENABLED",
        "EMP_TELEMETRY_LEVEL",
        "EMP_TELEMETRY_SAMPLE",
        "EMP_TELEMETRY_SPILL_DIR",
        "EMP_TELEMETRY_SPILL_MAX_BYTES",
        "EMP_TELEMETRY_SPILL_MEMORY_SHARE",
        "EMP_TELEMETRY_SCRIPT",
        "EMP_EVENTS_SHARDS",
        "EMP_EVENTS_MAXLEN",
        "EMP_EVENTS_RETENTION",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterProcess]:
    """One real Redis Cluster for the whole session (three masters, a replica each, on free
    loopback ports); skipped where redis-cli is missing."""
    try:
        cluster = RedisClusterProcess()
    except ClusterUnavailable as exc:
        pytest.skip(f"no Redis Cluster here: {exc}")
    with cluster:
        yield cluster


@pytest.fixture
def cluster_url(redis_cluster: RedisClusterProcess) -> str:
    """The cluster's URL (``redis+cluster://...``), healthy and flushed: a test before may
    have killed a master and started it again."""
    for node in redis_cluster.nodes:
        redis_cluster.start(node)
    redis_cluster.wait_healthy()
    redis_cluster.flushall()
    return redis_cluster.url
