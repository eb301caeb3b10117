"""The simulation through a Redis restart, with a real redis-server that the test kills and
starts again (nothing persisted: it comes back empty). The run waits for Redis, writes its
queue back, sends what its emitters buffered meanwhile, and emits exactly what a run without
the restart emits."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
from redisproc import RedisProcess
from simhelp import START_MS, STREAM, key, read_events

from emp_tui.demo.model import FaultRates, Record, SimConfig
from emp_tui.demo.scenarios import apply_scenario
from emp_tui.demo.sim import Simulation
from emp_tui.events import TelemetryEvent


def simulation(url: str, scenario: str = "mixed", **options: Any) -> Simulation:
    config = SimConfig(seed=4, faults=FaultRates())
    sim = Simulation(url, STREAM, config, start_ms=START_MS, record=True, **options)
    apply_scenario(sim, scenario)
    return sim


def uninterrupted(url: str, seconds: int) -> list[Record]:
    sim = simulation(url)
    sim.run(until_ms=START_MS + seconds * 1000)
    sim.close(timeout=10)
    assert sim.error is None and sim.record
    return sim.record


def wait_for(condition: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.002)


def by_service(keys: list[tuple[str, str, str | None, bytes]]) -> dict[str, list[tuple]]:
    found: dict[str, list[tuple]] = {}
    for k in keys:
        found.setdefault(k[0], []).append(k)
    return found


def simulated(events: list[TelemetryEvent]) -> list[TelemetryEvent]:
    """The simulated services' events, without the emitters' own (``telemetry.*``)."""
    return [e for e in events if not e.event_type.startswith("telemetry.")]


def record_keys(records: list[Record]) -> list[tuple[str, str, str | None, bytes]]:
    return [
        (service, kind, job, orjson.dumps(data, option=orjson.OPT_SORT_KEYS))
        for service, kind, job, data in records
    ]


def test_a_restart_between_two_runs_loses_nothing(redis_proc: RedisProcess) -> None:
    sim = simulation(redis_proc.url)
    sim.run(until_ms=START_MS + 60_000)
    assert sim.flush(10)
    sent = sim.events
    redis_proc.stop(kill=True)
    result: list[str] = []
    runner = threading.Thread(
        target=lambda: result.append(sim.run(until_ms=START_MS + 150_000)), daemon=True
    )
    runner.start()
    wait_for(lambda: sim.redis_problem, "the run to notice that Redis is gone")
    assert runner.is_alive()  # waiting, not failing
    redis_proc.start()
    runner.join(timeout=120)
    assert result == ["until"]
    assert sim.error is None and sim.redis_problem is None and sim.reconnects >= 1
    # The queue came back: the job nobody can take is still waiting, the job whose worker
    # died is still claimed, and the run's queue keys are there while it lasts.
    with redis_proc.client(decode_responses=True) as client:
        never = sim.story_jobs["never-claimed"]
        crashed = sim.story_jobs["worker-crash"]
        assert client.zscore(f"{sim.queue.ns}:queue:flux-pro", never) is not None
        assert client.hget(sim.queue.job_key(crashed), "status") == "claimed"
        assert client.sismember(f"{sim.queue.ns}:active", crashed)
    sim.close(timeout=15)
    assert sim.unsent == 0
    # Everything emitted after the restart's loss reached the new stream, in order (beside
    # the emitters' own notes of the outage, telemetry.circuit_changed).
    events = simulated(read_events(redis_proc.url))
    assert by_service([key(e) for e in events]) == by_service(
        record_keys((sim.record or [])[sent:])
    )
    # The monitor, reading the restored queue, still sees the job the crash left behind.
    checks = [
        e for e in events if e.event_type == "health_check.performed" and e.service == "monitor"
    ]
    assert any(crashed in e.data["stalledJobs"] for e in checks)
    # And the run is the one it would have been without the restart.
    redis_proc.client().flushall()
    assert sim.record == uninterrupted(redis_proc.url, 150)


def test_redis_killed_mid_run_changes_nothing_the_run_emits(redis_proc: RedisProcess) -> None:
    sim = simulation(redis_proc.url)
    result: list[str] = []
    runner = threading.Thread(
        target=lambda: result.append(sim.run(until_ms=START_MS + 240_000)), daemon=True
    )
    runner.start()
    wait_for(lambda: sim.events > 1_500, "the run to get going")
    redis_proc.stop(kill=True)
    wait_for(lambda: sim.redis_problem or not runner.is_alive(), "the run to notice")
    redis_proc.start()
    runner.join(timeout=120)
    assert result == ["until"]
    assert sim.error is None and sim.reconnects >= 1
    sim.close(timeout=15)
    assert sim.unsent == 0
    # What was written before the kill died with the server; for each service, the stream
    # holds the rest of what it emitted: a suffix of its record, nothing missing after it.
    stream = by_service([key(e) for e in simulated(read_events(redis_proc.url))])
    emitted = by_service(record_keys(sim.record or []))
    assert set(stream) <= set(emitted)
    for service, keys in emitted.items():
        kept = stream.get(service, [])
        assert kept == keys[len(keys) - len(kept) :], service
    assert sum(map(len, stream.values())) < len(sim.record or [])
    redis_proc.client().flushall()
    assert sim.record == uninterrupted(redis_proc.url, 240)


def test_a_run_gives_up_on_redis_after_its_patience(redis_proc: RedisProcess) -> None:
    sim = simulation(redis_proc.url, patience_s=0.3)
    sim.run(until_ms=START_MS + 30_000)
    redis_proc.stop(kill=True)
    assert sim.run(until_ms=START_MS + 60_000) == "error"
    assert sim.error is not None and sim.error.startswith(f"Redis at {redis_proc.url}")
    sim.close(timeout=0.5)


def test_a_run_waiting_for_redis_can_be_stopped(redis_proc: RedisProcess) -> None:
    sim = simulation(redis_proc.url)
    sim.run(until_ms=START_MS + 30_000)
    redis_proc.stop(kill=True)
    stop = threading.Event()
    result: list[str] = []
    runner = threading.Thread(
        target=lambda: result.append(sim.run(until_ms=START_MS + 60_000, stop=stop)),
        daemon=True,
    )
    runner.start()
    wait_for(lambda: sim.redis_problem, "the run to notice that Redis is gone")
    stop.set()
    runner.join(timeout=30)
    assert result == ["stopped"]
    sim.close(timeout=0.5)


def test_emp_tui_sim_survives_a_redis_restart(redis_proc: RedisProcess) -> None:
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "emp_tui.demo", "sim", "--redis-url", redis_proc.url),
            *("--speed", "10", "--duration", "150", "--seed", "6", "--scenario", "mixed"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        summary = re.compile(r"(\d+) events \(")
        for line in proc.stdout:
            lines.append(line)
            found = summary.search(line)
            if found and int(found[1]) > 0:
                break
        redis_proc.stop(kill=True)
        for line in proc.stdout:
            lines.append(line)
            if "waiting for Redis" in line:
                break
        redis_proc.start()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines.append(out)
    output = "".join(lines)
    assert proc.returncode == 0, err
    assert "Redis reconnected" in output
    assert "done:" in output
    assert "could not be sent" not in err and "Traceback" not in err
    events = read_events(redis_proc.url)
    # The services went on after the restart: the stream holds the rest of the run.
    assert max(e.timestamp for e in events) - min(e.timestamp for e in events) > 60_000
    assert any(e.event_type == "job.completed" for e in events)
