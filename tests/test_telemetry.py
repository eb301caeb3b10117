"""The emitter against a real redis-server: delivery, trimming, outages, fork, asyncio."""

from __future__ import annotations

import asyncio
import enum
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redisproc import RedisProcess

from emp_tui.events import decode, trace_id_for_job
from emp_tui.telemetry import DROPPED_EVENT_TYPE, EventClient, parse_sample_spec

STREAM = "emp:events"


def read_all(url: str, stream: str = STREAM) -> list:
    with redis.Redis.from_url(url) as client:
        return [decode(entry_id, fields) for entry_id, fields in client.xrange(stream)]


@pytest.fixture
def make_client(redis_url: str) -> Iterator:
    made: list[EventClient] = []

    def make(service: str = "worker", **kwargs: object) -> EventClient:
        kwargs.setdefault("redis_url", redis_url)
        client = EventClient(service, **kwargs)  # type: ignore[arg-type]
        made.append(client)
        return client

    yield make
    for client in made:
        client.close(timeout=1)


def test_events_arrive_in_order_with_their_fields(make_client, redis_url: str) -> None:
    client = make_client("api-server")
    for i in range(1000):
        client.job_event(f"job_{i % 10}", "job.created", {"n": i, "text": "héllo"}, user_id="u1")
    client.worker_event("w-1", "worker.ready")
    client.machine_event("m-1", "machine.ready", {"gpus": 2})
    assert client.flush(5)
    events = read_all(redis_url)
    assert len(events) == 1002
    assert [e.data["n"] for e in events[:1000]] == list(range(1000))
    first = events[0]
    assert (first.service, first.event_type, first.job_id, first.user_id, first.level) == (
        "api-server",
        "job.created",
        "job_0",
        "u1",
        "info",
    )
    assert first.trace_id == trace_id_for_job("job_0")
    assert first.malformed is None
    assert events[1000].worker_id == "w-1" and events[1001].machine_id == "m-1"
    ids = [e.id for e in events]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))
    stats = client.stats
    assert (stats.emitted, stats.sent, stats.dropped, stats.failed, stats.buffered) == (
        1002,
        1002,
        0,
        0,
        0,
    )


def test_stream_is_trimmed_to_maxlen(make_client, redis_url: str) -> None:
    client = make_client(maxlen=200)
    for i in range(5000):
        client.event("job.progress_updated", {"i": i})
    assert client.flush(10)
    with redis.Redis.from_url(redis_url) as r:
        length = r.xlen(STREAM)
        last = decode(*r.xrevrange(STREAM, count=1)[0])
    # MAXLEN ~ trims whole macro nodes: at least maxlen, never far above it
    assert 200 <= length < 400
    assert last.data["i"] == 4999


def test_redis_killed_mid_run_then_restarted(redis_proc: RedisProcess) -> None:
    client = EventClient(
        "worker", redis_url=redis_proc.url, max_buffer=100, batch_size=50, max_backoff=0.2
    )
    try:
        for i in range(10):
            client.event("job.claimed", {"i": i})
        assert client.flush(5)
        redis_proc.stop(kill=True)

        worst = 0.0
        for i in range(2000):
            started = time.perf_counter()
            client.event("job.progress_updated", {"i": i})  # must neither raise nor block
            worst = max(worst, time.perf_counter() - started)
        assert worst < 0.05, f"a call took {worst * 1000:.1f} ms with Redis down"
        assert not client.flush(0.3)
        stats = client.stats
        assert stats.buffered <= 100 + 50  # bounded: the buffer plus one batch in flight
        assert stats.dropped >= 2000 - 150
        assert not stats.connected

        redis_proc.start()
        assert client.flush(10)
        client.event("worker.ready")
        assert client.flush(5)
        events = read_all(redis_proc.url)
        reports = [e for e in events if e.event_type == DROPPED_EVENT_TYPE]
        assert len(reports) == 1
        assert reports[0].data["count"] == client.stats.dropped
        assert reports[0].level == "warn"
        assert events[-1].event_type == "worker.ready"  # sending resumed
        progress = [e for e in events if e.event_type == "job.progress_updated"]
        assert len(progress) == 2000 - client.stats.dropped
        assert client.stats.connected
    finally:
        client.close(timeout=1)


