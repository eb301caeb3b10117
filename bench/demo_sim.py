"""Benchmark: how much realistic traffic the simulated EMP services can produce, beside the
bare EventClient sending the same number of events in the same run.

    .venv/bin/python bench/demo_sim.py [--seconds 600] [--rate 2000] [--live 90]

1. ``--speed max``: ``--seconds`` of simulated time at the demo's 40 events/s, as fast as it
   goes (the queue scripts, the emitters and the stream all real), until every event is in
   the stream. Baseline: one EventClient sending as many events, with no simulation.
2. Live: ``--rate`` events/s requested for ``--live`` seconds of real time; the figure is the
   rate reached over the second half (the fleet boots in the first ~20 s).
3. ``run_scenario``: every scenario with the demo's random faults on top, for its own
   duration, with its ground truth; how long each takes, beside the bare EventClient sending
   as many events.

Each run gets a fresh redis-server of its own on a unix socket.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from redisproc import RedisProcess  # noqa: E402

from emp_tui.demo import SCENARIOS, FaultRates, run_scenario  # noqa: E402
from emp_tui.demo.model import SimConfig  # noqa: E402
from emp_tui.demo.sim import Simulation  # noqa: E402
from emp_tui.telemetry import EventClient  # noqa: E402

STREAM = "emp:events"


def simulated(url: str, seconds: float) -> tuple[int, float]:
    sim = Simulation(url, STREAM, SimConfig(seed=1))
    started = time.perf_counter()
    sim.run(until_ms=sim.start_ms + int(seconds * 1000))
    sim.close(timeout=60)
    took = time.perf_counter() - started
    if sim.error or sim.unsent:
        raise SystemExit(f"simulation failed: {sim.error or f'{sim.unsent} events not sent'}")
    return sim.events, took


def bare(url: str, count: int) -> float:
    client = EventClient("worker", redis_url=url, stream=STREAM, max_buffer=count + 1)
    data = {"progress": 40, "details": "step 2/5"}
    started = time.perf_counter()
    for n in range(count):
        client.job_event(f"job_{n % 500:012x}", "job.progress_updated", data, worker_id="w-1")
    client.close(timeout=60)
    return time.perf_counter() - started


def live(url: str, rate: float, seconds: float) -> float:
    sim = Simulation(url, STREAM, SimConfig(seed=1, rate=rate))
    stop = threading.Event()
    runner = threading.Thread(target=sim.run, kwargs={"speed": 1.0, "stop": stop})
    runner.start()
    time.sleep(seconds / 2)
    first, at = sim.events, time.perf_counter()
    time.sleep(seconds / 2)
    reached = (sim.events - first) / (time.perf_counter() - at)
    stop.set()
    runner.join()
    sim.close(timeout=30)
    return reached


def scenarios(server: RedisProcess) -> list[tuple[str, int, float, float]]:
    """(scenario, events, seconds for run_scenario, seconds for the bare emitter)."""
    found = []
    for name in SCENARIOS:
        with server.client() as client:
            client.flushall()
        started = time.perf_counter()
        truth = run_scenario(server.url, STREAM, name, seed=1, faults=FaultRates())
        took = time.perf_counter() - started
        with server.client() as client:
            client.flushall()
        found.append((name, truth.events, took, bare(server.url, truth.events)))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--live", type=float, default=90.0)
    args = parser.parse_args()

    with RedisProcess() as server:
        events, took = simulated(server.url, args.seconds)
        with server.client() as client:
            client.flushall()
        baseline = bare(server.url, events)
        with server.client() as client:
            client.flushall()
        reached = live(server.url, args.rate, args.live)
        with server.client() as client:
            client.flushall()
        runs = scenarios(server)

    print(f"simulated {args.seconds:g} s of traffic at speed max: {events:,} events")
    print(f"  simulation (queue scripts + emitters + stream): {events / took:10,.0f} events/s")
    print(f"  baseline: one bare EventClient, same count:     {events / baseline:10,.0f} events/s")
    print(f"live, {args.rate:g} events/s requested: {reached:,.0f} events/s reached")
    print("run_scenario, default faults on top, seed 1: simulated, events, run_scenario, bare")
    for name, events, took, baseline in runs:
        length = f"{SCENARIOS[name].seconds:g} s"
        print(f"  {name:18} {length:>6} {events:8,} {took:8.2f} s {baseline:8.2f} s")


if __name__ == "__main__":
    main()
