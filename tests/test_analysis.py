"""Analysis on hand-made sequences: timelines, gaps, handoffs, percentiles, durations,
per-type stats, comparison with the usual and correlation."""

from __future__ import annotations

import pytest

from emp_tui.analysis import (
    UsualSteps,
    compare_with_usual,
    correlate,
    durations,
    event_type_stats,
    handoffs,
    is_slower_than_usual,
    job_handoffs,
    job_timeline,
    job_type,
    percentile,
)
from emp_tui.events import TelemetryEvent, default_level, trace_id_for_job

T0 = 1_700_000_000_000


def e(
    at: int,
    service: str,
    event_type: str,
    job: str | None = "job_1",
    *,
    stream_at: int | None = None,
    seq: int = 0,
    **kw: object,
) -> TelemetryEvent:
    """An event ``at`` ms after T0; its stream ID time is ``stream_at`` (default: the same)."""
    return TelemetryEvent(
        timestamp=T0 + at,
        service=service,
        event_type=event_type,
        trace_id=str(kw.pop("trace_id", trace_id_for_job(job) if job else "cd" * 16)),
        job_id=job,
        level=str(kw.pop("level", default_level(event_type))),
        id=f"{T0 + (at if stream_at is None else stream_at)}-{seq}",
        **kw,  # type: ignore[arg-type]
    )


def job(job_id: str, steps: list[tuple[int, str, str]], **kw: object) -> list[TelemetryEvent]:
    return [e(at, service, etype, job_id, **kw) for at, service, etype in steps]


NORMAL = [
    (0, "api-server", "job.created"),
    (100, "api-server", "job.queued"),
    (300, "worker", "job.claimed"),
    (400, "worker", "connector.processing_started"),
    (1400, "worker", "connector.processing_completed"),
    (1500, "api-server", "job.completed"),
]


# -- percentile -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [([5.0], 95, 5.0), ([1, 2, 3, 4], 50, 2.5), ([1, 2, 3, 4, 5], 0, 1.0),
     ([1, 2, 3, 4, 5], 100, 5.0), ([10, 20], 95, 19.5), (list(range(1, 101)), 95, 95.05),
     ([3, 1, 2], 50, 2.0)],
)  # fmt: skip
def test_percentile(values: list[float], p: float, expected: float) -> None:
    assert percentile(values, p) == pytest.approx(expected)


def test_percentile_rejects_nothing_and_bad_p() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


# -- timelines and gaps ---------------------------------------------------------------------


def test_timeline_orders_and_measures_steps() -> None:
    events = job("job_1", NORMAL)
    noise = job("job_2", [(50, "worker", "job.claimed")])
    shuffled = [events[3], events[0], *noise, events[5], events[1], events[4], events[2]]
    tl = job_timeline(shuffled, "job_1")
    assert [s.event for s in tl.steps] == events
    assert [s.offset_ms for s in tl.steps] == [0, 100, 300, 400, 1400, 1500]
    assert [s.delta_ms for s in tl.steps] == [0, 100, 200, 100, 1000, 100]
    assert [s.service_changed for s in tl.steps] == [False, False, True, False, False, True]
    assert tl.services == ["api-server", "worker"]
    assert (tl.start_ms, tl.end_ms, tl.duration_ms) == (T0, T0 + 1500, 1500)
    assert tl.status == "completed"
    assert tl.gaps == []


def test_ties_in_time_keep_stream_order() -> None:
    a = e(0, "api-server", "job.created", seq=0)
    b = e(0, "api-server", "job.queued", seq=1)
    assert job_timeline([b, a], "job_1").events == [a, b]


