"""The jump dialog: Tab completes, a unique prefix opens its job, the likeliest jobs first."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from samples import sample_events
from textual.pilot import Pilot
from textual.widgets import Input, Label, OptionList

from emp_tui.app.app import EmpTuiApp
from emp_tui.app.screens.jump import JumpToJobScreen

from .conftest import offline_app


async def _dialog(pilot: Pilot[Any], app: EmpTuiApp) -> JumpToJobScreen:
    await pilot.press("j")
    await pilot.pause()
    assert isinstance(app.screen, JumpToJobScreen)
    return app.screen


def _listed(screen: JumpToJobScreen) -> list[str]:
    options = screen.query_one(OptionList)
    return [str(options.get_option_at_index(i).id) for i in range(options.option_count)]


async def test_tab_extends_a_shared_prefix_then_goes_to_the_list() -> None:
    app = offline_app()
    async with app.run_test(size=(160, 48)) as pilot:
        app.add_events(sample_events())
        app.drain_now()
        screen = await _dialog(pilot, app)
        field = screen.query_one(Input)
        field.value = "job-0"
        await pilot.press("tab")  # job-0000 ... job-0023 all go on with "0"
        await pilot.pause()
        assert field.value == "job-00" and field.has_focus
        field.value = "job-001"
        await pilot.press("tab")  # job-0010 ... job-0019: nothing to add, so the list
        await pilot.pause()
        assert field.value == "job-001"
        assert screen.focused is screen.query_one(OptionList)
        assert all(job.startswith("job-001") for job in _listed(screen)[:10])


async def test_a_unique_prefix_opens_its_job_and_a_shared_one_says_so() -> None:
    later = sample_events(1, start_ms=sample_events()[-1].timestamp + 1)
    renamed = [replace(e, job_id="job-unique-7f3a") if e.job_id else e for e in later]
    events = [*sample_events(), *renamed]
    app = offline_app()
    async with app.run_test(size=(160, 48)) as pilot:
        app.add_events(events)
        app.drain_now()
        assert "job-unique-7f3a" in app.store.job_ids()
        screen = await _dialog(pilot, app)
        field = screen.query_one(Input)
        field.value = "job-u"
        await pilot.press("tab")
        await pilot.pause()
        assert field.value == "job-unique-7f3a"
        field.value = "job-u"
        await pilot.press("enter")
        await pilot.pause()
        assert app.current_job == "job-unique-7f3a"
        # A prefix several jobs share: nothing opens, the dialog says how many.
        screen = await _dialog(pilot, app)
        field = screen.query_one(Input)
        field.value = "job-00"
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is screen and app.current_job == "job-unique-7f3a"
        hint = str(screen.query_one("#jump-hint", Label).render())
        assert "jobs start with job-00" in hint


async def test_candidates_are_ranked_selected_then_problems_then_recent() -> None:
    app = offline_app()
    async with app.run_test(size=(160, 48)) as pilot:
        app.add_events(sample_events())
        app.drain_now()
        await pilot.pause()
        problem_jobs = [row.job for row in app.problems.rows if row.job]
        await pilot.press("up")
        while app.stream_list.selected_event.job_id in (None, *problem_jobs):  # type: ignore[union-attr]
            await pilot.press("up")
        selected = app.stream_list.selected_event.job_id  # type: ignore[union-attr]
        screen = await _dialog(pilot, app)
        screen.query_one(Input).value = ""
        await pilot.pause()
        listed = _listed(screen)
        assert listed[0] == selected
        recent = app.store.job_ids()
        expected = list(dict.fromkeys([selected, *problem_jobs, *recent]))
        assert listed == expected[: len(listed)]
        assert problem_jobs, "the sample's problems name a job"
        assert listed.index(problem_jobs[0]) == 1
