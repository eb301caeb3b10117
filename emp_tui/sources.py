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

import asyncio
import contextlib
import gzip
import heapq
import io
import mmap
import re
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Final, Literal

from emp_tui.events import SeenEvents, TelemetryEvent, decode
from emp_tui.query import Query
from emp_tui.stream_ids import next_id, order_key, parse_id, previous_id, stream_id_ms
from emp_tui.topology import (
    AsyncClient,
    ShardCount,
    SyncClient,
    async_client_for_url,
    client_for_url,
    find_shards,
    shard_keys,
    transient_errors,
)

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


def connect(url: str, *, timeout: float = 3.0) -> SyncClient:
    """A client for ``url`` (one server, or a Redis Cluster for a ``redis+cluster://`` URL:
    :func:`emp_tui.topology.client_for_url`) that has answered PING. Raises SourceError."""
    import redis

    from emp_tui.config import redacted_url

    try:
        client = client_for_url(url, socket_connect_timeout=timeout, socket_timeout=30)
        client.ping()
    except ValueError as exc:
        raise BadRedisUrl(f"bad Redis URL {redacted_url(url)}: {exc}") from None
    except redis.AuthenticationError as exc:
        raise SourceError(f"Redis at {redacted_url(url)} refused the password: {exc}") from None
    except _redis_errors() as exc:
        raise SourceError(f"cannot reach Redis at {redacted_url(url)}: {exc}") from None
    return client


def find_shards_sync(client: SyncClient, stream: str, configured: int | None) -> ShardCount:
    """:func:`emp_tui.topology.find_shards`. Raises SourceError when Redis cannot be read."""
    try:
        return find_shards(client, stream, configured)
    except _redis_errors() as exc:
        raise SourceError(f"cannot read {stream}: {_one_line(exc)}") from None


def find_shards_at(url: str, stream: str, configured: int | None) -> ShardCount:
    """:func:`find_shards_sync` on a client of its own for ``url``. Raises SourceError."""
    client = connect(url)
    try:
        return find_shards_sync(client, stream, configured)
    finally:
        client.close()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def read_range(
    client: SyncClient,
    stream: str,
    start: str = "-",
    end: str = "+",
    *,
    reverse: bool = False,
    page: int = PAGE,
    shards: int = 1,
) -> Iterator[TelemetryEvent]:
    """Entries between ``start`` and ``end`` (inclusive), oldest first (newest first with
    ``reverse``), read ``page`` at a time with XRANGE/XREVRANGE, copies of an event once.
    With ``shards`` > 1, every shard of the stream (:func:`emp_tui.topology.shard_keys`), each
    read on its own and merged by time and stream ID (copies of an event are looked for on
    its shard: an emitter resends an event to the shard it sent it to, and each shard's IDs
    are its own, so two shards may both hold ``<ms>-0``). Raises SourceError."""
    keys = shard_keys(stream, shards)
    if len(keys) == 1:
        yield from _once(_read_key_range(client, keys[0], start, end, reverse, page))
        return
    yield from heapq.merge(
        *(_once(_read_key_range(client, key, start, end, reverse, page)) for key in keys),
        key=_merge_key,
        reverse=reverse,
    )


def _once(events: Iterable[TelemetryEvent]) -> Iterator[TelemetryEvent]:
    """``events`` with copies of an event left out (:class:`SeenEvents`)."""
    first_time = SeenEvents().first_time
    return (event for event in events if first_time(event))


def _read_key_range(
    client: SyncClient, stream: str, start: str, end: str, reverse: bool, page: int
) -> Iterator[TelemetryEvent]:
    """One key's entries from ``start`` to ``end``, a page at a time."""
    import redis

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
        except _redis_errors() as exc:
            raise SourceError(f"lost Redis while reading {stream!r}: {exc}") from None
        for entry_id, fields in entries:
            yield decode(entry_id, fields or {})
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
    client: SyncClient,
    stream: str,
    query: Query,
    *,
    limit: int | None = None,
    page: int = PAGE,
    shards: int = 1,
) -> list[TelemetryEvent]:
    """The events ``query`` matches, oldest first, seeking to its time bounds (over every
    shard with ``shards`` > 1). With ``limit`` the most recent ``limit`` matches (read newest
    first, stopping once found)."""
    start, end = query.stream_range()
    if limit is None:
        return [
            e
            for e in read_range(client, stream, start, end, page=page, shards=shards)
            if query.matches(e)
        ]
    found: list[TelemetryEvent] = []
    if limit <= 0:
        return found
    for event in read_range(client, stream, start, end, reverse=True, page=page, shards=shards):
        if query.matches(event):
            found.append(event)
            if len(found) >= limit:
                break
    found.reverse()
    return found


