"""The emitter's spill: events it could not hand to Redis, kept in local JSON-lines files until
they can be replayed into the stream. No Redis here; the emitter (emp_tui.telemetry) decides
when to spill and replays what :meth:`Spill.read` gives back.

Layout, in the spill directory (created 0700; files 0600):

- ``spill-<service>-<pid>-<token>.cursor``: the replay position, ``<segment> <offset>``. Its
  owner holds an exclusive ``flock`` on it for as long as it lives; a cursor nobody holds
  belongs to an emitter that is gone, and another emitter (of any service, in any process)
  adopts its files and replays them (:meth:`Spill.adopt_orphans`).
- ``spill-<service>-<pid>-<token>.<segment>.jsonl``: the events, one JSON object per line in
  the wire format of files (what the collector writes and ``emp-tui --file`` reads; no stream
  ``id`` yet). Appended at the tail in one write per batch, replayed from the head; a segment
  is removed once replayed, so the disk holds what is still to be sent.

A crash between Redis taking a batch and the cursor moving past it replays that batch again:
delivery is at least once, and readers collapse the copies by their ``eventId``.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

__all__ = ["Spill", "SpillRead", "spill_group_name"]

log = logging.getLogger(__name__)

PREFIX: Final = "spill-"
CURSOR_SUFFIX: Final = ".cursor"
SEGMENT_BYTES: Final = 4 << 20
"""A segment is closed for appending past this size (or an eighth of the bound, if smaller)."""
_SEGMENT: Final = re.compile(r"\.(\d{6,})\.jsonl\Z")
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_.-]+")
_READ_BLOCK: Final = 1 << 20


def spill_group_name(service: str, pid: int, token: str) -> str:
    """The common stem of one emitter's spill files (see the module's doc)."""
    safe = _UNSAFE.sub("_", service).strip("._") or "service"
    return f"{PREFIX}{safe[:64]}-{pid}-{token}"


@dataclass(eq=False)
class _Segment:
    path: Path
    number: int
    size: int
    offset: int = 0
    """Bytes of it already replayed."""
    runs: deque[list[int]] | None = None
    """Its lines as runs ``[count, counted]``, in order, for segments this emitter wrote
    (counted: events of the emitter's caller, rather than its own notes); None for adopted
    segments, whose lines count for nobody's statistics."""


@dataclass(eq=False)
class _Group:
    """One emitter's files: its cursor (locked) and segments, oldest first."""

    stem: str
    cursor_fd: int
    segments: deque[_Segment] = field(default_factory=deque)
    append_fd: int | None = None

    def write_cursor(self) -> None:
        head = self.segments[0] if self.segments else None
        text = f"{head.number} {head.offset}\n" if head else "0 0\n"
        os.pwrite(self.cursor_fd, text.encode(), 0)
        os.ftruncate(self.cursor_fd, len(text))


@dataclass
class SpillRead:
    """Lines from the head of the spill (without their newlines), to be replayed. ``counted``
    says, per line, whether it is one of this emitter's caller's events."""

    lines: list[bytes]
    counted: list[bool]
    _group: _Group = field(repr=False)
    _segment: _Segment = field(repr=False)
    _ends: list[int] = field(repr=False)


class Spill:
    """One emitter's spill files in ``directory``: appended to by :meth:`append`, replayed
    through :meth:`read` and :meth:`consume`. ``max_bytes`` bounds what this emitter keeps on
    disk (adopted files do not count against it). Every method runs on the emitter's flusher
    thread; OSError is raised to it (the directory cannot be made, a disk is full)."""

    def __init__(self, directory: Path, stem: str, max_bytes: int) -> None:
        self.directory = directory
        self.stem = stem
        self.max_bytes = max_bytes
        self.segment_bytes = max(64 << 10, min(SEGMENT_BYTES, max_bytes // 8))
        self._own: _Group | None = None
        self._adopted: deque[_Group] = deque()
        self._next_number = 1
        self.own_bytes = 0
        """Bytes of this emitter's own segments on disk."""
        self.pending_lines = 0
        """Lines not replayed yet, adopted ones included."""
        self.pending_counted = 0
        """Of those, the caller's events written by this emitter."""

    # -- writing ---------------------------------------------------------------------------

    def _ensure_directory(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _own_group(self) -> _Group:
        if self._own is None:
            self._ensure_directory()
            # Locked before it has its name, so that no one ever sees it unlocked.
            final = self.directory / f"{self.stem}{CURSOR_SUFFIX}"
            temporary = self.directory / f".{self.stem}.new"
            fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.rename(temporary, final)
            except OSError:
                os.close(fd)
                raise
            self._own = _Group(self.stem, fd)
            self._own.write_cursor()
        return self._own

    def append(self, data: bytes, lines: int, *, counted: bool) -> bool:
        """Append ``lines`` whole lines (``data``, newline-terminated) in one write. False,
        writing nothing, when they would take this emitter past ``max_bytes``. Raises OSError
        when the write fails (what it wrote of the lines is cut off again)."""
        if not lines:
            return True
        if self.own_bytes + len(data) > self.max_bytes:
            return False
        group = self._own_group()
        tail = group.segments[-1] if group.segments else None
        if tail is None or tail.size >= self.segment_bytes or group.append_fd is None:
            tail = self._new_segment(group)
        assert group.append_fd is not None
        try:
            written = os.write(group.append_fd, data)
            while written < len(data):
                written += os.write(group.append_fd, data[written:])
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(group.append_fd, tail.size)
            raise
        tail.size += len(data)
        self.own_bytes += len(data)
        assert tail.runs is not None
        if tail.runs and bool(tail.runs[-1][1]) == counted:
            tail.runs[-1][0] += lines
        else:
            tail.runs.append([lines, int(counted)])
        self.pending_lines += lines
        if counted:
            self.pending_counted += lines
        return True

    def _new_segment(self, group: _Group) -> _Segment:
        if group.append_fd is not None:
            os.close(group.append_fd)
            group.append_fd = None
        number = self._next_number
        self._next_number += 1
        path = self.directory / f"{group.stem}.{number:06d}.jsonl"
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC | os.O_CLOEXEC
        group.append_fd = os.open(path, flags, 0o600)
        segment = _Segment(path, number, 0, runs=deque())
        group.segments.append(segment)
        return segment

    # -- replaying -------------------------------------------------------------------------

    @property
    def pending(self) -> bool:
        return self.pending_lines > 0 or any(g.segments for g in self._groups())

    def _groups(self) -> list[_Group]:
        return [*self._adopted, *([self._own] if self._own is not None else [])]

    def read(self, max_lines: int) -> SpillRead | None:
        """Up to ``max_lines`` lines from the head (adopted files first, then this emitter's
        own), all from one segment; None when everything was replayed. A last line without
        its newline (cut short by a crash) is left out."""
        for group in self._groups():
            while group.segments:
                segment = group.segments[0]
                lines, ends = self._read_lines(segment, max_lines)
                if lines:
                    return SpillRead(
                        lines, self._counted(segment, len(lines)), group, segment, ends
                    )
                if segment is group.segments[-1] and group is self._own:
                    break  # the tail being written: nothing more to read yet
                self._finish_segment(group, segment)
            if group is not self._own and not group.segments:
                self._release(group)
        return None

    def _read_lines(self, segment: _Segment, max_lines: int) -> tuple[list[bytes], list[int]]:
        lines: list[bytes] = []
        ends: list[int] = []
        with open(segment.path, "rb") as stream:
            stream.seek(segment.offset)
            position = segment.offset
            rest = b""
            while len(lines) < max_lines:
                block = stream.read(_READ_BLOCK)
                if not block:
                    break
                block = rest + block
                start = 0
                while len(lines) < max_lines:
                    cut = block.find(b"\n", start)
                    if cut < 0:
                        break
                    lines.append(block[start:cut])
                    position += cut + 1 - start
                    ends.append(position)
                    start = cut + 1
                rest = block[start:]
        return lines, ends

    @staticmethod
    def _counted(segment: _Segment, count: int) -> list[bool]:
        if segment.runs is None:
            return [False] * count
        out: list[bool] = []
        for run_count, counted in segment.runs:
            take = min(run_count, count - len(out))
            out.extend([bool(counted)] * take)
            if len(out) == count:
                break
        return out

    def consume(self, read: SpillRead, lines: int) -> None:
        """The first ``lines`` lines of ``read`` reached Redis (or were given up on): move the
        cursor past them; a segment wholly replayed is removed."""
        if lines <= 0:
            return
        segment, group = read._segment, read._group
        segment.offset = read._ends[lines - 1]
        self.pending_lines = max(0, self.pending_lines - lines)
        counted = sum(read.counted[:lines])
        self.pending_counted = max(0, self.pending_counted - counted)
        runs = segment.runs
        left = lines
        while runs and left:
            take = min(runs[0][0], left)
            runs[0][0] -= take
            left -= take
            if not runs[0][0]:
                runs.popleft()
        if segment.offset >= segment.size and group.segments and group.segments[0] is segment:
            self._finish_segment(group, segment)
        group.write_cursor()

    def _finish_segment(self, group: _Group, segment: _Segment) -> None:
        group.segments.remove(segment)
        if group is self._own:
            self.own_bytes -= segment.size
            if not group.segments and group.append_fd is not None:
                os.close(group.append_fd)
                group.append_fd = None
        with contextlib.suppress(FileNotFoundError):
            segment.path.unlink()
        group.write_cursor()

    # -- files left by emitters that are gone ------------------------------------------------

    def adopt_orphans(self) -> int:
        """Take over the spill files of emitters that are gone (their cursor unlocked): they
        are replayed before this emitter's own. Returns how many lines were adopted."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return 0
        taken = {g.stem for g in self._groups()}
        adopted = 0
        for name in sorted(names):
            if not (name.startswith(PREFIX) and name.endswith(CURSOR_SUFFIX)):
                continue
            stem = name[: -len(CURSOR_SUFFIX)]
            if stem in taken:
                continue
            group = self._try_lock(stem)
            if group is not None:
                adopted += self._load(group, names)
        return adopted

    def _try_lock(self, stem: str) -> _Group | None:
        try:
            fd = os.open(self.directory / f"{stem}{CURSOR_SUFFIX}", os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            return None  # removed meanwhile by whoever replayed it
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return None  # its owner is alive (or someone else is adopting it)
        if not (self.directory / f"{stem}{CURSOR_SUFFIX}").exists():
            os.close(fd)  # replayed and removed between the listing and the lock
            return None
        return _Group(stem, fd)

    def _load(self, group: _Group, names: list[str]) -> int:
        cursor = os.pread(group.cursor_fd, 64, 0).split()
        head = int(cursor[0]) if len(cursor) == 2 and cursor[0].isdigit() else 0
        offset = int(cursor[1]) if len(cursor) == 2 and cursor[1].isdigit() else 0
        numbered: list[tuple[int, Path]] = []
        for name in names:
            found = _SEGMENT.search(name)
            if (
                name.startswith(group.stem + ".")
                and found
                and len(name) == len(group.stem) + len(found.group(0))
            ):
                numbered.append((int(found.group(1)), self.directory / name))
        lines = 0
        for number, path in sorted(numbered):
            if number < head:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()  # replayed before its owner went
                continue
            size = _whole_lines_size(path)
            start = offset if number == head else 0
            segment = _Segment(path, number, size, offset=min(start, size))
            lines += _count_lines(path, segment.offset, size)
            group.segments.append(segment)
        if not group.segments:
            self._release(group)
            return 0
        self._adopted.append(group)
        self.pending_lines += lines
        log.info(
            "telemetry: replaying %d spilled events left by %s", lines, group.stem[len(PREFIX) :]
        )
        return lines

    def _release(self, group: _Group) -> None:
        """A group whose files were all replayed: remove its cursor, then let go of it."""
        if group in self._adopted:
            self._adopted.remove(group)
        with contextlib.suppress(FileNotFoundError):
            (self.directory / f"{group.stem}{CURSOR_SUFFIX}").unlink()
        os.close(group.cursor_fd)

    # -- the end ---------------------------------------------------------------------------

    def close(self) -> None:
        """Let go of every file; what was not replayed stays for an emitter to come. An own
        spill wholly replayed leaves nothing behind."""
        for group in list(self._adopted):
            os.close(group.cursor_fd)
        self._adopted.clear()
        own, self._own = self._own, None
        if own is not None:
            if own.append_fd is not None:
                os.close(own.append_fd)
            if not own.segments:
                with contextlib.suppress(FileNotFoundError):
                    (self.directory / f"{own.stem}{CURSOR_SUFFIX}").unlink()
            os.close(own.cursor_fd)

    def forget(self) -> None:
        """In a forked child: close the descriptors inherited from the parent without
        touching its files or its locks (the parent's own descriptors keep them)."""
        fds = [g.cursor_fd for g in self._adopted]
        if self._own is not None:
            fds.append(self._own.cursor_fd)
            if self._own.append_fd is not None:
                fds.append(self._own.append_fd)
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._adopted.clear()
        self._own = None


def _whole_lines_size(path: Path) -> int:
    """The size of ``path`` up to its last newline; a line a crash cut short is cut off."""
    size = path.stat().st_size
    if not size:
        return 0
    with open(path, "r+b") as stream:
        position = size
        while position > 0:
            start = max(0, position - _READ_BLOCK)
            stream.seek(start)
            block = stream.read(position - start)
            cut = block.rfind(b"\n")
            if cut >= 0:
                whole = start + cut + 1
                break
            position = start
        else:
            whole = 0
        if whole < size:
            stream.truncate(whole)
    return whole


def _count_lines(path: Path, start: int, end: int) -> int:
    count = 0
    with open(path, "rb") as stream:
        stream.seek(start)
        left = end - start
        while left > 0:
            block = stream.read(min(_READ_BLOCK, left))
            if not block:
                break
            count += block.count(b"\n")
            left -= len(block)
    return count