def test_unreachable_redis_never_raises_and_close_gives_up(tmp_path) -> None:
    client = EventClient("api-server", redis_url=f"unix://{tmp_path}/nothing.sock", max_buffer=10)
    for _ in range(100):
        client.event("job.created", {"x": object()})
    started = time.monotonic()
    assert client.close(timeout=0.5) is False
    assert time.monotonic() - started < 5
    assert client.stats.dropped >= 90
    client.event("after.close")  # ignored, not an error


def test_data_json_cannot_hold_is_written_as_text(make_client, redis_url: str) -> None:
    client = make_client()
    loop: dict[str, object] = {"n": 1}
    loop["self"] = loop
    client.event("job.created", loop)  # orjson refuses circular data
    client.event("job.created", {"when": object(), 1: "int key", "big": 2**80})
    client.event("job.created", ["not", "a", "mapping"])  # type: ignore[arg-type]
    assert client.flush(5)
    assert (client.stats.sent, client.stats.dropped, client.stats.failed) == (3, 0, 0)
    circular, odd, listed = read_all(redis_url)
    assert all(e.malformed is None for e in (circular, odd, listed))
    assert circular.data["n"] == 1 and "<cycle>" in str(circular.data["self"])
    assert odd.data["1"] == "int key" and odd.data["when"].startswith("<object")
    assert odd.data["big"] == str(2**80)
    assert listed.data == {"_value": ["not", "a", "mapping"]}


def test_operation_started_completed_and_failed(make_client, redis_url: str) -> None:
    client = make_client()
    with client.operation(
        "connector.processing", job_id="job_7", data={"connector": "comfy"}
    ) as op:
        op.data["items"] = 3
    with pytest.raises(RuntimeError, match="GPU fell off"):
        with client.operation("connector.processing", job_id="job_8"):
            raise RuntimeError("GPU fell off")
    assert client.flush(5)
    started, completed, started2, failed = read_all(redis_url)
    assert started.event_type == "connector.processing_started"
    assert started.data == {"connector": "comfy"}
    assert completed.event_type == "connector.processing_completed"
    assert completed.data["items"] == 3 and completed.data["durationMs"] >= 0
    assert started.span_id == completed.span_id and started.span_id
    assert started.trace_id == completed.trace_id == trace_id_for_job("job_7")
    assert failed.event_type == "connector.processing_failed"
    assert failed.level == "error"
    assert failed.data["error"] == "GPU fell off" and failed.data["errorType"] == "RuntimeError"
    assert started2.span_id == failed.span_id != started.span_id


async def test_asyncio_use(make_client, redis_url: str) -> None:
    client = make_client()

    async def handler(i: int) -> None:
        async with client.operation("redis_function", job_id=f"job_{i}"):
            await asyncio.sleep(0.001)
        client.job_event(f"job_{i}", "job.queued")

    await asyncio.gather(*(handler(i) for i in range(50)))
    with pytest.raises(asyncio.TimeoutError):
        async with client.operation("webhook.send"):
            raise TimeoutError
    assert await asyncio.to_thread(client.flush, 5)
    events = read_all(redis_url)
    assert len(events) == 50 * 3 + 2
    assert events[-1].event_type == "webhook.send_failed"
    assert events[-2].trace_id == events[-1].trace_id  # one operation, one trace


def test_threads(make_client, redis_url: str) -> None:
    client = make_client()

    def work(t: int) -> None:
        for i in range(500):
            client.event("job.progress_updated", {"t": t, "i": i})

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert client.flush(10)
    events = read_all(redis_url)
    assert len(events) == 4000
    for t in range(8):  # each thread's events stay in that thread's order
        assert [e.data["i"] for e in events if e.data["t"] == t] == list(range(500))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX-only")
def test_fork(make_client, redis_url: str) -> None:
    client = make_client()
    client.event("parent.before_fork")
    pid = os.fork()
    if pid == 0:  # the child: emit through the inherited client, then leave at once
        code = 0
        try:
            client.event("child.event", {"pid": os.getpid()})
            code = 0 if client.flush(5) else 1
        except BaseException:  # noqa: BLE001 - the forked child must reach os._exit
            code = 2
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    client.event("parent.after_fork")
    assert client.flush(5)
    types = [e.event_type for e in read_all(redis_url)]
    assert sorted(types) == ["child.event", "parent.after_fork", "parent.before_fork"]


