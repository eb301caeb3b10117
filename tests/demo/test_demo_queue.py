"""The simulated platform's job queue, against a real redis-server."""

from __future__ import annotations

import threading

import pytest
import redis

from emp_tui.demo.queue import JobQueue

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
