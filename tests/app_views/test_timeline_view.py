"""TimelineView driven through Pilot: gaps, errors, n/N, threshold, selection, inert content."""

from __future__ import annotations

from dataclasses import replace

from samples import HOSTILE, JOB, T0, crossing_job, crossing_timeline, job_event
from textual.color import Color
from textual.widgets import Static

from emp_tui.analysis import Gap, Timeline, job_timeline
from emp_tui.app.style import ERROR_COLOR, service_color
from emp_tui.app.widgets.timeline import StepList, SwimLanes, TimelineView

from .apps import TimelineApp
from .conftest import lines, strips

SIZE = (120, 40)
GAP_STEP = 8  # comfyui.completed, 12.3 s after the previous step
ERROR_STEP = 10  # webhook.delivery_failed


def step_row(view: TimelineView, text: str) -> int:
    """The screen line of the step list that contains ``text``."""
    found = [y for y, line in enumerate(lines(view.query_one(StepList))) if text in line]
    assert found, f"{text!r} is not on screen"
    return found[0]


def header_text(view: TimelineView) -> str:
    return "\n".join(lines(view.query_one("#timeline-header", Static)))


async def test_gap_and_error_rows_are_marked_and_styled() -> None:
    app = TimelineApp(crossing_timeline())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = app.query_one(TimelineView)
        shown = lines(view.query_one(StepList))
        assert shown[0].split() == ["offset", "delta", "service", "eventType", "data"]
        gap_y = step_row(view, "⚠ gap 12.3s (threshold 5s)")
        assert "worker → machine" in shown[gap_y]
        assert "connector.retry_scheduled → comfyui.completed" in shown[gap_y]
        # The gap row comes right before the step it ends at, which is flagged too.
        assert shown[gap_y + 1].split()[:4] == ["⚠", "+16.800s", "+12.300s", "machine"]
        error_y = step_row(view, "webhook.delivery_failed")
        assert shown[error_y].split()[:2] == ["✖", "+17.300s"]
        assert "error=HTTP 502 from https://hooks.example" in shown[error_y]

        rows = strips(view.query_one(StepList))
        plain_y = step_row(view, "job.claimed")

        def background(y: int) -> Color | None:
            style = rows[y]._segments[-1].style
            return style.bgcolor and Color.from_rich_color(style.bgcolor)

        def foreground(y: int, text: str) -> Color:
            for segment in rows[y]:
                if text in segment.text and segment.style and segment.style.color:
                    return Color.from_rich_color(segment.style.color)
            raise AssertionError(f"{text!r} has no colour on line {y}")

        assert background(gap_y) != background(plain_y)
        assert foreground(error_y, "webhook.delivery_failed") != foreground(plain_y, "job.claimed")
        assert foreground(plain_y, "worker") == Color.parse(service_color("worker"))

        header = header_text(view)
        assert "completed" in header and "1 gap" in header and "1 error" in header
        assert "gap threshold 5s" in header and "13 events" in header


async def test_lanes_show_one_row_per_service_and_the_gap_on_the_axis() -> None:
    app = TimelineApp(crossing_timeline())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        lanes = lines(app.query_one(SwimLanes))
        assert [line.split("│")[0].strip() for line in lanes[:4]] == [
            "api-server",
            "worker",
            "machine",
            "webhook-service",
        ]
        assert "✖" in lanes[3]  # the failed delivery
        assert "▲" in lanes[1]  # the warning on the worker
        assert "╮" in lanes[1] or "╯" in lanes[1]  # worker hands over to machine
        axis = lanes[4]
        assert axis.split("╰")[0].strip() == "+0.000s"  # where the cursor is
        assert "━" in axis and axis.index("▲") < axis.index("━")


