"""The poison corpus (tests/poison.py) in the app, against a real redis-server: through the
backfill and through the live tail, every entry shown (the poison flagged), no neighbour
lost, and the app still running after showing each one in the detail pane and the job's
timeline (all but the 5 MB entries, which the detail pane takes over half a minute to lay
out: a matter of the detail view, not of reading)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis
from poison import (
    CORRUPT_LINES,
    HUGE,
    JOB,
    POISON_LINES,
    VALID_BUT_ODD,
    VALID_BUT_ODD_LINES,
    Corpus,
    write_corpus,
    write_poison_log,
)
from textual.pilot import Pilot

from emp_tui.app import make_app
from emp_tui.app.app import EmpTuiApp
from emp_tui.config import AppConfig
from emp_tui.events import TelemetryEvent

from .conftest import FIXED_NOW

pytestmark = pytest.mark.redis


def _app(url: str) -> EmpTuiApp:
    return make_app(redis_url=url, config=AppConfig(log_dir=""), clock=lambda: FIXED_NOW)


def _shown(app: EmpTuiApp) -> dict[str, TelemetryEvent]:
    return {event.id: event for event in app.shown_events() if event.id is not None}


async def _until(pilot: Pilot[int], check: object, timeout: float = 60.0) -> None:
    """Let the app run until ``check()`` holds (a generous limit: the machine is shared)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError(f"gave up waiting for {check}")
        await pilot.pause(0.05)


def _assert_shown(app: EmpTuiApp, corpus: Corpus) -> None:
    shown = _shown(app)
    assert [entry_id for entry_id in shown if entry_id in set(corpus.ids)] == corpus.ids
    for name, entry_id in corpus.poison.items():
        assert (shown[entry_id].malformed is None) == (name in VALID_BUT_ODD), name
    for n, entry_id in enumerate(corpus.good):
        assert shown[entry_id].malformed is None and shown[entry_id].data == {"n": n}


async def _look_at_each(app: EmpTuiApp, pilot: Pilot[int], count: int) -> None:
    """Select every event in turn (the detail pane renders it), then open its job: no error
    beyond what was said before."""
    said = app.last_error
    app.stream_list.focus()
    await pilot.press("home")
    for _ in range(count):
        await pilot.press("down")
        await pilot.pause()
    await pilot.press("enter")
    await pilot.pause()
    assert app.is_running and app.last_error == said, app.last_error


async def test_backfill_shows_every_poison_entry(redis_url: str) -> None:
    with redis.Redis.from_url(redis_url) as client:
        corpus = write_corpus(client)
    app = _app(redis_url)
    async with app.run_test(size=(160, 48)) as pilot:
        await _until(pilot, lambda: len(_shown(app)) >= len(corpus.ids))
        _assert_shown(app, corpus)
        await _until(pilot, lambda: app.status.state == "connected")
        assert app.is_running and app.last_error is None, app.last_error


async def test_live_tail_shows_every_poison_entry(redis_url: str) -> None:
    app = _app(redis_url)
    async with app.run_test(size=(160, 48)) as pilot:
        await _until(pilot, lambda: app.status.state == "connected")
        with redis.Redis.from_url(redis_url) as client:
            corpus = await asyncio.to_thread(write_corpus, client)
        await _until(pilot, lambda: len(_shown(app)) >= len(corpus.ids))
        _assert_shown(app, corpus)
        assert app.status.state == "connected"
        assert app.is_running and app.last_error is None, app.last_error


async def test_each_poison_entry_in_the_detail_pane_and_its_job(redis_url: str) -> None:
    app = _app(redis_url)
    async with app.run_test(size=(160, 48)) as pilot:
        await _until(pilot, lambda: app.status.state == "connected")
        with redis.Redis.from_url(redis_url) as client:
            corpus = await asyncio.to_thread(write_corpus, client, leave_out=HUGE)
        await _until(pilot, lambda: len(_shown(app)) >= len(corpus.ids))
        await _look_at_each(app, pilot, len(corpus.ids))
        assert app.status.state == "connected"
        assert JOB in {event.job_id for event in app.shown_events()}


async def test_poison_lines_in_files_are_shown(tmp_path: Path) -> None:
    log = tmp_path / "events.log"
    good_ids = write_poison_log(log)
    app = make_app(files=[log], config=AppConfig(), clock=lambda: FIXED_NOW)
    async with app.run_test(size=(160, 48)) as pilot:
        expected = len(good_ids) + len(POISON_LINES)
        await _until(pilot, lambda: len(app.shown_events()) >= expected)
        shown = app.shown_events()
        assert len(shown) == expected
        assert [e.id for e in shown if e.id in set(good_ids)] == good_ids
        flagged = [e for e in shown if e.malformed]
        assert len(flagged) == len(POISON_LINES) - len(VALID_BUT_ODD_LINES)
        await _until(pilot, lambda: app.last_error is not None)
        assert f"skipped {len(CORRUPT_LINES)} corrupt line(s)" in (app.last_error or "")
        await _look_at_each(app, pilot, expected)
