"""The simulated platform's job queue, against a real redis-server."""

from __future__ import annotations

import threading

import pytest
import redis

from emp_tui.demo.queue import JobQueue, StoredJob

NS = "emp:test"


@pytest.fixture
def queue(redis_url: str):
    client = redis.Redis.from_url(redis_url)
    yield JobQueue(client, NS)
    client.close()


def create(queue: JobQueue, job_id: str, connector: str = "comfyui", **kw: object) -> int:
    args: dict = {
        "priority": "normal",
        "user_id": "user_001",
        "created_ms": 1000,
        "payload_bytes": 10,
    }
    args.update(kw)
    return queue.create(job_id, connector=connector, **args)


def test_each_job_is_claimed_exactly_once_by_racing_workers(
    redis_url: str, queue: JobQueue
) -> None:
    for n in range(200):
        create(queue, f"job_{n:03d}", created_ms=1000 + n)
    claimed: dict[str, list[str]] = {}
    lock = threading.Lock()

    def work(worker_id: str) -> None:
        own = JobQueue(redis.Redis.from_url(redis_url), NS)
        while (job := own.claim(worker_id, ["comfyui"], 5000)) is not None:
            with lock:
                claimed.setdefault(job.job_id, []).append(worker_id)
        own.client.close()

    threads = [threading.Thread(target=work, args=(f"w{n}",)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == [f"job_{n:03d}" for n in range(200)]
    assert all(len(workers) == 1 for workers in claimed.values())
    stats = queue.stats()
    assert (stats.pending, stats.active, stats.oldest_pending_ms) == (0, 200, None)
    # The hash records who took it.
    job_id, (worker,) = next(iter(claimed.items()))
    assert queue.client.hget(queue.job_key(job_id), "workerId") == worker.encode()


def test_claim_takes_priority_then_age_and_only_what_the_worker_runs(queue: JobQueue) -> None:
    create(queue, "old_normal", created_ms=100)
    create(queue, "new_high", priority="high", created_ms=900)
    create(queue, "older_low", priority="low", created_ms=50)
    create(queue, "flux", connector="flux-pro", created_ms=10)
    assert queue.claim("w1", ["openai"], 1000) is None
    order = [queue.claim("w1", ["comfyui"], 1000) for _ in range(4)]
    assert [j.job_id if j else None for j in order] == ["new_high", "old_normal", "older_low", None]
    first = order[0]
    assert first is not None
    assert (first.connector, first.priority, first.user_id, first.created_ms, first.attempt) == (
        "comfyui",
        "high",
        "user_001",
        900,
        1,
    )
    # Nobody runs flux-pro: it stays at the head of the queue.
    stats = queue.stats()
    assert (stats.pending, stats.oldest_pending_ms) == (1, 10)
    create(queue, "newer_high", priority="high", created_ms=700)
    assert queue.stats().oldest_pending_ms == 10  # the oldest, whatever its priority
    assert queue.status("flux") == "queued"


def test_create_reports_the_queue_position_and_refuses_oversized_or_duplicate_jobs(
    queue: JobQueue,
) -> None:
    assert create(queue, "a", created_ms=1) == 0
    assert create(queue, "b", created_ms=2) == 1
    assert create(queue, "c", priority="high", created_ms=3) == 0
    with pytest.raises(redis.ResponseError, match="exceeds the limit"):
        create(queue, "big", payload_bytes=10_000_000)
    with pytest.raises(redis.ResponseError, match="exists"):
        create(queue, "a")
    assert queue.status("big") is None
    assert queue.stats().pending == 3


def test_finish_records_the_end_and_clear_removes_the_namespace(queue: JobQueue) -> None:
    create(queue, "a")
    claimed = queue.claim("w1", ["comfyui"], 2000)
    assert claimed is not None
    queue.finish("a", "completed", 3000)
    assert queue.status("a") == "completed"
    assert queue.stats().active == 0
    assert 0 < queue.client.ttl(queue.job_key("a")) <= 3600
    queue.client.set("other:key", "kept")
    assert queue.clear() == 1
    assert queue.client.keys(f"{NS}:*") == []
    assert queue.client.get("other:key") == b"kept"


def test_stalled_lists_claimed_jobs_without_recent_progress(queue: JobQueue) -> None:
    for job_id in ("a", "b", "c"):
        create(queue, job_id)
        assert queue.claim("w1", ["comfyui"], 1_000) is not None
    queue.progress("a", 40, 9_000)  # recent
    queue.progress("b", 20, 2_000)  # quiet for 8 s
    queue.finish("c", "completed", 3_000)  # done: not active
    create(queue, "d")  # queued, not claimed
    assert queue.stalled(10_000, 5_000) == [("b", 8_000)]
    assert queue.stalled(10_000, 500) == [("a", 1_000), ("b", 8_000)]
    assert queue.client.hget(queue.job_key("a"), "progress") == b"40"


def snapshot(queue: JobQueue) -> dict[bytes, object]:
    """Every key of the queue's namespace with its value, finished jobs' records aside."""
    client = queue.client
    found: dict[bytes, object] = {}
    for key in client.scan_iter(match=f"{queue.ns}:*"):
        kind = client.type(key)
        if kind == b"zset":
            found[key] = client.zrange(key, 0, -1, withscores=True)
        elif kind == b"set":
            found[key] = sorted(client.smembers(key))
        elif client.hget(key, "status") not in (b"completed", b"failed"):
            found[key] = client.hgetall(key)
    return found


def test_restore_writes_back_what_a_restarted_redis_lost(queue: JobQueue) -> None:
    create(queue, "waiting", created_ms=100)
    create(queue, "high", priority="high", created_ms=300)
    create(queue, "flux", connector="flux-pro", created_ms=50)
    create(queue, "running", created_ms=10)
    create(queue, "done", created_ms=5)
    taken = [queue.claim(w, ["comfyui"], 900 + n) for n, w in enumerate(("w0", "w1", "w2"))]
    assert [job.job_id if job else None for job in taken] == ["high", "done", "running"]
    queue.finish("done", "failed", 1_500)
    queue.progress("high", 40, 1_200)
    before = snapshot(queue)
    jobs = [
        StoredJob("flux", "flux-pro", "normal", "user_001", 50),
        StoredJob("waiting", "comfyui", "normal", "user_001", 100),
        StoredJob(
            "high",
            "comfyui",
            "high",
            "user_001",
            300,
            worker_id="w0",
            claimed_ms=900,
            attempts=1,
            progress=40,
            progress_ms=1_200,
        ),
        StoredJob("running", "comfyui", "normal", "user_001", 10, "w2", 902, 1),
    ]
    queue.client.flushall()  # a restart without persistence
    queue.restore(jobs)
    assert snapshot(queue) == before
    assert len(before) == 8  # 4 jobs, 2 queues, waiting, active
    # A claim Redis made before it went away is undone, and made again the same way.
    queue.claim("w3", ["comfyui"], 2_100)
    queue.restore(jobs)
    assert snapshot(queue) == before
    again = queue.claim("w3", ["comfyui"], 2_200)
    assert again is not None and (again.job_id, again.attempt) == ("waiting", 1)
    assert queue.stalled(10_000, 5_000) == [("waiting", 7_800), ("high", 8_800), ("running", 9_098)]
