"""The emitter's circuit and spill against a real redis-server: an outage, memory pressure,
OOM, the bound, a crash between Redis taking a batch and the cursor moving past it, files left
by an emitter that is gone."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redisproc import RedisProcess

from emp_tui.events import TelemetryEvent, decode, dedupe
from emp_tui.sources import read_files
from emp_tui.spill import Spill
from emp_tui.telemetry import CIRCUIT_EVENT_TYPE, DROPPED_EVENT_TYPE, EventClient

STREAM = "emp:events"


def wait_for(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


def raw_entries(url: str) -> list[TelemetryEvent]:
    with redis.Redis.from_url(url) as client:
        return [decode(entry_id, fields) for entry_id, fields in client.xrange(STREAM)]


def of_type(events: list[TelemetryEvent], event_type: str) -> list[TelemetryEvent]:
    return [e for e in events if e.event_type == event_type]


def circuit_notes(events: list[TelemetryEvent]) -> list[tuple[str, str]]:
    return [(e.data["state"], e.data["reason"]) for e in of_type(events, CIRCUIT_EVENT_TYPE)]


def caught_up(client: EventClient) -> bool:
    stats = client.stats
    return stats.circuit == "closed" and stats.spilled == 0 and client.flush(0)


@pytest.fixture
def persistent_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server of the test's own that keeps its data across a stop and a start."""
    with persistent(tmp_path / "redis") as server:
        yield server


