"""OTLP/HTTP JSON export to Dash0 or any OTLP backend, losing nothing.

Events are batched (``batch_size`` events or ``batch_interval`` seconds), encoded as an
ExportLogsServiceRequest, gzipped and POSTed to ``.../v1/logs`` by one sender task, in order.

* 2xx: exported (a ``partialSuccess`` is logged, not retried).
* 429, 502, 503, 504 and connection failures: retried with exponential backoff and jitter,
  honouring ``Retry-After`` (seconds or an HTTP date), for up to ``retry_window`` seconds;
  then the batch goes to the bounded on-disk spool, and so do the batches after it, so the
  stream keeps being acked while the backend is down. The spool is replayed oldest first
  once the backend answers again. When the spool is full, reading pauses.
* Any other answer: the batch is written to the dead-letter JSON-lines file.

A batch counts as taken (and its stream entries may be acked) once it is exported, spooled
or dead-lettered.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.utils
import logging
import random
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path

import orjson

from collector.config import Settings
from collector.health import Health
from collector.http import HttpClient, Response
from collector.otel import decode_body, encode_request, export_request
from collector.sinks import Batch
from collector.spool import Spool
from emp_tui.events import TelemetryEvent

log = logging.getLogger("collector.otlp")

RETRYABLE = frozenset({429, 502, 503, 504})
BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 30.0
RETRY_AFTER_MAX_S = 3600.0
_QUEUE_MAX = 8


@dataclass(slots=True)
class Export:
    body: bytes
    events: int
    batches: list[Batch]

    def release(self) -> None:
        for batch in self.batches:
            batch.release()
        self.batches = []


class Outcome(Enum):
    OK = "ok"
    REJECTED = "rejected"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    detail: str = ""
    wait: float = 0.0  # for UNAVAILABLE: seconds before the backend may be tried again
    response: Response | None = None


def backoff(attempt: int) -> float:
    """Exponential backoff with jitter: 0.5 s, 1 s, 2 s ... up to 30 s, each times 0.5-1."""
    ceiling = min(BACKOFF_MAX_S, BACKOFF_BASE_S * (2 ** min(attempt, 16)))
    return random.uniform(ceiling / 2, ceiling)


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or an HTTP date)."""
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - (time.time() if now is None else now)
    return min(max(seconds, 0.0), RETRY_AFTER_MAX_S)


