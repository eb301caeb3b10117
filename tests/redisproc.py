"""A real redis-server for the tests: on a unix socket in its own temporary directory, so
that every test session is isolated and a test can kill and restart its server."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import redis

from emp_tui.demo.embedded import redis_server_binary, server_command, wait_until_serving


class RedisProcess:
    """One redis-server process. ``url`` stays the same across stop/start."""

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        extra_args: list[str] | None = None,
        binary: str | None = None,
    ) -> None:
        self.extra_args = list(extra_args or [])
        self._owned_dir = directory is None
        self.dir = Path(directory or tempfile.mkdtemp(prefix="emp-redis-"))
        self.socket = self.dir / "redis.sock"
        self.binary = binary or redis_server_binary()
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
            server_command(self.binary, self.dir, *self.extra_args),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        problem = wait_until_serving(self.proc, self.dir, timeout)
        if problem is not None:
            self.stop()
            raise RuntimeError(f"redis-server did not start: {problem}")
        return self

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