def test_sampling_levels_and_off_switch(
    make_client, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sampled = make_client(sample={"job.progress_updated": 0.0, "worker.*": 0.5})
    for _ in range(2000):
        sampled.event("job.progress_updated")
        sampled.event("worker.heartbeat")
    sampled.event("job.completed")
    assert sampled.flush(5)
    types = [e.event_type for e in read_all(redis_url)]
    assert "job.progress_updated" not in types
    assert 800 < types.count("worker.heartbeat") < 1200
    assert types.count("job.completed") == 1

    redis.Redis.from_url(redis_url).delete(STREAM)
    monkeypatch.setenv("EMP_TELEMETRY_LEVEL", "warn")
    leveled = make_client()
    leveled.event("job.created")
    leveled.event("job.retry", level="warn")
    leveled.event("connector.processing_failed")
    leveled.event("cache.miss", level="debug")
    assert leveled.flush(5)
    assert [e.event_type for e in read_all(redis_url)] == [
        "job.retry",
        "connector.processing_failed",
    ]

    monkeypatch.setenv("EMP_TELEMETRY_ENABLED", "false")
    off = make_client()
    off.event("connector.processing_failed")
    assert off.flush(1)
    assert not off.enabled
    assert off.stats.emitted == 0
    assert len(read_all(redis_url)) == 2


def test_sample_spec_from_env(make_client, redis_url: str, monkeypatch) -> None:
    monkeypatch.setenv("EMP_TELEMETRY_SAMPLE", "job.progress_updated=0")
    client = make_client()
    client.event("job.progress_updated")
    client.event("job.completed")
    assert client.flush(5)
    assert [e.event_type for e in read_all(redis_url)] == ["job.completed"]


def test_parse_sample_spec() -> None:
    assert parse_sample_spec("a.b=0.1, c.*=1") == {"a.b": 0.1, "c.*": 1.0}
    for bad in ("a.b", "a.b=2", "=0.5", "a.b=x"):
        with pytest.raises(ValueError, match="bad sampling rule"):
            parse_sample_spec(bad)


def test_password_protected_redis() -> None:
    with RedisProcess(extra_args=["--requirepass", "s3cr:t/@"]) as server:
        url = f"unix://{server.socket}?password=s3cr%3At%2F%40"
        client = EventClient("monitor", redis_url=url)
        client.event("health_check.performed")
        assert client.flush(5)
        client.close()
        with redis.Redis(unix_socket_path=str(server.socket), password="s3cr:t/@") as r:
            assert r.xlen(STREAM) == 1


def _run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_ready_made_clients_read_env_lazily_and_flush_at_exit(redis_url: str) -> None:
    code = (
        "import os\n"
        "from emp_tui.telemetry import api_telemetry, worker_telemetry\n"
        f"os.environ['REDIS_URL'] = {redis_url!r}\n"
        "os.environ['EMP_EVENTS_STREAM'] = 'custom:events'\n"
        "for i in range(300):\n"
        "    api_telemetry.job_event('job_1', 'job.created', {'i': i})\n"
        "worker_telemetry.event('worker.ready')\n"
        # no flush, no close: the exit hook must deliver everything
    )
    done = _run_python(code, {})
    assert done.returncode == 0, done.stderr
    events = read_all(redis_url, "custom:events")
    assert len(events) == 301
    assert {e.service for e in events} == {"api-server", "worker"}


def test_exit_with_redis_down_does_not_hang(tmp_path) -> None:
    code = (
        "from emp_tui.telemetry import EventClient\n"
        f"c = EventClient('api-server', redis_url='unix://{tmp_path}/none.sock')\n"
        "for i in range(100): c.event('job.created')\n"
    )
    started = time.monotonic()
    done = _run_python(code, {})
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert time.monotonic() - started < 15


def test_refused_commands_are_counted_and_the_connection_stays_usable(
    make_client, redis_url: str
) -> None:
    with redis.Redis.from_url(redis_url) as r:
        r.set("not:a:stream", "x")  # XADD on it answers WRONGTYPE
    bad = make_client(stream="not:a:stream")
    for _ in range(10):
        bad.event("job.created")
    assert bad.flush(5)
    assert (bad.stats.sent, bad.stats.failed) == (0, 10)
    bad.event("job.created")  # the replies were all read: the next batch still works
    assert bad.flush(5) and bad.stats.failed == 11


def test_a_redis_that_runs_no_scripts_gets_one_xadd_per_event(make_client, redis_url: str) -> None:
    """An ACL without @scripting: the emitter says so once and pipelines XADDs instead, with
    the same fields, IDs and trimming."""
    with redis.Redis.from_url(redis_url) as admin:
        admin.execute_command(
            "ACL", "SETUSER", "emitter", "on", ">pw", "~*", "+@all", "-@scripting"
        )
    url = redis_url.replace("unix://", "unix://emitter:pw@")
    client = make_client(redis_url=url, maxlen=200)
    for i in range(1000):
        client.job_event(f"job_{i % 7}", "job.progress_updated", {"a": "ü", "i": i})
    client.event("worker.ready", worker_id="w-1")
    assert client.flush(10)
    assert client._scripting is False  # the fallback was taken
    with redis.Redis.from_url(redis_url) as r:
        assert 200 <= r.xlen(STREAM) < 400  # MAXLEN ~ on every XADD
        last = decode(*r.xrevrange(STREAM, count=1)[0])
        before = decode(*r.xrevrange(STREAM, count=2)[1])
    assert last.event_type == "worker.ready" and last.worker_id == "w-1"
    assert before.data == {"a": "ü", "i": 999} and before.job_id == "job_5"
    assert before.trace_id == trace_id_for_job("job_5") and before.malformed is None
    assert before.event_id is not None and last.event_id is not None
    assert int(last.event_id[10:], 16) == int(before.event_id[10:], 16) + 1
    stats = client.stats
    assert (stats.sent, stats.dropped, stats.failed) == (1001, 0, 0)
    client.close(1)
    with redis.Redis.from_url(redis_url) as admin:
        admin.execute_command("ACL", "DELUSER", "emitter")


def test_script_off_sends_one_xadd_per_event(
    make_client, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMP_TELEMETRY_SCRIPT", "false")
    with redis.Redis.from_url(redis_url) as r:
        r.config_resetstat()
    client = make_client()
    for i in range(300):
        client.job_event("job_1", "job.progress_updated", {"i": i})
    assert client.flush(10)
    assert client.script is False
    with redis.Redis.from_url(redis_url) as r:
        calls = r.info("commandstats")
    assert calls["cmdstat_xadd"]["calls"] == 300 and "cmdstat_evalsha" not in calls
    assert [e.data["i"] for e in read_all(redis_url)] == list(range(300))


# -- validation at the call, drops reported, event IDs ----------------------------------------


def test_one_event_with_a_uuid_job_id_then_60000_all_arrive(make_client, redis_url: str) -> None:
    client = make_client("api-server", max_buffer=100_000, maxlen=100_000)
    bad_id = uuid.uuid4()
    client.job_event(bad_id, "job.created")  # type: ignore[arg-type]
    for i in range(60_000):
        client.job_event(f"job_{i % 100}", "job.progress_updated", {"i": i})
    assert client.flush(60)
    events = read_all(redis_url)
    assert len(events) == 60_001
    assert events[0].job_id == str(bad_id) and events[0].malformed is None
    assert [e.data["i"] for e in events[1:]] == list(range(60_000))
    stats = client.stats
    assert (stats.emitted, stats.sent, stats.dropped, stats.failed) == (60_001, 60_001, 0, 0)


class _Kind(enum.StrEnum):
    CREATED = "job.created"


def test_names_and_ids_are_coerced_or_the_one_event_dropped(make_client, redis_url: str) -> None:
    client = make_client()
    client.event(_Kind.CREATED, job_id=42, worker_id=b"w-1", machine_id=uuid.UUID(int=7))
    client.event("job.claimed", job_id=object())  # type: ignore[arg-type]  # not an ID: dropped
    client.event("job.claimed", job_id=b"\xff")  # not UTF-8: dropped
    client.event(3.5, job_id="j")  # type: ignore[arg-type]  # a float is no name: dropped
    client.event("job.claimed", timestamp="yesterday")  # type: ignore[arg-type]
    client.event("job.claimed", level=["warn"])  # type: ignore[arg-type]
    client.event("job.completed", timestamp=1732700000000.9)  # type: ignore[arg-type]
    assert client.flush(5)
    created, completed, report = read_all(redis_url)
    assert created.event_type == "job.created" and created.job_id == "42"
    assert created.worker_id == "w-1" and created.machine_id == str(uuid.UUID(int=7))
    assert completed.timestamp == 1732700000000
    assert report.event_type == DROPPED_EVENT_TYPE and report.level == "warn"
    assert report.data["count"] == 5 and report.data["reasons"] == {"invalid": 5}
    stats = client.stats
    assert (stats.emitted, stats.sent, stats.dropped) == (7, 2, 5)


def test_an_event_that_cannot_be_packed_holds_back_no_other(make_client, redis_url: str) -> None:
    client = make_client(batch_size=50)
    for i in range(120):
        # a lone surrogate (from a file name read with surrogateescape, say) cannot be sent
        job = "job_\udcff" if i == 60 else f"job_{i}"
        client.job_event(job, "job.progress_updated", {"i": i})
    assert client.flush(5)
    events = read_all(redis_url)
    assert [e.data["i"] for e in events[:-1]] == [i for i in range(120) if i != 60]
    assert events[-1].event_type == DROPPED_EVENT_TYPE
    assert events[-1].data["reasons"] == {"unpackable": 1}
    assert client.stats.dropped == 1 and client.stats.sent == 119


def test_a_batch_failing_for_one_event_is_split_until_it_is_found(
    make_client, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection: sending fails, not for the connection, whenever one event is in the
    chunk (as a bug or a server-side limit could). Bisection finds it; the rest arrive."""
    real_send = EventClient._send_chunk
    calls = []

    def failing_send(self: EventClient, chunk: Any) -> Any:
        calls.append(len(chunk))
        if b"poisoned" in chunk.payload:
            raise ValueError("this one event cannot be sent")
        return real_send(self, chunk)

    monkeypatch.setattr(EventClient, "_send_chunk", failing_send)
    client = make_client(batch_size=64)
    for i in range(200):
        client.event("job.progress_updated", {"i": i, "mark": "poisoned" if i == 100 else ""})
    assert client.flush(10)
    events = read_all(redis_url)
    assert [e.data["i"] for e in events[:-1]] == [i for i in range(200) if i != 100]
    assert events[-1].data["reasons"] == {"unsendable": 1}
    assert (client.stats.sent, client.stats.dropped) == (199, 1)
    assert 1 in calls and max(calls) == 64  # halved down to the one event


def test_each_event_carries_a_unique_event_id(make_client, redis_url: str) -> None:
    first = make_client()
    second = make_client()
    for i in range(500):
        (first if i % 2 else second).event("job.progress_updated", {"i": i})
    assert first.flush(5) and second.flush(5)
    ids = [e.event_id for e in read_all(redis_url)]
    assert len(ids) == 500 and len(set(ids)) == 500
    assert all(i is not None and len(i) == 16 and int(i, 16) >= 0 for i in ids)
    prefixes = {i[:10] for i in ids if i}
    assert len(prefixes) == 2  # one random prefix per client, then a counter


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX-only")
def test_a_forked_child_draws_its_own_event_ids(make_client, redis_url: str) -> None:
    client = make_client()
    client.event("parent.before_fork")
    assert client.flush(5)
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            client.event("child.event")
            code = 0 if client.flush(5) else 1
        except BaseException:  # noqa: BLE001 - the forked child must reach os._exit
            code = 2
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    client.event("parent.after_fork")
    assert client.flush(5)
    by_type = {e.event_type: e.event_id for e in read_all(redis_url)}
    parent, child = by_type["parent.after_fork"], by_type["child.event"]
    assert parent and child and parent[:10] == by_type["parent.before_fork"][:10] != child[:10]


def test_exit_with_redis_hung_takes_at_most_2_seconds(redis_proc: RedisProcess) -> None:
    """The README promises it: a process exits within 2 s even with Redis hung (stopped, so
    that connections are accepted and then nothing answers)."""
    code = (
        "import sys\n"
        "from emp_tui.telemetry import EventClient\n"
        f"c = EventClient('api-server', redis_url={redis_proc.url!r})\n"
        "c.event('job.created')\n"
        "assert c.flush(10)\n"
        "print('connected', flush=True)\n"
        "sys.stdin.readline()\n"
        "for i in range(100): c.event('job.created', {'i': i})\n"
        "print('exiting', flush=True)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert redis_proc.proc is not None and proc.stdin and proc.stdout and proc.stderr
    try:
        assert proc.stdout.readline() == "connected\n", proc.stderr.read()
        redis_proc.proc.send_signal(signal.SIGSTOP)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == "exiting\n", proc.stderr.read()
        started = time.monotonic()
        code_ = proc.wait(timeout=30)
        elapsed = time.monotonic() - started
    finally:
        redis_proc.proc.send_signal(signal.SIGCONT)
        if proc.poll() is None:
            proc.kill()
    assert code_ == 0
    assert "Traceback" not in proc.stderr.read()
    assert elapsed < 2.0 + 1.0, f"exit took {elapsed:.1f} s with Redis hung"  # 1 s of margin