# -- Redis, asynchronous range reads (the app's backfill) -----------------------------------


async def aread_range(
    client: AsyncClient,
    stream: str,
    start: str = "-",
    end: str = "+",
    *,
    reverse: bool = False,
    page: int = PAGE,
    shards: int = 1,
) -> AsyncIterator[TelemetryEvent]:
    """:func:`read_range` for a ``redis.asyncio`` client. Raises SourceError."""
    keys = shard_keys(stream, shards)
    reads = [_aread_key_range(client, key, start, end, reverse, page) for key in keys]
    # A k-way merge of the shards' reads: the next event is the newest (oldest) of their heads.
    heads: list[tuple[tuple[int, int, int], int, TelemetryEvent]] = []
    for index, read in enumerate(reads):
        event = await anext(read, None)
        if event is not None:
            heads.append((_merge_key(event), index, event))
    sign = -1 if reverse else 1
    order = [(tuple(sign * part for part in key), index, event) for key, index, event in heads]
    heapq.heapify(order)
    while order:
        _, index, event = heapq.heappop(order)
        yield event
        following = await anext(reads[index], None)
        if following is not None:
            key = tuple(sign * part for part in _merge_key(following))
            heapq.heappush(order, (key, index, following))


async def _aread_key_range(
    client: AsyncClient, stream: str, start: str, end: str, reverse: bool, page: int
) -> AsyncIterator[TelemetryEvent]:
    import redis

    first_time = SeenEvents().first_time  # copies of an event are on its shard
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
        except _redis_errors() as exc:
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
    shards: int = 1,
) -> list[TelemetryEvent]:
    """The newest ``limit`` events (matching ``query``, within its time bounds), oldest first,
    over every shard with ``shards`` > 1. Start a :class:`RedisTail` at the last one's ID to
    follow on without a gap; give both one ``seen`` and a copy of an event on either side of
    the seam is collapsed too. Raises SourceError when Redis cannot be reached or read."""

    from emp_tui.config import redacted_url

    start, end = query.stream_range() if query is not None else ("-", "+")
    found: list[TelemetryEvent] = []
    try:
        client = async_client_for_url(url, socket_connect_timeout=3)
    except ValueError as exc:
        raise BadRedisUrl(f"bad Redis URL {redacted_url(url)}: {exc}") from None
    try:
        try:
            await client.ping()
        except _redis_errors() as exc:
            raise SourceError(f"cannot reach Redis at {redacted_url(url)}: {exc}") from None
        if limit > 0:
            async for event in aread_range(
                client, stream, start, end, reverse=True, page=page, shards=shards
            ):
                if query is None or query.matches(event):
                    found.append(event)
                    if len(found) >= limit:
                        break
    finally:
        await client.aclose()
    found.reverse()
    if seen is not None:
        found = [event for event in found if _first_time(seen, event, shards > 1)]
    return found


def _first_time(seen: SeenEvents, event: TelemetryEvent, sharded: bool) -> bool:
    """``seen.first_time(event)``; over several shards only for an event with an
    ``eventId`` (a stream ID is not one event's over several keys)."""
    if sharded and event.event_id is None:
        return True
    return seen.first_time(event)


# -- Redis, live ----------------------------------------------------------------------------

SHARD_SKEW_MS: Final = 10_000
"""How far before a given start ID the shards of a sharded stream are read from (see
:class:`RedisTail`)."""


