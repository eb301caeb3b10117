"""Benchmark: the detectors of emp_tui.problems over 100,000 events of the demo's mix, beside
one pass that only groups the same events by job, in the same run.

    .venv/bin/python bench/problems.py [--events 100000] [--runs 5] [--cache FILE]

The events come from the simulated services (the demo's default: every story of the
``mixed`` scenario over random faults, 40 events/s) run as fast as they go against a
redis-server of this run's own, read back as the stream gave them, and cached as JSON lines
(in the temporary directory, or --cache) so that later runs skip the simulation. The figures
are the median of --runs (after one warm-up run), in wall time and in CPU time of this
process: on a machine shared with other work the wall time counts their turns too, the CPU
time does not. Target: find_problems() <= 200 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from redisproc import RedisProcess  # noqa: E402

from emp_tui.demo.scenarios import apply_scenario  # noqa: E402
from emp_tui.demo.sim import FaultRates, SimConfig, Simulation  # noqa: E402
from emp_tui.events import TelemetryEvent, decode  # noqa: E402
from emp_tui.problems import SEVERITY_RANK, find_problems  # noqa: E402

STREAM = "emp:events"
START_MS = 1_800_000_000_000
TARGET_MS = 200.0


def simulate(count: int) -> list[TelemetryEvent]:
    """At least ``count`` events of the demo's mix, read back from the stream a simulated
    minute at a time (the emitters trim the stream to ~10,000 entries)."""
    events: list[TelemetryEvent] = []
    with RedisProcess() as server, redis.Redis.from_url(server.url) as client:
        config = SimConfig(seed=1, faults=FaultRates())
        sim = Simulation(server.url, STREAM, config, start_ms=START_MS)
        apply_scenario(sim, "mixed")
        last = "0-0"
        until = START_MS
        while len(events) < count:
            until += 60_000
            sim.run(until_ms=until)
            sim.flush(timeout=60)
            for entry_id, fields in client.xrange(STREAM, f"({last}", "+"):
                events.append(decode(entry_id, fields))
                last = entry_id.decode()
        sim.close(timeout=30)
        if sim.error or sim.unsent:
            raise SystemExit(f"simulation failed: {sim.error or f'{sim.unsent} not sent'}")
    return events[:count]


def load(path: Path, count: int) -> list[TelemetryEvent]:
    if path.exists():
        with path.open("rb") as lines:
            events = [TelemetryEvent.from_json_line(line) for line in lines]
        if len(events) >= count:
            print(f"events: {count:,} from {path}")
            return events[:count]
    started = time.perf_counter()
    events = simulate(count)
    with path.open("wb") as out:
        for event in events:
            out.write(event.to_json_line())
    print(f"events: {count:,} simulated in {time.perf_counter() - started:.1f} s, kept in {path}")
    return events


def group_by_job(events: list[TelemetryEvent]) -> dict[str, list[TelemetryEvent]]:
    jobs: dict[str, list[TelemetryEvent]] = {}
    for event in events:
        if event.job_id is not None:
            jobs.setdefault(event.job_id, []).append(event)
    return jobs


def median_ms(fn: Callable[[], Any], runs: int) -> tuple[float, float, Any]:
    """(wall ms, CPU ms, result): medians over ``runs`` after a warm-up run."""
    result = fn()
    wall, cpu = [], []
    for _ in range(runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        result = fn()
        cpu.append((time.process_time() - started_cpu) * 1000)
        wall.append((time.perf_counter() - started) * 1000)
    return statistics.median(wall), statistics.median(cpu), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "emp-bench-problems.jsonl"
    )
    args = parser.parse_args()

    events = load(args.cache, args.events)
    jobs = sum(1 for _ in group_by_job(events))
    base_wall, base_cpu, _ = median_ms(lambda: group_by_job(events), args.runs)
    wall, cpu, found = median_ms(lambda: find_problems(events), args.runs)
    by_severity = {
        name: sum(1 for f in found if f.severity == name)
        for name in sorted(SEVERITY_RANK, key=SEVERITY_RANK.__getitem__, reverse=True)
    }
    print(f"{len(events):,} events, {jobs:,} jobs; median of {args.runs} runs")
    print(f"  {'':38} {'wall':>9} {'CPU':>9}")
    print(f"  {'baseline: group the events by job':38} {base_wall:6.1f} ms {base_cpu:6.1f} ms")
    print(f"  {'find_problems()':38} {wall:6.1f} ms {cpu:6.1f} ms")
    if wall <= TARGET_MS:
        verdict = "met"
    elif cpu <= TARGET_MS:
        verdict = "met in CPU time (the wall time includes waiting for other work)"
    else:
        verdict = "MISSED"
    print(f"  {cpu / base_cpu:.1f}x the baseline (CPU); target <= {TARGET_MS:.0f} ms: {verdict}")
    print("  findings: " + ", ".join(f"{n} {name}" for name, n in by_severity.items()))


if __name__ == "__main__":
    main()
