"""Benchmark: scoring events against the standards (emp_tui.lint) and numeric query terms,
each beside a baseline from the same run over the same events.

    .venv/bin/python bench/lint.py [--events 100000] [--runs 5]

The events are built here (no Redis): a job's path through api-server, worker and
webhook-service with the data the platform sends (claimTimeMs, progress, processingTimeMs),
one in twenty broken in some way (a bad name, a missing ID, a number sent as a string).

1. lint() of all of them, beside one pass that only counts events per service and type
   (the least any score must do), and Checker.check() alone;
2. numeric filters (data.claimTimeMs:>10000, data.durationMs:>2s, duration:>30s), beside
   the presence test data.claimTimeMs:* and the exact match data.queueName:default.

Figures are medians of --runs after a warm-up, wall and CPU time of this process (on a
machine shared with other work the wall time counts their turns too). Targets: lint() of
100,000 events <= 1 s; a numeric term <= 2x the presence test.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from emp_tui.events import TelemetryEvent
from emp_tui.lint import Checker, lint
from emp_tui.query import parse_query

T0 = 1_800_000_000_000
LINT_TARGET_MS = 1000.0


def make_events(count: int, seed: int = 1) -> list[TelemetryEvent]:
    rng = random.Random(seed)
    events: list[TelemetryEvent] = []
    n = 0
    while len(events) < count:
        job = f"job_{n:07d}"
        worker = f"m-{n % 40}-w{n % 4}"
        ts = T0 + n * 50
        broken = rng.random() < 0.05
        claim = rng.randint(100, 30_000)
        steps: list[tuple[str, str, dict[str, Any], dict[str, str]]] = [
            ("api-server", "job.created", {"jobType": "comfyui", "priority": "normal"}, {}),
            ("api-server", "job.queued", {"queueName": "default"}, {}),
            (
                "worker",
                "job.claimed",
                {"claimTimeMs": str(claim) if broken else claim},
                {} if broken else {"worker_id": worker},
            ),
            ("worker", "job.progress_updated", {"progress": 50}, {"worker_id": worker}),
            (
                "worker",
                "JobDone" if broken else "connector.processing_completed",
                {"processingTimeMs": rng.randint(1_000, 60_000)},
                {"worker_id": worker},
            ),
            ("worker", "job.completed", {"completionTimeMs": rng.randint(2_000, 90_000)}, {}),
            ("webhook-service", "webhook.sent", {"statusCode": 200, "durationMs": 120}, {}),
        ]
        for k, (service, event_type, data, ids) in enumerate(steps):
            events.append(
                TelemetryEvent.create(
                    service, event_type, data, timestamp=ts + k * 1000, job_id=job, **ids
                )
            )
        n += 1
    return events[:count]


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


def count_by_service_and_type(events: list[TelemetryEvent]) -> Counter[tuple[str, str]]:
    return Counter((event.service, event.event_type) for event in events)


def check_all(events: list[TelemetryEvent]) -> int:
    check = Checker().check
    return sum(1 for event in events if not check(event))


def row(label: str, wall: float, cpu: float, extra: str = "") -> None:
    print(f"  {label:44} {wall:7.1f} ms {cpu:7.1f} ms  {extra}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    events = make_events(args.events)
    print(f"{len(events):,} events; median of {args.runs} runs")
    print(f"  {'':44} {'wall':>10} {'CPU':>10}")

    base_wall, base_cpu, _ = median_ms(lambda: count_by_service_and_type(events), args.runs)
    row("baseline: count by service and type", base_wall, base_cpu)
    wall, cpu, actionable = median_ms(lambda: check_all(events), args.runs)
    row("Checker.check() of each event", wall, cpu, f"{actionable:,} actionable")
    wall, cpu, report = median_ms(lambda: lint(events), args.runs)
    row(
        "lint(): the whole report",
        wall,
        cpu,
        f"{report.share:.1%} actionable, {len(report.type_changes)} type changes, "
        f"x{cpu / base_cpu:.0f} the baseline",
    )
    verdict = (
        "met"
        if wall <= LINT_TARGET_MS
        else ("met in CPU time" if cpu <= LINT_TARGET_MS else "MISSED")
    )
    print(f"  target: lint() <= {LINT_TARGET_MS:.0f} ms per 100,000 events: {verdict}")

    print("filters (Query.matches over every event)")
    present_cpu = 0.0
    for text in (
        "data.claimTimeMs:*",
        "data.queueName:default",
        "data.claimTimeMs:>10000",
        "data.durationMs:>2s",
        "data.progress:<10,>90",
        "duration:>30s",
    ):
        query = parse_query(text)
        wall, cpu, hits = median_ms(lambda q=query: sum(map(q.matches, events)), args.runs)
        if text == "data.claimTimeMs:*":
            present_cpu = cpu
            note = f"{hits:,} match  (baseline: presence)"
        else:
            note = f"{hits:,} match  x{cpu / present_cpu:.2f} the presence test"
        row(text, wall, cpu, note)
    print("  target: a numeric term <= 2x the presence test")


if __name__ == "__main__":
    main()
