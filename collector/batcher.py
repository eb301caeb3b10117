"""The batcher: groups the events of successive batches into groups, one OTLP request each.

A group is sent once it holds ``size`` events and a consumer of the sending queue is free
to take it; while every consumer is busy (a slow or failing backend), it keeps growing up to
``max_size`` events, so that each request in flight carries more. A partial group is due
``interval`` seconds after its first event.

A group holds every batch it has events of, so a batch is acked only once each group with
its events has been finished with.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from collector.batch import Batch
from emp_tui.events import TelemetryEvent


@dataclass(slots=True)
class Group:
    events: list[TelemetryEvent] = field(default_factory=list)
    batches: list[Batch] = field(default_factory=list)


def _always() -> bool:
    return True


class Batcher:
    def __init__(
        self,
        size: int,
        interval: float,
        *,
        max_size: int | None = None,
        ready: Callable[[], bool] = _always,
    ) -> None:
        self.size = size
        self.max_size = max(size, max_size or size)
        self.interval = interval
        self.ready = ready  # whether a group of `size` would be sent at once
        self._group = Group()
        self._since: float | None = None  # loop.time() of the group's first event
        self._wake = asyncio.Event()

    def __len__(self) -> int:
        return len(self._group.events)

    def add(self, batch: Batch, events: Sequence[TelemetryEvent]) -> list[Group]:
        """Add the events of ``batch``; the groups this completed."""
        full: list[Group] = []
        start = 0
        while start < len(events):
            group = self._group
            if not group.events:
                self._since = asyncio.get_running_loop().time()
                self._wake.set()
            limit = self.size if self.ready() else self.max_size
            chunk = events[start : start + max(1, limit - len(group.events))]
            group.events.extend(chunk)
            start += len(chunk)
            if not group.batches or group.batches[-1] is not batch:
                batch.hold()
                group.batches.append(batch)
            if len(group.events) >= limit:
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
        return group

    def poke(self) -> None:
        """A consumer became free: a group of ``size`` or more may go now."""
        if len(self._group.events) >= self.size:
            self._wake.set()

    async def due(self) -> Group:
        """Wait until the group being filled is due (its interval is over, or it is big
        enough and a consumer is free); cut it."""
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            since = self._since
            if since is None:
                await self._wake.wait()
                continue
            if len(self._group.events) >= self.size and self.ready():
                break
            delay = since + self.interval - loop.time()
            if delay <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
        group = self.cut()
        assert group is not None
        return group
