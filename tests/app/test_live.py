"""The live reader against a real redis-server: the time range loaded, the tail, and Redis
going away."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis
from redisproc import RedisProcess
from samples import sample_events
from textual.pilot import Pilot

from emp_tui.app import make_app
from emp_tui.app.app import EmpTuiApp
from emp_tui.config import AppConfig
from emp_tui.events import TelemetryEvent
from emp_tui.export import write_events
from emp_tui.topology import trim_policy_key

from .conftest import FIXED_NOW

pytestmark = pytest.mark.redis


def _xadd(client: redis.Redis, events: list[TelemetryEvent], stream: str = "emp:events") -> None:
    pipe = client.pipeline()
    for event in events:
        pipe.xadd(stream, event.encode())  # type: ignore[arg-type]
    pipe.execute()


async def _until(pilot: Pilot[int], check: object, timeout: float = 15.0) -> None:
    """Let the app run until ``check()`` holds (a generous limit: the machine is shared)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError(f"gave up waiting for {check}")
        await pilot.pause(0.05)


def _live_app(url: str, **kwargs: object) -> EmpTuiApp:
    kwargs.setdefault("config", AppConfig(log_dir=""))
    return make_app(redis_url=url, clock=lambda: FIXED_NOW, **kwargs)  # type: ignore[arg-type]


async def test_loads_the_range_then_tails(rclient: redis.Redis, redis_url: str) -> None:
    events = sample_events()
    _xadd(rclient, events[:120])
    app = _live_app(redis_url)
    async with app.run_test(size=(160, 48)) as pilot:
        await _until(pilot, lambda: len(app.store) == 120 and not app.state.loading)
        shown = app.shown_events()
        assert [e.event_type for e in shown] == [e.event_type for e in events[:120]]
        await _until(pilot, lambda: app.status.state == "connected")
        status = app.query_one("#status").render().plain  # type: ignore[attr-defined]
        assert "120 loaded" in status and "stream holds 120 since" in status
        _xadd(rclient, events[120:])
        await _until(pilot, lambda: len(app.store) == len(events))
        newest = app.shown_events()[-1]
        assert newest.event_type == events[-1].event_type
        assert app.stream_list.follow


async def test_a_range_past_the_cap_keeps_the_newest_and_says_so(
    rclient: redis.Redis, redis_url: str
) -> None:
    events = sample_events()
    _xadd(rclient, events[:120])
    app = _live_app(redis_url, config=AppConfig(log_dir="", buffer_size=50))
    async with app.run_test(size=(200, 48)) as pilot:
        await _until(pilot, lambda: len(app.store) == 50 and not app.state.loading)
        assert [e.event_type for e in app.shown_events()] == [e.event_type for e in events[70:120]]
        assert app.state.left_out is not None and app.state.left_out > 0
        status = app.query_one("#status").render().plain  # type: ignore[attr-defined]
        assert "cap 50:" in status and "older left out" in status


async def test_survives_redis_restart_and_resumes_the_tail(redis_proc: RedisProcess) -> None:
    redis_proc.start()
    client = redis_proc.client()
    events = sample_events()
    _xadd(client, events[:10])
    app = _live_app(redis_proc.url)
    async with app.run_test(size=(160, 48)) as pilot:
        await _until(pilot, lambda: app.status.state == "connected" and len(app.store) == 10)
        client.close()
        redis_proc.stop()
        await _until(pilot, lambda: app.status.state == "reconnecting")
        assert app.status.error
        status_text = app.query_one("#status").render().plain  # type: ignore[attr-defined]
        assert "reconnecting" in status_text
        redis_proc.start()
        client = redis_proc.client()
        _xadd(client, events[10:30])
        await _until(pilot, lambda: app.status.state == "connected", timeout=30)
        await _until(pilot, lambda: len(app.store) == 30, timeout=30)
        assert app.is_running
        client.close()


async def test_unreachable_redis_opens_with_a_clear_status(tmp_path: Path) -> None:
    app = _live_app(f"unix://{tmp_path}/nothing-here.sock")
    async with app.run_test(size=(160, 48)) as pilot:
        await _until(pilot, lambda: app.status.state == "reconnecting")
        assert "cannot reach Redis" in (app.status.error or "")
        assert app.is_running


async def test_files_open_offline_and_corrupt_lines_are_counted(tmp_path: Path) -> None:
    events = sample_events()
    path = tmp_path / "events.log"
    write_events(events, path, "jsonl")
    with path.open("ab") as out:
        out.write(b"this is not json\n")
    app = make_app(files=[path], config=AppConfig(), clock=lambda: FIXED_NOW)
    async with app.run_test(size=(160, 48)) as pilot:
        await _until(pilot, lambda: len(app.store) == len(events))
        await _until(pilot, lambda: app.status.malformed == 1)
        assert app.status.state == "offline"
        assert app.redis_url is None


async def test_missing_file_is_one_message_not_a_crash(tmp_path: Path) -> None:
    app = make_app(files=[tmp_path / "missing.log"], config=AppConfig())
    async with app.run_test(size=(160, 48)) as pilot:
        await _until(pilot, lambda: app.last_error is not None)
        assert app.is_running
        assert "missing.log" in (app.last_error or "")


async def test_collector_lag_shows_in_the_status_bar(rclient: redis.Redis, redis_url: str) -> None:
    rclient.hset(
        "emp:collector:c-1",
        mapping={"consumer": "c-1", "state": "running", "lag": "42", "updated_ms": "1"},
    )
    app = _live_app(redis_url)
    async with app.run_test(size=(160, 48)) as pilot:
        await _until(pilot, lambda: app.status.collector_lag == 42)
        text = app.query_one("#status").render().plain  # type: ignore[attr-defined]
        assert "collector lag 42" in text


