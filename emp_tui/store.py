"""A bounded in-memory buffer of events with indexes by job, trace, service, worker and machine.

Events are held in arrival order. Past ``capacity`` the oldest are pushed out (and counted
in ``evicted``). An event with a stream ID that is already held is not appended twice, so a
backfill and a live tail, or a file and the stream, can overlap. Appending is a handful of
dict operations, cheap at thousands of events a second. Indexes hold sequence numbers, so an
event pushed out of the buffer leaves its indexes in O(1). No I/O, no Textual.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from typing import overload

from emp_tui.events import TelemetryEvent
from emp_tui.query import Query

__all__ = ["EventStore"]


class _Index:
    """key -> deque of sequence numbers (ascending)."""

    __slots__ = ("_keys",)

    def __init__(self) -> None:
        self._keys: dict[str, deque[int]] = {}

    def add(self, key: str | None, seq: int) -> None:
        if not key:
            return
        seqs = self._keys.get(key)
        if seqs is None:
            self._keys[key] = deque((seq,))
        else:
            seqs.append(seq)

    def drop(self, key: str | None, seq: int) -> None:
        if not key:
            return
        seqs = self._keys.get(key)
        if seqs and seqs[0] == seq:
            seqs.popleft()
            if not seqs:
                del self._keys[key]

    def get(self, key: str) -> deque[int]:
        return self._keys.get(key) or deque()

    def keys(self) -> list[str]:
        return list(self._keys)

    def clear(self) -> None:
        self._keys.clear()


class EventStore:
    """The events at hand, oldest first, at most ``capacity`` of them."""

    def __init__(self, capacity: int = 100_000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.evicted = 0
        self.malformed = 0
        self._items: list[TelemetryEvent] = []
        self._head = 0  # index in _items of the oldest event held
        self._base = 0  # sequence number of _items[0]
        self._ids: set[str] = set()
        self._jobs = _Index()
        self._traces = _Index()
        self._services = _Index()
        self._workers = _Index()
        self._machines = _Index()
        # job id -> None, most recently seen last (a dict keeps insertion order)
        self._recent_jobs: dict[str, None] = {}

    # -- adding ---------------------------------------------------------------------------

    def append(self, event: TelemetryEvent) -> bool:
        """Add ``event``; False (and nothing changes) when its stream ID is already held."""
        entry_id = event.id
        if entry_id is not None:
            if entry_id in self._ids:
                return False
            self._ids.add(entry_id)
        seq = self._base + len(self._items)
        self._items.append(event)
        self._jobs.add(event.job_id, seq)
        self._traces.add(event.trace_id, seq)
        self._services.add(event.service, seq)
        self._workers.add(event.worker_id, seq)
        self._machines.add(event.machine_id, seq)
        if event.job_id:
            recent = self._recent_jobs
            recent.pop(event.job_id, None)
            recent[event.job_id] = None
        if event.malformed is not None:
            self.malformed += 1
        if len(self._items) - self._head > self.capacity:
            self._evict_oldest()
        return True

    def extend(self, events: Iterable[TelemetryEvent]) -> int:
        """Add many; returns how many were new."""
        added = 0
        for event in events:
            if self.append(event):
                added += 1
        return added

    def _evict_oldest(self) -> None:
        seq = self._base + self._head
        event = self._items[self._head]
        self._head += 1
        self.evicted += 1
        if event.id is not None:
            self._ids.discard(event.id)
        self._jobs.drop(event.job_id, seq)
        self._traces.drop(event.trace_id, seq)
        self._services.drop(event.service, seq)
        self._workers.drop(event.worker_id, seq)
        self._machines.drop(event.machine_id, seq)
        if event.job_id and not self._jobs.get(event.job_id):
            self._recent_jobs.pop(event.job_id, None)
        if self._head >= self.capacity:  # compact now and then: amortised O(1)
            del self._items[: self._head]
            self._base += self._head
            self._head = 0

    def clear(self) -> None:
        self._items.clear()
        self._head = 0
        self._base = 0
        self._ids.clear()
        for index in (self._jobs, self._traces, self._services, self._workers, self._machines):
            index.clear()
        self._recent_jobs.clear()
        self.evicted = 0
        self.malformed = 0

    # -- reading --------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._items) - self._head

    def __iter__(self) -> Iterator[TelemetryEvent]:
        items = self._items
        for i in range(self._head, len(items)):
            yield items[i]

    @overload
    def __getitem__(self, index: int) -> TelemetryEvent: ...
    @overload
    def __getitem__(self, index: slice) -> list[TelemetryEvent]: ...
    def __getitem__(self, index: int | slice) -> TelemetryEvent | list[TelemetryEvent]:
        if isinstance(index, slice):
            return self._items[self._head :][index]
        size = len(self)
        if index < 0:
            index += size
        if not 0 <= index < size:
            raise IndexError("event index out of range")
        return self._items[self._head + index]

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self._ids

    def _events(self, seqs: Iterable[int]) -> list[TelemetryEvent]:
        items, base = self._items, self._base
        return [items[seq - base] for seq in seqs]

    def by_job(self, job_id: str) -> list[TelemetryEvent]:
        return self._events(self._jobs.get(job_id))

    def by_trace(self, trace_id: str) -> list[TelemetryEvent]:
        return self._events(self._traces.get(trace_id))

    def by_service(self, service: str) -> list[TelemetryEvent]:
        return self._events(self._services.get(service))

    def by_worker(self, worker_id: str) -> list[TelemetryEvent]:
        return self._events(self._workers.get(worker_id))

    def by_machine(self, machine_id: str) -> list[TelemetryEvent]:
        return self._events(self._machines.get(machine_id))

    def job_ids(self) -> list[str]:
        """Jobs held, the most recently seen first."""
        return list(reversed(self._recent_jobs))

    def services(self) -> list[str]:
        return sorted(self._services.keys())

    def filter(self, query: Query) -> list[TelemetryEvent]:
        """The events ``query`` matches, oldest first; looks up the job index when it can."""
        if query.is_empty:
            return list(self)
        if query.job_ids:
            seqs: set[int] = set()
            for job_id in query.job_ids:
                seqs.update(self._jobs.get(job_id))
            candidates = self._events(sorted(seqs))
            return [event for event in candidates if query.matches(event)]
        return [event for event in self if query.matches(event)]
