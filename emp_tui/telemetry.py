"""EventClient: the emitter EMP's Python services call. Fire-and-forget.

A call to :meth:`EventClient.event` stamps the event, snapshots its data as JSON and appends
it to a bounded in-memory buffer; that is all the caller's thread ever does. A background
thread pipelines the buffered events into the stream with ``XADD ... MAXLEN ~``. When Redis
is unreachable the service goes on unaffected: the buffer holds what it can, further events
are dropped and counted, the flusher reconnects with backoff, and once Redis is back one
``telemetry.events_dropped`` event reports how many were lost.

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
import os
import random
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, cast

import orjson
import redis
from redis.connection import Connection

from emp_tui.config import env_flag, redacted_url, redis_url_from_env, stream_from_env
from emp_tui.events import (
    DEFAULT_MAXLEN,
    LEVEL_RANK,
    default_level,
    flat_fields,
    new_span_id,
    new_trace_id,
    normalize_level,
    trace_id_for_job,
)

_PackCommand = Callable[[tuple[str, ...]], bytes]
_hiredis_pack: _PackCommand | None
try:
    import hiredis

    _hiredis_pack = cast(_PackCommand, hiredis.pack_command)
except ImportError:  # hiredis is a declared dependency; stay correct without it
    _hiredis_pack = None

__all__ = [
    "ClientStats",
    "EventClient",
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
_EMPTY_DATA: Final = "{}"

# What the caller's thread puts in the buffer: everything the flusher needs, nothing more.
#   (timestamp_ms, event_type, data_json, job_id, worker_id, machine_id, user_id,
#    trace_id, span_id, level)
_Item = tuple[
    int, str, str, str | None, str | None, str | None, str | None, str | None, str | None, str
]


@dataclass(frozen=True, slots=True)
class ClientStats:
    """Counters of one client. ``emitted`` = sent + failed + buffered + dropped."""

    emitted: int
    sent: int
    dropped: int
    failed: int
    buffered: int
    connected: bool


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
        self._inflight: list[_Item] = []
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
        self._dropped = 0
        self._dropped_unreported = 0
        self._wake_at = max(1, self.batch_size)
        self._queue_failed = 0
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
        event_type: str,
        data: Mapping[str, Any] | None = None,
        *,
        job_id: str | None = None,
        worker_id: str | None = None,
        machine_id: str | None = None,
        user_id: str | None = None,
        trace_id: str | None = None,
        span_id: str | None = None,
        level: str | None = None,
        timestamp: int | None = None,
    ) -> None:
        """Queue one event. Returns at once; never raises. ``timestamp`` (epoch ms) stands in
        for the time of the call, for emitters that replay or simulate events."""
        try:
            if not self._accepting and (self._started or not self._start()):
                return
            if level is None:
                level = default_level(event_type)
            if self._min_rank and LEVEL_RANK.get(level, 1) < self._min_rank:
                return
            if self._sample and random.random() >= self._sample_rate(event_type):
                return
            if len(self._buffer) >= self.max_buffer:
                with self._lock:
                    self._dropped += 1
                    self._dropped_unreported += 1
                return
            data_json = (
                orjson.dumps(data, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
                if data
                else _EMPTY_DATA
            )
            self._buffer.append(
                (
                    time.time_ns() // 1_000_000 if timestamp is None else timestamp,
                    event_type,
                    data_json,
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
            with self._lock:
                self._failed += 1
                self._queue_failed += 1
            log.debug("telemetry event %r not queued", event_type, exc_info=True)

    def job_event(
        self, job_id: str, event_type: str, data: Mapping[str, Any] | None = None, **ids: Any
    ) -> None:
        self.event(event_type, data, job_id=job_id, **ids)

    def worker_event(
        self, worker_id: str, event_type: str, data: Mapping[str, Any] | None = None, **ids: Any
    ) -> None:
        self.event(event_type, data, worker_id=worker_id, **ids)

    def machine_event(
        self, machine_id: str, event_type: str, data: Mapping[str, Any] | None = None, **ids: Any
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
            buffered = len(self._buffer) + len(self._inflight)
            return ClientStats(
                emitted=self._popped + len(self._buffer) + self._dropped + self._queue_failed,
                sent=self._sent,
                dropped=self._dropped,
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
            while self._buffer or self._inflight:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._thread.is_alive():
                    return False
                self._wake.set()
                self._drained.wait(min(remaining, 0.05))
        return True

    def close(self, timeout: float = 5.0) -> bool:
        """Flush (up to ``timeout``), stop the flusher and drop the connection. Events
        emitted after close are ignored. Returns what :meth:`flush` returned."""
        if self._closed:
            return True
        flushed = self.flush(timeout)
        self._closed = True
        self._accepting = False
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=max(1.0, self.socket_timeout + 1.0))
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
        batch in ``_inflight`` to try again."""
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
                    self._inflight = batch
                    self._popped += len(batch)
            if not self._inflight:
                if self._dropped_unreported:
                    self._report_drops()
                return
            self._send(self._inflight)
            self._inflight = []

    def _send(self, batch: list[_Item]) -> None:
        """Pipeline one XADD per event on one connection and read every reply.

        The commands are packed by hiredis in C and written in one go: the flusher shares the
        GIL with the service's own threads, so its cost per event is the service's cost."""
        client = self._connect()
        pool = client.connection_pool
        conn = pool.get_connection()
        try:
            head = ("XADD", self.stream, "MAXLEN", "~", str(self.maxlen), "*")
            service = self.service
            packed: list[bytes] = []
            for ts, etype, data_json, job, worker, machine, user, trace, span, level in batch:
                if trace is None:
                    trace = trace_id_for_job(job) if job else new_trace_id()
                args = flat_fields(
                    ts, service, etype, trace, span, job, worker, machine, user, level, data_json
                )
                packed.append(_pack_command((*head, *args), conn))
            conn.send_packed_command([b"".join(packed)])  # type: ignore[no-untyped-call]
            errors: list[redis.ResponseError] = []
            for _ in batch:
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
        with self._lock:
            self._sent += len(batch) - len(errors)
            self._failed += len(errors)
        if errors:
            log.warning("telemetry: Redis refused %d events: %s", len(errors), errors[0])

    def _report_drops(self) -> None:
        with self._lock:
            count, self._dropped_unreported = self._dropped_unreported, 0
        data = orjson.dumps({"count": count, "maxBuffer": self.max_buffer}).decode()
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
        try:
            self._send([item])
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            with self._lock:
                self._dropped_unreported += count
            raise


def _pack_command(args: tuple[str, ...], conn: Connection) -> bytes:
    if _hiredis_pack is not None:
        return _hiredis_pack(args)
    return b"".join(conn.pack_command(*args))  # type: ignore[no-untyped-call]


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
    for client in list(_CLIENTS):
        if client._started and not client._closed:
            client.close(timeout=2.0)


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_flush_all_at_exit)


# -- ready-made clients, one per EMP service (configured from the environment on first use) --

api_telemetry = EventClient("api-server")
worker_telemetry = EventClient("worker")
machine_telemetry = EventClient("machine")
webhook_telemetry = EventClient("webhook-service")
monitor_telemetry = EventClient("monitor")
