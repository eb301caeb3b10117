"""Where events come from: the Redis stream (range reads, a live tail) and files.

Redis, synchronous (the CLI)::

    client = connect(url)                       # SourceError when unreachable
    for event in read_range(client, stream, start, end, reverse=False, page=1000): ...
    for event in read_query(client, stream, query, limit=None): ...   # seeks by the query's
                                                                       # time bounds
Redis, asynchronous (the app)::

    events = await backfill(url, stream, limit=10_000, query=None)   # newest, oldest first
    async for event in aread_range(async_client, stream, start, end): ...

Redis, live (the app, ``emp-tui stream``)::

    tail = RedisTail(url, stream, start_id="$")     # or the last ID already shown
    async for batch in tail:                        # list[TelemetryEvent], oldest first
        ... tail.state, tail.error, tail.last_id ...
    await tail.aclose()

``RedisTail`` reads with ``XREAD BLOCK`` from the last ID it delivered. When Redis goes away it
reports ``state == "reconnecting"`` with ``error`` set, retries with exponential backoff (0.2 s
doubling up to 5 s) and carries on from the same ID, so nothing written meanwhile is missed
(a ``$`` start is resolved to the stream's last ID at the first connection). ``state`` is one
of ``connecting``, ``connected``, ``reconnecting``, ``disconnected`` (after ``aclose``). A batch
may be empty: one is delivered after every change of state so a reader can show it, and
``on_state(state, error)`` is called too when given.

Every reader collapses copies of one event (:class:`~emp_tui.events.SeenEvents`): an emitter's
resend (the same ``eventId`` under another stream ID) and, across files and sources, one entry
written or read twice (the same stream ID). Decoding never raises: an entry that cannot be read
is delivered flagged ``malformed``, never dropped and never the end of a read.

Files: the collector's JSON-lines logs (``events.log`` and its rotated ``events.log.1``,
``events.log.2.gz``, ...; a directory means every ``*.log*``/``*.jsonl*``/``*.json`` in it) and
exports (JSON lines or a JSON array; gzip recognised by content). A line that is not a JSON
object is counted in :class:`FileStats`, reported (``stats.problems``) and skipped, never fatal.
:func:`merge` combines several sources in time order, each event once.
"""

from __future__ import annotations

import gzip
import io
import mmap
import re
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Final, Literal

from emp_tui.events import SeenEvents, TelemetryEvent, decode
from emp_tui.query import Query
from emp_tui.stream_ids import next_id, order_key, previous_id

if TYPE_CHECKING:
    import redis
    import redis.asyncio

__all__ = [
    "BadRedisUrl",
    "ConnectionState",
    "FileStats",
    "RedisTail",
    "SourceError",
    "aread_range",
    "backfill",
    "connect",
    "expand_paths",
    "merge",
    "read_file",
    "read_files",
    "read_query",
    "read_range",
]

ConnectionState = Literal["connecting", "connected", "reconnecting", "disconnected"]
"""Where a live reader stands with Redis: the reader reports it, the app's messages carry it,
the status bar shows it."""

PAGE: Final = 1000
CHUNK: Final = 8 << 20
MAX_PROBLEMS: Final = 20
_ROTATED: Final = re.compile(r"[0-9A-Za-z_:T+\-]+(?:\.gz)?")
_LOG_PATTERNS: Final = ("*.log", "*.log.*", "*.jsonl", "*.jsonl.*", "*.json", "*.json.gz")
_NOT_AN_OBJECT: Final = ("line is not JSON", "line is not a JSON object")


class SourceError(Exception):
    """A source that cannot be read: the message is one line, fit for a user."""


class BadRedisUrl(SourceError):
    """The Redis URL itself is wrong (a scheme other than redis, rediss or unix, a bad port):
    a mistake in the settings rather than a Redis that cannot be reached."""


# -- Redis, synchronous -------------------------------------------------------------------


