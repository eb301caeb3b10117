"""A bounded on-disk queue of OTLP request bodies: what the backend could not take in time,
and what did not fit the exporter's queue, kept until the backend answers again.

One file per request, ``<sequence>-<events>.otlp.json.gz``, written to a temporary name,
fsynced and renamed into place, so a crash leaves either a whole request or none. Items are
replayed oldest first; an item being replayed is *busy* until it is removed (exported or
dead-lettered) or given back (still unavailable).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from collector.files import DEFAULT_FILE_MODE, create, make_dirs

_SUFFIX = ".otlp.json.gz"


@dataclass(frozen=True, slots=True)
class SpoolItem:
    path: Path
    sequence: int
    events: int
    size: int


class Spool:
    def __init__(self, directory: Path, max_bytes: int, mode: int = DEFAULT_FILE_MODE) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.mode = mode
        self._items: dict[int, SpoolItem] = {}  # by sequence, oldest first
        self._busy: set[int] = set()
        self._next = 1
        self.bytes = 0

    def open(self) -> None:
        make_dirs(self.directory, self.mode)
        items: list[SpoolItem] = []
        for path in self.directory.iterdir():
            if path.name.endswith(".tmp"):
                path.unlink(missing_ok=True)  # a write a crash interrupted; its batch was not acked
                continue
            if not path.name.endswith(_SUFFIX):
                continue
            sequence, _, events = path.name.removesuffix(_SUFFIX).partition("-")
            if sequence.isdigit() and events.isdigit():
                items.append(SpoolItem(path, int(sequence), int(events), path.stat().st_size))
        items.sort(key=lambda item: item.sequence)
        self._items = {item.sequence: item for item in items}
        self._busy.clear()
        self._next = items[-1].sequence + 1 if items else 1
        self.bytes = sum(item.size for item in items)

    def __len__(self) -> int:
        return len(self._items)

    @property
    def events(self) -> int:
        return sum(item.events for item in self._items.values())

    @property
    def idle(self) -> int:
        """Items waiting to be replayed (not busy)."""
        return len(self._items) - len(self._busy)

    def has_room(self, size: int) -> bool:
        return self.bytes + size <= self.max_bytes or not self._items

    def append(self, body: bytes, events: int) -> SpoolItem:
        """Write one request; raises OSError (and keeps nothing) when it cannot."""
        sequence = self._next
        path = self.directory / f"{sequence:016d}-{events}{_SUFFIX}"
        tmp = path.with_name(path.name + ".tmp")
        fd = create(tmp, self.mode)
        try:
            view = memoryview(body)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        os.replace(tmp, path)
        self._next = sequence + 1
        item = SpoolItem(path, sequence, events, len(body))
        self._items[sequence] = item
        self.bytes += item.size
        return item

    def oldest(self) -> SpoolItem | None:
        """The oldest item that is not busy."""
        for sequence, item in self._items.items():
            if sequence not in self._busy:
                return item
        return None

    def take(self, item: SpoolItem) -> bytes:
        """Mark ``item`` busy and read its body (raises OSError)."""
        body = item.path.read_bytes()
        self._busy.add(item.sequence)
        return body

    def give_back(self, item: SpoolItem) -> None:
        """``item`` stays spooled and may be replayed again."""
        self._busy.discard(item.sequence)

    def remove(self, item: SpoolItem) -> None:
        item.path.unlink(missing_ok=True)
        if self._items.pop(item.sequence, None) is not None:
            self.bytes -= item.size
        self._busy.discard(item.sequence)
