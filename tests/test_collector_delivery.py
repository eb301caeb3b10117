"""The collector against a real redis-server: every event reaches the file, nothing is lost
across crashes, Redis restarts, several collectors or malformed entries."""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import pytest
import redis
from collector_helpers import (
    STREAM,
    CollectorProcess,
    Receiver,
    base_env,
    emit,
    id_key,
    line_ids,
    pending_count,
    read_lines,
    running,
    settings_for,
    until,
    wait_until,
)
from redisproc import RedisProcess

from emp_tui.events import decode

pytestmark = pytest.mark.redis


async def test_delivers_exactly_the_ids_written_and_acks_them(
    redis_url: str, rclient: redis.Redis, tmp_path: Path
) -> None:
    before = emit(rclient, 700)  # written while no collector ran: group starts at 0
    settings = settings_for(redis_url, tmp_path)
    async with running(settings) as collector:
        during = emit(rclient, 1300, start=700)
        await until(lambda: collector.health.written == 2000, what="2000 lines")
        await until(lambda: pending_count(rclient) == 0, what="all acked")
    ids = line_ids(settings.log_path)
    assert ids == before + during  # one collector: stream order, no duplicates
    lines = read_lines(settings.log_path)
    assert lines[5]["jobId"] == "job_5" and lines[5]["data"]["n"] == 5
    assert "malformed" not in lines[5]


async def test_rotates_by_size_keeping_a_bounded_number_of_files(
    redis_url: str, rclient: redis.Redis, tmp_path: Path
) -> None:
    settings = settings_for(
        redis_url,
        tmp_path,
        EMP_COLLECTOR_LOG_MAX_BYTES="20k",
        EMP_COLLECTOR_LOG_BACKUPS="3",
        EMP_COLLECTOR_READ_COUNT="20",  # a batch is never split across files
    )
    written = emit(rclient, 150)
    async with running(settings) as collector:
        await until(lambda: collector.health.written == 150)
        more = emit(rclient, 150, start=150)
        await until(lambda: collector.health.written == 300)
    files = sorted(p.name for p in settings.log_path.parent.glob("events.log*"))
    assert files == ["events.log", "events.log.1", "events.log.2", "events.log.3"]
    for path in settings.log_path.parent.glob("events.log*"):
        assert path.stat().st_size <= 20 * 1024
    kept = line_ids(settings.log_path)
    # The oldest lines rotated out of the kept files; the newest are all there, in order.
    assert kept == (written + more)[-len(kept) :]
    assert len(kept) < 300


async def test_malformed_entries_are_written_flagged_acked_and_counted(
    redis_url: str, rclient: redis.Redis, tmp_path: Path
) -> None:
    good = emit(rclient, 3)
    bad = [
        rclient.xadd(STREAM, {"junk": "yes"}),
        rclient.xadd(STREAM, {"timestamp": "soon", "service": "x", "eventType": "a.b"}),
        rclient.xadd(STREAM, {"eventType": "job.created", "data": b"\xff\xfe not json"}),
    ]
    more = emit(rclient, 2, start=3)
    settings = settings_for(redis_url, tmp_path)
    async with running(settings) as collector:
        await until(lambda: collector.health.written == 8)
        await until(lambda: pending_count(rclient) == 0)
        assert collector.health.malformed == 3
    lines = read_lines(settings.log_path)
    assert [line["id"] for line in lines] == good + bad + more
    flagged = {line["id"]: line.get("malformed") for line in lines}
    for entry_id in bad:
        assert flagged[entry_id]
    assert "data is not JSON" in flagged[bad[2]]
    assert all(flagged[i] is None for i in good + more)


async def test_a_second_run_continues_where_the_group_left_off(
    redis_url: str, rclient: redis.Redis, tmp_path: Path
) -> None:
    settings = settings_for(redis_url, tmp_path)
    first = emit(rclient, 100)
    async with running(settings) as collector:
        await until(lambda: collector.health.written == 100)
    second = emit(rclient, 100, start=100)
    async with running(settings) as collector:
        await until(lambda: collector.health.written == 100)
    assert line_ids(settings.log_path) == first + second


async def test_start_at_dollar_skips_what_was_written_before(
    redis_url: str, rclient: redis.Redis, tmp_path: Path
) -> None:
    emit(rclient, 10)
    settings = settings_for(redis_url, tmp_path, EMP_COLLECTOR_START="$")
    async with running(settings) as collector:
        await until(
            lambda: collector.health.state == "running" and rclient.xinfo_groups(STREAM) != []
        )
        new = emit(rclient, 5, start=10)
        await until(lambda: collector.health.written == 5)
    assert line_ids(settings.log_path) == new


