"""OTLP/HTTP JSON export to Dash0 or any OTLP backend, losing nothing and never making
reading wait for a slow backend.

The stages, as in the OpenTelemetry Collector's exporterhelper:

* the **batcher** groups events into requests (``batch_size`` events or ``batch_interval``
  seconds; while every consumer is busy, up to ``batch_max_size`` events), each an
  ExportLogsServiceRequest, gzipped;
* the **sending queue** holds up to ``otlp_queue_size`` requests, sent by
  ``otlp_consumers`` consumers at a time, each on its own kept-alive connection. A request
  that does not fit the queue goes to the **spool** at once (reading goes on); only when the
  spool is full too does reading wait;
* each consumer **retries** 429/502/503/504 and connection failures with backoff, honouring
  ``Retry-After``, for up to ``retry_window`` seconds, then spools the request;
* the **spool** is replayed oldest first, a few requests at a time, once the backend answers
  again (one probe at a time while it does not);
* any other answer puts the request in the **dead-letter** file, and so do the records a
  ``partialSuccess`` says were rejected (the whole request, as the answer does not say which).

A request counts as finished (and the entries of its batches may be acked) once it is
exported, spooled or dead-lettered. At shutdown, what cannot be sent in time is spooled.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from collector.batch import Batch, Decoder
from collector.batcher import Batcher, Group
from collector.config import Settings
from collector.exporters import Outcome, Result
from collector.exporters.deadletter import DeadLetters
from collector.exporters.queue import SendingQueue
from collector.exporters.retry import RetryPolicy, backoff, pause, retry_after
from collector.health import Health
from collector.http import HttpClient, Response
from collector.otel import decode_body, encode_request, export_request, log_record
from collector.spool import Spool, SpoolItem
from emp_tui.events import TelemetryEvent
from emp_tui.redact import redact_text, redact_url

log = logging.getLogger("collector.otlp")

RETRYABLE: Final = frozenset({429, 502, 503, 504})
CLOSING_TIMEOUT_S: Final = 2.0  # one request's limit once the collector is stopping
SPOOL_RESERVE_S: Final = 1.0  # of the shutdown budget, kept for spooling what is left
_REPLAY_POLL_S: Final = 0.5


@dataclass(slots=True, eq=False)
class Request:
    """One OTLP request: its gzipped body, how many events it carries, and the batches it
    holds (none for a request replayed from the spool, which is already acked)."""

    body: bytes
    events: int
    batches: list[Batch] = field(default_factory=list)
    spooled: SpoolItem | None = None

    def release(self) -> None:
        batches, self.batches = self.batches, []
        for batch in batches:
            batch.release()


class OtlpExporter:
    name = "otlp"

    def __init__(
        self, settings: Settings, health: Health, decoder: Decoder, stopping: asyncio.Event
    ) -> None:
        self.url = settings.otlp_url
        self.shown_url = redact_url(settings.otlp_url)
        self.headers = {
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            **settings.headers,
        }
        self.resource = settings.resource
        self.health = health
        self.decoder = decoder
        self.stopping = stopping  # the collector stops reading: offers stop waiting for room
        self.closing = asyncio.Event()  # close() began: no long retries, short timeouts
        self.retry = RetryPolicy(window=settings.retry_window)
        self.queue: SendingQueue[Request] = SendingQueue(
            "otlp", size=settings.otlp_queue_size, consumers=settings.otlp_consumers,
            handle=self._send,
        )  # fmt: skip
        self.batcher = Batcher(
            settings.batch_size,
            settings.batch_interval,
            max_size=settings.batch_max_size,
            ready=self._consumer_free,
        )
        self.spool = Spool(settings.spool_dir, settings.spool_max_bytes, settings.file_mode)
        self.dead_letters = DeadLetters(settings.dead_letter_path, settings.file_mode)
        self._clients = [
            HttpClient(settings.otlp_url, timeout=settings.otlp_timeout)
            for _ in range(settings.otlp_consumers)
        ]
        self._spool_changed = asyncio.Event()
        self._replay_at = 0.0
        self._replay_attempt = 0
        self._give_up = False  # closing and the backend fails: spool the rest untried
        self._failing_since: float | None = None
        self._unsent: list[Request] = []  # not taken when the collector stopped
        self._tasks: list[asyncio.Task[None]] = []
        self.error: str | None = None  # set when a task of the exporter died

    # -- taking batches ------------------------------------------------------------------

    async def start(self) -> None:
        self.spool.open()
        if len(self.spool):
            log.info(
                "%d requests (%d events) in the spool %s from an earlier run; replaying them",
                len(self.spool),
                self.spool.events,
                self.spool.directory,
            )
        self.queue.start()
        self._tasks = [
            asyncio.create_task(self._timer(), name="otlp-batcher"),
            asyncio.create_task(self._replay(), name="otlp-replay"),
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

    async def offer(self, batch: Batch) -> bool:
        content = batch.content
        assert content is not None
        taken = True
        for group in self.batcher.add(batch, content.events):
            taken = await self._enqueue(self._request(group)) and taken
        return taken

    def _request(self, group: Group) -> Request:
        return Request(self._encode(group.events), len(group.events), group.batches)

    def _encode(self, events: list[TelemetryEvent]) -> bytes:
        try:
            return encode_request(export_request(events, self.resource))
        except Exception:  # noqa: BLE001 - find the events at fault, one at a time
            safe: list[TelemetryEvent] = []
            for event in events:
                try:
                    orjson.dumps(log_record(event, 0))
                except Exception as exc:  # noqa: BLE001 - exported flagged instead
                    event = self.decoder.flag(event, exc)
                safe.append(event)
            return encode_request(export_request(safe, self.resource))

    async def _enqueue(self, request: Request) -> bool:
        """Queue ``request``; when the queue is full, spool it (reading goes on); when the
        spool is full too, wait for room in either. False when the collector stopped first
        (close() then spools it if it can)."""
        while True:
            if self.queue.offer(request):
                return True
            if self.spool.has_room(len(request.body)) and self._to_spool(request):
                return True
            if self.stopping.is_set():
                self._unsent.append(request)
                return False
            self._spool_changed.clear()
            waits = [
                asyncio.ensure_future(self.queue.room()),
                asyncio.ensure_future(self._spool_changed.wait()),
                asyncio.ensure_future(self.stopping.wait()),
            ]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waits:
                    waiter.cancel()

    def _consumer_free(self) -> bool:
        """Whether a request queued now would be taken at once."""
        queue = self.queue
        return len(queue) < queue.consumers - queue.active

    async def _timer(self) -> None:
        while True:
            group = await self.batcher.due()
            await self._enqueue(self._request(group))

    # -- sending -------------------------------------------------------------------------

    async def _send(self, request: Request) -> None:
        """A consumer's work on one request: send it (retrying), then finish it."""
        if self._give_up:
            self._park(request)
            return
        client = self._clients.pop()
        try:
            if request.spooled is not None:
                # From the spool: one attempt; the replayer paces the next ones.
                result = await self._attempt(client, request)
            else:
                result = await self.retry.run(
                    lambda: self._attempt(client, request),
                    stopping=self.closing,
                    on_retry=self._retrying,
                )
        finally:
            self._clients.append(client)
            self.batcher.poke()  # this consumer is about to be free
        if request.spooled is not None and result.outcome is not Outcome.UNAVAILABLE:
            self._replay_answered()
        if result.outcome is Outcome.OK:
            rejected, message = _partial(result.answer)
            rejected = min(rejected, request.events)
            self._exported(request.events - rejected)
            if rejected:
                reason = f"partial success: {message or 'no message'}"
                if not await self._dead_letter(request, reason, rejected, result.answer):
                    return
            elif message:
                log.warning("OTLP backend took a request with a warning: %s", message)
            self._finish(request)
        elif result.outcome is Outcome.REJECTED:
            if await self._dead_letter(request, result.detail, request.events, result.answer):
                self._finish(request)
        elif request.spooled is not None:
            self.spool.give_back(request.spooled)
            self._replay_attempt += 1
            self._replay_at = asyncio.get_running_loop().time() + max(
                result.wait or 0.0, backoff(self._replay_attempt)
            )
            self._spool_changed.set()
        else:
            if self.closing.is_set():
                self._give_up = True
            self._park(request)

    async def _attempt(self, client: HttpClient, request: Request) -> Result:
        closing = self.closing.is_set()
        try:
            response = await client.post(
                request.body, self.headers, timeout=CLOSING_TIMEOUT_S if closing else None
            )
        except (OSError, TimeoutError) as exc:
            return Result(Outcome.UNAVAILABLE, redact_text(str(exc) or type(exc).__name__))
        status = response.status
        if 200 <= status < 300:
            return Result(Outcome.OK, answer=response)
        if status not in RETRYABLE:
            return Result(Outcome.REJECTED, f"HTTP {status}", answer=response)
        hinted = retry_after(response.headers.get("retry-after"))
        return Result(Outcome.UNAVAILABLE, f"HTTP {status}", hinted, answer=response)

    def _retrying(self, result: Result, wait: float) -> None:
        self.health.retried += 1
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            log.warning("OTLP export to %s failed (%s); retrying", self.shown_url, result.detail)
        else:
            log.debug("OTLP export failed again (%s); next try in %.1f s", result.detail, wait)

    def _exported(self, events: int) -> None:
        self.health.exported += events
        if self._failing_since is not None:
            log.info(
                "OTLP backend %s answers again after %.1f s",
                self.shown_url,
                time.monotonic() - self._failing_since,
            )
            self._failing_since = None
        if self._replay_attempt:
            self._replay_answered()

    def _replay_answered(self) -> None:
        """The backend answers: replay the spool now, not when the last backoff ends."""
        self._replay_attempt = 0
        self._replay_at = 0.0
        self._spool_changed.set()

    def _finish(self, request: Request) -> None:
        if request.spooled is not None:
            self.spool.remove(request.spooled)
            self._spool_changed.set()
            if not len(self.spool):
                log.info("spool replayed")
        request.release()

    # -- spool ---------------------------------------------------------------------------

    def _to_spool(self, request: Request) -> bool:
        try:
            self.spool.append(request.body, request.events)
        except OSError as exc:
            log.error(
                "cannot write to the spool %s: %s; %d events stay unacknowledged for now",
                self.spool.directory,
                exc.strerror or exc,
                request.events,
            )
            return False
        self.health.spooled += request.events
        self._spool_changed.set()
        request.release()
        return True

    def _park(self, request: Request) -> None:
        """A request the backend could not take in time: to the spool. When the spool has
        no room, it goes back to the head of the queue to be tried again (reading pauses
        meanwhile, once the queue is full); at shutdown it stays unacked."""
        if request.spooled is not None:
            self.spool.give_back(request.spooled)
            self._spool_changed.set()
            return
        if self.spool.has_room(len(request.body)) and self._to_spool(request):
            return
        if self.closing.is_set():
            self._unsent.append(request)
        else:
            self.queue.retry_later(request)

    async def _replay(self) -> None:
        """Feed spooled requests to the consumers, oldest first, while some are idle."""
        loop = asyncio.get_running_loop()
        while not self.closing.is_set():
            now = loop.time()
            if (
                self.spool.idle
                and now >= self._replay_at
                and len(self.queue) < self.queue.consumers
            ):
                item = self.spool.oldest()
                assert item is not None
                try:
                    body = self.spool.take(item)
                except OSError as exc:
                    log.error(
                        "cannot read spooled request %s: %s; dropping it",
                        item.path,
                        exc.strerror or exc,
                    )
                    self.spool.remove(item)
                    continue
                self.queue.offer(Request(body, item.events, spooled=item))
                if self._replay_attempt:
                    # The backend is not answering: one probe at a time.
                    self._replay_at = float("inf")
                continue
            wait = _REPLAY_POLL_S
            if self._replay_at > now and self._replay_at != float("inf"):
                wait = min(wait, self._replay_at - now)
            self._spool_changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._spool_changed.wait(), wait)

    # -- dead letters --------------------------------------------------------------------

    async def _dead_letter(
        self, request: Request, reason: str, rejected: int, response: Response | None
    ) -> bool:
        """Write ``request`` to the dead-letter file and count ``rejected`` events. While
        the file cannot be written, retry; False when the collector stops first (the
        request is then spooled, or stays unacked)."""
        text = b"" if response is None else response.body[:4096]
        try:
            body: Any = decode_body(request.body)
        except (OSError, EOFError, ValueError):
            body = {"_raw_gzip_base64": base64.b64encode(request.body).decode()}
        record = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "url": self.shown_url,
            "status": None if response is None else response.status,
            "reason": reason,
            "response": text.decode("utf-8", "replace"),
            "events": request.events,
            "rejected": rejected,
            "request": body,
        }
        failures = 0
        while True:
            try:
                self.dead_letters.write(record)
                break
            except OSError as exc:
                failures += 1
                if failures == 1:
                    log.error(
                        "cannot write the dead-letter file %s: %s; retrying",
                        self.dead_letters.path,
                        exc.strerror or exc,
                    )
                if await pause(1.0, self.closing):
                    self._park(request)
                    return False
        self.health.dead_lettered += rejected
        log.error(
            "OTLP backend rejected %d of %d events (%s: %s); written to %s",
            rejected,
            request.events,
            reason,
            text[:200].decode("utf-8", "replace").strip(),
            self.dead_letters.path,
        )
        return True

    # -- shutdown ------------------------------------------------------------------------

    async def close(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        self.closing.set()  # no more long retries: what cannot be sent now is spooled
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        group = self.batcher.cut()
        if group is not None:
            await self._enqueue(self._request(group))
        left = await self.queue.close(deadline - SPOOL_RESERVE_S)
        left.extend(self._unsent)
        self._unsent = []
        unsent = 0
        for request in left:
            if request.spooled is not None:
                self.spool.give_back(request.spooled)
            elif loop.time() < deadline and self.spool.has_room(len(request.body)):
                if not self._to_spool(request):
                    unsent += request.events
            else:
                unsent += request.events
        if unsent:
            log.error(
                "shutdown: %d OTLP events were neither sent nor spooled in time; they stay "
                "pending in Redis and are read again at the next start",
                unsent,
            )
        for client in self._clients:
            await client.close()


def _partial(response: Response | None) -> tuple[int, str]:
    """(records rejected, the backend's message) from an OTLP answer's ``partialSuccess``."""
    if response is None or not response.body or not response.body.lstrip().startswith(b"{"):
        return 0, ""
    try:
        answer = orjson.loads(response.body)
    except orjson.JSONDecodeError:
        log.warning("OTLP backend answered %d with a body that is not JSON", response.status)
        return 0, ""
    partial = answer.get("partialSuccess") if isinstance(answer, dict) else None
    if not isinstance(partial, dict):
        return 0, ""
    raw = partial.get("rejectedLogRecords", 0)
    try:
        rejected = max(0, int(raw or 0))
    except (TypeError, ValueError):
        rejected = 0
    return rejected, str(partial.get("errorMessage") or "")
