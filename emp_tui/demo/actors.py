"""The simulated EMP services, as processes on the simulation's clock: the api-server takes
jobs and puts them into the queue, machines boot their PM2 services and start workers,
workers claim and run jobs, the webhook-service reports results, the monitor checks the
queue's health. Each emits through its own emitter (:meth:`World.emit`), in the plan's event
names, and records the incidents it makes happen (a stall, a crash, a failure) as they
happen.

The order of every random draw is part of the contract (a seed gives the same events), so a
change here that draws in another order changes every run after it.
"""

from __future__ import annotations

from typing import Any

import redis

from emp_tui.demo.model import (
    API,
    CONNECTOR_BY_NAME,
    CONNECTORS,
    CRASH_REASON,
    FAILED_JOB,
    MACHINE,
    MONITOR,
    MONITOR_STALL_MS,
    NEVER_CLAIMED,
    ORPHANED_JOB,
    REJECTED_JOB,
    SERVICE_CONNECTOR,
    SERVICE_ERRORS,
    SERVICE_FAILED,
    STALLED_JOB,
    TRAFFIC_BURST,
    UNSERVED_CONNECTOR,
    WEBHOOK,
    WORKER,
    Job,
    MachinePlan,
    Outage,
    Worker,
)
from emp_tui.demo.queue import PRIORITIES
from emp_tui.demo.scheduler import Proc
from emp_tui.demo.world import World