async def test_slower_than_usual_step_gets_its_own_label() -> None:
    timeline = crossing_timeline()
    steps = list(timeline.steps)
    slow_index = 5  # comfyui.executing, 300 ms after machine.assigned
    slow = Gap(
        after_index=slow_index,
        start_ms=T0 + 900,
        end_ms=T0 + 1_200,
        duration_ms=300,
        kind="slower_than_usual",
        usual_p95_ms=20.0,
        from_service="machine",
        to_service="machine",
        from_type="machine.assigned",
        to_type="comfyui.executing",
    )
    steps[slow_index] = replace(steps[slow_index], gap=slow)
    timeline = replace(timeline, steps=steps, gaps=[slow, *timeline.gaps])
    app = TimelineApp(timeline)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = app.query_one(TimelineView)
        y = step_row(view, "slower than usual")
        assert "⚠ slower than usual: 300ms vs p95 20ms" in lines(view.query_one(StepList))[y]
        await pilot.press("n")
        assert view.cursor == slow_index


async def test_n_and_shift_n_visit_gaps_and_errors_in_order_and_wrap() -> None:
    app = TimelineApp(crossing_timeline())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = app.query_one(TimelineView)
        assert view.cursor == 0
        visited = []
        for _ in range(3):
            await pilot.press("n")
            visited.append(view.cursor)
        assert visited == [GAP_STEP, ERROR_STEP, GAP_STEP]  # wraps to the first
        visited = []
        for _ in range(3):
            await pilot.press("N")
            visited.append(view.cursor)
        assert visited == [ERROR_STEP, GAP_STEP, ERROR_STEP]  # wraps to the last
        assert view.selected_step is not None
        assert view.selected_step.event.event_type == "webhook.delivery_failed"
        # The lanes' axis follows the cursor.
        assert app.query_one(SwimLanes).cursor == ERROR_STEP
        assert lines(app.query_one(SwimLanes))[4].split("╰")[0].strip() == "+17.300s"


async def test_n_without_gaps_or_errors_leaves_the_cursor() -> None:
    quiet = [e for e in crossing_job() if e.level != "error"]
    timeline = job_timeline(quiet, JOB, gap_ms=60_000)
    assert not timeline.gaps
    app = TimelineApp(timeline, gap_threshold_ms=60_000)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("down", "down", "n")
        assert app.query_one(TimelineView).cursor == 2
        await pilot.press("N")
        assert app.query_one(TimelineView).cursor == 2


async def test_threshold_keys_and_method_post_gap_threshold_changed() -> None:
    app = TimelineApp(crossing_timeline())
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(TimelineView)
        await pilot.press("plus")
        await pilot.press("minus", "minus")
        await pilot.pause()
        posted = [m.ms for m in app.posted if isinstance(m, TimelineView.GapThresholdChanged)]
        assert posted == [10_000, 5_000, 2_000]
        assert view.gap_threshold_ms == 2_000
        assert "gap threshold 2s" in header_text(view)
        view.set_gap_threshold(1_234)
        view.set_gap_threshold(1_234)  # unchanged: no second message
        await pilot.pause()
        posted = [m.ms for m in app.posted if isinstance(m, TimelineView.GapThresholdChanged)]
        assert posted == [10_000, 5_000, 2_000, 1_234]
        assert all(m.control is view for m in app.posted)
        # "-" from 1.234 s goes to the next step below it.
        await pilot.press("minus")
        await pilot.pause()
        assert view.gap_threshold_ms == 1_000


async def test_recomputed_timeline_keeps_the_cursor_on_the_same_event() -> None:
    app = TimelineApp(crossing_timeline())
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(TimelineView)
        await pilot.press("n", "n")
        assert view.cursor == ERROR_STEP
        # What the app does on GapThresholdChanged: recompute with the new threshold.
        view.set_timeline(crossing_timeline(gap_ms=1_000), gap_threshold_ms=1_000)
        await pilot.pause()
        assert view.cursor == ERROR_STEP
        shown = lines(view.query_one(StepList))
        gap_rows = [line for line in shown if "⚠ gap" in line]
        assert len(gap_rows) == 4  # 1.8 s, 1.5 s, 12.3 s, 2.1 s are all over 1 s
        assert all("(threshold 1s)" in line for line in gap_rows)
        # Another job: back to its first step.
        view.set_timeline(crossing_timeline(job_id="job_other"))
        await pilot.pause()
        assert view.cursor == 0
        assert "job_other" in header_text(view)