class RedisTail:
    """Follows the stream from ``start_id`` (``$`` = only what arrives from now on), copies of
    an event once (``seen``: what was shown before the tail began, e.g. by :func:`backfill`).

    With ``shards`` > 1 it follows every shard, each with a blocking XREAD of its own on a
    connection of its own (one XREAD over keys in several hash slots is refused by a cluster
    with CROSSSLOT), and delivers what they read merged by time and stream ID. ``start_id``
    may then be a mapping of shard key to ID; one ID for all is taken back by
    ``SHARD_SKEW_MS`` on each shard, because an ID read on one shard does not bound what
    another gets later (each shard's IDs come from its own master's clock, and whoever found
    the ID read the shards one after the other): what was read before is met again, and a
    reader that holds it already (the store, ``seen``) passes over it. Each shard reconnects
    on its own when its node fails or its slot moves (a cluster client follows MOVED/ASK and
    reads the slot map again); ``state`` is the worst of the shards' states and ``error`` the
    first shard's error, named by its key."""

    def __init__(
        self,
        url: str,
        stream: str,
        *,
        start_id: str | Mapping[str, str] = "$",
        block_ms: int = 1000,
        count: int = 1000,
        backoff_initial: float = 0.2,
        backoff_max: float = 5.0,
        on_state: Callable[[ConnectionState, str | None], None] | None = None,
        seen: SeenEvents | None = None,
        shards: int = 1,
    ) -> None:
        self.url = url
        self.stream = stream
        self.keys = shard_keys(stream, shards)
        if isinstance(start_id, str):
            first = start_id
            if len(self.keys) > 1 and start_id not in ("$", "0", "0-0"):
                ms = stream_id_ms(start_id)
                first = "0-0" if ms is None else f"{max(ms - SHARD_SKEW_MS, 0)}-0"
            positions = dict.fromkeys(self.keys, first)
        else:
            positions = {key: start_id.get(key, "0-0") for key in self.keys}
        self.positions: dict[str, str] = positions
        """The last ID delivered of each shard (``$`` until it is first connected)."""
        start_ms = stream_id_ms(start_id) if isinstance(start_id, str) else None
        self._origin_ms = (
            start_ms if start_ms is not None else int(time.time() * 1000)
        ) - SHARD_SKEW_MS
        """Where a shard added while following (:meth:`add_keys`) is read from."""
        self.block_ms = block_ms
        self.count = count
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.on_state = on_state
        self.state: ConnectionState = "connecting"
        self.error: str | None = None
        self.reconnects = 0
        self.seen = seen if seen is not None else SeenEvents()
        self._shard_states: dict[str, tuple[ConnectionState, str | None]] = dict.fromkeys(
            self.keys, ("connecting", None)
        )
        self._clients: dict[str, AsyncClient] = {}
        self._queue: asyncio.Queue[list[TelemetryEvent] | None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._state_changed = False
        self._closed = False
        self._failure: Exception | None = None

    def add_keys(self, keys: Iterable[str]) -> list[str]:
        """Follow ``keys`` too: the shards the emitters moved to while this tail ran (a
        rolling change of ``EMP_EVENTS_SHARDS``: the keys followed already may still get
        events, and are kept). Each is read from where this tail began (less
        ``SHARD_SKEW_MS``), so what was written there before the move was noticed comes too.
        Returns the keys added."""
        if self._closed:
            return []
        added = [key for key in dict.fromkeys(keys) if key not in self.positions]
        for key in added:
            self.keys.append(key)
            self.positions[key] = f"{max(self._origin_ms, 0)}-0"
            self._shard_states[key] = ("connecting", None)
            if self._queue is not None:
                self._tasks.append(asyncio.create_task(self._follow(key)))
        return added

    @property
    def last_id(self) -> str:
        """The last ID delivered (of one shard: the newest over the shards)."""
        if len(self.keys) == 1:
            return self.positions[self.keys[0]]
        known = [p for p in self.positions.values() if parse_id(p) is not None]
        return max(known, key=lambda p: order_key(p, 0)) if known else "$"

    def _set_shard_state(self, key: str, state: ConnectionState, error: str | None) -> None:
        self._shard_states[key] = (state, error)
        states = [s for s, _ in self._shard_states.values()]
        errors = [
            (e if len(self.keys) == 1 else f"{k}: {e}")
            for k, (_, e) in self._shard_states.items()
            if e is not None
        ]
        overall: ConnectionState = (
            "reconnecting"
            if "reconnecting" in states
            else "connecting"
            if "connecting" in states
            else "connected"
        )
        self._set_state(overall, errors[0] if errors and overall != "connected" else None)

    def _set_state(self, state: ConnectionState, error: str | None = None) -> None:
        if state != self.state or error != self.error:
            self.state, self.error = state, error
            self._state_changed = True
            if self.on_state is not None:
                self.on_state(state, error)

    def __aiter__(self) -> AsyncIterator[list[TelemetryEvent]]:
        return self

    async def __anext__(self) -> list[TelemetryEvent]:
        if self._queue is None and not self._closed:
            self._queue = asyncio.Queue(maxsize=4 * len(self.keys))
            self._tasks = [asyncio.create_task(self._follow(key)) for key in self.keys]
        queue = self._queue
        while not self._closed and queue is not None:
            if self._state_changed:
                self._state_changed = False
                return []
            got = await queue.get()
            if self._failure is not None:
                raise self._failure
            if got is None:  # a change of state
                continue
            batches = [got]
            while not queue.empty():  # what the other shards have read meanwhile, merged
                more = queue.get_nowait()
                if more is not None:
                    batches.append(more)
            events = (
                batches[0]
                if len(batches) == 1
                else sorted((e for b in batches for e in b), key=_merge_key)
            )
            sharded = len(self.keys) > 1
            batch = [event for event in events if _first_time(self.seen, event, sharded)]
            if batch:
                return batch
        raise StopAsyncIteration

    async def _follow(self, key: str) -> None:
        """One shard's blocking reads, on a client of its own, until the tail is closed."""
        queue = self._queue
        assert queue is not None
        lost = transient_errors()
        try:
            await self._follow_shard(key, queue, lost)
        except Exception as exc:  # noqa: BLE001 - handed on: the iteration raises it
            self._failure = exc
            await queue.put(None)

    async def _follow_shard(
        self,
        key: str,
        queue: asyncio.Queue[list[TelemetryEvent] | None],
        lost: tuple[type[BaseException], ...],
    ) -> None:
        import redis

        delay = self.backoff_initial
        while not self._closed:
            client = self._clients.get(key)
            try:
                if client is None:
                    client = async_client_for_url(
                        self.url, socket_connect_timeout=3, socket_timeout=None
                    )
                    self._clients[key] = client
                    await client.ping()
                    if self.positions[key] == "$":
                        newest: Any = await client.xrevrange(key, "+", "-", count=1)
                        self.positions[key] = _text(newest[0][0]) if newest else "0-0"
                    delay = self.backoff_initial
                    self._set_shard_state(key, "connected", None)
                    await queue.put(None)
                reply: Any = await client.xread(
                    {key: self.positions[key]}, count=self.count, block=self.block_ms
                )
            except asyncio.CancelledError:
                raise
            except lost as exc:
                await self._drop_client(key)
                if self._closed:
                    break
                self.reconnects += 1
                self._set_shard_state(key, "reconnecting", _one_line(exc))
                await queue.put(None)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff_max)
                continue
            except redis.RedisError as exc:
                # Not a connection problem (a wrong type at the key, a bad ID): report it
                # and keep trying slowly rather than spin or hide it.
                self._set_shard_state(key, "reconnecting", _one_line(exc))
                await queue.put(None)
                await asyncio.sleep(self.backoff_max)
                continue
            if not reply:
                continue
            # A reply is a list of [key, entries] (RESP2) or a dict (RESP3).
            items = reply.items() if isinstance(reply, dict) else reply
            for _key, entries in items:
                if entries:
                    self.positions[key] = _text(entries[-1][0])
                    await queue.put([decode(i, f or {}) for i, f in entries])

    async def _drop_client(self, key: str) -> None:
        client = self._clients.pop(key, None)
        if client is not None:
            try:
                await client.aclose()
            except (OSError, RuntimeError) as exc:  # closing a dead socket: nothing to save
                self.error = self.error or _one_line(exc)

    async def aclose(self) -> None:
        self._closed = True
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for key in list(self._clients):
            await self._drop_client(key)
        self._set_state("disconnected", self.error)


def _redis_errors() -> tuple[type[BaseException], ...]:
    """What a read from Redis or a cluster raises when it cannot be done."""
    import redis
    from redis.exceptions import RedisClusterException

    return (redis.RedisError, OSError, RedisClusterException)


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
    an event that an earlier source holds left out (by ``eventId``, else by stream ID). Each
    source has left out its own copies: within one, two events of one stream ID are two
    shards' entries."""
    held: set[str] = set()
    out: list[TelemetryEvent] = []
    for source in sources:
        keys: set[str] = set()
        for event in source:
            key = event.event_id
            if key is None and event.id is not None:
                key = "\0" + event.id  # another namespace than the event IDs
            if key is not None:
                if key in held:
                    continue
                keys.add(key)
            out.append(event)
        held |= keys
    out.sort(key=_merge_key)
    return out