def connect(url: str, *, timeout: float = 3.0) -> redis.Redis:
    """A client for ``url`` that has answered PING. Raises SourceError."""
    import redis

    from emp_tui.config import redacted_url

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=30)
        client.ping()
    except ValueError as exc:
        raise BadRedisUrl(f"bad Redis URL {redacted_url(url)}: {exc}") from None
    except redis.AuthenticationError as exc:
        raise SourceError(f"Redis at {redacted_url(url)} refused the password: {exc}") from None
    except (redis.RedisError, OSError) as exc:
        raise SourceError(f"cannot reach Redis at {redacted_url(url)}: {exc}") from None
    return client


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def read_range(
    client: redis.Redis,
    stream: str,
    start: str = "-",
    end: str = "+",
    *,
    reverse: bool = False,
    page: int = PAGE,
) -> Iterator[TelemetryEvent]:
    """Entries between ``start`` and ``end`` (inclusive), oldest first (newest first with
    ``reverse``), read ``page`` at a time with XRANGE/XREVRANGE, copies of an event once.
    Raises SourceError."""
    import redis

    first_time = SeenEvents().first_time
    low, high = start, end
    while True:
        entries: Any
        try:
            if reverse:
                entries = client.xrevrange(stream, high, low, count=page)
            else:
                entries = client.xrange(stream, low, high, count=page)
        except redis.ResponseError as exc:
            raise SourceError(f"cannot read stream {stream!r}: {exc}") from None
        except (redis.RedisError, OSError) as exc:
            raise SourceError(f"lost Redis while reading {stream!r}: {exc}") from None
        for entry_id, fields in entries:
            event = decode(entry_id, fields or {})
            if first_time(event):
                yield event
        bounds = _next_page(entries, page, reverse, low, high)
        if bounds is None:
            return
        low, high = bounds


def _next_page(
    entries: Any, page: int, reverse: bool, low: str, high: str
) -> tuple[str, str] | None:
    """The (low, high) bounds of the page after ``entries``, or None when that was the last."""
    if len(entries) < page:
        return None
    last = _text(entries[-1][0])
    if reverse:
        return None if last == "0-0" else (low, previous_id(last))
    return next_id(last), high


def read_query(
    client: redis.Redis,
    stream: str,
    query: Query,
    *,
    limit: int | None = None,
    page: int = PAGE,
) -> list[TelemetryEvent]:
    """The events ``query`` matches, oldest first, seeking to its time bounds. With ``limit``
    the most recent ``limit`` matches (read newest first, stopping once found)."""
    start, end = query.stream_range()
    if limit is None:
        return [e for e in read_range(client, stream, start, end, page=page) if query.matches(e)]
    found: list[TelemetryEvent] = []
    if limit <= 0:
        return found
    for event in read_range(client, stream, start, end, reverse=True, page=page):
        if query.matches(event):
            found.append(event)
            if len(found) >= limit:
                break
    found.reverse()
    return found


# -- Redis, asynchronous range reads (the app's backfill) -----------------------------------


async def aread_range(
    client: redis.asyncio.Redis,
    stream: str,
    start: str = "-",
    end: str = "+",
    *,
    reverse: bool = False,
    page: int = PAGE,
) -> AsyncIterator[TelemetryEvent]:
    """:func:`read_range` for a ``redis.asyncio`` client. Raises SourceError."""
    import redis

    first_time = SeenEvents().first_time
    low, high = start, end
    while True:
        entries: Any
        try:
            if reverse:
                entries = await client.xrevrange(stream, high, low, count=page)
            else:
                entries = await client.xrange(stream, low, high, count=page)
        except redis.ResponseError as exc:
            raise SourceError(f"cannot read stream {stream!r}: {exc}") from None
        except (redis.RedisError, OSError) as exc:
            raise SourceError(f"lost Redis while reading {stream!r}: {exc}") from None
        for entry_id, fields in entries:
            event = decode(entry_id, fields or {})
            if first_time(event):
                yield event
        bounds = _next_page(entries, page, reverse, low, high)
        if bounds is None:
            return
        low, high = bounds


