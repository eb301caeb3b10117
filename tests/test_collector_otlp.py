"""The OTLP sink against a real HTTP receiver that parses every body with the official
opentelemetry-proto definitions: mapping, retries, Retry-After, spool and replay,
dead letters, partial success, shutdown flush."""

from __future__ import annotations

import asyncio
import email.utils
import os
import signal
import stat
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from collector_helpers import (
    STREAM,
    CollectorProcess,
    Receiver,
    base_env,
    emit,
    free_port,
    id_key,
    line_ids,
    pending_count,
    running,
    settings_for,
    until,
    validate_otlp,
    wait_until,
)

from collector.batch import Batch, Content, Decoder
from collector.batcher import Batcher
from collector.exporters.retry import retry_after
from collector.health import Health
from collector.http import HttpClient
from collector.otel import export_request, flatten, log_record
from collector.spool import Spool
from emp_tui.events import TelemetryEvent, decode

pytestmark = pytest.mark.redis


@pytest.fixture
def receiver() -> Receiver:
    server = Receiver().start()
    yield server  # type: ignore[misc]
    server.stop()


# -- the mapping (no I/O) ----------------------------------------------------------------------


def test_an_event_becomes_one_log_record_that_the_official_schema_accepts() -> None:
    event = TelemetryEvent.create(
        "worker",
        "connector.processing_failed",
        {
            "error": "boom",
            "model": {"name": "sdxl", "steps": 30},
            "ok": False,
            "ratio": 0.5,
            "tags": ["a", 1],
            "big": 2**63 + 5,
            "none": None,
        },
        job_id="job_1",
        worker_id="w-1",
        machine_id="m-1",
        user_id="u-1",
        span_id="00f067aa0ba902b7",
        timestamp=1732700000123,
    )
    event = decode("1732700000123-0", event.encode())
    request = export_request([event], {"deployment.environment": "dev"}, observed_ns=5)
    message, _ = validate_otlp(orjson.dumps(request))
    (rl,) = message.resource_logs
    assert {kv.key: kv.value.string_value for kv in rl.resource.attributes} == {
        "service.name": "worker",
        "deployment.environment": "dev",
    }
    (record,) = rl.scope_logs[0].log_records
    assert record.event_name == "connector.processing_failed"
    assert record.time_unix_nano == 1732700000123 * 1_000_000
    assert record.observed_time_unix_nano == 5
    assert (record.severity_number, record.severity_text) == (17, "ERROR")
    assert record.trace_id.hex() == event.trace_id
    assert record.span_id.hex() == "00f067aa0ba902b7"
    attrs = {kv.key: kv.value for kv in record.attributes}
    assert attrs["job.id"].string_value == "job_1"
    assert attrs["worker.id"].string_value == "w-1"
    assert attrs["machine.id"].string_value == "m-1"
    assert attrs["user.id"].string_value == "u-1"
    assert attrs["emp.stream.id"].string_value == "1732700000123-0"
    assert attrs["model.name"].string_value == "sdxl"
    assert attrs["model.steps"].int_value == 30
    assert attrs["ok"].bool_value is False
    assert attrs["ratio"].double_value == 0.5
    assert [v.string_value or v.int_value for v in attrs["tags"].array_value.values] == ["a", 1]
    assert attrs["big"].string_value == str(2**63 + 5)  # beyond int64: kept as text
    # OTLP/JSON: 64-bit integers as strings, enums as integers
    raw = log_record(event, 5)
    assert raw["timeUnixNano"] == "1732700000123000000"
    assert raw["severityNumber"] == 17
    assert {"key": "model.steps", "value": {"intValue": "30"}} in raw["attributes"]


