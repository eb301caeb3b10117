"""What the simulated platform is made of: its services and connectors, the numbers that size
it, the fault rates and settings of a run, and the records the simulation keeps (jobs,
machines, workers, outages, and the incidents it plants or draws). Data only: no I/O, no
behaviour beyond parsing a fault spec."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any, Final

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
CRASH_REASON: Final = "restarted by pm2 after exit code 137"


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
    max_jobs: int | None = None  # stop creating jobs after this many
    namespace: str | None = None  # the queue's keys; default emp:demo:<a new run ID>


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
    story: str | None = None  # the scenario that planted it


@dataclass(eq=False, slots=True)
class MachinePlan:
    id: str
    kind: str
    gpus: int
    boot_at_ms: int
    services: tuple[str, ...]
    failing_service: str | None = None
    slow_ms: int = 0  # extra time the machine's first service takes to start
    story: str | None = None  # the scenario that planted its failing service


@dataclass(eq=False, slots=True)
class Worker:
    id: str
    machine_id: str
    connectors: list[str]
    state: str = "starting"  # starting | idle | busy | dead
    poll_token: int = 0
    restarts: int = 0


# What an incident is, for whoever looks for it in the events (see Incident).
STALLED_JOB: Final = "stalled_job"
ORPHANED_JOB: Final = "orphaned_job"
FAILURE_CLUSTER: Final = "failure_cluster"
FAILED_JOB: Final = "failed_job"
QUEUE_WAIT: Final = "queue_wait"
NEVER_CLAIMED: Final = "never_claimed"
SERVICE_FAILED: Final = "service_failed"
REJECTED_JOB: Final = "rejected_job"
TRAFFIC_BURST: Final = "traffic_burst"
INCIDENT_KINDS: Final = (
    STALLED_JOB,
    ORPHANED_JOB,
    FAILURE_CLUSTER,
    FAILED_JOB,
    QUEUE_WAIT,
    NEVER_CLAIMED,
    SERVICE_FAILED,
    REJECTED_JOB,
    TRAFFIC_BURST,
)


@dataclass(eq=False, slots=True)
class Incident:
    """Something wrong that the simulation made happen, as it happened: the ground truth a
    detector is measured against. Filled in while the simulation runs (a failure cluster
    gains jobs, a queue wait ends); times are event times in epoch ms.

    ``kind`` says what it is and what its window is:

    - ``stalled_job``: a job quiet between two progress updates; from the job's last event
      before the gap to the first after it.
    - ``orphaned_job``: the worker running a job died; the job never ends. From the job's
      last event to the worker's restart (``worker.starting``, reason ``restarted by pm2``).
    - ``failure_cluster``: a connector fails every job for a while (an outage); the planned
      window. Its jobs started processing inside it, so the last failure may come up to a
      processing time after its end.
    - ``failed_job``: one job failed with a connector error; the time of its ``job.failed``.
    - ``queue_wait``: jobs of a connector wait because the only machine serving it is slow to
      start; from the first waiting job's creation to the machine's first worker ready.
    - ``never_claimed``: a job asks for a connector no worker runs; from its ``job.queued``,
      with no end.
    - ``service_failed``: a PM2 service failed to start on a machine (``pm2.service_failed``).
    - ``rejected_job``: the API refused a job (payload too large).
    - ``traffic_burst``: more jobs than usual for a while (``detail["factor"]``).

    ``end_ms`` is None while the incident is still going (and for ``never_claimed``).
    """

    kind: str
    story: str | None  # the scenario that planted it; None for a random fault
    start_ms: int
    end_ms: int | None = None
    jobs: list[str] = field(default_factory=list)
    workers: list[str] = field(default_factory=list)
    machines: list[str] = field(default_factory=list)
    connectors: list[str] = field(default_factory=list)  # connector = the job's type
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def add(
        self, job: str | None = None, worker: str | None = None, machine: str | None = None
    ) -> None:
        """Name one more subject (each is listed once, in the order first seen)."""
        for value, known in ((job, self.jobs), (worker, self.workers), (machine, self.machines)):
            if value is not None and value not in known:
                known.append(value)


@dataclass(frozen=True, eq=False, slots=True)
class Outage:
    """A connector failing every job that starts processing between these times."""

    connector: str
    start_ms: int
    end_ms: int
    error: str
    incident: Incident
