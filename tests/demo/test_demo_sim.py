"""The simulated services against a real redis-server: the plan's end-to-end flow,
reproducibility, and the faults each scenario promises (seen in the raw events)."""

from __future__ import annotations

from itertools import pairwise

import pytest
import redis
from simhelp import START_MS, in_emission_order, job_events, key, read_events, run_sim

from emp_tui.demo.model import (
    CONNECTOR_BY_NAME,
    SERVICES,
    UNSERVED_CONNECTOR,
    FaultRates,
    SimConfig,
)
from emp_tui.demo.scenarios import SCENARIOS, STALL_MS, apply_scenario
from emp_tui.demo.sim import Simulation

TERMINAL = {"job.completed", "job.failed"}


def test_a_job_created_on_the_api_side_is_queued_and_claimed_through_redis(redis_url: str) -> None:
    sim = run_sim(redis_url, 60, seed=11, max_jobs=40)
    events = read_events(redis_url)
    assert len(events) == sim.events
    created = [e for e in events if e.event_type == "job.created"]
    assert len(created) == 40
    for job in created:
        steps = job_events(events, job.job_id or "")
        by_type = {e.event_type: e for e in steps}
        assert by_type["job.created"].service == "api-server"
        assert by_type["job.queued"].service == "api-server"
        claimed = by_type["job.claimed"]
        assert claimed.service == "worker"
        assert claimed.worker_id and claimed.worker_id == claimed.data["workerId"]
        assert claimed.data["claimTimeMs"] == claimed.timestamp - job.timestamp
        assert [e.event_type for e in steps][:5] == [
            "job.created",
            "redis_function.executing",
            "redis_function.completed",
            "job.queued",
            "job.claimed",
        ]
        # One trace per job, across services.
        assert len({e.trace_id for e in steps}) == 1
        assert TERMINAL & set(by_type)
    # The claim really happened in Redis: the queue's record names the same worker.
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        for job in created:
            claimed = next(
                e for e in events if e.job_id == job.job_id and e.event_type == "job.claimed"
            )
            stored = client.hgetall(sim.queue.job_key(job.job_id or ""))
            assert stored["workerId"] == claimed.worker_id
            assert stored["status"] in ("completed", "failed")
    # Every service took part, each through its own emitter.
    assert {e.service for e in events} == set(SERVICES)
    assert all(START_MS <= e.timestamp <= START_MS + 60_000 for e in events)


def test_the_same_seed_gives_the_same_event_sequence(redis_url: str) -> None:
    config = {"seed": 5, "faults": FaultRates(), "scenario": "mixed", "rate": 60.0}
    first = run_sim(redis_url, 150, **config)
    first_events = [key(e) for e in in_emission_order(read_events(redis_url))]
    first_times = [e.timestamp for e in in_emission_order(read_events(redis_url))]
    with redis.Redis.from_url(redis_url) as client:
        client.flushall()
    second = run_sim(redis_url, 150, **config)
    second_events = [key(e) for e in in_emission_order(read_events(redis_url))]
    assert first.record == second.record
    assert first_events == second_events
    assert first_times == [e.timestamp for e in in_emission_order(read_events(redis_url))]
    assert len(first_events) > 3000
    assert sum(first.faults.values()) > 0
    with redis.Redis.from_url(redis_url) as client:
        client.flushall()
    other = run_sim(redis_url, 150, **{**config, "seed": 6})
    assert other.record != first.record


def test_rate_sets_the_event_rate(redis_url: str) -> None:
    slow = run_sim(redis_url, 120, seed=3, rate=10.0)
    with redis.Redis.from_url(redis_url) as client:
        client.flushall()
    fast = run_sim(redis_url, 120, seed=3, rate=80.0)
    # After the 12 s start-up, events per virtual second are near the target.
    assert 5 < slow.events / 108 < 15
    assert 60 < fast.events / 108 < 100
    assert len(fast.workers) > len(slow.workers)


def test_fault_rates_parse_and_refuse_nonsense() -> None:
    rates = FaultRates().updated("stall=0.5, worker-crash=0.1")
    assert (rates.stall, rates.worker_crash, rates.burst) == (0.5, 0.1, FaultRates().burst)
    for bad in ("stall", "stall=x", "stall=-1", "nope=0.1", "stall=nan"):
        with pytest.raises(ValueError):
            FaultRates().updated(bad)


def test_unknown_scenario_is_refused(redis_url: str) -> None:
    sim = Simulation(redis_url, "s", SimConfig())
    with pytest.raises(ValueError, match="unknown scenario"):
        apply_scenario(sim, "nope")
    sim.close()


