"""JSON-lines files: one event per line with its stream ``id``, rotated by size.

A batch is one ``write`` to a file opened with ``O_APPEND``, so lines are never interleaved;
a write that fails half-way is cut back to where it started, and a line a crash cut short is
cut off at start-up (its batch was not acked, so it is read and written again). Duplicates
after a crash carry the same ``id``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from collector.health import Health
from collector.sinks import Batch, SinkError

log = logging.getLogger("collector.file")


class FileSink:
    name = "file"
    error: str | None = None

    def __init__(
        self, path: Path, *, max_bytes: int, backups: int, fsync: bool, health: Health
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self.fsync = fsync
        self.health = health
        self._fd: int | None = None
        self._size = 0

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._open()
        self._repair_tail()

    def _open(self) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._size = os.fstat(self._fd).st_size

    def _repair_tail(self) -> None:
        """Cut off a last line without its newline (a write a crash interrupted)."""
        if self._size == 0:
            return
        with open(self.path, "rb") as f:
            f.seek(max(0, self._size - 65536))
            tail = f.read()
        if tail.endswith(b"\n"):
            return
        cut = tail.rfind(b"\n")
        keep = self._size - len(tail) + cut + 1 if cut >= 0 else max(0, self._size - len(tail))
        if cut < 0 and self._size > len(tail):
            log.warning(
                "%s ends in a line longer than 64 KiB without a newline; left as is", self.path
            )
            return
        assert self._fd is not None
        os.ftruncate(self._fd, keep)
        log.warning(
            "cut off %d bytes of an unfinished line at the end of %s", self._size - keep, self.path
        )
        self._size = keep

    def _rotate(self) -> None:
        assert self._fd is not None
        os.close(self._fd)
        self._fd = None
        if self.backups > 0:
            oldest = self.path.with_name(f"{self.path.name}.{self.backups}")
            oldest.unlink(missing_ok=True)
            for index in range(self.backups - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{index}")
                if older.exists():
                    older.replace(self.path.with_name(f"{self.path.name}.{index + 1}"))
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink(missing_ok=True)
        self._open()

    async def take(self, batch: Batch) -> None:
        data = b"".join([event.to_json_line() for event in batch.events])
        try:
            if self._fd is None:
                self._open()
            assert self._fd is not None
            self._size = os.fstat(self._fd).st_size  # another writer may have appended
            if self._size > 0 and self._size + len(data) > self.max_bytes:
                self._rotate()
            self._write(data)
        except OSError as exc:
            raise SinkError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
        self.health.written += len(batch.events)

    def _write(self, data: bytes) -> None:
        fd = self._fd
        assert fd is not None
        start = self._size
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view) :]
            if self.fsync:
                os.fsync(fd)
        except OSError:
            # Never leave half a batch (half a line) behind: cut back to where we started.
            try:
                os.ftruncate(fd, start)
            except OSError as cut_exc:
                log.error("could not cut %s back after a failed write: %s", self.path, cut_exc)
            raise
        self._size = start + len(data)

    async def close(self, deadline: float) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