async def backfill(
    url: str,
    stream: str,
    *,
    limit: int = 10_000,
    query: Query | None = None,
    page: int = PAGE,
    seen: SeenEvents | None = None,
) -> list[TelemetryEvent]:
    """The newest ``limit`` events (matching ``query``, within its time bounds), oldest first.
    Start a :class:`RedisTail` at the last one's ID to follow on without a gap; give both one
    ``seen`` and a copy of an event on either side of the seam is collapsed too. Raises
    SourceError when Redis cannot be reached or read."""
    import redis
    import redis.asyncio

    from emp_tui.config import redacted_url

    start, end = query.stream_range() if query is not None else ("-", "+")
    found: list[TelemetryEvent] = []
    try:
        client = redis.asyncio.Redis.from_url(url, socket_connect_timeout=3)
    except ValueError as exc:
        raise BadRedisUrl(f"bad Redis URL {redacted_url(url)}: {exc}") from None
    try:
        try:
            await client.ping()
        except (redis.RedisError, OSError) as exc:
            raise SourceError(f"cannot reach Redis at {redacted_url(url)}: {exc}") from None
        if limit > 0:
            async for event in aread_range(client, stream, start, end, reverse=True, page=page):
                if query is None or query.matches(event):
                    found.append(event)
                    if len(found) >= limit:
                        break
    finally:
        await client.aclose()
    found.reverse()
    if seen is not None:
        found = [event for event in found if seen.first_time(event)]
    return found


# -- Redis, live ----------------------------------------------------------------------------


class RedisTail:
    """Follows the stream from ``start_id`` (``$`` = only what arrives from now on), copies of
    an event once (``seen``: what was shown before the tail began, e.g. by :func:`backfill`)."""

    def __init__(
        self,
        url: str,
        stream: str,
        *,
        start_id: str = "$",
        block_ms: int = 1000,
        count: int = 1000,
        backoff_initial: float = 0.2,
        backoff_max: float = 5.0,
        on_state: Callable[[ConnectionState, str | None], None] | None = None,
        seen: SeenEvents | None = None,
    ) -> None:
        self.url = url
        self.stream = stream
        self.last_id = start_id
        self.block_ms = block_ms
        self.count = count
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.on_state = on_state
        self.state: ConnectionState = "connecting"
        self.error: str | None = None
        self.reconnects = 0
        self.seen = seen if seen is not None else SeenEvents()
        self._client: redis.asyncio.Redis | None = None
        self._delay = backoff_initial
        self._state_changed = False
        self._closed = False

    def _set_state(self, state: ConnectionState, error: str | None = None) -> None:
        if state != self.state or error != self.error:
            self.state, self.error = state, error
            self._state_changed = True
            if self.on_state is not None:
                self.on_state(state, error)

    def __aiter__(self) -> AsyncIterator[list[TelemetryEvent]]:
        return self

    async def __anext__(self) -> list[TelemetryEvent]:
        import asyncio

        import redis
        import redis.asyncio

        while not self._closed:
            if self._state_changed:
                self._state_changed = False
                return []
            try:
                if self._client is None:
                    client = redis.asyncio.Redis.from_url(
                        self.url, socket_connect_timeout=3, socket_timeout=None
                    )
                    self._client = client
                    await client.ping()
                    if self.last_id == "$":
                        newest: Any = await client.xrevrange(self.stream, "+", "-", count=1)
                        self.last_id = _text(newest[0][0]) if newest else "0-0"
                    self._delay = self.backoff_initial
                    self._set_state("connected")
                    if self._state_changed:
                        continue
                reply: Any = await self._client.xread(
                    {self.stream: self.last_id}, count=self.count, block=self.block_ms
                )
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                await self._drop_client()
                if self._closed:
                    break
                self.reconnects += 1
                self._set_state("reconnecting", _one_line(exc))
                await asyncio.sleep(self._delay)
                self._delay = min(self._delay * 2, self.backoff_max)
                continue
            except redis.RedisError as exc:
                # Not a connection problem (a wrong type at the key, a bad ID): report it
                # and keep trying slowly rather than spin or hide it.
                self._set_state("reconnecting", _one_line(exc))
                await asyncio.sleep(self.backoff_max)
                continue
            if not reply:
                continue
            batch = []
            first_time = self.seen.first_time
            for _key, entries in reply:
                for entry_id, fields in entries:
                    event = decode(entry_id, fields or {})
                    if first_time(event):
                        batch.append(event)
                if entries:
                    self.last_id = _text(entries[-1][0])
            if batch:
                return batch
        raise StopAsyncIteration

    async def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.aclose()
            except (OSError, RuntimeError) as exc:  # closing a dead socket: nothing to save
                self.error = self.error or _one_line(exc)

    async def aclose(self) -> None:
        self._closed = True
        await self._drop_client()
        self._set_state("disconnected", self.error)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


