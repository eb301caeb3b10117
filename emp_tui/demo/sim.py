"""Simulated EMP services: an api-server, machines with workers, a webhook-service and a
monitor, each emitting through its own :class:`~emp_tui.telemetry.EventClient` into a real
stream, with jobs going through a real queue in Redis (:mod:`emp_tui.demo.queue`).

The simulation is a discrete-event loop on one thread. Every step of every service is
scheduled at a virtual time in epoch milliseconds, and every event is stamped with that time.
How virtual time relates to the wall clock is the caller's choice: ``speed=None`` runs the
steps as fast as they can be computed (a 30 s stall takes no time at all, which is what tests
and history want), ``speed=1.0`` runs them in real time, ``speed=10`` ten times faster. All
randomness comes from one generator seeded with ``SimConfig.seed``, so a seed gives the same
sequence of (service, eventType, jobId, data) whatever the speed.

Faults are drawn per job (a failing connector, a stall, a job no worker can take, a worker
that dies mid-job), per machine start (a service that fails to start) and per minute (a burst
of traffic), at the rates in :class:`FaultRates`. Scenarios (:mod:`emp_tui.demo.scenarios`)
plant one deterministic story on top of fault-free traffic.
"""

from __future__ import annotations

import heapq
import math
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field, fields, replace
from typing import Any, Final

import redis

from emp_tui.config import redacted_url
from emp_tui.demo.queue import PRIORITIES, JobQueue
from emp_tui.telemetry import EventClient

API: Final = "api-server"
WORKER: Final = "worker"
MACHINE: Final = "machine"
WEBHOOK: Final = "webhook-service"
MONITOR: Final = "monitor"
SERVICES: Final = (API, WORKER, MACHINE, WEBHOOK, MONITOR)

# Events one ordinary job produces, on average: created, executing, completed, queued,
# claimed, processing_started, 3-4 progress updates, processing_completed, job.completed and
# (most of the time) webhook.sent. Used to turn an events/s target into a job rate.
EVENTS_PER_JOB: Final = 12.5
# Events/s of everything that is not a job: health checks, websockets, stray API errors.
BACKGROUND_RATE: Final = 0.6
JOBS_START_MS: Final = 12_000  # the API takes jobs once the first machines are up
MONITOR_STALL_MS: Final = 20_000  # a claimed job this long without progress is "stalled"

# A recorded event: (service, eventType, jobId, data).
Record = tuple[str, str, str | None, dict[str, Any]]
Proc = Generator[int, None, None]


@dataclass(frozen=True, slots=True)
class Connector:
    name: str
    share: float  # of all jobs
    mean_ms: int  # typical processing time
    machine_kind: str  # "gpu" or "api"
    service: str  # the PM2 service that hosts it
    result: str
    errors: tuple[str, ...]


CONNECTORS: Final = (
    Connector(
        "comfyui",
        0.45,
        9_000,
        "gpu",
        "comfyui",
        "image",
        (
            "CUDA out of memory. Tried to allocate 2.00 GiB",
            "ComfyUI websocket closed unexpectedly (code 1006)",
            "KSampler: expected scalar type Half but found Float",
        ),
    ),
    Connector(
        "a1111",
        0.15,
        6_000,
        "gpu",
        "a1111",
        "image",
        ("a1111 API returned HTTP 500: NansException in Unet", "model checkpoint not loaded"),
    ),
    Connector(
        "ollama",
        0.10,
        4_000,
        "gpu",
        "ollama",
        "text",
        ("ollama: model 'llama3:70b' not found", "context length exceeded (8192 tokens)"),
    ),
    Connector(
        "openai",
        0.30,
        2_500,
        "api",
        "openai-proxy",
        "image",
        (
            "upstream 503 Service Unavailable from api.openai.com",
            "429 Too Many Requests: rate limit reached for dall-e-3",
            "request timed out after 30000 ms",
        ),
    ),
)
CONNECTOR_BY_NAME: Final = {c.name: c for c in CONNECTORS}
UNSERVED_CONNECTOR: Final = "flux-pro"  # what a job no worker can take asks for
MACHINE_SERVICES: Final = {
    "gpu": tuple(c.service for c in CONNECTORS if c.machine_kind == "gpu"),
    "api": tuple(c.service for c in CONNECTORS if c.machine_kind == "api"),
}
SERVICE_CONNECTOR: Final = {c.service: c.name for c in CONNECTORS}
SERVICE_ERRORS: Final = (
    "exited with code 1: torch.cuda.is_available() is False",
    "Error: Cannot find module '/workspace/ComfyUI/main.py'",
    "port 8188 already in use",
    "exited with code 137 (out of memory) during model load",
)