def test_a_scenario_is_planted_before_the_first_run_only(redis_url: str) -> None:
    sim = Simulation(redis_url, "s", SimConfig(faults=FaultRates.none()), start_ms=START_MS)
    sim.run(until_ms=START_MS + 1_000)
    with pytest.raises(RuntimeError, match="before the simulation first runs"):
        apply_scenario(sim, "stalled-job")
    sim.close()


# -- each scenario's anomaly, in the raw events ------------------------------------------


def scenario_run(redis_url: str, name: str, seconds: float = 150):
    sim = run_sim(redis_url, seconds, seed=21, scenario=name)
    return sim, read_events(redis_url)


def test_stalled_job_has_a_long_gap_and_then_completes(redis_url: str) -> None:
    sim, events = scenario_run(redis_url, "stalled-job")
    steps = job_events(events, sim.story_jobs["stalled-job"])
    gaps = [b.timestamp - a.timestamp for a, b in pairwise(steps)]
    assert max(gaps) >= STALL_MS
    assert steps[-2].event_type == "job.completed" or steps[-1].event_type == "job.completed"
    assert sim.faults["stall"] == 1


def test_worker_crash_leaves_the_job_without_an_end(redis_url: str) -> None:
    sim, events = scenario_run(redis_url, "worker-crash")
    job_id = sim.story_jobs["worker-crash"]
    steps = job_events(events, job_id)
    assert not TERMINAL & {e.event_type for e in steps}
    assert steps[-1].event_type == "job.progress_updated"
    worker = steps[-1].worker_id
    restarts = [e for e in events if e.worker_id == worker and e.event_type == "worker.starting"]
    assert len(restarts) == 2 and restarts[1].data["restarts"] == 1
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        assert client.hget(sim.queue.job_key(job_id), "status") == "claimed"
        assert client.sismember(f"{sim.queue.ns}:active", job_id)


def test_failing_connector_fails_its_jobs_and_only_those(redis_url: str) -> None:
    _, events = scenario_run(redis_url, "failing-connector")
    failed = [e for e in events if e.event_type == "connector.processing_failed"]
    assert len(failed) >= 10
    assert {e.data["connectorType"] for e in failed} == {"openai"}
    assert all(e.level == "error" for e in failed)
    completed = {
        e.data["connectorType"] for e in events if e.event_type == "connector.processing_completed"
    }
    assert {"comfyui", "a1111"} <= completed


def test_slow_machine_keeps_its_jobs_waiting(redis_url: str) -> None:
    sim, events = scenario_run(redis_url, "slow-machine")
    steps = job_events(events, sim.story_jobs["slow-machine"])
    claimed = next(e for e in steps if e.event_type == "job.claimed")
    assert claimed.data["claimTimeMs"] > 20_000
    assert claimed.machine_id == "gpu-01"
    started = [
        e
        for e in events
        if e.event_type == "pm2.service_started" and e.data["serviceName"] == "comfyui"
    ]
    assert [e.machine_id for e in started] == ["gpu-01"]


def test_never_claimed_job_waits_in_the_queue(redis_url: str) -> None:
    sim, events = scenario_run(redis_url, "never-claimed", 90)
    job_id = sim.story_jobs["never-claimed"]
    assert [e.event_type for e in job_events(events, job_id)][-1] == "job.queued"
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        assert client.zscore(f"{sim.queue.ns}:queue:{UNSERVED_CONNECTOR}", job_id) is not None
        assert client.hget(sim.queue.job_key(job_id), "connector") == UNSERVED_CONNECTOR
    health = [e for e in events if e.service == "monitor"]
    assert health[-1].data["status"] == "degraded" and health[-1].level == "warn"
    assert health[-1].data["oldestPendingMs"] > 30_000


def test_service_failure_brings_a_machine_up_degraded(redis_url: str) -> None:
    _, events = scenario_run(redis_url, "service-failure", 60)
    failed = [e for e in events if e.event_type == "pm2.service_failed"]
    assert [(e.machine_id, e.data["serviceName"]) for e in failed] == [("gpu-01", "comfyui")]
    ready = next(e for e in events if e.event_type == "machine.ready" and e.machine_id == "gpu-01")
    assert ready.data["failedServices"] == ["comfyui"] and ready.level == "warn"
    workers = [e for e in events if e.event_type == "worker.ready" and e.machine_id == "gpu-01"]
    assert workers and all("comfyui" not in e.data["connectorTypes"] for e in workers)


def test_traffic_burst_raises_the_job_rate(redis_url: str) -> None:
    sim, events = scenario_run(redis_url, "traffic-burst", 60)
    created = [e.timestamp - START_MS for e in events if e.event_type == "job.created"]
    during = sum(1 for t in created if 20_000 <= t < 35_000)
    before = sum(1 for t in created if 5_000 <= t < 20_000)
    assert during > 2 * before
    assert sim.faults["burst"] == 1


