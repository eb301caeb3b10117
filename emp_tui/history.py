"""History: what the sources hold, asked as one. No Textual.

The sources are the Redis stream and the collector's log files (and exports). The app and
the CLI ask them the same questions through this module:

* **what they hold**: :func:`stream_span` (XINFO: the entry count, the first and last entry)
  and :func:`logs_span` (the files' first and last times, read from their first and last
  lines, not from everything in between), gathered in :class:`Holdings`;
* **a time range, newest first, in pages**: :func:`read_stream_back` and
  :func:`read_logs_back` yield lists of events from the newest down to ``since``, so that a
  reader shows the first page at once and the rest as it comes (``ReadStats`` says how far
  back a read has got, for a progress figure); with a ``limit`` they stop once that many were
  read and say the range was cut;
* **a whole job**: :func:`read_job` gathers every event of one job from every source
  (a range scan of the stream; the files through their byte pre-filter), whatever else a
  reader holds;
* **"now"**: :func:`now_ms`, the one rule: the wall clock while reading a live stream,
  otherwise the newest event the sources hold.

An event's time here is the time its stream entry ID gives (``<ms>-<seq>``), else its own
timestamp (an event of a file that never was in a stream), as for the query language's
``since:``/``until:``. Sources overlap (the collector writes what the stream holds): merging is
by stream ID, each once (:func:`emp_tui.sources.merge`, or the store).
"""

from __future__ import annotations

import gzip
import mmap
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from emp_tui.events import SeenEvents, TelemetryEvent, decode
from emp_tui.logindex import line_time, not_an_event, open_index, read_indexed
from emp_tui.query import Query, parse_query, quote_value
from emp_tui.sources import (
    FileStats,
    SourceError,
    connect,
    expand_paths,
    merge,
    read_file,
    read_range,
)
from emp_tui.stream_ids import order_key, range_bounds, stream_id_ms
from emp_tui.topology import SyncClient, shard_keys

__all__ = [
    "FIRST_PAGE",
    "PAGE",
    "Holdings",
    "JobHistory",
    "ReadStats",
    "Span",
    "TimeRange",
    "count_lines",
    "event_ms",
    "job_query",
    "logs_span",
    "now_ms",
    "probe_stream",
    "read_job",
    "read_logs_back",
    "read_stream_back",
    "read_stream_job",
    "stream_span",
]

FIRST_PAGE: Final = 500
"""The first page of a range read: small, so that the first screen comes at once."""
PAGE: Final = 5000
"""The pages after it."""
_BLOCK: Final = 1 << 20
"""Bytes of a file looked at at once when reading it backwards."""
_HEAD: Final = 64 << 10
"""Bytes read from the start of a file to find its first event's time."""
_ID_KEY: Final = b'"id":"'
_LINE_HEAD: Final = b'{"id":"'

Clock = Callable[[], float]


def event_ms(event: TelemetryEvent) -> int:
    """The time ``event`` stands at: its stream entry ID's, else its own timestamp."""
    return order_key(event.id, event.timestamp)[0]


# -- ranges and spans ---------------------------------------------------------------------


@dataclass(frozen=True)
class TimeRange:
    """From ``since_ms`` to ``until_ms``, both inclusive; None: no bound on that side (from
    the oldest event held; up to the newest, and on while a stream is live)."""

    since_ms: int | None = None
    until_ms: int | None = None

    def contains(self, ms: int) -> bool:
        return (self.since_ms is None or ms >= self.since_ms) and (
            self.until_ms is None or ms <= self.until_ms
        )

    def covers(self, other: TimeRange) -> bool:
        """Whether every moment of ``other`` is in this range."""
        low = self.since_ms is None or (
            other.since_ms is not None and other.since_ms >= self.since_ms
        )
        high = self.until_ms is None or (
            other.until_ms is not None and other.until_ms <= self.until_ms
        )
        return low and high

    @property
    def is_open(self) -> bool:
        """No end: the live tail belongs to it."""
        return self.until_ms is None

    def stream_bounds(self) -> tuple[str, str]:
        """XRANGE bounds of the range (``-`` and ``+`` where it has none)."""
        return range_bounds(self.since_ms, self.until_ms)