def test_threshold_gap_default_and_configured() -> None:
    events = job(
        "job_1",
        [(0, "api-server", "job.created"), (7000, "worker", "job.claimed"),
         (9000, "worker", "job.completed")],
    )  # fmt: skip
    tl = job_timeline(events, "job_1")
    assert len(tl.gaps) == 1
    gap = tl.gaps[0]
    assert (gap.after_index, gap.duration_ms, gap.kind) == (1, 7000, "threshold")
    assert (gap.from_service, gap.to_service) == ("api-server", "worker")
    assert (gap.from_type, gap.to_type) == ("job.created", "job.claimed")
    assert (gap.start_ms, gap.end_ms) == (T0, T0 + 7000)
    assert tl.steps[1].gap is gap and tl.steps[2].gap is None
    tl2 = job_timeline(events, "job_1", gap_ms=1500)
    assert [g.duration_ms for g in tl2.gaps] == [7000, 2000]
    # exactly at the threshold is not over it
    assert job_timeline(events, "job_1", gap_ms=2000).gaps == tl.gaps


def test_slower_than_usual_against_other_jobs() -> None:
    others = [ev for n in range(5) for ev in job(f"other_{n}", NORMAL)]
    slow = job(
        "job_1",
        [(0, "api-server", "job.created"), (100, "api-server", "job.queued"),
         (3300, "worker", "job.claimed"), (3400, "worker", "connector.processing_started"),
         (4400, "worker", "connector.processing_completed"), (4500, "api-server", "job.completed")],
    )  # fmt: skip
    tl = job_timeline(slow + others, "job_1")
    assert len(tl.gaps) == 1
    gap = tl.gaps[0]
    assert gap.kind == "slower_than_usual"
    assert gap.after_index == 2 and gap.duration_ms == 3200
    assert gap.usual_p95_ms == pytest.approx(200.0)
    # With an explicit reference of nothing, there is nothing "usual" to compare with.
    assert job_timeline(slow + others, "job_1", reference=[]).gaps == []
    # The same job among others just like it is not slow.
    assert job_timeline(job("job_1", NORMAL) + others, "job_1").gaps == []


def test_slower_than_usual_needs_enough_samples_and_a_real_excess() -> None:
    two_others = [ev for n in range(2) for ev in job(f"o{n}", NORMAL)]
    slow = job("job_1", [(0, "api-server", "job.queued"), (3000, "worker", "job.claimed")])
    assert job_timeline(slow + two_others, "job_1").gaps == []  # 2 samples: not judged
    fast_others = [
        ev for n in range(5) for ev in job(f"o{n}", [(0, "worker", "a.x"), (10, "worker", "a.y")])
    ]
    tiny = job("job_1", [(0, "worker", "a.x"), (100, "worker", "a.y")])
    assert job_timeline(tiny + fast_others, "job_1").gaps == []  # 10x, but only 90 ms over


def test_slower_than_usual_falls_back_on_the_service_pair() -> None:
    others = [
        ev
        for n in range(4)
        for ev in job(f"o{n}", [(0, "api-server", f"job.q{n}"), (100, "worker", f"job.c{n}")])
    ]
    slow = job("job_1", [(0, "api-server", "job.queued"), (1000, "worker", "job.claimed")])
    (gap,) = job_timeline(slow + others, "job_1").gaps
    assert gap.kind == "slower_than_usual" and gap.usual_p95_ms == pytest.approx(100.0)


def test_timeline_status() -> None:
    running = job("j", [(0, "api-server", "job.created"), (10, "worker", "job.claimed")])
    assert job_timeline(running, "j").status == "running"
    assert job_timeline(running, "j", now_ms=T0 + 10 + 60_000).status == "running"
    assert job_timeline(running, "j", now_ms=T0 + 10 + 600_000).status == "stalled"
    # how long an open job has been quiet: known only with a clock
    assert job_timeline(running, "j").silent_ms is None
    assert job_timeline(running, "j", now_ms=T0 + 10 + 32_000).silent_ms == 32_000
    failed = [*running, e(20, "worker", "job.failed", "j")]
    assert job_timeline(failed, "j").status == "failed"
    assert job_timeline(failed, "j", now_ms=T0 + 99_000).silent_ms is None
    retried = [*failed, e(30, "worker", "job.completed", "j")]
    # no worker has taken it: queued, not running, however long it waits (and how long is told)
    waiting = job("q", [(0, "api-server", "job.created"), (5, "api-server", "job.queued")])
    assert job_timeline(waiting, "q").status == "queued"
    late = job_timeline(waiting, "q", now_ms=T0 + 5 + 600_000)
    assert late.status == "queued" and late.silent_ms == 600_000
    assert job_timeline(retried, "j").status == "completed"
    empty = job_timeline([], "nope")
    assert (empty.status, empty.steps, empty.duration_ms) == ("unknown", [], 0)
    # a job the API refused to create has ended too
    refused = [
        e(0, "api-server", "job.created", "r"),
        e(5, "api-server", "job.creation_failed", "r"),
    ]
    assert job_timeline(refused, "r", now_ms=T0 + 600_000).status == "failed"


