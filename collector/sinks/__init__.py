"""Where the collector delivers events. A sink *takes* a batch: the file sink by writing it,
the OTLP sink by exporting, spooling or dead-lettering it. A batch is acked in Redis only
once every enabled sink has taken it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from emp_tui.events import TelemetryEvent


class Batch:
    """Events read together, and the holds on them: the entries are acked when the last
    hold is released. The reader holds a batch while it hands it to the sinks; a sink that
    keeps it for later (OTLP batching) holds it until it has taken it."""

    __slots__ = ("_holds", "_on_done", "events", "ids")

    def __init__(
        self, ids: list[str], events: list[TelemetryEvent], on_done: Callable[[Batch], None]
    ) -> None:
        self.ids = ids
        self.events = events
        self._on_done = on_done
        self._holds = 1

    def hold(self) -> None:
        self._holds += 1

    def release(self) -> None:
        self._holds -= 1
        if self._holds == 0:
            self._on_done(self)

    @property
    def done(self) -> bool:
        return self._holds == 0


class SinkError(Exception):
    """A sink could not take a batch now (a full disk, say); the batch is retried."""


class Sink(Protocol):
    name: str
    error: str | None  # set when the sink broke for good (the collector then stops)

    async def start(self) -> None: ...

    async def take(self, batch: Batch) -> None:
        """Take ``batch`` or raise SinkError; hold it when taking it finishes later."""
        ...

    async def close(self, deadline: float) -> None:
        """Deliver (or spool) what was taken, by ``deadline`` (a loop.time())."""
        ...
