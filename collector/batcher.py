"""The batcher: groups the events of successive batches into groups of ``size`` events (one
OTLP request each); a partial group is due ``interval`` seconds after its first event.

A group holds every batch it has events of, so a batch is acked only once each group with
its events has been finished with.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from collector.batch import Batch
from emp_tui.events import TelemetryEvent


@dataclass(slots=True)
class Group:
    events: list[TelemetryEvent] = field(default_factory=list)
    batches: list[Batch] = field(default_factory=list)


class Batcher:
    def __init__(self, size: int, interval: float) -> None:
        self.size = size
        self.interval = interval
        self._group = Group()
        self._since: float | None = None  # loop.time() of the group's first event
        self._has_events = asyncio.Event()

    def __len__(self) -> int:
        return len(self._group.events)

    def add(self, batch: Batch, events: Sequence[TelemetryEvent]) -> list[Group]:
        """Add the events of ``batch``; the groups this filled."""
        full: list[Group] = []
        start = 0
        while start < len(events):
            group = self._group
            if not group.events:
                self._since = asyncio.get_running_loop().time()
                self._has_events.set()
            chunk = events[start : start + self.size - len(group.events)]
            group.events.extend(chunk)
            start += len(chunk)
            if not group.batches or group.batches[-1] is not batch:
                batch.hold()
                group.batches.append(batch)
            if len(group.events) >= self.size:
                cut = self.cut()
                assert cut is not None
                full.append(cut)
        return full

    def cut(self) -> Group | None:
        """The group being filled, whatever its size (None when empty)."""
        group = self._group
        if not group.events:
            return None
        self._group = Group()
        self._since = None
        self._has_events.clear()
        return group

    async def due(self) -> Group:
        """Wait until the group being filled is due; cut it."""
        loop = asyncio.get_running_loop()
        while True:
            if self._since is None:
                await self._has_events.wait()
                continue
            delay = self._since + self.interval - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            group = self.cut()
            if group is not None:
                return group
