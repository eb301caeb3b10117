"""The events at hand: a bounded in-memory cache, in stream order, with a job index.

Every event held has a **sequence number** that says where it stands in the stream and never
changes while it is held: it is built from its stream entry ID (``<ms>-<seq>``), so sorting by
it is sorting by stream ID, and an event added later but older than others (a page of history
loaded after the live tail started, a second source) takes its place among them without moving
anyone else. An event without a stream ID (some files hold none) is placed by its own
timestamp, after the stream's entries of that millisecond and after the events without an ID
already held for it.

Adding is idempotent: an event whose stream ID is held already is not added again, so a
backfill and a live tail, or a file and the stream, can overlap. The shards of a sharded
stream are separate keys whose IDs may coincide: an event under a held ID that is not the
event held there is another shard's entry, and is held beside it. Events without a stream ID
are never taken for one another. Past ``capacity`` the store keeps the newest events (in
stream order) and lets the others go, counted in ``evicted``: an event older than all those
held is refused once the store is full. A page of older history brought in on purpose
(``keep="oldest"``) lets the newest go instead.

Appending in stream order (the live tail) is a few dict and list operations per event, cheap
at thousands of events a second. No I/O, no Textual.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right, insort
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from typing import Literal

from emp_tui.events import TelemetryEvent
from emp_tui.query import Query

__all__ = ["EventStore"]

_TIE_BITS = 32
"""Room for events without a stream ID that share a millisecond."""
_ENTRY_BITS = 65
"""Room for the sequence part of a stream ID (0 .. 2**64 - 1), and one more value above it
for the events without a stream ID of that millisecond."""
_MS_SHIFT = _ENTRY_BITS + _TIE_BITS
_NO_ENTRY = 1 << 64
_TIE_MASK = (1 << _TIE_BITS) - 1
_SHARD_TIES = 1024
"""Entries of different shards (keys) of a stream that share one stream ID, told apart by the
tie bits of their sequence number (the most shards there can be: topology.MAX_SHARDS)."""


_stream_id = re.compile(r"(0|[1-9][0-9]*)-(0|[1-9][0-9]*)").fullmatch
"""A stream entry ID as Redis writes it (ASCII digits, no sign, no leading zero)."""


def _time_bound(ms: int) -> int:
    """The smallest sequence number of millisecond ``ms``."""
    return ms << _MS_SHIFT


class _JobIndex:
    """job id -> the sequence numbers of its events held, ascending."""

    __slots__ = ("_jobs",)

    def __init__(self) -> None:
        self._jobs: dict[str, deque[int]] = {}

    def add(self, job_id: str, seq: int) -> bool:
        """Record ``seq``; whether it is the job's newest event now."""
        seqs = self._jobs.get(job_id)
        if seqs is None:
            self._jobs[job_id] = deque((seq,))
        elif seq > seqs[-1]:
            seqs.append(seq)
        elif seq < seqs[0]:
            seqs.appendleft(seq)
            return False
        else:
            insort(seqs, seq)
            return False
        return True

    def drop_oldest(self, job_id: str) -> bool:
        """Forget the job's oldest event (the store lets its oldest go first); whether the
        job has no event left."""
        seqs = self._jobs[job_id]
        seqs.popleft()
        if seqs:
            return False
        del self._jobs[job_id]
        return True

    def drop_newest(self, job_id: str) -> bool:
        """Forget the job's newest event (history paged in lets the newest go); whether the
        job has no event left."""
        seqs = self._jobs[job_id]
        seqs.pop()
        if seqs:
            return False
        del self._jobs[job_id]
        return True

    def get(self, job_id: str) -> Sequence[int]:
        return self._jobs.get(job_id) or ()

    def newest(self, job_id: str) -> int:
        return self._jobs[job_id][-1]

    def clear(self) -> None:
        self._jobs.clear()


