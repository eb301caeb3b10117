"""What every simulated service shares: the clock, the one random generator, the queue, an
emitter per service, the fleet's workers, and the counters and incidents a run reports.

The services themselves (:mod:`emp_tui.demo.actors`) hold a :class:`World` and act on it.
Counters are plain ints and fixed-key dicts, so another thread can read them while the loop
runs.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from typing import Any

from emp_tui.demo.keeper import QueueKeeper
from emp_tui.demo.model import (
    FaultRates,
    Incident,
    Outage,
    Record,
    SimConfig,
    Worker,
)
from emp_tui.demo.scheduler import Proc, Scheduler
from emp_tui.telemetry import EventClient


class World:
    def __init__(
        self,
        config: SimConfig,
        clock: Scheduler,
        queue: QueueKeeper,
        clients: dict[str, EventClient],
        *,
        record: bool = False,
    ) -> None:
        self.config = config
        self.clock = clock
        self.rng = random.Random(config.seed)
        self.queue = queue
        self.clients = clients
        self.record: list[Record] | None = [] if record else None
        # As fast as possible (set per run): the emitters are waited for when they fall behind.
        self.instant = True

        self.events = 0
        self.jobs_created = 0
        self.jobs_completed = 0
        self.jobs_failed = 0
        self.faults: dict[str, int] = dict.fromkeys(FaultRates.names(), 0)
        self.event_types: Counter[str] = Counter()
        self.incidents: list[Incident] = []

        self.open_jobs: set[str] = set()
        self.creating = True
        self.workers: dict[str, Worker] = {}
        self.idle: dict[str, Worker] = {}
        self.outages: list[Outage] = []
        # Queue waits still going: jobs of their connector join them until capacity comes.
        self.waits: list[Incident] = []

    @property
    def now(self) -> int:
        return self.clock.now

    def spawn(self, proc: Proc, delay_ms: float = 0) -> None:
        self.clock.spawn(proc, delay_ms)

    def after(self, delay_ms: float, fn: Callable[..., None], *args: Any) -> None:
        self.clock.after(delay_ms, fn, *args)

    def ms(self, low: float, high: float) -> int:
        """A random duration between ``low`` and ``high`` ms."""
        return int(self.rng.uniform(low, high))

    def fault(self, kind: str) -> None:
        self.faults[kind] += 1

    def incident(self, kind: str, story: str | None, **fields: Any) -> Incident:
        """Record an incident that starts now (unless ``start_ms`` says otherwise)."""
        fields.setdefault("start_ms", self.now)
        found = Incident(kind, story, **fields)
        self.incidents.append(found)
        return found

    def emit(
        self,
        service: str,
        event_type: str,
        data: dict[str, Any] | None = None,
        *,
        job_id: str | None = None,
        worker_id: str | None = None,
        machine_id: str | None = None,
        user_id: str | None = None,
        level: str | None = None,
    ) -> None:
        self.clients[service].event(
            event_type,
            data,
            job_id=job_id,
            worker_id=worker_id,
            machine_id=machine_id,
            user_id=user_id,
            level=level,
            timestamp=self.now,
        )
        self.events += 1
        self.event_types[event_type] += 1
        if self.record is not None:
            self.record.append((service, event_type, job_id, data or {}))
        if self.instant and self.events % 2_000 == 0:
            # As fast as possible outruns the emitters' flushers: let them catch up rather
            # than fill their buffers.
            for client in self.clients.values():
                if client.stats.buffered > 20_000:
                    client.flush(30.0)
