"""The log index: a JSON-lines file's lines found once, their events decoded when asked for.
I/O (files), no Textual.

One pass over a file's bytes records, for every line, the time it stands at (its stream entry
ID's milliseconds, read from the bytes: the collector writes ``{"id":"<ms>-<seq>",...`` first)
and, a block of lines at a time, where the lines begin. No line is JSON-decoded on that pass
unless it lacks the ID where the collector puts it (an export's line, a malformed one).
Afterwards:

* a **time range** is a slice of lines found by bisection (:meth:`LogIndex.time_range`), and
  only those lines are read (:meth:`LogIndex.blocks_back`);
* **IDs** (``job:``, ``worker:``, ``machine:``, ``user:``: the query's required literals) are
  found by a byte search over the file (:meth:`LogIndex.find`), with the C library's
  ``memmem`` (through ctypes, which leaves the GIL to the app's screen meanwhile; Python's
  ``bytes.find``, at half its speed, where there is none), then only the lines that hold
  them are decoded (:func:`read_indexed`). Recording every ID per line would cost a Python
  step per line on the pass (a second or more per million lines), where the search costs
  about 0.04 s over a million lines and none until asked. The search needs no index: a plain
  file not indexed yet is searched as it is, not indexed first (which would cost a pass over
  it too);
* a **gzip'd** rotated file is decompressed once, into a copy kept with the index, and read
  like a plain one from then on.

The index is kept beside the logs (``.emp-index/`` in their directory, or the user's cache
directory when that one cannot be written), with the file's size, modification time and the
hashes of its first and last bytes: a second open reads it instead of the file; a file that
grew (the collector's live ``events.log``) is indexed from where the index stopped; a file
that changed otherwise is indexed again. The file's bytes are read with ``pread``, never
mapped whole, so that a reader's resident memory stays what it holds, not the file's size.

Lines are split at ``\\n`` (a ``\\r`` before it is JSON whitespace). A JSON array file (an
export) has no lines to index: :attr:`LogIndex.is_array`, read whole by
:func:`emp_tui.sources.read_file`.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import mmap
import operator
import os
import re
import sys
import threading
import zlib
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeAlias

from emp_tui.events import SeenEvents, TelemetryEvent
from emp_tui.query import Query
from emp_tui.sources import FileStats, SourceError, expand_paths, read_file
from emp_tui.stream_ids import order_key, parse_id

__all__ = [
    "INDEX_DIR",
    "LogIndex",
    "line_time",
    "open_index",
    "read_indexed",
]

VERSION: Final = 1
BLOCK: Final = 256 << 10
"""Bytes of lines per block: the unit read to reach one line."""
SEARCH: Final = 8 << 20
"""Bytes looked at at once by a byte search."""
INDEX_DIR: Final = ".emp-index"
"""The directory beside the logs that holds their indexes (and gzip'd files' copies)."""
_EDGE: Final = 4096
"""Bytes hashed at each end of a file to tell whether it changed."""
_MAGIC: Final = b"EMP-LOG-INDEX\n"
_UNKNOWN: Final = -1
_MAX_MS: Final = 2**63 - 1
_ID_KEY: Final = b'"id":"'
_FIRST: Final = re.compile(rb'\{"id":"(\d{1,18})-\d{1,20}"')
_NEXT: Final = re.compile(rb'\n\{"id":"(\d{1,18})-\d{1,20}"')
_NOT_AN_OBJECT: Final = ("line is not JSON", "line is not a JSON object")


def line_time(line: bytes) -> tuple[int | None, TelemetryEvent | None]:
    """The time one JSON line stands at, and its event when it had to be decoded to find it:
    the stream ID's, read from the bytes (the collector and exports write ``"id":"<ms>-<seq>"``
    first); else, decoded, a well-formed event's timestamp. None for a malformed event (its
    time cannot be trusted: a reader places it by its neighbours), a line that is not an
    event (the event says why) and a blank line (no event)."""
    at = line.find(_ID_KEY, 0, 24)
    if at >= 0:
        start = at + len(_ID_KEY)
        end = line.find(b'"', start, start + 42)
        parsed = parse_id(line[start:end]) if end > start else None
        if parsed is not None:
            return parsed[0], None
    if not line.strip():
        return None, None
    event = TelemetryEvent.from_json_line(line)
    if event.malformed is not None:
        return None, event
    return order_key(event.id, event.timestamp)[0], event


def not_an_event(event: TelemetryEvent) -> bool:
    """A line that is no JSON object at all (counted as corrupt, not shown)."""
    return event.malformed is not None and event.malformed.startswith(_NOT_AN_OBJECT)


# -- the index ------------------------------------------------------------------------------


@dataclass
class LogIndex:
    """One file's lines: ``ms[i]`` is the time line ``i`` stands at (a line without one, a
    blank or malformed line, stands at the next line's, as readers place it), and line
    ``block_lines[b]`` begins at byte ``block_offsets[b]`` of the file's bytes (gzip undone).
    Close it (or use it as a context manager) to release the file."""

    path: Path
    size: int
    """Bytes of the file's content (gzip undone)."""
    ms: array[int]
    block_offsets: array[int]
    block_lines: array[int]
    ordered: bool
    """The lines' times never go down (the collector's order): ranges are found by
    bisection; otherwise a range is every line, each checked."""
    is_array: bool = False
    reused: bool = False
    """Read from the sidecar (wholly, or extended by what the file gained since)."""
    note: str | None = None
    """Why the index could not be kept beside the file (it is then built on every open)."""
    _fd: int = -1
    _memory: bytes | None = None

    def __enter__(self) -> LogIndex:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._memory = None

    @property
    def lines(self) -> int:
        return len(self.ms)

    def read_at(self, offset: int, size: int) -> bytes:
        """``size`` bytes of the content from ``offset`` (fewer at its end)."""
        if self._memory is not None:
            return self._memory[offset : offset + size]
        try:
            return os.pread(self._fd, size, offset)
        except OSError as exc:
            raise SourceError(f"cannot read {self.path}: {exc.strerror or exc}") from None

    def _block(self, block: int) -> list[bytes]:
        start = self.block_offsets[block]
        end = self.block_offsets[block + 1] if block + 1 < len(self.block_offsets) else self.size
        lines = self.read_at(start, end - start).split(b"\n")
        if lines and not lines[-1]:
            lines.pop()  # the block ends with a newline
        return lines

    def blocks_back(self, start: int = 0, stop: int | None = None) -> Iterator[list[bytes]]:
        """Lines ``start`` to ``stop`` (excluded), the newest (last) first, a block at a
        time."""
        stop = self.lines if stop is None else min(stop, self.lines)
        if stop <= start:
            return
        block = bisect_right(self.block_lines, stop - 1) - 1
        while block >= 0:
            first = self.block_lines[block]
            lines = self._block(block)
            low = max(0, start - first)
            high = min(len(lines), stop - first)
            part = lines[low:high]
            part.reverse()
            yield part
            if first <= start:
                return
            block -= 1

    def timed_blocks_back(
        self, start: int = 0, stop: int | None = None
    ) -> Iterator[tuple[list[bytes], list[int]]]:
        """:meth:`blocks_back` with each line's time from the index (the next line's for a
        line without one of its own)."""
        stop = self.lines if stop is None else min(stop, self.lines)
        high = stop
        for part in self.blocks_back(start, stop):
            low = high - len(part)
            times = self.ms[low:high].tolist()
            times.reverse()
            yield part, times
            high = low

    def slice(self, start: int, stop: int) -> list[bytes]:
        """Lines ``start`` to ``stop`` (excluded), in file order."""
        out: list[bytes] = []
        for part in self.blocks_back(start, stop):
            part.reverse()
            out[:0] = part
        return out

    def time_range(self, since_ms: int | None, until_ms: int | None) -> tuple[int, int]:
        """The lines (``start``, ``stop``) that may stand between ``since_ms`` and
        ``until_ms`` (both inclusive): a bisection when the file is in time order, else all."""
        if not self.ordered or (self.ms and self.ms[0] == _UNKNOWN):
            return 0, self.lines  # out of order, or no line with a time: every line
        start = 0 if since_ms is None else bisect_left(self.ms, since_ms)
        stop = self.lines if until_ms is None else bisect_right(self.ms, until_ms)
        return start, max(start, stop)

    @property
    def first_ms(self) -> int | None:
        return self.ms[0] if self.ms and self.ms[0] != _UNKNOWN else None

    @property
    def last_ms(self) -> int | None:
        return self.ms[-1] if self.ms and self.ms[-1] != _UNKNOWN else None

    def find(self, needles: Iterable[bytes]) -> Iterator[bytes]:
        """The lines that hold one of ``needles``, in file order, each once: a byte search
        over the content, a large piece at a time (over the file mapped, each piece let go
        once searched, so that resident memory does not grow with the file)."""
        wanted = [needle for needle in needles if needle and b"\n" not in needle]
        if not wanted:
            return
        mapped = self._map()
        if mapped is not None:
            try:
                yield from _find_mapped(mapped, wanted)
            finally:
                mapped.close()
            return
        offset = 0
        while offset < self.size:
            piece = self.read_at(offset, SEARCH)
            if not piece:
                break
            end = len(piece)
            if offset + end < self.size:
                cut = piece.rfind(b"\n") + 1
                if cut > 0:  # else a line longer than a piece: looked at whole
                    end = cut
            yield from _lines_holding(piece, end, wanted)
            offset += end

    def _map(self) -> mmap.mmap | None:
        if self._memory is not None or self._fd < 0 or self.size == 0:
            return None
        try:
            # Copy-on-write, never written: the C library's memmem needs a writable view of
            # it (ctypes), and reading such a mapping copies nothing.
            return mmap.mmap(self._fd, self.size, access=mmap.ACCESS_COPY)
        except (OSError, ValueError):  # cannot be mapped: read in pieces instead
            return None


