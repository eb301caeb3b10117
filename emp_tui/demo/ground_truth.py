"""Run a scenario into a stream and learn what was planted: the ground truth a detector is
measured against.

    from emp_tui.demo import FaultRates, run_scenario

    truth = run_scenario(redis_url, "emp:events", "worker-crash", seed=1, faults=FaultRates())
    (story,) = truth.of_kind("orphaned_job", planted=True)
    story.jobs, story.workers, story.machines, story.connectors   # ['job_…'], ['gpu-02-w1'], …
    story.start_ms, story.end_ms     # the job's last event .. the worker's restart
    truth.end_ms                     # "now" for whoever reads the stream afterwards

:func:`run_scenario` builds a :class:`~emp_tui.demo.sim.Simulation` on fixed-seed randomness,
plants the scenario, runs it in simulated time as fast as it goes (a 35 s stall takes no time
at all), waits until every event is in the stream, removes the run's queue keys, and returns a
:class:`GroundTruth`. The same arguments give the same events (service, type, IDs, data) and
the same truth; the timestamps move with ``start_ms``.

Each entry of the truth is an :class:`~emp_tui.demo.model.Incident`: its ``kind``
(``stalled_job``, ``orphaned_job``, ``failure_cluster``, ``failed_job``, ``queue_wait``,
``never_claimed``, ``service_failed``, ``rejected_job``, ``traffic_burst``; what each means and
what its window is, is in the Incident's docstring), its subjects (``jobs``, ``workers``,
``machines``, ``connectors``; a connector is the job's type, e.g. ``comfyui``, ``openai``,
``flux-pro``), its window (``start_ms``, ``end_ms``: event times in epoch ms; ``end_ms`` None
while it goes on), its ``error`` and a ``detail`` dict (``gapMs`` of a stall, ``service`` of a
failed PM2 service, ``factor`` of a burst, ...). ``story`` names the scenario that planted it;
incidents drawn at random from ``faults`` have ``story=None``.

What each scenario plants (``mixed`` plants the first five every five minutes, and
``service-failure`` of a1111 on the last GPU machine):

========================  ==================  ==================================================
scenario                  kind                subjects
========================  ==================  ==================================================
``stalled-job``           ``stalled_job``     the job, its worker and machine; comfyui
``worker-crash``          ``orphaned_job``    the job, the worker that died, its machine; comfyui
``failing-connector``     ``failure_cluster`` openai; the jobs that failed, their workers/machines
``slow-machine``          ``queue_wait``      the slow machine (gpu-01); comfyui; the jobs waiting
``never-claimed``         ``never_claimed``   the job; flux-pro
``service-failure``       ``service_failed``  the machine; the connector (``detail["service"]``)
``traffic-burst``         ``traffic_burst``   none (the window, ``detail["factor"]``)
========================  ==================  ==================================================
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import redis
from redis.exceptions import RedisClusterException

from emp_tui.config import redacted_url
from emp_tui.demo.model import FaultRates, Incident, SimConfig
from emp_tui.demo.scenarios import SCENARIOS, apply_scenario
from emp_tui.demo.sim import Simulation
from emp_tui.topology import client_for_url

__all__ = ["GroundTruth", "SimulationError", "run_scenario"]


class SimulationError(RuntimeError):
    """The run could not write its events (Redis failed, or events were not sent)."""


@dataclass(frozen=True, slots=True)
class GroundTruth:
    """What a run of :func:`run_scenario` wrote and what went wrong in it."""

    scenario: str | None
    seed: int
    faults: FaultRates
    stream: str
    start_ms: int  # the run's first simulated millisecond
    end_ms: int  # its last: "now" for a reader of the stream
    events: int  # how many it wrote
    incidents: tuple[Incident, ...]  # planted and random, in the order they started
    story_lines: tuple[str, ...]  # what the simulation tells a user about its stories
    story_jobs: dict[str, str]  # story name -> the job planted for it (first of them)

    @property
    def stories(self) -> tuple[Incident, ...]:
        """The planted incidents."""
        return tuple(i for i in self.incidents if i.story is not None)

    @property
    def random_faults(self) -> tuple[Incident, ...]:
        """The incidents drawn at random from the fault rates."""
        return tuple(i for i in self.incidents if i.story is None)

    def of_kind(self, kind: str, *, planted: bool | None = None) -> list[Incident]:
        """The incidents of one kind; only planted ones (True) or random ones (False)."""
        return [
            i
            for i in self.incidents
            if i.kind == kind and (planted is None or (i.story is not None) == planted)
        ]


def run_scenario(
    redis_url: str,
    stream: str,
    scenario: str | None,
    *,
    seed: int,
    faults: FaultRates | None = None,
    duration_s: float | None = None,
    rate: float = 40.0,
    start_ms: int | None = None,
) -> GroundTruth:
    """Run ``scenario`` (a name in ``SCENARIOS``, or None for ordinary traffic) into
    ``stream`` at ``redis_url`` and return its ground truth.

    ``faults``: random faults on top (``FaultRates()`` = the demo's default rates); None, the
    default, means none. ``duration_s``: simulated seconds, by default the scenario's own
    (long enough for its whole story; 120 without a scenario). ``rate``: events per simulated
    second. ``start_ms``: the first event's time; by default the run ends at the wall-clock
    time of the call, as if it had just happened.

    Raises ValueError for an unknown scenario and :class:`SimulationError` when Redis does
    not answer or the events could not all be written (a Redis that goes away during the
    run is waited for, up to 30 s). Runs at MAXLEN ~ 10000: a long run at a high rate trims its
    own oldest events from the stream."""
    if scenario is not None and scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r} (known: {', '.join(SCENARIOS)})")
    try:
        with client_for_url(redis_url, socket_connect_timeout=5, socket_timeout=5) as client:
            client.ping()
    except (redis.RedisError, OSError, ValueError, RedisClusterException) as exc:
        raise SimulationError(
            f"Redis at {redacted_url(redis_url)} does not answer: {exc}"
        ) from None
    rates = faults if faults is not None else FaultRates.none()
    seconds = duration_s if duration_s is not None else _default_seconds(scenario)
    length_ms = int(seconds * 1000)
    if start_ms is None:
        start_ms = time.time_ns() // 1_000_000 - length_ms
    sim = Simulation(
        redis_url,
        stream,
        SimConfig(seed=seed, rate=rate, faults=rates),
        start_ms=start_ms,
        patience_s=30.0,
    )
    try:
        if scenario is not None:
            apply_scenario(sim, scenario)
        sim.run(until_ms=start_ms + length_ms)
    finally:
        sim.close(timeout=30.0)
    if sim.error is not None:
        raise SimulationError(sim.error)
    if sim.unsent:
        raise SimulationError(f"{sim.unsent} events could not be written to {stream}")
    end_ms = start_ms + length_ms
    return GroundTruth(
        scenario=scenario,
        seed=seed,
        faults=rates,
        stream=stream,
        start_ms=start_ms,
        end_ms=end_ms,
        events=sim.events,
        incidents=_as_of(sim.incidents, end_ms),
        story_lines=tuple(sim.story_lines),
        story_jobs=dict(sim.story_jobs),
    )


def _as_of(incidents: list[Incident], end_ms: int) -> tuple[Incident, ...]:
    """The incidents that had started by ``end_ms``, in the order they started; those still
    going then (planned to end later) without an end."""
    started = sorted((i for i in incidents if i.start_ms <= end_ms), key=lambda i: i.start_ms)
    return tuple(
        replace(i, end_ms=None) if i.end_ms is not None and i.end_ms > end_ms else i
        for i in started
    )


def _default_seconds(scenario: str | None) -> float:
    return 120.0 if scenario is None else SCENARIOS[scenario].seconds
