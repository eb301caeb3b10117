"""Secrets are never printed: every output path of the collector, the CLI and the emitter is
run with test secrets in its URLs and headers, and its output is searched for them."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from collector_helpers import REPO, CollectorProcess, Receiver, emit, wait_until
from redisproc import RedisProcess

pytestmark = pytest.mark.redis

# Each secret is distinct, so a leak says which one leaked.
REDIS_PASSWORD = "redispw-7f3a9c"
URL_PASSWORD = "urlpw-51be02"
URL_TOKEN = "apikey-c0ffee"
API_KEY = "dash0key-9d8e7f"
HONEYCOMB = "honeycomb-4b4b4b"
COOKIE = "cookie-a1a1a1"
X_PASSWORD = "xpw-2c2c2c"
SECRETS = (REDIS_PASSWORD, URL_PASSWORD, URL_TOKEN, API_KEY, HONEYCOMB, COOKIE, X_PASSWORD)

ENV_CLEAN = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}


def leaks(*outputs: str | bytes) -> list[str]:
    text = "".join(o.decode(errors="replace") if isinstance(o, bytes) else o for o in outputs)
    return [secret for secret in SECRETS if secret in text]


EMP_TUI = str(Path(sys.executable).parent / "emp-tui")  # the console script, as users run it


def run(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``python ARGV...``, or the emp-tui command when ARGV starts with it."""
    command = list(argv) if argv[0] == EMP_TUI else [sys.executable, *argv]
    return subprocess.run(
        command,
        env={**ENV_CLEAN, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def locked_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server that wants a password, reached with the documented unix:// form."""
    (tmp_path / "redis").mkdir()
    with RedisProcess(tmp_path / "redis", extra_args=["--requirepass", REDIS_PASSWORD]) as server:
        yield server


def otlp_env(redis_url: str, endpoint: str) -> dict[str, str]:
    return {
        "REDIS_URL": redis_url,
        "DASH0_ENABLED": "true",
        "DASH0_OTEL_ENDPOINT": endpoint,
        "DASH0_API_KEY": API_KEY,
        "DASH0_DATASET": "emp-dev",
        "OTEL_EXPORTER_OTLP_HEADERS": (
            f"X-Honeycomb-Team={HONEYCOMB},Cookie=s%3D{COOKIE},x-password={X_PASSWORD}"
        ),
    }


def test_the_collector_prints_no_secret_at_start_up_on_export_failures_or_in_its_config(
    locked_redis: RedisProcess, tmp_path: Path
) -> None:
    redis_url = f"unix://{locked_redis.socket}?password={REDIS_PASSWORD}"
    receiver = Receiver(down_until=time.monotonic() + 2.0).start()  # 503 first: warnings
    endpoint = f"http://emp:{URL_PASSWORD}@127.0.0.1:{receiver.port}/?api_key={URL_TOKEN}"
    env = {
        **otlp_env(redis_url, endpoint),
        "EMP_COLLECTOR_LOG_PATH": str(tmp_path / "logs" / "events.log"),
        "EMP_COLLECTOR_CONSUMER": "c1",
        "EMP_COLLECTOR_BLOCK_MS": "100",
        "EMP_COLLECTOR_BATCH_INTERVAL": "0.2",
        "EMP_COLLECTOR_HEALTH_INTERVAL": "0.2",
        "EMP_COLLECTOR_LOG_LEVEL": "debug",  # every message the collector has
    }
    client = locked_redis.client(password=REDIS_PASSWORD)
    proc = CollectorProcess(env, tmp_path / "collector.err")
    proc.env = {**ENV_CLEAN, **env}  # nothing from this machine
    proc.start()
    try:
        written = emit(client, 50)
        wait_until(lambda: len(receiver.accepted_ids()) == 50, what="exported after the 503s")
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0, proc.output()
    finally:
        proc.stop_quietly()
        receiver.stop()
        client.close()
    out = proc.output()
    assert "OTLP export to http://emp:***@127.0.0.1" in out  # the failure was reported
    assert "?api_key=***" in out and f"?password={REDIS_PASSWORD}" not in out
    assert leaks(out) == [], out
    assert sorted(receiver.accepted_ids()) == sorted(written)
    # The URL still works as given: /v1/logs before the query, its credentials sent.
    assert set(receiver.paths) == {f"/v1/logs?api_key={URL_TOKEN}"}
    assert receiver.received[0].headers["authorization"] == f"Bearer {API_KEY}"

    done = run("-m", "collector", "--print-config", env=env)
    assert done.returncode == 0, done.stderr
    assert leaks(done.stdout, done.stderr) == [], done.stdout
    assert "Dash0-Dataset=emp-dev" in done.stdout and "X-Honeycomb-Team=***" in done.stdout


def test_dead_letters_hold_the_request_but_not_the_endpoints_secrets(
    redis_url: str, rclient: redis.Redis, tmp_path: Path
) -> None:
    receiver = Receiver(script=[(400, {}, b"no")]).start()
    endpoint = f"http://emp:{URL_PASSWORD}@127.0.0.1:{receiver.port}/?api_key={URL_TOKEN}"
    env = {
        **otlp_env(redis_url, endpoint),
        "EMP_COLLECTOR_LOG_PATH": str(tmp_path / "logs" / "events.log"),
        "EMP_COLLECTOR_CONSUMER": "c1",
        "EMP_COLLECTOR_BLOCK_MS": "100",
        "EMP_COLLECTOR_BATCH_INTERVAL": "0.2",
    }
    emit(rclient, 5)
    proc = CollectorProcess(env, tmp_path / "collector.err").start()
    dead = tmp_path / "logs" / "dead-letter.jsonl"
    try:
        wait_until(lambda: dead.exists() and dead.stat().st_size > 0, what="a dead letter")
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0, proc.output()
    finally:
        proc.stop_quietly()
        receiver.stop()
    assert leaks(dead.read_bytes(), proc.output()) == []
    assert b"job_1" in dead.read_bytes()  # the request itself is kept


@pytest.mark.parametrize(
    "redis_url",
    [
        f"unix:///nonexistent/redis.sock?password={REDIS_PASSWORD}",
        f"redis://:{REDIS_PASSWORD}@127.0.0.1:1/0",
        f"rediss://default:{REDIS_PASSWORD}@127.0.0.1:1/0",
    ],
)
def test_health_errors_show_no_secret(redis_url: str) -> None:
    done = run("-m", "collector", "--health", env={"REDIS_URL": redis_url})
    assert done.returncode == 3
    assert done.stderr.startswith("emp-collector: cannot read health from ")
    assert leaks(done.stdout, done.stderr) == [], done.stderr


@pytest.mark.parametrize(
    "env",
    [
        {"OTEL_EXPORTER_OTLP_ENDPOINT": f"ftp://u:{URL_PASSWORD}@h"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": f"otel:4318?api_key={URL_TOKEN}"},
        {"DASH0_ENABLED": "true", "DASH0_OTEL_ENDPOINT": f"https://u:{URL_PASSWORD}@h:port/"},
        {"REDIS_URL": f"ftp://u:{REDIS_PASSWORD}@h"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://h", "OTEL_EXPORTER_OTLP_HEADERS": HONEYCOMB},
    ],
)
def test_config_errors_show_no_secret(env: dict[str, str]) -> None:
    done = run("-m", "collector", env=env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("emp-collector: error:") and done.stderr.count("\n") == 1
    assert leaks(done.stdout, done.stderr) == [], done.stderr


@pytest.mark.parametrize(
    "redis_url",
    [
        f"unix:///nonexistent/redis.sock?password={REDIS_PASSWORD}",
        f"redis://u:{REDIS_PASSWORD}@127.0.0.1:notaport/0",
        f"redis://:{REDIS_PASSWORD}@127.0.0.1:1/0",
        f"ftp://u:{REDIS_PASSWORD}@h",
        f"redis://{REDIS_PASSWORD}@127.0.0.1:1/0",
    ],
)
def test_cli_errors_show_no_secret(redis_url: str) -> None:
    done = run(EMP_TUI, "search", "--redis-url", redis_url, "job:x", env={})
    assert done.returncode in (2, 3), done.stderr
    assert done.stderr.startswith("emp-tui:")
    assert leaks(done.stdout, done.stderr) == [], done.stderr


EMITTER = """
import logging, sys
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
from emp_tui.telemetry import EventClient
client = EventClient("api-server", redis_url=sys.argv[1], flush_interval=0.05)
for i in range(5):
    client.job_event(f"job_{i}", "job.created", {"n": i})
client.flush(1.0)
client.close()
"""


@pytest.mark.parametrize(
    "redis_url",
    [
        f"unix:///nonexistent/redis.sock?password={REDIS_PASSWORD}",
        f"redis://:{REDIS_PASSWORD}@127.0.0.1:1/0",
    ],
)
def test_the_emitters_warnings_show_no_secret(redis_url: str) -> None:
    done = run("-c", EMITTER, redis_url, env={})
    assert done.returncode == 0, done.stderr
    assert "unreachable" in done.stderr  # the warning was printed
    assert leaks(done.stdout, done.stderr) == [], done.stderr