@dataclass(frozen=True)
class Span:
    """What one source holds: how many events (when known without reading them all) and the
    times (and for the stream the IDs) of its first and last."""

    source: Literal["stream", "logs"]
    count: int | None
    first_ms: int | None
    last_ms: int | None
    first_id: str | None = None
    last_id: str | None = None
    files: int = 0
    size: int = 0
    """Bytes of the files (logs)."""
    trimmed: bool | None = None
    """The stream: entries were removed before its first (MAXLEN); None when Redis does not
    say (before 7.0)."""
    unreadable: tuple[str, ...] = ()
    """Files that could not be read, as ``path: reason``."""
    newest_ms: int | None = None
    """The timestamp of the newest event, in the events' own clock (which a simulation
    running faster than time, or a skewed host, sets apart from the stream's)."""

    @property
    def empty(self) -> bool:
        return self.first_ms is None

    def estimate(self, since_ms: int | None, until_ms: int | None = None) -> tuple[int, bool]:
        """How many of its events fall between ``since_ms`` and ``until_ms``, and whether that
        is exact. The stream knows its count; within part of its span the events are assumed
        spread evenly. Files do not know their count: (0, False)."""
        if self.count is None or self.first_ms is None or self.last_ms is None:
            return 0, False
        low = self.first_ms if since_ms is None else max(since_ms, self.first_ms)
        high = self.last_ms if until_ms is None else min(until_ms, self.last_ms)
        if low <= self.first_ms and high >= self.last_ms:
            return self.count, True
        if high < low:
            return 0, True
        whole = self.last_ms - self.first_ms
        if whole <= 0:
            return self.count, False
        return round(self.count * (high - low) / whole), False


@dataclass(frozen=True)
class Holdings:
    """What the sources hold, each source's :class:`Span` (None: not read, or unreachable)."""

    stream: Span | None = None
    logs: Span | None = None

    @property
    def spans(self) -> list[Span]:
        return [span for span in (self.stream, self.logs) if span is not None]

    @property
    def first_ms(self) -> int | None:
        """The oldest moment any source holds."""
        times = [span.first_ms for span in self.spans if span.first_ms is not None]
        return min(times) if times else None

    @property
    def last_ms(self) -> int | None:
        """The newest moment any source holds (stream time)."""
        times = [span.last_ms for span in self.spans if span.last_ms is not None]
        return max(times) if times else None

    @property
    def newest_ms(self) -> int | None:
        """The newest event's own timestamp, over every source (its stream time when it is
        not known)."""
        times = [
            span.newest_ms if span.newest_ms is not None else span.last_ms
            for span in self.spans
            if span.last_ms is not None
        ]
        return max((t for t in times if t is not None), default=None)


def now_ms(*, live: bool, holdings: Holdings | None, clock: Clock) -> int:
    """ "Now", by the one rule: the wall clock (``clock``) while reading a live stream;
    otherwise the newest event the sources hold (so that a recording's open jobs are silent
    up to its end, not for days), or the clock when they hold nothing."""
    if not live and holdings is not None:
        newest = holdings.newest_ms
        if newest is not None:
            return newest
    return int(clock() * 1000)


@dataclass
class ReadStats:
    """What a read came to, updated as it goes (a reader can show it as progress)."""

    read: int = 0
    """Events delivered."""
    reached_ms: int | None = None
    """The oldest time a backwards read has looked at."""
    cut: bool = False
    """It stopped at its limit with more of the range left."""
    opened: int = 0
    """Files opened (a range read leaves the files older than its start unopened)."""
    decoded: int = 0
    """Lines decoded (those outside the range are not)."""
    files: FileStats = field(default_factory=FileStats)
    """Corrupt lines and unreadable files met on the way."""


# -- the stream -----------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)


