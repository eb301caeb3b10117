"""AppState, what the app shows, without a terminal: the rows a filter selects, events older
than those shown, the jobs opened and their timelines, the graph's scope, the hint of an empty
stream and the status figures."""

from __future__ import annotations

from dataclasses import replace

import pytest
from samples import START_MS, flood, sample_events
from samples import fleet_job as job_events

from emp_tui.analysis import handoffs
from emp_tui.app import state as state_module
from emp_tui.app.state import AppState, EmptyHint, LoadPlan, narrows
from emp_tui.events import TelemetryEvent
from emp_tui.history import Holdings, JobHistory, Span, TimeRange, event_ms
from emp_tui.query import parse_query

NOW = START_MS / 1000 + 60.0


def make_state(capacity: int = 100_000, *, live: bool = False, **kwargs: object) -> AppState:
    return AppState(capacity=capacity, gap_ms=5000, clock=lambda: NOW, live=live, **kwargs)  # type: ignore[arg-type]


def loaded(events: list[TelemetryEvent], **kwargs: object) -> AppState:
    state = make_state(**kwargs)  # type: ignore[arg-type]
    state.queue(events)
    state.drain()
    return state


def test_queued_events_become_rows_at_the_drain() -> None:
    events = sample_events()
    state = make_state()
    state.queue(events)
    assert state.has_pending and state.rows == [] and len(state.store) == 0
    ingested = state.drain()
    assert not state.has_pending
    assert ingested.rows == state.rows == state.store.seqs()
    assert state.shown_events() == events
    assert ingested.oldest == state.rows[0]


def test_the_filter_applies_to_the_events_held_and_to_those_arriving() -> None:
    events = sample_events()
    state = loaded(events[:100])
    state.apply(state.parse("service:worker level:error"))
    assert state.shown_events() == [
        e for e in events[:100] if e.service == "worker" and e.level == "error"
    ]
    state.queue(events[100:])
    ingested = state.drain()
    assert state.store.events(ingested.rows) == [
        e for e in events[100:] if e.service == "worker" and e.level == "error"
    ]
    assert state.shown_events() == [
        e for e in events if e.service == "worker" and e.level == "error"
    ]
    state.apply(state.parse(""))
    assert state.shown_events() == events


def test_apply_drains_what_is_queued_first() -> None:
    events = sample_events()
    state = make_state()
    state.queue(events)
    state.apply(state.parse("service:monitor"))
    assert state.shown_events() == [e for e in events if e.service == "monitor"]


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ("service:worker", "service:worker job-0009", True),
        ("service:worker ", "service:worker  -level:info", True),
        ("service:worker", "service:workers", False),
        ("service:worker", "job-0009", False),
        ("", "service:worker", False),
        ("until:10m service:worker", "until:10m service:worker job-1", False),
    ],
)
def test_narrows_when_terms_are_added(before: str, after: str, expected: bool) -> None:
    now = int(NOW * 1000)
    assert narrows(parse_query(before, now_ms=now), parse_query(after, now_ms=now)) is expected


def test_adding_terms_looks_only_at_the_rows_shown_and_agrees_with_a_fresh_filter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events = sample_events()
    state = loaded(events)
    state.apply(state.parse("service:worker"))
    workers = list(state.rows)
    store = state.store
    asked: list[object] = []
    select = store.select

    def spy(query, within=None):  # type: ignore[no-untyped-def]
        asked.append(None if within is None else list(within))
        return select(query, within)

    monkeypatch.setattr(store, "select", spy)
    state.apply(state.parse("service:worker job-0009"))
    assert asked == [workers]  # narrowed: only the rows shown were looked at
    narrowed = state.shown_events()
    fresh = loaded(events)
    fresh.apply(fresh.parse("service:worker job-0009"))
    assert narrowed == fresh.shown_events()
    assert narrowed == [e for e in events if e.service == "worker" and e.job_id == "job-0009"]
    # Not an extension of the previous text: every event held is looked at again.
    state.apply(state.parse("job-0009"))
    assert asked[-1] is None
    assert state.shown_events() == [e for e in events if e.job_id == "job-0009"]


