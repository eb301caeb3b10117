"""run_scenario() and its ground truth: every scenario, with the demo's random faults on top,
at two seeds, as the detectors' tests run them. Every incident it reports, planted or random,
is checked against the events in the stream: the jobs, workers, machines, connectors and
times it names are what the events show."""

from __future__ import annotations

import time
from collections import defaultdict

import pytest
import redis

from emp_tui.demo import (
    INCIDENT_KINDS,
    SCENARIOS,
    FaultRates,
    GroundTruth,
    Incident,
    SimulationError,
    run_scenario,
)
from emp_tui.demo.model import CRASH_REASON, SERVICE_CONNECTOR, UNSERVED_CONNECTOR
from emp_tui.events import TelemetryEvent, decode

STREAM = "emp:events"
START_MS = 1_800_000_000_000
TERMINAL = {"job.completed", "job.failed"}

# What each scenario plants: (kind, how many) in the run's default duration.
PLANTED = {
    "stalled-job": {"stalled_job": 1},
    "worker-crash": {"orphaned_job": 1},
    "failing-connector": {"failure_cluster": 1},
    "slow-machine": {"queue_wait": 1},
    "never-claimed": {"never_claimed": 1},
    "traffic-burst": {"traffic_burst": 1},
    "service-failure": {"service_failed": 1},
    "mixed": {
        "stalled_job": 1,
        "never_claimed": 1,
        "orphaned_job": 1,
        "failure_cluster": 1,
        "traffic_burst": 1,
        "service_failed": 1,
    },
}


class Events:
    """The stream's events, indexed the ways the checks need."""

    def __init__(self, url: str) -> None:
        with redis.Redis.from_url(url) as client:
            self.all = [decode(i, f) for i, f in client.xrange(STREAM)]
        self.jobs: dict[str, list[TelemetryEvent]] = defaultdict(list)
        for event in sorted(self.all, key=lambda e: e.timestamp):
            if event.job_id:
                self.jobs[event.job_id].append(event)

    def of(self, job: str, kind: str) -> list[TelemetryEvent]:
        return [e for e in self.jobs[job] if e.event_type == kind]

    def connector(self, job: str) -> str:
        (created,) = self.of(job, "job.created")
        return str(created.data["jobType"])

    def runner(self, job: str) -> tuple[str | None, str | None]:
        (claimed,) = self.of(job, "job.claimed")
        return claimed.worker_id, claimed.machine_id


def check(incident: Incident, ev: Events, truth: GroundTruth) -> None:
    """The incident is what the events show."""
    kind, jobs = incident.kind, incident.jobs
    assert kind in INCIDENT_KINDS
    assert truth.start_ms <= incident.start_ms <= truth.end_ms
    if kind in ("stalled_job", "orphaned_job", "failed_job"):
        (job,) = jobs
        assert incident.connectors == [ev.connector(job)]
        worker, machine = ev.runner(job)
        assert (incident.workers, incident.machines) == ([worker], [machine])
    if kind == "stalled_job":
        steps = ev.jobs[jobs[0]]
        before = [e for e in steps if e.timestamp == incident.start_ms]
        assert before, "no event of the job where the stall starts"
        if incident.end_ms is not None:
            after = next(e for e in steps if e.timestamp > incident.start_ms)
            assert after.timestamp == incident.end_ms
            assert incident.detail["gapMs"] == incident.end_ms - incident.start_ms >= 10_000
    elif kind == "orphaned_job":
        steps = ev.jobs[jobs[0]]
        assert not TERMINAL & {e.event_type for e in steps}
        assert steps[-1].timestamp == incident.start_ms
        if incident.end_ms is not None:
            (restart,) = [
                e
                for e in ev.all
                if e.event_type == "worker.starting"
                and e.worker_id == incident.workers[0]
                and e.timestamp == incident.end_ms
            ]
            assert restart.data["reason"] == CRASH_REASON
    elif kind == "failed_job":
        (failed,) = ev.of(jobs[0], "job.failed")
        assert failed.data["error"] == incident.error
        assert failed.timestamp == incident.start_ms == incident.end_ms
    elif kind == "failure_cluster":
        (connector,) = incident.connectors
        assert incident.end_ms is None or incident.end_ms > incident.start_ms
        for job in jobs:
            assert ev.connector(job) == connector
            (failed,) = ev.of(job, "job.failed")
            assert failed.data["error"] == incident.error
            worker, machine = ev.runner(job)
            assert worker in incident.workers and machine in incident.machines
            (started,) = ev.of(job, "connector.processing_started")
            assert incident.start_ms <= started.timestamp
            assert incident.end_ms is None or started.timestamp < incident.end_ms
        # ... and every job of that connector that failed in the window is one of them
        # (unless it was failing anyway: a random fault of its own).
        random = {j for i in truth.of_kind("failed_job") for j in i.jobs}
        in_window = {
            e.job_id
            for e in ev.all
            if e.event_type == "connector.processing_started"
            and e.data["connectorType"] == connector
            and incident.start_ms <= e.timestamp < (incident.end_ms or truth.end_ms)
            and e.job_id
            and ev.of(e.job_id, "job.failed")
        }
        assert in_window - random == set(jobs)
    elif kind == "queue_wait":
        (machine,) = incident.machines
        (connector,) = incident.connectors
        created = sorted(ev.of(job, "job.created")[0].timestamp for job in jobs)
        assert created[0] == incident.start_ms
        end = incident.end_ms if incident.end_ms is not None else truth.end_ms
        assert created[-1] <= end
        waiting = {
            e.job_id
            for e in ev.all
            if e.event_type == "job.created"
            and e.data["jobType"] == connector
            and e.timestamp <= end
            and e.timestamp >= incident.start_ms
        }
        assert waiting == set(jobs)
        if incident.end_ms is not None:
            first_ready = min(
                e.timestamp
                for e in ev.all
                if e.event_type == "worker.ready" and e.machine_id == machine
            )
            assert first_ready == incident.end_ms
            for job in jobs:
                claimed = ev.of(job, "job.claimed")
                assert not claimed or claimed[0].timestamp >= incident.end_ms
    elif kind == "never_claimed":
        (job,) = jobs
        assert incident.connectors == [UNSERVED_CONNECTOR] == [ev.connector(job)]
        assert ev.jobs[job][-1].event_type == "job.queued"
        assert ev.jobs[job][-1].timestamp == incident.start_ms
        assert incident.end_ms is None
    elif kind == "service_failed":
        (machine,) = incident.machines
        (failed,) = [
            e
            for e in ev.all
            if e.event_type == "pm2.service_failed"
            and e.machine_id == machine
            and e.timestamp == incident.start_ms
        ]
        assert failed.data["serviceName"] == incident.detail["service"]
        assert failed.data["error"] == incident.error
        assert incident.connectors == [SERVICE_CONNECTOR[incident.detail["service"]]]
    elif kind == "rejected_job":
        (job,) = jobs
        (refused,) = ev.of(job, "job.creation_failed")
        assert refused.timestamp == incident.end_ms
        assert refused.data["error"] == incident.error
    elif kind == "traffic_burst":
        assert incident.detail["factor"] >= 2
        assert incident.end_ms is None or 10_000 <= incident.end_ms - incident.start_ms <= 20_000


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_the_ground_truth_of_every_scenario_is_in_the_events(
    redis_url: str, scenario: str, seed: int
) -> None:
    truth = run_scenario(redis_url, STREAM, scenario, seed=seed, faults=FaultRates())
    ev = Events(redis_url)
    assert truth.events == len(ev.all)
    assert truth.end_ms - truth.start_ms == SCENARIOS[scenario].seconds * 1000
    planted = defaultdict(int)
    for story in truth.stories:
        planted[story.kind] += 1
    assert dict(planted) == PLANTED[scenario]
    for incident in truth.incidents:
        check(incident, ev, truth)
    # The planted job of each story is the story's job.
    for story in truth.stories:
        if story.story in truth.story_jobs and story.kind != "queue_wait":
            assert story.jobs == [truth.story_jobs[story.story]]
    assert truth.random_faults  # the faults on top were drawn too
    assert all(i.story is None for i in truth.random_faults)


