"""Benchmark: the emp-tui app fed 10,000 events/s for 10 s from a real Redis, headless,
beside a minimal Textual app that appends the same events to a RichLog and a DataTable.

    .venv/bin/python bench/app.py [--rate 10000] [--seconds 10]

Each app runs in a process of its own (so peak RSS is its own) against its own redis-server,
with a producer process XADDing the events in 50 ms batches. Reported per app: events/s
actually taken onto the screen (appended to the view), the backlog (written but not yet shown)
every second, arrival-to-screen latency (XADD to the first time the row is rendered), and peak
RSS once 100k events are buffered. For emp-tui also: re-applying a filter over 100k events,
opening a 1k-event job timeline, and start-up to first paint.

emp-tui runs twice: with the Problems view open and focused (its first screen: the problems
are looked for again, in a thread, as the events arrive), and with the problem finder off,
so that what the Problems view costs shows beside the same run's figures.
Targets: no growing backlog at 10k events/s, with the Problems view open too; filter <= 100
ms; timeline <= 50 ms; first paint <= 1 s; <= 200 MB at 100k events.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
STREAM = "emp:bench"
FILTERS = (
    "service:worker",
    "type:job.* level:>=info",
    "type:job.* level:>=info worker-3",  # narrows the previous: only its matches are checked
    "worker-3",
    "",
)
SIZE = (160, 48)


# -- the producer (a process of its own) ------------------------------------------------------


def produce(url: str, rate: int, seconds: float) -> None:
    """XADD ``rate`` events a second for ``seconds``, each carrying its send time."""
    import orjson
    import redis

    client = redis.Redis.from_url(url)
    services = ("api-server", "worker", "machine")
    types = ("job.progress_updated", "connector.processing_started", "machine.heartbeat")
    batch = max(1, rate // 20)
    start = time.perf_counter()
    sent = 0
    total = int(rate * seconds)
    while sent < total:
        due = start + sent / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        pipe = client.pipeline(transaction=False)
        now_ms = time.time() * 1000
        for n in range(sent, min(sent + batch, total)):
            job = f"job-{n % 2000:05d}"
            pipe.xadd(
                STREAM,
                {
                    "timestamp": str(int(now_ms)),
                    "service": services[n % 3],
                    "eventType": types[n % 3],
                    "traceId": f"{n % 2000:032x}",
                    "jobId": job,
                    "workerId": f"worker-{n % 16}",
                    "level": "info",
                    "data": orjson.dumps({"n": n, "sentMs": now_ms, "progress": n % 100}),
                },
            )
        pipe.execute()
        sent = min(sent + batch, total)
    client.close()


# -- shared measuring --------------------------------------------------------------------------


class Meter:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.samples: list[tuple[float, int, int]] = []  # (t, written, shown)

    def summary(self, seconds: float) -> dict[str, Any]:
        lat = sorted(self.latencies)

        def pct(p: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(p / 100 * len(lat)))], 1) if lat else None

        shown_end = self.samples[-1][2] if self.samples else 0
        # Throughput while the producer runs: shown by the last sample of the feed period,
        # over the time of that sample.
        during = [(t, shown) for t, _, shown in self.samples if t <= seconds + 0.5]
        t_end, shown_then = during[-1] if during else (seconds, shown_end)
        return {
            "shown": shown_end,
            "shown_per_s": round(shown_then / t_end) if t_end else 0,
            "backlog": [w - s for _, w, s in self.samples],
            "latency_ms_p50": pct(50),
            "latency_ms_p95": pct(95),
            "latency_ms_max": round(lat[-1], 1) if lat else None,
            "rendered_rows": len(lat),
        }


def stream_length(url: str) -> int:
    import redis

    client = redis.Redis.from_url(url)
    try:
        return int(client.xlen(STREAM))
    finally:
        client.close()


async def sample_until_done(
    meter: Meter, url: str, shown: Any, producer: subprocess.Popen[bytes], pause: Any
) -> None:
    """Sample (written, shown) every second while the producer runs and until the app caught
    up (at most 5 s more)."""
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(url)
    start = time.perf_counter()
    caught_up_deadline: float | None = None
    try:
        while True:
            await pause(1.0)
            written = int(await client.xlen(STREAM))
            meter.samples.append((time.perf_counter() - start, written, shown()))
            if producer.poll() is not None:
                if caught_up_deadline is None:
                    caught_up_deadline = time.perf_counter() + 5
                if shown() >= written or time.perf_counter() > caught_up_deadline:
                    break
    finally:
        await client.aclose()


def start_producer(url: str, rate: int, seconds: float) -> subprocess.Popen[bytes]:
    code = f"import sys; sys.path.insert(0, {str(ROOT / 'bench')!r}); import app as b; " + (
        f"b.produce({url!r}, {rate}, {seconds})"
    )
    return subprocess.Popen([sys.executable, "-c", code])


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


# -- emp-tui -------------------------------------------------------------------------------------


async def run_emp(url: str, rate: int, seconds: float, problems: bool = True) -> dict[str, Any]:
    t0 = time.perf_counter()
    from samples import flood  # tests/samples.py: the one factory of sample events

    from emp_tui.app import make_app
    from emp_tui.app.widgets.event_list import EventList
    from emp_tui.config import AppConfig

    meter = Meter()
    seen: set[int] = set()
    original = EventList.render_line

    def render_line(self: EventList, y: int) -> Any:  # records first renders of each row
        index = int(self.scroll_y) + y
        if index < len(self.rows):
            seq = self.rows[index]
            if seq not in seen:
                seen.add(seq)
                event = self._lookup(seq)  # the app's store
                sent_ms = event.data.get("sentMs")
                if isinstance(sent_ms, int | float):
                    meter.latencies.append(time.time() * 1000 - sent_ms)
        return original(self, y)

    EventList.render_line = render_line  # type: ignore[method-assign]
    app = make_app(
        redis_url=url,
        stream=STREAM,
        config=AppConfig(backfill=0, buffer_size=100_000),
    )
    searches: list[tuple[int, float]] = []  # (events looked at, seconds) of each search
    record = app.problems.update

    def update(found: Any) -> None:
        searches.append((found.events, found.seconds))
        record(found)

    app.problems.update = update  # type: ignore[method-assign]
    if not problems:  # the finder never starts
        app.problems_pacer.interval = math.inf
        app.problems_pacer.last_start = time.monotonic()
    async with app.run_test(size=SIZE) as pilot:
        while app.status.state != "connected":
            await pilot.pause(0.05)
        first_paint = (app.ready_at or time.perf_counter()) - t0
        if problems:
            await pilot.press("exclamation_mark")  # the Problems view, focused
        producer = start_producer(url, rate, seconds)
        await sample_until_done(
            meter, url, lambda: len(app.stream_list.rows), producer, pilot.pause
        )
        producer.wait()
        result = meter.summary(seconds)
        result["problem_searches"] = len(searches)
        result["problem_search_last"] = (
            [searches[-1][0], round(searches[-1][1] * 1000)] if searches else None
        )
        result["buffered"] = len(app.store)
        result["peak_rss_mb_100k"] = peak_rss_mb()

        timings = []
        for text in FILTERS:
            t = time.perf_counter()
            assert app.apply_filter(text)
            timings.append((time.perf_counter() - t) * 1000)
        result["filter_100k_ms"] = [round(x, 1) for x in timings]

        job = "job-timeline-bench"
        # Newer than every event in the stream: the store keeps the newest when it is full.
        job_events = [
            replace(e, job_id=job, id=f"{e.timestamp}-1")
            for e in flood(1000, jobs=1, start_ms=int(time.time() * 1000) + 1000)
        ]
        app.add_events(job_events)
        app.drain_now()
        t = time.perf_counter()
        app.open_job(job)
        opened = (time.perf_counter() - t) * 1000
        await pilot.pause()
        painted = (time.perf_counter() - t) * 1000
        assert app.timeline is not None and len(app.timeline.steps) == 1000
        result["timeline_1k_ms"] = round(opened, 1)
        result["timeline_1k_to_paint_ms"] = round(painted, 1)
        result["first_paint_s"] = round(first_paint, 3)
    return result


# -- the baseline: RichLog + DataTable -----------------------------------------------------------


async def run_baseline(url: str, rate: int, seconds: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    import redis.asyncio
    from rich.text import Text
    from textual import work
    from textual.app import App, ComposeResult
    from textual.widgets import DataTable, RichLog

    from emp_tui.events import decode

    meter = Meter()

    class Baseline(App[None]):
        CSS = "RichLog, DataTable { height: 1fr; }"

        def __init__(self) -> None:
            super().__init__()
            self.shown = 0
            self.ready_at: float | None = None

        def compose(self) -> ComposeResult:
            yield RichLog(max_lines=100_000)
            yield DataTable()

        def on_mount(self) -> None:
            self.query_one(DataTable).add_columns("time", "service", "type", "job", "data")
            self.tail()

        def on_ready(self) -> None:
            self.ready_at = time.perf_counter()

        @work(exclusive=True)
        async def tail(self) -> None:
            client = redis.asyncio.Redis.from_url(url)
            last = "0-0"
            log = self.query_one(RichLog)
            table = self.query_one(DataTable)
            while True:
                reply: Any = await client.xread({STREAM: last}, count=1000, block=1000)
                for _key, entries in reply or []:
                    for entry_id, fields in entries:
                        event = decode(entry_id, fields)
                        last = event.id or last
                        line = f"{event.service} {event.event_type} {event.job_id} {event.data}"
                        log.write(Text(line))
                        table.add_row(
                            str(event.timestamp),
                            event.service,
                            event.event_type,
                            event.job_id or "",
                            str(event.data)[:60],
                        )
                        sent_ms = event.data.get("sentMs")
                        if isinstance(sent_ms, int | float):
                            meter.latencies.append(time.time() * 1000 - sent_ms)
                        self.shown += 1
                await asyncio.sleep(0)  # let the screen update between batches

    app = Baseline()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        first_paint = (app.ready_at or time.perf_counter()) - t0
        producer = start_producer(url, rate, seconds)
        await sample_until_done(meter, url, lambda: app.shown, producer, pilot.pause)
        producer.wait()
        result = meter.summary(seconds)
        result["buffered"] = app.shown
        result["peak_rss_mb_100k"] = peak_rss_mb()
        result["first_paint_s"] = round(first_paint, 3)
        # The baseline's latency is to the append, not to a paint: it does not know.
        result["latency_note"] = "XADD -> appended to RichLog/DataTable (not to paint)"
    return result


# -- driver --------------------------------------------------------------------------------------


def child(which: str, rate: int, seconds: float) -> None:
    from redisproc import RedisProcess

    with RedisProcess() as server:
        if which == "baseline":
            result = asyncio.run(run_baseline(server.url, rate, seconds))
        else:
            result = asyncio.run(run_emp(server.url, rate, seconds, problems=which == "emp"))
        result["written"] = stream_length(server.url)
    print(json.dumps(result))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--child", choices=("emp", "emp-quiet", "baseline"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.rate, args.seconds)
        return 0
    results: dict[str, dict[str, Any]] = {}
    for which in ("emp", "emp-quiet", "baseline"):
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                which,
                "--rate",
                str(args.rate),
                "--seconds",
                str(args.seconds),
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "TEXTUAL_ANIMATIONS": "none"},
            check=False,
        )
        if done.returncode != 0:
            print(f"{which} run failed:\n{done.stderr[-3000:]}", file=sys.stderr)
            return 1
        results[which] = json.loads(done.stdout.strip().splitlines()[-1])
    emp, quiet, base = results["emp"], results["emp-quiet"], results["baseline"]
    print(
        f"fed {args.rate:,} events/s for {args.seconds:g} s ({emp['written']:,} events), "
        f"terminal {SIZE[0]}x{SIZE[1]}, headless"
    )
    print(f"{'':34}{'emp-tui':>16}{'no problems':>14}{'RichLog+DataTable':>20}")
    print(f"{'':34}{'(Problems open)':>16}{'looked for':>14}")
    rows = [
        ("events/s taken onto the screen", "shown_per_s"),
        ("events shown at the end", "shown"),
        ("latency p50 (ms)", "latency_ms_p50"),
        ("latency p95 (ms)", "latency_ms_p95"),
        ("latency max (ms)", "latency_ms_max"),
        ("peak RSS, 100k events (MB)", "peak_rss_mb_100k"),
        ("start-up to first paint (s)", "first_paint_s"),
    ]
    for label, key in rows:
        print(f"{label:34}{emp.get(key)!s:>16}{quiet.get(key)!s:>14}{base.get(key)!s:>20}")
    print(f"{'backlog each second (emp-tui)':34} {emp['backlog']}")
    print(f"{'backlog (no problems looked for)':34} {quiet['backlog']}")
    print(f"{'backlog each second (baseline)':34} {base['backlog']}")
    last = emp["problem_search_last"]
    print(
        f"problems looked for {emp['problem_searches']} times while fed"
        + (f"; the last over {last[0]:,} events took {last[1]} ms (in a thread)" if last else "")
    )
    timed = ", ".join(
        f"{text or '(none)'!s} {ms} ms"
        for text, ms in zip(FILTERS, emp["filter_100k_ms"], strict=True)
    )
    print(f"re-apply a filter over {emp['buffered']:,} events: {timed}")
    print(
        f"open a 1k-event job timeline (ms): {emp['timeline_1k_ms']} "
        f"(to the next paint: {emp['timeline_1k_to_paint_ms']})"
    )

    def grows(backlog: list[int]) -> bool:
        first_half = backlog[: max(1, len(backlog) // 2)]
        return backlog[-1] > max([*first_half, 0])

    print(
        "targets: backlog",
        "GROWS" if grows(emp["backlog"]) else "does not grow",
        "with the Problems view open",
        "| keeps the rate:",
        "yes" if emp["shown_per_s"] >= 0.95 * quiet["shown_per_s"] else "NO",
        "| filter",
        "ok" if max(emp["filter_100k_ms"]) <= 100 else "OVER 100 ms",
        "| timeline",
        "ok" if emp["timeline_1k_ms"] <= 50 else "OVER 50 ms",
        "| first paint",
        "ok" if emp["first_paint_s"] <= 1 else "OVER 1 s",
        "| memory",
        "ok" if emp["peak_rss_mb_100k"] <= 200 else "OVER 200 MB",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
