"""The Problems view and "compare with usual" in the app: where they show, the keys (!, Enter,
o, v, u, Esc) and where focus goes, updates in place, and the pipeline's health from a real
redis-server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis
from samples import event, fleet_job, triage_sample
from textual.command import CommandPalette
from textual.pilot import Pilot

from emp_tui.app.app import EmpTuiApp
from emp_tui.app.screens.help import HelpScreen
from emp_tui.app.widgets.compare import CompareView
from emp_tui.app.widgets.problems import ProblemBanner, ProblemList, ProblemsView
from emp_tui.app.widgets.timeline import StepList
from emp_tui.config import AppConfig
from emp_tui.events import TelemetryEvent

from .conftest import offline_app, plain

EVENTS = triage_sample()


async def _until(pilot: Pilot[Any], check: Any, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"gave up waiting for {check}")
        await pilot.pause(0.05)


async def _loaded(pilot: Pilot[Any], events: list[TelemetryEvent] = EVENTS) -> EmpTuiApp:
    """The app with ``events``, once it has looked for problems among them."""
    app = pilot.app
    assert isinstance(app, EmpTuiApp)
    app.add_events(events)
    app.drain_now()
    await _until(pilot, lambda: app.problems.triage is not None)
    await pilot.pause()
    return app


def _shown(app: EmpTuiApp, selector: str) -> bool:
    return app.query_one(selector).region.area > 0


def _select(app: EmpTuiApp, prefix: str) -> None:
    state = app.problems
    state.select(next(i for i, row in enumerate(state.rows) if row.key.startswith(prefix)))
    app.query_one(ProblemsView).show()


@pytest.mark.parametrize("size", [(160, 48), (120, 40)])
async def test_the_first_screen_shows_the_problems_in_the_timelines_place(
    size: tuple[int, int],
) -> None:
    app = offline_app()
    async with app.run_test(size=size) as pilot:
        await _loaded(pilot)
        assert _shown(app, "#problems") and not _shown(app, "#timeline")
        assert _shown(app, "#stream") and isinstance(app.focused, type(app.stream_list))
        view = app.query_one(ProblemsView)
        assert view.border_title == "3 problems · 5 found: 2 errors, 2 warnings, 1 info"
        assert app.problems.rows[0].key.startswith("finding:stalled:job-0100")
        assert not _shown(app, "#problem-banner")  # the view itself says it


async def test_a_narrow_terminal_points_at_the_worst_problem() -> None:
    app = offline_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await _loaded(pilot)
        assert _shown(app, "#stream") and not _shown(app, "#problems")
        banner = app.query_one(ProblemBanner)
        assert _shown(app, "#problem-banner")
        assert plain(banner).startswith(" ✖ ! 1/5 stalled: job-0100 (comfyui) silent for 26s")
        tabs = plain(app.query_one("#pane-tabs"))  # type: ignore[arg-type]
        assert " 3 problems " in tabs and tabs.rstrip().endswith("! ✖2 ▲2 ●1")
        await pilot.press("exclamation_mark")
        await pilot.pause()
        assert _shown(app, "#problems") and not _shown(app, "#stream")
        assert isinstance(app.focused, ProblemList)
        assert not _shown(app, "#problem-banner")
        await pilot.press("1")
        await pilot.pause()
        await pilot.click("#problem-banner")
        await pilot.pause()
        assert _shown(app, "#problems") and isinstance(app.focused, ProblemList)


async def test_enter_on_a_job_finding_opens_it_and_esc_comes_back() -> None:
    app = offline_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await _loaded(pilot)
        await pilot.press("exclamation_mark")
        await pilot.pause()
        assert isinstance(app.focused, ProblemList)
        await pilot.press("enter")
        await pilot.pause()
        assert app.current_job == "job-0100" and app.slot == "timeline"
        assert _shown(app, "#timeline") and not _shown(app, "#problems")
        assert isinstance(app.focused, StepList)
        assert app.timeline is not None and app.timeline.job_id == "job-0100"
        await pilot.press("escape")
        await pilot.pause()
        assert app.current_job is None and app.slot == "problems"
        assert _shown(app, "#problems") and isinstance(app.focused, ProblemList)
        assert app.problems.selected is not None
        assert app.problems.selected.key.startswith("finding:stalled:job-0100")


async def test_enter_on_a_burst_applies_its_evidence_and_esc_restores_the_filter() -> None:
    app = offline_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await _loaded(pilot)
        app.apply_filter("service:worker")
        await pilot.press("exclamation_mark", "down")
        await pilot.pause()
        row = app.problems.selected
        assert row is not None and row.key.startswith("finding:failure-cluster:")
        await pilot.press("enter")
        await pilot.pause()
        assert app.state.query.text == row.evidence
        shown = app.shown_events()
        assert len(shown) == 8 and {e.job_id for e in shown} == {f"job-oa0{n}" for n in range(8)}
        assert app.focused is app.stream_list
        # The cursor on where the burst starts (the stream stops following to keep it).
        assert app.stream_list.selected_event == shown[0] and not app.stream_list.follow
        await pilot.press("escape")
        await pilot.pause()
        assert app.state.query.text == "service:worker"
        assert isinstance(app.focused, ProblemList)
        # `o` opens the job the burst names; `v` on a job finding filters by its evidence.
        await pilot.press("o")
        await pilot.pause()
        assert app.current_job == "job-oa07"
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("up", "v")
        await pilot.pause()
        assert app.state.query.text == "job:job-0100" and app.current_job is None


async def test_enter_on_a_lint_offender_filters_by_it() -> None:
    app = offline_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await _loaded(pilot)
        await pilot.press("exclamation_mark")
        _select(app, "offender:worker:job.claimed")
        await pilot.press("enter")
        await pilot.pause()
        assert app.state.query.text == "service:worker type:job.claimed -worker:*"
        assert {e.job_id for e in app.shown_events()} == {"job-0101", "job-0102", "job-0103"}


async def test_problems_over_an_open_job_and_back() -> None:
    app = offline_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await _loaded(pilot)
        app.open_job("job-0005")
        await pilot.pause()
        assert app.slot == "timeline" and _shown(app, "#timeline")
        await pilot.press("exclamation_mark")
        await pilot.pause()
        assert app.slot == "problems" and _shown(app, "#problems")
        assert isinstance(app.focused, ProblemList) and app.current_job == "job-0005"
        await pilot.press("escape")
        await pilot.pause()
        assert app.slot == "timeline" and isinstance(app.focused, StepList)
        assert app.current_job == "job-0005"


async def test_u_compares_the_open_job_with_usual_and_esc_returns() -> None:
    app = offline_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await _loaded(pilot)
        await pilot.press("u")
        await pilot.pause()
        assert app.slot == "problems"  # no job open: nothing to compare
        app.open_job("job-0005")
        await pilot.pause()
        await pilot.press("u")
        await pilot.pause()
        view = app.query_one(CompareView)
        assert app.slot == "compare" and _shown(app, "#compare") and not _shown(app, "#timeline")
        assert app.focused is view
        assert view.comparison is not None and view.comparison.job_id == "job-0005"
        assert [s.to_type for s in view.comparison.slower_steps] == ["job.claimed"]
        assert view.border_title == "3 compare · job-0005"
        await pilot.press("escape")
        await pilot.pause()
        assert app.slot == "timeline" and isinstance(app.focused, StepList)
        await pilot.press("u", "u")
        await pilot.pause()
        assert app.slot == "timeline" and app.current_job == "job-0005"


async def test_the_cursor_stays_on_its_finding_while_events_arrive() -> None:
    app = offline_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await _loaded(pilot)
        app.problems_pacer.interval = 0.0
        await pilot.press("exclamation_mark", "down")
        key = app.problems.selected.key  # type: ignore[union-attr]
        before = app.problems.triage
        late = fleet_job(99, EVENTS[-1].timestamp + 1000, seq=90_000, fail=True)
        app.add_events(late)
        app.drain_now()
        await _until(pilot, lambda: app.problems.triage is not before)
        assert app.problems.triage is not None and app.problems.triage.events == len(EVENTS) + 9
        assert app.problems.selected is not None and app.problems.selected.key == key


async def test_help_and_palette_list_the_new_keys() -> None:
    app = offline_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await _loaded(pilot)
        sections = dict(app.key_sections())
        anywhere = {row[2]: row[0] for row in sections["Anywhere"]}
        assert anywhere["problems"] == "!" and anywhere["compare"] == "u"
        problem_keys = {row[2] for row in sections["Problems"]}
        assert {"problems.open", "problems.open_job", "problems.evidence"} <= problem_keys
        names = [name for name, _, _ in app.palette_commands()]
        assert "Problems" in names and "Compare with usual" in names
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)


async def test_the_keymap_rebinds_the_problems_key() -> None:
    app = offline_app(config=AppConfig(keymap={"problems": "P"}))
    async with app.run_test(size=(160, 48)) as pilot:
        await _loaded(pilot)
        await pilot.press("P")
        await pilot.pause()
        assert isinstance(app.focused, ProblemList)


@pytest.mark.redis
async def test_collector_health_and_trim_loss_from_a_real_redis(
    rclient: redis.Redis, redis_url: str
) -> None:
    """Live: no collector at first (the stream is unread for good), then one that lost
    events to MAXLEN trimming. The view updates in place."""
    from emp_tui.app import make_app

    pipe = rclient.pipeline()
    for made in EVENTS:
        pipe.xadd("emp:events", made.encode())  # type: ignore[arg-type]
    pipe.execute()
    app = make_app(redis_url=redis_url, config=AppConfig())
    app.problems_pacer.interval = 0.2
    async with app.run_test(size=(160, 48)) as pilot:
        kinds = lambda: {f.kind for f in app.problems.findings}  # noqa: E731
        await _until(pilot, lambda: "collector-absent" in kinds())
        assert len(app.store) == len(EVENTS)
        rclient.hset(
            "emp:collector:c-1",
            mapping={"consumer": "c-1", "state": "running", "lag": "0", "trimmed_lost": "77"},
        )
        rclient.expire("emp:collector:c-1", 60)
        await _until(pilot, lambda: "trim-loss" in kinds(), timeout=30)
        assert "collector-absent" not in kinds()
        (lost,) = [f for f in app.problems.findings if f.kind == "trim-loss"]
        assert "77" in lost.title
        rows = [row.key for row in app.problems.rows]
        assert any(key.startswith("finding:trim-loss:") for key in rows)


async def test_evidence_that_matches_nothing_at_hand_says_so() -> None:
    from emp_tui.app.messages import ProblemChosen
    from emp_tui.app.triage import ApplyFilter

    app = offline_app()
    said: list[str] = []
    notify = app.notify

    def recording(message: str, **kwargs: Any) -> None:
        said.append(message)
        notify(message, **kwargs)

    app.notify = recording  # type: ignore[method-assign]
    async with app.run_test(size=(160, 48)) as pilot:
        await _loaded(pilot)
        await pilot.press("exclamation_mark")
        app.post_message(ProblemChosen(ApplyFilter("machine:gone type:machine.*", 0)))
        await _until(pilot, lambda: app.state.query.text == "machine:gone type:machine.*")
        assert not app.state.rows
        assert any(m.startswith("No event at hand matches its evidence") for m in said), said
        assert "o opens job-0100" in said[-1]  # the selected row's job
        await pilot.press("escape")
        await pilot.pause()
        assert app.state.query.text == "" and isinstance(app.focused, ProblemList)


async def test_esc_comes_back_to_the_row_that_was_chosen_and_keys_are_not_overtaken() -> None:
    """Enter on the worst problem; meanwhile a worse one appears: Esc comes back to the row
    that was opened, not to the new top. While the cursor moves, new findings wait."""
    app = offline_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await _loaded(pilot)
        app.problems_pacer.interval = 0.0
        await pilot.press("exclamation_mark", "enter")
        await pilot.pause()
        assert app.current_job == "job-0100"
        before = app.problems.triage
        # Worse: a service no other machine runs fails to start.
        data = {"serviceName": "flux", "error": "exit 1"}
        at = EVENTS[-1].timestamp + 1000
        failed = event(95_000, at, "machine", "pm2.service_failed", data, machine_id="machine-7")
        app.add_events([failed])
        app.drain_now()
        await _until(pilot, lambda: app.problems.triage is not before)
        assert app.problems.rows[0].key.startswith("finding:service-failed:")
        await pilot.press("escape")
        await pilot.pause()
        assert app.problems.selected is not None
        assert app.problems.selected.key.startswith("finding:stalled:job-0100")
        # Moving through the rows holds the next findings back for a moment.
        await pilot.press("down")
        key = app.problems.selected.key
        held = app.problems.triage
        app.add_events(fleet_job(78, EVENTS[-1].timestamp + 9000, seq=96_000)[:3])
        app.drain_now()
        assert app.problems_pacer.running  # a search started
        await _until(pilot, lambda: not app.problems_pacer.running)  # and its answer came
        assert app.problems.triage is held and app.problems.selected.key == key
        await _until(pilot, lambda: app.problems.triage is not held)  # shown a moment later
