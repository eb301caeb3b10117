"""The stream's rows: each column as wide as its values need, the data column the rest, its
most telling field first and readable; the selected row's data scrolls with ←/→; at 80x24 the
status bar keeps its counts and the footer its ? and q."""

from __future__ import annotations

from typing import Any

import pytest
from samples import START_MS, sample_events
from textual.widgets import Footer

from emp_tui.app.render import MIN_DATA, RowLayout, Seen, event_row
from emp_tui.app.widgets.status_bar import StatusBar
from emp_tui.events import TelemetryEvent
from emp_tui.text import data_summary

from .conftest import offline_app, plain

TRACE = "0" * 32


def _event(event_type: str, data: dict[str, Any], **ids: str) -> TelemetryEvent:
    return TelemetryEvent(
        timestamp=START_MS + 600_000,
        service=ids.pop("service", "worker"),
        event_type=event_type,
        trace_id=TRACE,
        data=data,
        **ids,
    )


FLEET = [
    _event(
        "connector.processing_failed",
        {"connectorType": "openai", "error": "upstream 503: model overloaded", "attempt": 2},
        job_id="job_a3b2c1760e28",
        worker_id="gpu-02-w3",
        machine_id="gpu-02",
    ),
    _event(
        "job.progress_updated",
        {"details": "step 2/5", "progress": 40},
        job_id="job_9b9b663bffdd",
        worker_id="gpu-02-w1",
    ),
    _event(
        "job.claimed",
        {"workerId": "gpu-03-w0", "claimTimeMs": 12_034},
        job_id="job_56bacf74832d",
        worker_id="gpu-03-w0",
    ),
    _event(
        "machine.ready",
        {"gpus": 4, "startupTimeMs": 41_250},
        service="machine",
        machine_id="gpu-04",
    ),
]


def _seen(events: list[TelemetryEvent]) -> Seen:
    seen = Seen()
    for event in events:
        seen = seen.grown(event) or seen
    return seen


@pytest.mark.parametrize(
    ("event", "first"),
    [
        (FLEET[0], "error=upstream 503: model overloaded"),
        (FLEET[1], "progress=40"),
        (FLEET[2], "claimTimeMs=12s"),
        (FLEET[3], "startupTimeMs=41.2s"),
    ],
)
def test_each_row_shows_its_most_telling_field_first_and_readable(
    event: TelemetryEvent, first: str
) -> None:
    layout = RowLayout.for_width(102, _seen(FLEET))
    row = event_row(event, layout).plain
    assert row[layout.data_start :].startswith(first[: layout.data_w - 1]), row
    # Scripts get the number: the summary of the CLI is unchanged.
    assert "claimTimeMs=12034" in data_summary(FLEET[2].data)


def test_the_columns_take_what_their_values_need_and_the_data_the_rest() -> None:
    seen = _seen(FLEET)
    # The stream pane at 160 columns: job IDs whole, worker and machine give their room.
    layout = RowLayout.for_width(102, seen)
    assert layout.job_w == len("job_a3b2c1760e28")
    assert layout.type_w == len("connector.processing_failed")
    assert layout.worker_w == layout.machine_w == 0
    assert layout.data_w >= MIN_DATA
    assert layout.data_w > 13 + 10  # the fixed widths left 13 cells of data at 160 columns
    row = event_row(FLEET[0], layout).plain
    assert "job_a3b2c1760e28 error=upstream 503: model" in row
    # Zoomed (the whole width): every column, and more data.
    wide = RowLayout.for_width(158, seen)
    assert wide.worker_w == len("gpu-02-w3") and wide.machine_w == len("gpu-02")
    assert wide.data_w > layout.data_w
    # No row is wider than the pane at any width.
    for width in (40, 76, 102, 158):
        for event in FLEET:
            assert event_row(event, RowLayout.for_width(width, seen)).cell_len <= width


async def test_left_and_right_scroll_the_selected_rows_data_only() -> None:
    app = offline_app()
    long = _event(
        "job.failed",
        {"error": "CUDA out of memory. " + "Tried to allocate 2.00 GiB; " * 6 + "THE END"},
        job_id="job-long",
    )
    async with app.run_test(size=(80, 24)) as pilot:
        app.add_events([*sample_events(), long])
        app.drain_now()
        await pilot.pause()
        stream = app.stream_list
        await pilot.press("end")
        await pilot.pause()
        assert stream.selected_event == long
        row = stream.rows.index(stream.selected_seq)  # type: ignore[arg-type]
        top = int(stream.scroll_y)
        before = stream.render_line(row - top).text
        other = stream.render_line(row - top - 1).text
        for _ in range(20):
            await pilot.press("right")
        await pilot.pause()
        after = stream.render_line(row - top).text
        data = after[stream.row_layout.data_start :]
        assert data.startswith("…") and "THE END" in after, after
        assert after[: stream.row_layout.data_start] == before[: stream.row_layout.data_start]
        assert stream.render_line(row - top - 1).text == other
        await pilot.press("left")
        await pilot.pause()
        assert "THE END" not in stream.render_line(row - top).text
        # Another row selected: the data starts at its start again.
        await pilot.press("up", "down")
        await pilot.pause()
        assert stream.shift == 0
        assert stream.render_line(row - top).text.rstrip() == before.rstrip()


async def test_at_80x24_the_counts_and_the_footers_help_and_quit_stay() -> None:
    app = offline_app()
    async with app.run_test(size=(80, 24)) as pilot:
        app.add_events(sample_events())
        app.drain_now()
        await pilot.press("slash", *"service:worker", "enter", "space")
        await pilot.pause()
        status = plain(app.query_one(StatusBar))
        assert "shown" in status and "paused" in status, status
        footer = app.query_one(Footer)
        keys = {
            key.key: key.region
            for key in footer.query("FooterKey")
            if key.region and key.region.right <= 80
        }
        assert {"question_mark", "q"} <= set(keys), keys