def test_older_events_take_their_place_among_the_rows() -> None:
    events = sample_events()
    state = loaded(events[60:])
    before = list(state.rows)
    state.queue(events[:60])  # a page of history, after the newest arrived
    ingested = state.drain()
    assert ingested.rows == state.rows[:60] and ingested.rows[-1] < before[0]
    assert state.shown_events() == events
    state.queue([events[10], events[70]])  # held already: nothing changes
    assert state.drain().rows == []
    assert state.shown_events() == events


def test_the_oldest_rows_go_with_the_events_past_capacity() -> None:
    state = make_state(capacity=100)
    state.apply(state.parse("service:worker"))
    state.queue(flood(250))
    ingested = state.drain()
    kept = list(flood(250))[150:]
    assert state.shown_events() == [e for e in kept if e.service == "worker"]
    assert ingested.oldest == state.store.oldest_seq
    assert state.store.event(state.store.seqs()[0]) == kept[0]
    state.queue(flood(10, start_ms=START_MS + 1000))
    ingested = state.drain()
    assert state.rows[0] >= ingested.oldest  # type: ignore[operator]
    assert state.figures().dropped == 160


def test_figures_count_what_is_held_shown_and_skipped() -> None:
    events = sample_events()
    state = make_state()
    state.queue(events[:10], live=True)
    state.queue([TelemetryEvent.from_json_line(b"not json")])
    state.queue(events[10:])  # a backfill: not counted in the rate
    state.drain()
    state.corrupt += 2
    state.apply(state.parse("service:monitor"))
    figures = state.figures()
    assert figures.buffered == len(events) + 1
    assert figures.shown == len([e for e in events if e.service == "monitor"])
    assert figures.malformed == 3 and figures.dropped == 0
    assert figures.rates[-1] == 0
    state.tick()
    assert state.figures().rates[-1] == 10
    state.tick()
    assert state.figures().rates[-2:] == (10, 0)


def test_the_jobs_opened_form_a_back_stack() -> None:
    state = loaded(sample_events())
    assert state.current_job is None and state.back() is None
    for job in ("job-0001", "job-0002", "job-0002", "job-0003"):
        state.open_job(job)
    assert state.job_history == ["job-0001", "job-0002", "job-0003"]
    assert state.timeline is not None and state.timeline.job_id == "job-0003"
    assert state.back() == "job-0002"
    assert state.timeline is not None and state.timeline.job_id == "job-0002"
    assert state.back() == "job-0001"
    assert state.back() is None
    assert state.current_job is None and state.timeline is None


def test_a_timeline_is_built_from_the_jobs_events_and_the_gap_threshold() -> None:
    events = sample_events()
    state = loaded(events)
    timeline = state.open_job("job-0005")  # waits 12 s to be claimed
    assert [step.event for step in timeline.steps] == [e for e in events if e.job_id == "job-0005"]
    assert [g.kind for g in timeline.gaps] == ["threshold"]
    state.gap_ms = 30_000  # no longer over the threshold, still slower than the other jobs
    timeline = state.refresh_timeline()
    assert timeline is not None and [g.kind for g in timeline.gaps] == ["slower_than_usual"]


def test_now_is_the_newest_event_offline_and_the_clock_live() -> None:
    flow = job_events(42, START_MS)[:3]  # claimed, never finished
    later = replace(sample_events()[-1], timestamp=START_MS + 30_000, id=f"{START_MS + 30_000}-0")
    offline = loaded([*flow, later])
    assert offline.now_ms() == START_MS + 30_000
    timeline = offline.open_job("job-0042")
    assert timeline.silent_ms == START_MS + 30_000 - flow[-1].timestamp
    assert not offline.timeline_ages()
    live = loaded([*flow, later], live=True)
    assert live.now_ms() == int(NOW * 1000)
    assert live.open_job("job-0042").silent_ms == int(NOW * 1000) - flow[-1].timestamp
    assert live.timeline_ages()
    assert make_state().now_ms() == int(NOW * 1000)  # nothing at hand: the clock