def test_what_each_story_names(redis_url: str) -> None:
    def story(scenario: str, kind: str) -> Incident:
        with redis.Redis.from_url(redis_url) as client:
            client.flushall()
        truth = run_scenario(redis_url, STREAM, scenario, seed=3, start_ms=START_MS)
        assert not truth.random_faults  # no faults unless asked for
        (found,) = truth.of_kind(kind, planted=True)
        assert found.story == scenario
        return found

    crash = story("worker-crash", "orphaned_job")
    assert crash.workers[0].startswith(crash.machines[0] + "-w")
    assert crash.end_ms is not None and crash.end_ms - crash.start_ms >= 8_000
    outage = story("failing-connector", "failure_cluster")
    assert outage.connectors == ["openai"] and len(outage.jobs) >= 10
    assert (outage.start_ms, outage.end_ms) == (START_MS + 20_000, START_MS + 110_000)
    assert "503" in (outage.error or "")
    wait = story("slow-machine", "queue_wait")
    assert (wait.machines, wait.connectors) == (["gpu-01"], ["comfyui"])
    assert wait.end_ms is not None and wait.end_ms - wait.start_ms > 30_000
    assert len(wait.jobs) > 20
    failed = story("service-failure", "service_failed")
    assert (failed.machines, failed.connectors) == (["gpu-01"], ["comfyui"])
    stall = story("stalled-job", "stalled_job")
    assert stall.detail["gapMs"] >= 35_000


def test_the_same_arguments_give_the_same_truth(redis_url: str) -> None:
    def run(seed: int) -> tuple:
        with redis.Redis.from_url(redis_url) as client:
            client.flushall()
        truth = run_scenario(
            redis_url, STREAM, "mixed", seed=seed, faults=FaultRates(), start_ms=START_MS
        )
        return (
            truth.events,
            [(i.kind, i.story, i.jobs, i.workers, i.start_ms, i.end_ms) for i in truth.incidents],
        )

    first = run(5)
    assert run(5) == first
    assert run(6) != first


def test_by_default_the_run_ends_now_and_leaves_no_queue_keys(redis_url: str) -> None:
    called_ms = time.time_ns() // 1_000_000
    truth = run_scenario(redis_url, STREAM, None, seed=1, duration_s=30)
    assert truth.scenario is None and not truth.stories and truth.story_lines == ()
    assert truth.end_ms - truth.start_ms == 30_000
    with redis.Redis.from_url(redis_url) as client:
        assert client.keys("{emp:demo:*") == []
        newest = client.xrevrange(STREAM, count=1)[0]
    # Event times are simulated, entry IDs are the server's clock: the run ends at the call.
    assert called_ms <= truth.end_ms <= int(newest[0].split(b"-")[0])


def test_bad_arguments_are_one_line_errors(tmp_path) -> None:
    with pytest.raises(ValueError, match="unknown scenario 'nope'"):
        run_scenario(f"unix://{tmp_path}/none.sock", STREAM, "nope", seed=1)
    with pytest.raises(SimulationError, match="does not answer"):
        run_scenario(f"unix://{tmp_path}/none.sock", STREAM, "stalled-job", seed=1)
