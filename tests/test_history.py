"""History, the sources asked as one: what they hold, a range newest first in pages, a whole
job, and "now" (against a real redis-server and real files)."""

from __future__ import annotations

import gzip
from dataclasses import replace
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from samples import START_MS, sample_events
from samples import fleet_job as job_events

from emp_tui.analysis import missing_start
from emp_tui.events import TelemetryEvent
from emp_tui.export import write_events
from emp_tui.history import (
    Holdings,
    ReadStats,
    Span,
    TimeRange,
    event_ms,
    logs_span,
    now_ms,
    read_job,
    read_logs_back,
    read_stream_back,
    stream_span,
)
from emp_tui.sources import SourceError, connect

STREAM = "emp:events"


def _xadd(client: redis.Redis, events: list[TelemetryEvent]) -> None:
    """Each event under its own (sample) stream ID, as the collector's logs would carry it."""
    pipe = client.pipeline()
    for event in events:
        pipe.xadd(STREAM, event.encode(), id=event.id)  # type: ignore[arg-type]
    pipe.execute()


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return connect(redis_url)


def _rotated(directory: Path, events: list[TelemetryEvent], parts: int = 3) -> list[Path]:
    """``events`` in collector-style rotated files, the oldest in ``events.log.<parts-1>.gz``."""
    size = -(-len(events) // parts)
    chunks = [events[i : i + size] for i in range(0, len(events), size)]
    paths = []
    for number, chunk in enumerate(reversed(chunks)):
        name = "events.log" if number == 0 else f"events.log.{number}"
        path = directory / name
        write_events(chunk, path, "jsonl")
        if number >= 2:
            gz = path.with_name(path.name + ".gz")
            gz.write_bytes(gzip.compress(path.read_bytes()))
            path.unlink()
            path = gz
        paths.append(path)
    return paths


# -- what the sources hold ----------------------------------------------------------------------


def test_the_stream_says_what_it_holds(client: redis.Redis) -> None:
    assert stream_span(client, STREAM) == Span("stream", 0, None, None)  # no such key
    events = sample_events()
    _xadd(client, events)
    span = stream_span(client, STREAM)
    assert span.count == len(events)
    assert (span.first_id, span.last_id) == (events[0].id, events[-1].id)
    assert (span.first_ms, span.last_ms) == (event_ms(events[0]), event_ms(events[-1]))
    assert span.newest_ms == events[-1].timestamp


def test_the_logs_say_what_they_hold_from_their_ends(tmp_path: Path) -> None:
    events = sample_events()
    _rotated(tmp_path, events)
    span = logs_span([tmp_path])
    assert span.files == 3 and span.count is None and span.size > 0
    assert (span.first_ms, span.last_ms) == (event_ms(events[0]), event_ms(events[-1]))
    assert span.newest_ms == events[-1].timestamp
    (tmp_path / "events.log.5.gz").write_bytes(b"\x1f\x8b not gzip at all")
    span = logs_span([tmp_path])
    assert span.first_ms == event_ms(events[0])
    assert len(span.unreadable) == 1 and "events.log.5.gz" in span.unreadable[0]
    with pytest.raises(SourceError, match="no such file"):
        logs_span([tmp_path / "missing.log"])


def test_a_span_estimates_a_range() -> None:
    span = Span("stream", 1000, 0, 10_000)
    assert span.estimate(None) == (1000, True)
    assert span.estimate(-5) == (1000, True)
    assert span.estimate(5000) == (500, False)
    assert span.estimate(20_000) == (0, True)
    assert Span("logs", None, 0, 10).estimate(5) == (0, False)


def test_holdings_span_every_source() -> None:
    held = Holdings(Span("stream", 5, 100, 200), Span("logs", None, 50, 180))
    assert (held.first_ms, held.last_ms) == (50, 200)
    assert Holdings().first_ms is None and Holdings().last_ms is None


def test_a_range_covers_another() -> None:
    assert TimeRange(None, None).covers(TimeRange(5, 10))
    assert TimeRange(0, None).covers(TimeRange(5, None))
    assert not TimeRange(0, 10).covers(TimeRange(5, None))
    assert not TimeRange(6, None).covers(TimeRange(5, 10))
    assert TimeRange(5, 10).stream_bounds() == ("5-0", f"10-{2**64 - 1}")


# -- a range, newest first ------------------------------------------------------------------


def test_the_stream_is_read_newest_first_in_pages_within_the_range(client: redis.Redis) -> None:
    events = sample_events()
    _xadd(client, events)
    stats = ReadStats()
    pages = list(read_stream_back(client, STREAM, stats=stats, first_page=7, page=50))
    assert [len(p) for p in pages[:2]] == [7, 50]
    flat = [e for page in pages for e in page]
    assert [e.id for e in flat] == [e.id for e in reversed(events)]
    assert stats.read == len(events) and not stats.cut
    assert stats.reached_ms == event_ms(events[0])
    since, until = event_ms(events[40]), event_ms(events[99])
    inside = [e for page in read_stream_back(client, STREAM, since, until) for e in page]
    assert [e.id for e in inside] == [
        e.id for e in reversed(events) if since <= event_ms(e) <= until
    ]


def test_a_limit_keeps_the_newest_and_says_the_range_was_cut(client: redis.Redis) -> None:
    events = sample_events()
    _xadd(client, events)
    stats = ReadStats()
    flat = [e for page in read_stream_back(client, STREAM, stats=stats, limit=30) for e in page]
    assert [e.id for e in flat] == [e.id for e in reversed(events[-30:])]
    assert stats.cut and stats.read == 30 and stats.reached_ms == event_ms(events[-30])


def test_files_are_read_newest_first_from_their_end(tmp_path: Path) -> None:
    events = sample_events()
    _rotated(tmp_path, events)
    stats = ReadStats()
    pages = list(read_logs_back([tmp_path], stats=stats, first_page=10, page=100))
    assert len(pages[0]) == 10
    assert [e.id for page in pages for e in page] == [e.id for e in reversed(events)]
    assert stats.opened == 3 and stats.read == len(events)
    cut = ReadStats()
    flat = [e for page in read_logs_back([tmp_path], stats=cut, limit=25) for e in page]
    assert [e.id for e in flat] == [e.id for e in reversed(events[-25:])] and cut.cut


def test_a_range_of_the_files_leaves_the_older_files_unread(tmp_path: Path) -> None:
    events = sample_events()
    _rotated(tmp_path, events)
    since = event_ms(events[-20])
    stats = ReadStats()
    got = [e for page in read_logs_back([tmp_path], since, stats=stats) for e in page]
    assert [e.id for e in got] == [e.id for e in reversed(events) if event_ms(e) >= since]
    assert stats.opened == 1  # the fast path: events.log.1 and .2.gz were never opened
    assert stats.decoded == len(got)  # lines outside the range were not decoded
    until = event_ms(events[30])
    got = [e for page in read_logs_back([tmp_path], None, until) for e in page]
    assert [e.id for e in got] == [e.id for e in reversed(events) if event_ms(e) <= until]


def test_a_corrupt_rotated_file_and_corrupt_lines_are_skipped_and_counted(
    tmp_path: Path,
) -> None:
    events = sample_events()
    paths = _rotated(tmp_path, events)
    with paths[0].open("ab") as out:
        out.write(b"not json at all\n")
    paths[2].write_bytes(paths[2].read_bytes()[:40])  # events.log.2.gz cut short
    stats = ReadStats()
    got = [e for page in read_logs_back([tmp_path], stats=stats) for e in page]
    held = [e for e in events if e.id in {g.id for g in got}]
    assert len(held) == len(got) and len(got) > len(events) // 2
    assert stats.files.corrupt == 1 and len(stats.files.unreadable) == 1
    notes = stats.files.notes()
    assert any("events.log.2.gz" in note for note in notes)
    assert any("1 corrupt line" in note for note in notes)


# -- a whole job ------------------------------------------------------------------------------


def test_a_job_comes_whole_from_the_stream_and_the_files(
    client: redis.Redis, tmp_path: Path
) -> None:
    flow = job_events(77, START_MS + 60_000, seq=9000)
    other = sample_events()
    _xadd(client, [*other, *flow[4:]])
    write_events(flow[:6], tmp_path / "events.log", "jsonl")  # overlapping the stream
    job = read_job("job-0077", client=client, stream=STREAM, paths=[tmp_path / "events.log"])
    assert [e.id for e in job.events] == [e.id for e in flow]  # each stream ID once, in order
    assert job.notes == ()
    assert job.holdings.stream is not None and job.holdings.logs is not None
    only_files = read_job("job-0077", paths=[tmp_path])
    assert [e.id for e in only_files.events] == [e.id for e in flow[:6]]


def test_a_source_that_fails_is_a_note_while_another_answers(tmp_path: Path) -> None:
    flow = job_events(7, START_MS)
    write_events(flow, tmp_path / "events.log", "jsonl")
    dead = redis.Redis(unix_socket_path=str(tmp_path / "nothing.sock"), retry=Retry(NoBackoff(), 0))
    job = read_job("job-0007", client=dead, stream=STREAM, paths=[tmp_path])
    assert len(job.events) == len(flow)
    assert len(job.notes) == 1 and "Redis" in job.notes[0]
    with pytest.raises(SourceError):
        read_job("job-0007", client=dead, stream=STREAM)


# -- now, and where a job may be cut short -------------------------------------------------------


def test_now_is_the_clock_live_and_the_newest_event_held_otherwise() -> None:
    held = Holdings(Span("stream", 3, 100, 5_000), Span("logs", None, 50, 9_000))
    assert now_ms(live=True, holdings=held, clock=lambda: 20.0) == 20_000
    assert now_ms(live=False, holdings=held, clock=lambda: 20.0) == 9_000
    assert now_ms(live=False, holdings=Holdings(), clock=lambda: 20.0) == 20_000
    # The events' own clock where it is known (a simulation faster than time sets it apart).
    sped = Holdings(Span("stream", 3, 100, 5_000, newest_ms=70_000))
    assert now_ms(live=False, holdings=sped, clock=lambda: 20.0) == 70_000


def test_a_job_that_begins_after_its_creation_near_the_sources_start_may_lack_it() -> None:
    flow = job_events(3, START_MS)
    assert flow[0].event_type == "job.created"
    assert missing_start(flow, START_MS - 5) is None  # whole: it begins with its creation
    tail = flow[2:]
    lead = event_ms(tail[0]) - START_MS
    assert missing_start(tail, START_MS) == lead
    assert missing_start(tail, None) is None  # the sources did not say where they begin
    far = [replace(e, id=f"{event_ms(e) + 3_600_000}-0") for e in tail]
    assert missing_start(far, START_MS) is None  # an hour after they begin: not cut


def test_a_job_read_from_the_stream_decodes_only_the_entries_that_name_it(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    import emp_tui.history as history_module
    from emp_tui.history import job_query, read_stream_job
    from emp_tui.sources import read_query

    events = sample_events()
    _xadd(client, events)
    decoded: list[object] = []
    decode = history_module.decode

    def counting(entry_id: object, fields: object) -> TelemetryEvent:
        decoded.append(entry_id)
        return decode(entry_id, fields)  # type: ignore[arg-type]

    monkeypatch.setattr(history_module, "decode", counting)
    got = read_stream_job(client, STREAM, "job-0009", page=40)
    assert got == read_query(client, STREAM, job_query("job-0009"))  # the general path agrees
    assert got and all(e.job_id == "job-0009" for e in got)
    assert len(decoded) == len(got)  # the fast path: no other entry was decoded


def test_a_line_written_twice_is_read_back_once(tmp_path: Path) -> None:
    events = sample_events()[:30]
    path = tmp_path / "events.log"
    write_events(events, path, "jsonl")
    with path.open("ab") as out:  # a collector that redelivered the last five
        out.write(b"".join(event.to_json_line() for event in events[-5:]))
    stats = ReadStats()
    got = [e for page in read_logs_back([path], stats=stats) for e in page]
    assert sorted(e.id or "" for e in got) == sorted(e.id or "" for e in events)
    assert stats.files.duplicates == 5


def test_a_malformed_line_is_placed_by_its_neighbours_not_by_its_own_time(tmp_path: Path) -> None:
    events = sample_events()[:40]
    path = tmp_path / "events.log"
    lines = [event.to_json_line() for event in events]
    bogus = b'{"timestamp":-1,"service":"worker","eventType":"job.progress_updated"}\n'
    lines.insert(30, bogus)  # between two events of the last quarter
    lines.append(b'{"timestamp":1e300,"service":"w"}\n')  # the last line: no time at all
    path.write_bytes(b"".join(lines))
    span = logs_span([path])
    assert span.last_ms == event_ms(events[-1])  # the bogus last line does not move the end
    since = event_ms(events[25])
    got = [e for page in read_logs_back([path], since) for e in page]
    flagged = [e for e in got if e.malformed]
    assert len(flagged) == 2  # both shown, flagged: inside the range where they stand
    assert {e.id for e in got if not e.malformed} == {e.id for e in events[25:]}
