"""The collector's main loop, in the OpenTelemetry Collector's shape: the reader yields the
next batch (:mod:`collector.reader`), the batch is offered to every exporter, each with its
own queue, retry and spool (:mod:`collector.exporters`), and the batch is acked once every
exporter has finished with it (:mod:`collector.acks`). It also reports health, survives
Redis going away, and stops cleanly.

Delivery is at least once: a crash between writing and acking writes a batch again, with the
same stream IDs.

A sharded stream (``EMP_EVENTS_SHARDS=N``: ``emp:events:{0}`` ... ``{N-1}``) is read in N
*lanes*, one per shard: each has its own client (so its blocking XREADGROUP holds a
connection of its own, on the node that holds that shard in a cluster), its own reader with
the consumer group on that shard, its own acks, its own reconnecting and its own health (the
``shard.<n>.*`` fields of the health hash). They share the exporters: one slow shard does
not hold the others back, and a node that fails stalls only the lanes of the shards it held
until its replica takes over.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import random
import signal
import sys
import threading
import time
from typing import Final

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from collector import health as health_mod
from collector.acks import Acks
from collector.batch import Batch, Content, Decoder, Entry
from collector.config import Settings
from collector.exporters import Exporter
from collector.exporters.file import FileExporter, FileWriter
from collector.health import Health, ShardHealth
from collector.lines import field
from collector.reader import ReadBatch, StreamReader
from emp_tui.events import SeenEvents
from emp_tui.redact import redact_text, redact_url
from emp_tui.topology import (
    AsyncClient,
    async_client_for_url,
    recorded_shards,
    shard_keys,
    transient_errors,
    trim_policy_key,
)

log = logging.getLogger("collector")

SHUTDOWN_BUDGET_S: Final = 6.0  # the exporters' share of the 10 s a stop may take
STOP_LIMIT_S: Final = 9.5  # after this, a stopping process exits at once
_MIN_LANE_READ: Final = 250  # entries per read of a shard's lane, at least (or the count)
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    ConnectionError,
    OSError,
    *transient_errors(),  # a cluster's node failed over: CLUSTERDOWN, TRYAGAIN, READONLY...
)


SHARDS_RETRY_MAX_S = 10.0


def settle_shards(settings: Settings) -> Settings:
    """The settings with the shard count to read: the given one, else the one the emitters
    recorded (else found from the shard keys; else 1). Says when the given count differs
    from the recorded one. Without a given count it waits for a Redis that does not answer
    yet; with one it starts at once (its health loop compares the counts later)."""
    from redis.exceptions import RedisClusterException, RedisError

    from emp_tui.topology import client_for_url, find_shards

    delay = 0.5
    while True:
        try:
            client = client_for_url(settings.redis_url, socket_connect_timeout=3, socket_timeout=30)
            try:
                configured = settings.shards if settings.shards_given else None
                found = find_shards(client, settings.stream, configured)
            finally:
                client.close()
            break
        except (RedisError, OSError, RedisClusterException) as exc:
            if settings.shards_given:
                return settings
            log.warning(
                "waiting for Redis at %s to read how many shards %s has: %s",
                redact_url(settings.redis_url),
                settings.stream,
                exc,
            )
            time.sleep(delay)
            delay = min(delay * 2, SHARDS_RETRY_MAX_S)
    if found.warning:
        log.warning("%s", found.warning)
    elif found.source == "recorded" and found.count > 1:
        log.info("reading %d shards, as the emitters of %s record", found.count, settings.stream)
    return dataclasses.replace(settings, shards=found.count)


class Lane:
    """The reading of one shard: its client, reader, acks and health."""

    def __init__(self, collector: Collector, index: int, key: str, lanes: int) -> None:
        settings = collector.settings
        self.index = index
        self.key = key
        self.client = _client(settings)
        self.reader = StreamReader(
            self.client,
            settings,
            collector.health,
            stream=key,
            read_count=_lane_read(settings, lanes),
        )
        self.acks = Acks(self.reader)
        self.reader.held = self.acks.holds
        self.health = ShardHealth(key)

    def on_done(self, batch: Batch) -> None:
        self.acks.done(batch.ids)


def _lane_read(settings: Settings, lanes: int) -> int:
    """Entries per read of each of ``lanes`` lanes: they share the read count, so that what
    is held between read and ack (two reads' worth per lane on a backlog) stays that of one
    stream however many shards."""
    count = settings.read_count
    return max(min(_MIN_LANE_READ, count), count // max(1, lanes))


def _client(settings: Settings) -> AsyncClient:
    return async_client_for_url(
        settings.redis_url,
        socket_timeout=settings.block_ms / 1000 + 10,
        socket_connect_timeout=5,
    )


class Collector:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.health = Health(
            consumer=settings.consumer,
            group=settings.group,
            stream=settings.stream,
            sinks=settings.sinks,
        )
        self.client = _client(settings)  # health; each lane reads on a client of its own
        keys = shard_keys(settings.stream, settings.shards)
        self.lanes = [Lane(self, index, key, len(keys)) for index, key in enumerate(keys)]
        self.health.shards = [lane.health for lane in self.lanes]
        self._lane_tasks: list[asyncio.Task[None]] = []
        """The lanes' read loops, once running (a lane added later starts its own)."""
        self._seen = SeenEvents()  # the eventIds delivered lately, to collapse resends
        self.decoder = Decoder(self.health)
        self._stop = asyncio.Event()
        self.exporters: list[Exporter] = []
        if settings.file:
            writer = FileWriter(
                settings.log_path,
                max_bytes=settings.log_max_bytes,
                backups=settings.log_backups,
                fsync=settings.fsync,
                mode=settings.file_mode,
            )
            self.exporters.append(FileExporter(writer, self.health, self._stop))
        if settings.otlp:
            from collector.exporters.otlp import OtlpExporter

            self.exporters.append(OtlpExporter(settings, self.health, self.decoder, self._stop))
        self._fatal: str | None = None
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
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

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
            s.stream if s.shards == 1 else f"{s.stream} ({s.shards} shards)",
            s.group,
            redact_url(s.redis_url),
            ", ".join(
                f"file {s.log_path}" if name == "file" else f"OTLP {redact_url(s.otlp_url)}"
                for name in s.sinks
            ),
        )
        for exporter in self.exporters:
            try:
                await exporter.start()
            except OSError as exc:
                log.error("cannot start the %s exporter: %s", exporter.name, exc)
                await self._close_client()
                return 1
        health_task = asyncio.create_task(self._health_loop(), name="health")
        try:
            for lane in self.lanes:
                self._start_lane(lane)
            waited = 0
            while waited < len(self._lane_tasks):  # lanes added meanwhile are waited for too
                waited = len(self._lane_tasks)
                await asyncio.gather(*self._lane_tasks)
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

    async def _read_loop(self, lane: Lane) -> None:
        group_ready = False
        failures = 0

        def where() -> str:  # the lane's key, once there is more than one
            return "" if len(self.lanes) == 1 else f" ({lane.key})"

        while not self._stop.is_set():
            try:
                if not group_ready:
                    await lane.reader.ensure_group()
                    group_ready = True
                lane.acks.check()
                read = await lane.reader.next_batch(block=not self._stop.is_set())
                await self._deliver(lane, read)
                # Not held while the next batch is read: the exporters took what they need.
                del read
                if failures:
                    log.info("Redis is back%s; reading again", where())
                    failures = 0
                    self._lane_state(lane, "running")
            except _CONNECTION_ERRORS as exc:
                failures += 1
                self._lane_state(lane, "reconnecting")
                lane.reader.reread_pending()
                wait = random.uniform(0.5, 1.0) * min(5.0, 0.1 * 2**failures)
                if failures == 1:
                    log.warning("Redis unreachable%s (%s); reconnecting", where(), _one_line(exc))
                else:
                    log.debug("still unreachable (%s); next try in %.1f s", _one_line(exc), wait)
                await self._pause(wait)
            except ResponseError as exc:
                failures += 1
                if "NOGROUP" in str(exc) or "no such key" in str(exc):
                    log.warning("the stream or the group is gone (%s); creating it again", exc)
                    group_ready = False
                    continue
                log.error("Redis refused a read%s: %s", where(), exc)
                await self._pause(min(30.0, 0.5 * 2**failures))

    def _lane_state(self, lane: Lane, state: str) -> None:
        """One lane's state; the collector's is ``reconnecting`` while any lane is."""
        if state == "reconnecting" and lane.health.state != state:
            lane.health.reconnects += 1
        lane.health.state = state
        if self.health.state in ("running", "reconnecting"):
            reconnecting = any(other.health.state == "reconnecting" for other in self.lanes)
            self.health.state = "reconnecting" if reconnecting else "running"

    async def _deliver(self, lane: Lane, read: ReadBatch) -> None:
        if read.gone:
            lane.acks.done(read.gone)  # nothing left to deliver: ack them
        if read.entries:
            await self._offer(lane, read.entries)

    async def _offer(self, lane: Lane, entries: list[Entry]) -> None:
        entries = self._collapse_copies(lane, entries)
        if not entries:
            return
        ids = [entry[0].decode() for entry in entries]
        health = self.health
        health.read += len(ids)
        health.last_read_id = ids[-1]
        lane.health.read += len(ids)
        lane.health.last_read_id = ids[-1]
        batch = Batch(Content(ids, entries, self.decoder), lane.on_done)
        lane.acks.started(ids)
        taken = True
        for exporter in self.exporters:
            taken = await exporter.offer(batch) and taken
        batch.content = None  # each exporter took what it needs: hold only the IDs
        if taken:
            batch.release()
        # Else the collector stopped before an exporter had room: never released, the
        # entries stay pending and are read again at the next start.

    def _collapse_copies(self, lane: Lane, entries: list[Entry]) -> list[Entry]:
        """``entries`` without the copies of events delivered already: an emitter that resent
        a batch after a timeout that left it unsure whether Redis had taken it wrote those
        events twice, under other stream IDs but with the same ``eventId``. The copies are
        acked without being delivered, and counted."""
        event_ids = [field(fields, b"eventId") for _, fields in entries]
        if not any(event_ids):
            return entries  # no eventIds (an emitter that sets none): nothing to collapse
        first_key = self._seen.first_key
        kept: list[Entry] = []
        copies: list[str] = []
        for entry, event_id in zip(entries, event_ids, strict=True):
            if event_id and not first_key(event_id.decode("utf-8", "backslashreplace")):
                copies.append(entry[0].decode())
            else:
                kept.append(entry)
        if copies:
            self.health.duplicates += len(copies)
            lane.acks.done(copies)
        return kept

    # -- health --------------------------------------------------------------------------

    async def _health_loop(self) -> None:
        ttl = max(health_mod.TTL_S, int(self.settings.health_interval * 3))
        while not self._stop.is_set():
            for exporter in self.exporters:
                if exporter.error is not None and self._fatal is None:
                    self._fatal = f"the {exporter.name} exporter broke: {exporter.error}"
                    log.error("%s; stopping", self._fatal)
                    self.stop()
            try:
                await self._publish(ttl)
            except (RedisError, OSError) as exc:
                log.debug("health not published: %s", _one_line(exc))
            try:
                await self._check_recorded_shards()
            except (RedisError, OSError) as exc:
                log.debug("shard count not checked: %s", _one_line(exc))
            await self._pause(self.settings.health_interval)

    async def _check_recorded_shards(self) -> None:
        """Emitters started or reconfigured after this collector record another shard count
        than its lanes read: it reads the keys of that count too (a lane each, its consumer
        group from the start of the key), and keeps the lanes it has, whose keys may hold
        events not read yet. Said once per change."""
        value = await self.client.hget(trim_policy_key(self.settings.stream), "shards")
        count = recorded_shards(value)
        if count is None or self._stop.is_set():
            return
        held = {lane.key for lane in self.lanes}
        added = [key for key in shard_keys(self.settings.stream, count) if key not in held]
        if not added:
            return
        lanes = len(self.lanes) + len(added)
        log.warning(
            "the emitters of %s now record %d shards: reading %s too (%d lanes)%s",
            self.settings.stream,
            count,
            ", ".join(added),
            lanes,
            f"; EMP_EVENTS_SHARDS={self.settings.shards} is out of date"
            if self.settings.shards_given
            else "",
        )
        for lane in self.lanes:
            lane.reader.read_count = _lane_read(self.settings, lanes)
        for key in added:
            lane = Lane(self, len(self.lanes), key, lanes)
            self.lanes.append(lane)
            self.health.shards.append(lane.health)
            self._start_lane(lane)

    def _start_lane(self, lane: Lane) -> None:
        task = asyncio.create_task(self._read_loop(lane), name=f"read {lane.key}")
        self._lane_tasks.append(task)

    async def _publish(self, ttl: int) -> None:
        for lane in self.lanes:
            try:
                lane.health.pending, lane.health.lag = await lane.reader.group_stats()
            except ResponseError as exc:
                log.debug("group stats unavailable (%s); publishing the rest", exc)
            except _CONNECTION_ERRORS as exc:  # its node is away: the other shards' still
                log.debug("group stats of %s unavailable (%s)", lane.key, _one_line(exc))
        lags = [lane.health.lag for lane in self.lanes]
        self.health.pending = sum(lane.health.pending for lane in self.lanes)
        self.health.lag = None if None in lags else sum(lag or 0 for lag in lags)
        await health_mod.publish(self.client, self.health, ttl)

    # -- shutdown ------------------------------------------------------------------------

    async def _shutdown(self, health_task: asyncio.Task[None]) -> int:
        loop = asyncio.get_running_loop()
        self.health.state = "stopping"
        for lane in self.lanes:
            try:
                # Entries read ahead are delivered too (else they wait, pending, for the
                # next start).
                entries = await lane.reader.take_prefetched(2.0)
            except (RedisError, OSError, TimeoutError) as exc:
                log.debug("read-ahead lost at shutdown (%s); those entries stay pending", exc)
            else:
                if entries and self._fatal is None:
                    await self._offer(lane, entries)
        deadline = loop.time() + SHUTDOWN_BUDGET_S
        await asyncio.gather(*(exporter.close(deadline) for exporter in self.exporters))
        # The health loop ends on its own after its current write (cancelling a Redis
        # command half-way gains nothing); cancelled only if that write hangs.
        done, _ = await asyncio.wait({health_task}, timeout=2.0)
        if not done:
            health_task.cancel()
        await asyncio.gather(health_task, return_exceptions=True)
        for lane in self.lanes:
            try:
                await lane.acks.settle(1.5)
            except (RedisError, OSError, TimeoutError) as exc:
                log.warning(
                    "could not ack %d delivered entries (%s); they will be delivered again",
                    lane.acks.waiting,
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
        for client in (self.client, *(lane.client for lane in self.lanes)):
            try:
                await asyncio.wait_for(client.aclose(), 2.0)
            except (RedisError, OSError, TimeoutError) as exc:
                log.debug("closing the Redis client: %s", exc)


def _one_line(exc: BaseException) -> str:
    return redact_text(" ".join(str(exc).split())) or type(exc).__name__