class OtlpSink:
    name = "otlp"

    def __init__(self, settings: Settings, health: Health) -> None:
        self.url = settings.otlp_url
        self.client = HttpClient(settings.otlp_url, timeout=settings.otlp_timeout)
        self.headers = {
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            **settings.headers,
        }
        self.resource = settings.resource
        self.batch_size = settings.batch_size
        self.interval = settings.batch_interval
        self.retry_window = settings.retry_window
        self.spool = Spool(settings.spool_dir, settings.spool_max_bytes)
        self.dead_letter_path: Path = settings.dead_letter_path
        self.health = health

        self._pending: list[TelemetryEvent] = []
        self._pending_batches: list[Batch] = []
        self._pending_since: float | None = None
        self._has_pending = asyncio.Event()
        self._exports: deque[Export] = deque()
        self._room = asyncio.Event()
        self._room.set()
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        self._input_done = False  # set once close() has queued the last events
        self._next_try = 0.0
        self._replay_attempt = 0
        self._failing_since: float | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.error: str | None = None  # set when a task of the sink died

    # -- taking batches ------------------------------------------------------------------

    async def start(self) -> None:
        self.spool.open()
        if len(self.spool):
            log.info(
                "%d batches (%d events) in the spool %s from an earlier run; replaying them first",
                len(self.spool),
                self.spool.events,
                self.spool.directory,
            )
        self._tasks = [
            asyncio.create_task(self._send_loop(), name="otlp-sender"),
            asyncio.create_task(self._timer(), name="otlp-timer"),
        ]
        for task in self._tasks:
            task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        self.error = f"{task.get_name()} stopped: {type(exc).__name__}: {exc}"
        log.error("%s", self.error)
        log.debug("the traceback", exc_info=exc)

    async def take(self, batch: Batch) -> None:
        for event in batch.events:
            if not self._pending_batches or self._pending_batches[-1] is not batch:
                batch.hold()
                self._pending_batches.append(batch)
            if not self._pending:
                self._pending_since = asyncio.get_running_loop().time()
                self._has_pending.set()
            self._pending.append(event)
            if len(self._pending) >= self.batch_size:
                await self._cut()

    async def _cut(self) -> None:
        if not self._pending:
            return
        events, batches = self._pending, self._pending_batches
        self._pending, self._pending_batches, self._pending_since = [], [], None
        body = encode_request(export_request(events, self.resource))
        while len(self._exports) >= _QUEUE_MAX:
            self._room.clear()
            await self._room.wait()
        self._exports.append(Export(body, len(events), batches))
        self._wake.set()

    async def _timer(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self._pending_since is None:
                self._has_pending.clear()
                await self._has_pending.wait()
                continue
            delay = self._pending_since + self.interval - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            await self._cut()

    # -- sending -------------------------------------------------------------------------

    def _pop(self) -> Export | None:
        if not self._exports:
            return None
        export = self._exports.popleft()
        self._room.set()
        return export

    async def _wait(self, timeout: float | None) -> None:
        """Until an export is queued, the sink is closing, or ``timeout`` passes."""
        self._wake.clear()
        if self._exports or self._input_done:
            return
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except TimeoutError:
            return

    async def _send_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if len(self.spool):
                if not await self._backlog_step(loop.time()):
                    return
                continue
            export = self._pop()
            if export is None:
                if self._input_done:
                    return
                await self._wait(None)
                continue
            closing = self._closing.is_set()
            result = await self._send(
                export.body, deadline=loop.time() + (0 if closing else self.retry_window)
            )
            if result.outcome is Outcome.OK:
                self._exported(export.events)
                export.release()
            elif result.outcome is Outcome.REJECTED:
                if await self._dead_letter(export.body, export.events, result):
                    export.release()
                else:
                    return  # closing and the dead-letter file cannot be written: stays pending
            else:
                self._next_try = loop.time() + result.wait
                self._to_spool(export)

    async def _backlog_step(self, now: float) -> bool:
        """One step while the spool is not empty: spool what is queued (keeping the order),
        try the oldest spooled batch when its time has come. False when done for good."""
        while self._exports and self.spool.has_room(len(self._exports[0].body)):
            export = self._pop()
            assert export is not None
            self._to_spool(export)
        if self._closing.is_set():
            if self._exports or self._input_done:
                return False  # all spooled, or no room left: the rest stays unacked
            await self._wait(None)  # for the last events close() queues
            return True
        if now < self._next_try:
            await self._wait(self._next_try - now)
            return True
        item = self.spool.oldest()
        assert item is not None
        try:
            body = self.spool.read(item)
        except OSError as exc:
            log.error("cannot read spooled batch %s: %s; skipping it", item.path, exc.strerror)
            self.spool.remove(item)
            return True
        result = await self._send(body, deadline=now)
        if result.outcome is Outcome.OK:
            self._exported(item.events)
            self.spool.remove(item)
            self._replay_attempt = 0
            if not len(self.spool):
                log.info("spool replayed; exporting directly again")
        elif result.outcome is Outcome.REJECTED:
            if await self._dead_letter(body, item.events, result):
                self.spool.remove(item)
        else:
            self._replay_attempt += 1
            self._next_try = asyncio.get_running_loop().time() + max(
                result.wait, backoff(self._replay_attempt)
            )
        return True

    def _to_spool(self, export: Export) -> None:
        try:
            self.spool.append(export.body, export.events)
        except OSError as exc:
            # Not taken: the entries stay pending in Redis and are read again later.
            log.error(
                "cannot write to the spool %s: %s; %d events stay unacknowledged",
                self.spool.directory,
                exc.strerror or exc,
                export.events,
            )
            return
        self.health.spooled += export.events
        export.release()

    def _exported(self, events: int) -> None:
        self.health.exported += events
        if self._failing_since is not None:
            log.info(
                "OTLP backend %s answers again after %.1f s",
                self.url,
                time.monotonic() - self._failing_since,
            )
            self._failing_since = None

    async def _send(self, body: bytes, *, deadline: float) -> Result:
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            closing = self._closing.is_set()
            try:
                response = await self.client.post(
                    body, self.headers, timeout=2.0 if closing else None
                )
            except (OSError, TimeoutError) as exc:
                reason = str(exc) or type(exc).__name__
                wait = backoff(attempt)
            else:
                if 200 <= response.status < 300:
                    self._check_partial(response)
                    return Result(Outcome.OK)
                if response.status not in RETRYABLE:
                    return Result(Outcome.REJECTED, f"HTTP {response.status}", response=response)
                reason = f"HTTP {response.status}"
                hinted = retry_after(response.headers.get("retry-after"))
                wait = backoff(attempt) if hinted is None else hinted
            self.health.retried += 1
            if self._failing_since is None:
                self._failing_since = time.monotonic()
                log.warning("OTLP export to %s failed (%s); retrying", self.url, reason)
            else:
                log.debug("OTLP export failed again (%s); next try in %.1f s", reason, wait)
            if self._closing.is_set() or loop.time() + wait > deadline:
                return Result(Outcome.UNAVAILABLE, reason, wait)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):  # the wait is over: try again
                await asyncio.wait_for(self._closing.wait(), wait)
            attempt += 1

    def _check_partial(self, response: Response) -> None:
        if not response.body or not response.body.lstrip().startswith(b"{"):
            return
        try:
            answer = orjson.loads(response.body)
        except orjson.JSONDecodeError:
            log.warning("OTLP backend answered %d with a body that is not JSON", response.status)
            return
        partial = answer.get("partialSuccess") if isinstance(answer, dict) else None
        if isinstance(partial, dict) and (
            partial.get("rejectedLogRecords") not in (None, 0, "0") or partial.get("errorMessage")
        ):
            log.warning(
                "OTLP backend took the batch but rejected %s log records: %s",
                partial.get("rejectedLogRecords", 0),
                partial.get("errorMessage", ""),
            )

    async def _dead_letter(self, body: bytes, events: int, result: Result) -> bool:
        response = result.response
        text = b"" if response is None else response.body[:4096]
        try:
            request = decode_body(body)
        except (OSError, EOFError, orjson.JSONDecodeError):
            request = {"_raw_gzip_base64": base64.b64encode(body).decode()}
        line = orjson.dumps(
            {
                "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "url": self.url,
                "status": None if response is None else response.status,
                "reason": result.detail,
                "response": text.decode("utf-8", "replace"),
                "events": events,
                "request": request,
            },
            option=orjson.OPT_APPEND_NEWLINE,
        )
        while True:
            try:
                self.dead_letter_path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.dead_letter_path, "ab") as f:
                    f.write(line)
            except OSError as exc:
                log.error("cannot write the dead-letter file %s: %s", self.dead_letter_path, exc)
                if self._closing.is_set():
                    return False
                await asyncio.sleep(1.0)
                continue
            break
        self.health.dead_lettered += events
        log.error(
            "OTLP backend rejected a batch of %d events (%s: %s); written to %s",
            events,
            result.detail,
            text[:200].decode("utf-8", "replace").strip(),
            self.dead_letter_path,
        )
        return True

    # -- shutdown ------------------------------------------------------------------------

    async def close(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        self._closing.set()  # no more long retries: what cannot be sent now is spooled
        self._wake.set()
        try:
            await asyncio.wait_for(self._cut(), max(0.0, deadline - loop.time()))
            self._input_done = True
            self._wake.set()
            sender = self._tasks[0] if self._tasks else None
            if sender is not None:
                await asyncio.wait_for(asyncio.shield(sender), max(0.0, deadline - loop.time()))
        except TimeoutError:
            held = sum(e.events for e in self._exports) + len(self._pending)
            log.error(
                "shutdown: %d OTLP events were neither sent nor spooled in time; they stay "
                "pending in Redis and are read again at the next start",
                held,
            )
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.client.close()
