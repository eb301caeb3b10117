"""The detectors of emp_tui.problems on hand-made sequences: what each one finds, what it
leaves alone, the evidence it points at, and the order of the findings."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from redis import Redis

from emp_tui.events import TelemetryEvent, default_level
from emp_tui.problems import (
    KINDS,
    SEVERITIES,
    Facts,
    Finding,
    GroupState,
    StreamState,
    clock_skew,
    collector_problems,
    error_signature,
    failure_clusters,
    find_problems,
    never_claimed,
    queue_waits,
    service_failures,
    silent_services,
    slow_jobs,
    stalled_jobs,
    traffic_bursts,
)
from emp_tui.query import parse_query

T0 = 1_700_000_000_000
_seq = itertools.count()


def e(
    at: int,
    service: str,
    event_type: str,
    job: str | None = None,
    *,
    stream_at: int | None = None,
    data: dict[str, Any] | None = None,
    **ids: Any,
) -> TelemetryEvent:
    """An event ``at`` ms after T0, with the stream ID the stream would have given it."""
    return TelemetryEvent(
        timestamp=T0 + at,
        service=service,
        event_type=event_type,
        trace_id="ab" * 16,
        job_id=job,
        level=str(ids.pop("level", default_level(event_type))),
        data=data or {},
        id=f"{T0 + (at if stream_at is None else stream_at)}-{next(_seq)}",
        **ids,
    )


def job(
    job_id: str,
    at: int,
    *,
    jtype: str = "comfyui",
    worker: str = "gpu-01-w0",
    wait: int = 40,
    steps: tuple[int, ...] = (1000, 1000, 1000),
    end: str | None = "job.completed",
    error: str | None = None,
    user: str = "user_001",
) -> list[TelemetryEvent]:
    """One job of the demo's shape: created and queued by the api-server, claimed after
    ``wait`` ms by ``worker``, progress steps of the given lengths, then ``end``."""
    machine = worker.rsplit("-w", 1)[0]
    ids = {"worker_id": worker, "machine_id": machine}
    out = [
        e(at, "api-server", "job.created", job_id, data={"jobType": jtype}, user_id=user),
        e(at + 2, "api-server", "job.queued", job_id, data={"queueName": jtype}),
        e(at + 2 + wait, "worker", "job.claimed", job_id, data={"attempt": 1}, **ids),
    ]
    t = at + 2 + wait + 10
    out.append(e(t, "worker", "connector.processing_started", job_id,
                 data={"connectorType": jtype}, **ids))  # fmt: skip
    for n, step in enumerate(steps, start=1):
        t += step
        out.append(e(t, "worker", "job.progress_updated", job_id, data={"progress": 20 * n}, **ids))
    if end is None:
        return out
    t += 5
    if error is not None:
        out.append(e(t, "worker", "connector.processing_failed", job_id,
                     data={"connectorType": jtype, "error": error}, **ids))  # fmt: skip
        out.append(e(t + 3, "worker", "job.failed", job_id, data={"error": error}, **ids))
    else:
        out.append(e(t, "worker", end, job_id, **ids))
    return out


def fleet(
    *workers: str, types: tuple[str, ...] = ("comfyui",), at: int = 0
) -> list[TelemetryEvent]:
    """Workers that say they are ready for ``types``."""
    return [
        e(at, "worker", "worker.ready", None, data={"connectorTypes": list(types)},
          worker_id=w, machine_id=w.rsplit("-w", 1)[0])
        for w in workers
    ]  # fmt: skip


def usual_jobs(count: int, *, start: int = 0, every: int = 500, **kw: Any) -> list[TelemetryEvent]:
    return [
        ev
        for n in range(count)
        for ev in job(f"ok_{n:03d}", start + n * every, worker=f"gpu-0{n % 3 + 1}-w0", **kw)
    ]


def kinds(found: list[Finding]) -> list[tuple[str, str | None]]:
    return [(f.kind, f.job_id or f.connector or f.machine_id or f.service) for f in found]


def evidence_jobs(finding: Finding, events: list[TelemetryEvent]) -> set[str]:
    assert finding.evidence is not None
    query = parse_query(finding.evidence)
    return {ev.job_id for ev in events if ev.job_id and query.matches(ev)}


# -- the finding ----------------------------------------------------------------------------


def test_finding_json_and_identity() -> None:
    finding = Finding(
        kind="stalled",
        severity="error",
        title="stalled: job_1 silent",
        first_ms=10,
        last_ms=20,
        job_id="job_1",
        jobs=("job_1",),
        evidence="job:job_1",
        data={"quietMs": 10},
    )
    assert finding.to_dict() == {
        "kind": "stalled",
        "severity": "error",
        "title": "stalled: job_1 silent",
        "firstMs": 10,
        "lastMs": 20,
        "count": 1,
        "jobId": "job_1",
        "jobs": ["job_1"],
        "workerId": None,
        "machineId": None,
        "service": None,
        "connector": None,
        "evidence": "job:job_1",
        "key": "stalled:job_1:10",
        "data": {"quietMs": 10},
    }
    assert SEVERITIES == ("critical", "error", "warn", "info")
    assert len(set(KINDS)) == len(KINDS)


def test_nothing_to_find_in_nothing() -> None:
    assert find_problems([]) == []
    assert find_problems([], now_ms=T0) == []


def test_findings_most_severe_then_newest_then_longest() -> None:
    events = [
        *fleet("gpu-01-w0", "gpu-02-w0", "gpu-03-w0"),
        *usual_jobs(12),
        # two jobs silent until now, one for longer
        *job("quiet_a", 10_000, end=None),
        *job("quiet_b", 20_000, worker="gpu-02-w0", end=None),
        # a flux-pro job no worker can take
        e(15_000, "api-server", "job.created", "lost", data={"jobType": "flux-pro"}),
        e(15_002, "api-server", "job.queued", "lost", data={"queueName": "flux-pro"}),
    ]
    found = find_problems(events, now_ms=T0 + 80_000)
    # All three are errors going on until now: the one going on for longest first.
    assert kinds(found) == [
        ("stalled", "quiet_a"),
        ("never-claimed", "lost"),
        ("stalled", "quiet_b"),
    ]
    assert [f.rank for f in found] == sorted(f.rank for f in found)
    # "now" defaults to the newest event: then no job has been quiet for long, but the
    # flux-pro job has waited 8 s.
    assert kinds(find_problems(events)) == [("never-claimed", "lost")]


# -- stalled and orphaned jobs --------------------------------------------------------------


def test_a_quiet_claimed_job_is_stalled_past_the_threshold() -> None:
    events = [*fleet("gpu-01-w0"), *usual_jobs(6), *job("stuck", 10_000, steps=(1000,), end=None)]
    last = T0 + 10_000 + 2 + 40 + 10 + 1000
    facts = Facts(events, now_ms=last + 20_000)
    assert stalled_jobs(facts) == []  # exactly at the threshold is not over it
    (found,) = stalled_jobs(Facts(events, now_ms=last + 25_000))
    assert (found.kind, found.severity, found.job_id) == ("stalled", "error", "stuck")
    assert (found.worker_id, found.machine_id, found.connector) == (
        "gpu-01-w0",
        "gpu-01",
        "comfyui",
    )
    assert (found.first_ms, found.last_ms) == (last, last + 25_000)
    assert found.title == (
        "stalled: stuck (comfyui) silent for 25s on gpu-01-w0 after job.progress_updated "
        "(20%); it usually moves on within 1s"
    )
    assert evidence_jobs(found, events) == {"stuck"}
    # A lower threshold finds it sooner.
    assert stalled_jobs(Facts(events, now_ms=last + 6_000)) == []
    assert find_problems(events, now_ms=last + 6_000, stall_ms=5_000)[0].job_id == "stuck"


def test_the_stall_threshold_grows_with_the_usual_next_step() -> None:
    # Jobs whose steps take 30 s: a job quiet for 40 s is not stalled, one for 70 s is.
    slow_kind = [
        ev
        for n in range(5)
        for ev in job(f"long_{n}", n * 1000, jtype="video", steps=(30_000, 30_000))
    ]
    events = [*slow_kind, *job("video_1", 200_000, jtype="video", steps=(30_000,), end=None)]
    last = T0 + 200_000 + 52 + 30_000
    assert stalled_jobs(Facts(events, now_ms=last + 40_000)) == []
    assert [f.job_id for f in stalled_jobs(Facts(events, now_ms=last + 70_000))] == ["video_1"]


def test_jobs_waiting_for_a_claim_or_already_ended_are_not_stalled() -> None:
    waiting = [
        e(0, "api-server", "job.created", "w", data={"jobType": "comfyui"}),
        e(1, "api-server", "job.queued", "w", data={"queueName": "comfyui"}),
    ]
    # Only a webhook left in range: the job ended before it.
    webhook_only = [e(5, "webhook-service", "webhook.sent", "h")]
    # An API error about an old job is not a running job.
    asked = [e(9, "api-server", "api.error", "old", data={"route": "/jobs/:id", "status": 404})]
    failed = job("f", 0, error="boom")
    facts = Facts([*waiting, *webhook_only, *asked, *failed], now_ms=T0 + 3_600_000)
    assert stalled_jobs(facts) == []


def test_a_job_whose_worker_restarted_is_orphaned() -> None:
    events = [
        *fleet("gpu-02-w2"),
        *job("lost", 0, worker="gpu-02-w2", steps=(1000, 1000), end=None),
        e(20_050, "worker", "worker.starting", None, worker_id="gpu-02-w2", machine_id="gpu-02",
          data={"reason": "restarted by pm2 after exit code 137", "restarts": 1}),
        e(21_000, "worker", "worker.ready", None, worker_id="gpu-02-w2", machine_id="gpu-02",
          data={"connectorTypes": ["comfyui"]}),
    ]  # fmt: skip
    # No threshold to wait for: the restart says it all, even a second later.
    (found,) = find_problems(events, now_ms=T0 + 21_000)
    assert (found.kind, found.severity, found.job_id) == ("orphaned", "error", "lost")
    assert (found.worker_id, found.machine_id) == ("gpu-02-w2", "gpu-02")
    assert found.title == (
        "orphaned: worker gpu-02-w2 restarted (exit 137) at 22:13:40, 18s after the last "
        "event of lost (comfyui), which never ended"
    )
    assert (found.first_ms, found.last_ms) == (T0 + 2052, T0 + 20_050)
    assert found.evidence == "worker:gpu-02-w2"
    evidence = parse_query(found.evidence)
    assert any(ev.event_type == "worker.starting" and evidence.matches(ev) for ev in events)


def test_a_job_whose_worker_took_another_job_or_whose_machine_restarted_is_orphaned() -> None:
    dropped = job("dropped", 0, worker="gpu-01-w0", steps=(1000,), end=None)
    moved_on = [*dropped, *job("next", 5_000, worker="gpu-01-w0")]
    (found,) = stalled_jobs(Facts(moved_on, now_ms=T0 + 10_000))
    assert found.kind == "orphaned" and found.job_id == "dropped"
    assert "worker gpu-01-w0 took next at" in found.title
    assert found.data["lostBy"] == "job.claimed"
    rebooted = [
        *dropped,
        e(8_000, "machine", "machine.starting", None, machine_id="gpu-01"),
    ]
    (found,) = stalled_jobs(Facts(rebooted, now_ms=T0 + 9_000))
    assert found.kind == "orphaned" and "machine gpu-01 restarted at" in found.title


def test_stalled_jobs_ignore_the_monitors_verdicts() -> None:
    # The monitor calls a job stalled; the job is fine: no finding. The monitor does not
    # call the stuck one stalled; it is found anyway.
    events = [
        *fleet("gpu-01-w0"),
        *usual_jobs(5),
        *job("stuck", 10_000, steps=(1000,), end=None),
        e(40_000, "monitor", "health_check.performed", None, level="warn",
          data={"stalledJobs": ["ok_001"], "status": "degraded"}),
    ]  # fmt: skip
    found = find_problems(events, now_ms=T0 + 40_000)
    assert kinds(found) == [("stalled", "stuck")]
    without = [ev for ev in events if ev.service != "monitor"]
    assert find_problems(without, now_ms=T0 + 40_000) == found


# -- failure clusters -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "signature"),
    [
        ("upstream 503 Service Unavailable from api.openai.com",
         "upstream <n> Service Unavailable from api.openai.com"),
        ("CUDA out of memory. Tried to allocate 2.00 GiB",
         "CUDA out of memory. Tried to allocate <n> GiB"),
        ("a1111 API returned HTTP 500: NansException in Unet",
         "a1111 API returned HTTP <n>: NansException in Unet"),
        ("429 Too Many Requests: rate limit reached for dall-e-3",
         "<n> Too Many Requests: rate limit reached for dall-e-3"),
        ("ollama: model 'llama3:70b' not found", "ollama: model 'llama3:70b' not found"),
        ("job job_3bab8d88348a on gpu-02-w2: 0xdeadbeef 123e4567-e89b-12d3-a456-426614174000"
         " deadbeef12", "job <id> on <id>: <hex> <uuid> <hex>"),
    ],
)  # fmt: skip
def test_error_signature(message: str, signature: str) -> None:
    assert error_signature(message) == signature


def test_a_failure_burst_is_told_apart_from_the_steady_rate_of_the_same_error() -> None:
    error = "upstream {} Service Unavailable from api.openai.com"
    events = [*fleet("api-01-w0", "api-02-w0", types=("openai",))]
    # Ten minutes of openai jobs, one every 2 s; two fail with a 503 early and late (the
    # steady rate), and every job from 200 s to 260 s fails with one (the burst).
    for n in range(300):
        at = n * 2_000
        failing = n in (10, 280) or 100 <= n < 130
        events += job(f"j{n:03d}", at, jtype="openai", worker=f"api-0{n % 2 + 1}-w0",
                      steps=(300,), error=error.format(503 if n % 3 else 502) if failing else None,
                      user=f"user_{n % 7}")  # fmt: skip
    found = failure_clusters(Facts(events))
    burst, steady = found if found[0].severity == "critical" else found[::-1]
    assert (burst.kind, burst.severity, burst.connector, burst.count) == (
        "failure-cluster",
        "critical",
        "openai",
        30,
    )
    assert burst.title.startswith(
        'failure burst: 30 openai jobs failed with "upstream 503 Service Unavailable from '
        'api.openai.com" in 58s ('
    )
    assert burst.title.endswith("): 100% of openai jobs, 7 users; otherwise 2 in 9m58s")
    assert burst.machine_id is None  # both machines
    assert set(burst.jobs) == {f"j{n:03d}" for n in range(100, 130)}
    assert burst.job_id == "j129"
    assert (steady.severity, steady.count, set(steady.jobs)) == ("info", 2, {"j010", "j280"})
    assert "besides the burst at" in steady.title
    # The evidence shows every failure of the kind, burst and steady, and nothing else.
    assert evidence_jobs(burst, events) == set(burst.jobs) | set(steady.jobs)


def test_failures_on_one_machine_name_it_and_other_errors_cluster_too() -> None:
    events = [*fleet("gpu-01-w0", "gpu-02-w0", "gpu-03-w0")]
    for n in range(60):
        worker = f"gpu-0{n % 3 + 1}-w0"
        error = "CUDA out of memory. Tried to allocate 2.00 GiB" if n % 10 == 1 else None
        if error and n > 30:
            worker = "gpu-02-w0"
        events += job(f"j{n:02d}", n * 10_000, worker=worker, error=error)
    events += [
        e(n * 60_000, "webhook-service", "webhook.failed", f"j{n:02d}",
          data={"error": f"HTTP {502 + n % 3} from receiver"})
        for n in range(2, 9)
    ]  # fmt: skip
    found = {f.connector or f.service: f for f in failure_clusters(Facts(events))}
    cuda = found["comfyui"]
    assert (cuda.severity, cuda.count, cuda.machine_id) == ("info", 6, None)
    webhooks = found["webhook-service"]
    assert webhooks.title.startswith(
        'failures: 7 webhook.failed events from webhook-service: "HTTP 504 from receiver"'
    )
    assert webhooks.evidence == 'type:webhook.failed data.error:"HTTP * from receiver"'
    # Most of a kind on one machine: named.
    events += [
        ev
        for n in range(60, 66)
        for ev in job(
            f"k{n}", n * 10_000, worker="gpu-02-w0", error="CUDA out of memory. Tried 1.00 GiB"
        )
    ]
    (mostly,) = [
        f for f in failure_clusters(Facts(events)) if "Tried <n> GiB" in f.data["signature"]
    ]
    assert mostly.machine_id == "gpu-02" and ", on gpu-02" in mostly.title  # fmt: skip


# -- slow jobs ------------------------------------------------------------------------------


def test_a_job_far_slower_than_usual_names_the_step() -> None:
    events = [
        *fleet("gpu-01-w0"),
        *usual_jobs(20),
        *job("slow", 20_000, steps=(1000, 35_000, 1000)),
    ]
    facts = Facts(events)
    assert "slow" in facts.stepped  # looked at step by step because of that step
    (found,) = slow_jobs(facts)
    assert (found.kind, found.severity, found.job_id, found.connector) == (
        "slow-job",
        "warn",
        "slow",
        "comfyui",
    )
    assert found.title == (
        "slow: slow (comfyui) took 37s (usual 3.02s, p95 3.02s): 35s from job.progress_updated "
        "to job.progress_updated (usual 1s, p95 1s) on gpu-01-w0"
    )
    assert found.data["step"] == ["job.progress_updated", "job.progress_updated"]
    # A job slow all over (every step three times longer) is found by its total.
    even = job("even", 30_000, steps=(9000, 9000, 9000))
    facts = Facts([*events, *even])
    assert "even" in facts.stepped
    assert {f.job_id for f in slow_jobs(facts)} == {"slow", "even"}


def test_slow_jobs_need_enough_usual_jobs_and_a_real_excess() -> None:
    few = [*usual_jobs(5), *job("slow", 20_000, steps=(1000, 35_000, 1000))]
    assert slow_jobs(Facts(few)) == []
    # 3 s more than a 1 s step is twice the p95 but under gap_ms past it.
    mild = [*usual_jobs(20), *job("mild", 20_000, steps=(1000, 4_000, 1000))]
    assert slow_jobs(Facts(mild)) == []
    # The wait for a worker is not the job's slowness.
    waited = [*usual_jobs(20), *job("waited", 20_000, wait=60_000)]
    assert slow_jobs(Facts(waited)) == []


# -- queue waits, capacity and never-claimed jobs -------------------------------------------


def machine_start(machine: str, at: int, took: int, services: list[str], failed: str | None = None
                  ) -> list[TelemetryEvent]:  # fmt: skip
    out = [
        e(at, "machine", "machine.starting", None, machine_id=machine,
          data={"capabilities": services}),
    ]  # fmt: skip
    for service in services:
        if service == failed:
            out.append(e(at + took - 100, "machine", "pm2.service_failed", None,
                         machine_id=machine, data={"serviceName": service,
                                                   "error": "exited with code 1"}))  # fmt: skip
        else:
            out.append(e(at + took - 100, "machine", "pm2.service_started", None,
                         machine_id=machine, data={"serviceName": service}))  # fmt: skip
    ready: dict[str, Any] = {"startupTimeMs": took}
    if failed:
        ready.update(degraded=True, failedServices=[failed])
    out.append(e(at + took, "machine", "machine.ready", None, machine_id=machine, data=ready))
    return out


def test_only_one_slow_machine_serves_a_type() -> None:
    serving = [s for s in ("comfyui",)]
    events = [
        *machine_start("gpu-01", 0, 57_000, serving),
        *fleet("gpu-01-w0", "gpu-01-w1", at=57_500),
    ]
    # comfyui jobs from 12 s wait until gpu-01 is ready; then they flow.
    for n in range(30):
        created = 12_000 + n * 2_000
        claimed = max(created + 40, 57_600 + n * 100)
        events += job(f"j{n:02d}", created, wait=claimed - created - 2,
                      worker=f"gpu-01-w{n % 2}")  # fmt: skip
    (found,) = queue_waits(Facts(events))
    assert (found.kind, found.severity, found.connector, found.machine_id) == (
        "queue-wait",
        "error",
        "comfyui",
        "gpu-01",
    )
    assert found.title == (
        "only gpu-01 serves comfyui; ready at 22:14:17 after a 57s start; 22 jobs waited up "
        "to 45.6s"
    )
    assert found.job_id == "j00" and found.count == 22
    assert found.evidence == "machine:gpu-01 type:machine.*,pm2.*,worker.*"
    assert parse_query(found.evidence).matches(events[0])


def test_a_burst_of_arrivals_explains_waits_and_a_failed_service_is_named() -> None:
    events = [
        *machine_start("gpu-01", 0, 3_000, ["comfyui"]),
        *machine_start("gpu-02", 0, 3_000, ["comfyui"], failed="comfyui"),
        *machine_start("gpu-03", 0, 3_000, ["comfyui"]),
        *fleet("gpu-01-w0", "gpu-03-w0", at=3_500),
    ]
    # One job a second for 5 minutes, with 60 more in 15 s from 120 s: those wait.
    times = [10_000 + n * 1_000 for n in range(300)]
    times += [120_000 + n * 250 for n in range(60)]
    for n, created in enumerate(sorted(times)):
        in_burst = 120_000 <= created < 150_000
        wait = 8_000 + (created - 120_000) // 5 if in_burst else 40
        events += job(f"j{n:03d}", created, wait=wait, worker=f"gpu-0{1 + 2 * (n % 2)}-w0")
    facts = Facts(events)
    (burst,) = traffic_bursts(facts)
    assert (burst.kind, burst.severity) == ("traffic-burst", "warn")
    assert burst.title.startswith("traffic burst: ")
    assert "comfyui jobs waited for a worker, up to" in burst.title
    (waits,) = queue_waits(facts)
    assert waits.title.startswith("comfyui: ")
    assert "while job arrivals ran" in waits.title
    assert waits.title.endswith(
        "2 machines, 2 workers serve comfyui; comfyui failed to start on gpu-02"
    )
    assert waits.severity == "warn"  # under 30 s
    (failed,) = service_failures(facts)
    assert (failed.machine_id, failed.service, failed.severity) == ("gpu-02", "comfyui", "error")
    assert failed.title.endswith(
        ": exited with code 1; gpu-02 came up degraded; 2 other machines run comfyui"
    )


def test_never_claimed_needs_a_type_nobody_serves_and_a_wait() -> None:
    events = [*fleet("gpu-01-w0"), *usual_jobs(3)]
    for n, at in enumerate((10_000, 30_000)):
        events += [
            e(at, "api-server", "job.created", f"flux_{n}", data={"jobType": "flux-pro"}),
            e(at + 2, "api-server", "job.queued", f"flux_{n}", data={"queueName": "flux-pro"}),
        ]
    assert never_claimed(Facts(events, now_ms=T0 + 15_000)) == []  # waiting 5 s: not yet
    (found,) = never_claimed(Facts(events, now_ms=T0 + 70_000))
    assert (found.kind, found.severity, found.connector, found.count) == (
        "never-claimed",
        "error",
        "flux-pro",
        2,
    )
    assert found.job_id == "flux_0" and found.jobs == ("flux_0", "flux_1")
    assert found.title == (
        "never claimed: 2 flux-pro jobs waiting, the oldest (flux_0) for 60s; no worker "
        "advertises flux-pro (workers serve comfyui)"
    )
    assert evidence_jobs(found, events) == {"flux_0", "flux_1"}
    # Waiting jobs of a type that is served are queue waits, not never-claimed.
    assert queue_waits(Facts(events, now_ms=T0 + 70_000)) == []


def test_a_service_that_failed_then_started_or_has_no_other_home() -> None:
    only = machine_start("gpu-01", 0, 3_000, ["comfyui"], failed="comfyui")
    (found,) = service_failures(Facts(only))
    assert found.severity == "critical" and found.title.endswith("no other machine runs comfyui")
    restarted = [*only, e(9_000, "machine", "pm2.service_started", None, machine_id="gpu-01",
                          data={"serviceName": "comfyui"})]  # fmt: skip
    (found,) = service_failures(Facts(restarted))
    assert found.severity == "info" and "; started at " in found.title


# -- services and clocks --------------------------------------------------------------------


def heartbeats(service: str, start: int, end: int, every: int) -> list[TelemetryEvent]:
    return [e(at, service, "health_check.performed") for at in range(start, end, every)]


def test_a_regular_service_that_stops_is_silent() -> None:
    events = [
        *heartbeats("monitor", 0, 600_000, 5_000),
        *heartbeats("api-server", 0, 420_000, 15_000),  # stops at 7 min
        *[e(at, "machine", "machine.ready", None, machine_id=f"m{at}")
          for at in range(0, 20_000, 1000)],
    ]  # fmt: skip
    (found,) = silent_services(Facts(events, now_ms=T0 + 600_000))
    assert (found.kind, found.severity, found.service) == ("silent-service", "warn", "api-server")
    assert found.title.startswith("silent: api-server has sent nothing for 3m15s (since ")
    assert found.title.endswith("before, one event every 15s")
    # The machines spoke only at start-up: not silent, just done. And a minute of silence
    # of a service that speaks every 15 s is not enough.
    assert silent_services(Facts(events, now_ms=T0 + 470_000)) == []
    # Everything stopped at once: one finding, not one per service.
    (all_quiet,) = silent_services(Facts(events, now_ms=T0 + 900_000))
    assert all_quiet.title.startswith("silent: no service has sent anything for 5m05s")
    assert all_quiet.service is None


def test_jobs_running_when_everything_went_silent_are_that_silence_not_each_stalled() -> None:
    """The platform (or its telemetry) stops at once: one finding, critical, names the jobs
    that were running then, instead of one "stalled" per job. A job already stalled before
    stays a finding of its own."""
    stuck = job("stuck", 5_000, worker="gpu-07-w0", steps=(1000,), end=None)  # quiet from ~6 s
    running = [
        job(f"run_{n}", 200_000 + n * 300, worker=f"gpu-2{n}-w0", steps=(1000, 1000), end=None)
        for n in range(5)
    ]
    events = [
        *fleet("gpu-01-w0"),
        *usual_jobs(6),
        *stuck,
        *heartbeats("monitor", 0, 203_000, 5_000),
        *(ev for one in running for ev in one),
    ]
    events.sort(key=lambda ev: ev.timestamp)
    last = max(ev.timestamp for ev in events)
    found = find_problems(events, now_ms=last + 600_000)
    assert kinds(found)[:2] == [("silent-service", None), ("stalled", "stuck")]
    silence = found[0]
    assert silence.severity == "critical"
    assert silence.jobs == tuple(f"run_{n}" for n in range(5))
    assert silence.title.endswith("; 5 jobs were running then (5 comfyui)")
    assert evidence_jobs(silence, events) == {f"run_{n}" for n in range(5)}
    assert not any(f.kind == "stalled" and f.job_id != "stuck" for f in found)
    # While the services still speak, each quiet job is its own finding.
    before = find_problems([*events, *heartbeats("monitor", 205_000, 260_000, 5_000)],
                           now_ms=T0 + 260_000)  # fmt: skip
    assert {f.job_id for f in before if f.kind == "stalled"} == {"stuck", *(
        f"run_{n}" for n in range(5))}  # fmt: skip
    assert not any(f.kind == "silent-service" for f in before)


def test_a_silence_of_everything_makes_no_burst_of_what_came_before() -> None:
    """Jobs arriving steadily, then nothing from anyone: the arrivals are not a burst
    against the silence (after the newest event nothing is known, not even "no jobs")."""
    events = [
        e(n * 1000, "api-server", "job.created", f"steady_{n}", data={"jobType": "comfyui"})
        for n in range(180)
    ]
    assert traffic_bursts(Facts(events, now_ms=T0 + 180_000)) == []
    assert traffic_bursts(Facts(events, now_ms=T0 + 180_000 + 20 * 60_000)) == []


def test_clock_skew_against_the_other_services_not_the_stream() -> None:
    # webhook-service stamps its events 120 s ahead of the time the stream gives them.
    events = []
    for at in range(0, 120_000, 500):
        events.append(e(at, "api-server", "api.request"))
        events.append(e(at + 100, "worker", "worker.heartbeat"))
        events.append(e(at + 200 + 120_000, "webhook-service", "webhook.sent",
                        stream_at=at + 200))  # fmt: skip
    (found,) = clock_skew(Facts(events))
    assert (found.kind, found.severity, found.service) == ("clock-skew", "warn", "webhook-service")
    assert found.title.startswith("clock skew: webhook-service's timestamps run 2m00s ahead of")
    # A replay that stamps its own times, every service alike, is not skew: the stream
    # gave all of these events the same second.
    replay = [
        e(at, service, "x.y", stream_at=0)
        for at in range(0, 600_000, 1_000)
        for service in ("api-server", "worker", "webhook-service")
    ]
    assert clock_skew(Facts(replay)) == []


# -- collectors and the stream --------------------------------------------------------------


def health(consumer: str, **fields: str) -> dict[str, str]:
    return {"consumer": consumer, "state": "running", "lag": "0", "trimmed_lost": "0", **fields}


def test_collectors_absent_lagging_or_losing_events() -> None:
    events = heartbeats("api-server", 0, 100_001, 10)  # 100 events/s
    facts = Facts(events)
    assert collector_problems(facts, None, None) == []  # not known: nothing said
    (absent,) = collector_problems(facts, [], StreamState("emp:events", 10_000))
    assert (absent.kind, absent.severity) == ("collector-absent", "warn")
    assert absent.title == (
        "no collector is reading emp:events: what MAXLEN trims (~10,000 entries, about "
        "1m40s at 100 events/s) is gone for good"
    )
    found = collector_problems(
        facts,
        [
            health("c1"),
            health("c2", lag="6000", trimmed_lost="1234", started_ms=str(T0)),
            health("c3", lag="1500", state="stopping"),
        ],
        StreamState("emp:events", 4_000),
    )
    assert [(f.kind, f.severity, f.service) for f in found] == [
        ("trim-loss", "error", "c2"),
        ("collector-lag", "error", "c2"),
        ("collector-lag", "warn", "c3"),
        ("collector-lag", "warn", "c3"),
    ]
    assert found[0].title.startswith("trim loss: collector c2 lost 1,234 events to MAXLEN")
    assert found[1].title.startswith("collector c2 is 6,000 entries behind (60% of MAXLEN")
    assert found[3].title == "collector c3 is stopping"


def test_no_collector_follows_what_happened_of_its_severity() -> None:
    """Without a collector the warning is "new" at every look: it must not head the list over
    the story (here a job far slower than usual, a warning that ended a while ago)."""
    events = [
        *fleet("gpu-01-w0"),
        *usual_jobs(20),
        *job("slow", 20_000, steps=(1000, 35_000, 1000)),
    ]
    now = max(event.timestamp for event in events) + 60_000
    found = find_problems(
        events, now_ms=now, collectors=[], stream=StreamState("emp:events", 10_000)
    )
    assert [(f.kind, f.job_id) for f in found] == [("slow-job", "slow"), ("collector-absent", None)]
    slow, absent = found
    assert slow.severity == absent.severity == "warn"
    assert absent.last_ms > slow.last_ms  # newer, and still after it


def test_a_trimmed_stream_and_a_group_behind_its_oldest_entry() -> None:
    facts = Facts(heartbeats("api-server", 0, 10_000, 10))
    stream = StreamState(
        "emp:events",
        length=9_990,
        first_id=f"{T0 + 60_000}-0",
        last_id=f"{T0 + 300_000}-5",
        groups=(
            GroupState("emp-collector", last_delivered_id=f"{T0 + 10_000}-0"),
            GroupState("fresh", last_delivered_id="0-0"),
            GroupState("ok", last_delivered_id=f"{T0 + 299_000}-0"),
        ),
    )
    behind, full = collector_problems(facts, None, stream)
    assert (behind.kind, behind.severity) == ("trim-loss", "error")
    assert behind.title.startswith(
        "trim loss: consumer group emp-collector is behind the stream's oldest entry"
    )
    assert (full.kind, full.severity) == ("trim-loss", "info")
    assert full.title == (
        "emp:events is at its MAXLEN (9,990 entries): it holds the last 4m00s; older events "
        "exist only where a collector wrote them"
    )


def test_find_problems_passes_the_collectors_and_the_stream_on() -> None:
    events = [*fleet("gpu-01-w0"), *usual_jobs(3)]
    found = find_problems(events, collectors=[], stream=StreamState("emp:events", 10))
    assert kinds(found) == [("collector-absent", None)]


def test_the_stream_state_from_a_real_xinfo(redis_url: str, rclient: Redis) -> None:
    # Two entries read by a group, then four more with the stream trimmed to three.
    ids = [rclient.xadd("s", {"n": str(n)}) for n in range(2)]
    rclient.xgroup_create("s", "emp-collector", id="0")
    rclient.xreadgroup("emp-collector", "c1", {"s": ">"}, count=2)
    ids += [rclient.xadd("s", {"n": str(n)}, maxlen=3, approximate=False) for n in range(2, 6)]
    rclient.xgroup_create("s", "late", id="$")
    with Redis.from_url(redis_url) as raw:  # bytes, where rclient decodes
        for client in (rclient, raw):
            state = StreamState.from_xinfo(
                "s", client.xinfo_stream("s"), client.xinfo_groups("s"), maxlen=3
            )
            assert (state.key, state.length, state.maxlen) == ("s", 3, 3)
            assert (state.first_id, state.last_id) == (ids[3], ids[5])
            groups = {g.name: g for g in state.groups}
            assert groups["emp-collector"].last_delivered_id == ids[1]
            assert (groups["emp-collector"].pending, groups["emp-collector"].consumers) == (2, 1)
            assert groups["late"].last_delivered_id == ids[5]
            found = collector_problems(Facts([]), None, state)
            assert [(f.kind, f.data.get("group")) for f in found] == [
                ("trim-loss", "emp-collector"),
                ("trim-loss", None),  # at its MAXLEN
            ]
