"""A bounded on-disk queue of OTLP request bodies, kept while the backend is unreachable.

One file per batch, ``<sequence>-<events>.otlp.json.gz``, written to a temporary name and
renamed into place, so a crash leaves either a whole batch or none. Oldest first.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_SUFFIX = ".otlp.json.gz"


@dataclass(frozen=True, slots=True)
class SpoolItem:
    path: Path
    sequence: int
    events: int
    size: int


class Spool:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._items: list[SpoolItem] = []
        self.bytes = 0

    def open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
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
        self._items = items
        self.bytes = sum(item.size for item in items)

    def __len__(self) -> int:
        return len(self._items)

    @property
    def events(self) -> int:
        return sum(item.events for item in self._items)

    def has_room(self, size: int) -> bool:
        return self.bytes + size <= self.max_bytes or not self._items

    def append(self, body: bytes, events: int) -> SpoolItem:
        sequence = self._items[-1].sequence + 1 if self._items else 1
        path = self.directory / f"{sequence:016d}-{events}{_SUFFIX}"
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(body)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        item = SpoolItem(path, sequence, events, len(body))
        self._items.append(item)
        self.bytes += item.size
        return item

    def oldest(self) -> SpoolItem | None:
        return self._items[0] if self._items else None

    def read(self, item: SpoolItem) -> bytes:
        return item.path.read_bytes()

    def remove(self, item: SpoolItem) -> None:
        item.path.unlink(missing_ok=True)
        self._items.remove(item)
        self.bytes -= item.size