class WebhookService:
    def __init__(self, world: World) -> None:
        self.world = world

    def deliver(self, job: Job, outcome: str) -> Proc:
        w = self.world
        url = f"https://hooks.example.com/emp/{job.user_id}"
        for attempt in (1, 2, 3):
            took = w.ms(40, 400)
            yield took
            if w.rng.random() < 0.04:
                status = w.rng.choice((502, 503, 504))
                w.emit(
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
            w.emit(
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
        w.open_jobs.discard(job.id)


class Fleet:
    """The machines and their workers."""

    def __init__(self, world: World, webhooks: WebhookService) -> None:
        self.world = world
        self.webhooks = webhooks

    def machine(self, plan: MachinePlan) -> Proc:
        w = self.world
        mid = plan.id
        booted = w.now
        w.emit(
            MACHINE,
            "machine.starting",
            {"imageVersion": "emp-basic-machine:2026.11.3", "capabilities": list(plan.services)},
            machine_id=mid,
        )
        yield w.ms(800, 2_500)
        w.emit(
            MACHINE,
            "machine.hardware_detected",
            {
                "gpuCount": plan.gpus,
                "totalMemoryMB": 65_536 if plan.kind == "gpu" else 16_384,
                "diskSpaceGB": w.rng.choice((250, 500, 1000)),
            },
            machine_id=mid,
        )
        started: list[str] = []
        failed: list[str] = []
        for n, service in enumerate(plan.services):
            yield w.ms(50, 300)
            w.emit(
                MACHINE,
                "pm2.service_starting",
                {"serviceName": service, "machineId": mid},
                machine_id=mid,
            )
            yield w.ms(1_500, 4_000) + (plan.slow_ms if n == 0 else 0)
            if service == plan.failing_service:
                w.fault("service_failure")
                failed.append(service)
                error = w.rng.choice(SERVICE_ERRORS)
                w.emit(
                    MACHINE,
                    "pm2.service_failed",
                    {"serviceName": service, "error": error},
                    machine_id=mid,
                )
                w.incident(
                    SERVICE_FAILED,
                    plan.story,
                    end_ms=w.now,
                    machines=[mid],
                    connectors=[SERVICE_CONNECTOR[service]],
                    error=error,
                    detail={"service": service},
                )
                continue
            started.append(service)
            w.emit(
                MACHINE,
                "pm2.service_started",
                {"serviceName": service, "pid": w.rng.randint(1_000, 60_000)},
                machine_id=mid,
            )
        yield w.ms(100, 500)
        w.emit(MACHINE, "machine.services_ready", {"services": started}, machine_id=mid)
        yield w.ms(50, 200)
        ready: dict[str, Any] = {"startupTimeMs": w.now - booted}
        if failed:
            ready.update(degraded=True, failedServices=failed)
        w.emit(MACHINE, "machine.ready", ready, machine_id=mid, level="warn" if failed else None)
        connectors = [SERVICE_CONNECTOR[s] for s in started]
        for n in range(plan.gpus if plan.kind == "gpu" else 4):
            worker = Worker(f"{mid}-w{n}", mid, connectors)
            w.workers[worker.id] = worker
            w.spawn(self.worker_start(worker), w.ms(50, 400))

    def worker_start(self, worker: Worker, reason: str | None = None) -> Proc:
        w = self.world
        data: dict[str, Any] = {"capabilities": worker.connectors, "machineId": worker.machine_id}
        if reason:
            data.update(restarts=worker.restarts, reason=reason)
        w.emit(WORKER, "worker.starting", data, worker_id=worker.id, machine_id=worker.machine_id)
        yield w.ms(400, 1_500)
        w.emit(
            WORKER,
            "worker.ready",
            {"connectorTypes": worker.connectors},
            worker_id=worker.id,
            machine_id=worker.machine_id,
        )
        for wait in list(w.waits):
            if worker.machine_id in wait.machines and set(wait.connectors) & set(worker.connectors):
                wait.end_ms = w.now  # the capacity the jobs waited for is here
                w.waits.remove(wait)
        self._set_idle(worker)
        self._poll_later(worker, w.ms(5, 100))

    def _set_idle(self, worker: Worker) -> None:
        worker.state = "idle"
        self.world.idle[worker.id] = worker

    def _poll_later(self, worker: Worker, delay_ms: int) -> None:
        worker.poll_token += 1
        self.world.after(delay_ms, self._poll, worker, worker.poll_token)

    def notify(self, connector: str) -> None:
        """A job was queued: wake up to two idle workers that can run it (they race)."""
        w = self.world
        able = [worker for worker in w.idle.values() if connector in worker.connectors]
        for worker in w.rng.sample(able, min(2, len(able))):
            self._poll_later(worker, w.ms(5, 60))

    def _poll(self, worker: Worker, token: int) -> None:
        w = self.world
        if worker.state != "idle" or token != worker.poll_token:
            return
        taken = w.queue.claim(worker.id, worker.connectors, w.now)
        if taken is None:
            self._poll_later(worker, w.ms(1_500, 2_500))
            return
        claimed, job = taken
        worker.state = "busy"
        del w.idle[worker.id]
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
        w.open_jobs.add(job.id)
        # The worker reports the claim once the script's reply is back.
        w.spawn(self._run_job(worker, job, claimed.attempt), w.ms(1, 4))

    def _run_job(self, worker: Worker, job: Job, attempt: int) -> Proc:
        w = self.world
        connector = CONNECTOR_BY_NAME[job.connector]
        ids: dict[str, Any] = {
            "job_id": job.id,
            "worker_id": worker.id,
            "machine_id": worker.machine_id,
        }
        subjects = {
            "jobs": [job.id],
            "workers": [worker.id],
            "machines": [worker.machine_id],
            "connectors": [connector.name],
        }
        w.emit(
            WORKER,
            "job.claimed",
            {
                "workerId": worker.id,
                "machineId": worker.machine_id,
                "claimTimeMs": w.now - job.created_ms,
                "attempt": attempt,
            },
            **ids,
        )
        yield w.ms(10, 80)
        started = w.now
        w.emit(
            WORKER,
            "connector.processing_started",
            {"connectorType": connector.name, "workerId": worker.id},
            **ids,
        )
        last = w.now  # the job's last event so far
        steps = 4 if connector.name == "comfyui" else 3
        total = connector.mean_ms * w.rng.lognormvariate(0.0, 0.35)
        outage = None if job.fail else self._outage(connector.name)
        error = job.fail or (outage.error if outage else None)
        last_step = w.rng.randint(1, steps) if error else steps
        for step in range(1, last_step + 1):
            yield int(total / (steps + 1) * w.rng.uniform(0.7, 1.3))
            if job.crash_at == step:
                # The worker process dies here: no terminal event, the job stays claimed.
                w.fault("worker_crash")
                worker.state = "dead"
                w.open_jobs.discard(job.id)
                worker.restarts += 1
                restart_in = w.ms(8_000, 20_000)
                w.spawn(self.worker_start(worker, CRASH_REASON), restart_in)
                w.incident(
                    ORPHANED_JOB,
                    job.story,
                    start_ms=last,
                    end_ms=w.now + restart_in,
                    detail={"reason": CRASH_REASON, "restarts": worker.restarts},
                    **subjects,
                )
                return
            if job.stall is not None and job.stall[0] == step:
                w.fault("stall")
                stall = w.incident(STALLED_JOB, job.story, start_ms=last, **subjects)
                yield job.stall[1]
                stall.end_ms = w.now
                stall.detail["gapMs"] = w.now - last
            progress = round(100 * step / (steps + 1))
            w.queue.progress(job.id, progress, w.now)
            w.emit(
                WORKER,
                "job.progress_updated",
                {"progress": progress, "details": f"step {step}/{steps + 1}"},
                **ids,
            )
            last = w.now
        yield int(total / (steps + 1) * w.rng.uniform(0.7, 1.3))
        took = w.now - started
        if error:
            if job.fail:
                w.fault("connector_failure")
            w.emit(
                WORKER,
                "connector.processing_failed",
                {"connectorType": connector.name, "error": error, "processingTimeMs": took},
                **ids,
            )
            yield w.ms(2, 10)
            w.queue.finish(job.id, "failed", w.now)
            w.jobs_failed += 1
            w.emit(
                WORKER,
                "job.failed",
                {"error": error, "attempt": attempt, "retryable": False},
                **ids,
            )
            outcome = "job.failed"
            if outage is not None:
                outage.incident.add(job.id, worker.id, worker.machine_id)
            else:
                w.incident(FAILED_JOB, job.story, end_ms=w.now, error=error, **subjects)
        else:
            w.emit(
                WORKER,
                "connector.processing_completed",
                {
                    "connectorType": connector.name,
                    "processingTimeMs": took,
                    "resultSize": w.rng.randint(20_000, 4_000_000),
                },
                **ids,
            )
            yield w.ms(2, 10)
            w.queue.finish(job.id, "completed", w.now)
            w.jobs_completed += 1
            w.emit(
                WORKER,
                "job.completed",
                {
                    "resultType": connector.result,
                    "hasAssets": connector.result == "image",
                    "completionTimeMs": w.now - job.created_ms,
                },
                **ids,
            )
            outcome = "job.completed"
        self._set_idle(worker)
        self._poll_later(worker, w.ms(5, 50))
        if job.webhook:
            w.spawn(self.webhooks.deliver(job, outcome), w.ms(20, 250))
        else:
            w.open_jobs.discard(job.id)

    def _outage(self, connector: str) -> Outage | None:
        w = self.world
        for outage in w.outages:
            if outage.connector == connector and outage.start_ms <= w.now < outage.end_ms:
                w.fault("connector_failure")
                return outage
        return None


class ApiServer:
    """The api-server: takes jobs (at the job rate, faster in a burst) and enqueues them,
    and the rest of its traffic (health checks, websockets, stray errors)."""

    def __init__(self, world: World, fleet: Fleet, job_rate: float) -> None:
        self.world = world
        self.fleet = fleet
        self.job_rate = job_rate
        self._job_ids: set[str] = set()
        self._burst_until = 0
        self._burst_factor = 1.0

    def serve(self) -> Proc:
        w = self.world
        w.emit(API, "server.starting", {"port": 3331, "nodeVersion": "v20.11.1"})
        yield w.ms(400, 1_200)
        w.emit(
            API,
            "server.ready",
            {"port": 3331, "pid": w.rng.randint(200, 9_000), "version": "1.8.2"},
        )
        while True:
            yield w.ms(14_000, 16_000)
            w.emit(
                API,
                "health_check.performed",
                {"status": "healthy", "redis": "connected", "responseTimeMs": w.ms(2, 18)},
            )

    def new_job(self, connector: str | None = None) -> Job:
        rng = self.world.rng
        if connector is None:
            pick = rng.random()
            for c in CONNECTORS:
                pick -= c.share
                if pick < 0:
                    connector = c.name
                    break
            else:
                connector = CONNECTORS[-1].name
        while True:
            job_id = f"job_{rng.getrandbits(48):012x}"
            if job_id not in self._job_ids:
                self._job_ids.add(job_id)
                break
        priority = rng.choices(PRIORITIES, weights=(10, 75, 15))[0]
        return Job(
            id=job_id,
            connector=connector,
            priority=priority,
            user_id=f"user_{rng.randint(1, 40):03d}",
            created_ms=0,
            payload_bytes=int(rng.lognormvariate(7.5, 0.6)),
            webhook=rng.random() < 0.7,
        )

    def arrivals(self) -> Proc:
        w = self.world
        faults = w.config.faults
        while w.creating:
            if w.config.max_jobs is not None and w.jobs_created >= w.config.max_jobs:
                w.creating = False
                return
            job = self.new_job()
            r = w.rng.random
            if r() < faults.bad_request:
                job.payload_bytes = w.rng.randint(70_000, 400_000)
            if r() < faults.unclaimed:
                job.connector = UNSERVED_CONNECTOR
            elif r() < faults.connector_failure:
                job.fail = w.rng.choice(CONNECTOR_BY_NAME[job.connector].errors)
            if job.connector != UNSERVED_CONNECTOR and r() < faults.stall:
                job.stall = (w.rng.randint(1, 3), w.rng.randint(10_000, 60_000))
            if job.connector != UNSERVED_CONNECTOR and r() < faults.worker_crash:
                job.crash_at = w.rng.randint(1, 3)
            self.create_job(job)
            factor = self._burst_factor if w.now < self._burst_until else 1.0
            yield max(1, int(w.rng.expovariate(self.job_rate * factor / 1000.0)))

    def create_job(self, job: Job) -> None:
        w = self.world
        job.created_ms = w.now
        w.jobs_created += 1
        w.open_jobs.add(job.id)
        for wait in w.waits:
            if job.connector in wait.connectors:
                if not wait.jobs:
                    wait.start_ms = w.now
                wait.add(job.id)
        w.emit(
            API,
            "job.created",
            {"jobType": job.connector, "priority": job.priority, "userId": job.user_id},
            job_id=job.id,
            user_id=job.user_id,
        )
        w.spawn(self._enqueue(job), w.ms(1, 4))

    def _enqueue(self, job: Job) -> Proc:
        w = self.world
        args = 9
        w.emit(
            API,
            "redis_function.executing",
            {"functionName": "createJob", "argCount": args},
            job_id=job.id,
        )
        took = w.ms(1, 6)
        yield took
        try:
            position = w.queue.create(job)
        except redis.ResponseError as exc:
            error = str(exc)
            w.fault("bad_request")
            w.emit(
                API,
                "redis_function.failed",
                {"functionName": "createJob", "error": error, "durationMs": took},
                job_id=job.id,
            )
            yield 1
            w.emit(API, "job.creation_failed", {"error": error}, job_id=job.id)
            w.emit(
                API,
                "api.error",
                {"route": "/jobs", "method": "POST", "statusCode": 413, "error": error},
                job_id=job.id,
                user_id=job.user_id,
            )
            w.open_jobs.discard(job.id)
            w.incident(
                REJECTED_JOB,
                job.story,
                start_ms=job.created_ms,
                end_ms=w.now,
                jobs=[job.id],
                connectors=[job.connector],
                error=error,
            )
            return
        w.emit(
            API,
            "redis_function.completed",
            {"functionName": "createJob", "resultSize": len(str(position)), "durationMs": took},
            job_id=job.id,
        )
        w.emit(
            API,
            "job.queued",
            {"queueName": job.connector, "position": position, "priority": job.priority},
            job_id=job.id,
        )
        if job.connector == UNSERVED_CONNECTOR:
            # Nothing will ever take it: the monitor's queue age is the clue.
            w.fault("unclaimed")
            w.open_jobs.discard(job.id)
            w.incident(NEVER_CLAIMED, job.story, jobs=[job.id], connectors=[job.connector])
        self.fleet.notify(job.connector)

    def websockets(self) -> Proc:
        w = self.world
        while True:
            yield max(1, int(w.rng.expovariate(0.15 / 1000.0)))
            socket_id = "".join(w.rng.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=20))
            user = f"user_{w.rng.randint(1, 40):03d}"
            w.spawn(self._websocket(socket_id, user))

    def _websocket(self, socket_id: str, user: str) -> Proc:
        w = self.world
        w.emit(API, "websocket.connected", {"socketId": socket_id, "userId": user}, user_id=user)
        yield w.ms(20, 200)
        w.emit(API, "websocket.subscribed", {"socketId": socket_id, "channel": f"jobs:{user}"})
        yield w.ms(15_000, 180_000)
        reason = w.rng.choice(("client namespace disconnect", "transport close", "ping timeout"))
        w.emit(API, "websocket.disconnected", {"socketId": socket_id, "reason": reason})

    def stray_errors(self) -> Proc:
        w = self.world
        kinds = (
            ("/jobs/:id", "GET", 404, "job not found"),
            ("/jobs", "POST", 401, "invalid API key"),
            ("/jobs", "GET", 429, "rate limit exceeded"),
        )
        while True:
            yield max(1, int(w.rng.expovariate(0.03 / 1000.0)))
            route, method, status, error = w.rng.choice(kinds)
            user = f"user_{w.rng.randint(1, 40):03d}"
            w.emit(
                API,
                "api.error",
                {"route": route, "method": method, "statusCode": status, "error": error},
                user_id=user,
            )

    def bursts(self) -> Proc:
        w = self.world
        while True:
            yield max(1, int(w.rng.expovariate(w.config.faults.burst / 60_000.0)))
            self.start_burst(w.ms(10_000, 20_000), w.rng.uniform(2.0, 3.0))

    def start_burst(self, duration_ms: int, factor: float, story: str | None = None) -> None:
        w = self.world
        w.fault("burst")
        self._burst_until = w.now + duration_ms
        self._burst_factor = factor
        w.incident(TRAFFIC_BURST, story, end_ms=self._burst_until, detail={"factor": factor})


class Monitor:
    def __init__(self, world: World) -> None:
        self.world = world

    def run(self) -> Proc:
        w = self.world
        while True:
            stats = w.queue.stats()
            ready = sum(1 for worker in w.workers.values() if worker.state in ("idle", "busy"))
            oldest = None if stats.oldest_pending_ms is None else w.now - stats.oldest_pending_ms
            stalled = w.queue.stalled(w.now, MONITOR_STALL_MS)
            degraded = (
                (oldest or 0) > 30_000 or (ready > 0 and stats.pending > 3 * ready) or stalled
            )
            w.emit(
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
            yield w.ms(4_800, 5_200)
