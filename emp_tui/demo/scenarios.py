"""Deterministic stories planted into a built simulation, before it runs (``--scenario NAME``).

:func:`apply_scenario` plants one: it changes the fleet or plants jobs, an outage or a burst,
starting ``at_ms`` after the start of the run, and adds a line for the user to
``sim.story_lines`` (and, where one job carries the story, its ID to
``sim.story_jobs[name]``). What actually happened, with the jobs, workers and machines
involved, is in ``sim.incidents`` as the run goes (see :mod:`emp_tui.demo.ground_truth`).
``mixed`` plants several of them: it is what ``emp-tui demo`` runs, so that the app opens on a
system with real problems to find.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from emp_tui.demo.model import QUEUE_WAIT, UNSERVED_CONNECTOR, Incident
from emp_tui.demo.sim import Simulation

OUTAGE_ERROR: Final = "upstream 503 Service Unavailable from api.openai.com"
STALL_MS: Final = 35_000
SLOW_START_MS: Final = 45_000
STORY_AT_MS: Final = 20_000  # when a story starts, from the start of the run


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    summary: str
    plant: Callable[[Simulation, int], None]  # (sim, story start in ms from the start)
    seconds: float  # simulated time from the start in which the whole story is told


def _stalled_job(sim: Simulation, at: int) -> None:
    job = sim.plant_job(at, "comfyui", "stalled-job", stall=(2, STALL_MS))
    sim.story_lines.append(
        f"stalled-job: {job.id} (comfyui) stops for {STALL_MS // 1000} s between two progress "
        "updates, then completes"
    )


def _failing_connector(sim: Simulation, at: int, duration_ms: int = 90_000) -> None:
    sim.plant_outage("openai", at, at + duration_ms, OUTAGE_ERROR, "failing-connector")
    sim.story_lines.append(
        f"failing-connector: every openai job fails for {duration_ms // 1000} s from "
        f"+{at // 1000} s ({OUTAGE_ERROR})"
    )


def _worker_crash(sim: Simulation, at: int) -> None:
    job = sim.plant_job(at, "comfyui", "worker-crash", crash_at=2)
    sim.story_lines.append(
        f"worker-crash: the worker running {job.id} dies halfway through; pm2 restarts it "
        "and the job is never finished"
    )


def _slow_machine(sim: Simulation, at: int) -> None:
    gpu = [plan for plan in sim.machine_plans if plan.kind == "gpu"]
    slow = gpu[0]
    slow.slow_ms = SLOW_START_MS
    slow.failing_service = None
    slow.gpus = max(slow.gpus, sim.slots_needed(["comfyui"]))
    for plan in gpu[1:]:
        plan.services = tuple(s for s in plan.services if s != "comfyui")
    sim.plant_wait(
        Incident(
            QUEUE_WAIT,
            "slow-machine",
            start_ms=sim.start_ms + at,
            machines=[slow.id],
            connectors=["comfyui"],
            detail={"slowStartMs": SLOW_START_MS},
        )
    )
    job = sim.plant_job(at, "comfyui", "slow-machine")
    sim.story_lines.append(
        f"slow-machine: {slow.id}, the only machine with comfyui, takes "
        f"{SLOW_START_MS // 1000} s more to start it; comfyui jobs such as {job.id} wait in "
        "the queue meanwhile"
    )


def _never_claimed(sim: Simulation, at: int) -> None:
    job = sim.plant_job(at, UNSERVED_CONNECTOR, "never-claimed")
    sim.story_lines.append(
        f"never-claimed: {job.id} asks for {UNSERVED_CONNECTOR}, which no worker runs; it "
        "waits in the queue for ever"
    )


def _traffic_burst(sim: Simulation, at: int, factor: float = 3.0) -> None:
    sim.plant_burst(at, 15_000, factor, "traffic-burst")
    sim.story_lines.append(f"traffic-burst: {factor:g}x the traffic for 15 s from +{at // 1000} s")


def _service_failure(sim: Simulation, at: int) -> None:
    plan = next(p for p in sim.machine_plans if p.kind == "gpu")
    plan.failing_service = "comfyui"
    plan.story = "service-failure"
    sim.story_lines.append(
        f"service-failure: comfyui fails to start on {plan.id}, which comes up degraded"
    )


MIXED_CYCLE_MS: Final = 300_000
MIXED_CYCLES: Final = 12


def _mixed(sim: Simulation, at: int) -> None:
    # The stories start early (so a short history already holds them) and come back every
    # five minutes for an hour, so a demo left running keeps having trouble to find.
    gpu = [p for p in sim.machine_plans if p.kind == "gpu"]
    gpu[-1].failing_service = "a1111"
    gpu[-1].story = "service-failure"
    for cycle in range(MIXED_CYCLES):
        start = at + cycle * MIXED_CYCLE_MS
        told = len(sim.story_lines)
        _stalled_job(sim, start)
        _never_claimed(sim, start + 4_000)
        _worker_crash(sim, start + 8_000)
        _failing_connector(sim, start + 15_000, 60_000)
        _traffic_burst(sim, start + 120_000, 2.0)
        if cycle:
            del sim.story_lines[told:]
    sim.story_lines.append(f"service-failure: a1111 fails to start on {gpu[-1].id}")
    sim.story_lines.append(
        f"... and the same stories again every {MIXED_CYCLE_MS // 60_000} minutes"
    )


SCENARIOS: Final[dict[str, Scenario]] = {
    s.name: s
    for s in (
        Scenario("stalled-job", "one job stops for 35 s between two steps", _stalled_job, 120),
        Scenario(
            "failing-connector",
            "the openai connector fails every job for 90 s",
            _failing_connector,
            150,
        ),
        Scenario("worker-crash", "a worker dies mid-job: the job never ends", _worker_crash, 90),
        Scenario(
            "slow-machine",
            "the only comfyui machine starts slowly; jobs wait",
            _slow_machine,
            120,
        ),
        Scenario("never-claimed", "a job asks for a connector no worker has", _never_claimed, 90),
        Scenario("traffic-burst", "three times the traffic for 15 s", _traffic_burst, 60),
        Scenario(
            "service-failure",
            "a machine's comfyui service fails to start",
            _service_failure,
            60,
        ),
        Scenario(
            "mixed",
            "the demo's default: all but slow-machine, every 5 min, over random faults",
            _mixed,
            200,
        ),
    )
}


def apply_scenario(sim: Simulation, name: str, at_ms: int = STORY_AT_MS) -> None:
    """Plant scenario ``name`` into ``sim``, which has not run yet; its story starts
    ``at_ms`` after the start. Raises ValueError for an unknown name."""
    scenario = SCENARIOS.get(name)
    if scenario is None:
        raise ValueError(f"unknown scenario {name!r} (known: {', '.join(SCENARIOS)})")
    scenario.plant(sim, at_ms)
