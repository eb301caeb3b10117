"""Jump to a job by every route, back, export, copy, help, the palette and the keymap."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from samples import sample_events
from textual.command import CommandList, CommandPalette
from textual.widgets import Input, OptionList, RadioButton

from emp_tui.app.screens.confirm import ConfirmScreen
from emp_tui.app.screens.export import ExportScreen
from emp_tui.app.screens.help import HelpScreen
from emp_tui.app.screens.jump import JumpToJobScreen
from emp_tui.app.widgets.graph import HandoffGraph
from emp_tui.app.widgets.timeline import StepList, TimelineView
from emp_tui.config import AppConfig
from emp_tui.events import TelemetryEvent
from emp_tui.sources import read_file

from .conftest import offline_app


async def _loaded(pilot, app, events=None) -> list[TelemetryEvent]:  # type: ignore[no-untyped-def]
    events = events if events is not None else sample_events()
    app.add_events(events)
    app.drain_now()
    await pilot.pause()
    return events


def _index_of(app, predicate) -> int:  # type: ignore[no-untyped-def]
    return next(i for i, e in enumerate(app.shown_events()) if predicate(e))


async def test_enter_on_an_event_opens_its_job_timeline() -> None:
    app = offline_app()
    async with app.run_test(size=(160, 48)) as pilot:
        events = await _loaded(pilot, app)
        await pilot.press("up")
        while app.stream_list.selected_event.job_id is None:  # type: ignore[union-attr]
            await pilot.press("up")
        job = app.stream_list.selected_event.job_id  # type: ignore[union-attr]
        await pilot.press("enter")
        await pilot.pause()
        assert app.current_job == job
        assert app.timeline is not None and app.timeline.job_id == job
        # Every event of that job in the sample, in time order, and nothing else: the job's
        # nine steps, from its creation to its webhook.
        expected = sorted((e for e in events if e.job_id == job), key=lambda e: e.timestamp)
        assert [step.event for step in app.timeline.steps] == expected
        assert [step.event.event_type for step in app.timeline.steps][::8] == [
            "job.created",
            "webhook.delivered",
        ]


async def test_j_opens_a_dialog_that_completes_known_job_ids() -> None:
    app = offline_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await _loaded(pilot, app)
        await pilot.press("j")
        await pilot.pause()
        assert isinstance(app.screen, JumpToJobScreen)
        await pilot.press(*"job-000")
        await pilot.pause()
        options = app.screen.query_one(OptionList)
        listed = [options.get_option_at_index(i).id for i in range(options.option_count)]
        assert listed and all(job.startswith("job-000") for job in listed)
        await pilot.press("right")  # accept the inline suggestion
        suggested = app.screen.query_one(Input).value
        assert suggested in app.store.job_ids() and suggested.startswith("job-000")
        await pilot.press("enter")
        await pilot.pause()
        assert app.current_job == suggested


async def test_j_dialog_pick_from_the_list_and_paste_unknown() -> None:
    app = offline_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await _loaded(pilot, app)
        await pilot.press("j", *"job-0005", "down", "enter")
        await pilot.pause()
        assert app.current_job == "job-0005"
        await pilot.press("j")
        await pilot.pause()
        app.screen.query_one(Input).value = "job-unknown"
        await pilot.press("enter")
        await pilot.pause()
        assert app.current_job == "job-unknown"
        assert app.timeline is not None and app.timeline.steps == []
        await pilot.press("j", "escape")
        await pilot.pause()
        assert app.current_job == "job-unknown"


async def test_click_on_a_job_id_opens_its_timeline() -> None:
    app = offline_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await _loaded(pilot, app)
        stream = app.stream_list
        row = len(stream.rows) - 1 - int(stream.scroll_y)  # the newest row on screen
        shown = app.shown_events()
        while shown[int(stream.scroll_y) + row].job_id is None:
            row -= 1
        job = shown[int(stream.scroll_y) + row].job_id
        column = stream._layout.job_start + 1
        await pilot.click("#stream", offset=(column + 1, row + 1))  # +1: the border
        await pilot.pause()
        assert app.current_job == job
        # A click elsewhere on a row only selects it.
        await pilot.click("#stream", offset=(3, row))
        await pilot.pause()
        assert app.current_job == job
        assert stream.selected_event == shown[int(stream.scroll_y) + row - 1]


async def test_escape_goes_back_through_the_jobs_opened() -> None:
    app = offline_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await _loaded(pilot, app)
        for job in ("job-0001", "job-0002", "job-0003"):
            app.open_job(job)
        await pilot.pause()
        assert app.current_job == "job-0003"
        await pilot.press("escape")
        assert app.current_job == "job-0002"
        await pilot.press("escape")
        assert app.current_job == "job-0001"
        await pilot.press("escape")
        assert app.current_job is None
        assert app.focused is app.stream_list


async def test_export_writes_exactly_the_filtered_events(tmp_path: Path) -> None:
    app = offline_app()
    async with app.run_test(size=(160, 48)) as pilot:
        events = await _loaded(pilot, app)
        await pilot.press("slash", *"service:worker", "enter")
        await pilot.press("e")
        await pilot.pause()
        assert isinstance(app.screen, ExportScreen)
        default = app.screen.query_one("#export-path", Input).value
        assert default.endswith(".jsonl") and "emp-events-20261127-" in default
        target = tmp_path / "out.jsonl"
        app.screen.query_one("#export-path", Input).value = str(target)
        await pilot.press("enter")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        written = list(read_file(target))
        assert written == [e for e in events if e.service == "worker"]
        assert app.last_export is not None and app.last_export.count == len(written)


async def test_export_format_and_overwrite_confirmation(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("keep me\n")
    app = offline_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await _loaded(pilot, app)
        await pilot.press("e")
        await pilot.pause()
        await pilot.click("#fmt-csv")
        path_input = app.screen.query_one("#export-path", Input)
        assert path_input.value.endswith(".csv")
        path_input.value = str(target)
        await pilot.click("#export")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("escape")  # no: back to the dialog, nothing written
        await pilot.pause()
        assert isinstance(app.screen, ExportScreen)
        assert target.read_text() == "keep me\n"
        await pilot.click("#export")
        await pilot.pause()
        await pilot.click("#yes")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        lines = target.read_text().splitlines()
        assert lines[0].startswith("id,timestamp")
        assert len(lines) == 1 + len(app.store)


async def test_export_format_follows_the_file_name_as_in_the_cli(tmp_path: Path) -> None:
    target = tmp_path / "story.trace.json"
    app = offline_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await _loaded(pilot, app)
        await pilot.press("e")
        await pilot.pause()
        assert isinstance(app.screen, ExportScreen)
        assert app.screen.query_one("#fmt-jsonl", RadioButton).value
        app.screen.query_one("#export-path", Input).value = str(target)
        await pilot.pause()
        assert app.screen.query_one("#fmt-chrome-trace", RadioButton).value
        assert app.screen.query_one("#export-path", Input).value == str(target)
        await pilot.press("enter")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        assert app.last_export is not None and app.last_export.fmt == "chrome-trace"
        assert "traceEvents" in orjson.loads(target.read_bytes())


async def test_y_copies_the_selected_event_json() -> None:
    app = offline_app()
    async with app.run_test(size=(160, 48)) as pilot:
        events = await _loaded(pilot, app)
        await pilot.press("y")  # nothing selected yet: nothing copied
        assert app.clipboard == ""
        await pilot.press("up", "y")
        assert orjson.loads(app.clipboard) == orjson.loads(events[-1].to_json_line())


async def test_help_lists_every_key() -> None:
    app = offline_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        listed = {row[2] for _, rows in app.screen.sections for row in rows}
        for binding in app.BINDINGS:
            assert binding.id in listed  # type: ignore[union-attr]
        for widget_class in (type(app.stream_list), TimelineView, StepList, HandoffGraph):
            for binding in widget_class.BINDINGS:
                assert binding.id in listed  # type: ignore[union-attr]
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_palette_offers_every_action() -> None:
    app = offline_app()
    async with app.run_test(size=(160, 48)) as pilot:
        names = {name for name, _, _ in app.palette_commands()}
        for binding in app.BINDINGS:
            if binding.action != "quit":  # type: ignore[union-attr]
                assert binding.description in names  # type: ignore[union-attr]
        await _loaded(pilot, app)
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"export")
        found = app.screen.query_one(CommandList)
        for _ in range(100):  # the palette searches in the background
            if found.option_count and "Export" in str(found.get_option_at_index(0).prompt):
                break
            await pilot.pause(0.05)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ExportScreen)


async def test_keymap_from_config_rebinds_keys() -> None:
    app = offline_app(config=AppConfig(keymap={"export": "x"}))
    async with app.run_test(size=(160, 48)) as pilot:
        await _loaded(pilot, app)
        await pilot.press("e")
        await pilot.pause()
        assert not isinstance(app.screen, ExportScreen)
        await pilot.press("x")
        await pilot.pause()
        assert isinstance(app.screen, ExportScreen)


@pytest.mark.parametrize("key", ["1", "2", "3", "4"])
async def test_narrow_terminal_shows_one_pane_at_a_time(key: str) -> None:
    app = offline_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await _loaded(pilot, app)
        await pilot.press(key)
        await pilot.pause()
        # With no job open, pane 3 shows the Problems view in the timeline's place.
        names = ["stream", "detail", "problems", "graph"]
        visible = [n for n in [*names, "timeline"] if app.query_one(f"#{n}").region.area > 0]
        assert visible == [names[int(key) - 1]]


async def test_clicking_a_pane_tab_shows_that_pane() -> None:
    app = offline_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await _loaded(pilot, app)
        # tabs: " 1 stream " " 2 detail " " 3 problems " " 4 graph ", one space apart (no
        # job is open, so pane 3 shows the problems)
        await pilot.click("#pane-tabs", offset=(24, 0))
        await pilot.pause()
        assert app.active_pane == "timeline"
        assert app.query_one("#problems").region.area > 0
        assert app.query_one("#stream").region.area == 0


async def test_main_screen_keys_do_nothing_behind_a_dialog() -> None:
    app = offline_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await _loaded(pilot, app)
        await pilot.press("e")
        await pilot.pause()
        await pilot.press("tab")  # focus leaves the path input
        await pilot.press("e", "j", "question_mark")
        await pilot.pause()
        assert isinstance(app.screen, ExportScreen)
        assert len(app.screen_stack) == 2