# -- files ----------------------------------------------------------------------------------


@dataclass
class FileStats:
    """What reading files came to. ``problems`` holds the first few corrupt lines' reasons,
    as ``path:line: reason``."""

    events: int = 0  # events that matched
    duplicates: int = 0  # copies of an event already read (a resend, a redelivered line)
    corrupt: int = 0
    problems: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    """Files skipped because they could not be read (a corrupt ``.gz``), as one-line reasons."""

    def problem(self, text: str) -> None:
        self.corrupt += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)

    def skip(self, reason: str) -> None:
        """A file that cannot be read: counted (once, however often it was tried), and the
        read goes on with the next."""
        if reason not in self.unreadable:
            self.unreadable.append(reason)

    def notes(self) -> list[str]:
        """One line each for the unreadable files and the corrupt lines, for a user."""
        out = [f"skipped an unreadable file: {reason}" for reason in self.unreadable]
        if self.corrupt:
            first = self.problems[0] if self.problems else ""
            more = f" (and {self.corrupt - 1} more)" if self.corrupt > 1 else ""
            out.append(f"skipped {self.corrupt} corrupt line(s): {first}{more}")
        return out


def expand_paths(paths: Iterable[Path]) -> list[Path]:
    """Each path, with its rotated siblings (``events.log.1``, ``events.log.2.gz``) before
    it; a directory stands for the log files in it. Raises SourceError for a missing path."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = {p for pattern in _LOG_PATTERNS for p in path.glob(pattern) if p.is_file()}
            out.extend(sorted(found, key=_rotation_order))
            continue
        if not path.exists():
            raise SourceError(f"no such file: {path}")
        siblings = [
            p
            for p in path.parent.glob(f"{glob_escape(path.name)}.*")
            if p.is_file() and _ROTATED.fullmatch(p.name[len(path.name) + 1 :])
        ]
        out.extend(sorted(siblings, key=_rotation_order))
        out.append(path)
    return list(dict.fromkeys(out))


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def _rotation_order(path: Path) -> tuple[int, float, str]:
    """Oldest first: higher numbered rotations (events.log.3) before lower, then by mtime."""
    suffix = path.name.removesuffix(".gz").rsplit(".", 1)[-1]
    number = int(suffix) if suffix.isdigit() else -1
    try:
        mtime = path.stat().st_mtime
    except OSError:
        mtime = 0.0
    return (-number, mtime, path.name)


def _open(path: Path) -> BinaryIO:
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from None
    magic = raw.read(2)
    raw.seek(0)
    if magic == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    return raw


def _read(stream: BinaryIO, size: int, path: Path) -> bytes:
    try:
        return stream.read(size)
    except (OSError, EOFError, zlib.error) as exc:
        raise SourceError(f"cannot read {path}: {exc}") from None


def _chunks(stream: BinaryIO, path: Path) -> Iterator[bytes]:
    """Whole lines, CHUNK bytes at a time."""
    rest = b""
    while True:
        block = _read(stream, CHUNK, path)
        if not block:
            if rest:
                yield rest
            return
        cut = block.rfind(b"\n")
        if cut < 0:
            rest += block
            continue
        yield rest + block[: cut + 1]
        rest = block[cut + 1 :]


def _candidate_lines(chunk: bytes | mmap.mmap, literals: frozenset[bytes]) -> Iterator[bytes]:
    """The lines of ``chunk`` that contain one of ``literals``, in order, each once."""
    starts: set[int] = set()
    for literal in literals:
        pos = chunk.find(literal)
        while pos >= 0:
            line_start = chunk.rfind(b"\n", 0, pos) + 1
            starts.add(line_start)
            line_end = chunk.find(b"\n", pos)
            if line_end < 0:
                break
            pos = chunk.find(literal, line_end)
    for line_start in sorted(starts):
        line_end = chunk.find(b"\n", line_start)
        yield chunk[line_start : line_end if line_end >= 0 else len(chunk)]


def read_file(
    path: Path,
    query: Query | None = None,
    stats: FileStats | None = None,
    seen: SeenEvents | None = None,
) -> Iterator[TelemetryEvent]:
    """The events of one JSON-lines (or JSON array) file that match ``query``, in file order,
    copies of an event once (across files too when they share ``seen``). Lines lacking a
    literal the query requires are skipped undecoded. Raises SourceError when the file cannot
    be opened or read."""
    stats = stats if stats is not None else FileStats()
    seen = seen if seen is not None else SeenEvents()
    literal_sets = [
        frozenset(lit.encode() for lit in group)
        for group in (query.required_literals() if query else ())
    ]
    first, others = (literal_sets[0], literal_sets[1:]) if literal_sets else (None, [])
    with _open(path) as stream:
        head = _read(stream, 64, path)
        stream.seek(0)
        if head.lstrip()[:1] == b"[":
            yield from _read_json_array(path, stream, query, stats, seen)
            return
        # With a literal to look for, a plain file is searched in place without copying.
        mapped = _map(stream) if first is not None else None
        blocks: Iterable[Any] = (mapped,) if mapped is not None else _chunks(stream, path)
        try:
            line_no = 0
            for block in blocks:
                if first is None:
                    lines: Iterable[bytes] = block.splitlines()
                    numbered = True
                else:
                    lines = _candidate_lines(block, first)
                    numbered = False
                for line in lines:
                    line_no += 1
                    if others and not all(any(lit in line for lit in group) for group in others):
                        continue
                    if not line.strip():
                        continue
                    event = TelemetryEvent.from_json_line(line)
                    if event.malformed is not None and event.malformed.startswith(_NOT_AN_OBJECT):
                        where = f"{path}:{line_no}" if numbered else str(path)
                        stats.problem(f"{where}: {event.malformed}")
                        continue
                    if query is None or query.matches(event):
                        if not seen.first_time(event):
                            stats.duplicates += 1
                            continue
                        stats.events += 1
                        yield event
        finally:
            if mapped is not None:
                mapped.close()


def _map(stream: BinaryIO) -> mmap.mmap | None:
    """The plain file behind ``stream`` mapped read-only, or None (gzip, empty, a pipe)."""
    if not isinstance(stream, io.BufferedReader):
        return None
    try:
        return mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ)
    except (ValueError, OSError):  # empty file, or one that cannot be mapped: read it instead
        return None


def _read_json_array(
    path: Path, stream: BinaryIO, query: Query | None, stats: FileStats, seen: SeenEvents
) -> Iterator[TelemetryEvent]:
    import orjson

    try:
        items: Any = orjson.loads(_read(stream, -1, path))
    except orjson.JSONDecodeError as exc:
        raise SourceError(f"{path} is not a JSON array of events: {exc}") from None
    if not isinstance(items, list):
        raise SourceError(f"{path} is not a JSON array of events")
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            stats.problem(f"{path}: item {index} is not a JSON object")
            continue
        event = TelemetryEvent.from_dict(item)
        if query is None or query.matches(event):
            if not seen.first_time(event):
                stats.duplicates += 1
                continue
            stats.events += 1
            yield event


def read_files(
    paths: Iterable[Path], query: Query | None = None, stats: FileStats | None = None
) -> Iterator[TelemetryEvent]:
    """:func:`read_file` over :func:`expand_paths` of ``paths``, copies of an event once. A
    file that cannot be read (a corrupt rotated ``events.log.2.gz``) is skipped and counted in
    ``stats.unreadable``, the others are read; SourceError only when no file could be read."""
    stats = stats if stats is not None else FileStats()
    seen = SeenEvents()
    files = expand_paths(paths)
    for path in files:
        try:
            yield from read_file(path, query, stats, seen)
        except SourceError as exc:
            stats.skip(str(exc))
    if files and len(stats.unreadable) == len(files):
        raise SourceError(stats.unreadable[0])


def _merge_key(event: TelemetryEvent) -> tuple[int, int, int]:
    return (*order_key(event.id, event.timestamp), event.timestamp)


def merge(*sources: Iterable[TelemetryEvent]) -> list[TelemetryEvent]:
    """All events of ``sources`` in stream order (stream-ID time, else their own timestamp),
    each event once (by ``eventId``, else by stream ID)."""
    first_time = SeenEvents(capacity=None).first_time
    out = [event for source in sources for event in source if first_time(event)]
    out.sort(key=_merge_key)
    return out
