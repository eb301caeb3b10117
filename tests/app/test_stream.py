"""The stream, the filter bar, follow/pause and the detail pane, with events appended directly."""

from __future__ import annotations

import orjson
import pytest
from samples import flood, sample_events
from textual import events
from textual.widgets import Static

from emp_tui.app.widgets.detail import DetailPane
from emp_tui.app.widgets.filter_bar import FilterBar, FilterInput
from emp_tui.events import TelemetryEvent

from .conftest import offline_app, plain


async def test_events_appear_and_follow_keeps_the_newest_in_view() -> None:
    app = offline_app()
    async with app.run_test(size=(160, 48)) as pilot:
        app.add_events(flood(500))
        await pilot.pause()
        app.drain_now()
        await pilot.pause()
        stream = app.stream_list
        assert len(stream.rows) == 500
        assert stream.follow
        height = stream.scrollable_content_region.height
        assert stream.scroll_y == 500 - height
        assert app.status.buffered == 500


async def test_space_pauses_counts_new_events_and_f_resumes() -> None:
    app = offline_app()
    async with app.run_test(size=(160, 48)) as pilot:
        app.add_events(flood(100))
        app.drain_now()
        await pilot.pause()
        await pilot.press("space")
        stream = app.stream_list
        assert not stream.follow
        before = stream.scroll_y
        app.add_events(flood(50, start_ms=2_000_000_000_000))
        app.drain_now()
        await pilot.pause()
        assert stream.scroll_y == before
        assert stream.new_while_paused == 50
        assert "50 new" in str(stream.border_subtitle)
        assert app.status.paused_new == 50
        await pilot.press("f")
        assert stream.follow
        assert stream.new_while_paused == 0
        assert stream.scroll_y == 150 - stream.scrollable_content_region.height


async def test_scrolling_up_pauses_and_end_resumes() -> None:
    app = offline_app()
    async with app.run_test(size=(160, 48)) as pilot:
        app.add_events(flood(300))
        app.drain_now()
        await pilot.pause()
        stream = app.stream_list
        stream.post_message(events.MouseScrollUp(stream, 5, 5, 0, -1, 0, False, False, False))
        await pilot.pause()
        assert not stream.follow
        await pilot.press("end")
        assert stream.follow
        await pilot.press("pageup")
        assert not stream.follow
        assert stream.cursor is not None


async def test_cursor_selects_an_event_and_the_detail_shows_its_json() -> None:
    events = sample_events()
    app = offline_app()
    async with app.run_test(size=(160, 48)) as pilot:
        app.add_events(events)
        app.drain_now()
        await pilot.pause()
        await pilot.press("up")
        await pilot.pause()
        stream = app.stream_list
        assert not stream.follow  # moving the cursor pauses
        assert stream.selected_event == events[-1]
        await pilot.press("up")
        await pilot.pause()
        assert stream.selected_event == events[-2]
        detail = app.query_one(DetailPane)
        assert detail.event == events[-2]
        shown = plain(detail.query_one(Static))
        assert orjson.loads(shown)["id"] == events[-2].id


async def test_filter_applies_to_buffer_and_to_arriving_events() -> None:
    events = sample_events()
    app = offline_app()
    async with app.run_test(size=(160, 48)) as pilot:
        app.add_events(events[:100])
        app.drain_now()
        await pilot.press("slash", *"service:worker level:error", "enter")
        await pilot.pause()
        expected = [e for e in events[:100] if e.service == "worker" and e.level == "error"]
        assert [app.stream_list.selected_event] and len(app.stream_list.rows) == len(expected)
        app.add_events(events[100:])
        app.drain_now()
        expected = [e for e in events if e.service == "worker" and e.level == "error"]
        shown = app.shown_events()
        assert shown == expected
        assert app.status.shown == len(expected)


async def test_bad_filter_points_at_the_token_and_keeps_the_previous_filter() -> None:
    events = sample_events()
    app = offline_app()
    async with app.run_test(size=(160, 48)) as pilot:
        app.add_events(events)
        app.drain_now()
        await pilot.press("slash", *"service:worker", "enter")
        await pilot.pause()
        shown_before = list(app.stream_list.rows)
        await pilot.press("slash")
        bar_input = app.query_one(FilterInput)
        bar_input.value = "service:worker bogus:1"
        await pilot.press("enter")
        await pilot.pause()
        assert app.stream_list.rows == shown_before
        lines = plain(app.query_one("#filter-error")).splitlines()
        assert lines[0] == "service:worker bogus:1"
        assert lines[1].startswith(" " * 15 + "^~~~~")
        assert "still showing: service:worker" in lines[1]
        assert app.query_one(FilterBar).has_class("-error")


