"""The detectors of emp_tui.problems on the demo's stories, each planted over the demo's
random faults at two seeds: the story is reported as a finding of its kind, naming the right
job, worker, machine or connector, and it ranks first among the findings of that kind; the
same findings come out with every monitor event removed; and fault-free traffic gives
nothing above info.

Each story is looked at when someone on call would: shortly after it happened (a stall
while the job is silent, a failure burst as it ends), by passing that moment as "now" and
the events up to it. The streams are simulated once per module, as fast as the simulator
goes, into this session's redis-server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from redisproc import RedisProcess

from emp_tui.demo.model import FaultRates, SimConfig
from emp_tui.demo.scenarios import STORY_AT_MS, apply_scenario
from emp_tui.demo.sim import Simulation
from emp_tui.events import TelemetryEvent, decode
from emp_tui.problems import SEVERITY_RANK, Facts, Finding, find_problems, slow_jobs

START_MS = 1_800_000_000_000
SEEDS = (2, 3)
READ_EVERY_MS = 30_000  # read the stream this often: the emitters trim it to ~10,000


# -- the one place that knows how to run the demo and what it planted -----------------------


@dataclass(frozen=True)
class Story:
    """A simulated run and what its scenario planted."""

    events: list[TelemetryEvent]
    story_ms: int  # when the story started
    jobs: dict[str, str]  # story name -> the job that carries it
    gpus: list[str]  # the GPU machines in plan order (scenarios change the first or last)

    def until(self, seconds: float) -> tuple[list[TelemetryEvent], int]:
        """The events up to ``seconds`` into the run, and that moment as "now"."""
        now = START_MS + int(seconds * 1000)
        return [e for e in self.events if e.timestamp <= now], now


def simulate(
    url: str, scenario: str | None, seed: int, seconds: float, faults: FaultRates
) -> Story:
    """Run the simulated services for ``seconds`` of simulated time and read back every event
    they wrote (a stream key of the run's own)."""
    stream = f"emp:events:{scenario}:{seed}:{seconds}"
    config = SimConfig(seed=seed, faults=faults)
    sim = Simulation(url, stream, config, start_ms=START_MS)
    if scenario is not None:
        apply_scenario(sim, scenario, at_ms=STORY_AT_MS)
    events: list[TelemetryEvent] = []
    last = "0-0"
    with redis.Redis.from_url(url) as client:
        until = START_MS
        while until < START_MS + seconds * 1000:
            until = min(until + READ_EVERY_MS, START_MS + int(seconds * 1000))
            sim.run(until_ms=until)
            assert sim.flush(timeout=30)
            for entry_id, fields in client.xrange(stream, f"({last}", "+"):
                events.append(decode(entry_id, fields))
                last = entry_id.decode()
        sim.close(timeout=10)
        client.delete(stream)
    assert sim.error is None and sim.unsent == 0
    gpus = [plan.id for plan in sim.machine_plans if plan.kind == "gpu"]
    return Story(events, START_MS + STORY_AT_MS, dict(sim.story_jobs), gpus)


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stories(redis_session: RedisProcess) -> Iterator[Callable[..., Story]]:
    """Each run once per module: (scenario, seed, seconds, faults) -> Story."""
    runs: dict[tuple[Any, ...], Story] = {}
    redis_session.start()

    def story(scenario: str | None, seed: int, seconds: float, *, faults: bool = True) -> Story:
        key = (scenario, seed, seconds, faults)
        if key not in runs:
            rates = FaultRates() if faults else FaultRates.none()
            runs[key] = simulate(redis_session.url, scenario, seed, seconds, rates)
        return runs[key]

    yield story


def problems_at(story: Story, seconds: float) -> list[Finding]:
    """The findings at that moment, checked to be the same without the monitor's events."""
    events, now = story.until(seconds)
    found = find_problems(events, now_ms=now)
    without_monitor = [e for e in events if e.service != "monitor"]
    assert len(without_monitor) < len(events)
    assert [f.to_dict() for f in find_problems(without_monitor, now_ms=now)] == [
        f.to_dict() for f in found
    ]
    return found


def first_of(found: list[Finding], kind: str) -> Finding:
    of_kind = [f for f in found if f.kind == kind]
    assert of_kind, f"no {kind} finding among {[f.title for f in found]}"
    return of_kind[0]


def claim_of(story: Story, job_id: str) -> TelemetryEvent:
    return next(e for e in story.events if e.job_id == job_id and e.event_type == "job.claimed")


# -- the stories ----------------------------------------------------------------------------


def expect_stalled(story: Story, found: list[Finding]) -> None:
    job_id = story.jobs["stalled-job"]
    stalled = first_of(found, "stalled")
    claim = claim_of(story, job_id)
    assert (stalled.job_id, stalled.worker_id, stalled.machine_id) == (
        job_id,
        claim.worker_id,
        claim.machine_id,
    )
    assert stalled.connector == "comfyui" and stalled.severity == "error"


def expect_orphaned(story: Story, found: list[Finding]) -> None:
    job_id = story.jobs["worker-crash"]
    orphaned = first_of(found, "orphaned")
    claim = claim_of(story, job_id)
    assert (orphaned.job_id, orphaned.worker_id, orphaned.machine_id) == (
        job_id,
        claim.worker_id,
        claim.machine_id,
    )
    assert f"worker {claim.worker_id} restarted (exit 137)" in orphaned.title


def expect_outage(
    story: Story, found: list[Finding], *, after_s: int = 0, seconds: int = 90
) -> None:
    """openai fails every job for ``seconds`` from ``after_s`` into the story."""
    start = story.story_ms + after_s * 1000
    burst = first_of(found, "failure-cluster")
    assert (burst.severity, burst.connector) == ("critical", "openai")
    assert "upstream 503 Service Unavailable from api.openai.com" in burst.title
    # it spans the outage (jobs end a few seconds after it starts and after it ends)
    assert start <= burst.first_ms < start + 10_000
    assert start + (seconds - 10) * 1000 < burst.last_ms
    assert burst.count >= 30


def expect_slow_machine(story: Story, found: list[Finding]) -> None:
    waits = first_of(found, "queue-wait")
    assert (waits.connector, waits.machine_id, waits.severity) == (
        "comfyui",
        story.gpus[0],
        "error",
    )
    assert story.jobs["slow-machine"] in waits.jobs
    assert waits.title.startswith(f"only {story.gpus[0]} serves comfyui; ready at ")


def expect_never_claimed(story: Story, found: list[Finding]) -> None:
    lost = first_of(found, "never-claimed")
    assert lost.connector == "flux-pro" and lost.severity == "error"
    assert story.jobs["never-claimed"] in lost.jobs


def expect_burst(story: Story, found: list[Finding], *, after_s: int = 0) -> None:
    """More traffic for 15 s from ``after_s`` into the story."""
    start = story.story_ms + after_s * 1000
    burst = first_of(found, "traffic-burst")
    # it falls within those 15 s (arrivals are counted by 5 s)
    assert start - 5_000 <= burst.first_ms < start + 5_000
    assert burst.last_ms <= start + 20_000
    assert burst.count >= 40


def expect_service_failure(story: Story, found: list[Finding], machine: str, service: str) -> None:
    failed = first_of(found, "service-failed")
    assert (failed.machine_id, failed.service, failed.severity) == (machine, service, "error")


SCENARIOS: dict[str, tuple[float, Callable[[Story, list[Finding]], None]]] = {
    # scenario: (when to look, in seconds from the start; what must be found)
    "stalled-job": (52, expect_stalled),
    "worker-crash": (60, expect_orphaned),
    "failing-connector": (115, expect_outage),
    "slow-machine": (120, expect_slow_machine),
    "never-claimed": (60, expect_never_claimed),
    "traffic-burst": (90, expect_burst),
    "service-failure": (
        60,
        lambda story, found: expect_service_failure(story, found, story.gpus[0], "comfyui"),
    ),
}


def test_every_scenario_is_covered() -> None:
    from emp_tui.demo.scenarios import SCENARIOS as PLANTED

    assert set(PLANTED) == {*SCENARIOS, "mixed"}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_the_story_is_found_first_of_its_kind(
    stories: Callable[..., Story], scenario: str, seed: int
) -> None:
    seconds, expect = SCENARIOS[scenario]
    story = stories(scenario, seed, seconds)
    expect(story, problems_at(story, seconds))


MIXED_SECONDS = 185
MIXED: list[tuple[float, Callable[[Story, list[Finding]], None]]] = [
    # mixed plants, from the story's start: a stall, a flux-pro job at +4 s, a crash at
    # +8 s, an openai outage for 60 s from +15 s, 2x the traffic for 15 s from +120 s, and
    # a1111 failing to start on the last GPU machine.
    (52, expect_stalled),
    (60, expect_never_claimed),
    (60, lambda story, found: expect_service_failure(story, found, story.gpus[-1], "a1111")),
    (70, expect_orphaned),
    (100, lambda story, found: expect_outage(story, found, after_s=15, seconds=60)),
    (180, lambda story, found: expect_burst(story, found, after_s=120)),
]


@pytest.mark.parametrize("seed", SEEDS)
def test_the_mixed_stories_are_each_found_first_of_their_kind(
    stories: Callable[..., Story], seed: int
) -> None:
    story = stories("mixed", seed, MIXED_SECONDS)
    for seconds, expect in MIXED:
        expect(story, problems_at(story, seconds))


def test_no_false_alarm_on_fault_free_traffic(stories: Callable[..., Story]) -> None:
    story = stories(None, SEEDS[0], 600, faults=False)
    assert len(story.events) > 20_000
    for seconds in (60, 120, 180, 240, 300, 360, 420, 480, 540, 600):
        events, now = story.until(seconds)
        loud = [
            f.title
            for f in find_problems(events, now_ms=now)
            if SEVERITY_RANK[f.severity] > SEVERITY_RANK["info"]
        ]
        assert loud == [], f"at {seconds} s"


def test_slow_jobs_looked_at_step_by_step_agree_with_every_job_looked_at(
    stories: Callable[..., Story],
) -> None:
    # Random stalls give slow jobs to find. The detector looks step by step only at the
    # jobs with a long step between two events of one service; looking at every job must
    # find the same ones.
    story = stories("mixed", SEEDS[0], MIXED_SECONDS)
    facts = Facts(story.events)
    quick = slow_jobs(facts)
    assert len(quick) >= 3
    ended_and_claimed = [j for j in facts.ends if j in facts.claims]
    assert len(facts.stepped) * 10 < len(ended_and_claimed)  # the fast path was taken
    everyone = Facts(story.events)
    everyone.stepped.update(ended_and_claimed)
    assert [f.to_dict() for f in slow_jobs(everyone)] == [f.to_dict() for f in quick]
