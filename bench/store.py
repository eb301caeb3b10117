"""Benchmark: EventStore with 100,000 events, beside a plain list of the same events.

    .venv/bin/python bench/store.py [--events 100000]

The baseline is the floor: a plain list of the events, appended to and scanned with
``query.matches`` (no order by stream ID, no duplicates dropped, no index). Reported (best of
five, ms): adding the events as a live tail does (batches of 500, newest last); adding ten
pages of 1,000 events older than all held (history loaded while scrolling up); selecting with
a query that scans everything, one that names a job (the job index), one with time bounds
(the stream order), and a narrowing query over the rows of an earlier one. No Redis, no
terminal.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from emp_tui.events import TelemetryEvent
from emp_tui.query import parse_query
from emp_tui.store import EventStore

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from samples import flood

START_MS = 1_780_000_000_000


def best_ms(run: Callable[[], object], repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return round(best * 1000, 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    count = parser.parse_args().events
    history = list(flood(10_000, start_ms=START_MS - 20_000, jobs=500))
    events = list(flood(count, start_ms=START_MS, jobs=2000))

    def fill_store() -> EventStore:
        store = EventStore(count + len(history))
        for i in range(0, count, 500):
            store.add_many(events[i : i + 500])
        return store

    def fill_list() -> list[TelemetryEvent]:
        held: list[TelemetryEvent] = []
        for i in range(0, count, 500):
            held.extend(events[i : i + 500])
        return held

    def pages_store() -> None:
        store = fill_store()
        for i in range(len(history), 0, -1000):
            store.add_many(history[i - 1000 : i])

    def pages_list() -> None:
        held = fill_list()
        for i in range(len(history), 0, -1000):
            held[0:0] = history[i - 1000 : i]

    store, held = fill_store(), fill_list()
    middle = events[count // 2].timestamp
    # since:/until: take dates and durations; the bounds are set directly, as they would be.
    ranged = replace(parse_query("service:worker"), since_ms=middle, until_ms=middle + 999)
    queries = {
        "service:worker (a scan)": parse_query("service:worker"),
        "job:job-00042 (the job index)": parse_query("job:job-00042"),
        "one second of time bounds": ranged,
    }
    rows = []
    print(f"{count:,} events held; best of five, ms")
    print(f"{'':40}{'EventStore':>12}{'list scan':>12}")
    print(
        f"{'add as the live tail (batches of 500)':40}{best_ms(fill_store, 3):>12}"
        f"{best_ms(fill_list, 3):>12}"
    )
    print(
        f"{'the same, then 10 older pages of 1,000':40}{best_ms(pages_store, 3):>12}"
        f"{best_ms(pages_list, 3):>12}"
    )
    for label, query in queries.items():
        matches = query.matches
        found = store.select(query)
        rows.append(found)
        scan = [event for event in held if matches(event)]
        assert store.events(found) == scan, label
        print(
            f"{'select ' + label:40}{best_ms(lambda q=query: store.select(q)):>12}"
            f"{best_ms(lambda m=matches: [e for e in held if m(e)]):>12}"
        )
    narrower = parse_query("service:worker worker-3")
    workers = rows[0]
    print(
        f"{'narrow service:worker to ... worker-3':40}"
        f"{best_ms(lambda: store.select(narrower, within=workers)):>12}"
        f"{best_ms(lambda: [e for e in held if narrower.matches(e)]):>12}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