def stream_span(client: SyncClient, stream: str, shards: int = 1) -> Span:
    """What the stream holds (XINFO STREAM), over every shard with ``shards`` > 1 (their
    counts summed, the oldest first and the newest last). A stream that does not exist holds
    nothing. Raises SourceError."""
    keys = shard_keys(stream, shards)
    if len(keys) == 1:
        return _key_span(client, keys[0])
    spans = [_key_span(client, key) for key in keys]
    held = [span for span in spans if span.first_id is not None]
    if not held:
        return Span("stream", sum(span.count or 0 for span in spans), None, None)
    first = min(held, key=lambda span: order_key(span.first_id, 0))
    last = max(held, key=lambda span: order_key(span.last_id, 0))
    trims = [span.trimmed for span in spans]
    return Span(
        "stream",
        sum(span.count or 0 for span in spans),
        first.first_ms,
        last.last_ms,
        first.first_id,
        last.last_id,
        trimmed=None if None in trims else any(trims),
        newest_ms=max((s.newest_ms for s in held if s.newest_ms is not None), default=None),
    )


def _key_span(client: SyncClient, stream: str) -> Span:
    import redis
    from redis.exceptions import RedisClusterException

    try:
        info: Any = client.xinfo_stream(stream)
    except redis.ResponseError as exc:
        if "no such key" in str(exc).lower():
            return Span("stream", 0, None, None)
        raise SourceError(f"cannot inspect stream {stream!r}: {exc}") from None
    except (redis.RedisError, OSError, RedisClusterException) as exc:
        raise SourceError(f"lost Redis while inspecting {stream!r}: {exc}") from None
    first, last = info.get("first-entry"), info.get("last-entry")
    first_id = _text(first[0]) if first else None
    last_id = _text(last[0]) if last else None
    length = int(info.get("length", 0))
    added = info.get("entries-added")
    newest = decode(last[0], last[1] or {}).timestamp if last and len(last) > 1 else None
    return Span(
        "stream",
        length,
        stream_id_ms(first_id),
        stream_id_ms(last_id),
        first_id,
        last_id,
        trimmed=None if added is None else int(added) > length,
        newest_ms=newest,
    )


def probe_stream(url: str, stream: str, shards: int = 1) -> Span:
    """What the stream at ``url`` holds, on a connection of its own. Raises SourceError."""
    client = connect(url)
    try:
        return stream_span(client, stream, shards)
    finally:
        client.close()


def read_stream_back(
    client: SyncClient,
    stream: str,
    since_ms: int | None = None,
    until_ms: int | None = None,
    *,
    stats: ReadStats | None = None,
    limit: int | None = None,
    first_page: int = FIRST_PAGE,
    page: int = PAGE,
    shards: int = 1,
) -> Iterator[list[TelemetryEvent]]:
    """The stream's entries from ``until_ms`` (or its newest) back to ``since_ms`` (or its
    oldest), newest first, a page at a time (the shards merged with ``shards`` > 1). Raises
    SourceError."""
    stats = stats if stats is not None else ReadStats()
    start, end = TimeRange(since_ms, until_ms).stream_bounds()
    batch: list[TelemetryEvent] = []
    size = first_page
    for event in read_range(client, stream, start, end, reverse=True, page=page, shards=shards):
        if limit is not None and stats.read >= limit:
            stats.cut = True
            break
        batch.append(event)
        stats.read += 1
        stats.reached_ms = event_ms(event)
        if len(batch) >= size:
            yield batch
            batch, size = [], page
    if batch:
        yield batch


# -- the files ------------------------------------------------------------------------------


def _contents(path: Path) -> bytes | mmap.mmap:
    """The bytes of ``path``, gzip undone (a plain file mapped, not copied). Raises
    SourceError when it cannot be read or is not valid gzip."""
    try:
        with path.open("rb") as handle:
            magic = handle.read(2)
            if magic == b"\x1f\x8b":
                handle.seek(0)
                return gzip.GzipFile(fileobj=handle).read()
            try:
                return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
            except ValueError:  # an empty file cannot be mapped
                return b""
    except (OSError, EOFError, zlib.error) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise SourceError(f"cannot read {path}: {reason}") from None


