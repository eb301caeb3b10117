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
from emp_tui.app.state import AppState, EmptyHint, narrows
from emp_tui.events import TelemetryEvent
from emp_tui.query import parse_query

NOW = START_MS / 1000 + 60.0


def make_state(capacity: int = 100_000, *, live: bool = False) -> AppState:
    return AppState(capacity=capacity, gap_ms=5000, clock=lambda: NOW, live=live)


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
    state.apply(state.parse("-service:webhook-service"))
    view = state.graph_view()
    assert view.edges == handoffs([e for e in events if e.service != "webhook-service"])
    assert view.detail == "filter -service:webhook-service" and view.nodes is None


def test_new_rows_change_the_graph_only_when_it_shows_the_filtered_events() -> None:
    events = sample_events()
    state = loaded(events[:50])
    state.queue(events[50:60])
    assert not state.drain().graph_changed
    state.graph_scope = "all"
    state.apply(state.parse("service:monitor"))
    state.queue([e for e in events[60:] if e.service != "monitor"])
    assert not state.drain().graph_changed
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