def test_a_timeline_compares_with_the_most_recent_other_jobs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    count = state_module.REFERENCE_JOBS + 50
    jobs = [job_events(i, START_MS + i * 100, seq=i * 20) for i in range(count)]
    state = loaded([e for flow in jobs for e in flow])
    assert len(state.store) == sum(len(flow) for flow in jobs)
    given: list[set[str | None]] = []
    build = state_module.job_timeline

    def spy(events, job_id, **kwargs):  # type: ignore[no-untyped-def]
        given.append({e.job_id for e in kwargs["reference"]})
        return build(events, job_id, **kwargs)

    monkeypatch.setattr(state_module, "job_timeline", spy)
    # Recent: by their newest event (the jobs overlap, and take longer or shorter).
    by_last_event = sorted(jobs, key=lambda flow: (flow[-1].timestamp, flow[-1].id))
    recent = [flow[0].job_id for flow in by_last_event[-state_module.REFERENCE_JOBS :]]
    assert recent != [flow[0].job_id for flow in jobs[-state_module.REFERENCE_JOBS :]]
    job = recent[0]
    assert job is not None
    state.open_job(job)
    assert given == [set(recent) - {job}]


def test_the_open_job_is_out_of_date_only_when_its_events_arrive() -> None:
    flow = job_events(42, START_MS)
    other = job_events(43, START_MS)
    state = loaded(flow[:3])
    state.open_job("job-0042")
    state.queue(other)
    assert not state.drain().job_changed
    state.queue(flow[3:])
    assert state.drain().job_changed


def test_the_graph_shows_the_open_job_or_the_filtered_events() -> None:
    events = sample_events()
    state = loaded(events)
    view = state.graph_view()
    assert view.edges == [] and view.nodes is None and "no job open" in view.detail
    state.open_job("job-0003")
    view = state.graph_view()
    assert view.edges == handoffs([e for e in events if e.job_id == "job-0003"])
    assert state.timeline is not None and view.nodes == state.timeline.services
    assert view.detail == "job-0003"
    state.graph_scope = "all"
    assert state.graph_view().edges == handoffs(events)
    assert state.graph_view().detail == "no filter"
    # With a filter: the jobs that have an event it matches, whole (their handoffs carry
    # the errors), not only the matching events.
    state.apply(state.parse("level:error"))
    view = state.graph_view()
    failed = {e.job_id for e in events if e.level == "error" and e.job_id}
    assert view.edges == handoffs([e for e in events if e.job_id in failed])
    assert view.edges != handoffs([e for e in events if e.level == "error"])
    assert view.detail == "jobs matching level:error" and view.nodes is None


def test_new_rows_change_the_graph_only_when_it_shows_the_filtered_jobs() -> None:
    events = sample_events()
    state = loaded(events[:50])
    state.queue(events[50:60])
    assert not state.drain().graph_changed
    state.graph_scope = "all"
    state.apply(state.parse("service:monitor"))
    # No job and no match: nothing the graph draws.
    loose = TelemetryEvent.create("machine", "machine.heartbeat", timestamp=events[60].timestamp)
    state.queue([loose])
    assert not state.drain().graph_changed
    # An event of a job, matching or not: its job may be one the filter matches.
    state.queue([e for e in events[60:] if e.service != "monitor" and e.job_id][:1])
    assert state.drain().graph_changed
    state.queue([e for e in events[60:] if e.service == "monitor"])
    assert state.drain().graph_changed