def _head(path: Path) -> bytes:
    """The first bytes of ``path`` (gzip undone). Raises SourceError."""
    try:
        with path.open("rb") as handle:
            magic = handle.read(2)
            handle.seek(0)
            if magic == b"\x1f\x8b":
                return gzip.GzipFile(fileobj=handle).read(_HEAD)
            return handle.read(_HEAD)
    except (OSError, EOFError, zlib.error) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise SourceError(f"cannot read {path}: {reason}") from None


_line_time = line_time
_not_an_event = not_an_event


def _first_ms(data: bytes | mmap.mmap) -> int | None:
    for line in data[:_HEAD].splitlines():
        ms = _line_time(line)[0]
        if ms is not None:
            return ms
    return None


def _last(data: bytes | mmap.mmap) -> tuple[int, int] | None:
    """The time and the own timestamp of the last event of ``data``."""
    for lines in _blocks_back(data, 64 << 10):
        for line in lines:
            ms, event = _line_time(line)
            if ms is not None:
                event = event or TelemetryEvent.from_json_line(line)
                return ms, event.timestamp
    return None


def _blocks_back(data: bytes | mmap.mmap, block: int = _BLOCK) -> Iterator[list[bytes]]:
    """The lines of ``data``, newest (last) first, a block of whole lines at a time."""
    end = len(data)
    while end > 0:
        start = max(0, end - block)
        if start > 0:
            start = data.rfind(b"\n", 0, start) + 1
        lines = data[start:end].splitlines()
        lines.reverse()
        yield lines
        end = start


def _is_array(head: bytes) -> bool:
    return head.lstrip()[:1] == b"["


def count_lines(path: Path) -> int:
    """How many lines ``path`` holds (gzip undone), counted as bytes, none decoded. Raises
    SourceError."""
    data = _contents(path)
    try:
        block = 8 << 20
        count = sum(data[at : at + block].count(b"\n") for at in range(0, len(data), block))
        if len(data) and data[-1:] != b"\n":
            count += 1
        return count
    finally:
        if isinstance(data, mmap.mmap):
            data.close()


def logs_span(paths: Iterable[Path]) -> Span:
    """What the files hold: their first and last times (from the first lines of the oldest
    file and the last lines of the newest, not from all of them), how many there are and
    their size. A file that cannot be read is listed in ``unreadable``, not fatal. Raises
    SourceError for a path that does not exist."""
    files = expand_paths(paths)
    firsts: list[int] = []
    lasts: list[int] = []
    newest: list[int] = []
    size = 0
    unreadable: list[str] = []
    for path in files:
        try:
            size += path.stat().st_size
            head = _head(path)
            if _is_array(head):
                events = list(read_file(path))
                firsts.extend(event_ms(e) for e in events[:1])
                lasts.extend(event_ms(e) for e in events[-1:])
                newest.extend(e.timestamp for e in events[-1:])
                continue
            first = _first_ms(head)
            if first is not None:
                firsts.append(first)
            if head[:2] != b"\x1f\x8b" and not path.name.endswith(".gz"):
                data = _contents(path)
                try:
                    last = _last(data)
                finally:
                    if isinstance(data, mmap.mmap):
                        data.close()
                if last is not None:
                    lasts.append(last[0])
                    newest.append(last[1])
            elif first is not None:
                lasts.append(first)  # a rotated file ends before the next begins
        except (SourceError, OSError) as exc:
            unreadable.append(str(exc))
    return Span(
        "logs",
        None,
        min(firsts) if firsts else None,
        max(lasts + firsts) if firsts or lasts else None,
        files=len(files),
        size=size,
        unreadable=tuple(unreadable),
        newest_ms=max(newest) if newest else None,
    )


