"""`emp-tui sim` on a real 3-master Redis Cluster (started once per test session), writing a
stream of four shards: its job queue's scripts run on the node of the queue's hash slot, and
what it emits is read back by `emp-tui search` (told the shard count, and not told it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import orjson
import pytest
from test_demo_cli import Running

from emp_tui.topology import client_for_url, shard_keys

JOBS = 25


def run(*args: str, shards: str | None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "TZ": "UTC"}
    env.pop("EMP_EVENTS_SHARDS", None)
    if shards is not None:
        env["EMP_EVENTS_SHARDS"] = shards
    return subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, timeout=180, env=env
    )


def test_sim_at_speed_max_on_a_cluster_is_read_back_by_search(cluster_url: str) -> None:
    done = run(
        *("emp_tui.demo", "sim", "--redis-url", cluster_url, "--jobs", str(JOBS)),
        *("--speed", "max", "--no-faults", "--seed", "7"),
        shards="4",
    )
    assert done.returncode == 0, done.stderr
    assert "done:" in done.stdout
    client = client_for_url(cluster_url)
    try:
        lengths = [client.xlen(key) for key in shard_keys("emp:events", 4)]
        assert all(lengths), lengths  # every shard got events
        assert not client.exists("emp:events")
        assert list(client.scan_iter(match="{emp:demo:*")) == []  # the queue cleaned up
    finally:
        client.close()
    for shards in ("4", None):  # told, and found from the emitters' record
        search = run("emp_tui.cli", "--redis-url", cluster_url, "search", "--json", shards=shards)
        assert search.returncode == 0, search.stderr
        assert search.stderr == ""
        events = [orjson.loads(line) for line in search.stdout.splitlines()]
        assert len(events) == sum(lengths)
        types = [event["eventType"] for event in events]
        assert types.count("job.created") == JOBS
        assert sum(t in ("job.completed", "job.failed") for t in types) == JOBS
        # One job's events are on one shard, and read back whole and in order.
        job = next(event["jobId"] for event in events if event["eventType"] == "job.created")
        timeline = run(
            *("emp_tui.cli", "--redis-url", cluster_url, "timeline", job, "--json"),
            shards=shards,
        )
        assert timeline.returncode == 0, timeline.stderr
        assert job in timeline.stdout


def test_demo_uses_a_cluster_it_is_given(cluster_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMP_EVENTS_SHARDS", "4")
    run = Running("demo", "--no-app", "--history", "20", "--redis-url", cluster_url)
    try:
        run.wait_for("using your Redis at redis\\+cluster://")
        run.wait_for(r"\d+ events \(\d+/s\)")
        run.proc.send_signal(signal.SIGINT)
        assert run.finish() == 0
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait()
    assert not any("started redis-server" in line for line in run.lines)
    client = client_for_url(cluster_url)
    try:
        assert all(client.xlen(key) for key in shard_keys("emp:events", 4))
        assert list(client.scan_iter(match="{emp:demo:*")) == []  # its queue removed
    finally:
        client.close()
