"""Where the collector delivers events: exporters, in the OpenTelemetry Collector's shape.

Each exporter has its own bounded queue (:mod:`collector.exporters.queue`), its own retry
(:mod:`collector.exporters.retry`) and, where it makes sense, its own spool: the file
exporter writes batches in order and retries a failed write until it succeeds (its queue
full, reading pauses: a full disk cannot be spooled to); the OTLP exporter batches events
into requests, sends several at a time, spools what the backend cannot take and what does
not fit its queue, and dead-letters what the backend rejects.

An exporter is *offered* a :class:`~collector.batch.Batch`. It takes from the batch what it
needs and holds the batch until it has finished with it (written, exported, spooled or
dead-lettered); the batch is acked once every exporter has released it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from collector.batch import Batch


class Outcome(Enum):
    OK = "ok"
    REJECTED = "rejected"  # for good: dead letters
    UNAVAILABLE = "unavailable"  # for now: retry, then spool


@dataclass(frozen=True, slots=True)
class Result:
    """How one attempt went. ``wait``: seconds the peer asked us to wait (Retry-After);
    ``answer``: what the peer answered, when it did."""

    outcome: Outcome
    detail: str = ""
    wait: float | None = None
    answer: Any = None


OK = Result(Outcome.OK)


class Exporter(Protocol):
    name: str
    error: str | None  # set when the exporter broke for good (the collector then stops)

    async def start(self) -> None: ...

    async def offer(self, batch: Batch) -> bool:
        """Take ``batch`` (holding it until finished with it), waiting for room in the
        queue if needed. False when the collector stopped before there was room: the batch
        was not taken, and its entries stay pending."""
        ...

    async def close(self, deadline: float) -> None:
        """Deliver (or spool) what was taken, by ``deadline`` (a loop.time())."""
        ...