def test_levels_map_to_severity_numbers_and_bad_ids_are_left_out() -> None:
    numbers = {}
    for level in ("debug", "info", "warn", "error"):
        record = log_record(TelemetryEvent.create("api", "x.y", level=level), 0)
        numbers[level] = (record["severityNumber"], record["severityText"])
    assert numbers == {
        "debug": (5, "DEBUG"),
        "info": (9, "INFO"),
        "warn": (13, "WARN"),
        "error": (17, "ERROR"),
    }
    broken = decode("1-0", {"service": "api", "eventType": "a.b", "traceId": "nothex"})
    record = log_record(broken, 0)
    assert "traceId" not in record and "spanId" not in record
    assert {"key": "emp.malformed", "value": {"stringValue": broken.malformed}} in record[
        "attributes"
    ]
    validate_otlp(orjson.dumps(export_request([broken])))


def test_flatten_uses_dotted_keys_and_keeps_lists() -> None:
    assert list(flatten({"a": {"b": {"c": 1}}, "d": [1, {"e": 2}], "f": {}})) == [
        ("a.b.c", 1),
        ("d", [1, {"e": 2}]),
        ("f", {}),
    ]


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after("3") == 3.0
    assert retry_after(" 0 ") == 0.0
    assert retry_after(None) is None and retry_after("soon") is None
    now = time.time()
    date = email.utils.formatdate(now + 120, usegmt=True)
    assert 115 <= (retry_after(date, now=now) or 0) <= 121
    assert retry_after(email.utils.formatdate(now - 60, usegmt=True), now=now) == 0.0


async def test_requests_grow_up_to_the_max_size_while_every_consumer_is_busy() -> None:
    free = True
    batcher = Batcher(100, 5.0, max_size=250, ready=lambda: free)
    released: list[Batch] = []
    events = [TelemetryEvent.create("api", "a.b") for _ in range(600)]

    def batch() -> Batch:
        ids = [str(i) for i in range(300)]
        return Batch(Content(ids, [], Decoder(Health("c", "g", "s", []))), released.append)

    first, second = batch(), batch()
    groups = batcher.add(first, events[:300])
    assert [len(g.events) for g in groups] == [100, 100, 100]  # consumers free: 100 each
    free = False
    groups = batcher.add(second, events[300:])
    assert [len(g.events) for g in groups] == [250]  # all busy: as big as allowed
    assert len(batcher) == 50
    third = batch()
    assert batcher.add(third, events[:60]) == []  # 110: over the size, but nobody is free
    free = True
    batcher.poke()  # a consumer is free: the group goes now, not after the interval
    last = await asyncio.wait_for(batcher.due(), 1.0)
    assert len(last.events) == 110 and last.batches == [second, third]
    # Each group held the batches it has events of: released once all are finished with.
    for group in [*groups, last]:
        for held in group.batches:
            held.release()
    for b in (first, second, third):
        b.release()  # the reader's own hold
    # The groups of `first` were not released here: it is still held, unlike the others.
    assert second in released and third in released and first not in released


# -- the sink against a receiver ---------------------------------------------------------------


async def test_events_arrive_as_valid_otlp_batches_with_auth_headers(
    redis_url: str, rclient: redis.Redis, tmp_path: Path, receiver: Receiver
) -> None:
    written = emit(rclient, 250)
    settings = settings_for(
        redis_url,
        tmp_path,
        DASH0_ENABLED="true",
        DASH0_OTEL_ENDPOINT=receiver.url,
        DASH0_API_KEY="secret-key",
        DASH0_DATASET="emp-dev",
        EMP_COLLECTOR_FILE="false",
    )
    assert settings.sinks == ["otlp"]
    async with running(settings) as collector:
        await until(lambda: collector.health.exported == 250, what="250 exported")
        await until(lambda: pending_count(rclient) == 0, what="acked")
    assert receiver.errors == []
    assert sorted(receiver.accepted_ids()) == sorted(written)
    sizes = [
        sum(len(sl.log_records) for rl in r.request.resource_logs for sl in rl.scope_logs)
        for r in receiver.accepted()
        if r.request
    ]
    assert max(sizes) == 100 and sum(sizes) == 250  # batches of 100, the rest on the timer
    first = receiver.accepted()[0]
    assert first.headers["authorization"] == "Bearer secret-key"
    assert first.headers["dash0-dataset"] == "emp-dev"
    assert first.headers["content-encoding"] == "gzip"
    assert first.headers["content-type"] == "application/json"
    services = {
        kv.value.string_value
        for r in receiver.accepted()
        if r.request
        for rl in r.request.resource_logs
        for kv in rl.resource.attributes
        if kv.key == "service.name"
    }
    assert services == {"api-server", "worker"}


