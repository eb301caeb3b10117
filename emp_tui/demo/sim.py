"""Simulated EMP services: an api-server, machines with workers, a webhook-service and a
monitor, each emitting through its own :class:`~emp_tui.telemetry.EventClient` into a real
stream, with jobs going through a real queue in Redis (:mod:`emp_tui.demo.queue`).

:class:`Simulation` builds the platform (the fleet is planned from the event rate), and runs
it on a discrete-event clock (:mod:`emp_tui.demo.scheduler`): every event is stamped with its
virtual time, and how virtual time relates to the wall clock is chosen per run (``speed=None``
as fast as possible, which is what tests and history want; ``1.0`` real time; ``10``). All
randomness comes from one generator seeded with ``SimConfig.seed``, so a seed gives the same
sequence of (service, eventType, jobId, data) whatever the speed, and through Redis restarts
(:mod:`emp_tui.demo.keeper`).

Faults are drawn per job (a failing connector, a stall, a job no worker can take, a worker
that dies mid-job), per machine start (a service that fails to start) and per minute (a burst
of traffic), at the rates in :class:`FaultRates`. Scenarios (:mod:`emp_tui.demo.scenarios`)
are planted into a built simulation, before it runs, through the ``plant_*`` methods here.
Everything that went wrong, planted or drawn, is in :attr:`Simulation.incidents`.

Layout: :mod:`~emp_tui.demo.model` (data) <- :mod:`~emp_tui.demo.world` (shared state) <-
:mod:`~emp_tui.demo.actors` (the services) <- this module <- :mod:`~emp_tui.demo.scenarios`
<- :mod:`~emp_tui.demo.ground_truth` and :mod:`~emp_tui.demo.cli`; imports only go that way.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException
from redis.retry import Retry

from emp_tui.config import redacted_url
from emp_tui.demo.actors import ApiServer, Fleet, Monitor, WebhookService
from emp_tui.demo.keeper import QueueKeeper, SimulationStopped
from emp_tui.demo.model import (
    BACKGROUND_RATE,
    CONNECTORS,
    EVENTS_PER_JOB,
    FAILURE_CLUSTER,
    JOBS_START_MS,
    MACHINE_SERVICES,
    SERVICES,
    FaultRates,
    Incident,
    Job,
    MachinePlan,
    Outage,
    Record,
    SimConfig,
    Worker,
)
from emp_tui.demo.queue import JobQueue
from emp_tui.demo.scheduler import Pacer, Scheduler
from emp_tui.demo.world import World
from emp_tui.telemetry import EventClient
from emp_tui.topology import client_for_url

__all__ = ["FaultRates", "SimConfig", "Simulation"]


class Simulation:
    """The simulated platform. Build it, plant a scenario if any
    (:func:`emp_tui.demo.scenarios.apply_scenario`), then call :meth:`run` (once or several
    times, e.g. a history as fast as possible and then live in real time); :meth:`close` at
    the end.

    ``patience_s`` is how long a run waits for a Redis that stopped answering before it
    gives up with an error; None (the default) waits until it is stopped."""

    def __init__(
        self,
        redis_url: str,
        stream: str,
        config: SimConfig | None = None,
        *,
        start_ms: int | None = None,
        record: bool = False,
        patience_s: float | None = None,
    ) -> None:
        self.config = config or SimConfig()
        self.redis_url = redis_url
        self.stream = stream
        self.start_ms = time.time_ns() // 1_000_000 if start_ms is None else start_ms
        # No retries inside redis-py: the keeper retries a whole call, after restoring the
        # queue, so that a call Redis half-applied before it went away is not applied twice.
        self.redis = client_for_url(
            redis_url, socket_timeout=10, socket_connect_timeout=5, retry=Retry(NoBackoff(), 0)
        )
        # Each run's queue has keys of its own, so that several simulations can share a Redis.
        namespace = self.config.namespace or f"emp:demo:{os.urandom(4).hex()}"
        self.queue = JobQueue(self.redis, namespace)
        self.keeper = QueueKeeper(self.queue, patience_s=patience_s)
        self.clients = {
            name: EventClient(
                name,
                redis_url=redis_url,
                stream=stream,
                max_buffer=100_000,
                enabled=True,
                level="debug",
                sample={},
                max_backoff=1.0,
            )
            for name in SERVICES
        }
        self.clock = Scheduler(self.start_ms)
        self.world = World(self.config, self.clock, self.keeper, self.clients, record=record)
        self.rng = self.world.rng
        self.job_rate = max(0.05, (self.config.rate - BACKGROUND_RATE) / EVENTS_PER_JOB)
        webhooks = WebhookService(self.world)
        self.fleet = Fleet(self.world, webhooks)
        self.api = ApiServer(self.world, self.fleet, self.job_rate)
        self.monitor = Monitor(self.world)

        self.error: str | None = None
        self.story_lines: list[str] = []  # one line per planted story, for the user
        self.story_jobs: dict[str, str] = {}  # story name -> the job planted for it
        self._planted: list[tuple[int, Job]] = []
        self._started = False
        self.machine_plans = self._plan_fleet()

    # -- what a run reports (read from any thread) ---------------------------------------

    @property
    def now(self) -> int:
        return self.clock.now

    @property
    def started(self) -> bool:
        return self._started

    @property
    def events(self) -> int:
        return self.world.events

    @property
    def jobs_created(self) -> int:
        return self.world.jobs_created

    @property
    def jobs_completed(self) -> int:
        return self.world.jobs_completed

    @property
    def jobs_failed(self) -> int:
        return self.world.jobs_failed

    @property
    def faults(self) -> dict[str, int]:
        return self.world.faults

    @property
    def event_types(self) -> Counter[str]:
        return self.world.event_types

    @property
    def record(self) -> list[Record] | None:
        return self.world.record

    @property
    def open_jobs(self) -> set[str]:
        return self.world.open_jobs

    @property
    def workers(self) -> dict[str, Worker]:
        return self.world.workers

    @property
    def incidents(self) -> list[Incident]:
        return self.world.incidents

    @property
    def redis_problem(self) -> str | None:
        """Why Redis is not answering, while the run waits for it; else None."""
        return self.keeper.problem

    @property
    def reconnects(self) -> int:
        """How many times the run got Redis back after losing it."""
        return self.keeper.reconnects

    # -- the fleet -----------------------------------------------------------------------

    def slots_needed(self, connectors: Iterable[str]) -> int:
        """Workers needed to keep up with the job rate for these connectors, with headroom."""
        names = set(connectors)
        busy = sum(
            self.job_rate * c.share * c.mean_ms / 1000.0 for c in CONNECTORS if c.name in names
        )
        return max(2, math.ceil(busy * 1.6))

    def _plan_fleet(self) -> list[MachinePlan]:
        rng = self.rng
        plans: list[MachinePlan] = []
        gpu_needed = self.slots_needed(c.name for c in CONNECTORS if c.machine_kind == "gpu")
        gpus = 0
        while gpus < gpu_needed or len([p for p in plans if p.kind == "gpu"]) < 2:
            count = rng.choice((2, 2, 4, 4, 8))
            plans.append(
                MachinePlan(
                    f"gpu-{len(plans) + 1:02d}",
                    "gpu",
                    count,
                    rng.randint(0, 6_000),
                    MACHINE_SERVICES["gpu"],
                )
            )
            gpus += count
        api_needed = self.slots_needed(c.name for c in CONNECTORS if c.machine_kind == "api")
        for n in range(max(2, math.ceil(api_needed / 4))):  # two, so one failure is not an outage
            plans.append(
                MachinePlan(
                    f"api-{n + 1:02d}",
                    "api",
                    0,
                    rng.randint(0, 6_000),
                    MACHINE_SERVICES["api"],
                )
            )
        for plan in plans:
            if rng.random() < self.config.faults.service_failure:
                plan.failing_service = rng.choice(plan.services)
        return plans

    # -- planting stories (before the first run) -----------------------------------------

    def plant_job(self, at_ms: int, connector: str, story: str, **faults: Any) -> Job:
        """Create a job with the given faults ``at_ms`` after the start (a story)."""
        self._before_start()
        job = self.api.new_job(connector=connector)
        for name, value in faults.items():
            setattr(job, name, value)
        job.story = story
        self._planted.append((at_ms, job))
        self.story_jobs.setdefault(story, job.id)
        return job

    def plant_outage(
        self, connector: str, start_ms: int, end_ms: int, error: str, story: str
    ) -> Incident:
        """Every job of ``connector`` fails between these times (from the start)."""
        self._before_start()
        start, end = self.start_ms + start_ms, self.start_ms + end_ms
        incident = self.world.incident(
            FAILURE_CLUSTER, story, start_ms=start, end_ms=end, connectors=[connector], error=error
        )
        self.world.outages.append(Outage(connector, start, end, error, incident))
        return incident

    def plant_burst(self, at_ms: int, duration_ms: int, factor: float, story: str) -> None:
        self._before_start()
        self.clock.at(self.start_ms + at_ms, self.api.start_burst, duration_ms, factor, story)

    def plant_wait(self, incident: Incident) -> None:
        """Follow a queue wait: jobs of its connectors join it until one of its machines has
        a worker ready for them (then it ends)."""
        self._before_start()
        self.world.incidents.append(incident)
        self.world.waits.append(incident)

    def _before_start(self) -> None:
        if self._started:
            raise RuntimeError("stories are planted before the simulation first runs")

    # -- running -------------------------------------------------------------------------

    def _start(self) -> None:
        self._started = True
        self.keeper.reset()
        spawn = self.clock.spawn
        spawn(self.api.serve())
        for plan in self.machine_plans:
            spawn(self.fleet.machine(plan), plan.boot_at_ms)
        spawn(self.monitor.run(), 5_000)
        spawn(self.api.arrivals(), JOBS_START_MS)
        spawn(self.api.websockets(), 2_000)
        spawn(self.api.stray_errors(), 4_000)
        if self.config.faults.burst > 0:
            spawn(self.api.bursts(), JOBS_START_MS)
        for at_ms, job in self._planted:
            self.clock.at(self.start_ms + at_ms, self.api.create_job, job)

    def run(
        self,
        *,
        until_ms: int | None = None,
        speed: float | None = None,
        stop: threading.Event | None = None,
    ) -> str:
        """Run the loop until ``until_ms`` (virtual), until ``stop`` is set, or until the
        ``max_jobs`` jobs are all done. Returns why it stopped: "until", "stopped", "jobs",
        or "error" (then :attr:`error` says what went wrong). While Redis does not answer,
        the run waits for it (see ``patience_s``)."""
        stop = stop or threading.Event()
        self.keeper.stop = stop
        self.world.instant = speed is None
        world = self.world
        try:
            if not self._started:
                self._start()
            why = self.clock.run(
                until_ms=until_ms,
                pacer=Pacer(speed),
                stop=stop,
                done=lambda: not world.creating and not world.open_jobs,
            )
        except SimulationStopped:
            return "stopped"
        except (redis.RedisError, OSError, RedisClusterException) as exc:
            self.error = f"Redis at {redacted_url(self.redis_url)}: {exc}"
            return "error"
        return "jobs" if why == "done" else why

    def flush(self, timeout: float = 10.0) -> bool:
        return all([client.flush(timeout) for client in self.clients.values()])

    def close(self, timeout: float = 5.0, *, clear_queue: bool = True) -> None:
        """Send what is buffered, stop the emitters, and remove the queue's keys."""
        for client in self.clients.values():
            client.close(timeout)
        try:
            if clear_queue:
                self.queue.clear()
        except (redis.RedisError, OSError, RedisClusterException) as exc:
            self.error = self.error or f"Redis at {redacted_url(self.redis_url)}: {exc}"
        finally:
            self.redis.close()

    @property
    def unsent(self) -> int:
        """Events that did not reach the stream: dropped, refused, or still buffered."""
        return sum(
            client.stats.dropped + client.stats.failed + client.stats.buffered
            for client in self.clients.values()
        )