def test_job_type_from_created_else_queue_else_connector() -> None:
    created = e(0, "api-server", "job.created", data={"jobType": "comfyui"})
    queued = e(1, "api-server", "job.queued", data={"queueName": "comfyui-q"})
    started = e(2, "worker", "connector.processing_started", data={"connectorType": "comfy"})
    assert job_type([started, queued, created]) == "comfyui"
    assert job_type([started, queued]) == "comfyui-q"
    assert job_type([started]) == "comfy"
    assert job_type([e(0, "api-server", "job.created", data={"jobType": 7})]) is None
    assert job_type([]) is None


def test_usual_steps_between_and_after() -> None:
    jobs = [
        job(f"j{n}", [(0, "api-server", "job.queued"), (100 * n, "worker", "job.claimed"),
                      (100 * n + 10, "worker", "job.completed")])
        for n in range(1, 6)
    ]  # fmt: skip
    usual = UsualSteps(jobs)
    queued, claimed = jobs[0][0], jobs[0][1]
    between = usual.between(queued, claimed)
    assert between is not None
    assert (between.p50_ms, between.samples) == (300.0, 5)
    assert between.p95_ms == pytest.approx(480.0)
    after = usual.after("job.claimed")
    assert after is not None and after.p50_ms == 10.0
    assert usual.after("job.completed") is None  # nothing follows it
    assert usual.p95(queued, claimed) == between.p95_ms
    # two samples are not enough to call anything usual
    assert UsualSteps(jobs[:2]).between(queued, claimed) is None
    assert is_slower_than_usual(1000, 400.0) and not is_slower_than_usual(700, 400.0)
    assert not is_slower_than_usual(300, 100.0)  # twice the p95 but only 200 ms past it
    assert not is_slower_than_usual(10_000, None)


# -- handoffs -------------------------------------------------------------------------------


def test_job_handoffs_and_edges() -> None:
    a = job("a", NORMAL)
    b = job(
        "b",
        [(0, "api-server", "job.created"), (500, "worker", "job.claimed"),
         (900, "worker", "connector.processing_failed"), (1000, "api-server", "job.failed")],
    )  # fmt: skip
    assert [(h.from_service, h.to_service, h.duration_ms) for h in job_handoffs(a)] == [
        ("api-server", "worker", 200),
        ("worker", "api-server", 100),
    ]
    assert job_handoffs(a + b, "b")[0].job_id == "b"
    edges = {(x.source, x.target): x for x in handoffs(a + b)}
    assert set(edges) == {("api-server", "worker"), ("worker", "api-server")}
    forward = edges[("api-server", "worker")]
    assert (forward.count, forward.max_ms, forward.error_share) == (2, 500.0, 0.0)
    assert forward.p50_ms == pytest.approx(350.0)
    assert forward.p95_ms == pytest.approx(485.0)
    back = edges[("worker", "api-server")]
    assert back.count == 2 and back.error_share == pytest.approx(0.5)
    # events without a job have no handoffs
    assert handoffs([e(0, "a", "x.y", None), e(1, "b", "x.y", None)]) == []


# -- durations ------------------------------------------------------------------------------


