"""Acceptance: an OTLP backend that answers 503 for a minute while events arrive at 2,000
events/s into a stream capped at 10,000 loses nothing, once the backend is back.

The stream holds 5 s of events; the outage lasts 60 s. Reading must never wait for the
backend (the sending queue, then the spool, take what it cannot), and what the collector
holds must not be counted lost when MAXLEN trims it from the stream."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest
import redis
from collector_helpers import STREAM, CollectorProcess, Receiver, base_env, emit, wait_until

pytestmark = pytest.mark.redis

RATE = 2000  # events/s
OUTAGE_S = 60.0
MAXLEN = 10_000


def emit_at_rate(client: redis.Redis, seconds: float, ids: list[str]) -> None:
    """XADD ``RATE`` events/s for ``seconds``, trimming to MAXLEN as emitters do."""
    step, per_step = 0.05, int(RATE * 0.05)
    started = time.monotonic()
    for n in range(int(seconds / step)):
        delay = started + n * step - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        ids.extend(emit(client, per_step, start=len(ids), maxlen=MAXLEN))


@pytest.mark.timeout(600)
def test_a_minute_of_503s_at_2000_events_a_second_loses_nothing(
    redis_url: str, rclient: redis.Redis, tmp_path: Path
) -> None:
    receiver = Receiver(keep_bodies=False, down_until=time.monotonic() + OUTAGE_S).start()
    env = base_env(
        redis_url,
        tmp_path,
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
        EMP_COLLECTOR_FILE="false",
        # The defaults for batching, the sending queue, retries, claims and reads.
        EMP_COLLECTOR_BATCH_INTERVAL="5",
        EMP_COLLECTOR_READ_COUNT="500",
        EMP_COLLECTOR_CLAIM_INTERVAL="10",
        EMP_COLLECTOR_HEALTH_INTERVAL="1",
    )
    proc = CollectorProcess(env, tmp_path / "collector.err").start()
    client = redis.Redis.from_url(redis_url)
    written: list[str] = []
    try:
        wait_until(lambda: rclient.exists("emp:collector:c1") == 1, what="collector running")
        emitter = threading.Thread(target=emit_at_rate, args=(client, OUTAGE_S, written))
        emitter.start()
        emitter.join()
        assert rclient.xlen(STREAM) <= MAXLEN  # most of what was written is gone from Redis
        wait_until(
            lambda: set(receiver.accepted_ids()) >= set(written),
            timeout=300,
            what="every event exported once the backend is back",
        )
        wait_until(lambda: rclient.hget("emp:collector:c1", "pending") == "0", what="acked")
        health = rclient.hgetall("emp:collector:c1")
        proc.signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, proc.output()[-3000:]
    finally:
        proc.stop_quietly()
        receiver.stop()
        client.close()
    assert len(written) == RATE * OUTAGE_S
    accepted = receiver.accepted_ids()
    assert set(accepted) == set(written)  # nothing lost, nothing foreign
    assert receiver.errors == []  # every request valid OTLP
    assert health["trimmed_lost"] == "0"
    assert int(health["retried"]) > 0 and int(health["spooled"]) > 0  # it was put to the test
    out = proc.output()
    assert "Traceback" not in out and ": lost" not in out, out[-3000:]
