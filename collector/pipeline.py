"""The collector's main loop: read with the consumer group, hand each batch to every sink,
ack what every sink has taken, report health, survive Redis going away, stop cleanly.

Order of reading: this consumer's own pending entries first (ID ``0``: what a crash left
unacked), then entries other consumers abandoned (``XAUTOCLAIM``, every ``claim_interval``),
then new ones (``>``). Delivery is at least once: a crash between writing and acking writes
a batch again, with the same stream IDs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import sys
import threading
from typing import Final

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from collector import health as health_mod
from collector.config import Settings
from collector.health import Health
from collector.reader import Entry, StreamReader
from collector.sinks import Batch, Sink, SinkError
from collector.sinks.file import FileSink
from emp_tui.config import redacted_url
from emp_tui.events import decode

log = logging.getLogger("collector")

SHUTDOWN_BUDGET_S: Final = 8.0  # sinks' share of the 10 s a stop may take
STOP_LIMIT_S: Final = 9.5  # after this, a stopping process exits at once
_ACK_CHUNK: Final = 5000
_MALFORMED_LOGGED: Final = 10
_CONNECTION_ERRORS = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)


class Collector:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.health = Health(
            consumer=settings.consumer,
            group=settings.group,
            stream=settings.stream,
            sinks=settings.sinks,
        )
        self.client = aioredis.from_url(
            settings.redis_url,
            socket_timeout=settings.block_ms / 1000 + 10,
            socket_connect_timeout=5,
        )
        self.reader = StreamReader(self.client, settings, self.health)
        self.sinks: list[Sink] = []
        if settings.file:
            self.sinks.append(
                FileSink(
                    settings.log_path,
                    max_bytes=settings.log_max_bytes,
                    backups=settings.log_backups,
                    fsync=settings.fsync,
                    health=self.health,
                )
            )
        if settings.otlp:
            from collector.sinks.otlp import OtlpSink

            self.sinks.append(OtlpSink(settings, self.health))
        self._stop = asyncio.Event()
        self._inflight: set[str] = set()
        self._room = asyncio.Event()
        self._room.set()
        self._to_ack: list[str] = []
        self._fatal: str | None = None
        self._prefetch: asyncio.Task[list[Entry]] | None = None
        self._ack_task: asyncio.Task[None] | None = None
        self._watchdog_s: float | None = None  # set by run(install_signals=True)
        self._watchdog: threading.Timer | None = None

    # -- control -------------------------------------------------------------------------

    def stop(self) -> None:
        if not self._stop.is_set():
            log.info("stopping: no more reads; delivering what was read")
            if self._watchdog_s is not None:
                self._watchdog = threading.Timer(self._watchdog_s, self._overdue)
                self._watchdog.daemon = True
                self._watchdog.start()
        self._stop.set()
        self._room.set()

    def _overdue(self) -> None:
        """Last resort (a thread, so it fires even if the event loop is stuck): a stop
        must not hang a deployment. Nothing is lost: unacked entries stay pending."""
        log.error(
            "shutdown took over %.1f s; exiting without finishing (unacked entries are read "
            "again at the next start)",
            self._watchdog_s,
        )
        os._exit(1)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def _pause(self, seconds: float) -> None:
        """Sleep, unless a stop is asked for first."""
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except TimeoutError:
            return

    async def run(self, *, install_signals: bool = True) -> int:
        loop = asyncio.get_running_loop()
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._on_signal, sig)
            loop.add_signal_handler(signal.SIGUSR1, self._dump_tasks)
            self._watchdog_s = STOP_LIMIT_S
        s = self.settings
        log.info(
            "collector %s reading %s (group %s) from %s into %s",
            s.consumer,
            s.stream,
            s.group,
            redacted_url(s.redis_url),
            ", ".join(
                f"file {s.log_path}" if name == "file" else f"OTLP {s.otlp_url}" for name in s.sinks
            ),
        )
        for sink in self.sinks:
            try:
                await sink.start()
            except OSError as exc:
                log.error("cannot start the %s sink: %s", sink.name, exc)
                await self._close_client()
                return 1
        health_task = asyncio.create_task(self._health_loop(), name="health")
        try:
            await self._read_loop()
        finally:
            code = await self._shutdown(health_task)
        return code

    def _dump_tasks(self) -> None:
        """SIGUSR1: write what every task is waiting on to stderr (for a collector that
        seems stuck)."""
        for task in asyncio.all_tasks():
            print(f"--- task {task.get_name()}", file=sys.stderr)
            task.print_stack(file=sys.stderr)
        sys.stderr.flush()

    def _on_signal(self, sig: signal.Signals) -> None:
        if self._stop.is_set():
            log.warning(
                "second %s: exiting now; unacked entries are read again at next start", sig.name
            )
            raise SystemExit(1)
        self.stop()

    # -- reading -------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        s = self.settings
        loop = asyncio.get_running_loop()
        group_ready = False
        pending_after: str | None = "0"  # re-read our own pending entries first
        claim_start = "0-0"
        next_claim = 0.0
        failures = 0
        while not self._stop.is_set():
            if self._fatal is not None:
                log.error("%s; stopping", self._fatal)
                self._stop.set()
                break
            try:
                if not group_ready:
                    await self.reader.ensure_group()
                    group_ready = True
                self._ack_in_background()
                if len(self._inflight) >= s.max_inflight:
                    self._room.clear()
                    await self._room.wait()
                    continue
                if pending_after is not None:
                    entries = await self.reader.read_pending(pending_after, s.read_count)
                    if not entries:
                        pending_after = None
                        continue
                    pending_after = entries[-1][0].decode()
                    # After a reconnect this list also holds what is being written or
                    # waits for its ack right now: only the rest was lost on the way.
                    waiting = self._inflight.union(self._to_ack)
                    entries = [e for e in entries if e[0].decode() not in waiting]
                    if entries:
                        await self._dispatch(entries, source="pending")
                elif loop.time() >= next_claim:
                    # Ack first: entries of ours counted as lost must not be counted again
                    # when XAUTOCLAIM reports them deleted.
                    await self._settle_acks()
                    claim_start, claimed, deleted = await self.reader.claim(
                        claim_start, s.read_count, s.claim_idle_ms
                    )
                    if claim_start == "0-0":
                        next_claim = loop.time() + s.claim_interval
                    if deleted:
                        self._lost(deleted, "were abandoned by a consumer, then trimmed")
                    fresh = [e for e in claimed if e[0].decode() not in self._inflight]
                    if fresh:
                        log.info("claimed %d entries another consumer left pending", len(fresh))
                        await self._dispatch(fresh, source="claimed")
                else:
                    if self._prefetch is not None:
                        prefetch, self._prefetch = self._prefetch, None
                        entries = await prefetch
                    else:
                        block = 0 if self._stop.is_set() else s.block_ms
                        entries = await self.reader.read_new(s.read_count, block)
                    if len(entries) == s.read_count and not self._stop.is_set():
                        # Busy: let Redis prepare the next batch while this one is written.
                        self._prefetch = asyncio.create_task(self.reader.read_new(s.read_count, 0))
                    if entries:
                        await self._dispatch(entries, source="new")
                if failures:
                    log.info("Redis is back; reading again")
                    failures = 0
                    self.health.state = "running"
            except ResponseError as exc:
                failures += 1
                if "NOGROUP" in str(exc) or "no such key" in str(exc):
                    log.warning("the stream or the group is gone (%s); creating it again", exc)
                    group_ready = False
                    continue
                log.error("Redis refused a read: %s", exc)
                await self._pause(min(30.0, 0.5 * 2**failures))
            except _CONNECTION_ERRORS as exc:
                failures += 1
                self.health.state = "reconnecting"
                # A read whose reply was lost with the connection left its entries pending
                # under our name: read our pending entries again once Redis is back.
                pending_after = "0"
                wait = random.uniform(0.5, 1.0) * min(5.0, 0.1 * 2**failures)
                if failures == 1:
                    log.warning("Redis unreachable (%s); reconnecting", _one_line(exc))
                else:
                    log.debug("still unreachable (%s); next try in %.1f s", _one_line(exc), wait)
                await self._pause(wait)

    def _lost(self, count: int, how: str) -> None:
        self.health.trimmed_lost += count
        log.warning(
            "%d entries of %s %s before they were delivered: lost", count, self.settings.stream, how
        )

    async def _dispatch(self, entries: list[Entry], *, source: str) -> None:
        ids: list[str] = []
        events = []
        gone: list[str] = []
        health = self.health
        for raw_id, fields in entries:
            entry_id = raw_id.decode()
            if not fields:
                gone.append(entry_id)  # delivered earlier, trimmed before it was acked
                continue
            event = decode(entry_id, fields)
            if event.malformed is not None:
                health.malformed += 1
                if health.malformed <= _MALFORMED_LOGGED:
                    log.warning("malformed entry %s: %s (kept, flagged)", entry_id, event.malformed)
                elif health.malformed == _MALFORMED_LOGGED + 1:
                    log.warning(
                        "more malformed entries; counting them in health without logging each"
                    )
            ids.append(entry_id)
            events.append(event)
        if gone:
            self._lost(len(gone), f"were read ({source}), then trimmed")
            self._to_ack.extend(gone)
        if not ids:
            return
        health.read += len(ids)
        health.last_read_id = ids[-1]
        batch = Batch(ids, events, self._on_done)
        self._inflight.update(ids)
        for sink in self.sinks:
            failures = 0
            while True:
                try:
                    await sink.take(batch)
                    break
                except SinkError as exc:
                    failures += 1
                    if failures == 1 or failures % 30 == 0:
                        log.error("%s; retrying (the batch stays unacknowledged)", exc)
                    if self._stop.is_set():
                        return  # never released: the entries stay pending, read again later
                    await self._pause(min(10.0, 0.2 * 2**failures))
        batch.events = []  # every sink has what it needs: hold only the IDs from here on
        batch.release()

    def _on_done(self, batch: Batch) -> None:
        self._to_ack.extend(batch.ids)
        self._inflight.difference_update(batch.ids)
        if len(self._inflight) < self.settings.max_inflight:
            self._room.set()

    def _ack_in_background(self) -> None:
        """Ack what is done while the next batch is read and written. A failed ack is
        raised here, in the read loop, whose handlers reconnect; its IDs are kept."""
        task = self._ack_task
        if task is not None:
            if not task.done():
                return
            self._ack_task = None
            task.result()
        if self._to_ack:
            self._ack_task = asyncio.create_task(self._flush_acks(), name="ack")

    async def _settle_acks(self) -> None:
        task, self._ack_task = self._ack_task, None
        if task is not None:
            await task
        await self._flush_acks()

    async def _flush_acks(self) -> None:
        while self._to_ack:
            chunk = self._to_ack[:_ACK_CHUNK]
            await self.reader.ack(chunk)
            del self._to_ack[: len(chunk)]

    # -- health --------------------------------------------------------------------------

    async def _health_loop(self) -> None:
        ttl = max(health_mod.TTL_S, int(self.settings.health_interval * 3))
        while not self._stop.is_set():
            for sink in self.sinks:
                if sink.error is not None and self._fatal is None:
                    self._fatal = f"the {sink.name} sink broke: {sink.error}"
                    self._room.set()
            try:
                await self._publish(ttl)
            except (RedisError, OSError) as exc:
                log.debug("health not published: %s", _one_line(exc))
            await self._pause(self.settings.health_interval)

    async def _publish(self, ttl: int) -> None:
        try:
            self.health.pending, self.health.lag = await self.reader.group_stats()
        except ResponseError as exc:
            log.debug("group stats unavailable (%s); publishing the rest", exc)
        await health_mod.publish(self.client, self.health, ttl)

    # -- shutdown ------------------------------------------------------------------------

    async def _shutdown(self, health_task: asyncio.Task[None]) -> int:
        loop = asyncio.get_running_loop()
        self.health.state = "stopping"
        if self._prefetch is not None:
            # Entries read ahead are delivered too (else they wait, pending, for the next start).
            prefetch, self._prefetch = self._prefetch, None
            try:
                entries = await asyncio.wait_for(prefetch, 2.0)
            except (RedisError, OSError, TimeoutError) as exc:
                log.debug("read-ahead lost at shutdown (%s); those entries stay pending", exc)
            else:
                if entries and self._fatal is None:
                    await self._dispatch(entries, source="new")
        deadline = loop.time() + SHUTDOWN_BUDGET_S
        for sink in self.sinks:
            await sink.close(deadline)
        # The health loop ends on its own after its current write (cancelling a Redis
        # command half-way gains nothing); cancelled only if that write hangs.
        done, _ = await asyncio.wait({health_task}, timeout=2.0)
        if not done:
            health_task.cancel()
        await asyncio.gather(health_task, return_exceptions=True)
        if self._ack_task is not None:
            # Its IDs stay in the list when it failed: the flush below tries them again.
            await asyncio.gather(asyncio.wait_for(self._ack_task, 1.5), return_exceptions=True)
        try:
            await asyncio.wait_for(self._flush_acks(), 1.5)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning(
                "could not ack %d delivered entries (%s); they will be delivered again",
                len(self._to_ack),
                _one_line(exc) or "timeout",
            )
        # Best effort: when Redis is away, the hash expires on its own.
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            await asyncio.wait_for(health_mod.remove(self.client, self.settings.consumer), 1.0)
        await self._close_client()
        if self._watchdog is not None:
            self._watchdog.cancel()
        h = self.health
        log.info(
            "stopped: read %d, written %d, exported %d, spooled %d, dead-lettered %d, "
            "trimmed-lost %d, malformed %d",
            h.read,
            h.written,
            h.exported,
            h.spooled,
            h.dead_lettered,
            h.trimmed_lost,
            h.malformed,
        )
        return 1 if self._fatal else 0

    async def _close_client(self) -> None:
        try:
            await asyncio.wait_for(self.client.aclose(), 2.0)
        except (RedisError, OSError, TimeoutError) as exc:
            log.debug("closing the Redis client: %s", exc)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