def test_paired_durations_by_operation_and_key() -> None:
    events = [
        e(0, "worker", "connector.processing_started", "j1"),
        e(50, "worker", "connector.processing_started", "j2"),
        e(400, "worker", "connector.processing_completed", "j2"),
        e(1000, "worker", "connector.processing_failed", "j1"),
        e(0, "machine", "machine.starting", None, machine_id="m-1"),
        e(9000, "machine", "machine.ready", None, machine_id="m-1"),
        e(100, "worker", "job.executing", "j3"),
        e(700, "worker", "job.completed", "j3"),
        e(2000, "worker", "connector.processing_completed", "j9"),  # no start: no duration
    ]
    got = {(d.name, d.key): d for d in durations(events)}
    assert set(got) == {
        ("connector.processing", "j1"),
        ("connector.processing", "j2"),
        ("machine", "m-1"),
        ("job", "j3"),
    }
    assert got[("connector.processing", "j1")].duration_ms == 1000
    assert got[("connector.processing", "j1")].outcome == "failed"
    assert got[("connector.processing", "j2")].duration_ms == 350
    assert got[("connector.processing", "j2")].outcome == "completed"
    assert got[("machine", "m-1")].duration_ms == 9000
    assert got[("job", "j3")].duration_ms == 600
    assert all(d.source == "paired" for d in got.values())
    assert got[("job", "j3")].start is events[6] and got[("job", "j3")].end is events[7]


def test_starts_pair_with_the_next_end_in_order() -> None:
    events = [
        e(0, "worker", "step_started", "j"),
        e(100, "worker", "step_started", "j"),
        e(300, "worker", "step_completed", "j"),
        e(600, "worker", "step_completed", "j"),
    ]
    assert [d.duration_ms for d in durations(events)] == [300, 500]


def test_explicit_durations_win_and_time_fields_count() -> None:
    events = [
        e(0, "worker", "connector.processing_started", "j"),
        e(1000, "worker", "connector.processing_completed", "j", data={"durationMs": 987}),
        e(2000, "api-server", "webhook.delivered", "j", data={"durationMs": "42.5"}),
        e(3000, "worker", "job.claimed", "j", data={"queueTimeMs": 250, "badTimeMs": "x"}),
        e(4000, "worker", "job.other", "j", data={"durationMs": True}),
    ]
    ds = durations(events)
    assert [(d.name, d.duration_ms, d.source, d.field) for d in ds] == [
        ("connector.processing", 987.0, "explicit", "durationMs"),
        ("webhook.delivered", 42.5, "explicit", "durationMs"),
        ("job.claimed:queueTimeMs", 250.0, "explicit", "queueTimeMs"),
    ]
    assert ds[0].start is events[0]


# -- per-type stats -------------------------------------------------------------------------


def test_event_type_stats() -> None:
    events = []
    for n, ms in enumerate([100, 200, 300, 400]):
        jid = f"j{n}"
        events += [
            e(0, "worker", "connector.processing_started", jid),
            e(ms, "worker", "connector.processing_completed", jid),
        ]
    events.append(e(5, "worker", "connector.processing_failed", "jx", level="error"))
    stats = {s.event_type: s for s in event_type_stats(events)}
    done = stats["connector.processing_completed"]
    assert (done.count, done.timed, done.errors) == (4, 4, 0)
    assert done.avg_ms == pytest.approx(250.0)
    assert done.p50_ms == pytest.approx(250.0)
    assert done.p95_ms == pytest.approx(385.0)
    assert done.max_ms == 400.0
    started = stats["connector.processing_started"]
    assert (started.count, started.timed, started.avg_ms, started.p95_ms) == (4, 0, None, None)
    failed = stats["connector.processing_failed"]
    assert (failed.count, failed.errors, failed.timed) == (1, 1, 0)
    assert failed.services == ["worker"]
    assert next(iter(stats)) in ("connector.processing_started", "connector.processing_completed")


# -- comparison with the usual -------------------------------------------------------------


def typical(
    job_id: str, *, work: int = 1000, attempt: int = 1, worker: str = "w-1", jtype: str = "comfyui"
) -> list[TelemetryEvent]:
    ids = {"worker_id": worker, "machine_id": "m-" + worker[-1]}
    return [
        e(0, "api-server", "job.created", job_id, data={"jobType": jtype, "priority": "normal"}),
        e(100, "api-server", "job.queued", job_id, data={"queueName": jtype}),
        e(200, "worker", "job.claimed", job_id, data={"attempt": attempt}, **ids),
        e(300, "worker", "job.progress_updated", job_id, data={"progress": 50}, **ids),
        e(300 + work, "worker", "job.progress_updated", job_id, data={"progress": 90}, **ids),
        e(400 + work, "worker", "job.completed", job_id, **ids),
    ]  # fmt: skip


