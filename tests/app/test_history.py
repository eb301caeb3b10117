"""The app on history, against a real redis-server and real files: the range it opens on, a
filter that asks the sources, a job that is always whole, a start the sources lack, Esc that
stops a load, and the page before the oldest event loaded."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis
from samples import START_MS, with_stream_ids
from samples import fleet_job as job_events
from textual.message import Message
from textual.pilot import Pilot

from emp_tui.analysis import handoffs, job_timeline
from emp_tui.app import app as app_module
from emp_tui.app import make_app
from emp_tui.app.app import EmpTuiApp
from emp_tui.app.messages import HistoryPage
from emp_tui.app.triage import Triage, TriageRequest, triage
from emp_tui.config import AppConfig
from emp_tui.demo import run_scenario
from emp_tui.events import TelemetryEvent
from emp_tui.export import write_events
from emp_tui.history import TimeRange, event_ms, read_job
from emp_tui.sources import connect
from emp_tui.text import clock

from .conftest import FIXED_NOW

pytestmark = pytest.mark.redis

STREAM = "emp:events"
NOW_MS = int(FIXED_NOW * 1000)
MISSING = Triage((), None, 0, None, None, 0)
"""Stands for a search not done yet."""


def _xadd(client: redis.Redis, events: list[TelemetryEvent]) -> None:
    """Each event under its own stream ID (the time it says it was written)."""
    pipe = client.pipeline()
    for event in events:
        pipe.xadd(STREAM, event.encode(), id=event.id)  # type: ignore[arg-type]
    pipe.execute()


def _at(ms: int, seq: int, event_type: str, **kw: Any) -> TelemetryEvent:
    event = TelemetryEvent.create(
        kw.pop("service", "worker"), event_type, kw.pop("data", None), timestamp=ms, **kw
    )
    return TelemetryEvent(**{**_fields(event), "id": f"{ms}-{seq}"})


def _fields(event: TelemetryEvent) -> dict[str, Any]:
    return {
        name: getattr(event, name)
        for name in TelemetryEvent.__dataclass_fields__
        if not name.startswith("_")
    }


async def _until(pilot: Pilot[int], check: Any, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"gave up waiting for {check}")
        await pilot.pause(0.05)


def _app(url: str | None, **kwargs: Any) -> EmpTuiApp:
    kwargs.setdefault("config", AppConfig(log_dir=""))
    return make_app(redis_url=url, clock=lambda: FIXED_NOW, **kwargs)


async def _loaded(pilot: Pilot[int], app: EmpTuiApp) -> None:
    await _until(pilot, lambda: app.state.covered is not None and not app.state.loading)
    app.drain_now()


async def _jump(pilot: Pilot[int], app: EmpTuiApp, job_id: str) -> None:
    await pilot.press("j")
    await _until(pilot, lambda: app.screen is not app.screen_stack[0])
    await pilot.press("ctrl+u", *job_id, "enter")
    await _until(pilot, lambda: job_id in app.state.jobs and app.current_job == job_id)


def _status(app: EmpTuiApp) -> str:
    return str(app.query_one("#status").render().plain)  # type: ignore[attr-defined]


def _header(app: EmpTuiApp) -> str:
    return "\n".join(
        str(app.query_one(selector).render().plain)  # type: ignore[attr-defined]
        for selector in ("#timeline-header", "#timeline-note")
    )


async def test_a_job_straddling_the_loaded_events_opens_whole_with_the_right_gap(
    redis_url: str,
) -> None:
    truth = run_scenario(redis_url, STREAM, "stalled-job", seed=1)
    (story,) = truth.of_kind("stalled_job", planted=True)
    job_id = story.jobs[0]
    client = connect(redis_url)
    whole = read_job(job_id, client=client, stream=STREAM).events
    ids = [entry_id.decode() for entry_id, _ in client.xrange(STREAM)]
    client.close()
    # A memory cap that keeps the newest events and cuts the job in the middle.
    first = ids.index(whole[0].id or "")
    middle = ids.index(whole[len(whole) // 2].id or "")
    cap = len(ids) - (first + middle) // 2
    expected = job_timeline(whole, job_id)
    assert len(whole) == 13 and [g.kind for g in expected.gaps] == ["threshold"]
    app = _app(redis_url, config=AppConfig(log_dir="", buffer_size=cap))
    async with app.run_test(size=(160, 48)) as pilot:
        await _loaded(pilot, app)
        held = app.store.by_job(job_id)
        assert 0 < len(held) < 13  # the straddle: part of the job is held
        await _jump(pilot, app, job_id)
        timeline = app.timeline
        assert timeline is not None and len(timeline.steps) == 13
        assert [(g.from_type, g.to_type, g.duration_ms) for g in timeline.gaps] == [
            (g.from_type, g.to_type, g.duration_ms) for g in expected.gaps
        ]
        assert "13 events" in _header(app) and "may lack" not in _header(app)
        assert app.state.graph_view().edges == handoffs(whole)
        assert handoffs(whole) != handoffs(held)
        assert app.apply_filter(f"job:{job_id}")
        assert len(app.state.export_events()) == 13


async def test_level_error_since_finds_errors_older_than_the_first_screen(
    rclient: redis.Redis, redis_url: str
) -> None:
    events = []
    for n in range(600):  # one a second, up to a second ago; errors until 2 minutes ago
        ms = NOW_MS - (600 - n) * 1000
        level = "error" if n % 50 == 0 and n < 480 else "info"
        events.append(_at(ms, 0, "job.progress_updated", job_id=f"job-{n % 7}", level=level))
    _xadd(rclient, events)
    app = _app(redis_url, config=AppConfig(log_dir="", window="1m"))
    async with app.run_test(size=(160, 48)) as pilot:
        await _loaded(pilot, app)
        assert len(app.store) == 61  # the last minute (both ends included)
        old_errors = [e for e in events if e.level == "error" and event_ms(e) >= NOW_MS - 600_000]
        assert not any(e.level == "error" for e in app.shown_events())
        assert app.apply_filter("level:error since:10m")
        await _loaded(pilot, app)
        assert [e.id for e in app.shown_events()] == [e.id for e in old_errors]
        assert len(old_errors) == 10
        assert "10 shown" in _status(app)


async def test_j_opens_a_job_that_is_only_in_the_collectors_files(
    rclient: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    recent = [_at(NOW_MS - 1000 + n, 0, "machine.heartbeat", service="machine") for n in range(5)]
    _xadd(rclient, recent)
    flow = job_events(31, START_MS - 3_600_000)  # an hour before: long trimmed from the stream
    write_events(flow, tmp_path / "events.log", "jsonl")
    app = _app(redis_url, files=[tmp_path])
    async with app.run_test(size=(160, 48)) as pilot:
        await _loaded(pilot, app)
        assert "job-0031" not in {e.job_id for e in app.store}
        assert "logs since" in _status(app) and "stream holds 5" in _status(app)
        await _jump(pilot, app, "job-0031")
        timeline = app.timeline
        assert timeline is not None and [s.event.id for s in timeline.steps] == [e.id for e in flow]


async def test_a_start_the_stream_trimmed_away_is_announced(
    rclient: redis.Redis, redis_url: str
) -> None:
    flow = job_events(12, NOW_MS - 30_000)
    _xadd(rclient, flow)
    rclient.xtrim(STREAM, maxlen=len(flow) - 3, approximate=False)  # job.created and 2 more gone
    app = _app(redis_url)
    async with app.run_test(size=(160, 48)) as pilot:
        await _loaded(pilot, app)
        await _jump(pilot, app, "job-0012")
        header = _header(app)
        assert "may lack its start" in header and flow[3].event_type in header
        timeline = app.timeline
        assert timeline is not None and len(timeline.steps) == len(flow) - 3


async def test_esc_stops_a_load_and_keeps_what_came(
    rclient: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import emp_tui.app.app as app_module

    events = [_at(NOW_MS - 5000 + n, 0, "job.progress_updated") for n in range(300)]
    _xadd(rclient, events)
    release = threading.Event()
    real = app_module.read_stream_back

    def slow(*args: Any, **kwargs: Any) -> Iterator[list[TelemetryEvent]]:
        pages = real(*args, **{**kwargs, "first_page": 100, "page": 100})
        yield next(pages)
        release.wait(10)  # the rest of the range takes its time
        yield from pages

    monkeypatch.setattr(app_module, "read_stream_back", slow)
    app = _app(redis_url)
    async with app.run_test(size=(160, 48)) as pilot:
        await _until(pilot, lambda: app.state.loading and len(app.store) >= 100)
        assert "loading 100 / 300" in _status(app)
        await pilot.press("escape")
        assert not app.state.loading
        release.set()
        await pilot.pause(0.3)
        assert len(app.store) == 100  # what came stays; the rest is not read
        assert app.state.covered is not None
        assert app.state.covered.since_ms == event_ms(events[200]) + 1
        assert "loading" not in _status(app)
        assert app.is_running and app.current_job is None


async def test_above_the_oldest_event_the_page_before_comes_and_end_brings_the_newest_back(
    rclient: redis.Redis, redis_url: str
) -> None:
    events = [_at(NOW_MS - 10_000 + n * 10, 0, "job.progress_updated") for n in range(200)]
    _xadd(rclient, events)
    app = _app(redis_url, config=AppConfig(log_dir="", buffer_size=80))
    async with app.run_test(size=(160, 48)) as pilot:
        await _loaded(pilot, app)
        assert [e.id for e in app.shown_events()] == [e.id for e in events[-80:]]
        app.stream_list.focus()
        await pilot.press("home", "home")  # the first row, then above it
        await _until(pilot, lambda: app.state.newest_gone and not app.state.loading)
        app.drain_now()
        shown = [e.id for e in app.shown_events()]
        assert shown == [e.id for e in events[-119:-39]]  # 39 older came, 39 newest went
        assert not app.stream_list.follow
        assert "looking at the past" in _status(app)
        await pilot.press("end")  # End follows, as f does: the newest are read again first
        await _until(pilot, lambda: not app.state.newest_gone and not app.state.loading)
        app.drain_now()
        assert [e.id for e in app.shown_events()] == [e.id for e in events[-80:]]
        assert app.stream_list.follow


async def test_the_bracket_keys_widen_and_narrow_the_range(
    rclient: redis.Redis, redis_url: str
) -> None:
    events = [_at(NOW_MS - (40 - n) * 60_000, 0, "job.progress_updated") for n in range(40)]
    _xadd(rclient, events)
    app = _app(redis_url)  # the default window: 15 minutes
    async with app.run_test(size=(160, 48)) as pilot:
        await _loaded(pilot, app)
        assert len(app.store) == 16
        await pilot.press("left_square_bracket")  # 30 minutes
        await _loaded(pilot, app)
        assert len(app.store) == 31
        assert "31 loaded" in _status(app)
        await pilot.press("right_square_bracket", "right_square_bracket")  # 5 minutes
        assert len(app.shown_events()) == 31  # narrower: held already, nothing read
        assert app.state.base_range is not None


async def test_files_alone_open_on_the_last_window_of_the_logs(tmp_path: Path) -> None:
    old = job_events(1, START_MS - 2 * 3_600_000)
    recent = job_events(2, START_MS)
    write_events([*old, *recent], tmp_path / "events.log", "jsonl")
    app = make_app(files=[tmp_path], config=AppConfig(), clock=lambda: FIXED_NOW + 86_400)
    async with app.run_test(size=(160, 48)) as pilot:
        await _loaded(pilot, app)
        assert [e.id for e in app.shown_events()] == [e.id for e in recent]
        assert app.state.now_ms() == event_ms(recent[-1])  # not the clock: the logs' newest
        assert "logs since" in _status(app)


async def test_a_job_filter_finds_a_job_of_the_logs_beyond_the_loaded_range(
    tmp_path: Path,
) -> None:
    old = job_events(7, START_MS - 2 * 3_600_000)  # long before the window opened on
    recent = [job_events(n, START_MS + n * 1000) for n in range(20, 40)]
    write_events([*old, *(e for job in recent for e in job)], tmp_path / "events.log", "jsonl")
    config = AppConfig(buffer_size=30)  # the cap leaves most of the window out, too
    app = make_app(files=[tmp_path], config=config, clock=lambda: FIXED_NOW + 86_400)
    async with app.run_test(size=(160, 48)) as pilot:
        await _loaded(pilot, app)
        assert "job-0007" not in {e.job_id for e in app.store}
        assert app.apply_filter("job:job-0007")
        await _until(pilot, lambda: len(app.shown_events()) == len(old) and not app.state.loading)
        assert [e.id for e in app.shown_events()] == [e.id for e in old]
        assert app.state.found_span is not None  # the logs were searched, the range is its
        assert app.apply_filter("")
        await _loaded(pilot, app)
        assert app.state.found_span is None
        assert "job-0007" not in {e.job_id for e in app.store}  # the window again


def _rotated_logs(directory: Path) -> tuple[list[TelemetryEvent], list[TelemetryEvent]]:
    """Collector logs in three files: two hours ago, job 7 among jobs 40-45 and an event of
    job 50 whose data names job 7, cut between events.log.2 and events.log.1 in the middle of
    job 7; recent jobs in events.log. Job 7's events, and every old event."""
    old_start = START_MS - 2 * 3_600_000
    mention = _at(old_start + 500, 0, "job.progress_updated", job_id="job-0050")
    mention = replace(mention, data={"note": "waits for job-0007"})
    old = with_stream_ids(
        [
            *job_events(7, old_start),
            *(e for n in range(40, 46) for e in job_events(n, old_start + (n - 40) * 150)),
            mention,
        ]
    )
    job = [e for e in old if e.job_id == "job-0007"]
    cut = old.index(job[len(job) // 2])
    recent = with_stream_ids([e for n in range(20, 40) for e in job_events(n, START_MS + n * 1000)])
    write_events(old[:cut], directory / "events.log.2", "jsonl")
    write_events(old[cut:], directory / "events.log.1", "jsonl")
    write_events(recent, directory / "events.log", "jsonl")
    return job, old


async def test_a_job_filter_shows_a_job_of_older_rotated_files_before_its_time_is_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job, old = _rotated_logs(tmp_path)
    held_back = threading.Event()  # the load of the job's time waits for it
    read_back = app_module.read_logs_back

    def gated(files: list[Path], since_ms: int | None = None, *a: Any, **kw: Any) -> Any:
        if since_ms is not None and since_ms <= event_ms(old[-1]):
            held_back.wait(20)
        return read_back(files, since_ms, *a, **kw)

    monkeypatch.setattr(app_module, "read_logs_back", gated)
    app = make_app(files=[tmp_path], config=AppConfig(), clock=lambda: FIXED_NOW + 86_400)
    try:
        async with app.run_test(size=(160, 48)) as pilot:
            await _loaded(pilot, app)
            assert not {e.job_id for e in app.store} & {"job-0007", "job-0050"}
            await pilot.press("slash", *"job:job-0007", "enter")
            await _until(pilot, lambda: len(app.shown_events()) == len(job))
            # All of them, from both files, while the load of their time has not read a line:
            # they came from the logs' search; the event that only names the job is not one.
            assert app.state.loading
            assert [e.id for e in app.shown_events()] == [e.id for e in job]
            held_back.set()
            await _loaded(pilot, app)
            assert [e.id for e in app.shown_events()] == [e.id for e in job]  # each once
            # Their time is held whole behind them: the other jobs' events of it too.
            span = [e for e in old if event_ms(job[0]) <= event_ms(e) <= event_ms(job[-1])]
            assert {e.id for e in span} <= {e.id for e in app.store}
            assert len(span) > len(job)
            assert app.apply_filter("")
            await _loaded(pilot, app)
            assert "job-0007" not in {e.job_id for e in app.store}  # the window again
    finally:
        held_back.set()


async def test_j_opens_a_job_of_older_rotated_files_whole(tmp_path: Path) -> None:
    job, _ = _rotated_logs(tmp_path)
    app = make_app(files=[tmp_path], config=AppConfig(), clock=lambda: FIXED_NOW + 86_400)
    async with app.run_test(size=(160, 48)) as pilot:
        await _loaded(pilot, app)
        assert "job-0007" not in {e.job_id for e in app.store}
        await _jump(pilot, app, "job-0007")
        timeline = app.timeline
        # Both files' events, not the event of job 50 that names it in its data.
        assert timeline is not None and [s.event.id for s in timeline.steps] == [e.id for e in job]


async def test_a_job_filter_waits_for_the_logs_search_to_load_the_rest_of_the_range(
    tmp_path: Path,
) -> None:
    events = with_stream_ids([e for n in range(100) for e in job_events(n, START_MS + n * 1000)])
    write_events(events, tmp_path / "events.log", "jsonl")
    config = AppConfig(first_load=len(events) - 120)  # the window's oldest 120 left for later
    app = make_app(files=[tmp_path], config=config, clock=lambda: FIXED_NOW + 86_400)
    job = [e.id for e in events if e.job_id == "job-0090"]
    async with app.run_test(size=(160, 48)) as pilot:
        await _loaded(pilot, app)
        assert len(app.store) == len(events) - 120
        assert app.apply_filter("job:job-0090")
        assert [e.id for e in app.shown_events()] == job  # held: at once
        # The search finds it where it is held: nothing to read for it.
        await _until(pilot, lambda: app.state.found_span is not None)
        assert not app.state.loading and len(app.store) == len(events) - 120
        assert [e.id for e in app.shown_events()] == job
        # A job the logs lack: once the search has said so, the rest of the range is read.
        assert app.apply_filter("job:job-0999")
        await _until(pilot, lambda: len(app.store) == len(events) and not app.state.loading)
        assert app.state.found_span is None and not app.shown_events()


async def test_a_filter_matching_more_than_a_first_load_shows_those_of_its_time_loaded(
    tmp_path: Path,
) -> None:
    _rotated_logs(tmp_path)
    app = make_app(
        files=[tmp_path], config=AppConfig(first_load=20), clock=lambda: FIXED_NOW + 86_400
    )
    async with app.run_test(size=(160, 48)) as pilot:
        await _loaded(pilot, app)
        jobs = ("job-0040", "job-0041", "job-0042", "job-0043")
        assert app.apply_filter("job:" + ",".join(jobs))  # 36 events
        await _until(pilot, lambda: app.state.found_span is not None)
        await _loaded(pilot, app)
        covered = app.state.covered
        assert covered is not None and covered.since_ms is not None
        # Too many to show ahead of their time: those the first load of it read, the newest
        # 20 events of it (down to the millisecond before what it holds whole).
        shown = app.shown_events()
        assert 0 < len(shown) < 36 and {e.job_id for e in shown} <= set(jobs)
        assert [e.id for e in shown] == [e.id for e in app.store if e.job_id in jobs]
        assert len(app.store) == 20
        assert all(event_ms(e) >= covered.since_ms - 1 for e in app.store)


async def test_files_open_on_their_newest_first_load_and_its_first_page_is_drawn_first(
    tmp_path: Path,
) -> None:
    jobs = [job_events(n, START_MS + n * 1000) for n in range(100)]
    events = [e for job in jobs for e in job]
    write_events(events, tmp_path / "events.log", "jsonl")
    config = AppConfig(first_load=len(events) - 120)
    app = make_app(files=[tmp_path], config=config, clock=lambda: FIXED_NOW + 86_400)
    pages: list[HistoryPage] = []

    def hook(message: Message) -> None:
        if isinstance(message, HistoryPage):
            pages.append(message)

    async with app.run_test(size=(160, 48), message_hook=hook) as pilot:
        await _loaded(pilot, app)
        assert len(app.store) == len(events) - 120
        assert {e.id for e in app.store} == {e.id for e in events[120:]}  # the file's last
        assert "older not read yet" in _status(app)
        # The first page waited for the screen (its reader was let go), the others did not.
        assert len(pages) > 1 and pages[0].painted is not None and pages[0].painted.is_set()
        assert all(page.painted is None for page in pages[1:])


async def test_until_in_the_past_closes_the_list_and_judges_problems_at_the_ranges_end(
    rclient: redis.Redis, redis_url: str
) -> None:
    """A filter ending six minutes ago: the list stops following and says why, and the
    Problems view looks at that range as of its end, so a job that was working then (it
    finished four minutes ago) is not taken for one stalled for six minutes."""
    start = NOW_MS - 480_000
    events = [
        _at(start, 0, "job.created", service="api-server", job_id="job-long"),
        _at(start + 5, 0, "job.queued", service="api-server", job_id="job-long"),
        _at(start + 900, 0, "job.claimed", job_id="job-long", worker_id="worker-1"),
    ]
    for step in range(1, 24):  # a step every 10 s, up to four minutes ago
        events.append(
            _at(start + 900 + step * 10_000, 0, "job.progress_updated", job_id="job-long",
                worker_id="worker-1", data={"progress": step * 4})
        )  # fmt: skip
    events.append(_at(start + 240_000, 0, "job.completed", job_id="job-long", worker_id="worker-1"))
    for n in range(48):  # other services keep talking, up to now
        events.append(_at(start + n * 10_000 + 7, 0, "machine.heartbeat", service="machine"))
    events.sort(key=event_ms)
    _xadd(rclient, events)
    until = NOW_MS - 360_000

    def about_the_job() -> list[str]:
        found = app.problems.triage
        assert found is not None
        return [f.kind for f in found.findings if "job-long" in f"{f.title} {f.evidence}"]

    app = _app(redis_url)
    async with app.run_test(size=(160, 48)) as pilot:
        await _loaded(pilot, app)
        assert app.apply_filter("until:6m")
        await pilot.pause()
        stream = app.stream_list
        assert not stream.follow
        assert (
            stream.border_subtitle == "ends " + clock(until)[:8] + " (until:) · clear it to follow"
        )
        await _until(pilot, lambda: (app.problems.triage or MISSING).within is not None)
        found = app.problems.triage
        assert found is not None and found.now_ms == until and found.last_ms is not None
        assert found.last_ms <= until and about_the_job() == []
        assert clock(until)[:8] in app.problems.subtitle()
        # Clearing it follows again, and the problems are those of now.
        assert app.apply_filter("")
        await pilot.pause()
        assert stream.follow and stream.border_subtitle == "following"
        await _until(pilot, lambda: (app.problems.triage or MISSING).within is None)
    # The control: the same range judged at the clock flags the job.
    request = TriageRequest(now_ms=NOW_MS, gap_ms=5000, within=TimeRange(None, until))
    judged_now = triage(events, request)
    assert [f for f in judged_now.findings if "job-long" in f"{f.title} {f.evidence}"]


async def test_until_at_the_start_says_where_the_range_ends_and_f_follows(tmp_path: Path) -> None:
    """``--until`` in the past: the list's border says where the range ends, the Problems
    view names that range; f drops the end and reads up to the newest events."""
    jobs = [job_events(n, START_MS + n * 60_000) for n in range(10)]  # one a minute
    write_events([e for job in jobs for e in job], tmp_path / "events.log", "jsonl")
    until = START_MS + 4 * 60_000 + 30_000
    app = make_app(
        files=[tmp_path],
        config=AppConfig(),
        clock=lambda: FIXED_NOW + 86_400,
        since=str(START_MS),
        until=str(until),
    )
    async with app.run_test(size=(160, 48)) as pilot:
        await _loaded(pilot, app)
        assert {e.job_id for e in app.shown_events()} == {f"job-{n:04d}" for n in range(5)}
        stream = app.stream_list
        assert not stream.follow
        assert stream.border_subtitle == f"ends {clock(until)[:8]} (--until) · f follows"
        await _until(pilot, lambda: (app.problems.triage or MISSING).within is not None)
        assert (app.problems.triage or MISSING).now_ms == until
        assert f"-{clock(until)[:8]}" in app.problems.subtitle()
        await pilot.press("f")
        await _loaded(pilot, app)
        await _until(pilot, lambda: len(app.shown_events()) == sum(map(len, jobs)))
        assert stream.follow and stream.border_subtitle == "following"
        assert app.state.base_range is not None and app.state.base_range.until_ms is None
