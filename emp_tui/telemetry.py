"""EventClient: the emitter EMP's Python services call. Fire-and-forget.

A call to :meth:`EventClient.event` checks its arguments (IDs given as UUIDs, ints or bytes
become text; anything else drops that one event, counted), stamps the event, snapshots its
data as JSON and appends it to a bounded in-memory buffer; that is all the caller's thread
ever does. A background thread takes the buffer in batches and hands each batch to Redis in
one round trip: the batch as one JSON array (one ``orjson`` call), appended by a server-side
script (:data:`APPEND_SCRIPT`, ``EVALSHA``) that turns every event into its ``XADD`` with the
wire format's fields and trims the stream once per batch. So the flusher's own cost per event,
which the service pays on the GIL, is a few hundred nanoseconds.

When Redis is unreachable the service goes on unaffected: the circuit opens, the buffer holds
what it can (further events are dropped and counted) or, with a spill directory configured,
events go to local JSON-lines files (:mod:`emp_tui.spill`); the flusher probes with backoff,
replays the spill in order once Redis answers (half-open), then sends directly again (closed).
Each change is a ``telemetry.circuit_changed`` event, and every drop is reported by one
``telemetry.events_dropped`` event once Redis takes events again. With a spill directory the
circuit also opens while Redis's memory is over a share of its ``maxmemory`` (``INFO memory``,
read by the flusher every few seconds) or Redis answers OOM.

Delivery is at least once: a batch whose reply did not arrive (Redis paused past the socket
timeout) is sent again byte for byte, so a copy that Redis had taken after all carries the same
``eventId`` and readers collapse the two (:class:`emp_tui.events.SeenEvents`); the same holds
for a batch spilled after it was written to Redis, and for spill lines replayed again after a
crash.

Settings not given to the constructor come from the environment, read when the client first
emits (so the ready-made clients below can be imported before the environment is set):
``REDIS_URL`` (``redis+cluster://`` for a Redis Cluster) or ``REDIS_HOST``/``REDIS_PORT``/
``REDIS_PASSWORD``, ``EMP_EVENTS_STREAM``, ``EMP_EVENTS_SHARDS``, ``EMP_EVENTS_MAXLEN``,
``EMP_EVENTS_RETENTION``, ``EMP_TELEMETRY_ENABLED``, ``EMP_TELEMETRY_LEVEL``,
``EMP_TELEMETRY_SAMPLE`` (``job.progress_updated=0.1,worker.*=0.5``),
``EMP_TELEMETRY_SPILL_DIR``, ``EMP_TELEMETRY_SPILL_MAX_BYTES``,
``EMP_TELEMETRY_SPILL_MEMORY_SHARE`` and ``EMP_TELEMETRY_SCRIPT``.
"""

from __future__ import annotations

import atexit
import fnmatch
import functools
import hashlib
import logging
import math
import os
import random
import threading
import time
import weakref
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final, TypeAlias, TypeVar, cast
from uuid import UUID

import orjson
import redis
from redis.backoff import NoBackoff
from redis.exceptions import NoPermissionError, NoScriptError
from redis.retry import Retry

from emp_tui.env import env_flag, parse_size, redis_url_from_env, stream_from_env
from emp_tui.events import (
    CIRCUIT_EVENT_TYPE,
    DEFAULT_MAXLEN,
    DROPPED_EVENT_TYPE,
    LEVEL_RANK,
    MAX_TIMESTAMP_MS,
    TelemetryEvent,
    data_json,
    default_level,
    flat_fields,
    new_span_id,
    new_trace_id,
    normalize_level,
    trace_id_for_job,
)
from emp_tui.query import parse_duration_ms
from emp_tui.redact import redact_url
from emp_tui.spill import Spill, SpillRead, spill_group_name
from emp_tui.topology import (
    SyncClient,
    client_for_url,
    shard_key,
    shards_from_env,
    transient_errors,
    trim_policy_key,
)

IdLike: TypeAlias = str | int | UUID | bytes
"""What a name or ID may be given as: a str, or an int, UUID or UTF-8 bytes (sent as text)."""

__all__ = [
    "APPEND_SCRIPT",
    "CIRCUIT_EVENT_TYPE",
    "DROPPED_EVENT_TYPE",
    "ClientStats",
    "EventClient",
    "IdLike",
    "Operation",
    "api_telemetry",
    "machine_telemetry",
    "monitor_telemetry",
    "parse_sample_spec",
    "webhook_telemetry",
    "worker_telemetry",
]

log = logging.getLogger(__name__)

CLOSED: Final = "closed"
OPEN: Final = "open"
HALF_OPEN: Final = "half-open"
EXIT_WAIT: Final = 1.5
"""Seconds the interpreter's exit waits, for all clients together, for buffered events to
reach Redis: a process exits within 2 s even with Redis hung."""
DEFAULT_SPILL_MAX_BYTES: Final = 100 << 20
DEFAULT_MEMORY_SHARE: Final = 0.9
POLICY_EVERY: Final = 60.0
"""Seconds between two writes of the trim policy record (and its TTL is an hour)."""
POLICY_TTL: Final = 3600
ORPHAN_SCAN_EVERY: Final = 60.0
"""Seconds between two looks for spill files that emitters gone before left behind."""
_EMPTY_DATA: Final = "{}"
_dumps: Final = orjson.dumps
_NON_STR_KEYS: Final = orjson.OPT_NON_STR_KEYS
_TRACE_CACHE: Final = 4096
_NO_RETRY: Final = Retry(NoBackoff(), 0)
_T = TypeVar("_T")

# What the caller's thread puts in the buffer: everything the flusher needs, nothing more.
#   (timestamp_ms, event_type, data_json, job_id, worker_id, machine_id, user_id,
#    trace_id, span_id, level)
_Item = tuple[
    int, str, str, str | None, str | None, str | None, str | None, str | None, str | None, str
]