def test_an_empty_stream_says_why() -> None:
    state = make_state()
    assert state.empty_hint("reconnecting", "redis://h", "refused") == EmptyHint(
        "unreachable", "redis://h", "refused"
    )
    assert state.empty_hint("disconnected", "redis://h", None).kind == "unreachable"
    assert state.empty_hint("connecting", "redis://h", None) == EmptyHint("connecting", "redis://h")
    assert state.empty_hint("connected", "redis://h", None) == EmptyHint("connected", "redis://h")
    assert state.empty_hint("offline", "", None).kind == "empty"
    state.apply(state.parse("service:nothing"))
    assert state.empty_hint("connected", "redis://h", None).kind == "connected"  # nothing held
    state.queue(sample_events())
    state.drain()
    assert state.empty_hint("connected", "redis://h", None).kind == "no_match"
    assert state.empty_hint("offline", "", None).kind == "no_match"
    assert state.empty_hint("reconnecting", "redis://h", None).kind == "unreachable"


def test_row_at_a_time_and_the_events_a_drain_took() -> None:
    events = sample_events()
    state = make_state()
    state.queue(events)
    ingested = state.drain()
    assert ingested.events == events  # every one new to the store
    state.queue(events[:5])
    assert state.drain().events == []  # held already
    state.apply(parse_query("service:worker"))
    shown = state.shown_events()
    at = shown[3].timestamp
    row = state.row_at(at)
    assert row is not None and shown[row].timestamp == at
    assert state.row_at(at + 1) == row  # the last at or before
    assert state.row_at(START_MS - 1) == 0  # all later: the first
    assert state.row_at(shown[-1].timestamp + 60_000) == len(shown) - 1
    state.apply(parse_query("service:nobody"))
    assert state.row_at(at) is None


# -- the range of history, loads, and whole jobs ---------------------------------------------

MINUTE = 60_000


def _stream(events: list[TelemetryEvent]) -> Span:
    return Span("stream", len(events), event_ms(events[0]), event_ms(events[-1]))


def _ranged(events: list[TelemetryEvent], **kwargs: object) -> AppState:
    """A state reading a (pretend) stream that holds ``events``."""
    kwargs.setdefault("sources", ("stream",))
    state = make_state(**kwargs)  # type: ignore[arg-type]
    state.set_holdings(stream=_stream(events))
    return state


def _load(state: AppState, plan: LoadPlan, events: list[TelemetryEvent], **kw: object) -> None:
    """What the loaders would do for ``plan``: the events in its range, newest first."""
    inside = [
        e for e in reversed(events) if TimeRange(plan.since_ms, plan.until_ms).contains(event_ms(e))
    ]
    read = inside[: plan.limit]
    for source in plan.sources:
        state.loaded_page(
            plan.generation, source, read, len(read), event_ms(read[-1]) if read else None
        )
        state.loaded_all(
            plan.generation,
            source,
            read=len(read),
            reached_ms=event_ms(read[-1]) if read else None,
            cut=len(inside) > plan.limit,
            **kw,  # type: ignore[arg-type]
        )


def test_the_range_is_the_last_window_of_what_the_sources_hold() -> None:
    events = sample_events()
    state = _ranged(events, window_ms=5_000)
    newest = event_ms(events[-1])
    assert state.resolve_range() == TimeRange(newest - 5_000, None)
    assert state.resolve_range(window="1h") == TimeRange(newest - 3_600_000, None)
    assert state.resolve_range(since=str(START_MS + 5_000)) == TimeRange(START_MS + 5_000, None)
    ranged = state.resolve_range(since=str(START_MS + 5_000), until=str(START_MS + 9_000))
    assert ranged == TimeRange(START_MS + 5_000, START_MS + 9_000)
    with pytest.raises(ValueError, match="--since"):
        state.resolve_range(since="yesterday-ish")
    with pytest.raises(ValueError, match="window"):
        state.resolve_range(window="long")


