"""Which entries the collector holds, and their acks.

An entry is *held* from the moment it is handed to the exporters until Redis has acked it:
first in flight (some exporter has not finished with it), then waiting for its ack. The
reader asks :meth:`Acks.holds` so that it never hands out, or counts as lost, an entry the
collector still holds. Acks go out in the background as soon as entries are done, while
the next batch is read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from itertools import islice
from typing import Final, Protocol

_ACK_CHUNK: Final = 5000


class Acker(Protocol):
    async def ack(self, ids: list[str]) -> int: ...


class Acks:
    def __init__(self, acker: Acker) -> None:
        self._acker = acker
        self._inflight: set[str] = set()
        self._to_ack: dict[str, None] = {}  # in order; a dict for membership
        self._task: asyncio.Task[None] | None = None
        self._settling = False  # settle() acks what is left itself

    def holds(self, entry_id: str) -> bool:
        return entry_id in self._inflight or entry_id in self._to_ack

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    @property
    def waiting(self) -> int:
        """Entries delivered and not acked yet."""
        return len(self._to_ack)

    def started(self, ids: Iterable[str]) -> None:
        """The exporters are being handed these entries."""
        self._inflight.update(ids)

    def done(self, ids: Iterable[str]) -> None:
        """Every exporter has finished with these entries (or they are gone): ack them,
        in the background."""
        ids = list(ids)
        self._inflight.difference_update(ids)
        self._to_ack.update(dict.fromkeys(ids))
        self._kick()

    def _kick(self) -> None:
        if self._task is None and self._to_ack and not self._settling:
            task = asyncio.create_task(self.flush(), name="ack")
            task.add_done_callback(self._flushed)
            self._task = task

    def _flushed(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            if self._task is task:
                self._task = None
            self._kick()
        # A failed ack stays in _task until check() raises it where reconnecting happens.

    def check(self) -> None:
        """Raise the error of a failed background ack (its IDs are kept and acked later),
        so that the read loop, whose handlers reconnect, sees it; then ack what is done."""
        task = self._task
        if task is not None and task.done():
            self._task = None
            task.result()
        self._kick()

    async def settle(self, timeout: float | None = None) -> None:
        """Wait for the background ack, then ack whatever is left (at shutdown)."""
        self._settling = True
        task, self._task = self._task, None
        if task is not None:
            # A failed background ack left its IDs in the list: the flush below retries.
            await asyncio.gather(asyncio.wait_for(task, timeout), return_exceptions=True)
        await asyncio.wait_for(self.flush(), timeout)

    async def flush(self) -> None:
        while self._to_ack:
            chunk = list(islice(self._to_ack, _ACK_CHUNK))
            await self._acker.ack(chunk)
            # One flush runs at a time and only it removes IDs; done() meanwhile appends new
            # ones (an ID already waiting keeps its place): the chunk is still the first
            # IDs, so what came after it is kept, without one pop per acked ID.
            to_ack = self._to_ack
            if len(to_ack) == len(chunk):
                to_ack.clear()
            elif len(to_ack) - len(chunk) < len(chunk):
                self._to_ack = dict.fromkeys(islice(to_ack, len(chunk), None))
            else:
                for entry_id in chunk:
                    to_ack.pop(entry_id, None)