def test_kill_9_mid_stream_then_restart_loses_nothing(
    redis_url: str, rclient: redis.Redis, tmp_path: Path
) -> None:
    env = base_env(redis_url, tmp_path, EMP_COLLECTOR_READ_COUNT="50")
    log_path = Path(env["EMP_COLLECTOR_LOG_PATH"])
    proc = CollectorProcess(env, tmp_path / "collector.err").start()
    try:
        written = emit(rclient, 3000)
        wait_until(lambda: log_path.exists() and log_path.stat().st_size > 50_000, what="lines")
        proc.kill()  # SIGKILL: no flush, no ack
        written += emit(rclient, 1000, start=3000)
        proc = CollectorProcess(env, tmp_path / "collector.err").start()
        wait_until(lambda: set(line_ids(log_path)) >= set(written), what="every event")
        wait_until(lambda: pending_count(rclient) == 0, what="all acked")
        assert proc.proc is not None
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0, proc.output()
    finally:
        proc.stop_quietly()
    lines = read_lines(log_path)  # also checks that no line was cut in half
    ids = [line["id"] for line in lines]
    assert set(ids) == set(written)
    counts = Counter(ids)
    by_id: dict[str, dict[str, object]] = {}
    for line in lines:  # a duplicate is the same event, recognisable by its id
        assert by_id.setdefault(line["id"], line) == line
    assert sum(counts.values()) - len(counts) <= 3000  # at most what was unacked at the kill


def consumers(client: redis.Redis) -> int:
    try:
        return len(client.xinfo_consumers(STREAM, "emp-collector"))
    except redis.ResponseError:  # no stream or group yet
        return 0


def test_two_collectors_in_one_group_deliver_everything_together(
    redis_url: str, rclient: redis.Redis, tmp_path: Path
) -> None:
    procs = []
    logs = []
    try:
        for name in ("c1", "c2"):
            env = base_env(
                redis_url,
                tmp_path / name,
                EMP_COLLECTOR_CONSUMER=name,
                EMP_COLLECTOR_READ_COUNT="20",
            )
            logs.append(Path(env["EMP_COLLECTOR_LOG_PATH"]))
            procs.append(CollectorProcess(env, tmp_path / f"{name}.err").start())
        wait_until(lambda: consumers(rclient) == 2, what="both consumers in the group")
        written: list[str] = []
        for round_ in range(20):
            written += emit(rclient, 100, start=round_ * 100)
            time.sleep(0.01)

        def together() -> list[str]:
            return [i for log in logs if log.exists() for i in line_ids(log)]

        wait_until(lambda: len(together()) >= len(written), what="all lines")
        wait_until(lambda: pending_count(rclient) == 0, what="all acked")
        for proc in procs:
            proc.signal(signal.SIGTERM)
        for proc in procs:
            assert proc.wait() == 0, proc.output()
    finally:
        for proc in procs:
            proc.stop_quietly()
    each = [line_ids(log) for log in logs]
    assert sorted(each[0] + each[1]) == sorted(written)  # each event once, by one of them
    assert each[0] and each[1]  # the work was shared


def test_redis_killed_and_restarted_under_load(tmp_path: Path) -> None:
    # Redis with persistence, as a real deployment: the stream and the group survive.
    (tmp_path / "redis").mkdir()
    server = RedisProcess(
        tmp_path / "redis", extra_args=["--appendonly", "yes", "--appendfsync", "always"]
    ).start()
    client = server.client()
    env = base_env(server.url, tmp_path)
    log_path = Path(env["EMP_COLLECTOR_LOG_PATH"])
    proc = CollectorProcess(env, tmp_path / "collector.err").start()
    try:
        written = emit(client, 1000)
        wait_until(lambda: log_path.exists() and len(line_ids(log_path)) >= 200, what="some")
        server.stop(kill=True)
        time.sleep(0.5)  # the collector finds Redis gone
        server.start()
        client = server.client()
        written += emit(client, 1000, start=1000)
        wait_until(lambda: set(line_ids(log_path)) >= set(written), what="every event")
        wait_until(lambda: pending_count(client) == 0, what="all acked")
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0
    finally:
        proc.stop_quietly()
        server.close()
    assert set(line_ids(log_path)) == set(written)
    out = proc.output()
    assert "Redis unreachable" in out and "Redis is back" in out
    assert "Traceback" not in out


