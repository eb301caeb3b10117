"""Benchmark: what a refresh of the health pane costs at the store's cap, beside a baseline
from the same run over the same events.

    .venv/bin/python bench/health.py [--events 100000] [--runs 5]

1. On the UI thread (every 5 s while the pane shows): the list of the events at hand handed
   to the worker, ``store.events(store.seqs())``, beside ``list(store)`` (the store's own
   iterator, the obvious way);
2. in the worker: ``rates_by_service`` and ``emitter_figures`` over them, beside one pass that
   only counts events per service (the least the sparklines must do).

Figures are medians of --runs after a warm-up, wall time of this process (on a machine shared
with other work it counts their turns too). Target: the UI thread's part <= 16 ms (a frame at
60 Hz) at 100,000 events.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from emp_tui.events import CIRCUIT_EVENT_TYPE, DROPPED_EVENT_TYPE, TelemetryEvent
from emp_tui.health import emitter_figures, rates_by_service
from emp_tui.store import EventStore

T0 = 1_800_000_000_000
UI_TARGET_MS = 16.0
SERVICES = ("api-server", "worker", "machine", "webhook-service", "monitor")


def build(count: int) -> EventStore:
    """``count`` events over 15 minutes from five services, one in a thousand an emitter's
    report about itself."""
    store = EventStore(capacity=count)
    events = []
    for i in range(count):
        at = T0 + i * 900_000 // count
        service = SERVICES[i % len(SERVICES)]
        if i % 1000 == 999:
            kind, data = DROPPED_EVENT_TYPE, {"count": 3, "reasons": {"buffer_full": 3}}
        elif i % 1000 == 499:
            kind, data = CIRCUIT_EVENT_TYPE, {"state": "open", "reason": "unreachable"}
        else:
            kind, data = "job.progress_updated", {"progress": i % 100}
        event = TelemetryEvent.create(service, kind, data, timestamp=at, job_id=f"job_{i % 997}")
        events.append(replace(event, id=f"{at}-{i}"))
    store.add_many(events)
    return store


def median_ms(fn: Callable[[], Any], runs: int) -> float:
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    store = build(args.events)
    held = len(store)
    events = store.events(store.seqs())
    start, end = events[0].timestamp, events[-1].timestamp

    def counted() -> Counter[str]:
        return Counter(event.service for event in events)

    handed = median_ms(lambda: store.events(store.seqs()), args.runs)
    iterated = median_ms(lambda: list(store), args.runs)
    rates = median_ms(lambda: rates_by_service(events, start, end), args.runs)
    emitters = median_ms(lambda: emitter_figures(events), args.runs)
    baseline = median_ms(counted, args.runs)
    print(f"{held:,} events held")
    print(f"UI thread: store.events(store.seqs())  {handed:7.1f} ms")
    print(f"           list(store), for comparison {iterated:7.1f} ms")
    print(f"worker:    rates_by_service            {rates:7.1f} ms")
    print(f"           emitter_figures             {emitters:7.1f} ms")
    print(f"baseline:  Counter of services         {baseline:7.1f} ms")
    verdict = "meets" if handed <= UI_TARGET_MS else "misses"
    print(f"UI thread's part {verdict} the target of {UI_TARGET_MS:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
