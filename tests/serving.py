"""A running `emp-tui serve` for the tests: its URL (read from the line it prints), the app
processes it started (one per browser tab), and a clean stop."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import pytest


class Served:
    """``command`` (an `emp-tui` invocation) run with ``serve`` and ``args``."""

    def __init__(
        self,
        command: Sequence[str | os.PathLike[str]],
        *args: str,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.proc = subprocess.Popen(
            [*map(str, command), "serve", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "EMP_TUI_CURSOR_BLINK": "0", **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
        self._stderr: str | None = None
        line = self._first_line()
        self.url = line.rsplit(" at ", 1)[1].split(" ", 1)[0]

    def _first_line(self, timeout: float = 60) -> str:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if " at http" not in line:
            self.stop()
            pytest.fail(f"serve printed {line!r}; stderr: {self.stderr}")
        return line

    def app_processes(self) -> list[int]:
        """The app processes (``emp_tui.cli`` without ``serve``) among serve's descendants."""
        parents: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue  # ended meanwhile
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        found, frontier = [], [self.proc.pid]
        while frontier:
            parent = frontier.pop()
            for pid, ppid in parents.items():
                if ppid != parent:
                    continue
                frontier.append(pid)
                try:
                    argv = (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue  # ended meanwhile
                if b"emp_tui.cli" in argv and b"serve" not in argv:
                    found.append(pid)
        return found

    def wait_for_apps(self, count: int, timeout: float = 60) -> list[int]:
        """Wait until exactly ``count`` app processes run; their pids."""
        deadline = time.monotonic() + timeout
        while len(apps := self.app_processes()) != count:
            if time.monotonic() > deadline:
                pytest.fail(f"expected {count} app processes, found {apps}")
            time.sleep(0.2)
        return apps

    @property
    def stderr(self) -> str:
        """What it wrote to stderr, once it has ended."""
        if self._stderr is None and self.proc.poll() is not None and self.proc.stderr:
            self._stderr = self.proc.stderr.read()
        return self._stderr or ""

    def stop(self) -> int:
        """SIGTERM, as a service manager would; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
            raise
        if self.proc.stdout:
            self.proc.stdout.close()
        return code