Finder = Callable[[bytes, int, int], int]
"""``find(needle, start, end)``: where ``needle`` first is in ``[start, end)``, else -1."""


@functools.cache
def _libc_memmem() -> Callable[..., int | None] | None:
    """The C library's ``memmem`` (glibc's, musl's, macOS's), None where there is none (it
    is then Python's search). Called through ctypes, it searches without holding the GIL:
    the app's screen is drawn meanwhile, and the search is about twice as fast as
    ``bytes.find``'s over these lines."""
    try:
        import ctypes

        memmem = ctypes.CDLL(None).memmem
    except (OSError, AttributeError, TypeError):
        return None
    memmem.restype = ctypes.c_void_p
    memmem.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t]
    found: Callable[..., int | None] = memmem
    return found


def _native_finder(data: mmap.mmap) -> tuple[Finder, object] | None:
    """A finder over ``data`` through ``memmem``, and the view it holds (to be let go before
    ``data`` is closed); None without ``memmem`` or a writable view."""
    memmem = _libc_memmem()
    if memmem is None:
        return None
    import ctypes

    try:
        view = (ctypes.c_char * len(data)).from_buffer(data)
    except (TypeError, ValueError, BufferError):
        return None
    base = ctypes.addressof(view)

    def find(needle: bytes, start: int, end: int) -> int:
        if end - start < len(needle):
            return -1
        at = memmem(base + start, end - start, needle, len(needle))
        return -1 if not at else at - base

    return find, view