async def test_503_with_retry_after_is_honoured_then_everything_arrives(
    redis_url: str, rclient: redis.Redis, tmp_path: Path, receiver: Receiver
) -> None:
    receiver.script = [(503, {"Retry-After": "1"}, b"busy"), (429, {"Retry-After": "1"}, b"")]
    written = emit(rclient, 40)
    settings = settings_for(
        redis_url, tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, EMP_COLLECTOR_FILE="false"
    )
    async with running(settings) as collector:
        await until(lambda: collector.health.exported == 40, what="exported")
        assert collector.health.retried == 2
        assert collector.health.spooled == 0
    attempts = receiver.received
    assert [a.status for a in attempts] == [503, 429, 200]
    assert attempts[1].at - attempts[0].at >= 1.0  # the waits asked for were honoured
    assert attempts[2].at - attempts[1].at >= 1.0
    assert sorted(receiver.accepted_ids()) == sorted(written)


async def test_backend_down_for_the_whole_run_spools_acks_then_replays_it_all(
    redis_url: str, rclient: redis.Redis, tmp_path: Path
) -> None:
    port = free_port()  # nothing listens there: connections are refused
    settings = settings_for(
        redis_url,
        tmp_path,
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
        EMP_COLLECTOR_FILE="false",
        EMP_COLLECTOR_RETRY_WINDOW="0.3",
        EMP_COLLECTOR_BATCH_SIZE="50",
    )
    first = emit(rclient, 300)
    async with running(settings) as collector:
        await until(lambda: collector.health.spooled == 300, what="spooled")
        await until(lambda: pending_count(rclient) == 0, what="acked while down")
    spooled = sorted(settings.spool_dir.iterdir())
    assert len(spooled) == 6 and collector.health.exported == 0

    # Trimming can no longer eat them; and the next run, with the backend back, replays.
    rclient.xtrim(STREAM, maxlen=0, approximate=False)
    second = emit(rclient, 100, start=300)
    receiver = Receiver(port=port).start()
    try:
        async with running(settings) as collector:
            await until(lambda: collector.health.exported == 400, what="replayed and new")
        assert receiver.errors == []
        # Several requests are in flight at once: each event once, in no promised order.
        assert sorted(receiver.accepted_ids(), key=id_key) == first + second
        assert list(settings.spool_dir.iterdir()) == []
    finally:
        receiver.stop()


async def test_backend_back_during_the_run_replays_the_spool(
    redis_url: str, rclient: redis.Redis, tmp_path: Path
) -> None:
    port = free_port()
    settings = settings_for(
        redis_url,
        tmp_path,
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
        EMP_COLLECTOR_FILE="false",
        EMP_COLLECTOR_RETRY_WINDOW="0.2",
    )
    first = emit(rclient, 150)
    receiver = Receiver(port=port)
    try:
        async with running(settings) as collector:
            await until(lambda: collector.health.spooled == 150, what="spooled")
            receiver.start()
            second = emit(rclient, 50, start=150)
            await until(lambda: collector.health.exported == 200, timeout=40, what="replayed")
        assert sorted(receiver.accepted_ids(), key=id_key) == first + second
        assert list(settings.spool_dir.iterdir()) == []
    finally:
        receiver.stop()


