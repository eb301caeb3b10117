"""Snapshots of each screen at 160x48 and 80x24, from the fixed sample data and clock.

Regenerate with `pytest tests/app/test_snapshots.py --snapshot-update`, then look at every
changed SVG before committing it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from samples import sample_events, triage_sample
from textual.pilot import Pilot

from emp_tui.app import make_app
from emp_tui.app.app import EmpTuiApp
from emp_tui.config import AppConfig

from .conftest import FIXED_NOW, offline_app

SIZES = [pytest.param((160, 48), id="160x48"), pytest.param((80, 24), id="80x24")]
Steps = Callable[[Pilot[Any]], Awaitable[None]]


async def _problems_found(pilot: Pilot[Any]) -> None:
    """Wait for the problem finder's first answer (it runs in a thread)."""
    app = pilot.app
    assert isinstance(app, EmpTuiApp)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while app.problems.triage is None:
        assert loop.time() < deadline, "no problems were looked for"
        await pilot.pause(0.05)


def _loaded(then: Steps | None = None, *, events: Any = sample_events) -> Steps:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, EmpTuiApp)
        app.add_events(events())
        app.drain_now()
        await _problems_found(pilot)
        await pilot.pause()
        if then is not None:
            await then(pilot)
        await pilot.pause()

    return run_before


async def _select_a_few(pilot: Pilot[Any]) -> None:
    await pilot.press("up", "up", "up")


async def _open_gap_job(pilot: Pilot[Any]) -> None:
    app = pilot.app
    assert isinstance(app, EmpTuiApp)
    app.open_job("job-0005")
    await pilot.pause()
    await pilot.press("3", "n")


async def _graph_all(pilot: Pilot[Any]) -> None:
    app = pilot.app
    assert isinstance(app, EmpTuiApp)
    app.open_job("job-0009")
    await pilot.pause()
    await pilot.press("4", "g")


async def _export(pilot: Pilot[Any]) -> None:
    await pilot.press("slash", *"service:worker", "enter", "e")


async def _help(pilot: Pilot[Any]) -> None:
    await pilot.press("question_mark")


async def _problems(pilot: Pilot[Any]) -> None:
    await pilot.press("exclamation_mark", "down")


async def _compare(pilot: Pilot[Any]) -> None:
    app = pilot.app
    assert isinstance(app, EmpTuiApp)
    app.open_job("job-0005")
    await pilot.pause()
    await pilot.press("u")


@pytest.mark.parametrize("size", SIZES)
def test_main_screen(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(offline_app(), terminal_size=size, run_before=_loaded(_select_a_few))


@pytest.mark.parametrize("size", SIZES)
def test_timeline(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(offline_app(), terminal_size=size, run_before=_loaded(_open_gap_job))


@pytest.mark.parametrize("size", SIZES)
def test_graph_all_jobs(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(offline_app(), terminal_size=size, run_before=_loaded(_graph_all))


@pytest.mark.parametrize("size", SIZES)
def test_export_dialog(snap_compare: Any, size: tuple[int, int]) -> None:
    # A fixed export directory: the dialog shows absolute paths.
    app = offline_app(config=AppConfig(export_dir="/srv/emp-exports"))
    assert snap_compare(app, terminal_size=size, run_before=_loaded(_export))


@pytest.mark.parametrize("size", SIZES)
def test_help(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(offline_app(), terminal_size=size, run_before=_loaded(_help))


@pytest.mark.parametrize("size", SIZES)
def test_problems(snap_compare: Any, size: tuple[int, int]) -> None:
    """The Problems view, its second finding (a failure burst) selected: the findings, the
    event standards, the strip that says all of the selected one."""
    steps = _loaded(_problems, events=triage_sample)
    assert snap_compare(offline_app(), terminal_size=size, run_before=steps)


@pytest.mark.parametrize("size", SIZES)
def test_compare_with_usual(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(offline_app(), terminal_size=size, run_before=_loaded(_compare))


@pytest.mark.parametrize("size", SIZES)
def test_disconnected(snap_compare: Any, size: tuple[int, int]) -> None:
    app = make_app(
        redis_url="unix:///nonexistent/emp-tui-tests/redis.sock",
        config=AppConfig(),
        clock=lambda: FIXED_NOW,
    )

    async def run_before(pilot: Pilot[Any]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        while app.status.state != "reconnecting":
            assert loop.time() < deadline, "the app never said it was reconnecting"
            await pilot.pause(0.05)
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)