def test_compare_with_usual_steps_sequence_and_fields() -> None:
    others = [
        ev for n in range(6) for ev in typical(f"t{n}", work=1000 + 10 * n, worker=f"w-{n % 2}")
    ]
    # Another type's jobs are not typical of this one.
    others += [ev for n in range(6) for ev in typical(f"o{n}", work=50_000, jtype="openai")]
    # The job under study: a slow middle step, a second attempt on a worker none of them
    # used, and no job.completed (its worker died).
    slow = typical("job_1", work=9000, attempt=2, worker="w-9")[:-1]
    cmp = compare_with_usual(slow + others, "job_1")
    assert (cmp.job_id, cmp.job_type, cmp.typical) == ("job_1", "comfyui", 6)
    assert cmp.duration_ms == 9300
    assert cmp.usual_duration is not None and cmp.usual_duration.p50_ms == pytest.approx(1425)
    assert [(s.from_type, s.to_type) for s in cmp.steps] == [
        ("job.created", "job.queued"),
        ("job.queued", "job.claimed"),
        ("job.claimed", "job.progress_updated"),
        ("job.progress_updated", "job.progress_updated"),
    ]
    (slower,) = cmp.slower_steps
    assert (slower.index, slower.duration_ms) == (4, 9000)
    assert slower.usual is not None and slower.usual.p50_ms == pytest.approx(1025)
    assert slower.excess_ms == pytest.approx(9000 - slower.usual.p95_ms)
    assert not cmp.steps[0].slower and cmp.steps[0].usual is not None
    assert [(d.event_type, d.change, d.count, d.usual_count) for d in cmp.sequence] == [
        ("job.completed", "missing", 0, 1)
    ]
    assert cmp.usual_sequence == [ev.event_type for ev in typical("x")]
    fields = {f.name: f for f in cmp.fields}
    assert (fields["attempt"].value, fields["attempt"].usual, fields["attempt"].differs) == (
        "2",
        "1",
        True,
    )
    assert fields["worker"].value == "w-9" and fields["worker"].differs
    assert fields["worker"].distinct == 2 and fields["worker"].value_share == 0
    assert not fields["connector"].differs and fields["connector"].usual_share == 1.0
    assert not fields["priority"].differs
    # A typical job is typical.
    same = compare_with_usual(others, "t3")
    assert same.sequence == [] and same.slower_steps == []
    assert not any(f.differs for f in same.fields)


def test_compare_with_usual_extra_events_and_an_explicit_reference() -> None:
    others = [ev for n in range(5) for ev in typical(f"t{n}")]
    retried = [*typical("job_1"), e(2000, "worker", "job.retried", "job_1")]
    cmp = compare_with_usual(retried, "job_1", reference=others)
    assert [(d.event_type, d.change) for d in cmp.sequence] == [("job.retried", "extra")]
    # Nothing to compare with: no usual at all, and nothing said to differ.
    alone = compare_with_usual(retried, "job_1", reference=[])
    assert alone.typical == 0 and alone.usual_duration is None
    assert all(s.usual is None and not s.slower for s in alone.steps)
    assert alone.sequence == [] and not any(f.differs for f in alone.fields)


# -- correlation ----------------------------------------------------------------------------