async def test_a_400_puts_the_batch_in_the_dead_letter_file_and_goes_on(
    redis_url: str, rclient: redis.Redis, tmp_path: Path, receiver: Receiver
) -> None:
    receiver.script = [(400, {}, b'{"message":"bad attribute"}')]
    written = emit(rclient, 30)
    settings = settings_for(
        redis_url,
        tmp_path,
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
        EMP_COLLECTOR_FILE="false",
        EMP_COLLECTOR_BATCH_SIZE="20",
    )
    async with running(settings) as collector:
        await until(lambda: collector.health.dead_lettered == 20, what="dead-lettered")
        await until(lambda: collector.health.exported == 10, what="the next batch")
        await until(lambda: pending_count(rclient) == 0, what="acked")
        assert collector.health.retried == 0
    (line,) = settings.dead_letter_path.read_bytes().splitlines()
    dead = orjson.loads(line)
    assert dead["status"] == 400 and dead["events"] == 20
    assert "bad attribute" in dead["response"]
    validate_otlp(orjson.dumps(dead["request"]))
    records = [
        r
        for rl in dead["request"]["resourceLogs"]
        for sl in rl["scopeLogs"]
        for r in sl["logRecords"]
    ]
    dead_ids = [
        a["value"]["stringValue"]
        for r in records
        for a in r["attributes"]
        if a["key"] == "emp.stream.id"
    ]
    assert sorted(dead_ids + receiver.accepted_ids()) == sorted(written)


async def test_records_rejected_in_a_partial_success_go_to_the_dead_letters(
    redis_url: str,
    rclient: redis.Redis,
    tmp_path: Path,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    answer = b'{"partialSuccess":{"rejectedLogRecords":"2","errorMessage":"too old"}}'
    warning = b'{"partialSuccess":{"rejectedLogRecords":"0","errorMessage":"clock skew"}}'
    receiver.script = [(200, {}, answer), (200, {}, warning)]
    written = emit(rclient, 5)
    settings = settings_for(
        redis_url, tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, EMP_COLLECTOR_FILE="false"
    )
    async with running(settings) as collector:
        await until(lambda: collector.health.dead_lettered == 2, what="2 dead-lettered")
        await until(lambda: pending_count(rclient) == 0, what="acked")
        assert collector.health.exported == 3  # the rejected ones are not counted as exported
        assert collector.health.retried == 0
        more = emit(rclient, 4, start=5)  # a partial success rejecting nothing: a warning
        await until(lambda: collector.health.exported == 7, what="the next request")
        assert collector.health.dead_lettered == 2
    assert len(receiver.received) == 2  # not retried
    (line,) = settings.dead_letter_path.read_bytes().splitlines()
    dead = orjson.loads(line)
    assert (dead["status"], dead["events"], dead["rejected"]) == (200, 5, 2)
    assert dead["reason"] == "partial success: too old"
    # The answer does not say which records: the whole request is kept.
    validate_otlp(orjson.dumps(dead["request"]))
    assert sorted(stream_ids_of(dead["request"])) == sorted(written)
    assert sorted(receiver.accepted_ids()) == sorted(written + more)
    assert "clock skew" in caplog.text


def stream_ids_of(request: dict[str, Any]) -> list[str]:
    return [
        a["value"]["stringValue"]
        for rl in request["resourceLogs"]
        for sl in rl["scopeLogs"]
        for r in sl["logRecords"]
        for a in r["attributes"]
        if a["key"] == "emp.stream.id"
    ]


def test_sigterm_flushes_a_partial_otlp_batch_and_the_file(
    redis_url: str, rclient: redis.Redis, tmp_path: Path, receiver: Receiver
) -> None:
    env = base_env(
        redis_url,
        tmp_path,
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
        EMP_COLLECTOR_BATCH_INTERVAL="60",  # only a flush at shutdown sends them
    )
    proc = CollectorProcess(env, tmp_path / "collector.err").start()
    try:
        written = emit(rclient, 42)
        wait_until(lambda: rclient.exists("emp:collector:c1") == 1, what="running")
        wait_until(lambda: rclient.hget("emp:collector:c1", "written") == "42", what="file written")
        assert receiver.received == []
        assert pending_count(rclient) == 42  # the file has them, OTLP not yet: no ack
        proc.signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.stop_quietly()
    assert sorted(receiver.accepted_ids()) == sorted(written)
    assert pending_count(rclient) == 0


async def test_a_full_spool_pauses_reading_and_loses_nothing(
    redis_url: str, rclient: redis.Redis, tmp_path: Path
) -> None:
    port = free_port()
    settings = settings_for(
        redis_url,
        tmp_path,
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
        EMP_COLLECTOR_FILE="false",
        EMP_COLLECTOR_RETRY_WINDOW="0.2",
        EMP_COLLECTOR_BATCH_SIZE="10",
        EMP_COLLECTOR_BATCH_MAX_SIZE="10",
        EMP_COLLECTOR_READ_COUNT="10",
        EMP_COLLECTOR_SPOOL_MAX_BYTES="6k",  # room for a few gzipped batches of 10
    )
    written = emit(rclient, 400)
    receiver = Receiver(port=port)
    try:
        async with running(settings) as collector:
            await until(lambda: collector.health.spooled > 0, what="spooling")
            spool_bytes = lambda: sum(p.stat().st_size for p in settings.spool_dir.iterdir())  # noqa: E731
            await asyncio.sleep(1.0)  # give it time to overfill, were it to
            assert spool_bytes() <= 6 * 1024
            assert collector.health.spooled < 400
            assert pending_count(rclient) > 0  # what did not fit stays unacked in Redis
            receiver.start()
            await until(lambda: collector.health.exported == 400, timeout=60, what="all")
            await until(lambda: pending_count(rclient) == 0, what="acked")
        assert sorted(receiver.accepted_ids()) == sorted(written)
        assert len(set(receiver.accepted_ids())) == 400
    finally:
        receiver.stop()


async def test_the_http_client_reads_chunked_and_closing_answers() -> None:
    answers = [
        b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"a":\r\n2\r\n1}\r\n0\r\n\r\n',
        b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\nConnection: close\r\n\r\nbusy",
    ]
    bodies: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not answers:  # later connections: hang up without an answer
            writer.close()
            return
        while answers:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            bodies.append(await reader.readexactly(length))
            answer = answers.pop(0)
            writer.write(answer)
            await writer.drain()
            if b"close" in answer:
                writer.close()
                return

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = HttpClient(f"http://127.0.0.1:{port}/v1/logs", timeout=5)
    try:
        first = await client.post(b"one", {"Content-Type": "application/json"})
        assert (first.status, first.body) == (200, b'{"a":1}')
        second = await client.post(b"two", {})  # same kept-alive connection
        assert second.status == 503 and second.body == b"busy"
        assert retry_after(second.headers["retry-after"]) == 7.0
        assert bodies == [b"one", b"two"]
        with pytest.raises(OSError, match=r"closed the connection|reset by peer"):
            await client.post(b"three", {})  # a new connection, hung up on
    finally:
        await client.close()
        server.close()


