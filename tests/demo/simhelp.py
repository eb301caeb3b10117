"""Running the simulation in tests: as fast as possible, from a fixed start time."""

from __future__ import annotations

from typing import Any

import orjson
import redis

from emp_tui.demo.model import FaultRates, SimConfig
from emp_tui.demo.scenarios import apply_scenario
from emp_tui.demo.sim import Simulation
from emp_tui.events import TelemetryEvent, decode

STREAM = "emp:events"
START_MS = 1_800_000_000_000


def run_sim(url: str, seconds: float, **config: Any) -> Simulation:
    """Run a simulation for ``seconds`` of virtual time and wait until its events are in
    the stream. Faults are off unless given; ``scenario`` plants one."""
    config.setdefault("faults", FaultRates.none())
    scenario = config.pop("scenario", None)
    sim = Simulation(url, STREAM, SimConfig(**config), start_ms=START_MS, record=True)
    if scenario is not None:
        apply_scenario(sim, scenario)
    sim.run(until_ms=START_MS + int(seconds * 1000))
    assert sim.error is None
    sim.close(timeout=10, clear_queue=False)
    assert sim.unsent == 0
    return sim


def read_events(url: str, stream: str = STREAM) -> list[TelemetryEvent]:
    with redis.Redis.from_url(url) as client:
        return [decode(entry_id, fields) for entry_id, fields in client.xrange(stream)]


def in_emission_order(events: list[TelemetryEvent]) -> list[TelemetryEvent]:
    """The events in the order they were emitted: by timestamp, and within one service in
    stream order (each service's emitter keeps its order; between services only the
    timestamps say what came first, and services emitting in the same millisecond are
    put in name order)."""
    return [
        e for _, e in sorted(enumerate(events), key=lambda p: (p[1].timestamp, p[1].service, p[0]))
    ]


def key(event: TelemetryEvent) -> tuple[str, str, str | None, bytes]:
    return (
        event.service,
        event.event_type,
        event.job_id,
        orjson.dumps(dict(event.data), option=orjson.OPT_SORT_KEYS),
    )


def job_events(events: list[TelemetryEvent], job_id: str) -> list[TelemetryEvent]:
    return sorted((e for e in events if e.job_id == job_id), key=lambda e: e.timestamp)


def story_lines(sim: Simulation) -> list[str]:
    """The lines the simulation tells the user about its planted stories."""
    return list(sim.story_lines)
