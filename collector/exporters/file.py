"""JSON-lines files: one event per line with its stream ``id``, rotated by size.

A batch is one ``write`` to a file opened with ``O_APPEND``, so lines are never interleaved;
a write that fails half-way is cut back to where it started, and a line a crash cut short is
cut off at start-up (its batch was not acked, so it is read and written again). Duplicates
after a crash carry the same ``id``.

Batches are turned into lines when they are offered and written in order by the one
consumer of a small queue. A failed write (a full disk)
is retried with backoff until it succeeds; meanwhile the queue fills and reading pauses, and
nothing is acked: there is no spool for a disk that cannot be written.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Final

from collector.batch import Batch
from collector.exporters import OK, Outcome, Result
from collector.exporters.queue import SendingQueue
from collector.exporters.retry import RetryPolicy
from collector.files import make_dirs, open_for_append
from collector.health import Health

log = logging.getLogger("collector.file")

QUEUE_SIZE: Final = 1  # a batch of up to read_count entries waits while one is written
_RETRY: Final = RetryPolicy(window=float("inf"), base=0.2, cap=10.0)


class FileWriter:
    """The events file: appends whole batches, rotates by size, repairs a cut-off tail."""

    def __init__(self, path: Path, *, max_bytes: int, backups: int, fsync: bool, mode: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self.fsync = fsync
        self.mode = mode
        self._fd: int | None = None
        self._size = 0

    def open(self) -> None:
        make_dirs(self.path.parent, self.mode)
        self._open()
        self._repair_tail()

    def _open(self) -> None:
        self._fd = open_for_append(self.path, self.mode)
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

    def write(self, data: bytes) -> None:
        """Append ``data`` (whole lines) in one write, rotating first when it would not fit.
        Raises OSError; a failed write leaves the file as it was."""
        if self._fd is None:
            self._open()
        assert self._fd is not None
        self._size = os.fstat(self._fd).st_size  # another writer may have appended
        if self._size > 0 and self._size + len(data) > self.max_bytes:
            self._rotate()
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

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class FileExporter:
    name = "file"
    error: str | None = None

    def __init__(self, writer: FileWriter, health: Health, stopping: asyncio.Event) -> None:
        self.writer = writer
        self.health = health
        self.stopping = stopping
        self.queue: SendingQueue[tuple[Batch, bytes, int]] = SendingQueue(
            "file", size=QUEUE_SIZE, consumers=1, handle=self._write
        )
        self._failing = False
        self.fast_lines = 0  # lines written straight from an entry's fields (no event built)

    async def start(self) -> None:
        self.writer.open()
        self.queue.start()

    async def offer(self, batch: Batch) -> bool:
        content = batch.content
        assert content is not None
        # The lines are built now, so that only they wait in the queue, not the entries.
        data = content.json_lines()
        self.fast_lines += content.fast_lines
        batch.hold()
        if await self.queue.put((batch, data, len(content)), self.stopping):
            return True
        batch.release()  # not taken: the collector's own hold keeps it unacked
        return False

    async def _write(self, item: tuple[Batch, bytes, int]) -> None:
        batch, data, count = item

        async def attempt() -> Result:
            try:
                self.writer.write(data)
            except OSError as exc:
                return Result(Outcome.UNAVAILABLE, f"{exc.strerror or exc}")
            return OK

        result = await _RETRY.run(attempt, stopping=self.stopping, on_retry=self._retrying)
        if result.outcome is not Outcome.OK:
            # Stopping: not written, not released; the entries stay pending in Redis.
            log.error(
                "%d events not written to %s (%s); they stay unacknowledged",
                count,
                self.writer.path,
                result.detail,
            )
            return
        if self._failing:
            self._failing = False
            log.info("%s is written again", self.writer.path)
        self.health.written += count
        batch.release()

    def _retrying(self, result: Result, wait: float) -> None:
        if not self._failing:
            self._failing = True
            log.error(
                "cannot write %s: %s; retrying (reading pauses once the queue is full, "
                "nothing is acked)",
                self.writer.path,
                result.detail,
            )
        else:
            path, detail = self.writer.path, result.detail
            log.debug("still cannot write %s (%s); next try in %.1f s", path, detail, wait)

    async def close(self, deadline: float) -> None:
        left = await self.queue.close(deadline)
        if left:
            log.error(
                "shutdown: %d events were not written in time; they stay pending in Redis",
                sum(count for _, _, count in left),
            )
        self.writer.close()