def test_a_first_load_reads_the_range_and_knows_what_it_holds() -> None:
    events = sample_events()
    state = _ranged(events)
    state.base_range = state.resolve_range()
    plan = state.plan_for(state.effective_range())  # type: ignore[arg-type]
    assert plan is not None and plan.kind == "fresh" and plan.keep == "newest"
    assert state.loading and state.range_view().loading == 0
    assert state.range_view().loading_total == len(events)
    _load(state, plan, events)
    assert not state.loading and len(state.store) == len(events)
    assert state.shown_events() == events
    assert state.covered == state.base_range
    view = state.range_view()
    assert view.loaded == len(events) and view.left_out is None and not view.partial
    assert (view.first_ms, view.last_ms) == (event_ms(events[0]), event_ms(events[-1]))
    # A narrower range is held already: nothing to read.
    assert state.plan_for(TimeRange(event_ms(events[50]), None)) is None


def test_a_range_past_the_cap_keeps_its_newest_and_counts_the_rest() -> None:
    events = sample_events()
    state = _ranged(events, capacity=40)
    state.base_range = TimeRange(None, None)
    plan = state.plan_for(state.base_range)
    assert plan is not None and plan.limit == 40
    _load(state, plan, events)
    assert state.shown_events() == events[-40:]
    assert state.left_out == len(events) - 40
    assert state.covered == TimeRange(event_ms(events[-40]) + 1, None)
    view = state.range_view()
    assert view.left_out == len(events) - 40 and view.partial
    # Wider still: the store is full of the range's newest, there is nothing to add.
    assert state.plan_for(TimeRange(None, None)) is None


def test_a_range_opens_on_its_newest_first_load_and_older_pages_come_up_to_the_cap() -> None:
    events = sample_events()
    state = _ranged(events, capacity=100, first_load=30)
    state.base_range = TimeRange(None, None)
    plan = state.plan_for(state.base_range)
    assert plan is not None and plan.kind == "fresh" and plan.limit == 30
    _load(state, plan, events)
    assert state.shown_events() == events[-30:]
    assert state.left_out == len(events) - 30
    view = state.range_view()
    assert not view.full and view.capacity == 100
    # A page from the top: older events join (none of the newest go, there is room), and
    # fewer are left out.
    before = state.plan_before()
    assert before is not None and before.kind == "before"
    _load(state, before, events)
    state.drain()
    assert not state.newest_gone
    assert state.shown_events() == events[-(30 + before.limit) + 1 :]
    assert state.left_out is not None and 0 < state.left_out < len(events) - 30
    # A filter asks for the range: its older part is read, up to the cap.
    state.apply(state.parse("level:error"))
    rest = state.plan_for(state.effective_range())  # type: ignore[arg-type]
    assert rest is not None and rest.kind == "add"
    assert rest.limit == 100 - len(state.store)
    _load(state, rest, events)
    state.drain()
    held = len(state.store)  # the add stops a millisecond short of the oldest held
    assert 95 <= held <= 100 and list(state.store) == events[-held:]
    assert state.shown_events() == [e for e in events[-held:] if e.level == "error"]


def test_the_first_load_is_the_capacity_at_most() -> None:
    assert make_state(capacity=10, first_load=500).first_load == 10
    assert make_state(capacity=10).first_load == 10


def test_a_wider_range_adds_only_its_older_part_and_stale_pages_are_ignored() -> None:
    events = sample_events()
    state = _ranged(events)
    middle = event_ms(events[100])
    state.base_range = TimeRange(middle, None)
    first = state.plan_for(state.base_range)
    assert first is not None
    _load(state, first, events)
    assert state.shown_events() == events[100:]
    older = state.plan_for(TimeRange(None, None))
    assert older is not None and older.kind == "add"
    assert (older.since_ms, older.until_ms) == (None, middle - 1)
    assert not state.loaded_page(first.generation, "stream", events[:5], 5, None)  # stale
    _load(state, older, events)
    assert state.shown_events() == events
    assert state.covered == TimeRange(None, None)