def test_every_scenario_runs(redis_url: str) -> None:
    for name in SCENARIOS:
        with redis.Redis.from_url(redis_url) as client:
            client.flushall()
        sim = run_sim(redis_url, 40, seed=2, scenario=name)
        assert sim.story_lines, name


def test_the_monitor_names_jobs_without_progress(redis_url: str) -> None:
    sim, events = scenario_run(redis_url, "stalled-job", 120)
    job_id = sim.story_jobs["stalled-job"]
    checks = [e for e in events if e.service == "monitor"]
    flagged = [e for e in checks if e.data["stalledJobs"]]
    assert flagged and all(e.data["stalledJobs"] == [job_id] for e in flagged)
    assert all(e.level == "warn" and e.data["status"] == "degraded" for e in flagged)
    # ... only while it is stuck: it completes, and the checks after that are healthy.
    assert checks[-1].data["stalledJobs"] == [] and checks[-1].level == "info"


@pytest.mark.parametrize("rate", [10.0, 40.0, 2000.0])
def test_the_fleet_has_room_for_every_connector(redis_url: str, rate: float) -> None:
    sim = Simulation(redis_url, "s", SimConfig(rate=rate, faults=FaultRates.none()))
    for connector in ("comfyui", "a1111", "ollama", "openai"):
        kind = "api" if connector == "openai" else "gpu"
        slots = sum(p.gpus if kind == "gpu" else 4 for p in sim.machine_plans if p.kind == kind)
        # Busy slots at this job rate, were every slot of the kind to run only this connector.
        busy = sim.job_rate * CONNECTOR_BY_NAME[connector].share
        busy *= CONNECTOR_BY_NAME[connector].mean_ms / 1000
        assert slots >= 1.5 * busy, connector
    gpu = ["comfyui", "a1111", "ollama"]
    assert sum(p.gpus for p in sim.machine_plans if p.kind == "gpu") >= sim.slots_needed(gpu)
    assert sum(p.kind == "api" for p in sim.machine_plans) >= 2
    sim.close()


PLAN_EVENTS = {
    "api-server": {
        "server.starting",
        "server.ready",
        "job.created",
        "job.queued",
        "job.creation_failed",
        "redis_function.executing",
        "redis_function.completed",
        "redis_function.failed",
        "websocket.connected",
        "websocket.subscribed",
        "websocket.disconnected",
        "health_check.performed",
        "api.error",
    },
    "worker": {
        "worker.starting",
        "worker.ready",
        "job.claimed",
        "connector.processing_started",
        "connector.processing_completed",
        "connector.processing_failed",
        "job.progress_updated",
        "job.completed",
        "job.failed",
    },
    "machine": {
        "machine.starting",
        "machine.hardware_detected",
        "pm2.service_starting",
        "pm2.service_started",
        "pm2.service_failed",
        "machine.services_ready",
        "machine.ready",
    },
    "webhook-service": {"webhook.sent", "webhook.failed"},
    "monitor": {"health_check.performed"},
}


def test_every_event_the_plan_names_is_emitted_by_its_service(redis_url: str) -> None:
    faults = FaultRates().updated("bad_request=0.05")
    sim = run_sim(redis_url, 240, seed=13, scenario="mixed", faults=faults)
    seen: dict[str, set[str]] = {}
    for event in read_events(redis_url):
        seen.setdefault(event.service, set()).add(event.event_type)
    for service, types in PLAN_EVENTS.items():
        assert types <= seen[service], (service, types - seen[service])
    assert set(seen) == set(PLAN_EVENTS)
    assert sim.jobs_failed > 0 and sim.jobs_completed > 0


def test_two_simulations_can_share_one_redis(redis_url: str) -> None:
    first = Simulation(redis_url, "a", SimConfig(seed=1), start_ms=START_MS, record=True)
    second = Simulation(redis_url, "b", SimConfig(seed=2), start_ms=START_MS, record=True)
    for seconds in (20, 40, 60, 80):
        for sim in (first, second):
            sim.run(until_ms=START_MS + seconds * 1000)
    for sim in (first, second):
        sim.close(timeout=10)
        assert sim.error is None and sim.queue.ns.startswith("{emp:demo:")
        created = {job for _, kind, job, _ in sim.record or [] if kind == "job.created"}
        claimed = [job for _, kind, job, _ in sim.record or [] if kind == "job.claimed"]
        assert claimed and set(claimed) <= created
        assert len(claimed) == len(set(claimed))
    assert first.queue.ns != second.queue.ns
    with redis.Redis.from_url(redis_url) as client:
        assert client.keys("{emp:demo:*") == []  # each removed its own keys
