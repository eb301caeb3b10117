"""The timeline and handoff graph as the app drives them: gap navigation, the threshold,
the detail following the timeline, live updates and the graph's scope."""

from __future__ import annotations

from samples import START_MS, fleet_job, sample_events

from emp_tui.analysis import handoffs
from emp_tui.app.widgets.detail import DetailPane
from emp_tui.app.widgets.graph import HandoffGraph
from emp_tui.app.widgets.timeline import TimelineView

from .conftest import offline_app


async def test_n_and_shift_n_move_between_gaps_and_errors() -> None:
    app = offline_app()
    async with app.run_test(size=(160, 48)) as pilot:
        app.add_events(sample_events())
        app.drain_now()
        await pilot.press("n")  # no job open yet: a warning, nothing else
        assert app.current_job is None
        app.open_job("job-0009")  # fails: two error steps
        await pilot.pause()
        view = app.query_one(TimelineView)
        errors = [i for i, s in enumerate(view.timeline.steps) if s.event.level == "error"]  # type: ignore[union-attr]
        assert len(errors) == 2
        await pilot.press("n")
        assert view.cursor == errors[0]
        await pilot.press("n")
        assert view.cursor == errors[1]
        await pilot.press("N")
        assert view.cursor == errors[0]
        await pilot.pause()
        # The step under the timeline's cursor is the one in the detail pane.
        assert app.query_one(DetailPane).event == view.timeline.steps[errors[0]].event  # type: ignore[union-attr]


async def test_gap_over_the_threshold_is_found_and_the_threshold_is_adjustable() -> None:
    app = offline_app()
    async with app.run_test(size=(160, 48)) as pilot:
        app.add_events(sample_events())
        app.drain_now()
        app.open_job("job-0005")  # waits 12 s to be claimed
        await pilot.pause()
        timeline = app.timeline
        assert timeline is not None
        threshold_gaps = [g for g in timeline.gaps if g.kind == "threshold"]
        assert [(g.from_type, g.to_type) for g in threshold_gaps] == [("job.queued", "job.claimed")]
        await pilot.press("n")
        view = app.query_one(TimelineView)
        assert view.cursor == threshold_gaps[0].after_index
        # Raise the threshold past 12 s: the gap is no longer one.
        for _ in range(2):
            await pilot.press("plus")
            await pilot.pause()
        assert app.gap_ms == 30_000
        assert app.timeline is not None
        assert not [g for g in app.timeline.gaps if g.kind == "threshold"]
        await pilot.press("minus")
        await pilot.pause()
        assert app.gap_ms == 10_000
        assert [g.kind for g in app.timeline.gaps] == ["threshold"]


async def test_open_timeline_follows_new_events_of_its_job() -> None:
    app = offline_app()
    async with app.run_test(size=(160, 48)) as pilot:
        flow = fleet_job(42, START_MS)
        app.add_events(flow[:3])
        app.drain_now()
        app.open_job("job-0042")
        await pilot.pause()
        assert app.timeline is not None and len(app.timeline.steps) == 3
        app.add_events(flow[3:])
        app.drain_now()
        await pilot.pause(0.4)  # live timeline updates are at most 4 a second
        app.drain_now()
        await pilot.pause()
        assert app.timeline is not None
        assert len(app.timeline.steps) == len(flow)
        assert app.timeline.status == "completed"


async def test_graph_scope_toggles_between_the_job_and_the_filtered_jobs() -> None:
    events = sample_events()
    app = offline_app()
    async with app.run_test(size=(160, 48)) as pilot:
        app.add_events(events)
        app.drain_now()
        app.open_job("job-0003")
        await pilot.pause()
        graph = app.query_one(HandoffGraph)
        job_only = handoffs([e for e in events if e.job_id == "job-0003"])
        assert graph.scope == "job" and graph.edges == job_only
        await pilot.press("g")
        await pilot.pause()
        assert graph.scope == "all" and app.graph_scope == "all"
        assert graph.edges == handoffs(events)
        # In "all" scope the graph follows the filter: the whole journeys of the jobs with
        # an event it matches (level:error: the failed jobs, and where their errors went).
        await pilot.press("slash", *"level:error", "enter")
        await pilot.pause()
        failed = {e.job_id for e in events if e.level == "error" and e.job_id}
        assert failed and len(failed) < len({e.job_id for e in events if e.job_id})
        expected = handoffs([e for e in events if e.job_id in failed])
        assert graph.edges == expected
        assert graph.edges != handoffs([e for e in events if e.level == "error"])
        edge = ("worker", "webhook-service")
        to_webhook = [e for e in graph.edges if (e.source, e.target) == edge]
        assert to_webhook and to_webhook[0].error_share == 1.0
        assert "(jobs matching level:error)" in str(app.query_one("#graph-scope").render())
        await pilot.press("g")
        await pilot.pause()
        assert graph.scope == "job" and graph.edges == job_only


async def test_start_at_a_job_from_the_command_line() -> None:
    app = offline_app(job_id="job-0007")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.current_job == "job-0007"
        assert app.active_pane == "timeline"


async def test_the_timeline_header_fits_its_width_instead_of_being_cut() -> None:
    for width, wanted in ((160, "· 9 events · 4 services"), (80, "· 9 events")):
        app = offline_app()
        async with app.run_test(size=(width, 24 if width == 80 else 48)) as pilot:
            app.add_events(sample_events())
            app.drain_now()
            app.open_job("job-0005")
            await pilot.press("3")
            await pilot.pause()
            header = app.query_one("#timeline-header")
            text = str(header.render())
            assert "…" not in text, text
            assert text.startswith("job job-0005  completed  13.3s · 1 gap")
            assert "gap threshold 5s (+/-)" in text
            assert text.endswith(wanted), text
            assert len(text) <= header.content_size.width