APPEND_SCRIPT: Final = """
-- Append a batch of telemetry events to the stream KEYS[1], then trim it once.
-- ARGV: mode, service, eventId prefix, eventId base, MAXLEN (0: none), retention ms (0: none),
--       {jobId: traceId}, random trace IDs (32 hex each, in order), the batch as JSON.
-- Mode 'e': each event is [timestamp, eventType, data, jobId, workerId, machineId, userId,
--   traceId, spanId, level] (null when absent); its fields are written in the order of
--   emp_tui.events.flat_fields, its eventId is the prefix and base + its index as 6 hex.
-- Mode 'f': each event is its XADD field/value list as it is.
-- Returns {events processed, OOM error or '', index, error, index, error, ...}: an event
-- Redis refuses costs that event only; OOM stops the batch (the rest is not attempted).
local key = KEYS[1]
local events = cjson.decode(ARGV[9])
local null = cjson.null
local out = {0, ''}
local function add(i, fields)
  local reply = redis.pcall('XADD', key, '*', unpack(fields))
  if type(reply) == 'table' and reply.err then
    if string.sub(reply.err, 1, 3) == 'OOM' then
      out[2] = reply.err
      return false
    end
    out[#out + 1] = i - 1
    out[#out + 1] = reply.err
  end
  out[1] = i
  return true
end
if ARGV[1] == 'e' then
  local service, prefix, base = ARGV[2], ARGV[3], tonumber(ARGV[4])
  local traces, randoms, drawn = cjson.decode(ARGV[7]), ARGV[8], 0
  for i, e in ipairs(events) do
    local job, trace = e[4], e[8]
    if trace == null then
      if job ~= null and job ~= '' then
        trace = traces[job]
      else
        drawn = drawn + 32
        trace = string.sub(randoms, drawn - 31, drawn)
      end
    end
    local f = {'timestamp', string.format('%.0f', e[1]), 'service', service,
               'eventType', e[2], 'traceId', trace}
    local n = 8
    if e[9] ~= null then f[n + 1] = 'spanId'; f[n + 2] = e[9]; n = n + 2 end
    if job ~= null then f[n + 1] = 'jobId'; f[n + 2] = job; n = n + 2 end
    if e[5] ~= null then f[n + 1] = 'workerId'; f[n + 2] = e[5]; n = n + 2 end
    if e[6] ~= null then f[n + 1] = 'machineId'; f[n + 2] = e[6]; n = n + 2 end
    if e[7] ~= null then f[n + 1] = 'userId'; f[n + 2] = e[7]; n = n + 2 end
    f[n + 1] = 'level'; f[n + 2] = e[10]
    f[n + 3] = 'data'; f[n + 4] = e[3]
    f[n + 5] = 'v'; f[n + 6] = '1'
    f[n + 7] = 'eventId'; f[n + 8] = prefix .. string.format('%06x', base + i - 1)
    if not add(i, f) then break end
  end
else
  for i, f in ipairs(events) do
    if not add(i, f) then break end
  end
end
if out[1] > 0 then
  if ARGV[5] ~= '0' then redis.pcall('XTRIM', key, 'MAXLEN', '~', ARGV[5]) end
  local retention = tonumber(ARGV[6])
  if retention > 0 then
    local now = redis.call('TIME')
    local minid = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - retention
    if minid > 0 then
      redis.pcall('XTRIM', key, 'MINID', '~', string.format('%.0f', minid))
    end
  end
end
return out
"""
"""The server-side half of the emitter (Lua, so that it runs on Redis 6.2 and in a cluster: one
key per call). Clients that cannot run scripts (an ACL without ``@scripting``) send one
``XADD`` per event instead, pipelined."""
_SCRIPT_SHA: Final = hashlib.sha1(APPEND_SCRIPT.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ClientStats:
    """Counters of one client. ``emitted`` = sent + failed + buffered + spilled + dropped:
    ``failed`` are events Redis refused, ``dropped`` those never sent (buffer full, arguments
    that are not text, an event that could not be packed or sent), ``spilled`` those waiting
    in the spill files to be replayed. ``circuit`` is ``closed`` (sending to Redis), ``open``
    (Redis unreachable, or its memory over the configured share: buffering or spilling) or
    ``half-open`` (Redis answers again; replaying the spill)."""

    emitted: int
    sent: int
    dropped: int
    failed: int
    buffered: int
    connected: bool
    spilled: int = 0
    circuit: str = CLOSED


class _EventIds:
    """Event IDs: 16 lowercase hex digits, a random 40-bit prefix then a 24-bit counter. The
    prefix is drawn anew for each client, in a forked child, and when the counter would pass
    2**24, so two emitters share an ID only by a 1-in-2**40 chance, and then only for one of
    their events."""

    __slots__ = ("_count", "_prefix")

    def __init__(self) -> None:
        self._prefix = os.urandom(5).hex()
        self._count = 0

    def take(self, count: int) -> tuple[str, int]:
        """IDs for ``count`` events: ``prefix`` and the counter of the first; the others
        follow it."""
        if self._count + count > 0x1000000:
            self._prefix = os.urandom(5).hex()
            self._count = 0
        base = self._count
        self._count = base + count
        return self._prefix, base


@dataclass(eq=False, slots=True)
class _Chunk:
    """Events bound for one stream key in one round trip.

    Live events (``items``, from the buffer) carry what the script needs to make their fields
    (``prefix``/``base`` for their IDs, ``traces`` for job traces, ``randoms`` for the random
    ones); replayed events (``rows``) are already field lists. ``payload`` is the JSON the
    script reads, made once, so that a resend is the same bytes. ``counted``: live events of
    the caller (True), of the emitter itself (False); for replayed events, per event.
    ``lines``: for replayed events, each one's line in the spill read."""

    key: str
    payload: bytes
    items: list[_Item] | None = None
    rows: list[list[str]] | None = None
    prefix: str = ""
    base: int = 0
    traces: dict[str, str] = field(default_factory=dict)
    randoms: str = ""
    counted: bool | list[bool] = True
    lines: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items) if self.items is not None else len(self.rows or ())

    def counted_events(self) -> int:
        if isinstance(self.counted, bool):
            return len(self) if self.counted else 0
        return sum(self.counted)

    def script_args(self, service: str, maxlen: str, retention: str) -> tuple[str | bytes, ...]:
        if self.items is not None:
            traces = _dumps(self.traces)
            return ("e", service, self.prefix, str(self.base), maxlen, retention, traces,
                    self.randoms, self.payload)  # fmt: skip
        return ("f", "", "", "0", maxlen, retention, "{}", "", self.payload)

    def split(self, at: int) -> tuple[_Chunk, _Chunk]:
        """The chunk as two, the first holding its first ``at`` events (bisecting a failure,
        or keeping what an OOM stopped): IDs and traces stay what they were."""
        counted = self.counted
        first_counted, second_counted = (
            (counted, counted) if isinstance(counted, bool) else (counted[:at], counted[at:])
        )
        if self.items is not None:
            head, tail = self.items[:at], self.items[at:]
            drawn = sum(1 for item in head if item[7] is None and not item[3]) * 32
            return (
                _Chunk(self.key, _dumps(head), head, None, self.prefix, self.base,
                       self.traces, self.randoms[:drawn], first_counted),
                _Chunk(self.key, _dumps(tail), tail, None, self.prefix, self.base + at,
                       self.traces, self.randoms[drawn:], second_counted),
            )  # fmt: skip
        rows = self.rows or []
        return (
            _Chunk(self.key, _dumps(rows[:at]), None, rows[:at], counted=first_counted,
                   lines=self.lines[:at]),
            _Chunk(self.key, _dumps(rows[at:]), None, rows[at:], counted=second_counted,
                   lines=self.lines[at:]),
        )  # fmt: skip

    def _resolved(self, service: str) -> Iterator[tuple[TelemetryEvent, str]]:
        """The live events as the script writes them (the same trace and event IDs), each
        with its data's JSON (the event's ``data`` holds it as an ``orjson.Fragment``)."""
        assert self.items is not None
        drawn = 0
        for index, item in enumerate(self.items):
            ts, etype, data, job, worker, machine, user, trace, span, level = item
            if trace is None:
                if job:
                    trace = self.traces[job]
                else:
                    trace = self.randoms[drawn : drawn + 32]
                    drawn += 32
            event = TelemetryEvent(
                ts, service, etype, trace, span, job, worker, machine, user, level,
                cast(Mapping[str, Any], orjson.Fragment(data)),
                event_id=f"{self.prefix}{self.base + index:06x}",
            )  # fmt: skip
            yield event, data

    def rows_for(self, service: str) -> list[list[str]]:
        """Each event's XADD field/value list (for Redis that runs no scripts)."""
        if self.rows is not None:
            return self.rows
        rows = []
        for e, data in self._resolved(service):
            row = flat_fields(
                e.timestamp, e.service, e.event_type, e.trace_id, e.span_id, e.job_id,
                e.worker_id, e.machine_id, e.user_id, e.level, data, e.event_id,
            )  # fmt: skip
            rows.append(row)
        return rows

    def spill_lines(self, service: str) -> bytes:
        """The live events as JSON lines, the file form of the wire format."""
        return b"".join(
            _dumps(event.to_dict(), option=orjson.OPT_APPEND_NEWLINE)
            for event, _ in self._resolved(service)
        )


