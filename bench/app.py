"""Benchmark: the emp-tui app fed 10,000 events/s for 10 s from a real Redis, headless,
beside a minimal Textual app that appends the same events to a RichLog and a DataTable; and
the app opening history (a full 10k-entry stream, 100k events of collector logs, a job
outside the loaded range in a 10k stream and in 1M events of logs, a job filter for a job
outside the loaded range in 1M events of logs) beside the least a reader must do in the same
run (the raw XRANGE, orjson over the lines, grep -F for the job, the filter for a job loaded).

    .venv/bin/python bench/app.py [--rate 10000] [--seconds 10] [--logs-events 1000000]
                                  [--only live|history|jobfilter]

``--only jobfilter``: the job filter's figure alone.

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
ms; timeline <= 50 ms; first paint <= 1 s; <= 200 MB at 100k events. History: a full 10k
stream on screen <= 0.5 s and all loaded <= 1 s; a job outside the loaded range <= 0.3 s
(10k stream) and <= 1 s (1M events of logs); a job filter for a job outside the loaded range
<= 0.2 s (1M events of logs); 100k events of logs loaded <= 2 s at <= 200 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))
STREAM = "emp:bench"
FILTERS = (
    "service:worker",
    "type:job.* level:>=info",
    "type:job.* level:>=info worker-3",  # narrows the previous: only its matches are checked
    "worker-3",
    "",
)
SIZE = (160, 48)
TIMELINE_OPENS = 20


def percentile(values: list[float], pct: float) -> float:
    """The ``pct``-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


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
    """This process's peak RSS: VmHWM where Linux tells it (ru_maxrss is kept across exec, so a
    child started by a parent that held a lot would report the parent's), else ru_maxrss."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
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
        config=AppConfig(log_dir="", buffer_size=100_000),
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

        # Two jobs of 1k events each, opened in turn 20 times (each open builds the timeline
        # again, with "usual" from the other jobs held): p50 and p95 of the opens.
        opened_ms: list[float] = []
        painted_ms: list[float] = []
        start_ms = int(time.time() * 1000) + 1000
        jobs = [f"job-timeline-bench-{k}" for k in range(2)]
        for k, job in enumerate(jobs):
            # Newer than every event in the stream: the store keeps the newest when it is full.
            app.add_events(
                [
                    replace(e, job_id=job, id=f"{e.timestamp}-{k + 1}")
                    for e in flood(1000, jobs=1, start_ms=start_ms)
                ]
            )
        app.drain_now()
        for n in range(TIMELINE_OPENS):
            job = jobs[n % 2]
            t = time.perf_counter()
            app.open_job(job)
            opened_ms.append((time.perf_counter() - t) * 1000)
            await pilot.pause(0)  # its messages handled, a screen update (not waiting for idle)
            painted_ms.append((time.perf_counter() - t) * 1000)
            assert app.timeline is not None and len(app.timeline.steps) == 1000
        result["timeline_1k_ms"] = round(statistics.median(opened_ms), 1)
        result["timeline_1k_p95_ms"] = round(percentile(opened_ms, 95), 1)
        result["timeline_1k_to_paint_p95_ms"] = round(percentile(painted_ms, 95), 1)
        t = time.perf_counter()
        job = "job-timeline-bench-whole"
        app.add_events(
            [
                replace(e, job_id=job, id=f"{e.timestamp}-3")
                for e in flood(1000, jobs=1, start_ms=start_ms)
            ]
        )
        app.drain_now()
        app.open_job(job)
        while job not in app.state.jobs:  # the whole job, read from the stream by a worker
            await pilot.pause(0.01)
        result["job_whole_100k_stream_ms"] = round((time.perf_counter() - t) * 1000, 1)
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


# -- history: opening a stream, logs, a job outside the loaded range ------------------------------

HISTORY_STREAM = "emp:events"
T_HISTORY = 1_764_000_000_000


def fill_stream(url: str, count: int, spacing_ms: int) -> str:
    """``count`` events of the bench's job flow in the stream, ``spacing_ms`` apart, ending
    now; the ID of a job at the start (outside a 15-minute range when they span more)."""
    import redis
    import search

    client = redis.Redis.from_url(url)
    now = int(time.time() * 1000)
    start = now - count * spacing_ms
    pipe = client.pipeline(transaction=False)
    flow = search.FLOW
    for n in range(count):
        jid = search.job_id(n // len(flow))
        service, event_type = flow[n % len(flow)]
        ms = start + n * spacing_ms
        pipe.xadd(
            HISTORY_STREAM,
            {
                "timestamp": str(ms),
                "service": service,
                "eventType": event_type,
                "traceId": f"{n // len(flow):032x}",
                "jobId": jid,
                "level": "info",
                "data": '{"progress": 10, "queueName": "default"}',
                "v": "1",
            },
            id=f"{ms}-0",
        )
        if n % 1000 == 999:
            pipe.execute()
    pipe.execute()
    client.close()
    return search.job_id(3)


async def _wait(pilot: Any, check: Any, step: float = 0.005, limit: float = 120.0) -> float:
    """Seconds until ``check()`` holds, looked at every ``step``."""
    start = time.perf_counter()
    while not check():
        if time.perf_counter() - start > limit:
            raise RuntimeError(f"gave up waiting after {limit:.0f} s")
        await pilot.pause(step)
    return time.perf_counter() - start


async def open_history(
    *, url: str | None = None, files: list[Path] | None = None, job: str | None = None
) -> dict[str, Any]:
    """Open the app on a stream or on logs: time to the first rows on screen, to everything
    loaded; then (``job``) the time to open a job outside the loaded range, whole. The times
    are taken where the app does the work (the first rows handed to the stream, the load
    judged complete, the whole job's timeline shown), the bench looking only now and then so
    as not to take the app's time."""
    t0 = time.perf_counter()
    from emp_tui.app import make_app
    from emp_tui.app.app import EmpTuiApp
    from emp_tui.app.state import AppState
    from emp_tui.app.widgets.event_list import EventList
    from emp_tui.config import AppConfig

    marks: dict[str, float] = {}
    add_rows, finish, show = EventList.add_rows, AppState._finish, EmpTuiApp._show_timeline

    def first_rows(self: EventList, seqs: Any) -> None:
        add_rows(self, seqs)
        if self.rows:
            marks.setdefault("rows", time.perf_counter())

    def finished(self: AppState, plan: Any) -> None:
        finish(self, plan)
        marks["loaded"] = time.perf_counter()

    def shown(self: EmpTuiApp) -> None:
        show(self)
        if job is not None and job in self.state.jobs and self.timeline is not None:
            marks.setdefault("job", time.perf_counter())

    EventList.add_rows = first_rows  # type: ignore[method-assign]
    AppState._finish = finished  # type: ignore[method-assign]
    EmpTuiApp._show_timeline = shown  # type: ignore[method-assign]
    # EMP_BENCH_FIRST_LOAD=100000: the first read takes the whole range up to the cap, as
    # before first_load existed (the "100k events loaded" figure).
    first_load = int(os.environ.get("EMP_BENCH_FIRST_LOAD", AppConfig().first_load))
    app = make_app(
        redis_url=url,
        stream=HISTORY_STREAM,
        files=files or (),
        config=AppConfig(log_dir="", buffer_size=100_000, first_load=first_load),
    )
    result: dict[str, Any] = {}
    async with app.run_test(size=SIZE) as pilot:
        await _wait(pilot, lambda: "loaded" in marks, step=0.1)
        ready = app.ready_at or t0
        result["first_paint_s"] = round(ready - t0, 3)
        result["first_rows_s"] = round(marks["rows"] - t0, 3)
        result["first_rows_after_paint_s"] = round(marks["rows"] - ready, 3)
        result["loaded_s"] = round(marks["loaded"] - t0, 3)
        result["loaded_after_paint_s"] = round(marks["loaded"] - ready, 3)
        app.drain_now()
        result["loaded"] = len(app.store)
        result["left_out"] = app.state.left_out
        result["peak_rss_mb"] = peak_rss_mb()
        if job is not None:
            assert job not in {e.job_id for e in app.store}, "the job is in the loaded range"
            t = time.perf_counter()
            app.open_job(job)
            await _wait(pilot, lambda: "job" in marks, step=0.05)
            result["job_s"] = round(marks["job"] - t, 3)
            result["job_events"] = len(app.timeline.steps) if app.timeline else 0
            result["peak_rss_mb_after_job"] = peak_rss_mb()
    return result


FILTER_RUNS = 3


async def filter_history(files: list[Path], job: str | None, events: int) -> dict[str, Any]:
    """Open the app on logs and type a job filter as the first filter: for ``job``, outside
    the loaded range, which has ``events`` events in the logs; or (``job`` None, the
    baseline) for a job whose events are all among those loaded. Timed from the filter's
    Enter to the job's events all in the stream's rows (taken where the app hands rows to
    the list), and to the end of the load the filter started (None: none)."""
    from emp_tui.app import make_app
    from emp_tui.app.state import AppState
    from emp_tui.app.widgets.event_list import EventList
    from emp_tui.config import AppConfig

    marks: dict[str, float] = {}
    wanted: dict[str, int] = {"rows": 0}
    add_rows, set_rows, finish = EventList.add_rows, EventList.set_rows, AppState._finish

    def rows_in(self: EventList) -> None:
        if wanted["rows"] and len(self.rows) >= wanted["rows"]:
            marks.setdefault("rows", time.perf_counter())

    def added(self: EventList, seqs: Any) -> None:
        add_rows(self, seqs)
        rows_in(self)

    def replaced(self: EventList, seqs: Any) -> None:
        set_rows(self, seqs)
        rows_in(self)

    def finished(self: AppState, plan: Any) -> None:
        finish(self, plan)
        marks["loaded"] = time.perf_counter()

    EventList.add_rows = added  # type: ignore[method-assign]
    EventList.set_rows = replaced  # type: ignore[method-assign]
    AppState._finish = finished  # type: ignore[method-assign]
    first_load = int(os.environ.get("EMP_BENCH_FIRST_LOAD", AppConfig().first_load))
    app = make_app(
        files=files, config=AppConfig(log_dir="", buffer_size=100_000, first_load=first_load)
    )
    result: dict[str, Any] = {}
    try:
        async with app.run_test(size=SIZE) as pilot:
            await _wait(pilot, lambda: "loaded" in marks, step=0.1)
            app.drain_now()
            result["loaded"] = len(app.store)
            if job is None:  # a job in the middle of what is loaded, all its events held
                job = app.store[len(app.store) // 2].job_id or ""
                events = len(app.store.by_job(job))
            else:
                assert job not in {e.job_id for e in app.store}, "the job is in the loaded range"
            await pilot.pause(0.3)  # the app idle after its load
            marks.clear()
            wanted["rows"] = events
            t = time.perf_counter()
            assert app.apply_filter(f"job:{job}")
            await _wait(pilot, lambda: "rows" in marks, step=0.01)
            result["filter_s"] = round(marks["rows"] - t, 3)
            await _wait(pilot, lambda: not app.state.loading, step=0.05)
            await pilot.pause(0.2)
            done = marks.get("loaded")
            result["load_s"] = None if done is None else round(done - t, 3)  # its range
            shown = app.shown_events()
            assert len(shown) == events and {e.job_id for e in shown} == {job}, "not the job"
            result["events"] = events
    finally:
        EventList.add_rows, EventList.set_rows = add_rows, set_rows  # type: ignore[method-assign]
        AppState._finish = finish  # type: ignore[method-assign]
    return result


async def filter_runs(files: list[Path], job: str, events: int) -> dict[str, Any]:
    """:func:`filter_history` for the job outside the range and for one loaded, in turns,
    ``FILTER_RUNS`` times each: their medians (and each run's)."""
    outside: list[dict[str, Any]] = []
    held: list[dict[str, Any]] = []
    for _ in range(FILTER_RUNS):
        outside.append(await filter_history(files, job, events))
        held.append(await filter_history(files, None, 0))

    def median(runs: list[dict[str, Any]], key: str) -> float | None:
        values = [run[key] for run in runs if run[key] is not None]
        return round(statistics.median(values), 3) if values else None

    return {
        "loaded": outside[0]["loaded"],
        "outside_s": median(outside, "filter_s"),
        "outside_runs": [run["filter_s"] for run in outside],
        "outside_load_s": median(outside, "load_s"),
        "outside_events": events,
        "held_s": median(held, "filter_s"),
        "held_events": held[0]["events"],
    }


def history_child(which: str, directory: str | None, job: str | None) -> None:
    from redisproc import RedisProcess

    result: dict[str, Any]
    if which in ("open-stream", "job-stream"):
        with RedisProcess() as server:
            spacing = 1 if which == "open-stream" else 720  # 10k over 10 s, or over 2 hours
            target = fill_stream(server.url, 10_000, spacing)
            t = time.perf_counter()
            raw = server.client().xrevrange(HISTORY_STREAM, "+", "-")
            result = {"raw_xrange_s": round(time.perf_counter() - t, 3), "raw": len(raw)}
            ran = asyncio.run(
                open_history(url=server.url, job=target if which == "job-stream" else None)
            )
            result.update(ran)
    elif which == "filter-logs":
        assert directory is not None and job is not None
        name, _, count = job.partition("=")
        result = asyncio.run(filter_runs([Path(directory)], name, int(count)))
    else:
        assert directory is not None
        paths = [Path(directory)]
        result = asyncio.run(open_history(files=paths, job=job))
    print(json.dumps(result))


def lines_floor(directory: Path) -> tuple[float, int]:
    """The least a reader of the logs must do: read every file and orjson every line."""
    import orjson

    t = time.perf_counter()
    count = 0
    for path in sorted(directory.glob("events.log*")):
        for line in path.read_bytes().splitlines():
            orjson.loads(line)
            count += 1
    return time.perf_counter() - t, count


def grep_floor(directory: Path, job: str) -> float:
    files = sorted(str(p) for p in directory.glob("events.log*"))
    t = time.perf_counter()
    subprocess.run(["grep", "-F", "-h", job, *files], capture_output=True, check=False)
    return time.perf_counter() - t


def run_history_child(which: str, *extra: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", which, *extra],
        capture_output=True,
        text=True,
        env={**os.environ, "TEXTUAL_ANIMATIONS": "none"},
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{which} run failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def history_main(logs_events: int) -> None:
    import search

    print("\nhistory: opening the app on what the sources hold (headless, 160x48)")
    stream = run_history_child("open-stream")
    print(
        f"  full 10k stream, after the first paint ({stream['first_paint_s']} s from launch): "
        f"first rows {stream['first_rows_after_paint_s']} s (target <= 0.5), all "
        f"{stream['loaded']:,} loaded {stream['loaded_after_paint_s']} s (target <= 1); "
        f"baseline: redis-py XREVRANGE of all 10k, no decoding, {stream['raw_xrange_s']} s"
    )
    job = run_history_child("job-stream")
    print(
        f"  job outside the loaded range, 10k stream over 2 h: {job['job_s']} s for its "
        f"{job['job_events']} events (target <= 0.3; {job['loaded']:,} events loaded, the "
        f"last 15 min); baseline: XREVRANGE of all 10k, no decoding, {job['raw_xrange_s']} s"
    )
    with tempfile.TemporaryDirectory(prefix="emp-bench-history-") as tmp:
        small = Path(tmp) / "100k"
        small.mkdir()
        search.generate(small, 100_000)
        floor_s, lines = lines_floor(small)
        logs = run_history_child("open-logs", "--dir", str(small))
        print(
            f"  100k events of collector logs, after the first paint: first rows "
            f"{logs['first_rows_after_paint_s']} s, all {logs['loaded']:,} loaded "
            f"{logs['loaded_after_paint_s']} s (target <= 2), peak RSS {logs['peak_rss_mb']} MB "
            f"(target <= 200); baseline: read and orjson.loads every line ({lines:,}), no "
            f"events built, {floor_s:.3f} s"
        )
        big = Path(tmp) / "1m"
        big.mkdir()
        search.generate(big, logs_events)
        target = search.job_id(3)  # among the oldest: outside the range the app loads
        size = sum(p.stat().st_size for p in big.glob("events.log*")) / 1e6
        grep_s = grep_floor(big, target)
        many = run_history_child("job-logs", "--dir", str(big), "--job", target)
        print(
            f"  job outside the loaded range, {logs_events:,} events of logs ({size:.0f} MB): "
            f"{many['job_s']} s for its {many['job_events']} events (target <= 1; "
            f"{many['loaded']:,} loaded, first rows {many['first_rows_after_paint_s']} s and "
            f"all {many['loaded_after_paint_s']} s after the first paint, peak RSS "
            f"{many['peak_rss_mb_after_job']} MB); baseline: grep -F <id> over the files "
            f"{grep_s:.3f} s"
        )
        job_filter_figure(big, logs_events, size, grep_s)


def job_filter_figure(directory: Path, logs_events: int, size: float, grep_s: float) -> None:
    """The filter ``job:<id>`` typed first after opening the logs, for a job outside the
    loaded range, beside the same filter for a job loaded and grep -F in the same run."""
    import search

    target = search.job_id(3)
    count = len(search.FLOW)
    found = run_history_child("filter-logs", "--dir", str(directory), "--job", f"{target}={count}")
    print(
        f"  job filter (job:<id>, the first filter typed) for a job outside the loaded range, "
        f"{logs_events:,} events of logs ({size:.0f} MB): its {found['outside_events']} events "
        f"shown in {found['outside_s']} s (target <= 0.2; median of {found['outside_runs']}; "
        f"their time loaded behind them at {found['outside_load_s']} s, {found['loaded']:,} "
        f"loaded before); baseline: the filter for a job loaded {found['held_s']} s, "
        f"grep -F <id> over the files {grep_s:.3f} s"
    )


def job_filter_main(logs_events: int) -> None:
    import search

    print("\nhistory: a job filter over collector logs (headless, 160x48)")
    with tempfile.TemporaryDirectory(prefix="emp-bench-filter-") as tmp:
        big = Path(tmp)
        search.generate(big, logs_events)
        size = sum(p.stat().st_size for p in big.glob("events.log*")) / 1e6
        grep_s = grep_floor(big, search.job_id(3))
        grep_s = min(grep_s, grep_floor(big, search.job_id(3)))  # the files in the page cache
        job_filter_figure(big, logs_events, size, grep_s)


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


HISTORY_CHILDREN = ("open-stream", "job-stream", "open-logs", "job-logs", "filter-logs")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--logs-events", type=int, default=1_000_000)
    parser.add_argument("--only", choices=("live", "history", "jobfilter"))
    parser.add_argument(
        "--child",
        choices=("emp", "emp-quiet", "baseline", *HISTORY_CHILDREN),
        help=argparse.SUPPRESS,
    )
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    parser.add_argument("--job", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child in HISTORY_CHILDREN:
        history_child(args.child, args.dir, args.job)
        return 0
    if args.child:
        child(args.child, args.rate, args.seconds)
        return 0
    if args.only == "jobfilter":
        job_filter_main(args.logs_events)
        return 0
    if args.only != "history":
        code = live_main(args)
        if code:
            return code
    if args.only != "live":
        history_main(args.logs_events)
    return 0


def live_main(args: argparse.Namespace) -> int:
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
        f"open a 1k-event job timeline, {TIMELINE_OPENS} opens (ms): p50 {emp['timeline_1k_ms']}"
        f", p95 {emp['timeline_1k_p95_ms']} (to the next paint: p95 "
        f"{emp['timeline_1k_to_paint_p95_ms']}; whole from the sources, a scan "
        f"of the {emp['written']:,}-entry stream: {emp.get('job_whole_100k_stream_ms')})"
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
        "ok" if emp["timeline_1k_p95_ms"] <= 50 else "OVER 50 ms at p95",
        "| first paint",
        "ok" if emp["first_paint_s"] <= 1 else "OVER 1 s",
        "| memory",
        "ok" if emp["peak_rss_mb_100k"] <= 200 else "OVER 200 MB",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