def test_a_filter_with_time_bounds_sets_the_range_and_one_ending_in_the_past_holds_back() -> None:
    events = sample_events()
    state = _ranged(events)
    last_error = max(i for i, e in enumerate(events) if e.level == "error")
    state.base_range = TimeRange(event_ms(events[last_error + 1]), None)
    _load(state, state.plan_for(state.base_range), events)  # type: ignore[arg-type]
    assert not any(e.level == "error" for e in state.shown_events())
    query = state.parse(f"level:error since:{event_ms(events[0])}")
    assert state.effective_range(query) == TimeRange(event_ms(events[0]), None)
    state.apply(query)
    plan = state.plan_for(state.effective_range())  # type: ignore[arg-type]
    assert plan is not None and plan.kind == "add"
    _load(state, plan, events)
    errors = [e for e in events if e.level == "error"]
    assert errors and state.shown_events() == errors  # all older than the first load
    # until: in the past: the app looks at the past, live events are counted, not taken.
    state.apply(state.parse(f"until:{event_ms(events[50])}"))
    assert state.detached
    # Problems are those of that range, judged at its end, not at the clock.
    until = event_ms(events[50])
    assert state.problems_scope() == (TimeRange(event_ms(events[last_error + 1]), until), until)
    state.queue(flood(5, start_ms=START_MS + 90_000), live=True)
    state.drain()
    assert state.held_back == 5 and len(state.store) == len(events)
    assert state.range_view().held_back == 5 and state.range_view().closed_by_filter
    # Back to an open range: the newer part it did not take is read.
    state.apply(state.parse(""))
    assert not state.detached
    assert state.problems_scope() == (state.base_range, state.now_ms())
    newer = state.plan_for(state.effective_range())  # type: ignore[arg-type]
    assert newer is not None and newer.kind == "add"
    assert newer.since_ms == event_ms(events[-1]) and newer.until_ms is None


def test_the_page_before_lets_the_newest_go_when_full_and_follow_loads_them_again() -> None:
    events = sample_events()
    state = _ranged(events, capacity=50)
    state.base_range = TimeRange(event_ms(events[-50]), None)
    _load(state, state.plan_for(state.base_range), events)  # type: ignore[arg-type]
    assert state.shown_events() == events[-50:]
    before = state.plan_before()
    assert before is not None and before.kind == "before" and before.keep == "oldest"
    assert before.until_ms == event_ms(events[-50])
    _load(state, before, events)
    ingested = state.drain()
    assert state.newest_gone and state.detached
    assert before.limit == 25  # half the store at most
    # 24 older ones came (the read takes the oldest held again: its millisecond may hold
    # others), and as many of the newest went.
    assert state.shown_events() == events[-74:-24]
    assert ingested.newest == state.store.newest_seq
    state.queue(flood(3, start_ms=START_MS + 90_000), live=True)
    assert state.held_back == 3 and not state.has_pending
    assert state.covered is not None and state.covered.until_ms == event_ms(events[-25])
    back = state.plan_for(state.effective_range())  # type: ignore[arg-type]
    assert back is not None and back.kind == "add" and not state.newest_gone
    assert back.since_ms == event_ms(events[-25])


def test_the_page_before_stops_at_the_oldest_event_the_sources_hold() -> None:
    events = sample_events()
    state = _ranged(events)
    state.base_range = TimeRange(None, None)
    _load(state, state.plan_for(state.base_range), events)  # type: ignore[arg-type]
    assert state.plan_before() is None