# -- entries held while the backend is slow ----------------------------------------------------


async def test_entries_still_being_delivered_are_not_claimed_again(
    redis_url: str, rclient: redis.Redis, tmp_path: Path, receiver: Receiver
) -> None:
    """While the OTLP backend is down, the entries the collector holds sit idle in its own
    pending list, and XAUTOCLAIM finds them: they must not be delivered a second time."""
    receiver.down_until = time.monotonic() + 3.0
    settings = settings_for(
        redis_url,
        tmp_path,
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
        EMP_COLLECTOR_CLAIM_IDLE_MS="100",  # idle 0.1 s is enough to be claimed
        EMP_COLLECTOR_CLAIM_INTERVAL="0.2",
    )
    written = emit(rclient, 300)
    async with running(settings) as collector:
        await until(lambda: collector.health.written == 300, what="the file has them")
        await until(lambda: collector.health.retried >= 2, what="the backend refuses")
        assert pending_count(rclient) == 300  # held for OTLP: not acked yet
        await until(lambda: collector.health.exported == 300, timeout=40, what="exported")
        await until(lambda: pending_count(rclient) == 0, what="acked")
        assert collector.health.read == 300
    assert line_ids(settings.log_path) == written  # once each
    assert sorted(receiver.accepted_ids(), key=id_key) == written  # once each
    assert collector.health.trimmed_lost == 0


