"""The simulation's hold on its job queue in Redis, across Redis restarts.

:class:`QueueKeeper` makes the queue calls the simulated services need and keeps its own
account of every job that is waiting or claimed. When Redis stops answering (restarted,
unreachable, loading its data), a call waits with backoff until Redis answers again, writes
the queue back from that account (:meth:`JobQueue.restore`: a Redis that came back empty, or
from an older snapshot, or that applied half of the failed call, ends up holding exactly what
the simulation expects), and then makes the call again. The simulation's clock stands still
meanwhile, and no random draw is repeated, so a run with a Redis restart in it emits the same
events as one without. Its emitters buffer what they are given meanwhile and send it once
Redis is back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Final, TypeVar

from emp_tui.demo.model import Job
from emp_tui.demo.queue import ClaimedJob, JobQueue, QueueStats, StoredJob
from emp_tui.topology import transient_errors

# What a Redis that went away raises (BusyLoadingError, "still loading", is a ConnectionError),
# and a cluster whose replica is taking over a failed master.
REDIS_GONE: Final = transient_errors()
_FIRST_WAIT_S: Final = 0.05
_MAX_WAIT_S: Final = 2.0

T = TypeVar("T")


class SimulationStopped(Exception):
    """The run was asked to stop while it waited for Redis."""


class QueueKeeper:
    """The queue calls of the simulated services, made through Redis restarts.

    ``patience_s`` is how long to wait for Redis before giving up (the call then raises what
    Redis raised); None waits until :attr:`stop` is set (then :class:`SimulationStopped`).
    :attr:`problem` says why Redis is not answering, while it is not; it and
    :attr:`reconnects` can be read from any thread."""

    def __init__(self, queue: JobQueue, *, patience_s: float | None = None) -> None:
        self.queue = queue
        self.patience_s = patience_s
        self.stop = threading.Event()
        self.problem: str | None = None
        self.reconnects = 0
        # Jobs created and not yet claimed (with the faults planted in them), and jobs
        # claimed and not finished: what the queue in Redis must hold.
        self.waiting: dict[str, Job] = {}
        self.claimed: dict[str, StoredJob] = {}

    # -- the calls -----------------------------------------------------------------------

    def reset(self) -> None:
        """Start from an empty queue."""
        self._call(self.queue.clear)
        self.waiting.clear()
        self.claimed.clear()

    def create(self, job: Job) -> int:
        """Enqueue a job; its position. Raises redis.ResponseError when the queue refuses it."""
        position = self._call(
            lambda: self.queue.create(
                job.id,
                connector=job.connector,
                priority=job.priority,
                user_id=job.user_id,
                created_ms=job.created_ms,
                payload_bytes=job.payload_bytes,
            )
        )
        self.waiting[job.id] = job
        return position

    def claim(
        self, worker_id: str, connectors: list[str], now_ms: int
    ) -> tuple[ClaimedJob, Job | None] | None:
        """The job this worker takes, and the simulation's own record of it (None for a job
        someone else put into the queue); None when there is nothing it can run."""
        claimed = self._call(lambda: self.queue.claim(worker_id, connectors, now_ms))
        if claimed is None:
            return None
        self.claimed[claimed.job_id] = StoredJob(
            claimed.job_id,
            claimed.connector,
            claimed.priority,
            claimed.user_id,
            claimed.created_ms,
            worker_id=worker_id,
            claimed_ms=now_ms,
            attempts=claimed.attempt,
        )
        return claimed, self.waiting.pop(claimed.job_id, None)

    def progress(self, job_id: str, progress: int, now_ms: int) -> None:
        self._call(lambda: self.queue.progress(job_id, progress, now_ms))
        stored = self.claimed.get(job_id)
        if stored is not None:
            stored.progress, stored.progress_ms = progress, now_ms

    def finish(self, job_id: str, status: str, now_ms: int) -> None:
        self._call(lambda: self.queue.finish(job_id, status, now_ms))
        self.claimed.pop(job_id, None)

    def stats(self) -> QueueStats:
        return self._call(self.queue.stats)

    def stalled(self, now_ms: int, quiet_ms: int) -> list[tuple[str, int]]:
        return self._call(lambda: self.queue.stalled(now_ms, quiet_ms))

    # -- through a restart ---------------------------------------------------------------

    def stored(self) -> list[StoredJob]:
        """What the queue in Redis must hold: the waiting jobs, then the claimed ones."""
        waiting = [
            StoredJob(job.id, job.connector, job.priority, job.user_id, job.created_ms)
            for job in self.waiting.values()
        ]
        return waiting + list(self.claimed.values())

    def _call(self, call: Callable[[], T]) -> T:
        try:
            return call()
        except REDIS_GONE as exc:
            error: BaseException = exc
        since = time.monotonic()
        wait = _FIRST_WAIT_S
        while True:
            self.problem = str(error) or type(error).__name__
            if self.patience_s is not None and time.monotonic() - since > self.patience_s:
                self.problem = None
                raise error
            if self.stop.wait(wait):
                raise SimulationStopped
            wait = min(_MAX_WAIT_S, wait * 2)
            try:
                self.queue.restore(self.stored())
                result = call()
            except REDIS_GONE as exc:
                error = exc
                continue
            self.problem = None
            self.reconnects += 1
            return result
