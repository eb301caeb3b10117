"""An exporter's sending queue: a bounded FIFO of items and a fixed number of consumers that
handle them concurrently (the OpenTelemetry Collector's ``sending_queue``: ``queue_size``
items, ``num_consumers`` consumers).

:meth:`SendingQueue.offer` never waits: it says whether there was room, so the exporter
decides what happens to an item that does not fit (spool it, or :meth:`put` it and make the
caller wait). A handler finishes its item itself (releases, spools, dead-letters it); an
item whose handler was cancelled at shutdown, and every item still queued then, is given
back by :meth:`close`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")

log = logging.getLogger("collector.queue")


class SendingQueue(Generic[T]):
    def __init__(
        self, name: str, *, size: int, consumers: int, handle: Callable[[T], Awaitable[None]]
    ) -> None:
        self.name = name
        self.size = size
        self.consumers = consumers
        self._handle = handle
        self._items: deque[T] = deque()
        self._current: list[T | None] = [None] * consumers
        self._has_items = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._consume(i), name=f"{self.name}-{i}")
            for i in range(self.consumers)
        ]

    def __len__(self) -> int:
        """Items waiting (not counting those being handled)."""
        return len(self._items)

    @property
    def active(self) -> int:
        """Items being handled right now."""
        return sum(item is not None for item in self._current)

    @property
    def full(self) -> bool:
        return len(self._items) >= self.size

    def offer(self, item: T) -> bool:
        """Queue ``item`` if there is room; never waits."""
        if self.full:
            return False
        self._items.append(item)
        self._idle.clear()
        self._has_items.set()
        if self.full:
            self._room.clear()
        return True

    def retry_later(self, item: T) -> None:
        """Put ``item`` back at the head of the queue, full or not (by at most one item per
        consumer): for an item a consumer could not finish and nothing else can take."""
        self._items.appendleft(item)
        self._idle.clear()
        self._has_items.set()
        if self.full:
            self._room.clear()

    async def put(self, item: T, stopping: asyncio.Event) -> bool:
        """Queue ``item``, waiting for room; False if ``stopping`` is set first."""
        while not self.offer(item):
            if stopping.is_set():
                return False
            room = asyncio.ensure_future(self._room.wait())
            stop = asyncio.ensure_future(stopping.wait())
            try:
                await asyncio.wait({room, stop}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                room.cancel()
                stop.cancel()
        return True

    async def room(self) -> None:
        """Until there is room for one more item."""
        await self._room.wait()

    async def _consume(self, index: int) -> None:
        items = self._items
        while True:
            while not items:
                self._has_items.clear()
                if self.active == 0:
                    self._idle.set()
                await self._has_items.wait()
            item = items.popleft()
            self._room.set()
            self._current[index] = item
            try:
                await self._handle(item)
            except asyncio.CancelledError:
                raise  # the item stays in _current: close() gives it back
            except Exception:  # logged with its traceback; one bad item must not stop the rest
                log.exception(
                    "%s: an item could not be handled; its entries stay unacknowledged", self.name
                )
            self._current[index] = None
            if not items and self.active == 0:
                self._idle.set()

    async def close(self, deadline: float) -> list[T]:
        """Let the consumers work until the queue is empty or ``deadline`` (a loop.time());
        then stop them. Returns the items not handled: still queued, or cancelled half-way."""
        loop = asyncio.get_running_loop()
        with contextlib.suppress(TimeoutError):  # past the deadline: what is left is given back
            await asyncio.wait_for(self._idle.wait(), max(0.0, deadline - loop.time()))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        left = [item for item in self._current if item is not None]
        left.extend(self._items)
        self._items.clear()
        self._current = [None] * self.consumers
        return left