def read_logs_back(
    paths: Iterable[Path],
    since_ms: int | None = None,
    until_ms: int | None = None,
    *,
    stats: ReadStats | None = None,
    limit: int | None = None,
    first_page: int = FIRST_PAGE,
    page: int = PAGE,
) -> Iterator[list[TelemetryEvent]]:
    """The files' events from ``until_ms`` (or their newest) back to ``since_ms`` (or their
    oldest), newest first, a page at a time: the newest file first, each read from its end
    (a line's time is read from its bytes, so lines outside the range are not decoded). A
    file is left once a whole block of it is older than ``since_ms``, and the older files are
    left unread once one holds events older than the range. A corrupt line is counted and
    skipped, an unreadable file too (``stats.files``). Raises SourceError for a path that does
    not exist."""
    stats = stats if stats is not None else ReadStats()
    counts = stats.files
    first_time = SeenEvents().first_time  # a line written twice, a resend: once
    batch: list[TelemetryEvent] = []
    size = first_page
    for path in reversed(expand_paths(paths)):
        stats.opened += 1
        try:
            index = open_index(path)
        except SourceError as exc:
            counts.skip(str(exc))
            continue
        with index:
            blocks: Iterable[tuple[list[Any], list[int] | None]]
            if index.is_array:
                events = [
                    e for e in read_file(path, None, counts) if _within(e, since_ms, until_ms)
                ]
                blocks = [(events[::-1], None)]
                passed = False
            else:  # only the lines of the range are read, their times from the index
                start, stop = index.time_range(since_ms, until_ms)
                blocks = index.timed_blocks_back(start, stop)
                passed = start > 0  # lines older than the range: the older files hold no more
            neighbour: int | None = None  # the time of the line after (newer): a malformed
            for lines, times in blocks:  # event, whose own time cannot be trusted, stands
                older = True  # there
                for at, line in enumerate(lines):
                    ms: int | None
                    if isinstance(line, TelemetryEvent):
                        event = line
                        ms = event_ms(event)
                    else:
                        if times is not None and times[at] >= 0 and line.startswith(_LINE_HEAD):
                            line_ms: int | None = times[at]  # the index read its stream ID
                            decoded = None
                        else:
                            line_ms, decoded = _line_time(line)
                        if line_ms is None:
                            if decoded is None:
                                continue  # a blank line
                            if _not_an_event(decoded):
                                counts.problem(f"{path}: {decoded.malformed}")
                                continue
                        ms = line_ms if line_ms is not None else neighbour
                        if ms is not None:
                            neighbour = ms
                            if since_ms is not None and ms < since_ms:
                                passed = True
                                continue
                            if until_ms is not None and ms > until_ms:
                                older = False
                                continue
                        event = decoded or TelemetryEvent.from_json_line(line)
                        stats.decoded += 1
                    older = False
                    if not first_time(event):
                        counts.duplicates += 1
                        continue
                    if limit is not None and stats.read >= limit:
                        stats.cut = True
                        if batch:
                            yield batch
                        return
                    batch.append(event)
                    stats.read += 1
                    counts.events += 1
                    if ms is not None and (stats.reached_ms is None or ms < stats.reached_ms):
                        stats.reached_ms = ms
                    if len(batch) >= size:
                        yield batch
                        batch, size = [], page
                if older and since_ms is not None:
                    break  # a whole block older than the range: the rest of the file is
        if passed:
            break  # the older files hold older events still
    if batch:
        yield batch


def _within(event: TelemetryEvent, since_ms: int | None, until_ms: int | None) -> bool:
    return TimeRange(since_ms, until_ms).contains(event_ms(event))


# -- a whole job ------------------------------------------------------------------------------


def job_query(job_id: str) -> Query:
    """The query for one job's events (``job:<id>``, quoted when it must be)."""
    return parse_query(f"job:{quote_value(job_id)}")


def read_stream_job(
    client: SyncClient,
    stream: str,
    job_id: str,
    *,
    page: int = PAGE,
    shards: int = 1,
    cancelled: Callable[[], bool] | None = None,
) -> list[TelemetryEvent]:
    """``job_id``'s events in the stream, oldest first: a scan of the whole stream (of every
    shard with ``shards`` > 1: an emitter puts a job on one, but a reader does not assume it,
    since an emitter in another language or with another shard count may not) in which an
    entry none of whose values holds the job ID's bytes is passed over undecoded (the query's
    own pre-filter, as for files). With ``cancelled`` saying so, it stops early with what it
    has read so far. Raises SourceError."""
    keys = shard_keys(stream, shards)
    if len(keys) == 1:
        return _read_key_job(client, keys[0], job_id, page, cancelled)
    found = [event for key in keys for event in _read_key_job(client, key, job_id, page, cancelled)]
    found.sort(key=lambda event: order_key(event.id, event.timestamp))
    return found


