"""EventClient: the emitter EMP's Python services call. Fire-and-forget.

A call to :meth:`EventClient.event` checks its arguments (IDs given as UUIDs, ints or bytes
become text; anything else drops that one event, counted), stamps the event, snapshots its
data as JSON and appends it to a bounded in-memory buffer; that is all the caller's thread
ever does. A background thread gives each event its ``eventId``, packs it, and pipelines the
buffered events into the stream with ``XADD ... MAXLEN ~``. When Redis is unreachable the
service goes on unaffected: the buffer holds what it can, further events are dropped and
counted, the flusher reconnects with backoff, and once Redis is back one
``telemetry.events_dropped`` event reports how many were lost (and why).

Delivery is at least once: a batch whose replies did not arrive (Redis paused past the socket
timeout) is sent again, byte for byte, so a copy that Redis had taken after all carries the
same ``eventId`` and readers collapse the two (:class:`emp_tui.events.SeenEvents`).

Settings not given to the constructor come from the environment, read when the client
first emits (so the ready-made clients below can be imported before the environment is set):
``REDIS_URL`` or ``REDIS_HOST``/``REDIS_PORT``/``REDIS_PASSWORD``, ``EMP_EVENTS_STREAM``,
``EMP_TELEMETRY_ENABLED``, ``EMP_TELEMETRY_LEVEL`` and ``EMP_TELEMETRY_SAMPLE``
(``job.progress_updated=0.1,worker.*=0.5``).
"""

from __future__ import annotations

import atexit
import fnmatch
import logging
import math
import os
import random
import threading
import time
import weakref
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, TypeAlias, cast
from uuid import UUID

import orjson
import redis

from emp_tui.config import env_flag, redacted_url, redis_url_from_env, stream_from_env
from emp_tui.events import (
    DEFAULT_MAXLEN,
    LEVEL_RANK,
    MAX_TIMESTAMP_MS,
    data_json,
    default_level,
    flat_fields,
    new_span_id,
    new_trace_id,
    normalize_level,
    trace_id_for_job,
)

_PackCommand = Callable[[tuple[str, ...]], bytes]
IdLike: TypeAlias = str | int | UUID | bytes
"""What a name or ID may be given as: a str, or an int, UUID or UTF-8 bytes (sent as text)."""
_hiredis_pack: _PackCommand | None
try:
    import hiredis

    _hiredis_pack = cast(_PackCommand, hiredis.pack_command)
except ImportError:  # hiredis is a declared dependency; stay correct without it
    _hiredis_pack = None