@dataclass(frozen=True, slots=True)
class FaultRates:
    """How often each fault happens: per job, per machine start, or per minute (burst)."""

    connector_failure: float = 0.03
    stall: float = 0.01
    unclaimed: float = 0.002
    worker_crash: float = 0.001
    service_failure: float = 0.1
    burst: float = 0.1
    bad_request: float = 0.004

    @classmethod
    def none(cls) -> FaultRates:
        return cls(**{f.name: 0.0 for f in fields(cls)})

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def updated(self, spec: str) -> FaultRates:
        """These rates with ``"stall=0.1,burst=2"`` applied. Raises ValueError naming the
        bad part."""
        changes: dict[str, float] = {}
        for part in spec.split(","):
            part = part.strip()
            if not part:
                continue
            name, sep, text = part.partition("=")
            name = name.strip().replace("-", "_")
            if name not in self.names():
                raise ValueError(f"unknown fault {name!r} (known: {', '.join(self.names())})")
            try:
                rate = float(text)
            except ValueError:
                rate = -1.0
            if not sep or not math.isfinite(rate) or rate < 0:
                raise ValueError(f"bad fault rate {part!r}: expected NAME=RATE, RATE >= 0")
            changes[name] = rate
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class SimConfig:
    seed: int = 1
    rate: float = 40.0  # target events per second of virtual time
    faults: FaultRates = field(default_factory=FaultRates)
    scenario: str | None = None
    max_jobs: int | None = None  # stop creating jobs after this many
    namespace: str | None = None  # the queue's keys; default emp:demo:<a new run ID>
    story_at_ms: int = 20_000  # when a scenario's story starts, from the start of the run


@dataclass(eq=False, slots=True)
class Job:
    id: str
    connector: str
    priority: str
    user_id: str
    created_ms: int
    payload_bytes: int
    webhook: bool
    fail: str | None = None  # the connector error this job will end with
    stall: tuple[int, int] | None = None  # (before progress step n, gap in ms)
    crash_at: int | None = None  # the worker dies before progress step n
    story: str | None = None


@dataclass(eq=False, slots=True)
class MachinePlan:
    id: str
    kind: str
    gpus: int
    boot_at_ms: int
    services: tuple[str, ...]
    failing_service: str | None = None
    slow_ms: int = 0  # extra time the machine's first service takes to start


@dataclass(eq=False, slots=True)
class Worker:
    id: str
    machine_id: str
    connectors: list[str]
    state: str = "starting"  # starting | idle | busy | dead
    poll_token: int = 0
    restarts: int = 0


@dataclass(frozen=True, slots=True)
class Outage:
    connector: str
    start_ms: int
    end_ms: int
    error: str


class Pacer:
    """Maps virtual time onto the wall clock: ``speed=None`` never waits."""

    def __init__(self, speed: float | None) -> None:
        self.speed = speed
        self._anchor_v = 0
        self._anchor_wall = 0.0

    def start(self, virtual_ms: int) -> None:
        self._anchor_v = virtual_ms
        self._anchor_wall = time.monotonic()

    def wait_until(self, virtual_ms: int, stop: threading.Event) -> bool:
        """Wait until ``virtual_ms`` is due; False when ``stop`` was set first."""
        if self.speed is None:
            return not stop.is_set()
        due = self._anchor_wall + (virtual_ms - self._anchor_v) / 1000.0 / self.speed
        delay = due - time.monotonic()
        if delay > 0:
            return not stop.wait(delay)
        return not stop.is_set()


