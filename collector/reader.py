"""The collector's Redis side: the consumer group, reads, claims, acks, and trim-loss
detection.

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

import logging
from typing import Any, Final

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from collector.config import Settings
from collector.health import Health
from emp_tui.stream_ids import parse_id

log = logging.getLogger("collector.reader")

Entry = tuple[bytes, dict[bytes, bytes]]
GROUP_KEY_PREFIX: Final = "emp:collector-group:"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class StreamReader:
    def __init__(self, client: aioredis.Redis, settings: Settings, health: Health) -> None:
        self.client = client
        self.stream = settings.stream
        self.group = settings.group
        self.consumer = settings.consumer
        self.start = settings.start
        self.health = health
        self.group_key = f"{GROUP_KEY_PREFIX}{settings.stream}:{settings.group}"

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
        async with self.client.pipeline(transaction=True) as pipe:
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

    async def claim(self, start: str, count: int, min_idle_ms: int) -> tuple[str, list[Entry], int]:
        """XAUTOCLAIM entries idle longer than ``min_idle_ms``: (next start, entries, how
        many pending entries no longer existed)."""
        reply = await self.client.xautoclaim(
            self.stream, self.group, self.consumer, min_idle_ms, start_id=start, count=count
        )
        next_start = _text(reply[0])
        entries = [(eid, fields) for eid, fields in reply[1] if eid is not None]
        deleted = len(reply[2]) if len(reply) > 2 else 0
        return next_start, entries, deleted

    async def ack(self, ids: list[str]) -> int:
        return int(await self.client.xack(self.stream, self.group, *ids))

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


def _entries(reply: Any) -> list[Entry]:
    if not reply:
        return []
    if isinstance(reply, dict):  # RESP3
        for value in reply.values():
            return list(value[0] if value and isinstance(value[0], list) else value)
        return []
    return list(reply[0][1])