def _as_text(value: Any) -> str | None:
    """A name or ID that is not a plain str, as text: None when it cannot be (the event is
    then dropped, not sent with a made-up ID)."""
    if isinstance(value, str):
        return str.__str__(value)  # a StrEnum or other subclass: its characters
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return str(value)
        except ValueError:  # past Python's limit on digits
            return None
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return None
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def parse_sample_spec(spec: str) -> dict[str, float]:
    """``"job.progress_updated=0.1,worker.*=0.5"`` -> ``{pattern: keep-rate}``.

    Raises ValueError naming the bad part; the client logs it and samples nothing."""
    rates: dict[str, float] = {}
    for part in spec.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        pattern, sep, rate_text = part.partition("=")
        try:
            rate = float(rate_text)
        except ValueError:
            rate = -1.0
        if not sep or not pattern.strip() or not 0.0 <= rate <= 1.0:
            raise ValueError(f"bad sampling rule {part!r}: expected TYPE=RATE, RATE in [0, 1]")
        rates[pattern.strip()] = rate
    return rates


class EventClient:
    """Emit telemetry events for one service. Every public method is safe to call from any
    thread or coroutine, never blocks on Redis and never raises.

    Trimming: ``maxlen`` keeps about that many entries (``MAXLEN ~``), ``retention_ms`` keeps
    about that much time, by the entries' IDs on the server's clock (``MINID ~``); both apply
    when both are given, once per batch, and with neither the stream keeps about
    :data:`~emp_tui.events.DEFAULT_MAXLEN` entries. ``shards`` > 1 spreads the stream over
    that many keys (:func:`emp_tui.topology.shard_key`). ``spill_dir`` turns the spill on,
    ``spill_max_bytes`` bounds it and ``memory_share`` is the share of Redis's ``maxmemory``
    past which the circuit opens (read every ``memory_check_interval`` seconds; 0 turns the
    check off). ``script=False`` sends one pipelined ``XADD`` per event instead of the script:
    less work for Redis, more for the flusher (on the service's GIL)."""

    def __init__(
        self,
        service: str,
        *,
        redis_url: str | None = None,
        stream: str | None = None,
        maxlen: int | None = None,
        retention_ms: int | None = None,
        shards: int | None = None,
        max_buffer: int = 10_000,
        enabled: bool | None = None,
        level: str | None = None,
        sample: Mapping[str, float] | None = None,
        batch_size: int = 500,
        flush_interval: float = 0.05,
        max_backoff: float = 5.0,
        socket_timeout: float = 2.0,
        spill_dir: str | os.PathLike[str] | None = None,
        spill_max_bytes: int | None = None,
        memory_share: float | None = None,
        memory_check_interval: float = 5.0,
        script: bool | None = None,
    ) -> None:
        self.service = service
        self._redis_url = redis_url
        self._stream = stream
        self._maxlen_arg = maxlen
        self._retention_arg = retention_ms
        self._shards_arg = shards
        self.max_buffer = max_buffer
        self._enabled_arg = enabled
        self._level_arg = level
        self._sample_arg = dict(sample) if sample is not None else None
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_backoff = max_backoff
        self.socket_timeout = socket_timeout
        self._spill_dir_arg = spill_dir
        self._spill_max_arg = spill_max_bytes
        self._memory_share_arg = memory_share
        self.memory_check_interval = memory_check_interval
        self._script_arg = script
        self.script = True

        self._configured = False
        self._enabled = True
        self._min_rank = 0
        self._sample: dict[str, float] = {}
        self._sample_cache: dict[str, float] = {}
        self.maxlen: int | None = maxlen
        self.retention_ms: int | None = retention_ms
        self.shards = 1
        self.spill_dir: Path | None = None
        self.spill_max_bytes = DEFAULT_SPILL_MAX_BYTES
        self.memory_share: float | None = None
        self._init_runtime()
        _CLIENTS.add(self)

    def _init_runtime(self) -> None:
        """State that belongs to one process: rebuilt in a forked child."""
        self._buffer: deque[_Item] = deque()
        # Events taken from the buffer: being packed (a count), then packed and waiting to be
        # sent (or spilled), in order.
        self._packing = 0
        self._inflight: list[_Chunk] = []
        self._event_ids = _EventIds()
        self._job_traces: dict[str, str] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._drained = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._redis: SyncClient | None = None
        self._transient: tuple[type[BaseException], ...] = transient_errors()
        self._scripting = True
        self._connected = False
        self._popped = 0
        self._sent = 0
        self._failed = 0
        self._spilled = 0
        self._dropped_at_call = 0
        self._dropped_later = 0
        self._unreported: Counter[str] = Counter()  # drops not reported yet, by reason
        self._full_unreported = 0  # ... but those of a full buffer (counted on the hot path)
        self._report: list[_Chunk] = []  # the drop report in flight, sent again as it is
        self._wake_at = max(1, self.batch_size)
        self._started = False
        self._accepting = False
        self._closed = False
        # The circuit, and when the flusher next looks at Redis.
        self._circuit = CLOSED
        self._backoff = 0.0
        self._retry_at = 0.0
        self._paused_until = 0.0
        self._memory_at = 0.0
        self._orphans_at = 0.0
        self._policy_at = 0.0
        self._spill: Spill | None = None
        self._spill_full_logged = False

    # -- configuration -------------------------------------------------------------------

    @property
    def redis_url(self) -> str:
        return self._redis_url if self._redis_url is not None else redis_url_from_env()

    @property
    def stream(self) -> str:
        return self._stream if self._stream is not None else stream_from_env()

    @property
    def enabled(self) -> bool:
        self._configure()
        return self._enabled

    def _configure(self) -> None:
        if self._configured:
            return
        env = os.environ
        self._redis_url = self.redis_url
        self._stream = self.stream
        enabled = self._enabled_arg
        self._enabled = (
            env_flag(env.get("EMP_TELEMETRY_ENABLED"), True) if enabled is None else enabled
        )
        level_text = self._level_arg or env.get("EMP_TELEMETRY_LEVEL") or "debug"
        level = normalize_level(level_text)
        if level is None:
            log.warning("EMP_TELEMETRY_LEVEL=%r is not a level; emitting every level", level_text)
            level = "debug"
        self._min_rank = LEVEL_RANK[level]
        if self._sample_arg is not None:
            self._sample = self._sample_arg
        elif env.get("EMP_TELEMETRY_SAMPLE"):
            try:
                self._sample = parse_sample_spec(env["EMP_TELEMETRY_SAMPLE"])
            except ValueError as exc:
                log.warning("EMP_TELEMETRY_SAMPLE ignored: %s", exc)
        self._configure_stream(env)
        self._configure_spill(env)
        self.script = (
            env_flag(env.get("EMP_TELEMETRY_SCRIPT"), True)
            if self._script_arg is None
            else self._script_arg
        )
        if not (_encodable(self.service) and _encodable(self._stream)):
            log.error(
                "telemetry off: service %r or stream %r is not text", self.service, self._stream
            )
            self._enabled = False
        self._configured = True

    def _configure_stream(self, env: Mapping[str, str]) -> None:
        """Shards and trimming: the constructor's, else the environment's."""
        if self._shards_arg is not None:
            self.shards = max(1, self._shards_arg)
        else:
            try:
                self.shards = shards_from_env(env)
            except ValueError as exc:
                log.warning("%s; writing one stream", exc)
        maxlen = self._maxlen_arg
        if maxlen is None and env.get("EMP_EVENTS_MAXLEN", "").strip():
            text = env["EMP_EVENTS_MAXLEN"].strip()
            if text.isdigit() and int(text) > 0:
                maxlen = int(text)
            else:
                log.warning("EMP_EVENTS_MAXLEN=%r is not a positive number; ignored", text)
        retention = self._retention_arg
        if retention is None and env.get("EMP_EVENTS_RETENTION", "").strip():
            text = env["EMP_EVENTS_RETENTION"].strip()
            retention = parse_duration_ms(text)
            if not retention or retention < 1:
                log.warning("EMP_EVENTS_RETENTION=%r is not a duration like 24h; ignored", text)
                retention = None
        if maxlen is None and retention is None:
            maxlen = DEFAULT_MAXLEN
        self.maxlen = maxlen if maxlen and maxlen > 0 else None
        self.retention_ms = retention if retention and retention > 0 else None

    def _configure_spill(self, env: Mapping[str, str]) -> None:
        directory = self._spill_dir_arg
        if directory is None:
            directory = env.get("EMP_TELEMETRY_SPILL_DIR", "").strip() or None
        if directory is None:
            return
        self.spill_dir = Path(directory).expanduser()
        if self._spill_max_arg is not None:
            self.spill_max_bytes = self._spill_max_arg
        elif env.get("EMP_TELEMETRY_SPILL_MAX_BYTES", "").strip():
            text = env["EMP_TELEMETRY_SPILL_MAX_BYTES"]
            size = parse_size(text)
            if size is None:
                log.warning("EMP_TELEMETRY_SPILL_MAX_BYTES=%r is not a size like 100M", text)
            else:
                self.spill_max_bytes = size
        share = self._memory_share_arg
        if share is None:
            text = env.get("EMP_TELEMETRY_SPILL_MEMORY_SHARE", "").strip()
            try:
                share = float(text) if text else DEFAULT_MEMORY_SHARE
            except ValueError:
                share = -1.0
            if not 0.0 < share <= 1.0:
                log.warning(
                    "EMP_TELEMETRY_SPILL_MEMORY_SHARE=%r is not a share in (0, 1]; using %s",
                    text,
                    DEFAULT_MEMORY_SHARE,
                )
                share = DEFAULT_MEMORY_SHARE
        self.memory_share = share if share and 0.0 < share <= 1.0 else None

    def _sample_rate(self, event_type: str) -> float:
        rate = self._sample_cache.get(event_type)
        if rate is None:
            rate = self._sample.get(event_type, -1.0)
            if rate < 0:
                rate = next(
                    (r for p, r in self._sample.items() if fnmatch.fnmatchcase(event_type, p)),
                    1.0,
                )
            self._sample_cache[event_type] = rate
        return rate

    # -- the caller's side ---------------------------------------------------------------

    def event(
        self,
        event_type: IdLike,
        data: Mapping[str, Any] | None = None,
        *,
        job_id: IdLike | None = None,
        worker_id: IdLike | None = None,
        machine_id: IdLike | None = None,
        user_id: IdLike | None = None,
        trace_id: IdLike | None = None,
        span_id: IdLike | None = None,
        level: str | None = None,
        timestamp: int | None = None,
    ) -> None:
        """Queue one event. Returns at once; never raises. ``timestamp`` (epoch ms) stands in
        for the time of the call, for emitters that replay or simulate events.

        Names and IDs given as an int, a UUID or UTF-8 bytes are sent as text; given as
        anything else (or a bad ``level`` or ``timestamp``), the event is dropped and counted.
        ``data`` is snapshotted as JSON whatever it holds (what JSON cannot hold is written
        as text); data that is not a mapping is sent as ``{"_value": data}``."""
        try:
            if not self._accepting and (self._started or not self._start()):
                return
            if (
                type(event_type) is not str
                or (job_id is not None and type(job_id) is not str)
                or (worker_id is not None and type(worker_id) is not str)
                or (machine_id is not None and type(machine_id) is not str)
                or (user_id is not None and type(user_id) is not str)
                or (trace_id is not None and type(trace_id) is not str)
                or (span_id is not None and type(span_id) is not str)
                or (level is not None and type(level) is not str)
                or (timestamp is not None and type(timestamp) is not int)
            ):
                checked = _checked(
                    event_type, job_id, worker_id, machine_id, user_id, trace_id, span_id, level
                )
                valid_time, timestamp = _checked_timestamp(timestamp)
                if checked is None or not valid_time:
                    self._drop("invalid")
                    return
                event_type, job_id, worker_id, machine_id, user_id, trace_id, span_id, level = (
                    checked
                )
            if level is None:
                level = default_level(event_type)
            if self._min_rank and LEVEL_RANK.get(level, 1) < self._min_rank:
                return
            if self._sample and random.random() >= self._sample_rate(event_type):
                return
            if len(self._buffer) >= self.max_buffer:
                with self._lock:  # the hot path of an outage: no more than two additions
                    self._dropped_at_call += 1
                    self._full_unreported += 1
                return
            if not data:
                encoded = _EMPTY_DATA
            elif type(data) is dict:
                try:
                    encoded = _dumps(data, default=str, option=_NON_STR_KEYS).decode()
                except orjson.JSONEncodeError:
                    encoded = data_json(data)  # what JSON cannot hold, as text
            else:
                encoded = data_json(data if isinstance(data, Mapping) else {"_value": data})
            self._buffer.append(
                (
                    time.time_ns() // 1_000_000 if timestamp is None else timestamp,
                    event_type,
                    encoded,
                    job_id,
                    worker_id,
                    machine_id,
                    user_id,
                    trace_id,
                    span_id,
                    level,
                )
            )
            if len(self._buffer) >= self._wake_at:
                self._wake.set()
        except Exception:  # the contract: telemetry never breaks the service
            self._drop("error")
            log.debug("telemetry event %r not queued", event_type, exc_info=True)

    def _drop(self, reason: str, count: int = 1, *, queued: bool = False) -> None:
        """Count ``count`` dropped events (``queued``: taken from the buffer already); the
        flusher reports them once Redis takes events again."""
        with self._lock:
            if queued:
                self._dropped_later += count
            else:
                self._dropped_at_call += count
            self._unreported[reason] += count

    def job_event(
        self,
        job_id: IdLike,
        event_type: IdLike,
        data: Mapping[str, Any] | None = None,
        **ids: Any,
    ) -> None:
        self.event(event_type, data, job_id=job_id, **ids)

    def worker_event(
        self,
        worker_id: IdLike,
        event_type: IdLike,
        data: Mapping[str, Any] | None = None,
        **ids: Any,
    ) -> None:
        self.event(event_type, data, worker_id=worker_id, **ids)

    def machine_event(
        self,
        machine_id: IdLike,
        event_type: IdLike,
        data: Mapping[str, Any] | None = None,
        **ids: Any,
    ) -> None:
        self.event(event_type, data, machine_id=machine_id, **ids)

    def operation(self, name: str, data: Mapping[str, Any] | None = None, **ids: Any) -> Operation:
        """``with client.operation("connector.processing", job_id=j) as op:`` emits
        ``connector.processing_started``, then ``_completed`` with ``durationMs``, or
        ``_failed`` with the error (and the exception propagates). ``async with`` works too;
        ``op.data`` collects fields for the closing event."""
        return Operation(self, name, dict(data) if data else {}, ids)

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def stats(self) -> ClientStats:
        with self._lock:
            inflight = sum(c.counted_events() for c in self._inflight)
            return ClientStats(
                emitted=self._popped + len(self._buffer) + self._dropped_at_call,
                sent=self._sent,
                dropped=self._dropped_at_call + self._dropped_later,
                failed=self._failed,
                buffered=len(self._buffer) + self._packing + inflight,
                connected=self._connected,
                spilled=self._spilled,
                circuit=self._circuit,
            )

    @property
    def circuit(self) -> str:
        """``closed``, ``open`` or ``half-open``: see :class:`ClientStats`."""
        return self._circuit

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far has reached Redis, or the spill files (or was
        given up on). True when the buffer is empty; False when ``timeout`` ran out first."""
        if not self._started or self._thread is None:
            return not self._buffer
        deadline = time.monotonic() + max(0.0, timeout)
        with self._drained:
            while self._buffer or self._packing or self._inflight:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._thread.is_alive():
                    return False
                self._wake.set()
                self._drained.wait(min(remaining, 0.05))
        return True

    def close(self, timeout: float = 5.0) -> bool:
        """Flush (up to ``timeout``), stop the flusher and drop the connection. Events
        emitted after close are ignored. Returns what :meth:`flush` returned; returns within
        ``timeout`` even with Redis hung (the flusher then stops at its socket timeout). What
        the spill holds stays in its files, for this service's next emitter to replay."""
        return self._close_by(time.monotonic() + max(0.0, timeout))

    def _close_by(self, deadline: float) -> bool:
        if self._closed:
            return True
        flushed = self.flush(deadline - time.monotonic())
        self._closed = True
        self._accepting = False
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            # Idle after a flush: a moment to stop cleanly. Else no longer than promised.
            thread.join(timeout=max(deadline - time.monotonic(), 0.05 if flushed else 0.0))
        return flushed

    def _start(self) -> bool:
        """Start the flusher on first use. True when events are being accepted."""
        with self._lock:
            if not self._started:
                self._configure()
                if self._enabled and not self._closed:
                    self._thread = threading.Thread(
                        target=self._run, name=f"emp-telemetry-{self.service}", daemon=True
                    )
                    self._thread.start()
                    self._accepting = True
                self._started = True
            return self._accepting

    def _after_fork_in_child(self) -> None:
        # The flusher thread does not exist in the child and the parent sends what was
        # buffered before the fork: start clean, and start again on the first event. The
        # spill files are the parent's: let go of the descriptors without touching them.
        if self._spill is not None:
            self._spill.forget()
        self._init_runtime()

    # -- the flusher thread: connection, circuit -------------------------------------------

    def _connect(self) -> SyncClient:
        if self._redis is None:
            self._redis = client_for_url(
                self.redis_url,
                socket_timeout=self.socket_timeout,
                socket_connect_timeout=self.socket_timeout,
                health_check_interval=0,
                retry=_NO_RETRY,
            )
            self._scripting = self.script
            self._policy_at = 0.0
        return self._redis

    def _disconnect(self) -> None:
        client, self._redis = self._redis, None
        if client is not None:
            try:
                client.close()
            except (redis.RedisError, OSError):
                log.debug("closing the telemetry connection failed", exc_info=True)

    def _run(self) -> None:
        while True:
            stopping = self._stop.is_set()
            if not stopping:
                backoff_until = (
                    self._retry_at
                    if self._circuit == OPEN and self._spill is None
                    else self._paused_until
                )
                delay = backoff_until - time.monotonic()
                if delay > 0:
                    # Backing off: only a stop request cuts the wait short, not more events.
                    self._stop.wait(delay)
                    stopping = self._stop.is_set()
                else:
                    self._wake.wait(self.flush_interval)
                    self._wake.clear()
            try:
                self._step(stopping)
            except self._transient as exc:
                self._lost(exc)
            except Exception:
                # A bug here (or a spill file that cannot be read) must not kill the
                # flusher: log it loudly and keep going after a pause.
                log.exception("telemetry flusher error")
                self._paused_until = time.monotonic() + self.max_backoff
            finally:
                with self._drained:
                    self._drained.notify_all()
            if stopping:
                break
        self._disconnect()
        if self._spill is not None:
            try:
                self._spill.close()
            except OSError:
                log.warning("telemetry: closing the spill files failed", exc_info=True)

    def _step(self, stopping: bool) -> None:
        """One turn of the flusher: what it does depends on the circuit."""
        if self._spill is None and self.spill_dir is not None:
            self._spill = Spill(
                self.spill_dir,
                spill_group_name(self.service, os.getpid(), os.urandom(4).hex()),
                self.spill_max_bytes,
            )
        now = time.monotonic()
        if self._circuit == OPEN:
            if self._spill is None:
                # The resend of what was in flight is the probe.
                if not self._send_chunks(self._inflight, self._tally):
                    self._out_of_memory()
                self._set_circuit(CLOSED, "reconnected")
            else:
                self._spill_pending()
                if stopping or now < self._retry_at or not self._probe():
                    return
        if self._circuit == HALF_OPEN:
            if not self._replay(stopping):
                return
            self._set_circuit(CLOSED, "replayed")
        if self._spill is not None and not stopping:
            if self.memory_share and now >= self._memory_at:
                self._memory_at = now + self.memory_check_interval
                over = self._memory_over(self._connect())
                if over:
                    self._open_for_memory(over)
                    return
            if now >= self._orphans_at:
                self._orphans_at = now + ORPHAN_SCAN_EVERY
                adopted = _spill_io(self._spill.adopt_orphans)
                if adopted:
                    self._set_circuit(
                        HALF_OPEN, "orphans", f"{adopted} events spilled by emitters gone"
                    )
                    return
        self._drain()
        if now >= self._policy_at and self._redis is not None:
            self._record_policy(self._redis)

    def _lost(self, exc: BaseException) -> None:
        """Redis (or the cluster node a batch went to) could not be reached."""
        self._disconnect()
        self._connected = False
        self._backoff = min(self.max_backoff, max(0.05, self._backoff * 2))
        self._retry_at = time.monotonic() + self._backoff * (0.75 + random.random() / 2)
        if self._circuit != OPEN:
            self._set_circuit(OPEN, "unreachable", str(exc) or type(exc).__name__)
        if self._spill is not None:
            try:
                self._spill_pending()
            except OSError:
                log.warning("telemetry: cannot write the spill files", exc_info=True)

    def _probe(self) -> bool:
        """With the circuit open (and a spill): does Redis answer, with memory to spare? Then
        the circuit goes half-open. Raises the connection's errors."""
        client = self._connect()
        client.ping()
        self._connected = True
        if self.memory_share:
            over = self._memory_over(client)
            now = time.monotonic()
            self._memory_at = now + self.memory_check_interval
            if over:
                self._retry_at = now + self.memory_check_interval
                return False
        self._backoff = 0.0
        self._set_circuit(HALF_OPEN, "recovered")
        return True

    def _memory_over(self, client: SyncClient) -> tuple[int, int] | None:
        """(used, maxmemory) of the first Redis (a cluster's master) whose used memory is
        past ``memory_share`` of its ``maxmemory``, else None."""
        assert self.memory_share is not None
        try:
            if isinstance(client, redis.Redis):
                found: Any = client.info("memory")
            else:
                found = client.info("memory", target_nodes=client.PRIMARIES)
        except redis.ResponseError as exc:  # INFO refused (an ACL): no checks from here on
            log.warning("telemetry: cannot read Redis's memory (%s); not checking it", exc)
            self.memory_share = None
            return None
        infos = found.values() if all(isinstance(v, dict) for v in found.values()) else [found]
        for info in infos:
            used, limit = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
            if limit and used >= self.memory_share * limit:
                return used, limit
        return None

    def _open_for_memory(self, over: tuple[int, int] | None, detail: str = "") -> None:
        now = time.monotonic()
        self._retry_at = self._memory_at = now + self.memory_check_interval
        data: dict[str, Any] = {}
        if over is not None:
            used, limit = over
            detail = f"used {used} of maxmemory {limit} bytes ({used / limit:.0%})"
            data = {"usedMemory": used, "maxMemory": limit, "memoryShare": self.memory_share}
        self._set_circuit(OPEN, "memory", detail, **data)
        self._spill_pending()

    def _set_circuit(self, state: str, reason: str, detail: str = "", **data: Any) -> None:
        """Change the circuit, say so in the log, and note it as a ``telemetry.circuit_changed``
        event, in order with the events around it (sent, or spilled while the circuit is
        open)."""
        previous = self._circuit
        if state == previous:
            return
        with self._lock:
            self._circuit = state
            spilled = self._spilled
        where = redact_url(self.redis_url)
        if state == OPEN:
            outcome = (
                f"spilling to {self.spill_dir}"
                if self._spill is not None
                else f"buffering up to {self.max_buffer} events"
            )
            log.warning("telemetry: circuit open, Redis at %s %s (%s); %s",
                        where, reason, detail, outcome)  # fmt: skip
        elif state == HALF_OPEN:
            log.warning("telemetry: circuit half-open (%s%s); replaying %d spilled events",
                        reason, f": {detail}" if detail else "", self._spill_lines())  # fmt: skip
        else:
            log.warning("telemetry: circuit closed, Redis at %s takes events again", where)
        note = {
            "state": state,
            "previous": previous,
            "reason": reason,
            "spill": self._spill is not None,
            "spilled": spilled,
            **({"detail": detail} if detail else {}),
            **data,
        }
        item: _Item = (
            time.time_ns() // 1_000_000, CIRCUIT_EVENT_TYPE, data_json(note),
            None, None, None, None, None, None, "warn" if state == OPEN else "info",
        )  # fmt: skip
        chunks = self._pack([item], counted=False)
        with self._lock:
            self._inflight.extend(chunks)

    def _spill_lines(self) -> int:
        return self._spill.pending_lines if self._spill is not None else 0

    # -- the flusher thread: sending ---------------------------------------------------------

    def _take(self) -> bool:
        """Move the next batch from the buffer into ``_inflight``, packed. False when the
        buffer is empty."""
        batch: list[_Item] = []
        pop = self._buffer.popleft
        with self._lock:
            try:
                for _ in range(self.batch_size):
                    batch.append(pop())
            except IndexError:
                pass
            self._popped += len(batch)
            self._packing = len(batch)
        if not batch:
            return False
        chunks = self._pack(batch, counted=True)
        with self._lock:
            self._inflight.extend(chunks)
            self._packing = 0
        return True

    def _drain(self) -> None:
        """Send everything buffered. Raises on a connection failure, keeping the unsent
        chunks in ``_inflight`` to send again as they are. Redis out of memory with a spill:
        the circuit opens and what is unsent goes to the spill."""
        while self._inflight or self._take():
            if not self._send_chunks(self._inflight, self._tally):
                self._out_of_memory()
                return
        if self._unreported or self._full_unreported or self._report:
            self._report_drops()

    def _out_of_memory(self) -> None:
        if self._spill is not None:
            self._open_for_memory(None, "Redis answered OOM")
            return
        # Nowhere else to put them: Redis refused them.
        with self._lock:
            chunks, self._inflight = self._inflight, []
            self._failed += sum(c.counted_events() for c in chunks)
        log.warning("telemetry: Redis is out of memory; %d events refused", sum(map(len, chunks)))

    def _pack(self, batch: list[_Item], *, counted: bool) -> list[_Chunk]:
        """The batch as chunks, one per stream key (shard), in order. An event that cannot
        be packed (a lone surrogate in a string, say) is dropped and counted; the others go
        on."""
        if self.shards <= 1:
            groups: dict[str, list[_Item]] = {self.stream: batch}
        else:
            groups = {}
            stream, shards, service = self.stream, self.shards, self.service
            for item in batch:
                key = shard_key(stream, shards, item[3], service)
                group = groups.get(key)
                if group is None:
                    groups[key] = [item]
                else:
                    group.append(item)
        chunks: list[_Chunk] = []
        for key, items in groups.items():
            try:
                payload = _dumps(items)
            except orjson.JSONEncodeError:
                payload, items = self._without_unpackable(items, counted)
                if not items:
                    continue
            traces: dict[str, str] = {}
            randoms = 0
            cache = self._job_traces
            for item in items:
                if item[7] is None:
                    job = item[3]
                    if not job:
                        randoms += 1
                    elif job not in traces:
                        trace = cache.get(job)
                        if trace is None:
                            if len(cache) >= _TRACE_CACHE:
                                cache.clear()
                            trace = cache[job] = trace_id_for_job(job)
                        traces[job] = trace
            prefix, base = self._event_ids.take(len(items))
            chunks.append(
                _Chunk(key, payload, items, None, prefix, base, traces,
                       os.urandom(16 * randoms).hex() if randoms else "", counted)
            )  # fmt: skip
        return chunks

    def _without_unpackable(self, items: list[_Item], counted: bool) -> tuple[bytes, list[_Item]]:
        kept: list[_Item] = []
        failures: list[Exception] = []
        for item in items:
            try:
                _dumps(item)
            except orjson.JSONEncodeError as exc:
                failures.append(exc)
            else:
                kept.append(item)
        if counted:
            self._drop("unpackable", len(failures), queued=True)
        log.warning(
            "telemetry: %d event(s) could not be packed and were dropped: %s",
            len(failures),
            failures[0],
        )
        return _dumps(kept), kept

    def _send_chunks(
        self, chunks: list[_Chunk], done: Callable[[_Chunk, int, list[int]], None]
    ) -> bool:
        """Send ``chunks`` in order, each in one round trip, removing each once Redis took
        it; ``done(chunk, processed, refused)`` is told what became of its events. A failure
        that is not the connection's splits the chunk in two until the one event it comes
        from is found, which is given up on (``done`` with it unprocessed): one bad event
        never holds back the others. Returns False when Redis answered OOM (the events it did
        not take stay first in ``chunks``); raises on a connection failure, keeping what is
        unsent."""
        while chunks:
            chunk = chunks[0]
            try:
                processed, refused, oom = self._send_chunk(chunk)
            except self._transient:
                raise
            except Exception as exc:  # the chunk or one event in it: bisect
                if isinstance(exc, redis.ResponseError) and str(exc).startswith(_BUSY_REPLIES):
                    # Busy or failing over, not this chunk's fault: try it again later.
                    raise redis.ConnectionError(f"Redis answered {exc}") from exc
                if len(chunk) > 1:
                    halves = chunk.split(len(chunk) // 2)
                    with self._lock:
                        chunks[0:1] = halves
                    continue
                log.warning("telemetry: dropped an event that could not be sent: %s", exc)
                done(chunk, -1, [])
                with self._lock:
                    del chunks[0]
                continue
            self._connected = True
            self._backoff = 0.0
            if oom is not None and processed < len(chunk):
                done(chunk, processed, refused)
                rest = chunk.split(processed)[1]
                with self._lock:
                    chunks[0] = rest
                log.warning("telemetry: Redis refused a batch: %s", oom)
                return False
            done(chunk, len(chunk), refused)
            with self._lock:
                del chunks[0]
            if refused:
                log.warning("telemetry: Redis refused %d events: %s", len(refused), refused)
        return True

    def _tally(self, chunk: _Chunk, processed: int, refused: list[int]) -> None:
        """Count what became of a live chunk's events (``processed`` -1: given up on)."""
        if not chunk.counted:
            return
        if processed < 0:
            self._drop("unsendable", len(chunk), queued=True)
            return
        with self._lock:
            self._sent += processed - len(refused)
            self._failed += len(refused)

    def _send_chunk(self, chunk: _Chunk) -> tuple[int, list[int], str | None]:
        """One round trip: (events processed, indexes of those refused, OOM error or None)."""
        client = self._connect()
        if self._scripting:
            args = chunk.script_args(
                self.service, str(self.maxlen or 0), str(self.retention_ms or 0)
            )
            try:
                try:
                    reply: Any = client.execute_command(  # type: ignore[no-untyped-call]
                        "EVALSHA", _SCRIPT_SHA, 1, chunk.key, *args
                    )
                except NoScriptError:
                    reply = client.execute_command(  # type: ignore[no-untyped-call]
                        "EVAL", APPEND_SCRIPT, 1, chunk.key, *args
                    )
            except redis.ResponseError as exc:
                if not _refuses_scripts(exc):
                    raise
                log.warning("telemetry: Redis runs no scripts for us (%s); one XADD per event", exc)
                self._scripting = False
            else:
                processed, oom = int(reply[0]), _text(reply[1])
                refused = [int(i) for i in reply[2::2]]
                if refused:
                    log.debug("telemetry: refused: %s", [_text(e) for e in reply[3::2]])
                return processed, refused, oom or None
        return self._send_pipelined(client, chunk)

    def _send_pipelined(
        self, client: SyncClient, chunk: _Chunk
    ) -> tuple[int, list[int], str | None]:
        """The chunk as one XADD per event (trimmed by MINID, or MAXLEN), pipelined."""
        rows = chunk.rows_for(self.service)
        if self.retention_ms:
            minid = time.time_ns() // 1_000_000 - self.retention_ms
            trim: tuple[str, ...] = ("MINID", "~", str(max(0, minid)))
        elif self.maxlen:
            trim = ("MAXLEN", "~", str(self.maxlen))
        else:
            trim = ()
        pipe = client.pipeline(transaction=False)
        for row in rows:
            pipe.execute_command("XADD", chunk.key, *trim, "*", *row)
        if self.retention_ms and self.maxlen:
            pipe.execute_command("XTRIM", chunk.key, "MAXLEN", "~", str(self.maxlen))
        replies = pipe.execute(raise_on_error=False)
        refused: list[int] = []
        for index, reply in enumerate(replies[: len(rows)]):
            if isinstance(reply, self._transient):
                raise reply
            if isinstance(reply, Exception):
                message = str(reply)
                if isinstance(reply, redis.exceptions.OutOfMemoryError) or message.startswith(
                    "OOM"
                ):
                    return index, refused, message
                refused.append(index)
        return len(rows), refused, None

    def _report_drops(self) -> None:
        """Send one ``telemetry.events_dropped`` event for the drops counted so far. A report
        whose reply did not arrive is sent again as it was (same event ID), not recounted."""
        if not self._report:
            with self._lock:
                reasons, self._unreported = self._unreported, Counter()
                if self._full_unreported:
                    reasons["buffer_full"] += self._full_unreported
                    self._full_unreported = 0
            count = sum(reasons.values())
            data = orjson.dumps(
                {"count": count, "maxBuffer": self.max_buffer, "reasons": dict(reasons)}
            ).decode()
            item: _Item = (
                time.time_ns() // 1_000_000, DROPPED_EVENT_TYPE, data,
                None, None, None, None, None, None, "warn",
            )  # fmt: skip
            self._report = self._pack([item], counted=False)
        if not self._send_chunks(self._report, self._tally):
            self._report = []  # out of memory: the report is lost with the rest; say so
            log.warning("telemetry: a report of dropped events was refused (Redis OOM)")

    def _record_policy(self, client: SyncClient) -> None:
        """Write how this emitter trims the stream where ``emp-tui health`` reads it."""
        self._policy_at = time.monotonic() + POLICY_EVERY
        key = trim_policy_key(self.stream)
        values: dict[str, str] = {
            "service": self.service,
            "shards": str(self.shards),
            "updated_ms": str(time.time_ns() // 1_000_000),
        }
        absent = []
        for name, value in (("maxlen", self.maxlen), ("retention_ms", self.retention_ms)):
            if value:
                values[name] = str(value)
            else:
                absent.append(name)
        pipe = client.pipeline(transaction=False)
        pipe.hset(key, mapping=values)  # type: ignore[arg-type]
        if absent:
            pipe.hdel(key, *absent)
        pipe.expire(key, POLICY_TTL)
        for reply in pipe.execute(raise_on_error=False):
            if isinstance(reply, self._transient):
                raise reply
            if isinstance(reply, Exception):
                log.debug("telemetry: cannot record the trim policy: %s", reply)

    # -- the flusher thread: the spill ---------------------------------------------------------

    def _spill_pending(self) -> None:
        """Move what waits to be sent (packed chunks, then the buffer) behind the spill, in
        order. Stops when the spill is full: what is left waits in memory (and the buffer,
        once full, drops what comes, counted)."""
        spill = self._spill
        assert spill is not None
        while self._inflight or self._take():
            chunk = self._inflight[0]
            try:
                written = spill.append(
                    chunk.spill_lines(self.service), len(chunk), counted=bool(chunk.counted)
                )
            except OSError as exc:
                written = False
                if not self._spill_full_logged:
                    log.warning("telemetry: cannot write the spill in %s: %s", spill.directory, exc)
            else:
                if not written and not self._spill_full_logged:
                    log.warning(
                        "telemetry: the spill in %s is full (%d bytes); holding %d events in "
                        "memory, then dropping",
                        spill.directory,
                        spill.max_bytes,
                        self.max_buffer,
                    )
            self._spill_full_logged = not written
            if not written:
                return
            with self._lock:
                del self._inflight[0]
                self._spilled += chunk.counted_events()

    def _replay(self, stopping: bool) -> bool:
        """Half-open: send the spill into the stream, oldest first, moving the buffer behind
        it as it goes. True once it is all sent; False when stopping or when Redis's memory
        (or an OOM) opened the circuit again. Raises on a connection failure: the cursor
        stays where Redis's last answer left it."""
        spill = self._spill
        assert spill is not None
        while True:
            self._spill_pending()
            if stopping:
                return False
            read = _spill_io(spill.read, self.batch_size)
            if read is None:
                # All replayed. What the spill had no room for is still in memory: it is the
                # oldest now, and goes first once the circuit is closed.
                return True
            outcome: list[str | None] = [None] * len(read.lines)
            chunks = self._replay_chunks(read, outcome)

            try:
                sent_all = self._send_chunks(chunks, functools.partial(_mark, outcome))
            finally:
                self._consume(read, outcome)
            if not sent_all:
                self._open_for_memory(None, "Redis answered OOM")
                return False
            now = time.monotonic()
            if self.memory_share and now >= self._memory_at:
                self._memory_at = now + self.memory_check_interval
                over = self._memory_over(self._connect())
                if over:
                    self._open_for_memory(over)
                    return False

    def _replay_chunks(self, read: SpillRead, outcome: list[str | None]) -> list[_Chunk]:
        """The spilled lines as chunks per stream key. A line that is not a JSON object is
        skipped (and reported as ``spill_unreadable``)."""
        groups: dict[str, tuple[list[list[str]], list[bool], list[int]]] = {}
        for index, line in enumerate(read.lines):
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                obj = None
            if not isinstance(obj, dict):
                outcome[index] = "unreadable"
                continue
            event = TelemetryEvent.from_dict(obj)
            row = flat_fields(
                event.timestamp, event.service, event.event_type, event.trace_id,
                event.span_id, event.job_id, event.worker_id, event.machine_id,
                event.user_id, event.level, data_json(event.data), event.event_id,
            )  # fmt: skip
            key = shard_key(self.stream, self.shards, event.job_id, event.service)
            rows, counted, lines = groups.setdefault(key, ([], [], []))
            rows.append(row)
            counted.append(read.counted[index])
            lines.append(index)
        return [
            _Chunk(key, _dumps(rows), None, rows, counted=counted, lines=lines)
            for key, (rows, counted, lines) in groups.items()
        ]

    def _consume(self, read: SpillRead, outcome: list[str | None]) -> None:
        """Move the spill's cursor past the lines that are done, up to the first that is not
        (lines after it that went to other shards are sent again: their copies share an
        eventId), and count them. A line that is not a JSON object is skipped, reported as
        ``spill_unreadable``."""
        done = next((i for i, o in enumerate(outcome) if o is None), len(outcome))
        results = Counter((outcome[i], read.counted[i]) for i in range(done))
        assert self._spill is not None
        _spill_io(self._spill.consume, read, done)
        unreadable = results["unreadable", True] + results["unreadable", False]
        unsendable = results["dropped", True]
        with self._lock:
            self._sent += results["sent", True]
            self._failed += results["failed", True]
            self._dropped_later += unsendable + results["unreadable", True]
            self._spilled -= sum(n for (_, counted), n in results.items() if counted)
            if unsendable:
                self._unreported["unsendable"] += unsendable
            if unreadable:
                self._unreported["spill_unreadable"] += unreadable
        if unreadable:
            log.warning("telemetry: %d spilled lines could not be read; skipped", unreadable)


_BUSY_REPLIES: Final = ("BUSY", "LOADING", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN")
"""Replies that say Redis cannot take the batch right now, whatever is in it."""


class _SpillFailed(Exception):
    """A spill file could not be read or its cursor written: not Redis's failure."""


def _spill_io(call: Callable[..., _T], *args: Any) -> _T:
    """Run a spill operation; its OSError is the disk's, not the connection's."""
    try:
        return call(*args)
    except OSError as exc:
        raise _SpillFailed(f"spill files: {exc}") from exc


def _mark(outcome: list[str | None], chunk: _Chunk, processed: int, refused: list[int]) -> None:
    """Note what became of a replayed chunk's lines (``processed`` -1: given up on)."""
    failed = set(refused)
    for index, line in enumerate(chunk.lines):
        if processed < 0:
            outcome[line] = "dropped"
        elif index < processed:
            outcome[line] = "failed" if index in failed else "sent"


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _refuses_scripts(exc: redis.ResponseError) -> bool:
    """Redis will not run EVALSHA/EVAL for this client (an ACL, a renamed command)."""
    return isinstance(exc, NoPermissionError) or "unknown command" in str(exc).lower()


_Checked: TypeAlias = tuple[
    str, str | None, str | None, str | None, str | None, str | None, str | None, str | None
]


def _checked(*values: Any) -> _Checked | None:
    """event()'s names and IDs as text (None stays None), or None when one cannot be."""
    out: list[str | None] = []
    for position, value in enumerate(values):
        if value is None and position:
            out.append(None)
            continue
        text = _as_text(value)
        if text is None:
            return None
        out.append(text)
    return cast(_Checked, tuple(out))


def _checked_timestamp(timestamp: Any) -> tuple[bool, int | None]:
    """event()'s ``timestamp``: (True, None or epoch ms as an int, a float rounded down), or
    (False, None) when it is not a time."""
    if timestamp is None:
        return True, None
    if isinstance(timestamp, float) and math.isfinite(timestamp):
        timestamp = int(timestamp)
    if (
        isinstance(timestamp, int)
        and not isinstance(timestamp, bool)
        and 0 <= timestamp <= MAX_TIMESTAMP_MS
    ):
        return True, int(timestamp)
    return False, None


class Operation:
    """A timed operation: see :meth:`EventClient.operation`."""

    __slots__ = ("_client", "_ids", "_start", "data", "name", "span_id")

    def __init__(
        self, client: EventClient, name: str, data: dict[str, Any], ids: dict[str, Any]
    ) -> None:
        self._client = client
        self.name = name
        self.data = data
        self._ids = ids
        self.span_id = ids.pop("span_id", None) or new_span_id()
        if not ids.get("trace_id") and not ids.get("job_id"):
            # Both events of the operation must share one trace.
            ids["trace_id"] = new_trace_id()
        self._start = 0.0

    def __enter__(self) -> Operation:
        self._start = time.perf_counter()
        self._client.event(f"{self.name}_started", self.data, span_id=self.span_id, **self._ids)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        duration_ms = round((time.perf_counter() - self._start) * 1000.0, 3)
        data = {**self.data, "durationMs": duration_ms}
        if exc is None:
            self._client.event(f"{self.name}_completed", data, span_id=self.span_id, **self._ids)
            return
        data["error"] = str(exc) or type(exc).__name__
        data["errorType"] = type(exc).__name__
        self._client.event(
            f"{self.name}_failed", data, span_id=self.span_id, level="error", **self._ids
        )

    async def __aenter__(self) -> Operation:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


# -- process-wide hooks: fork safety and a last flush at exit -------------------------------

_CLIENTS: weakref.WeakSet[EventClient] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for client in list(_CLIENTS):
        client._after_fork_in_child()


def _flush_all_at_exit() -> None:
    deadline = time.monotonic() + EXIT_WAIT
    for client in list(_CLIENTS):
        if client._started and not client._closed:
            client._close_by(deadline)


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_flush_all_at_exit)


# -- ready-made clients, one per EMP service (configured from the environment on first use) --

api_telemetry = EventClient("api-server")
worker_telemetry = EventClient("worker")
machine_telemetry = EventClient("machine")
webhook_telemetry = EventClient("webhook-service")
monitor_telemetry = EventClient("monitor")