def _read_key_job(
    client: SyncClient,
    stream: str,
    job_id: str,
    page: int,
    cancelled: Callable[[], bool] | None,
) -> list[TelemetryEvent]:
    import redis
    from redis.exceptions import RedisClusterException

    query = job_query(job_id)
    literals = query.required_literals()
    needles = [literal.encode() for literal in literals[0]] if literals else []
    texts = [literal for literal in literals[0]] if literals else []
    found: list[TelemetryEvent] = []
    first_time = SeenEvents().first_time  # an emitter's resend once, as every reader does
    start = "-"
    while True:
        try:
            entries: Any = client.xrange(stream, start, "+", count=page)
        except redis.ResponseError as exc:
            raise SourceError(f"cannot read stream {stream!r}: {exc}") from None
        except (redis.RedisError, OSError, RedisClusterException) as exc:
            raise SourceError(f"lost Redis while reading {stream!r}: {exc}") from None
        for entry_id, fields in entries:
            if needles and not _holds(fields, needles, texts):
                continue
            event = decode(entry_id, fields or {})
            if query.matches(event) and first_time(event):
                found.append(event)
        if len(entries) < page or (cancelled is not None and cancelled()):
            return found  # all read, or no longer wanted (what was read so far)
        start = "(" + (_text(entries[-1][0]) or "")  # exclusive: after the last one read


def _holds(fields: Any, needles: list[bytes], texts: list[str]) -> bool:
    """Whether any value of a raw entry holds one of the literals."""
    try:
        joined = b"\0".join(fields.values())  # one search in C rather than one per value
    except TypeError:  # a client that decodes: str values
        pass
    else:
        return any(needle in joined for needle in needles)
    for value in fields.values():
        if isinstance(value, bytes):
            if any(needle in value for needle in needles):
                return True
        elif isinstance(value, str) and any(text in value for text in texts):
            return True
    return False


@dataclass(frozen=True)
class JobHistory:
    """Every event of one job that the sources hold, in stream order."""

    job_id: str
    events: list[TelemetryEvent]
    holdings: Holdings
    notes: tuple[str, ...] = ()
    """What could not be read (a source, files, lines): the events may lack some."""

    @property
    def sources_start_ms(self) -> int | None:
        """The oldest moment the sources hold: a job that began before it is cut short."""
        return self.holdings.first_ms


def read_job(
    job_id: str,
    *,
    client: SyncClient | None = None,
    stream: str | None = None,
    paths: Sequence[Path] = (),
    holdings: Holdings | None = None,
    shards: int = 1,
    cancelled: Callable[[], bool] | None = None,
) -> JobHistory:
    """All of ``job_id``'s events from the stream (a range scan matching the job) and the
    files (lines without the job ID are skipped undecoded), merged, each stream ID once.
    ``holdings`` says where the sources begin (read here when not given). A source that fails
    is a note while another answers; raises SourceError when none does."""
    query = job_query(job_id)
    found: list[list[TelemetryEvent]] = []
    notes: list[str] = []
    stream_held: Span | None = holdings.stream if holdings is not None else None
    logs_held: Span | None = holdings.logs if holdings is not None else None
    failures = 0
    if client is not None and stream is not None:
        try:
            if holdings is None:
                stream_held = stream_span(client, stream, shards)
            found.append(
                read_stream_job(client, stream, job_id, shards=shards, cancelled=cancelled)
            )
        except SourceError as exc:
            failures += 1
            notes.append(str(exc))
    if paths:
        stats = FileStats()
        try:
            if holdings is None:
                logs_held = logs_span(paths)
            found.append(list(read_indexed(paths, query, stats)))
        except SourceError as exc:
            failures += 1
            notes.append(str(exc))
        notes.extend(stats.notes())
    if failures and not found:
        raise SourceError(notes[0])
    return JobHistory(job_id, merge(*found), Holdings(stream_held, logs_held), tuple(notes))