async def test_held_entries_trimmed_from_the_stream_are_not_counted_lost(
    redis_url: str, rclient: redis.Redis, tmp_path: Path, receiver: Receiver
) -> None:
    """MAXLEN trims entries the collector holds in memory (the backend is down); XAUTOCLAIM
    then reports them deleted. They are not lost: they are exported once it is back."""
    receiver.down_until = time.monotonic() + 1e6
    settings = settings_for(
        redis_url,
        tmp_path,
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
        EMP_COLLECTOR_FILE="false",
        EMP_COLLECTOR_CLAIM_IDLE_MS="100",
        EMP_COLLECTOR_CLAIM_INTERVAL="0.2",
    )
    written = emit(rclient, 150)
    async with running(settings) as collector:
        await until(lambda: collector.health.read == 150 and collector.health.retried >= 1)
        rclient.xtrim(STREAM, maxlen=0, approximate=False)  # all 150 gone from the stream
        # Claim passes now find them deleted: XAUTOCLAIM drops them from the pending list.
        await until(lambda: pending_count(rclient) == 0, what="XAUTOCLAIM saw them deleted")
        assert collector.health.trimmed_lost == 0
        receiver.down_until = 0.0
        await until(lambda: collector.health.exported == 150, timeout=40, what="exported")
    assert collector.health.trimmed_lost == 0
    assert sorted(receiver.accepted_ids(), key=id_key) == written


async def test_a_full_queue_sends_requests_to_the_spool_instead_of_pausing_reading(
    redis_url: str, rclient: redis.Redis, tmp_path: Path
) -> None:
    port = free_port()  # the backend is down: the one consumer retries its request
    settings = settings_for(
        redis_url,
        tmp_path,
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
        EMP_COLLECTOR_FILE="false",
        EMP_COLLECTOR_OTLP_CONSUMERS="1",
        EMP_COLLECTOR_OTLP_QUEUE_SIZE="2",
        EMP_COLLECTOR_BATCH_SIZE="10",
        EMP_COLLECTOR_BATCH_MAX_SIZE="10",
        EMP_COLLECTOR_READ_COUNT="10",  # one read, one request: each acked on its own
        EMP_COLLECTOR_RETRY_WINDOW="600",  # the retried request would hold reading for long
    )
    written = emit(rclient, 200)
    receiver = Receiver(port=port)
    try:
        async with running(settings) as collector:
            # At most 1 request being retried and 2 queued; the others are spooled at once,
            # and acked, although the retried request is far from giving up.
            await until(lambda: collector.health.spooled >= 170, what="the overflow spooled")
            spooled = collector.health.spooled
            await until(lambda: pending_count(rclient) == 200 - spooled, what="spooled acked")
            assert collector.health.read == 200 and collector.health.exported == 0
            receiver.start()
            await until(lambda: collector.health.exported == 200, timeout=60, what="all")
            await until(lambda: pending_count(rclient) == 0, what="acked")
        assert sorted(receiver.accepted_ids(), key=id_key) == written
        assert list(settings.spool_dir.iterdir()) == []
    finally:
        receiver.stop()


