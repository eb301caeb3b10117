"""The collector's Redis side: the consumer group, the order of reading, claims, acks, and
trim-loss detection.

:meth:`StreamReader.next_batch` yields the next batch to deliver, in this order: this
consumer's own pending entries first (ID ``0``: what a crash or a lost reply left unacked),
then entries other consumers abandoned (``XAUTOCLAIM``, every ``claim_interval``), then new
ones (``>``). Entries the collector still holds (being delivered, or delivered and waiting
for their ack) are never handed out again, and are never counted as lost: ``held`` says
which those are.

The stream is trimmed on write (``MAXLEN ~ 10000``) whether or not the group has read the
entries. Entries removed before the group read them are found three ways:

* **A gap before a read.** Reads of new entries run in a MULTI with ``XINFO STREAM`` and
  ``XINFO GROUPS``. When the group's last-delivered ID is older than the stream's first
  entry, this read jumps a gap of ``(entries-added - length) - entries-read - offset``
  entries. Redis keeps counting ``entries-read`` one by one after such a jump, so the
  counter falls behind the group's true position by the number lost; ``offset`` (kept in
  ``emp:collector-group:<stream>:<group>``) is that shortfall. When ``entries-read`` is
  unknown (nil), Redis re-estimates it at the jump, so the shortfall becomes 0.
* **Nil payloads** when re-reading pending entries: delivered, then trimmed before the ack.
* **Deleted IDs** that ``XAUTOCLAIM`` reports for the same reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from redis.exceptions import ResponseError

from collector.batch import Entry
from collector.config import Settings
from collector.health import Health
from emp_tui.stream_ids import parse_id
from emp_tui.topology import AsyncClient, is_cluster_url

log = logging.getLogger("collector.reader")

GROUP_KEY_PREFIX: Final = "emp:collector-group:"
_SEND_TURNS: Final = 2

# XACK of many IDs in one argument: redis-py packs each argument of a command in Python
# (about 1 us each), so a plain XACK of a backlog's IDs costs the collector as much as
# building their lines. The server splits them and acks in chunks (Lua's unpack is
# limited to a few thousand values).
_ACK_SCRIPT: Final = """
local acked = 0
local ids = {}
for id in string.gmatch(ARGV[2], '%S+') do
  ids[#ids + 1] = id
  if #ids == 1000 then
    acked = acked + redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
    ids = {}
  end
end
if #ids > 0 then
  acked = acked + redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
end
return acked
"""


@dataclass(slots=True)
class ReadBatch:
    """What one step of reading gives: entries to deliver (``source`` says from where) and
    IDs of entries that were delivered once but are gone from the stream (to ack)."""

    source: str  # pending | claimed | new
    entries: list[Entry] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def group_key(stream: str, group: str, cluster: bool) -> str:
    """The hash that remembers the group's trim shortfall on ``stream``. It is read in one
    MULTI with the stream, so on a cluster it must be in the stream's hash slot: a stream
    key without a hash tag is made the tag (``emp:collector-group:{emp:events}:<group>``);
    a shard's key has its own (``emp:events:{0}``), which the hash shares as its first."""
    if cluster and "{" not in stream:
        return f"{GROUP_KEY_PREFIX}{{{stream}}}:{group}"
    return f"{GROUP_KEY_PREFIX}{stream}:{group}"


def _never(_entry_id: str) -> bool:
    return False


class StreamReader:
    def __init__(
        self,
        client: AsyncClient,
        settings: Settings,
        health: Health,
        held: Callable[[str], bool] = _never,
        *,
        stream: str | None = None,
        read_count: int | None = None,
    ) -> None:
        """Reads ``stream`` (one shard of the stream; the stream itself by default),
        ``read_count`` entries at a time (the setting's by default)."""
        self.client = client
        self.stream = settings.stream if stream is None else stream
        self.group = settings.group
        self.consumer = settings.consumer
        self.start = settings.start
        self.health = health
        self.held = held
        self.cluster = is_cluster_url(settings.redis_url)
        self.group_key = group_key(self.stream, settings.group, self.cluster)
        self.read_count = settings.read_count if read_count is None else read_count
        self.block_ms = settings.block_ms
        self.claim_idle_ms = settings.claim_idle_ms
        self.claim_interval = settings.claim_interval
        self._pending_after: str | None = "0"  # re-read our own pending entries first
        self._claim_start = "0-0"
        self._next_claim = 0.0
        self._prefetch: asyncio.Task[list[Entry]] | None = None
        self._ack_script = client.register_script(_ACK_SCRIPT)
        # Entries as Redis sends them: their fields stay a flat list (name, value, ...),
        # which the file exporter reads without a dict per entry (redis-py would build one:
        # a sixth of the collector's time on a backlog). The client is this reader's own.
        client.set_response_callback("XREADGROUP", _as_sent)
        client.set_response_callback("XAUTOCLAIM", _as_sent)

    # -- the order of reading ------------------------------------------------------------

    def reread_pending(self) -> None:
        """After a lost connection: a read whose reply was lost left its entries pending
        under our name, so read our own pending entries again first."""
        self._pending_after = "0"
        self.drop_prefetch()

    async def next_batch(self, *, block: bool = True) -> ReadBatch:
        """The next entries to deliver: our own pending ones, then abandoned ones (when a
        claim is due), then new ones (waiting up to ``block_ms`` for some when ``block``).
        An empty batch means nothing came."""
        if self._pending_after is not None:
            return await self._next_pending()
        loop = asyncio.get_running_loop()
        if loop.time() >= self._next_claim:
            return await self._next_claimed(loop.time())
        return await self._next_new(block=block)

    async def _next_pending(self) -> ReadBatch:
        assert self._pending_after is not None
        entries = await self.read_pending(self._pending_after, self.read_count)
        if not entries:
            self._pending_after = None
            return ReadBatch("pending")
        self._pending_after = entries[-1][0].decode()
        # After a reconnect this list also holds what is being delivered or waits for its
        # ack right now: only the rest was lost on the way.
        held = self.held
        read = ReadBatch("pending")
        for entry in entries:
            entry_id = entry[0].decode()
            if held(entry_id):
                continue
            if entry[1]:
                read.entries.append(entry)
            else:
                read.gone.append(entry_id)  # delivered earlier, trimmed before it was acked
        if read.gone:
            self.lost(len(read.gone), "were read (pending), then trimmed")
        return read

    async def _next_claimed(self, now: float) -> ReadBatch:
        self._claim_start, claimed, deleted = await self.claim(
            self._claim_start, self.read_count, self.claim_idle_ms
        )
        if self._claim_start == "0-0":
            self._next_claim = now + self.claim_interval
        held = self.held
        # Our own entries still being delivered are idle too, and XAUTOCLAIM finds them
        # (and reports those trimmed meanwhile as deleted): they are neither new work nor
        # lost, since the collector holds them.
        lost = [entry_id for entry_id in deleted if not held(entry_id)]
        if lost:
            self.lost(len(lost), "were abandoned by a consumer, then trimmed")
        read = ReadBatch("claimed")
        for entry in claimed:
            entry_id = entry[0].decode()
            if held(entry_id):
                continue
            if entry[1]:
                read.entries.append(entry)
            else:
                read.gone.append(entry_id)  # Redis before 7: a trimmed entry has no fields
        if read.gone:
            self.lost(len(read.gone), "were abandoned by a consumer, then trimmed")
        if read.entries:
            log.info("claimed %d entries another consumer left pending", len(read.entries))
        return read

    async def _next_new(self, *, block: bool) -> ReadBatch:
        if self._prefetch is not None:
            prefetch, self._prefetch = self._prefetch, None
            entries = await prefetch
        else:
            entries = await self.read_new(self.read_count, self.block_ms if block else 0)
        if len(entries) == self.read_count and block:
            # Busy: let Redis prepare the next batch while this one is delivered.
            self._prefetch = asyncio.create_task(self.read_new(self.read_count, 0))
            # Let it put its command on the wire now: delivering this batch may never yield
            # to the loop, and Redis would then start on the next batch only once this one
            # is delivered (no overlap at all). redis-py writes a pipeline on its second
            # turn of the loop (after the connection's check) when the connection is idle.
            for _ in range(_SEND_TURNS):
                await asyncio.sleep(0)
        return ReadBatch("new", entries)

    async def take_prefetched(self, timeout: float) -> list[Entry]:
        """Entries already read ahead (at shutdown: they are delivered too, else they wait,
        pending, for the next start)."""
        prefetch, self._prefetch = self._prefetch, None
        if prefetch is None:
            return []
        return await asyncio.wait_for(prefetch, timeout)

    def drop_prefetch(self) -> None:
        prefetch, self._prefetch = self._prefetch, None
        if prefetch is not None:
            # Its entries (if it got any) are pending under our name: read again later.
            prefetch.cancel()
            prefetch.add_done_callback(_consume_result)

    def lost(self, count: int, how: str) -> None:
        self.health.trimmed_lost += count
        log.warning("%d entries of %s %s before they were delivered: lost", count, self.stream, how)

    # -- Redis commands ------------------------------------------------------------------

    async def ensure_group(self) -> None:
        """Create the group (and the stream) unless it exists."""
        try:
            await self.client.xgroup_create(self.stream, self.group, id=self.start, mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" in str(exc):
                return
            raise
        # A new group: no shortfall to remember from an earlier group of that name.
        await self.client.delete(self.group_key)
        log.info(
            "created consumer group %s on %s at %s",
            self.group,
            self.stream,
            "the start of the stream" if self.start == "0" else "its end ($)",
        )

    async def read_pending(self, after: str, count: int) -> list[Entry]:
        """This consumer's own pending entries after ``after`` (``0`` = all). An entry that
        was trimmed since it was delivered comes back with no fields."""
        reply = await self.client.xreadgroup(
            self.group, self.consumer, {self.stream: after}, count=count
        )
        return _entries(reply)

    async def read_new(self, count: int, block_ms: int) -> list[Entry]:
        """New entries, noticing a trimmed gap before them; blocks when there are none."""
        # One MULTI, so that the counters are those the read starts from. Not on a cluster:
        # redis-py's asyncio cluster client runs a transaction's commands whose keys it must
        # ask the server for (XREADGROUP's) on another event loop, which fails; there the
        # four go in one pipeline, in order on one connection, and a trim by another client
        # between them can make this read's count of trimmed entries short.
        async with self.client.pipeline(transaction=not self.cluster) as pipe:
            pipe.xinfo_stream(self.stream)
            pipe.xinfo_groups(self.stream)
            pipe.hget(self.group_key, "offset")
            pipe.xreadgroup(self.group, self.consumer, {self.stream: ">"}, count=count)
            info, groups, offset, reply = await pipe.execute()
        entries = _entries(reply)
        if entries:
            await self._check_gap(info, groups, offset)
            return entries
        if block_ms <= 0:
            return []
        reply = await self.client.xreadgroup(
            self.group, self.consumer, {self.stream: ">"}, count=count, block=block_ms
        )
        return _entries(reply)

    async def _check_gap(
        self, info: dict[str, Any], groups: list[dict[str, Any]], raw_offset: Any
    ) -> None:
        group = next((g for g in groups if _text(g.get("name")) == self.group), None)
        first = info.get("first-entry")
        if group is None or not first or first[0] is None:
            return
        last_delivered = parse_id(group["last-delivered-id"])
        first_id = parse_id(first[0])
        if last_delivered is None or first_id is None or last_delivered >= first_id:
            return
        if "entries-added" not in info:
            # Redis before 7 keeps no counters: a gap is certain, its size is not.
            log.warning(
                "entries of %s were trimmed before group %s read them (after %s); "
                "Redis before 7 cannot say how many",
                self.stream,
                self.group,
                _text(group["last-delivered-id"]),
            )
            return
        removed = int(info["entries-added"]) - int(info["length"])
        entries_read = group.get("entries-read")
        offset = int(raw_offset or 0)
        if entries_read is not None:
            lost = removed - int(entries_read) - offset
            if lost <= 0:
                return
            new_offset: int | None = offset + lost
        elif last_delivered == (0, 0):
            lost = removed
            new_offset = 0
            if lost <= 0:
                return
        else:
            log.warning(
                "entries of %s were trimmed before group %s read them (after %s); "
                "Redis cannot say how many",
                self.stream,
                self.group,
                _text(group["last-delivered-id"]),
            )
            await self.client.hset(self.group_key, "offset", 0)
            return
        self.health.trimmed_lost += lost
        log.warning(
            "%d entries of %s were trimmed away (MAXLEN) before group %s read them: lost",
            lost,
            self.stream,
            self.group,
        )
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(self.group_key, "offset", new_offset)
            pipe.hincrby(self.group_key, "trimmed_lost", lost)
            await pipe.execute()

    async def claim(
        self, start: str, count: int, min_idle_ms: int
    ) -> tuple[str, list[Entry], list[str]]:
        """XAUTOCLAIM entries idle longer than ``min_idle_ms``: (next start, entries, IDs of
        pending entries that no longer existed)."""
        reply = await self.client.xautoclaim(
            self.stream, self.group, self.consumer, min_idle_ms, start_id=start, count=count
        )
        next_start = _text(reply[0])
        entries = [(entry[0], entry[1]) for entry in reply[1] if entry and entry[0] is not None]
        deleted = [_text(eid) for eid in reply[2]] if len(reply) > 2 else []
        return next_start, entries, deleted

    async def ack(self, ids: list[str]) -> int:
        if not ids:
            return 0
        return int(await self._ack_script(keys=[self.stream], args=[self.group, " ".join(ids)]))

    async def group_stats(self) -> tuple[int, int | None]:
        """(this consumer's pending entries, the group's lag less what was trimmed away)."""
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.xinfo_groups(self.stream)
            pipe.xinfo_consumers(self.stream, self.group)
            pipe.hget(self.group_key, "offset")
            groups, consumers, offset = await pipe.execute()
        pending = 0
        for consumer in consumers:
            if _text(consumer.get("name")) == self.consumer:
                pending = int(consumer.get("pending") or 0)
        lag: int | None = None
        for group in groups:
            if _text(group.get("name")) == self.group and group.get("lag") is not None:
                lag = max(0, int(group["lag"]) - int(offset or 0))
        return pending, lag


def _consume_result(task: asyncio.Task[list[Entry]]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: a failed read-ahead is not worth a warning


def _as_sent(response: Any, **_options: Any) -> Any:
    return response


def _entries(reply: Any) -> list[Entry]:
    """The entries of an XREADGROUP reply on one stream, as sent: ``{stream: entries}`` in
    RESP3, ``[[stream, entries]]`` in RESP2."""
    if not reply:
        return []
    entries = next(iter(reply.values())) if isinstance(reply, dict) else reply[0][1]
    return list(entries or ())
