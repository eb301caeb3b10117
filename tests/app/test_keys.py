"""Keys and focus as a newcomer meets them: the filter bar hands the keys back to the stream,
1-4 focus their pane at every width, z zooms, n/N say where they went, End follows."""

from __future__ import annotations

from typing import Any

import pytest
from samples import sample_events
from textual.pilot import Pilot

from emp_tui.app.app import EmpTuiApp
from emp_tui.app.screens.help import HelpScreen
from emp_tui.app.widgets.event_list import EventList
from emp_tui.app.widgets.filter_bar import FilterInput
from emp_tui.app.widgets.timeline import TimelineView

from .conftest import offline_app


async def _loaded(pilot: Pilot[Any], app: EmpTuiApp) -> None:
    app.add_events(sample_events())
    app.drain_now()
    await pilot.pause()


def _recorded(app: EmpTuiApp) -> list[str]:
    said: list[str] = []
    notify = app.notify

    def recording(message: str, **kwargs: Any) -> None:
        said.append(message)
        notify(message, **kwargs)

    app.notify = recording  # type: ignore[method-assign]
    return said


async def test_enter_and_esc_hand_the_keys_back_to_the_stream() -> None:
    app = offline_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await _loaded(pilot, app)
        bar = app.query_one(FilterInput)
        await pilot.press("slash", *"service:worker", "enter")
        await pilot.pause()
        assert app.state.query.text == "service:worker"
        assert isinstance(app.focused, EventList)
        # Enter on an empty bar applies "no filter" and leaves the bar too.
        await pilot.press("slash", "backspace", "enter")
        await pilot.pause()
        assert app.state.query.text == "" and bar.value == ""
        assert isinstance(app.focused, EventList)
        # Esc with text clears the filter and leaves.
        await pilot.press("slash", *"level:error", "enter", "slash", "escape")
        await pilot.pause()
        assert app.state.query.text == "" and bar.value == ""
        assert isinstance(app.focused, EventList)
        # Esc in an empty bar closes it: the stream has the keys, the filter is unchanged.
        await pilot.press("slash")
        await pilot.pause()
        assert app.focused is bar
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.focused, EventList)
        # A bad query keeps the keys in the bar, beside its error.
        await pilot.press("slash", *"level:", "enter")
        await pilot.pause()
        assert app.focused is bar


async def test_focusing_the_bar_selects_its_text_so_typing_replaces_it() -> None:
    app = offline_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await _loaded(pilot, app)
        await pilot.press("slash", *"service:worker", "enter")
        await pilot.press("slash", *"level:error", "enter")
        await pilot.pause()
        assert app.state.query.text == "level:error"


async def test_a_slash_typed_into_a_just_focused_empty_bar_is_not_a_regex() -> None:
    app = offline_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await _loaded(pilot, app)
        bar = app.query_one(FilterInput)
        await pilot.press("slash", "slash", *"level:error")
        await pilot.pause()
        assert bar.value == "level:error"
        await pilot.press("enter")
        await pilot.pause()
        assert app.state.query.text == "level:error"
        # Typed after another key, a / is a /: a regex can still be written.
        await pilot.press("slash", "backspace", *"/fail/", "enter")
        await pilot.pause()
        assert app.state.query.text == "/fail/"


@pytest.mark.parametrize("width", [80, 120, 160])
async def test_1_to_4_focus_their_pane_at_every_width(width: int) -> None:
    app = offline_app()
    async with app.run_test(size=(width, 48)) as pilot:
        await _loaded(pilot, app)
        for opened in (False, True):
            if opened:
                app.open_job("job-0005")
                await pilot.pause()
            for key, pane in zip("4321", ("graph", "timeline", "detail", "stream"), strict=True):
                await pilot.press(key)
                await pilot.pause()
                assert app.focused_pane() == pane, (key, opened)
                assert app.active_pane == pane
        assert isinstance(app.focused, EventList)
        await pilot.press("3")
        await pilot.pause()
        assert app.query_one(TimelineView).has_focus_within


@pytest.mark.parametrize("size", [(160, 48), (80, 24)])
async def test_z_zooms_the_focused_pane_to_the_whole_screen_and_back(
    size: tuple[int, int],
) -> None:
    app = offline_app()
    async with app.run_test(size=size) as pilot:
        await _loaded(pilot, app)
        app.open_job("job-0005")
        await pilot.press("3")
        await pilot.pause()
        timeline = app.query_one(TimelineView)
        before = timeline.outer_size
        await pilot.press("z")
        await pilot.pause()
        assert app.zoomed == "timeline"
        assert timeline.outer_size.width == size[0]
        assert timeline.outer_size.height > before.height
        for other in ("#stream", "#detail", "#graph"):
            assert not app.query_one(other).display or not app.query_one(other).region
        # Another pane's key moves the zoom there.
        await pilot.press("1")
        await pilot.pause()
        assert app.zoomed == "stream"
        assert app.stream_list.outer_size.width == size[0]
        assert not timeline.region
        await pilot.press("z")
        await pilot.pause()
        assert app.zoomed is None
        if size[0] >= 120:
            assert timeline.region and app.query_one("#detail").region


async def test_the_help_says_where_tab_goes() -> None:
    app = offline_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        sections = dict(app.key_sections())
        rows = {keys: what for keys, what, _ in sections["Focus"]}
        assert "filter bar → 1 stream → 2 detail → 3 → 4 graph" in rows["tab"]
        anywhere = {binding_id for _, _, binding_id in sections["Anywhere"]}
        assert "zoom" in anywhere


async def test_n_and_shift_n_say_when_there_is_nothing_next_and_when_they_wrap() -> None:
    app = offline_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await _loaded(pilot, app)
        said = _recorded(app)
        app.open_job("job-0001")  # a quick job: no gap, no error
        await pilot.pause()
        await pilot.press("n")
        await pilot.pause()
        assert said and said[-1].startswith("No gap over 5s and no error in this job")
        app.open_job("job-0009")  # two errors
        await pilot.pause()
        view = app.query_one(TimelineView)
        errors = [i for i, s in enumerate(view.timeline.steps) if s.event.level == "error"]  # type: ignore[union-attr]
        await pilot.press("n", "n")
        assert view.cursor == errors[1]
        count = len(said)
        await pilot.press("n")
        await pilot.pause()
        assert view.cursor == errors[0]
        assert said[count:] == ["No gap or error after this step: wrapped to the first."]
        await pilot.press("N")
        await pilot.pause()
        assert view.cursor == errors[1]
        assert said[-1] == "No gap or error before this step: wrapped to the last."


async def test_end_follows_and_puts_the_cursor_on_the_newest_row() -> None:
    app = offline_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await _loaded(pilot, app)
        stream = app.stream_list
        await pilot.press("up", "up", "up")
        assert not stream.follow
        assert stream.cursor is not None and stream.cursor < len(stream.rows) - 1
        await pilot.press("end")
        await pilot.pause()
        assert stream.follow
        assert stream.cursor == len(stream.rows) - 1
        assert stream.selected_event == app.shown_events()[-1]