async def test_enter_posts_event_selected_with_the_event_under_the_cursor() -> None:
    app = TimelineApp(crossing_timeline())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("down", "down", "enter")
        await pilot.pause()
        selected = [m for m in app.posted if isinstance(m, TimelineView.EventSelected)]
        assert len(selected) == 1
        assert selected[0].event == crossing_job()[2]
        assert selected[0].event.id == f"{T0 + 340}-3"
        assert selected[0].step_index == 2
        assert selected[0].control is app.query_one(TimelineView)
        await pilot.press("end", "enter")
        await pilot.pause()
        selected = [m for m in app.posted if isinstance(m, TimelineView.EventSelected)]
        assert selected[-1].event.event_type == "job.completed"


async def test_clicking_a_step_selects_it() -> None:
    app = TimelineApp(crossing_timeline())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = app.query_one(TimelineView)
        y = step_row(view, "comfyui.executing")
        assert await pilot.click(StepList, offset=(30, y))
        await pilot.pause()
        assert view.cursor == 5
        selected = [m for m in app.posted if isinstance(m, TimelineView.EventSelected)]
        assert [m.event.event_type for m in selected] == ["comfyui.executing"]


async def test_empty_and_unknown_job_say_so() -> None:
    app = TimelineApp(None, job_id="job_[b]missing[/b]\x1b[2J")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = app.query_one(TimelineView)
        message = "\n".join(lines(view.query_one("#timeline-empty", Static)))
        assert "no events for job job_[b]missing[/b]\\x1b[2J" in message
        assert not view.query_one(StepList).display
        assert not view.query_one(SwimLanes).display
        await pilot.press("n", "enter")  # nothing to move to or select; no crash
        assert app.posted == []
        empty = Timeline(
            job_id="job_none",
            steps=[],
            gaps=[],
            start_ms=0,
            end_ms=0,
            duration_ms=0,
            services=[],
            status="unknown",
        )
        view.set_timeline(empty)
        await pilot.pause()
        assert "no events for job job_none" in "\n".join(
            lines(view.query_one("#timeline-empty", Static))
        )
        view.set_timeline(crossing_timeline())
        await pilot.pause()
        assert view.query_one(StepList).display
        assert not view.query_one("#timeline-empty", Static).display


async def test_markup_control_characters_and_huge_values_render_inert() -> None:
    huge = "x" * 10_000
    events = [
        job_event(1, 0, "api-server", "job.created", {"message": HOSTILE}),
        job_event(2, 50, "[red]evil[/red]\x1b]0;pwned\x07", "job.\r\bqueued", {"blob": huge}),
        job_event(3, 90, "worker", "job.claimed", {"note": "line1\nline2\u202eright-to-left"}),
    ]
    timeline = job_timeline(events, JOB)
    app = TimelineApp(timeline)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = app.query_one(TimelineView)
        step_strips = strips(view.query_one(StepList))
        shown = [strip.text for strip in step_strips]
        everything = "".join(shown) + "".join(lines(app.query_one(SwimLanes)))
        for raw in ("\x1b", "\r", "\b", "\x07", "\n", "\u202e"):
            assert raw not in everything
        first = shown[step_row(view, "job.created")]
        assert (
            "message=[bold red]boom[/] \\x1b[31mred\\x1b[0m\\r\\bX\\x07 $(rm -rf /)"[:40] in first
        )
        second = shown[step_row(view, "blob=")]
        assert "[red]evil" in second and "job.\\r\\bqueued" in second
        assert "blob=xxxx" in second and second.rstrip().endswith("…")
        third = shown[step_row(view, "job.claimed")]
        assert "line1\\nline2\\u202eright-to-left" in third
        # Every row is exactly as wide as the list, however long its content.
        width = view.query_one(StepList).scrollable_content_region.width
        assert {strip.cell_length for strip in step_strips} == {width}
        # The markup in the data was not interpreted: no span is styled bold red by it.
        for segment in step_strips[step_row(view, "job.created")]:
            if "boom" in segment.text:
                assert segment.style is None or segment.style.color != ERROR_COLOR