def _find_mapped(data: mmap.mmap, needles: list[bytes]) -> Iterator[bytes]:
    native = _native_finder(data) if len(needles) < MANY_NEEDLES else None
    find: Finder = data.find if native is None else native[0]
    try:
        yield from _lines_found(data, needles, find)
    finally:
        del native  # the view goes before the mapping is closed


Haystack: TypeAlias = bytes | mmap.mmap


def _lines_found(data: mmap.mmap, needles: list[bytes], find: Finder) -> Iterator[bytes]:
    size = len(data)
    longest = max(len(needle) for needle in needles)
    pattern = _alternation(needles)
    last = -1  # the start of the last line yielded
    step = max(1, SEARCH // mmap.PAGESIZE) * mmap.PAGESIZE  # pieces let go page by page
    for low in range(0, size, step):
        high = min(size, low + step)
        reach = min(size, high + longest - 1)
        starts = _line_starts(data, needles, find, pattern, low, high, reach)
        for begin in starts:
            if begin <= last:
                continue
            end = data.find(b"\n", begin)
            yield data[begin : end if end >= 0 else size]
            last = begin
        if hasattr(mmap, "MADV_DONTNEED"):
            data.madvise(mmap.MADV_DONTNEED, low, high - low)  # searched: let its pages go


def _lines_holding(chunk: bytes, size: int, needles: list[bytes]) -> Iterator[bytes]:
    """The lines of ``chunk[:size]`` that hold one of ``needles``, in order, each once."""
    pattern = _alternation(needles)
    for begin in _line_starts(chunk, needles, chunk.find, pattern, 0, size, size):
        end = chunk.find(b"\n", begin, size)
        yield chunk[begin : end if end >= 0 else size]


MANY_NEEDLES: Final = 3
"""From this many needles on, one pass of a regular expression (the needles as a trie)
finds the lines, instead of a pass of ``memmem`` per needle: 150 job IDs over 67 MB take
0.035 s that way against 1.3 s (a Problems finding's "filter its 150 jobs"); one ID takes
0.008 s by ``memmem`` against 0.021 s, ten 0.026 s either way."""
TRIE_LONGEST: Final = 256
"""Needles longer than this are searched for as a plain alternation (the trie's nesting
grows with the needles' length)."""


def _alternation(needles: list[bytes]) -> re.Pattern[bytes] | None:
    """The needles as one expression, from :data:`MANY_NEEDLES` of them on (else None):
    shaped as their trie (``job_(?:0(?:1a|77)|c3)``), so that where the needles' common
    start matches, the rest costs a step per byte, not a try per needle (5,000 job IDs over
    74 MB: a plain alternation takes 2.2 s)."""
    if len(needles) < MANY_NEEDLES:
        return None
    if max(map(len, needles)) > TRIE_LONGEST:
        return re.compile(b"|".join(re.escape(needle) for needle in sorted(set(needles))))
    trie: _Trie = {}
    for needle in sorted(set(needles), key=len):  # the shorter first: they cover the longer
        node = trie
        for byte in needle:
            if _END in node:
                break  # a shorter needle is at the start of this one: it finds its lines
            node = node.setdefault(byte, {})
        else:
            node.clear()
            node[_END] = {}
    return re.compile(_trie_expression(trie))


_Trie: TypeAlias = "dict[int, _Trie]"
_END: Final = -1
"""The key that ends a needle in a trie node."""


def _trie_expression(node: _Trie) -> bytes:
    branches = []
    for byte in sorted(node):
        head, child = bytes([byte]), node[byte]
        while len(child) == 1 and _END not in child:  # a chain: literals, no group
            ((byte, child),) = child.items()
            head += bytes([byte])
        tail = b"" if _END in child else _trie_expression(child)
        branches.append(re.escape(head) + tail)
    if len(branches) == 1:
        return branches[0]
    return b"(?:" + b"|".join(branches) + b")"


def _line_starts(
    data: Haystack,
    needles: list[bytes],
    find: Finder,
    pattern: re.Pattern[bytes] | None,
    low: int,
    high: int,
    reach: int,
) -> list[int]:
    """Where the lines begin that hold one of ``needles`` at an offset in ``[low, high)``
    (a needle may run on up to ``reach``), in order: through ``pattern`` when there is
    one, one search from the end of each line found (the GIL is let go between lines);
    else each needle through ``find``."""
    starts: set[int] = set()
    if pattern is not None:
        at = low
        while at < high:
            match = pattern.search(data, at, reach)
            if match is None or match.start() >= high:
                break
            begin = data.rfind(b"\n", 0, match.start()) + 1
            starts.add(begin)
            end = data.find(b"\n", match.end())
            if end < 0:
                break
            at = end + 1
        return sorted(starts)
    for needle in needles:
        at = find(needle, low, reach)
        while 0 <= at < high:
            starts.add(data.rfind(b"\n", 0, at) + 1)
            at = find(needle, at + 1, reach)
    return sorted(starts)


# -- building -----------------------------------------------------------------------------


class _Builder:
    """The pass over a file's bytes, fed a piece at a time (so a gzip'd file is indexed as it
    is decompressed)."""

    def __init__(
        self, ms: array[int], block_offsets: array[int], block_lines: array[int], offset: int
    ) -> None:
        self.ms, self.block_offsets, self.block_lines = ms, block_offsets, block_lines
        self.offset = offset
        self.carry = b""

    def feed(self, piece: bytes) -> None:
        data = self.carry + piece if self.carry else piece
        at = 0
        while len(data) - at >= BLOCK:
            cut = data.rfind(b"\n", at, at + BLOCK) + 1
            if cut <= at:  # a line longer than a block
                cut = data.find(b"\n", at + BLOCK) + 1
                if cut <= 0:
                    break
            self._block(data[at:cut])
            at = cut
        self.carry = data[at:]

    def finish(self) -> None:
        if self.carry:
            cut = self.carry.rfind(b"\n") + 1
            if cut > 0:
                self._block(self.carry[:cut])
            if cut < len(self.carry):
                self._block(self.carry[cut:])  # a last line without its newline yet
            self.carry = b""

    def _block(self, chunk: bytes) -> None:
        self.block_offsets.append(self.offset)
        self.block_lines.append(len(self.ms))
        self.offset += len(chunk)
        count = chunk.count(b"\n") + (0 if chunk.endswith(b"\n") else 1)
        first = _FIRST.match(chunk)
        if first is not None:
            found = _NEXT.findall(chunk)
            if len(found) == count - 1:  # every line starts with its stream ID
                self.ms.append(int(first[1]))
                self.ms.extend(map(int, found))
                return
        lines = chunk.split(b"\n")
        if chunk.endswith(b"\n"):
            lines.pop()
        for line in lines:
            ms = line_time(line)[0]
            self.ms.append(_UNKNOWN if ms is None else min(ms, _MAX_MS))


def _fill(ms: array[int]) -> None:
    """A line without a time of its own stands at the next (newer) line's; the last lines,
    with none after them, at the one before."""
    if _UNKNOWN not in ms:
        return
    after = _UNKNOWN
    for i in range(len(ms) - 1, -1, -1):
        if ms[i] == _UNKNOWN:
            ms[i] = after
        else:
            after = ms[i]
    before = _UNKNOWN
    for i in range(len(ms)):
        if ms[i] == _UNKNOWN:
            ms[i] = before
        else:
            before = ms[i]


def _ordered(ms: array[int]) -> bool:
    return all(map(operator.le, ms, ms[1:]))


# -- the sidecar ----------------------------------------------------------------------------


def _index_dirs(path: Path) -> list[Path]:
    """Where ``path``'s index may be kept: beside it, else the user's cache directory."""
    beside = path.parent / INDEX_DIR
    digest = hashlib.sha1(str(path.parent.resolve()).encode(), usedforsecurity=False)
    return [beside, _cache_dir() / "log-index" / digest.hexdigest()]


def _cache_dir() -> Path:
    """The user's cache directory for emp-tui (platformdirs' when the app's dependencies are
    installed; the XDG one otherwise: the CLI reads logs without them)."""
    try:
        from platformdirs import user_cache_dir
    except ImportError:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(base) / "emp-tui"
    return Path(user_cache_dir("emp-tui", appauthor=False))


def _edges(fd: int, size: int) -> tuple[str, str]:
    head = os.pread(fd, _EDGE, 0)
    tail = os.pread(fd, _EDGE, max(0, size - _EDGE))
    return (
        hashlib.sha1(head, usedforsecurity=False).hexdigest(),
        hashlib.sha1(tail, usedforsecurity=False).hexdigest(),
    )


def _prefix_edges(fd: int, size: int) -> tuple[str, str]:
    """The hashes :func:`_edges` gave when the file was ``size`` bytes long."""
    head = os.pread(fd, min(_EDGE, size), 0)
    tail = os.pread(fd, min(_EDGE, size), max(0, size - _EDGE))
    return (
        hashlib.sha1(head, usedforsecurity=False).hexdigest(),
        hashlib.sha1(tail, usedforsecurity=False).hexdigest(),
    )


@dataclass
class _Sidecar:
    header: dict[str, object]
    ms: array[int]
    block_offsets: array[int]
    block_lines: array[int]


def _read_sidecar(path: Path) -> _Sidecar | None:
    """The index kept at ``path``, or None when there is none or it cannot be read (it is
    then built again: a cache never stops a read)."""
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    if not raw.startswith(_MAGIC):
        return None
    end = raw.find(b"\n", len(_MAGIC))
    try:
        header = json.loads(raw[len(_MAGIC) : end])
    except ValueError:
        return None
    if (
        not isinstance(header, dict)
        or header.get("v") != VERSION
        or header.get("byteorder") != sys.byteorder
    ):
        return None
    arrays: list[array[int]] = []
    at = end + 1
    for name in ("lines", "blocks", "blocks"):
        count = header.get(name)
        if not isinstance(count, int) or count < 0:
            return None
        values: array[int] = array("q")
        width = values.itemsize * count
        if at + width > len(raw):
            return None
        values.frombytes(raw[at : at + width])
        arrays.append(values)
        at += width
    return _Sidecar(header, *arrays)


def _write_sidecar(path: Path, header: dict[str, object], index: LogIndex) -> None:
    """Write the index (atomically: a reader never sees half of one). Raises OSError."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = {
        **header,
        "v": VERSION,
        "byteorder": sys.byteorder,
        "lines": len(index.ms),
        "blocks": len(index.block_offsets),
        "ordered": index.ordered,
    }
    temporary = _temporary(path)
    with temporary.open("wb") as out:
        out.write(_MAGIC + json.dumps(header).encode() + b"\n")
        out.write(index.ms.tobytes())
        out.write(index.block_offsets.tobytes())
        out.write(index.block_lines.tobytes())
    os.replace(temporary, path)


def _temporary(path: Path) -> Path:
    """A name beside ``path`` that no other process or thread writes to."""
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")


# -- opening --------------------------------------------------------------------------------


def open_index(path: Path, *, keep: bool = True, lines: bool = True) -> LogIndex:
    """``path`` indexed: from the index kept beside it when the file has not changed since
    (extended when it only grew), else by a pass over its bytes (and kept, when ``keep``).
    A gzip'd file is decompressed once into a copy kept with its index. With ``lines``
    false, a plain file is opened for :meth:`LogIndex.find` alone, its lines not indexed (a
    byte search needs no index, and building one would cost a pass that the search spares);
    a gzip'd one still goes through its index, whose copy is what is searched. Raises
    SourceError when the file cannot be read (or is not valid gzip)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        stat = os.fstat(fd)
        head = os.pread(fd, 64, 0)
        if head[:2] == b"\x1f\x8b":
            return _open_gzip(path, fd, stat, keep)
        if not lines:
            return LogIndex(
                path,
                stat.st_size,
                ms=array("q"),
                block_offsets=array("q"),
                block_lines=array("q"),
                ordered=True,
                is_array=_is_array_head(head),
                _fd=fd,
            )
        return _open_plain(path, fd, stat, keep)
    except SourceError:
        os.close(fd)
        raise
    except OSError as exc:
        os.close(fd)
        raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from None


def _is_array_head(head: bytes) -> bool:
    return head.lstrip()[:1] == b"["


def _sidecar_paths(path: Path, suffix: str) -> list[Path]:
    return [directory / f"{path.name}.{suffix}" for directory in _index_dirs(path)]


def _open_plain(path: Path, fd: int, stat: os.stat_result, keep: bool) -> LogIndex:
    size = stat.st_size
    if _is_array_head(os.pread(fd, 64, 0)):
        return LogIndex(path, size, array("q"), array("q"), array("q"), True, True, _fd=fd)
    edges = _edges(fd, size)
    header_of: dict[str, object] = {
        "size": size,
        "mtime_ns": stat.st_mtime_ns,
        "head": edges[0],
        "tail": edges[1],
    }
    places = _sidecar_paths(path, "idx") if keep else []
    for place in places:
        kept = _read_sidecar(place)
        if kept is None:
            continue
        header = kept.header
        if (
            header.get("size") == size
            and header.get("mtime_ns") == stat.st_mtime_ns
            and list(edges) == [header.get("head"), header.get("tail")]
        ):
            return LogIndex(
                path,
                size,
                kept.ms,
                kept.block_offsets,
                kept.block_lines,
                bool(header.get("ordered")),
                reused=True,
                _fd=fd,
            )
        old = header.get("size")
        if (
            isinstance(old, int)
            and 0 < old < size
            and kept.block_offsets
            and list(_prefix_edges(fd, old)) == [header.get("head"), header.get("tail")]
        ):
            index = _extend(path, fd, size, kept)
            return _kept(index, places, header_of)
        break  # the first index found is the file's: it changed, build it again
    index = _build_plain(path, fd, size)
    return _kept(index, places, header_of)


def _kept(index: LogIndex, places: list[Path], header: dict[str, object]) -> LogIndex:
    errors = []
    for place in places:
        try:
            _write_sidecar(place, header, index)
            return index
        except OSError as exc:
            errors.append(f"{place.parent}: {exc.strerror or exc}")
    if errors:
        index.note = "the log index cannot be kept (" + "; ".join(errors) + ")"
    return index


def _scan(fd: int, builder: _Builder, start: int, size: int) -> None:
    offset = start
    while offset < size:
        piece = os.pread(fd, min(SEARCH, size - offset), offset)
        if not piece:
            break
        offset += len(piece)
        builder.feed(piece)
    builder.finish()


def _build_plain(path: Path, fd: int, size: int) -> LogIndex:
    ms: array[int] = array("q")
    offsets: array[int] = array("q")
    lines: array[int] = array("q")
    _scan(fd, _Builder(ms, offsets, lines, 0), 0, size)
    _fill(ms)
    return LogIndex(path, size, ms, offsets, lines, _ordered(ms), _fd=fd)


def _extend(path: Path, fd: int, size: int, kept: _Sidecar) -> LogIndex:
    """The kept index of a file that grew: its last block indexed again (it may have ended
    in a line being written), then what was added."""
    ms, offsets, lines = kept.ms, kept.block_offsets, kept.block_lines
    start, first = offsets.pop(), lines.pop()
    del ms[first:]
    _scan(fd, _Builder(ms, offsets, lines, start), start, size)
    _fill(ms)
    return LogIndex(path, size, ms, offsets, lines, _ordered(ms), reused=True, _fd=fd)


def _open_gzip(path: Path, fd: int, stat: os.stat_result, keep: bool) -> LogIndex:
    """A gzip'd file: its copy decompressed and its index, kept together (rebuilt both when
    the compressed file changed); without a place to keep them, decompressed in memory."""
    edges = _edges(fd, stat.st_size)
    header: dict[str, object] = {
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "head": edges[0],
        "tail": edges[1],
    }
    for directory in _index_dirs(path) if keep else []:
        place = directory / f"{path.name}.idx"
        copy = directory / f"{path.name}.raw"
        kept = _read_sidecar(place)
        if kept is not None and all(header[k] == kept.header.get(k) for k in header):
            try:
                raw_fd = os.open(copy, os.O_RDONLY)
            except OSError:
                raw_fd = -1
            if raw_fd >= 0 and os.fstat(raw_fd).st_size == kept.header.get("raw_size"):
                os.close(fd)
                return LogIndex(
                    path,
                    os.fstat(raw_fd).st_size,
                    kept.ms,
                    kept.block_offsets,
                    kept.block_lines,
                    bool(kept.header.get("ordered")),
                    reused=True,
                    _fd=raw_fd,
                )
            if raw_fd >= 0:
                os.close(raw_fd)
        try:
            index = _decompress(path, fd, copy)
        except OSError:
            continue  # this place cannot take the copy: the next one
        try:
            _write_sidecar(place, {**header, "raw_size": index.size}, index)
        except OSError as exc:  # the copy serves this open; the next builds both again
            index.note = f"the log index cannot be kept ({place.parent}: {exc.strerror or exc})"
        return index
    index = _decompress(path, fd, None)
    if keep:
        index.note = "the log index of a gzip'd file cannot be kept: decompressed in memory"
    return index


def _decompress(path: Path, fd: int, copy: Path | None) -> LogIndex:
    """Decompress ``fd`` into ``copy`` (or memory when None) and index it as it goes. Raises
    OSError when the copy cannot be written, SourceError when the gzip is not valid."""
    ms: array[int] = array("q")
    offsets: array[int] = array("q")
    lines: array[int] = array("q")
    builder = _Builder(ms, offsets, lines, 0)
    held: list[bytes] = []
    out = None
    temporary = None
    if copy is not None:
        copy.parent.mkdir(parents=True, exist_ok=True)
        temporary = _temporary(copy)
        out = temporary.open("wb")
    size = 0
    try:
        with os.fdopen(os.dup(fd), "rb") as source, gzip.GzipFile(fileobj=source) as unzip:
            first = True
            while True:
                try:
                    piece = unzip.read(SEARCH)
                except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
                    raise SourceError(f"cannot read {path}: {exc}") from None
                if not piece:
                    break
                if first and _is_array_head(piece[:64]):
                    if out is not None and temporary is not None:
                        out.close()
                        temporary.unlink()
                    os.close(fd)
                    return LogIndex(path, 0, ms, offsets, lines, True, True)
                first = False
                size += len(piece)
                builder.feed(piece)
                if out is not None:
                    out.write(piece)
                else:
                    held.append(piece)
        builder.finish()
    except BaseException:
        if temporary is not None:
            temporary.unlink(missing_ok=True)
        raise
    finally:
        if out is not None:
            out.close()
    os.close(fd)
    _fill(ms)
    if copy is not None and temporary is not None:
        os.replace(temporary, copy)
        raw_fd = os.open(copy, os.O_RDONLY)
        return LogIndex(path, size, ms, offsets, lines, _ordered(ms), _fd=raw_fd)
    return LogIndex(path, size, ms, offsets, lines, _ordered(ms), _memory=b"".join(held))


# -- reading through indexes ---------------------------------------------------------------


def read_indexed(
    paths: Iterable[Path],
    query: Query | None = None,
    stats: FileStats | None = None,
    *,
    keep: bool = True,
    literals: Iterable[str] = (),
) -> Iterator[TelemetryEvent]:
    """The events of the files that match ``query``, in file order, each once, as
    :func:`emp_tui.sources.read_files` reads them, through each file's index: a query naming
    IDs decodes only the lines that hold them (a byte search), a query with time bounds only
    the lines in its range. A file that cannot be read is counted (``stats.unreadable``) and
    skipped; SourceError when no file could be read, or a path does not exist.
    ``literals``: besides the query's, strings one of which every event looked for holds
    verbatim (a trace ID, say)."""
    stats = stats if stats is not None else FileStats()
    seen = SeenEvents()
    literal_sets = [
        frozenset(lit.encode() for lit in group)
        for group in (query.required_literals() if query else ())
    ]
    extra = frozenset(literal.encode() for literal in literals if literal)
    if extra:
        literal_sets.insert(0, extra)
    files = expand_paths(paths)
    unreadable = 0
    for path in files:
        try:
            index = open_index(path, keep=keep, lines=not literal_sets)
        except SourceError as exc:
            stats.skip(str(exc))
            unreadable += 1
            continue
        with index:
            if index.is_array:
                yield from read_file(path, query, stats, seen)
                continue
            lines: Iterable[bytes]
            if literal_sets:
                first, others = literal_sets[0], literal_sets[1:]
                lines = (
                    line
                    for line in index.find(first)
                    if all(any(lit in line for lit in group) for group in others)
                )
            else:
                since = query.since_ms if query is not None else None
                until = query.until_ms if query is not None else None
                start, stop = index.time_range(since, until)
                lines = _forward(index, start, stop)
            for line in lines:
                if not line.strip():
                    continue
                event = TelemetryEvent.from_json_line(line)
                if not_an_event(event):
                    stats.problem(f"{path}: {event.malformed}")
                    continue
                if query is not None and not query.matches(event):
                    continue
                if not seen.first_time(event):
                    stats.duplicates += 1
                    continue
                stats.events += 1
                yield event
    if files and unreadable == len(files):
        raise SourceError(stats.unreadable[-1])


def _forward(index: LogIndex, start: int, stop: int) -> Iterator[bytes]:
    block = bisect_right(index.block_lines, start) - 1
    while block >= 0 and block < len(index.block_offsets):
        first = index.block_lines[block]
        if first >= stop:
            return
        lines = index._block(block)
        yield from lines[max(0, start - first) : stop - first]
        block += 1