def test_events_found_ahead_of_their_load_leave_the_page_before_where_the_load_stopped() -> None:
    events = sample_events()
    state = _ranged(events, capacity=100, first_load=30)
    state.apply(state.parse("job:job-0001"))
    job = [e for e in events if e.job_id == "job-0001"]
    plan = state.plan_for(TimeRange(None, None))
    assert plan is not None and plan.kind == "fresh" and plan.limit == 30
    state.queue(job)  # found by the logs' search: shown before the load has read a page
    state.drain()
    assert state.shown_events() == job
    _load(state, plan, events)
    assert state.shown_events() == job  # each once
    covered = state.covered
    assert covered is not None and covered.since_ms == event_ms(events[-30]) + 1
    assert event_ms(job[-1]) < covered.since_ms  # the job lies before what is held whole
    # The page before starts where the load stopped, not before the job's first event: the
    # events between are not held yet.
    before = state.plan_before()
    assert before is not None and before.until_ms == covered.since_ms
    _load(state, before, events)
    state.drain()
    whole = state.covered
    assert whole is not None and whole.since_ms is not None and whole.since_ms < covered.since_ms
    held = {e.id for e in state.store}
    assert all(e.id in held for e in events if event_ms(e) >= whole.since_ms)


def test_esc_stops_a_load_and_keeps_what_came() -> None:
    events = sample_events()
    state = _ranged(events)
    state.base_range = TimeRange(None, None)
    plan = state.plan_for(state.base_range)
    assert plan is not None
    page = list(reversed(events))[:60]
    state.loaded_page(plan.generation, "stream", page, 60, event_ms(page[-1]))
    assert state.cancel_load() and not state.loading
    assert state.shown_events() == events[-60:]
    assert state.covered == TimeRange(event_ms(page[-1]) + 1, None)
    assert not state.cancel_load()
    assert not state.loaded_all(plan.generation, "stream", read=99, reached_ms=0, cut=False)


def test_a_job_is_whole_from_what_was_fetched_with_what_arrives() -> None:
    flow = job_events(42, START_MS)
    state = _ranged(flow)
    state.queue(flow[-3:])  # the store holds only the job's last events
    state.drain()
    timeline = state.open_job("job-0042")
    assert len(timeline.steps) == 3
    view = state.job_view()
    assert view is not None and not view.fetched
    holdings = Holdings(_stream(flow), None)
    assert state.job_fetched(JobHistory("job-0042", flow[:-1], holdings))
    assert state.timeline is not None and [s.event for s in state.timeline.steps] == flow
    view = state.job_view()
    assert view is not None and view.fetched and view.missing_start_ms is None
    assert state.graph_view().edges == handoffs(flow)
    state.apply(state.parse("job:job-0042"))
    assert state.shown_events() == flow[-3:]  # the store's part
    assert state.export_events() == flow  # the job's export is whole


def test_a_job_whose_start_the_sources_may_lack_says_so() -> None:
    flow = job_events(42, START_MS)
    state = _ranged(flow[3:])  # the stream was trimmed after the job's third event
    state.open_job("job-0042")
    state.job_fetched(JobHistory("job-0042", flow[3:], state.holdings))
    view = state.job_view()
    assert view is not None and view.missing_start_ms == 0
    assert view.sources_start_ms == event_ms(flow[3])


def test_widening_steps_the_range_and_stops_at_everything() -> None:
    events = sample_events()
    state = _ranged(events, window_ms=15 * MINUTE)
    state.base_range = state.resolve_range()
    newest = event_ms(events[-1])
    wider = state.widen(1)
    assert wider == TimeRange(newest - 30 * MINUTE, None)
    assert state.widen(-1) == TimeRange(newest - 5 * MINUTE, None)
    state.base_range = TimeRange(newest - 7 * 86_400_000, None)
    assert state.widen(1) == TimeRange(None, None)
    state.base_range = TimeRange(None, None)
    assert state.widen(1) is None
    assert state.widen(-1) == TimeRange(newest - 7 * 86_400_000, None)


def test_now_is_the_newest_event_the_sources_hold_when_not_live() -> None:
    events = sample_events()
    state = _ranged(events[:10])
    state.set_holdings(logs=Span("logs", None, START_MS, START_MS + 99_000))
    assert state.now_ms() == START_MS + 99_000
    assert state.parse("since:1m").since_ms == START_MS + 39_000