def test_entries_whose_read_reply_was_lost_are_read_again_after_a_reconnect(
    tmp_path: Path,
) -> None:
    """Redis can deliver a batch (it enters the group's pending list under our name) and die
    before the reply reaches the collector. Once Redis is back those entries must be read
    again, not left pending for good."""
    (tmp_path / "redis").mkdir()
    server = RedisProcess(
        tmp_path / "redis", extra_args=["--appendonly", "yes", "--appendfsync", "always"]
    ).start()
    client = server.client()
    env = base_env(server.url, tmp_path)
    log_path = Path(env["EMP_COLLECTOR_LOG_PATH"])
    proc = CollectorProcess(env, tmp_path / "collector.err").start()
    try:
        written = emit(client, 10)
        wait_until(lambda: log_path.exists() and len(line_ids(log_path)) == 10, what="first")
        # Add entries and deliver them to the collector's consumer in one transaction: the
        # collector's own blocked read never sees them, as if its reply had been lost.
        event = decode("0-0", {"timestamp": "1", "service": "w", "eventType": "a.b"})
        pipe = client.pipeline(transaction=True)
        for _ in range(20):
            pipe.xadd(STREAM, event.encode())  # type: ignore[arg-type]
        pipe.xreadgroup("emp-collector", "c1", {STREAM: ">"}, count=20)
        results = pipe.execute()
        lost = [_id.decode() for _id in results[:20]]
        assert pending_count(client) == 20
        server.stop(kill=True)
        server.start()
        client = server.client()
        wait_until(lambda: set(line_ids(log_path)) >= set(written + lost), what="lost replies")
        wait_until(lambda: pending_count(client) == 0, what="all acked")
    finally:
        proc.stop_quietly()
        server.close()
    assert sorted(Counter(line_ids(log_path)).values()) == [1] * 30  # each once


def test_sigterm_flushes_acks_and_exits_zero(
    redis_url: str, rclient: redis.Redis, tmp_path: Path
) -> None:
    env = base_env(redis_url, tmp_path)
    log_path = Path(env["EMP_COLLECTOR_LOG_PATH"])
    proc = CollectorProcess(env, tmp_path / "collector.err").start()
    try:
        written = emit(rclient, 500)
        wait_until(lambda: log_path.exists() and len(line_ids(log_path)) == 500, what="lines")
        wait_until(lambda: pending_count(rclient) == 0, what="acks")
        wait_until(lambda: rclient.exists("emp:collector:c1") == 1, what="health")
        proc.signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0  # within the 10 s a stop may take
    finally:
        proc.stop_quietly()
    assert line_ids(log_path) == written
    assert rclient.exists("emp:collector:c1") == 0  # a stopped collector is no longer live
    assert "stopped: read 500, written 500" in proc.output()


async def test_a_line_a_crash_cut_short_is_cut_off_and_its_batch_written_again(
    redis_url: str, rclient: redis.Redis, tmp_path: Path
) -> None:
    settings = settings_for(redis_url, tmp_path)
    rclient.xgroup_create(STREAM, "emp-collector", id="0", mkstream=True)
    written = emit(rclient, 5)
    # The state a crash mid-write leaves: the batch read (pending, unacked), half written.
    entries = rclient.xreadgroup("emp-collector", "c1", {STREAM: ">"}, count=5)[0][1]
    lines = b"".join(decode(i, f).to_json_line() for i, f in entries)
    settings.log_path.parent.mkdir(parents=True)
    cut = lines.index(b"\n", lines.index(b"\n") + 1) + 1 + 40  # two lines and a bit
    settings.log_path.write_bytes(lines[:cut])
    async with running(settings) as collector:
        await until(lambda: collector.health.written == 5)
        await until(lambda: pending_count(rclient) == 0)
    ids = line_ids(settings.log_path)  # would fail on a broken line
    assert ids == written[:2] + written  # duplicates carry the same id