def test_sigterm_during_a_hung_request_spools_what_is_in_flight_and_exits_0(
    redis_url: str, rclient: redis.Redis, tmp_path: Path, receiver: Receiver
) -> None:
    receiver.hang = True  # takes the requests, never answers
    env = base_env(
        redis_url,
        tmp_path,
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
        EMP_COLLECTOR_FILE="false",
        EMP_COLLECTOR_OTLP_TIMEOUT="60",  # far longer than a stop may take
    )
    written = emit(rclient, 450)
    proc = CollectorProcess(env, tmp_path / "collector.err").start()
    try:
        wait_until(lambda: len(receiver.paths) >= 1, what="a request in flight")
        wait_until(lambda: rclient.hget("emp:collector:c1", "read") == "450", what="all read")
        proc.signal(signal.SIGTERM)
        # The watchdog ends a stop that takes over 9.5 s with exit code 1: 0 means in time.
        assert proc.wait(timeout=30) == 0, proc.output()
    finally:
        proc.stop_quietly()
    out = proc.output()
    assert "Traceback" not in out and "shutdown took over" not in out
    assert "stopped: read 450, written 0, exported 0, spooled 450" in out
    assert pending_count(rclient) == 0  # spooled, so acked
    # The next run, with a backend that answers, sends what was spooled.
    receiver.hang = False
    good = Receiver().start()
    try:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = good.url
        proc = CollectorProcess(env, tmp_path / "collector2.err").start()
        wait_until(lambda: len(good.accepted_ids()) >= 450, what="replayed")
        proc.signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.stop_quietly()
        good.stop()
    assert sorted(good.accepted_ids(), key=id_key) == written


@pytest.mark.parametrize(
    ("setting", "file_mode", "dir_mode"), [(None, 0o600, 0o700), ("0644", 0o644, 0o755)]
)
async def test_files_and_directories_the_collector_writes_are_private_unless_configured(
    redis_url: str,
    rclient: redis.Redis,
    tmp_path: Path,
    receiver: Receiver,
    setting: str | None,
    file_mode: int,
    dir_mode: int,
) -> None:
    receiver.script = [(400, {}, b"bad")]  # one dead letter
    extra = {} if setting is None else {"EMP_COLLECTOR_FILE_MODE": setting}
    settings = settings_for(
        redis_url,
        tmp_path,
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
        EMP_COLLECTOR_LOG_PATH=str(tmp_path / "new" / "logs" / "events.log"),
        **extra,
    )
    emit(rclient, 10)
    umask = os.umask(0o077 if setting else 0o022)  # the configured mode wins over the umask
    try:
        async with running(settings) as collector:
            await until(lambda: collector.health.dead_lettered == 10, what="dead letter")
            await until(lambda: collector.health.written == 10, what="written")
    finally:
        os.umask(umask)
    spool = Spool(settings.spool_dir, settings.spool_max_bytes, settings.file_mode)
    spool.open()
    spooled = spool.append(b"body", 1).path

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    assert mode(settings.log_path) == file_mode
    assert mode(settings.dead_letter_path) == file_mode
    assert mode(spooled) == file_mode
    for directory in (settings.spool_dir, settings.spool_dir.parent, settings.log_path.parent):
        assert mode(directory) == dir_mode, directory
    assert mode(tmp_path / "new") == dir_mode  # every directory it created


async def test_a_replayed_request_the_backend_rejects_does_not_stall_the_replay(
    redis_url: str, rclient: redis.Redis, tmp_path: Path
) -> None:
    port = free_port()
    settings = settings_for(
        redis_url,
        tmp_path,
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
        EMP_COLLECTOR_FILE="false",
        EMP_COLLECTOR_RETRY_WINDOW="0.2",
        EMP_COLLECTOR_BATCH_SIZE="20",
        EMP_COLLECTOR_BATCH_MAX_SIZE="20",
    )
    written = emit(rclient, 100)
    receiver = Receiver(port=port, script=[(400, {}, b"bad")])
    try:
        async with running(settings) as collector:
            await until(lambda: collector.health.spooled == 100, what="spooled")
            await asyncio.sleep(1.0)  # replay probes fail meanwhile: backing off
            receiver.start()  # the first request replayed is rejected, the others taken
            await until(lambda: collector.health.exported == 80, timeout=60, what="the rest")
            assert collector.health.dead_lettered == 20
        assert sorted(
            receiver.accepted_ids() + dead_letter_ids(settings.dead_letter_path)
        ) == sorted(written)
        assert list(settings.spool_dir.iterdir()) == []
    finally:
        receiver.stop()


def dead_letter_ids(path: Path) -> list[str]:
    return [
        i
        for line in path.read_bytes().splitlines()
        for i in stream_ids_of(orjson.loads(line)["request"])
    ]