class Simulation:
    """The simulated platform. Build it, then call :meth:`run` (once or several times, e.g.
    a history as fast as possible and then live in real time); :meth:`close` at the end."""

    def __init__(
        self,
        redis_url: str,
        stream: str,
        config: SimConfig | None = None,
        *,
        start_ms: int | None = None,
        record: bool = False,
    ) -> None:
        self.config = config or SimConfig()
        self.redis_url = redis_url
        self.stream = stream
        self.rng = random.Random(self.config.seed)
        self.start_ms = time.time_ns() // 1_000_000 if start_ms is None else start_ms
        self.now = self.start_ms
        self.redis = redis.Redis.from_url(redis_url, socket_timeout=10, socket_connect_timeout=5)
        # Each run's queue has keys of its own, so that several simulations can share a Redis.
        namespace = self.config.namespace or f"emp:demo:{os.urandom(4).hex()}"
        self.queue = JobQueue(self.redis, namespace)
        self.clients = {
            name: EventClient(
                name,
                redis_url=redis_url,
                stream=stream,
                max_buffer=100_000,
                enabled=True,
                level="debug",
                sample={},
            )
            for name in SERVICES
        }
        self.record: list[Record] | None = [] if record else None

        self._heap: list[tuple[int, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = 0
        self._instant = True

        # What the summary and the tests read. Plain ints and fixed-key dicts only, so that
        # another thread can read them while the loop runs.
        self.events = 0
        self.jobs_created = 0
        self.jobs_completed = 0
        self.jobs_failed = 0
        self.faults: dict[str, int] = dict.fromkeys(FaultRates.names(), 0)
        self.event_types: Counter[str] = Counter()
        self.stories: list[str] = []  # one line per planted story, for the user
        self.story_jobs: dict[str, str] = {}  # story name -> job ID
        self.error: str | None = None

        self.open_jobs: set[str] = set()
        self.workers: dict[str, Worker] = {}
        self._idle: dict[str, Worker] = {}
        self._job_ids: set[str] = set()
        self._outages: list[Outage] = []
        self._burst_until = 0
        self._burst_factor = 1.0
        self._planted: list[tuple[int, Job]] = []
        # Jobs created here, by ID, until a worker claims them: the worker learns a job's
        # planted faults from here; everything else it knows comes from the queue in Redis.
        self._pending: dict[str, Job] = {}
        self._started = False
        self._creating = True

        self.job_rate = max(0.05, (self.config.rate - BACKGROUND_RATE) / EVENTS_PER_JOB)
        self.machine_plans = self._plan_fleet()
        if self.config.scenario:
            from emp_tui.demo.scenarios import apply_scenario

            apply_scenario(self, self.config.scenario)

    # -- the fleet -----------------------------------------------------------------------

    def slots_needed(self, connectors: Iterable[str]) -> int:
        """Workers needed to keep up with the job rate for these connectors, with headroom."""
        names = set(connectors)
        busy = sum(
            self.job_rate * c.share * c.mean_ms / 1000.0 for c in CONNECTORS if c.name in names
        )
        return max(2, math.ceil(busy * 1.6))

    def _plan_fleet(self) -> list[MachinePlan]:
        plans: list[MachinePlan] = []
        gpu_needed = self.slots_needed(c.name for c in CONNECTORS if c.machine_kind == "gpu")
        gpus = 0
        while gpus < gpu_needed or len([p for p in plans if p.kind == "gpu"]) < 2:
            count = self.rng.choice((2, 2, 4, 4, 8))
            plans.append(
                MachinePlan(
                    f"gpu-{len(plans) + 1:02d}",
                    "gpu",
                    count,
                    self.rng.randint(0, 6_000),
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
                    self.rng.randint(0, 6_000),
                    MACHINE_SERVICES["api"],
                )
            )
        for plan in plans:
            if self.rng.random() < self.config.faults.service_failure:
                plan.failing_service = self.rng.choice(plan.services)
        return plans

    # -- scheduling ----------------------------------------------------------------------

    def at(self, t_ms: int, fn: Callable[..., None], *args: Any) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (max(t_ms, self.now), self._seq, fn, args))

    def after(self, delay_ms: float, fn: Callable[..., None], *args: Any) -> None:
        self.at(self.now + int(delay_ms), fn, *args)

    def spawn(self, proc: Proc, delay_ms: float = 0) -> None:
        """Run a generator as a process: each value it yields is a delay in ms."""
        self.after(delay_ms, self._step, proc)

    def _step(self, proc: Proc) -> None:
        try:
            delay = next(proc)
        except StopIteration:
            return
        self.after(max(0, delay), self._step, proc)

    def run(
        self,
        *,
        until_ms: int | None = None,
        speed: float | None = None,
        stop: threading.Event | None = None,
    ) -> str:
        """Run the loop until ``until_ms`` (virtual), until ``stop`` is set, or until the
        ``max_jobs`` jobs are all done. Returns why it stopped: "until", "stopped", "jobs",
        or "error" (then :attr:`error` says what went wrong)."""
        if not self._started:
            self._start()
        stop = stop or threading.Event()
        pacer = Pacer(speed)
        pacer.start(self.now)
        self._instant = speed is None
        heap = self._heap
        try:
            while heap:
                t = heap[0][0]
                if until_ms is not None and t > until_ms:
                    self.now = max(self.now, until_ms)
                    return "until"
                if not pacer.wait_until(t, stop):
                    return "stopped"
                _, _, fn, args = heapq.heappop(heap)
                self.now = t
                fn(*args)
                if not self._creating and not self.open_jobs:
                    return "jobs"
            return "until"
        except (redis.RedisError, OSError) as exc:
            self.error = f"Redis at {redacted_url(self.redis_url)}: {exc}"
            return "error"

    def flush(self, timeout: float = 10.0) -> bool:
        return all([client.flush(timeout) for client in self.clients.values()])

    def close(self, timeout: float = 5.0, *, clear_queue: bool = True) -> None:
        """Send what is buffered, stop the emitters, and remove the queue's keys."""
        for client in self.clients.values():
            client.close(timeout)
        try:
            if clear_queue:
                self.queue.clear()
        except (redis.RedisError, OSError) as exc:
            self.error = self.error or f"Redis at {redacted_url(self.redis_url)}: {exc}"
        finally:
            self.redis.close()

    @property
    def dropped(self) -> int:
        return sum(client.stats.dropped + client.stats.failed for client in self.clients.values())

    # -- emitting ------------------------------------------------------------------------

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
        if self._instant and self.events % 2_000 == 0:
            # As fast as possible outruns the emitters' flushers: let them catch up rather
            # than fill their buffers.
            for client in self.clients.values():
                if client.stats.buffered > 20_000:
                    client.flush(30.0)

    def _fault(self, kind: str) -> None:
        self.faults[kind] += 1

    def _ms(self, low: float, high: float) -> int:
        return int(self.rng.uniform(low, high))

    # -- start-up ------------------------------------------------------------------------

    def _start(self) -> None:
        self._started = True
        self.queue.clear()
        self.spawn(self._api_server())
        for plan in self.machine_plans:
            self.spawn(self._machine(plan), plan.boot_at_ms)
        self.spawn(self._monitor(), 5_000)
        self.spawn(self._arrivals(), JOBS_START_MS)
        self.spawn(self._websockets(), 2_000)
        self.spawn(self._stray_errors(), 4_000)
        if self.config.faults.burst > 0:
            self.spawn(self._bursts(), JOBS_START_MS)
        for at_ms, job in self._planted:
            self.at(self.start_ms + at_ms, self._create_job, job)

    # -- scenario hooks ------------------------------------------------------------------

    def plant_job(self, at_ms: int, connector: str, story: str, **faults: Any) -> Job:
        """Create a job with the given faults ``at_ms`` after the start (a story)."""
        job = self._new_job(connector=connector)
        for name, value in faults.items():
            setattr(job, name, value)
        job.story = story
        self._planted.append((at_ms, job))
        self.story_jobs.setdefault(story, job.id)
        return job

    def plant_outage(self, connector: str, start_ms: int, end_ms: int, error: str) -> None:
        """Every job of ``connector`` fails between these times (from the start)."""
        self._outages.append(
            Outage(connector, self.start_ms + start_ms, self.start_ms + end_ms, error)
        )

    def plant_burst(self, at_ms: int, duration_ms: int, factor: float) -> None:
        self.at(self.start_ms + at_ms, self._start_burst, duration_ms, factor)

    def _start_burst(self, duration_ms: int, factor: float) -> None:
        self._fault("burst")
        self._burst_until = self.now + duration_ms
        self._burst_factor = factor

    # -- api-server ----------------------------------------------------------------------

    def _api_server(self) -> Proc:
        self.emit(API, "server.starting", {"port": 3331, "nodeVersion": "v20.11.1"})
        yield self._ms(400, 1_200)
        self.emit(
            API,
            "server.ready",
            {"port": 3331, "pid": self.rng.randint(200, 9_000), "version": "1.8.2"},
        )
        while True:
            yield self._ms(14_000, 16_000)
            self.emit(
                API,
                "health_check.performed",
                {"status": "healthy", "redis": "connected", "responseTimeMs": self._ms(2, 18)},
            )

    def _new_job(self, connector: str | None = None) -> Job:
        if connector is None:
            pick = self.rng.random()
            for c in CONNECTORS:
                pick -= c.share
                if pick < 0:
                    connector = c.name
                    break
            else:
                connector = CONNECTORS[-1].name
        while True:
            job_id = f"job_{self.rng.getrandbits(48):012x}"
            if job_id not in self._job_ids:
                self._job_ids.add(job_id)
                break
        priority = self.rng.choices(PRIORITIES, weights=(10, 75, 15))[0]
        return Job(
            id=job_id,
            connector=connector,
            priority=priority,
            user_id=f"user_{self.rng.randint(1, 40):03d}",
            created_ms=0,
            payload_bytes=int(self.rng.lognormvariate(7.5, 0.6)),
            webhook=self.rng.random() < 0.7,
        )

    def _arrivals(self) -> Proc:
        faults = self.config.faults
        while self._creating:
            if self.config.max_jobs is not None and self.jobs_created >= self.config.max_jobs:
                self._creating = False
                return
            job = self._new_job()
            r = self.rng.random
            if r() < faults.bad_request:
                job.payload_bytes = self.rng.randint(70_000, 400_000)
            if r() < faults.unclaimed:
                job.connector = UNSERVED_CONNECTOR
            elif r() < faults.connector_failure:
                job.fail = self.rng.choice(CONNECTOR_BY_NAME[job.connector].errors)
            if job.connector != UNSERVED_CONNECTOR and r() < faults.stall:
                job.stall = (self.rng.randint(1, 3), self.rng.randint(10_000, 60_000))
            if job.connector != UNSERVED_CONNECTOR and r() < faults.worker_crash:
                job.crash_at = self.rng.randint(1, 3)
            self._create_job(job)
            factor = self._burst_factor if self.now < self._burst_until else 1.0
            yield max(1, int(self.rng.expovariate(self.job_rate * factor / 1000.0)))

    def _create_job(self, job: Job) -> None:
        job.created_ms = self.now
        self.jobs_created += 1
        self.open_jobs.add(job.id)
        self.emit(
            API,
            "job.created",
            {"jobType": job.connector, "priority": job.priority, "userId": job.user_id},
            job_id=job.id,
            user_id=job.user_id,
        )
        self.spawn(self._enqueue(job), self._ms(1, 4))

    def _enqueue(self, job: Job) -> Proc:
        args = 9
        self.emit(
            API,
            "redis_function.executing",
            {"functionName": "createJob", "argCount": args},
            job_id=job.id,
        )
        took = self._ms(1, 6)
        yield took
        try:
            position = self.queue.create(
                job.id,
                connector=job.connector,
                priority=job.priority,
                user_id=job.user_id,
                created_ms=job.created_ms,
                payload_bytes=job.payload_bytes,
            )
        except redis.ResponseError as exc:
            error = str(exc)
            self._fault("bad_request")
            self.emit(
                API,
                "redis_function.failed",
                {"functionName": "createJob", "error": error, "durationMs": took},
                job_id=job.id,
            )
            yield 1
            self.emit(API, "job.creation_failed", {"error": error}, job_id=job.id)
            self.emit(
                API,
                "api.error",
                {"route": "/jobs", "method": "POST", "statusCode": 413, "error": error},
                job_id=job.id,
                user_id=job.user_id,
            )
            self.open_jobs.discard(job.id)
            return
        self.emit(
            API,
            "redis_function.completed",
            {"functionName": "createJob", "resultSize": len(str(position)), "durationMs": took},
            job_id=job.id,
        )
        self.emit(
            API,
            "job.queued",
            {"queueName": job.connector, "position": position, "priority": job.priority},
            job_id=job.id,
        )
        if job.connector == UNSERVED_CONNECTOR:
            # Nothing will ever take it: the monitor's queue age is the clue.
            self._fault("unclaimed")
            self.open_jobs.discard(job.id)
        self._pending[job.id] = job
        self._notify(job.connector)

    def _websockets(self) -> Proc:
        while True:
            yield max(1, int(self.rng.expovariate(0.15 / 1000.0)))
            socket_id = "".join(self.rng.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=20))
            user = f"user_{self.rng.randint(1, 40):03d}"
            self.spawn(self._websocket(socket_id, user))

    def _websocket(self, socket_id: str, user: str) -> Proc:
        self.emit(API, "websocket.connected", {"socketId": socket_id, "userId": user}, user_id=user)
        yield self._ms(20, 200)
        self.emit(API, "websocket.subscribed", {"socketId": socket_id, "channel": f"jobs:{user}"})
        yield self._ms(15_000, 180_000)
        reason = self.rng.choice(("client namespace disconnect", "transport close", "ping timeout"))
        self.emit(API, "websocket.disconnected", {"socketId": socket_id, "reason": reason})

    def _stray_errors(self) -> Proc:
        kinds = (
            ("/jobs/:id", "GET", 404, "job not found"),
            ("/jobs", "POST", 401, "invalid API key"),
            ("/jobs", "GET", 429, "rate limit exceeded"),
        )
        while True:
            yield max(1, int(self.rng.expovariate(0.03 / 1000.0)))
            route, method, status, error = self.rng.choice(kinds)
            user = f"user_{self.rng.randint(1, 40):03d}"
            self.emit(
                API,
                "api.error",
                {"route": route, "method": method, "statusCode": status, "error": error},
                user_id=user,
            )

    def _bursts(self) -> Proc:
        while True:
            yield max(1, int(self.rng.expovariate(self.config.faults.burst / 60_000.0)))
            self._start_burst(self._ms(10_000, 20_000), self.rng.uniform(2.0, 3.0))

    # -- machines and workers ------------------------------------------------------------

    def _machine(self, plan: MachinePlan) -> Proc:
        mid = plan.id
        booted = self.now
        self.emit(
            MACHINE,
            "machine.starting",
            {"imageVersion": "emp-basic-machine:2026.11.3", "capabilities": list(plan.services)},
            machine_id=mid,
        )
        yield self._ms(800, 2_500)
        self.emit(
            MACHINE,
            "machine.hardware_detected",
            {
                "gpuCount": plan.gpus,
                "totalMemoryMB": 65_536 if plan.kind == "gpu" else 16_384,
                "diskSpaceGB": self.rng.choice((250, 500, 1000)),
            },
            machine_id=mid,
        )
        started: list[str] = []
        failed: list[str] = []
        for n, service in enumerate(plan.services):
            yield self._ms(50, 300)
            self.emit(
                MACHINE,
                "pm2.service_starting",
                {"serviceName": service, "machineId": mid},
                machine_id=mid,
            )
            yield self._ms(1_500, 4_000) + (plan.slow_ms if n == 0 else 0)
            if service == plan.failing_service:
                self._fault("service_failure")
                failed.append(service)
                self.emit(
                    MACHINE,
                    "pm2.service_failed",
                    {"serviceName": service, "error": self.rng.choice(SERVICE_ERRORS)},
                    machine_id=mid,
                )
                continue
            started.append(service)
            self.emit(
                MACHINE,
                "pm2.service_started",
                {"serviceName": service, "pid": self.rng.randint(1_000, 60_000)},
                machine_id=mid,
            )
        yield self._ms(100, 500)
        self.emit(MACHINE, "machine.services_ready", {"services": started}, machine_id=mid)
        yield self._ms(50, 200)
        ready: dict[str, Any] = {"startupTimeMs": self.now - booted}
        if failed:
            ready.update(degraded=True, failedServices=failed)
        self.emit(MACHINE, "machine.ready", ready, machine_id=mid, level="warn" if failed else None)
        connectors = [SERVICE_CONNECTOR[s] for s in started]
        for n in range(plan.gpus if plan.kind == "gpu" else 4):
            worker = Worker(f"{mid}-w{n}", mid, connectors)
            self.workers[worker.id] = worker
            self.spawn(self._worker_start(worker), self._ms(50, 400))

    def _worker_start(self, worker: Worker, reason: str | None = None) -> Proc:
        data: dict[str, Any] = {"capabilities": worker.connectors, "machineId": worker.machine_id}
        if reason:
            data.update(restarts=worker.restarts, reason=reason)
        self.emit(
            WORKER, "worker.starting", data, worker_id=worker.id, machine_id=worker.machine_id
        )
        yield self._ms(400, 1_500)
        self.emit(
            WORKER,
            "worker.ready",
            {"connectorTypes": worker.connectors},
            worker_id=worker.id,
            machine_id=worker.machine_id,
        )
        self._set_idle(worker)
        self._poll_later(worker, self._ms(5, 100))

    def _set_idle(self, worker: Worker) -> None:
        worker.state = "idle"
        self._idle[worker.id] = worker

    def _poll_later(self, worker: Worker, delay_ms: int) -> None:
        worker.poll_token += 1
        self.after(delay_ms, self._poll, worker, worker.poll_token)

    def _notify(self, connector: str) -> None:
        """A job was queued: wake up to two idle workers that can run it (they race)."""
        able = [w for w in self._idle.values() if connector in w.connectors]
        for worker in self.rng.sample(able, min(2, len(able))):
            self._poll_later(worker, self._ms(5, 60))

    def _poll(self, worker: Worker, token: int) -> None:
        if worker.state != "idle" or token != worker.poll_token:
            return
        claimed = self.queue.claim(worker.id, worker.connectors, self.now)
        if claimed is None:
            self._poll_later(worker, self._ms(1_500, 2_500))
            return
        worker.state = "busy"
        del self._idle[worker.id]
        job = self._pending.pop(claimed.job_id, None)
        if job is None:  # put into this run's queue by someone else: just run it
            job = Job(
                claimed.job_id,
                claimed.connector,
                claimed.priority,
                claimed.user_id,
                claimed.created_ms,
                0,
                False,
            )
        self.open_jobs.add(job.id)
        # The worker reports the claim once the script's reply is back.
        self.spawn(self._run_job(worker, job, claimed.attempt), self._ms(1, 4))

    def _run_job(self, worker: Worker, job: Job, attempt: int) -> Proc:
        connector = CONNECTOR_BY_NAME[job.connector]
        ids: dict[str, Any] = {
            "job_id": job.id,
            "worker_id": worker.id,
            "machine_id": worker.machine_id,
        }
        self.emit(
            WORKER,
            "job.claimed",
            {
                "workerId": worker.id,
                "machineId": worker.machine_id,
                "claimTimeMs": self.now - job.created_ms,
                "attempt": attempt,
            },
            **ids,
        )
        yield self._ms(10, 80)
        started = self.now
        self.emit(
            WORKER,
            "connector.processing_started",
            {"connectorType": connector.name, "workerId": worker.id},
            **ids,
        )
        steps = 4 if connector.name == "comfyui" else 3
        total = connector.mean_ms * self.rng.lognormvariate(0.0, 0.35)
        error = job.fail or self._outage_error(connector.name)
        last_step = self.rng.randint(1, steps) if error else steps
        for step in range(1, last_step + 1):
            yield int(total / (steps + 1) * self.rng.uniform(0.7, 1.3))
            if job.crash_at == step:
                # The worker process dies here: no terminal event, the job stays claimed.
                self._fault("worker_crash")
                worker.state = "dead"
                self.open_jobs.discard(job.id)
                worker.restarts += 1
                self.spawn(
                    self._worker_start(worker, "restarted by pm2 after exit code 137"),
                    self._ms(8_000, 20_000),
                )
                return
            if job.stall is not None and job.stall[0] == step:
                self._fault("stall")
                yield job.stall[1]
            progress = round(100 * step / (steps + 1))
            self.queue.progress(job.id, progress, self.now)
            self.emit(
                WORKER,
                "job.progress_updated",
                {"progress": progress, "details": f"step {step}/{steps + 1}"},
                **ids,
            )
        yield int(total / (steps + 1) * self.rng.uniform(0.7, 1.3))
        took = self.now - started
        if error:
            if job.fail:
                self._fault("connector_failure")
            self.emit(
                WORKER,
                "connector.processing_failed",
                {"connectorType": connector.name, "error": error, "processingTimeMs": took},
                **ids,
            )
            yield self._ms(2, 10)
            self.queue.finish(job.id, "failed", self.now)
            self.jobs_failed += 1
            self.emit(
                WORKER,
                "job.failed",
                {"error": error, "attempt": attempt, "retryable": False},
                **ids,
            )
            outcome = "job.failed"
        else:
            self.emit(
                WORKER,
                "connector.processing_completed",
                {
                    "connectorType": connector.name,
                    "processingTimeMs": took,
                    "resultSize": self.rng.randint(20_000, 4_000_000),
                },
                **ids,
            )
            yield self._ms(2, 10)
            self.queue.finish(job.id, "completed", self.now)
            self.jobs_completed += 1
            self.emit(
                WORKER,
                "job.completed",
                {
                    "resultType": connector.result,
                    "hasAssets": connector.result == "image",
                    "completionTimeMs": self.now - job.created_ms,
                },
                **ids,
            )
            outcome = "job.completed"
        self._set_idle(worker)
        self._poll_later(worker, self._ms(5, 50))
        if job.webhook:
            self.spawn(self._webhook(job, outcome), self._ms(20, 250))
        else:
            self.open_jobs.discard(job.id)

    def _outage_error(self, connector: str) -> str | None:
        for outage in self._outages:
            if outage.connector == connector and outage.start_ms <= self.now < outage.end_ms:
                self._fault("connector_failure")
                return outage.error
        return None

    # -- webhook-service and monitor -----------------------------------------------------

    def _webhook(self, job: Job, outcome: str) -> Proc:
        url = f"https://hooks.example.com/emp/{job.user_id}"
        for attempt in (1, 2, 3):
            took = self._ms(40, 400)
            yield took
            if self.rng.random() < 0.04:
                status = self.rng.choice((502, 503, 504))
                self.emit(
                    WEBHOOK,
                    "webhook.failed",
                    {
                        "url": url,
                        "event": outcome,
                        "statusCode": status,
                        "attempt": attempt,
                        "durationMs": took,
                        "error": f"HTTP {status} from receiver",
                    },
                    job_id=job.id,
                    user_id=job.user_id,
                )
                yield 2_000 * attempt
                continue
            self.emit(
                WEBHOOK,
                "webhook.sent",
                {
                    "url": url,
                    "event": outcome,
                    "statusCode": 200,
                    "attempt": attempt,
                    "durationMs": took,
                },
                job_id=job.id,
                user_id=job.user_id,
            )
            break
        self.open_jobs.discard(job.id)

    def _monitor(self) -> Proc:
        while True:
            stats = self.queue.stats()
            ready = sum(1 for w in self.workers.values() if w.state in ("idle", "busy"))
            oldest = None if stats.oldest_pending_ms is None else self.now - stats.oldest_pending_ms
            stalled = self.queue.stalled(self.now, MONITOR_STALL_MS)
            degraded = (
                (oldest or 0) > 30_000 or (ready > 0 and stats.pending > 3 * ready) or stalled
            )
            self.emit(
                MONITOR,
                "health_check.performed",
                {
                    "target": "job-queue",
                    "status": "degraded" if degraded else "healthy",
                    "pendingJobs": stats.pending,
                    "activeJobs": stats.active,
                    "oldestPendingMs": oldest,
                    "workersReady": ready,
                    # Claimed jobs quiet for a while: five, the most recently stuck first.
                    "stalledJobs": [job_id for job_id, _ in stalled[:5]],
                },
                level="warn" if degraded else None,
            )
            yield self._ms(4_800, 5_200)