async def test_a_thousand_events_scroll_and_navigate() -> None:
    services = ["api-server", "worker", "machine", "webhook-service"]
    events = [
        job_event(
            n,
            n * 37 + (9_000 if n >= 700 else 0),
            services[(n // 5) % 4],
            f"step.{n}",
            {"n": n},
            level="error" if n == 900 else None,
        )
        for n in range(1_000)
    ]
    app = TimelineApp(job_timeline(events, JOB))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = app.query_one(TimelineView)
        steps = view.query_one(StepList)
        assert steps.virtual_size.height == 1_000 + 1 + 1  # steps, one gap row, the header
        await pilot.press("n")
        assert view.cursor == 700
        assert any("⚠ gap 9.04s (threshold 5s)" in line for line in lines(steps))
        await pilot.press("n")
        assert view.cursor == 900
        assert any("step.900" in line for line in lines(steps))
        await pilot.press("end")
        assert view.cursor == 999
        assert "step.999" in lines(steps)[-1]
        await pilot.press("home", "pagedown")
        assert 0 < view.cursor < 999


async def test_live_update_follows_new_steps_only_from_the_last_step() -> None:
    events = crossing_job()
    app = TimelineApp(job_timeline(events[:6], JOB))
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(TimelineView)
        await pilot.press("end")
        assert view.cursor == 5
        view.set_timeline(job_timeline(events[:9], JOB))
        await pilot.pause()
        assert view.cursor == 8  # was on the last step: follows
        await pilot.press("up", "up")
        view.set_timeline(job_timeline(events, JOB))
        await pilot.pause()
        assert view.cursor == 6  # elsewhere: stays on its event
        assert view.selected_step is not None
        assert view.selected_step.event.event_type == "comfyui.progress_updated"


async def test_clicking_a_lane_moves_the_cursor_to_the_nearest_step() -> None:
    app = TimelineApp(crossing_timeline())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        lanes = app.query_one(SwimLanes)
        view = app.query_one(TimelineView)
        axis_row = lines(lanes)[4]
        start = axis_row.index("╰") + 1
        area = len(axis_row) - start
        # 16.8 s of 19.5 s: comfyui.completed, the step after the gap
        x = start + round(16_800 * (area - 1) / 19_500)
        assert await pilot.click(SwimLanes, offset=(x, 1))
        await pilot.pause()
        assert view.cursor == GAP_STEP
        assert lines(lanes)[4].split("╰")[0].strip() == "+16.800s"
        assert app.posted == []  # moving the cursor is not choosing an event


async def test_set_timeline_before_mount_is_shown_on_mount() -> None:
    app = TimelineApp(None, job_id="job_later")
    view = TimelineView(id="other")
    view.set_timeline(crossing_timeline(), gap_threshold_ms=2_000)
    async with app.run_test(size=SIZE) as pilot:
        await app.mount(view, before=0)
        await pilot.pause()
        assert view.gap_threshold_ms == 2_000
        assert "job_7f3a" in header_text(view)
        assert any("job.created" in line for line in lines(view.query_one(StepList)))


async def test_lanes_hide_in_a_short_pane_and_l_toggles_them() -> None:
    app = TimelineApp(crossing_timeline())
    async with app.run_test(size=(120, 12)) as pilot:
        await pilot.pause()
        lanes = app.query_one(SwimLanes)
        assert not lanes.display  # 12 rows: the lanes would leave too few for the steps
        assert any("job.created" in line for line in lines(app.query_one(StepList)))
        await pilot.press("l")
        await pilot.pause()
        assert lanes.display
        await pilot.press("l")
        await pilot.pause()
        assert not lanes.display
    app = TimelineApp(crossing_timeline())
    async with app.run_test(size=(120, 14)) as pilot:
        await pilot.pause()
        assert app.query_one(SwimLanes).display  # 14 rows: room for 6 steps under them


async def test_header_says_how_long_an_open_job_has_been_silent() -> None:
    open_job = [ev for ev in crossing_job() if ev.event_type not in ("job.completed", "job.failed")]
    last = max(ev.timestamp for ev in open_job)
    quiet = job_timeline(open_job, JOB, now_ms=last + 42_000)
    assert quiet.status == "running"
    app = TimelineApp(quiet)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = app.query_one(TimelineView)
        assert "silent for 42s" in header_text(view)
        # quiet for less than the gap threshold is not worth a warning
        view.set_timeline(job_timeline(open_job, JOB, now_ms=last + 2_000), job_id=JOB)
        await pilot.pause()
        assert "silent for" not in header_text(view)
