"""The histogram strip over the stream and the mark of rows earlier than the row above."""

from __future__ import annotations

from dataclasses import replace

from samples import START_MS, sample_events

from emp_tui.app.render import EARLIER_MARK
from emp_tui.app.widgets.histogram import TimeStrip
from emp_tui.events import TelemetryEvent
from emp_tui.text import clock

from .conftest import offline_app


def _burst() -> list[TelemetryEvent]:
    """Sample traffic, and 30 failures within one second near its end."""
    events = sample_events()
    failures = [
        TelemetryEvent.create(
            "worker",
            "connector.processing_failed",
            {"error": "upstream 503"},
            timestamp=START_MS + 16_000 + i * 30,
            job_id=f"job-burst-{i}",
        )
        for i in range(30)
    ]
    return sorted([*events, *failures], key=lambda e: e.timestamp)


async def test_the_strip_shows_a_failure_burst_and_the_cursors_time() -> None:
    app = offline_app()
    async with app.run_test(size=(160, 48)) as pilot:
        app.add_events(_burst())
        app.drain_now()
        await pilot.pause()
        strip = app.query_one(TimeStrip)
        strip.render()
        hist = strip.histogram
        assert hist is not None and len(hist.counts) == strip.buckets()
        burst = hist.bucket_of(START_MS + 16_400)
        assert burst is not None
        # The burst's slices hold the most errors, and stand out among the counts.
        assert max(hist.errors) == max(hist.errors[burst - 1 : burst + 2])
        assert sum(hist.errors) == 30 + sum(1 for e in sample_events() if e.level == "error")
        # The filter's events only.
        await pilot.press("slash", *"level:error", "enter")
        await pilot.pause()
        strip.render()
        hist = strip.histogram
        assert hist is not None and hist.counts == hist.errors
        # The selected event's slice is marked (drawn reversed).
        await pilot.press("up")
        await pilot.pause()
        selected = app.stream_list.selected_event
        assert selected is not None and strip.cursor_ms == selected.timestamp
        rendered = strip.render()
        index = hist.bucket_of(selected.timestamp)
        assert index is not None
        cell = len("12:00:00 ") + index
        spans = rendered.spans
        assert any(s.start <= cell < s.end and "reverse" in str(s.style) for s in spans)


async def test_a_row_earlier_than_the_one_above_is_marked() -> None:
    events = sample_events()[:20]
    # Its stream entry comes last; its service stamped it half a second before the one above.
    arrived = events[-1].timestamp + 1
    late = replace(events[10], timestamp=events[-1].timestamp - 500, id=f"{arrived}-0")
    app = offline_app()
    async with app.run_test(size=(160, 48)) as pilot:
        app.add_events([*events, late])  # arrives last, stamped earlier
        app.drain_now()
        await pilot.pause()
        stream = app.stream_list
        top = int(stream.scroll_y)
        lines = [stream.render_line(y).text for y in range(len(stream.rows) - top)]
        marked = [line for line in lines if EARLIER_MARK in line]
        assert len(marked) == 1
        assert marked[0].startswith(clock(late.timestamp) + EARLIER_MARK)
        assert lines.index(marked[0]) == len(lines) - 1