class EventStore:
    """At most ``capacity`` events, in stream order, each looked up by its sequence number."""

    def __init__(self, capacity: int = 100_000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.evicted = 0
        """Events let go to stay within ``capacity`` (the oldest, or refused as older)."""
        self.malformed = 0
        """Malformed events ever added."""
        self.duplicates = 0
        """Copies of a held event refused: the same ``eventId`` under another stream ID (an
        emitter resent it after a timeout that left it unsure whether Redis had taken it)."""
        self._events: dict[int, TelemetryEvent] = {}
        self._event_ids: dict[str, int] = {}  # eventId -> sequence number, of those held
        self._seqs: list[int] = []  # ascending; the events held are _seqs[_head:]
        self._head = 0
        self._jobs = _JobIndex()
        # job id -> None, the job with the newest event last (a dict keeps insertion order).
        # _jobs_unordered: a job's newest event came out of turn (older than others held),
        # so the order is rebuilt when next asked for.
        self._recent_jobs: dict[str, None] = {}
        self._jobs_unordered = False

    # -- adding ---------------------------------------------------------------------------

    def add(self, event: TelemetryEvent) -> int | None:
        """Add ``event``; its sequence number, or None when it is not held (its stream ID is
        held already, or the store is full of newer events)."""
        added = self.add_many((event,))
        return added[0] if added else None

    def add_many(
        self, events: Iterable[TelemetryEvent], *, keep: Literal["newest", "oldest"] = "newest"
    ) -> list[int]:
        """Add ``events`` (in any order); the sequence numbers of those now held that were
        not before, ascending. Past ``capacity`` the oldest go, or with ``keep="oldest"``
        (a page of older history brought in) the newest."""
        fresh: list[int] = []
        held, jobs, recent = self._events, self._jobs, self._recent_jobs
        event_ids = self._event_ids
        seqs = self._seqs
        last = seqs[-1] if len(seqs) > self._head else None
        in_turn = True  # each newer than every event before it: the live tail's case
        ties: dict[int, int] = {}  # position -> last tie given in this batch (no stream ID)
        for event in events:
            # The one place that decides whether an event is held already.
            seq: int | None = None
            entry_id = event.id
            if entry_id:
                match = _stream_id(entry_id)
                if match is not None:
                    entry = int(match[2])
                    if entry < _NO_ENTRY:
                        seq = ((int(match[1]) << _ENTRY_BITS) | entry) << _TIE_BITS
                        other = held.get(seq)
                        if other is not None:
                            seq = self._shard_sequence(seq, event)
                            if seq is None:
                                continue
            if seq is None:
                seq = self._loose_sequence(event.timestamp, ties)
            event_id = event.event_id
            if event_id is not None:
                if event_id in event_ids:  # a resend of an event held under another ID
                    self.duplicates += 1
                    continue
                event_ids[event_id] = seq
            held[seq] = event
            fresh.append(seq)
            newest = last is None or seq > last
            if newest:
                last = seq
            else:
                in_turn = False
            job_id = event.job_id
            if job_id and jobs.add(job_id, seq):  # the job's newest event
                if newest:
                    recent.pop(job_id, None)
                    recent[job_id] = None
                else:  # maybe older than other jobs' newest
                    recent.setdefault(job_id, None)
                    self._jobs_unordered = True
            if event.malformed is not None:
                self.malformed += 1
        if not fresh:
            return fresh
        if in_turn:
            seqs.extend(fresh)
        else:
            fresh.sort()
            self._merge(fresh)
        excess = len(self) - self.capacity
        if excess > 0 and keep == "oldest":
            self._evict_newest(excess)
            last_held = self._seqs[-1]
            if fresh[-1] > last_held:
                fresh = fresh[: bisect_right(fresh, last_held)]
        elif excess > 0:
            self._evict_oldest(excess)
            oldest = self._seqs[self._head]
            if fresh[0] < oldest:
                fresh = fresh[bisect_left(fresh, oldest) :]
        return fresh

    def _shard_sequence(self, seq: int, event: TelemetryEvent) -> int | None:
        """The sequence number for ``event`` whose stream ID's (``seq``) is held already:
        None when the event held there is this one (read twice), else the next free one of
        that ID's ties: an entry of another shard that has the same ID (each shard's IDs are
        its own, so two shards can both hold ``<ms>-0``)."""
        held = self._events
        for tie in range(_SHARD_TIES):
            other = held.get(seq + tie)
            if other is None:
                return seq + tie
            if other == event:
                return None
        return None  # more shards with one ID than ties for them: taken for a copy

    def _loose_sequence(self, timestamp: int, ties: dict[int, int]) -> int:
        """The sequence number of an event without a stream ID: by its timestamp, after the
        stream's entries of that millisecond and the events without an ID held for it."""
        position = ((timestamp << _ENTRY_BITS) | _NO_ENTRY) << _TIE_BITS
        tie = ties.get(position)
        if tie is None:
            tie = self._last_tie(position)
        tie += 1
        if tie > _TIE_MASK:
            raise OverflowError("too many events without a stream ID in one millisecond")
        ties[position] = tie
        return position | tie

    def _last_tie(self, position: int) -> int:
        seqs, head = self._seqs, self._head
        if len(seqs) == head or seqs[-1] < position:  # the usual case: newer than all held
            return -1
        index = bisect_left(seqs, position + _TIE_MASK + 1, head)
        if index > head and seqs[index - 1] & ~_TIE_MASK == position:
            return seqs[index - 1] & _TIE_MASK
        return -1

    def _merge(self, fresh: list[int]) -> None:
        """Put ``fresh`` (ascending, some older than the newest held) among the held."""
        seqs, head = self._seqs, self._head
        if len(seqs) == head or fresh[-1] < seqs[head]:  # older than all held: history
            seqs[head:head] = fresh
        else:  # among them: two sorted runs, which a sort merges in linear time
            seqs.extend(fresh)
            seqs[head:] = sorted(seqs[head:])

    def _evict_oldest(self, count: int) -> None:
        seqs, head = self._seqs, self._head
        events, jobs, recent = self._events, self._jobs, self._recent_jobs
        event_ids = self._event_ids
        for seq in seqs[head : head + count]:
            event = events.pop(seq)
            if event.event_id is not None:
                event_ids.pop(event.event_id, None)
            job_id = event.job_id
            if job_id and jobs.drop_oldest(job_id):
                recent.pop(job_id, None)
        self._head = head + count
        self.evicted += count
        if self._head >= self.capacity:  # compact now and then: amortised O(1)
            del seqs[: self._head]
            self._head = 0

    def _evict_newest(self, count: int) -> None:
        seqs = self._seqs
        events, jobs, recent = self._events, self._jobs, self._recent_jobs
        for seq in seqs[len(seqs) - count :]:
            job_id = events.pop(seq).job_id
            if job_id:
                if jobs.drop_newest(job_id):
                    recent.pop(job_id, None)
                else:
                    self._jobs_unordered = True
        del seqs[len(seqs) - count :]
        self.evicted += count

    def clear(self) -> None:
        self._events.clear()
        self._event_ids.clear()
        self._seqs.clear()
        self._head = 0
        self._jobs.clear()
        self._recent_jobs.clear()
        self._jobs_unordered = False
        self.evicted = 0
        self.malformed = 0
        self.duplicates = 0

    # -- reading --------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._seqs) - self._head

    def __iter__(self) -> Iterator[TelemetryEvent]:
        """The events held, oldest first."""
        events, seqs = self._events, self._seqs
        for i in range(self._head, len(seqs)):
            yield events[seqs[i]]

    def __getitem__(self, index: int) -> TelemetryEvent:
        """The ``index``-th event held in stream order (``-1``: the newest)."""
        size = len(self)
        if index < 0:
            index += size
        if not 0 <= index < size:
            raise IndexError("event index out of range")
        return self._events[self._seqs[self._head + index]]

    def seqs(self) -> list[int]:
        """The sequence numbers held, ascending."""
        return self._seqs[self._head :]

    @property
    def oldest_seq(self) -> int | None:
        return self._seqs[self._head] if len(self) else None

    @property
    def newest_seq(self) -> int | None:
        return self._seqs[-1] if len(self) else None

    def event(self, seq: int) -> TelemetryEvent:
        """The event held under ``seq`` (KeyError when it is not held)."""
        return self._events[seq]

    def events(self, seqs: Iterable[int]) -> list[TelemetryEvent]:
        events = self._events
        return [events[seq] for seq in seqs]

    def by_job(self, job_id: str) -> list[TelemetryEvent]:
        """``job_id``'s events held, in stream order."""
        return self.events(self._jobs.get(job_id))

    def job_ids(self, limit: int | None = None) -> list[str]:
        """The jobs held, the one with the newest event first (at most ``limit``)."""
        if self._jobs_unordered:
            newest = self._jobs.newest
            self._recent_jobs = dict.fromkeys(sorted(self._recent_jobs, key=newest))
            self._jobs_unordered = False
        out: list[str] = []
        for job_id in reversed(self._recent_jobs):
            if limit is not None and len(out) >= limit:
                break
            out.append(job_id)
        return out

    def select(self, query: Query, within: Iterable[int] | None = None) -> list[int]:
        """The sequence numbers of the events ``query`` matches, ascending; only among
        ``within`` (ascending, e.g. what an earlier query matched) when given. Looks only at
        the job's events when the query names one, and only at its time range when it has
        time bounds."""
        events = self._events
        candidates: Sequence[int]
        if query.job_ids:
            # Every term must match: any one job's events hold every candidate.
            jobs: list[Sequence[int]] = [self._jobs.get(job_id) for job_id in query.job_ids]
            candidates = min(jobs, key=len)
            if within is not None:
                allowed = set(within)
                candidates = [seq for seq in candidates if seq in allowed]
        elif within is not None:
            candidates = [seq for seq in within if seq in events]
        else:
            candidates = self._time_range(query)
        if query.is_empty:
            return list(candidates)
        matches = query.matches
        return [seq for seq in candidates if matches(events[seq])]

    def _time_range(self, query: Query) -> list[int]:
        """The sequence numbers within the query's time bounds (all when it has none)."""
        seqs, lo, hi = self._seqs, self._head, len(self._seqs)
        if query.since_ms is not None:
            lo = bisect_left(seqs, _time_bound(query.since_ms), lo, hi)
        if query.until_ms is not None:
            hi = bisect_left(seqs, _time_bound(query.until_ms + 1), lo, hi)
        return seqs[lo:hi]
