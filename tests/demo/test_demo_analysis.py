"""Each scenario produces the anomaly it promises, and the analysis core finds it in the
events read back from the stream."""

from __future__ import annotations

import redis
from simhelp import START_MS, read_events, run_sim

from emp_tui import analysis, problems
from emp_tui.demo.scenarios import STALL_MS


def scenario(redis_url: str, name: str, seconds: float, **config: object):
    sim = run_sim(redis_url, seconds, seed=8, scenario=name, **config)
    return sim, read_events(redis_url), START_MS + int(seconds * 1000)


def test_the_stalled_jobs_gap_is_flagged(redis_url: str) -> None:
    sim, events, now = scenario(redis_url, "stalled-job", 120)
    job_id = sim.story_jobs["stalled-job"]
    timeline = analysis.job_timeline(events, job_id, now_ms=now)
    assert timeline.status == "completed"
    (gap,) = [g for g in timeline.gaps if g.kind == "threshold"]
    assert gap.duration_ms >= STALL_MS
    assert (gap.from_type, gap.to_type) == ("job.progress_updated", "job.progress_updated")
    assert gap.from_service == gap.to_service == "worker"
    assert timeline.steps[gap.after_index].gap == gap
    # No other job of the run has a gap that long.
    others = {e.job_id for e in events if e.job_id and e.job_id != job_id}
    assert all(
        max((g.duration_ms for g in analysis.job_timeline(events, j).gaps), default=0) < STALL_MS
        for j in others
    )


def test_the_crashed_workers_job_shows_as_stalled(redis_url: str) -> None:
    # Long enough for the analysis' default stall threshold (5 min) to pass.
    sim, events, now = scenario(redis_url, "worker-crash", 360, rate=15.0)
    job_id = sim.story_jobs["worker-crash"]
    timeline = analysis.job_timeline(events, job_id, now_ms=now)
    assert timeline.status == "stalled"
    assert timeline.steps[-1].event.event_type == "job.progress_updated"
    found = problems.find_problems(events, now_ms=now)
    lost = [f for f in found if f.kind in ("stalled", "orphaned")]
    assert [(f.kind, f.job_id) for f in lost] == [("orphaned", job_id)]


def test_the_failing_connectors_edge_shows_errors(redis_url: str) -> None:
    def edge(events: list) -> analysis.HandoffEdge:
        edges = analysis.handoffs(events)
        return next(e for e in edges if (e.source, e.target) == ("worker", "webhook-service"))

    _, events, now = scenario(redis_url, "failing-connector", 120)
    failing = edge(events)
    found = problems.failure_clusters(problems.Facts(events, now_ms=now))
    clusters = [f for f in found if f.connector is not None]  # failed jobs, not webhooks
    with redis.Redis.from_url(redis_url) as client:
        client.flushall()
    _, calm_events, _ = scenario(redis_url, "stalled-job", 120)
    calm = edge(calm_events)
    assert failing.error_share > 0.15
    assert failing.error_share > 3 * calm.error_share
    failed = {job for f in clusters for job in f.jobs}
    assert len(failed) >= 10
    assert all("503" in f.title for f in clusters)


def test_the_slow_machines_jobs_wait_for_a_worker(redis_url: str) -> None:
    sim, events, now = scenario(redis_url, "slow-machine", 120)
    timeline = analysis.job_timeline(events, sim.story_jobs["slow-machine"], now_ms=now)
    waits = [g for g in timeline.gaps if (g.from_type, g.to_type) == ("job.queued", "job.claimed")]
    assert len(waits) == 1 and waits[0].duration_ms > 20_000
    assert (waits[0].from_service, waits[0].to_service) == ("api-server", "worker")
    assert timeline.status == "completed"


def test_the_never_claimed_job_shows_as_queued_and_waiting_at_job_queued(redis_url: str) -> None:
    sim, events, now = scenario(redis_url, "never-claimed", 360, rate=15.0)
    job_id = sim.story_jobs["never-claimed"]
    timeline = analysis.job_timeline(events, job_id, now_ms=now)
    assert timeline.status == "queued"
    assert timeline.silent_ms is not None and timeline.silent_ms > 60_000
    assert timeline.services == ["api-server"]
    assert timeline.steps[-1].event.event_type == "job.queued"