def persistent(directory: Path) -> RedisProcess:
    directory.mkdir()
    return RedisProcess(directory, extra_args=["--appendonly", "yes"])


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Callable[..., EventClient]]:
    made: list[EventClient] = []

    def make(url: str, **kwargs: Any) -> EventClient:
        kwargs.setdefault("spill_dir", tmp_path / "spill")
        kwargs.setdefault("max_backoff", 0.5)
        kwargs.setdefault("memory_check_interval", 0.2)
        client = EventClient(kwargs.pop("service", "api-server"), redis_url=url, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close(timeout=2)


def test_a_30_second_outage_at_2000_events_a_second_loses_nothing(
    persistent_redis: RedisProcess, make_client: Callable[..., EventClient], tmp_path: Path
) -> None:
    """The acceptance test: Redis stopped for 30 s while the service emits 2,000 events/s,
    then started again. Every event reaches the stream, in order, each once for a reader; the
    spill is empty and gone afterwards."""
    rate, before, outage, after = 2000, 2.0, 30.0, 2.0
    client = make_client(persistent_redis.url, maxlen=1_000_000)  # keep all 68,000
    spill_dir = tmp_path / "spill"
    sent = 0
    started = time.monotonic()
    seen_during_outage: list[TelemetryEvent] = []
    phase = "before"
    while True:
        elapsed = time.monotonic() - started
        due = int(min(elapsed, before + outage + after) * rate)
        while sent < due:
            client.job_event(f"job_{sent % 97}", "job.progress_updated", {"i": sent})
            sent += 1
        if phase == "before" and elapsed >= before:
            persistent_redis.stop()
            phase = "outage"
        elif phase == "outage" and elapsed >= before + outage / 2 and not seen_during_outage:
            # Half way: the spill is on disk, private, and readable as a log.
            assert client.stats.circuit == "open" and client.stats.spilled > 0
            assert stat.S_IMODE(spill_dir.stat().st_mode) == 0o700
            for path in spill_dir.iterdir():
                assert stat.S_IMODE(path.stat().st_mode) == 0o600
            seen_during_outage = list(read_files([spill_dir]))
        elif phase == "outage" and elapsed >= before + outage:
            persistent_redis.start()
            phase = "after"
        elif phase == "after" and elapsed >= before + outage + after:
            break
        time.sleep(0.005)
    total = sent
    assert total == int((before + outage + after) * rate)
    wait_for(lambda: caught_up(client), "the spill to be replayed")

    stats = client.stats
    assert (stats.emitted, stats.sent, stats.dropped, stats.failed) == (total, total, 0, 0)
    assert stats.buffered == 0 and stats.spilled == 0
    entries = raw_entries(persistent_redis.url)
    progress = of_type(entries, "job.progress_updated")
    shown = list(dedupe(progress))
    assert [e.data["i"] for e in shown] == list(range(total))  # all of them, in order
    # At least once: a batch Redis took just as it stopped may be there twice, same eventId.
    assert len(progress) - len(shown) <= client.batch_size
    assert circuit_notes(entries) == [
        ("open", "unreachable"),
        ("half-open", "recovered"),
        ("closed", "replayed"),
    ]
    assert not of_type(entries, DROPPED_EVENT_TYPE)
    # What the spill held half way read like a log, with the IDs the stream has now.
    assert seen_during_outage
    ids = {e.event_id for e in shown}
    assert {e.event_id for e in seen_during_outage if e.event_type != CIRCUIT_EVENT_TYPE} <= ids
    assert not list(spill_dir.glob("*.jsonl"))  # replayed, removed


def test_memory_over_its_share_switches_to_the_file_and_back(
    redis_proc: RedisProcess, make_client: Callable[..., EventClient]
) -> None:
    client = make_client(redis_proc.url, memory_share=0.9)
    with redis_proc.client() as admin:
        for i in range(100):
            client.job_event("job_a", "job.progress_updated", {"i": i})
        wait_for(lambda: client.stats.sent == 100, "the first events")
        assert client.stats.circuit == "closed"
        limit = int(admin.info("memory")["used_memory"]) + 3_000_000
        admin.config_set("maxmemory", str(limit))
        ballast = 0
        while int(admin.info("memory")["used_memory"]) < 0.93 * limit:  # past 0.9, not full
            admin.set(f"ballast:{ballast}", b"x" * 50_000)
            ballast += 1
        wait_for(lambda: client.stats.circuit == "open", "the circuit to open")
        for i in range(100, 600):
            client.job_event("job_a", "job.progress_updated", {"i": i})
        wait_for(lambda: client.stats.spilled >= 500, "the events to go to the file")
        assert admin.xlen(STREAM) == 100  # nothing more reached Redis
        admin.config_set("maxmemory", "0")
    wait_for(lambda: caught_up(client), "the spill to be replayed")
    entries = raw_entries(redis_proc.url)
    assert [e.data["i"] for e in of_type(entries, "job.progress_updated")] == list(range(600))
    notes = of_type(entries, CIRCUIT_EVENT_TYPE)
    assert [(n.data["state"], n.data["reason"]) for n in notes] == [
        ("open", "memory"),
        ("half-open", "recovered"),
        ("closed", "replayed"),
    ]
    assert notes[0].level == "warn" and notes[0].data["memoryShare"] == 0.9
    assert notes[0].data["usedMemory"] >= 0.9 * notes[0].data["maxMemory"]
    assert client.stats.sent == 600 and client.stats.dropped == 0


def test_an_oom_answer_opens_the_circuit_without_a_memory_check(
    redis_proc: RedisProcess, make_client: Callable[..., EventClient]
) -> None:
    """memory_share 0: no INFO checks. Redis at maxmemory answers OOM; the events it refused
    go to the file instead of being lost."""
    client = make_client(redis_proc.url, memory_share=0, max_backoff=0.2)
    with redis_proc.client() as admin:
        client.event("worker.ready", worker_id="w-1")
        wait_for(lambda: client.stats.sent == 1, "the first event")
        admin.set("ballast", b"x" * 1_000_000)
        admin.config_set("maxmemory", "1")  # every write refused: OOM
        for i in range(300):
            client.job_event("job_b", "job.progress_updated", {"i": i})
        wait_for(lambda: client.stats.spilled == 300, "the refused events to go to the file")
        assert client.stats.failed == 0
        admin.config_set("maxmemory", "0")
    wait_for(lambda: caught_up(client), "the spill to be replayed")
    entries = raw_entries(redis_proc.url)
    assert [e.data["i"] for e in of_type(entries, "job.progress_updated")] == list(range(300))
    assert circuit_notes(entries)[0] == ("open", "memory")
    assert of_type(entries, CIRCUIT_EVENT_TYPE)[0].data["detail"] == "Redis answered OOM"


def test_past_the_bound_events_are_dropped_counted_and_reported(
    tmp_path: Path, make_client: Callable[..., EventClient]
) -> None:
    with persistent(tmp_path / "r") as server:
        client = make_client(
            server.url, spill_max_bytes=30_000, max_buffer=200, batch_size=50, max_backoff=0.2
        )
        client.event("worker.ready", worker_id="w-1")
        wait_for(lambda: client.stats.sent == 1, "the first event")
        server.stop()
        for i in range(2000):
            client.job_event("job_c", "job.progress_updated", {"i": i})
            if i % 100 == 0:
                time.sleep(0.02)
        wait_for(lambda: client.stats.buffered >= 200, "the buffer to fill behind a full spill")
        stats = client.stats
        assert stats.dropped > 0 and stats.spilled > 0
        assert stats.spilled * 150 < 30_000  # the bound held
        server.start()
        wait_for(lambda: caught_up(client), "the spill to be replayed")
        stats = client.stats
        assert stats.emitted == 2001 == stats.sent + stats.dropped
        entries = raw_entries(server.url)
        kept = [e.data["i"] for e in of_type(entries, "job.progress_updated")]
        assert kept == sorted(kept) and len(kept) == stats.sent - 1  # oldest kept, in order
        (report,) = of_type(entries, DROPPED_EVENT_TYPE)
        assert report.data["count"] == stats.dropped
        assert report.data["reasons"] == {"buffer_full": stats.dropped}


def test_a_crash_between_redis_taking_a_batch_and_the_cursor_leaves_copies_readers_collapse(
    redis_proc: RedisProcess,
    make_client: Callable[..., EventClient],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fault injection: the cursor cannot be written once, right after Redis took a replayed
    batch (as if the process died there). That batch is replayed again: the stream holds it
    twice, with the same eventIds, and readers show it once."""
    real_consume = Spill.consume
    failures = []

    def consume_failing_once(self: Spill, read: Any, lines: int) -> None:
        if not failures and lines:
            failures.append(lines)
            raise OSError("disk gone for a moment")
        real_consume(self, read, lines)

    client = make_client(redis_proc.url, batch_size=100)
    client.event("worker.ready", worker_id="w-1")
    wait_for(lambda: client.stats.sent == 1, "the first event")
    redis_proc.stop()
    for i in range(250):
        client.job_event("job_d", "job.progress_updated", {"i": i})
    wait_for(lambda: client.stats.spilled == 250, "the events to go to the file")
    monkeypatch.setattr(Spill, "consume", consume_failing_once)
    redis_proc.start()
    wait_for(lambda: caught_up(client), "the spill to be replayed", timeout=90)
    progress = of_type(raw_entries(redis_proc.url), "job.progress_updated")
    assert failures == [100]
    assert len(progress) == 250 + 100
    assert [e.data["i"] for e in dedupe(progress)] == list(range(250))
    assert client.stats.sent == 251 and client.stats.spilled == 0


_CRASHING = """
import os, sys, time
from emp_tui.telemetry import EventClient
client = EventClient("machine", redis_url=sys.argv[1], spill_dir=sys.argv[2], max_backoff=0.2)
for i in range(500):
    client.machine_event("m-1", "machine.ready", {"i": i})
while client.stats.spilled < 500:
    time.sleep(0.01)
print("spilled", flush=True)
time.sleep(60)
"""


def test_files_left_by_a_crashed_service_are_replayed_by_the_next_emitter(
    redis_url: str, tmp_path: Path, make_client: Callable[..., EventClient]
) -> None:
    spill_dir = tmp_path / "spill"
    proc = subprocess.Popen(
        [sys.executable, "-c", _CRASHING, f"unix://{tmp_path}/nothing.sock", str(spill_dir)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline() == "spilled\n"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert list(spill_dir.glob("*.jsonl"))
    client = make_client(redis_url, service="machine")
    client.event("machine.starting", machine_id="m-2")  # starts the flusher: it adopts
    wait_for(lambda: caught_up(client) and not list(spill_dir.glob("*.jsonl")), "the replay")
    entries = raw_entries(redis_url)
    assert [e.data["i"] for e in of_type(entries, "machine.ready")] == list(range(500))
    assert ("half-open", "orphans") in circuit_notes(entries)
    assert client.stats.sent == 1  # the adopted events are nobody's in this client's stats
    assert not [p for p in spill_dir.iterdir() if p.name.startswith(f"spill-machine-{proc.pid}-")]


def test_without_a_spill_the_circuit_is_still_noted(redis_proc: RedisProcess) -> None:
    client = EventClient("worker", redis_url=redis_proc.url, max_backoff=0.2)
    try:
        client.event("worker.ready", worker_id="w-1")
        assert client.flush(5)
        redis_proc.stop()
        client.event("worker.idle", worker_id="w-1")
        wait_for(lambda: client.stats.circuit == "open", "the circuit to open")
        redis_proc.start()
        wait_for(lambda: caught_up(client), "the circuit to close")
        assert client.flush(5)
    finally:
        client.close(timeout=2)
    entries = raw_entries(redis_proc.url)
    assert [e.event_type for e in entries if not e.event_type.startswith("telemetry.")] == [
        "worker.idle"  # the restarted server kept nothing from before
    ]
    assert circuit_notes(entries) == [("open", "unreachable"), ("closed", "reconnected")]
    assert of_type(entries, CIRCUIT_EVENT_TYPE)[0].data["spill"] is False


def test_spill_settings_from_the_environment(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMP_TELEMETRY_SPILL_DIR", str(tmp_path / "s"))
    monkeypatch.setenv("EMP_TELEMETRY_SPILL_MAX_BYTES", "5M")
    monkeypatch.setenv("EMP_TELEMETRY_SPILL_MEMORY_SHARE", "0.8")
    client = EventClient("worker", redis_url=redis_url)
    try:
        assert client.enabled
        assert (client.spill_dir, client.spill_max_bytes, client.memory_share) == (
            tmp_path / "s",
            5 << 20,
            0.8,
        )
    finally:
        client.close(1)
    monkeypatch.setenv("EMP_TELEMETRY_SPILL_MEMORY_SHARE", "90%")  # not a share: the default
    monkeypatch.setenv("EMP_TELEMETRY_SPILL_MAX_BYTES", "lots")  # not a size: the default
    other = EventClient("worker", redis_url=redis_url)
    try:
        assert other.enabled and other.memory_share == 0.9
        assert other.spill_max_bytes == 100 << 20
    finally:
        other.close(1)
    assert "EMP_TELEMETRY_SPILL_DIR" in os.environ