async def test_filter_history_and_escape_clears() -> None:
    app = offline_app()
    async with app.run_test(size=(160, 48)) as pilot:
        app.add_events(sample_events())
        app.drain_now()
        total = len(app.stream_list.rows)
        await pilot.press("slash", *"service:worker", "enter")
        await pilot.press("slash")
        app.query_one(FilterInput).value = "service:machine"
        await pilot.press("enter")
        await pilot.press("slash")
        bar_input = app.query_one(FilterInput)
        await pilot.press("up")
        assert bar_input.value == "service:machine"
        await pilot.press("up")
        assert bar_input.value == "service:worker"
        await pilot.press("down")
        assert bar_input.value == "service:machine"
        await pilot.press("escape")
        await pilot.pause()
        assert bar_input.value == ""
        assert len(app.stream_list.rows) == total


async def test_start_filter_from_the_command_line() -> None:
    app = offline_app(query="type:job.failed")
    async with app.run_test(size=(160, 48)) as pilot:
        app.add_events(sample_events())
        app.drain_now()
        await pilot.pause()
        shown = app.shown_events()
        assert [e.event_type for e in shown] == ["job.failed"]


@pytest.mark.parametrize("size", [(160, 48), (80, 24)])
async def test_hostile_event_text_is_inert(size: tuple[int, int]) -> None:
    hostile = TelemetryEvent.create(
        "[bold red]svc\x1b[2J",
        "job.\x1b]0;pwned\x07created",
        {"note": "[link=http://x]click[/link]\x1b[31m", "big": "x" * 10_000, "bidi": "a\u202eb"},
        timestamp=1_795_780_800_000,
        job_id="job-[red]1",
    )
    app = offline_app()
    async with app.run_test(size=size) as pilot:
        app.add_events([hostile])
        app.drain_now()
        await pilot.press("up")
        await pilot.pause()
        stream = app.stream_list
        line = "".join(segment.text for segment in stream.render_line(0))
        assert "[bold re" in line  # shown as typed, not as a style
        assert "\x1b" not in line and "\u202e" not in line
        assert "job.\\x1b]0;pwned\\" in line  # shown as visible escapes
        assert len(line) == stream.scrollable_content_region.width
        detail = plain(app.query_one(DetailPane).query_one(Static))
        assert "\x1b" not in detail and "\x07" not in detail and "\u202e" not in detail
        assert "[link=http://x]click[/link]" in detail
        assert "a\\u202eb" in detail  # a JSON escape: the detail stays valid JSON
        # The screen still has every part where it belongs.
        assert app.query_one("#status").region.y == size[1] - 2
        assert app.query_one(FilterBar).region.y == 0


async def test_memory_is_capped_by_the_store() -> None:
    from emp_tui.config import AppConfig

    app = offline_app(config=AppConfig(buffer_size=1000))
    async with app.run_test(size=(160, 48)) as pilot:
        app.add_events(flood(2500))
        app.drain_now()
        await pilot.pause()
        assert len(app.store) == 1000
        assert len(app.stream_list.rows) == 1000
        assert app.shown_events()[0].data["n"] == 1500
        assert app.status.dropped == 1500


async def test_adding_terms_narrows_the_shown_events_like_a_fresh_filter() -> None:
    events = sample_events()
    app = offline_app()
    async with app.run_test(size=(160, 48)) as pilot:
        app.add_events(events)
        app.drain_now()
        await pilot.pause()
        assert app.apply_filter("service:worker")
        assert app.apply_filter("service:worker job-0009")
        narrowed = app.shown_events()
        assert narrowed == [e for e in events if e.service == "worker" and e.job_id == "job-0009"]
        # Not an extension of the previous text: every buffered event is looked at again.
        assert app.apply_filter("job-0009")
        assert app.shown_events() == [e for e in events if e.job_id == "job-0009"]
        assert app.apply_filter("job-0009 -service:worker")
        assert app.shown_events() == [
            e for e in events if e.job_id == "job-0009" and e.service != "worker"
        ]


async def test_older_events_take_their_place_and_a_paused_view_stays_put() -> None:
    events = sample_events()
    app = offline_app()
    async with app.run_test(size=(160, 48)) as pilot:
        app.add_events(events[100:])
        app.drain_now()
        await pilot.pause()
        await pilot.press("up", "up")
        await pilot.pause()
        stream = app.stream_list
        selected = stream.selected_event
        top = app.shown_events()[int(stream.scroll_y)]
        app.add_events(events[:100])  # older than every event shown, e.g. a page of history
        app.drain_now()
        await pilot.pause()
        assert app.shown_events() == events
        assert stream.rows == app.state.rows
        assert stream.selected_event == selected
        assert app.shown_events()[int(stream.scroll_y)] == top
        assert stream.new_while_paused == 0  # none of them is newer than what was shown
        newer = flood(3, start_ms=events[-1].timestamp + 1)
        app.add_events(newer)
        app.drain_now()
        await pilot.pause()
        assert stream.new_while_paused == 3
        assert stream.selected_event == selected