async def test_a_failing_reader_is_reported_and_restarted_where_it_stopped(
    rclient: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection: the tail raises something no one expected, once."""
    import emp_tui.app.app as app_module
    from emp_tui.sources import RedisTail

    failures = []

    class FailingOnce(RedisTail):
        async def __anext__(self) -> list[TelemetryEvent]:
            batch = await super().__anext__()
            if batch and not failures:
                failures.append(batch)
                raise RuntimeError("unexpected")
            return batch

    monkeypatch.setattr(app_module, "RedisTail", FailingOnce)
    events = sample_events()
    app = _live_app(redis_url)
    async with app.run_test(size=(160, 48)) as pilot:
        await _until(pilot, lambda: app.status.state == "connected")
        _xadd(rclient, events[:5])
        await _until(pilot, lambda: app.last_error is not None)
        assert "RuntimeError: unexpected" in (app.last_error or "")
        assert app.status.state == "reconnecting"
        _xadd(rclient, events[5:12])
        # Restarted from the last ID it delivered: the failed batch is read again, nothing lost.
        await _until(pilot, lambda: len(app.store) == 12, timeout=30)
        assert app.status.state == "connected"


async def test_the_tail_follows_the_shards_the_emitters_move_to(
    rclient: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Services reconfigured with EMP_EVENTS_SHARDS=4 while the app tails the one key: their
    record says so, and the tail follows the four shard keys too, from where it began (what
    was written there before it noticed comes as well)."""
    import emp_tui.app.app as app_module
    from emp_tui.telemetry import EventClient

    monkeypatch.setattr(app_module, "HEALTH_SECONDS", 0.2)
    monkeypatch.delenv("EMP_EVENTS_SHARDS", raising=False)
    events = sample_events()
    app = _live_app(redis_url)
    async with app.run_test(size=(160, 48)) as pilot:
        await _until(pilot, lambda: app.status.state == "connected")
        _xadd(rclient, events[:5])
        await _until(pilot, lambda: len(app.store) == 5)
        assert app.shards == 1
        client = EventClient("worker", redis_url=redis_url, shards=4, enabled=True)
        try:
            for n in range(24):
                client.event("job.created", job_id=f"job_{n}")
            assert await asyncio.to_thread(client.flush, 10)
        finally:
            await asyncio.to_thread(client.close)
        await _until(pilot, lambda: app.shards == 4)
        await _until(pilot, lambda: len(app.store) >= 5 + 24)
        jobs = {e.job_id for e in app.store if e.event_type == "job.created"}
        assert {f"job_{n}" for n in range(24)} <= jobs
        assert len({e.event_id for e in app.store if e.event_id}) == len(
            [e for e in app.store if e.event_id]
        )  # none twice
        assert app.status.source.endswith(" emp:events (4 shards)")  # the status bar's
        # A rolling change: a service not yet reconfigured still writes the one key, and
        # records its count again. The tail keeps that key, and stays on the four.
        rclient.hset(trim_policy_key("emp:events"), "shards", "1")
        _xadd(rclient, events[5:8])
        await _until(pilot, lambda: len(app.store) == 5 + 24 + 3)
        await pilot.pause(0.5)
        assert app.shards == 4
        # A tail started again (as after a failure) follows the same five keys.
        old = app._tail
        app.live_reader(redis_url, "emp:events", app._last_redis_id)
        await _until(pilot, lambda: app._tail not in (None, old))
        assert app._tail is not None and len(app._tail.keys) == 5
        _xadd(rclient, events[8:10])
        _xadd(rclient, events[10:11], stream="emp:events:{2}")
        await _until(pilot, lambda: len(app.store) == 5 + 24 + 3 + 3)


async def test_while_redis_does_not_answer_now_stays_where_it_stopped(
    redis_proc: RedisProcess,
) -> None:
    """Redis away for ten minutes on the app's clock: a job running when it went away is
    not stalled for those ten minutes, nor is the platform silent; "now" moves on again
    when Redis answers."""
    from samples import fleet_job

    redis_proc.start()
    client = redis_proc.client()
    clock = [FIXED_NOW]
    start = int(FIXED_NOW * 1000) - 5_000
    running = fleet_job(1, start)[:5]  # claimed and working, not finished
    _xadd(client, running)
    app = make_app(redis_url=redis_proc.url, clock=lambda: clock[0], config=AppConfig(log_dir=""))
    async with app.run_test(size=(160, 48)) as pilot:
        await _until(pilot, lambda: app.status.state == "connected" and len(app.store) == 5)
        client.close()
        redis_proc.stop()
        await _until(pilot, lambda: app.status.state == "reconnecting")
        blind = app.state.blind_since_ms
        assert blind is not None and blind <= int(clock[0] * 1000)
        clock[0] += 600.0
        assert app.state.now_ms() == blind
        app.problems_pacer.changed()
        await _until(
            pilot, lambda: app.problems.triage is not None and app.problems.triage.now_ms == blind
        )
        found = app.problems.triage
        assert found is not None
        assert not [f for f in found.findings if f.kind in ("stalled", "silent-service")]
        redis_proc.start()
        await _until(pilot, lambda: app.status.state == "connected", timeout=30)
        assert app.state.blind_since_ms is None
        assert app.state.now_ms() == int(clock[0] * 1000)