__all__ = [
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

DROPPED_EVENT_TYPE: Final = "telemetry.events_dropped"
EXIT_WAIT: Final = 1.5
"""Seconds the interpreter's exit waits, for all clients together, for buffered events to
reach Redis: a process exits within 2 s even with Redis hung."""
_EMPTY_DATA: Final = "{}"
_dumps: Final = orjson.dumps
_NON_STR_KEYS: Final = orjson.OPT_NON_STR_KEYS
_CONNECTION_ERRORS: Final = (redis.ConnectionError, redis.TimeoutError, OSError)

# What the caller's thread puts in the buffer: everything the flusher needs, nothing more.
#   (timestamp_ms, event_type, data_json, job_id, worker_id, machine_id, user_id,
#    trace_id, span_id, level)
_Item = tuple[
    int, str, str, str | None, str | None, str | None, str | None, str | None, str | None, str
]


@dataclass(frozen=True, slots=True)
class ClientStats:
    """Counters of one client. ``emitted`` = sent + failed + buffered + dropped: ``failed``
    are events Redis refused, ``dropped`` those never sent (buffer full, arguments that are
    not text, an event that could not be packed or sent)."""

    emitted: int
    sent: int
    dropped: int
    failed: int
    buffered: int
    connected: bool


class _EventIds:
    """Event IDs: 16 lowercase hex digits, a random 40-bit prefix then a 24-bit counter. The
    prefix is drawn anew for each client, in a forked child, and every 2**24 events, so two
    emitters share an ID only by a 1-in-2**40 chance, and then only for one of their events."""

    __slots__ = ("_count", "_prefix")

    def __init__(self) -> None:
        self._prefix = os.urandom(5).hex()
        self._count = 0

    def next(self) -> str:
        count = self._count
        if count > 0xFFFFFF:
            self._prefix = os.urandom(5).hex()
            count = 0
        self._count = count + 1
        return f"{self._prefix}{count:06x}"


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


def _resp(args: tuple[str, ...]) -> bytes:
    """One command in the Redis protocol (RESP), what hiredis.pack_command does in C."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        raw = arg.encode()
        out.append(b"$%d\r\n%b\r\n" % (len(raw), raw))
    return b"".join(out)


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
    thread or coroutine, never blocks on Redis and never raises."""

    def __init__(
        self,
        service: str,
        *,
        redis_url: str | None = None,
        stream: str | None = None,
        maxlen: int = DEFAULT_MAXLEN,
        max_buffer: int = 10_000,
        enabled: bool | None = None,
        level: str | None = None,
        sample: Mapping[str, float] | None = None,
        batch_size: int = 500,
        flush_interval: float = 0.05,
        max_backoff: float = 5.0,
        socket_timeout: float = 2.0,
    ) -> None:
        self.service = service
        self._redis_url = redis_url
        self._stream = stream
        self.maxlen = maxlen
        self.max_buffer = max_buffer
        self._enabled_arg = enabled
        self._level_arg = level
        self._sample_arg = dict(sample) if sample is not None else None
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_backoff = max_backoff
        self.socket_timeout = socket_timeout

        self._configured = False
        self._enabled = True
        self._min_rank = 0
        self._sample: dict[str, float] = {}
        self._sample_cache: dict[str, float] = {}
        self._init_runtime()
        _CLIENTS.add(self)

    def _init_runtime(self) -> None:
        """State that belongs to one process: rebuilt in a forked child."""
        self._buffer: deque[_Item] = deque()
        # Events taken from the buffer: being packed (a count), then packed and being sent.
        self._packing = 0
        self._inflight: list[bytes] = []
        self._chunk = max(1, self.batch_size)
        self._event_ids = _EventIds()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._drained = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._redis: redis.Redis | None = None
        self._connected = False
        self._popped = 0
        self._sent = 0
        self._failed = 0
        self._dropped_at_call = 0
        self._dropped_later = 0
        self._unreported: Counter[str] = Counter()  # drops not reported yet, by reason
        self._full_unreported = 0  # ... but those of a full buffer (counted on the hot path)
        self._report: list[bytes] = []  # the packed report in flight, sent again as it is
        self._wake_at = max(1, self.batch_size)
        self._started = False
        self._accepting = False
        self._closed = False

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
        self._configured = True

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
            buffered = len(self._buffer) + self._packing + len(self._inflight)
            return ClientStats(
                emitted=self._popped + len(self._buffer) + self._dropped_at_call,
                sent=self._sent,
                dropped=self._dropped_at_call + self._dropped_later,
                failed=self._failed,
                buffered=buffered,
                connected=self._connected,
            )

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far has reached Redis (or was given up on).
        True when the buffer is empty; False when ``timeout`` ran out first."""
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
        ``timeout`` even with Redis hung (the flusher then stops at its socket timeout)."""
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
        # buffered before the fork: start clean, and start again on the first event.
        self._init_runtime()

    # -- the flusher thread ----------------------------------------------------------------

    def _connect(self) -> redis.Redis:
        if self._redis is None:
            self._redis = redis.Redis.from_url(
                self.redis_url,
                socket_timeout=self.socket_timeout,
                socket_connect_timeout=self.socket_timeout,
                health_check_interval=0,
            )
        return self._redis

    def _disconnect(self) -> None:
        client, self._redis = self._redis, None
        if client is not None:
            try:
                client.close()
            except (redis.RedisError, OSError):
                log.debug("closing the telemetry connection failed", exc_info=True)

    def _run(self) -> None:
        backoff = 0.0
        while True:
            stopping = self._stop.is_set()
            if backoff and not stopping:
                # Backing off: only a stop request cuts the wait short, not more events.
                self._stop.wait(backoff)
                stopping = self._stop.is_set()
            elif not stopping:
                self._wake.wait(self.flush_interval)
                self._wake.clear()
            try:
                self._drain()
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                self._disconnect()
                if self._connected or backoff == 0.0:
                    log.warning(
                        "telemetry: Redis at %s unreachable (%s); buffering up to %d events",
                        redacted_url(self.redis_url),
                        exc,
                        self.max_buffer,
                    )
                self._connected = False
                backoff = min(self.max_backoff, max(0.05, backoff * 2)) * (
                    0.75 + random.random() / 2
                )
                if stopping:
                    break
                continue
            except Exception:
                # A bug here must not kill the flusher: log it loudly and keep going.
                log.exception("telemetry flusher error")
                backoff = self.max_backoff
                if stopping:
                    break
                continue
            finally:
                with self._drained:
                    self._drained.notify_all()
            if backoff:
                log.warning("telemetry: Redis at %s reachable again", redacted_url(self.redis_url))
            backoff = 0.0
            if stopping:
                break
        self._disconnect()

    def _drain(self) -> None:
        """Send everything buffered. Raises on a connection failure, keeping the unsent
        events packed in ``_inflight`` to send again as they are."""
        while True:
            if not self._inflight:
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
                    if self._unreported or self._full_unreported or self._report:
                        self._report_drops()
                    return
                packed, failures = self._pack(batch)
                if failures:
                    self._drop("unpackable", len(failures), queued=True)
                    log.warning(
                        "telemetry: %d event(s) could not be packed and were dropped: %s",
                        len(failures),
                        failures[0],
                    )
                with self._lock:
                    self._inflight = packed
                    self._packing = 0
                self._chunk = max(1, self.batch_size)
            self._send_inflight()

    def _pack(self, batch: list[_Item]) -> tuple[list[bytes], list[Exception]]:
        """Each event as its XADD command, with its event ID, and why those that cannot be
        packed (a lone surrogate in a string, say) could not: the others go on."""
        head = ("XADD", self.stream, "MAXLEN", "~", str(self.maxlen), "*")
        service = self.service
        next_id = self._event_ids.next
        pack = _hiredis_pack or _resp
        packed: list[bytes] = []
        failures: list[Exception] = []
        for ts, etype, data, job, worker, machine, user, trace, span, level in batch:
            try:
                if trace is None:
                    trace = trace_id_for_job(job) if job else new_trace_id()
                args = flat_fields(
                    ts, service, etype, trace, span, job, worker, machine, user, level, data,
                    next_id(),
                )  # fmt: skip
                packed.append(pack((*head, *args)))
            except (ValueError, TypeError) as exc:  # UnicodeEncodeError is a ValueError
                failures.append(exc)
        return packed, failures

    def _send_inflight(self) -> None:
        """Send the packed events in flight, ``_chunk`` at a time. A failure that is not the
        connection's halves the chunk until the one event it comes from is found, which is
        dropped and counted: one bad event never holds back the others. Raises on a
        connection failure, keeping what is unsent in flight."""
        while self._inflight:
            chunk = self._inflight[: self._chunk]
            try:
                self._send_packed(chunk)
            except _CONNECTION_ERRORS:
                raise
            except Exception as exc:  # noqa: BLE001 - logged, and its event counted as dropped
                if len(chunk) > 1:
                    self._chunk = len(chunk) // 2
                    continue
                log.warning("telemetry: dropped an event that could not be sent: %s", exc)
                self._drop("unsendable", queued=True)
                self._chunk = max(1, self.batch_size)
            with self._lock:
                del self._inflight[: len(chunk)]

    def _send_packed(self, packed: list[bytes], *, count: bool = True) -> None:
        """Pipeline the packed XADDs on one connection and read every reply (``count``: into
        the stats, which describe the caller's events only).

        The commands were packed by hiredis in C and are written in one go: the flusher shares
        the GIL with the service's own threads, so its cost per event is the service's cost."""
        client = self._connect()
        pool = client.connection_pool
        conn = pool.get_connection()
        try:
            conn.send_packed_command([b"".join(packed)])  # type: ignore[no-untyped-call]
            errors: list[redis.ResponseError] = []
            for _ in packed:
                try:
                    conn.read_response()
                except redis.ResponseError as exc:
                    errors.append(exc)
        except BaseException:
            conn.disconnect()  # type: ignore[no-untyped-call]  # half-read replies: unusable
            raise
        finally:
            pool.release(conn)
        self._connected = True
        if count:
            with self._lock:
                self._sent += len(packed) - len(errors)
                self._failed += len(errors)
        if errors:
            log.warning("telemetry: Redis refused %d events: %s", len(errors), errors[0])

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
                time.time_ns() // 1_000_000,
                DROPPED_EVENT_TYPE,
                data,
                None,
                None,
                None,
                None,
                None,
                None,
                "warn",
            )
            self._report, failures = self._pack([item])
            if failures:  # the stream's name itself cannot be sent: say so, once
                log.warning("telemetry: %d events dropped; cannot report it: %s", count, failures)
                return
        self._send_packed(self._report, count=False)
        self._report = []


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
