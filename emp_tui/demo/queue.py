"""The simulated platform's job queue, kept in Redis so the claim path is real.

Keys, under a namespace (the simulation gives each run its own, ``emp:demo:<run ID>``), which
the queue wraps in braces (``{emp:demo:<run ID>}``, its :attr:`JobQueue.ns`): a hash tag, so
that every key of one queue is in one hash slot and each script's keys are on one node of a
Redis Cluster::

    {ns}:queue:{connector}  sorted set of the job IDs waiting for that connector, scored by
                            priority then creation time
    {ns}:waiting            sorted set of every waiting job ID, scored by creation time
    {ns}:active             set of claimed job IDs that have not finished
    {ns}:job:{id}           hash: id, connector, priority, userId, createdAt, status,
                            workerId, claimedAt, progress, progressAt, finishedAt, attempts

The API side creates a job with one script (``createJob``: validate, store, enqueue, return the
queue position); a worker takes one with another (``findMatchingJob``: of the jobs at the
heads of the queues of the connectors it has, the one of highest priority and then the
oldest, removed from the queue and marked claimed in one atomic step, so two workers can never
take the same job; its cost does not grow with the backlog). The scripts are given the keys
they touch (a cluster routes a script by them); the claimed job's hash, known only inside the
script, shares their slot through the hash tag.

:meth:`JobQueue.restore` writes a queue back from what its owner knows (waiting and claimed
jobs), for a Redis that restarted empty or from an older snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from redis.typing import EncodableT, FieldT

from emp_tui.topology import SyncClient

PRIORITIES: Final = ("high", "normal", "low")
MAX_PAYLOAD_BYTES: Final = 64 * 1024
# Scores are priority * _PRIORITY_STEP + createdAt, exact in a double (below 2**53).
_PRIORITY_STEP: Final = 10**13

_CREATE = """
local key, queue, waiting = KEYS[1], KEYS[2], KEYS[3]
local id, connector, priority, user, created, payload, max_payload, score =
    ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6]),
    tonumber(ARGV[7]), ARGV[8]
if payload > max_payload then
    return redis.error_reply('payload of ' .. payload .. ' bytes exceeds the limit of '
        .. max_payload)
end
if redis.call('EXISTS', key) == 1 then
    return redis.error_reply('job ' .. id .. ' exists')
end
redis.call('HSET', key, 'id', id, 'connector', connector, 'priority', priority,
    'userId', user, 'createdAt', created, 'status', 'queued', 'attempts', 0)
redis.call('ZADD', queue, score, id)
redis.call('ZADD', waiting, created, id)
return redis.call('ZRANK', queue, id)
"""

_CLAIM = """
local waiting, active = KEYS[1], KEYS[2]
local ns, worker, now = ARGV[1], ARGV[2], ARGV[3]
local best, best_score, best_queue
for i = 3, #KEYS do
    local queue = KEYS[i]
    local head = redis.call('ZRANGE', queue, 0, 0, 'WITHSCORES')
    if head[1] and (best_score == nil or tonumber(head[2]) < best_score) then
        best, best_score, best_queue = head[1], tonumber(head[2]), queue
    end
end
if not best then
    return false