def test_correlate_by_trace_worker_and_machine_in_window() -> None:
    trace = trace_id_for_job("j")
    own = [
        e(0, "api-server", "job.created", "j"),
        e(100, "worker", "job.claimed", "j", worker_id="w-1", machine_id="m-1"),
        e(9000, "worker", "job.completed", "j", worker_id="w-1", machine_id="m-1"),
    ]
    same_trace = e(50, "webhook-service", "webhook.sent", None, trace_id=trace)
    same_trace_late = e(500_000, "webhook-service", "webhook.retried", None, trace_id=trace)
    worker_near = e(9500, "worker", "worker.heartbeat", None, worker_id="w-1")
    worker_far = e(60_000, "worker", "worker.heartbeat", None, worker_id="w-1")
    machine_near = e(-2000, "machine", "machine.gpu_warning", None, machine_id="m-1")
    other_machine = e(200, "machine", "machine.gpu_warning", None, machine_id="m-2")
    other_job = e(300, "worker", "job.claimed", "k", worker_id="w-1")
    events = [*own, same_trace, same_trace_late, worker_near, worker_far, machine_near,
              other_machine, other_job]  # fmt: skip
    c = correlate(events, "j")
    assert c.timeline.events == own
    assert c.trace_ids == [trace]
    assert c.by_trace == [same_trace, same_trace_late]
    # The workers' and machines' events over the job's life and 20 s (the stall threshold)
    # after its last event: not before it started, not a minute after.
    assert c.by_worker == {"w-1": [other_job, worker_near]}
    assert c.by_machine == {}
    assert [(h.from_service, h.to_service) for h in c.handoffs] == [("api-server", "worker")]
    assert c.timeline.gaps[0].duration_ms == 8900
    assert (c.window_start_ms, c.window_end_ms) == (T0, T0 + 29_000)
    assert [(r.event, r.by) for r in c.related] == [
        (same_trace, ("trace",)),
        (other_job, ("worker",)),
        (worker_near, ("worker",)),
        (same_trace_late, ("trace",)),
    ]
    wider = correlate(events, "j", after_ms=60_000)
    assert wider.by_worker == {"w-1": [other_job, worker_near, worker_far]}


def test_correlate_lists_each_event_once_and_the_most_telling_first() -> None:
    own = [
        e(0, "worker", "job.claimed", "j", worker_id="w-1", machine_id="m-1"),
        e(1000, "worker", "connector.processing_started", "j", worker_id="w-1", machine_id="m-1"),
    ]
    restart = e(19_000, "worker", "worker.starting", None, worker_id="w-1", machine_id="m-1")
    others = [
        e(500 + n * 4000, "worker", "job.progress_updated", "k", worker_id="w-2", machine_id="m-1")
        for n in range(5)
    ]
    c = correlate([*own, restart, *others], "j")
    assert len(c.related) == 6 and len({id(r.event) for r in c.related}) == 6
    (again,) = [r for r in c.related if r.event is restart]
    assert (again.by, again.keys) == (("worker", "machine"), ("w-1", "m-1"))
    # The worker's own event first, then the other job's nearest to j's life; in time order.
    telling = c.most_telling(3)
    assert [r.event for r in telling] == [others[0], others[1], restart]
    assert c.most_telling(None) == c.related


def test_correlate_unknown_job_is_empty() -> None:
    c = correlate([e(0, "worker", "x.y", "other", worker_id="w")], "nope")
    assert c.timeline.steps == [] and c.by_trace == [] and c.by_worker == {}


def test_histogram_counts_events_and_errors_in_equal_slices() -> None:
    from emp_tui.analysis import histogram
    from emp_tui.events import TelemetryEvent

    def at(ms: int, level: str = "info") -> TelemetryEvent:
        return TelemetryEvent(
            timestamp=ms, service="worker", event_type="job.x", trace_id="0" * 32, level=level
        )

    events = [at(0), at(5), at(10), at(55, "error"), at(59, "error"), at(99), at(100), at(150)]
    hist = histogram(events, 0, 100, 10)
    assert hist.counts == (2, 1, 0, 0, 0, 2, 0, 0, 0, 2)
    assert hist.errors == (0, 0, 0, 0, 0, 2, 0, 0, 0, 0)
    assert hist.bucket_of(57) == 5 and hist.bucket_of(100) == 9 and hist.bucket_of(101) is None
    # One instant: every event in one slice, no division by zero.
    assert histogram([at(7), at(7)], 7, 7, 4).counts == (2, 0, 0, 0)