async def test_entries_a_dead_consumer_left_pending_are_claimed_and_delivered(
    redis_url: str, rclient: redis.Redis, tmp_path: Path
) -> None:
    rclient.xgroup_create(STREAM, "emp-collector", id="0", mkstream=True)
    written = emit(rclient, 30)
    rclient.xreadgroup("emp-collector", "dead", {STREAM: ">"}, count=12)  # never acked
    settings = settings_for(redis_url, tmp_path, EMP_COLLECTOR_CLAIM_IDLE_MS="200")
    async with running(settings) as collector:
        await until(lambda: collector.health.written == 30, what="claimed ones too")
        await until(lambda: pending_count(rclient) == 0, what="acked")
    assert sorted(line_ids(settings.log_path)) == sorted(written)
    assert rclient.xpending(STREAM, "emp-collector")["consumers"] == []


def poison_entries(client: redis.Redis) -> list[str]:
    """Entries that made readers crash: each is written (flagged), none stops a batch."""
    deep = '{"d":' * 300 + '{"leaf":1}' + "}" * 300  # JSON 301 objects deep
    base = {"service": "worker", "eventType": "job.created", "traceId": "ab" * 16}
    cases: list[dict[str, bytes | str]] = [
        {**base, "timestamp": "²"},  # a Unicode digit: isdigit() but not int()
        {**base, "timestamp": "9" * 5000},  # past Python's digit limit for int()
        {**base, "timestamp": "1" * 23},  # an int, but not a 64-bit one
        {"event": '{"timestamp":1e23,"service":"api","eventType":"a.b"}'},  # whole event
        {**base, "timestamp": "1700000000000", "data": deep},
        {b"\xff\xfe": b"\x00\x01\xff\x1b[31m"},  # binary junk
        {"timestamp": "", "service": "", "eventType": ""},  # empty values
        {**base, "timestamp": "1700000000000", "data": '{"big":"' + "x" * 5_000_000 + '"}'},
        {**base, "timestamp": "1700000000000", "service": b"w\xc3\x28"},  # invalid UTF-8
        {**base, "timestamp": "1", "\x1b[2J\u202eevil": b"\xff"},  # named to steer a terminal
    ]
    return [_id.decode() for _id in (client.xadd(STREAM, case) for case in cases)]  # type: ignore[arg-type]


async def test_poison_entries_are_written_flagged_and_their_neighbours_delivered(
    redis_url: str, redis_session: RedisProcess, tmp_path: Path
) -> None:
    client = redis_session.client()
    before = emit(client, 5)
    poison = poison_entries(client)
    after = emit(client, 5, start=5)
    receiver = Receiver().start()
    settings = settings_for(
        redis_url, tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, EMP_COLLECTOR_READ_COUNT="7"
    )
    try:
        async with running(settings) as collector:
            total = len(before) + len(poison) + len(after)
            await until(lambda: collector.health.written == total, what="every entry written")
            await until(lambda: collector.health.exported == total, what="all exported")
            await until(lambda: pending_count(client) == 0, what="acked")
            assert collector.health.malformed == len(poison) - 1  # the 5 MB one is fine
            assert collector.health.dead_lettered == 0
    finally:
        receiver.stop()
        client.close()
    lines = read_lines(settings.log_path)
    assert [line["id"] for line in lines] == before + poison + after
    flagged = {line["id"]: line.get("malformed") for line in lines}
    assert all(flagged[i] for i in poison[:7] + poison[8:]), flagged
    assert not any(flagged[i] for i in before + after)
    by_id = {line["id"]: line for line in lines}
    assert len(by_id[poison[7]]["data"]["big"]) == 5_000_000  # kept whole
    assert receiver.errors == []  # every request valid OTLP
    assert sorted(receiver.accepted_ids(), key=id_key) == before + poison + after


def test_poison_entries_neither_crash_the_process_nor_reach_its_terminal_raw(
    redis_url: str, rclient: redis.Redis, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(redis_url)
    poison = poison_entries(client)
    client.close()
    env = base_env(redis_url, tmp_path)
    log_path = Path(env["EMP_COLLECTOR_LOG_PATH"])
    proc = CollectorProcess(env, tmp_path / "collector.err").start()
    try:
        wait_until(lambda: log_path.exists() and len(line_ids(log_path)) == len(poison))
        wait_until(lambda: pending_count(rclient) == 0, what="acked")
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0, proc.output()
    finally:
        proc.stop_quietly()
    raw = (tmp_path / "collector.err").read_bytes()
    assert b"Traceback" not in raw
    assert b"\x1b" not in raw and "\u202e".encode() not in raw  # shown escaped
    assert b"malformed entry" in raw