end
redis.call('ZREM', best_queue, best)
redis.call('ZREM', waiting, best)
local key = ns .. ':job:' .. best
redis.call('HSET', key, 'status', 'claimed', 'workerId', worker, 'claimedAt', now)
redis.call('HINCRBY', key, 'attempts', 1)
redis.call('SADD', active, best)
local job = redis.call('HMGET', key, 'connector', 'priority', 'userId', 'createdAt', 'attempts')
return {best, job[1], job[2], job[3], job[4], job[5]}
"""


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    job_id: str
    connector: str
    priority: str
    user_id: str
    created_ms: int
    attempt: int


@dataclass(frozen=True, slots=True)
class QueueStats:
    pending: int
    active: int
    oldest_pending_ms: int | None  # createdAt of the oldest job still waiting


@dataclass(eq=False, slots=True)
class StoredJob:
    """A job as the queue holds it: waiting while ``worker_id`` is None, else claimed."""

    job_id: str
    connector: str
    priority: str
    user_id: str
    created_ms: int
    worker_id: str | None = None
    claimed_ms: int | None = None
    attempts: int = 0
    progress: int | None = None
    progress_ms: int | None = None


def _score(priority: str, created_ms: int) -> int:
    return PRIORITIES.index(priority) * _PRIORITY_STEP + created_ms


class JobQueue:
    """A job queue in one Redis or a Redis Cluster. ``client`` must not decode responses."""

    def __init__(self, client: SyncClient, namespace: str = "emp:demo") -> None:
        self.client = client
        self.ns = namespace if namespace.startswith("{") else "{" + namespace + "}"
        """The keys' prefix: the namespace as a hash tag (every key in one slot)."""
        self._create = client.register_script(_CREATE)
        self._claim = client.register_script(_CLAIM)

    def job_key(self, job_id: str) -> str:
        return f"{self.ns}:job:{job_id}"

    def create(
        self,
        job_id: str,
        *,
        connector: str,
        priority: str,
        user_id: str,
        created_ms: int,
        payload_bytes: int,
    ) -> int:
        """Store and enqueue a job; its position in the queue (0 = next). Raises
        redis.ResponseError when the script refuses the job (payload too large, duplicate)."""
        position = self._create(
            keys=[self.job_key(job_id), f"{self.ns}:queue:{connector}", f"{self.ns}:waiting"],
            args=[
                job_id,
                connector,
                PRIORITIES.index(priority),
                user_id,
                created_ms,
                payload_bytes,
                MAX_PAYLOAD_BYTES,
                _score(priority, created_ms),
            ],
        )
        return int(position)

    def claim(self, worker_id: str, connectors: list[str], now_ms: int) -> ClaimedJob | None:
        """Atomically take the first waiting job this worker can run, or None."""
        if not connectors:
            return None
        queues = [f"{self.ns}:queue:{connector}" for connector in connectors]
        found = self._claim(
            keys=[f"{self.ns}:waiting", f"{self.ns}:active", *queues],
            args=[self.ns, worker_id, now_ms],
        )
        if not found:
            return None
        job_id, connector, priority, user_id, created, attempts = (_text(v) for v in found)
        return ClaimedJob(
            job_id=job_id,
            connector=connector,
            priority=PRIORITIES[int(priority)],
            user_id=user_id,
            created_ms=int(created),
            attempt=int(attempts),
        )

    def finish(self, job_id: str, status: str, now_ms: int, *, keep_s: int = 3600) -> None:
        """Record a job's end and take it off the active set; its hash expires later."""
        key = self.job_key(job_id)
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(key, mapping={"status": status, "finishedAt": now_ms})
        pipe.srem(f"{self.ns}:active", job_id)
        pipe.expire(key, keep_s)
        pipe.execute()

    def progress(self, job_id: str, progress: int, now_ms: int) -> None:
        """Record a claimed job's progress; the monitor reads ``progressAt`` to spot stalls."""
        self.client.hset(self.job_key(job_id), mapping={"progress": progress, "progressAt": now_ms})

    def stalled(self, now_ms: int, quiet_ms: int) -> list[tuple[str, int]]:
        """Claimed jobs with no progress for more than ``quiet_ms``: (job ID, quiet ms),
        the most recently stuck first."""
        active = sorted(_text(v) for v in self.client.smembers(f"{self.ns}:active"))
        if not active:
            return []
        pipe = self.client.pipeline(transaction=False)
        for job_id in active:
            pipe.hmget(self.job_key(job_id), "progressAt", "claimedAt")
        found = []
        for job_id, (progress_at, claimed_at) in zip(active, pipe.execute(), strict=True):
            last = progress_at or claimed_at
            if last is not None and now_ms - int(last) > quiet_ms:
                found.append((job_id, now_ms - int(last)))
        found.sort(key=lambda item: (item[1], item[0]))
        return found

    def status(self, job_id: str) -> str | None:
        value = self.client.hget(self.job_key(job_id), "status")
        return None if value is None else _text(value)

    def stats(self) -> QueueStats:
        waiting = f"{self.ns}:waiting"
        pipe = self.client.pipeline(transaction=False)
        pipe.zcard(waiting)
        pipe.scard(f"{self.ns}:active")
        pipe.zrange(waiting, 0, 0, withscores=True)
        pending, active, head = pipe.execute()
        return QueueStats(
            pending=int(pending),
            active=int(active),
            oldest_pending_ms=int(head[0][1]) if head else None,
        )

    def restore(self, jobs: Iterable[StoredJob]) -> None:
        """Make the queue hold exactly these jobs, waiting or claimed, in one transaction.
        The records of finished jobs are left as they are."""
        ns = self.ns
        queues = list(self.client.scan_iter(match=f"{ns}:queue:*", count=1000))
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(f"{ns}:waiting", f"{ns}:active", *queues)
        for job in jobs:
            key = self.job_key(job.job_id)
            fields: dict[FieldT, EncodableT] = {
                "id": job.job_id,
                "connector": job.connector,
                "priority": str(PRIORITIES.index(job.priority)),
                "userId": job.user_id,
                "createdAt": str(job.created_ms),
                "status": "queued" if job.worker_id is None else "claimed",
                "attempts": str(job.attempts),
            }
            if job.worker_id is not None:
                fields.update(workerId=job.worker_id, claimedAt=str(job.claimed_ms or 0))
            if job.progress is not None:
                fields.update(progress=str(job.progress), progressAt=str(job.progress_ms or 0))
            pipe.delete(key)
            pipe.hset(key, mapping=fields)
            if job.worker_id is None:
                pipe.zadd(
                    f"{ns}:queue:{job.connector}",
                    {job.job_id: _score(job.priority, job.created_ms)},
                )
                pipe.zadd(f"{ns}:waiting", {job.job_id: job.created_ms})
            else:
                pipe.sadd(f"{ns}:active", job.job_id)
        pipe.execute()

    def clear(self) -> int:
        """Delete every key of this namespace; how many there were."""
        removed = 0
        batch: list[bytes] = []
        for key in self.client.scan_iter(match=f"{self.ns}:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                removed += int(self.client.unlink(*batch))
                batch.clear()
        if batch:
            removed += int(self.client.unlink(*batch))
        return removed


def _text(value: bytes | str | int) -> str:
    if isinstance(value, bytes):
        return value.decode()
    return str(value)
