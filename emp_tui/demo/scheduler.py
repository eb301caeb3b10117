"""The simulation's clock: a discrete-event loop on one thread.

Every step is scheduled at a virtual time in epoch milliseconds, and steps at the same time
run in the order they were scheduled, so a run is a pure function of what was scheduled. A
process is a generator that yields delays in ms (:meth:`Scheduler.spawn`). How virtual time
relates to the wall clock is the caller's choice, per run (:class:`Pacer`): ``speed=None``
runs the steps as fast as they can be computed, ``speed=1.0`` in real time, ``speed=10``
ten times faster.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable, Generator
from typing import Any

Proc = Generator[int, None, None]


class Pacer:
    """Maps virtual time onto the wall clock: ``speed=None`` never waits. A loop held up
    (by a slow step, or a Redis that went away) catches up afterwards: the steps it owes run
    at once, stamped with their own virtual times."""

    def __init__(self, speed: float | None) -> None:
        self.speed = speed
        self._anchor_v = 0
        self._anchor_wall = 0.0

    def start(self, virtual_ms: int) -> None:
        self._anchor_v = virtual_ms
        self._anchor_wall = time.monotonic()

    def wait_until(self, virtual_ms: int, stop: threading.Event) -> bool:
        """Wait until ``virtual_ms`` is due; False when ``stop`` was set first."""
        if self.speed is None:
            return not stop.is_set()
        due = self._anchor_wall + (virtual_ms - self._anchor_v) / 1000.0 / self.speed
        delay = due - time.monotonic()
        if delay > 0:
            return not stop.wait(delay)
        return not stop.is_set()


class Scheduler:
    """Steps at virtual times, and the virtual clock ``now`` (epoch ms) they run at."""

    def __init__(self, start_ms: int) -> None:
        self.start_ms = start_ms
        self.now = start_ms
        self._heap: list[tuple[int, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = 0

    def at(self, t_ms: int, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(*args)`` at ``t_ms`` (or now, if that has passed)."""
        self._seq += 1
        heapq.heappush(self._heap, (max(t_ms, self.now), self._seq, fn, args))

    def after(self, delay_ms: float, fn: Callable[..., None], *args: Any) -> None:
        self.at(self.now + int(delay_ms), fn, *args)

    def spawn(self, proc: Proc, delay_ms: float = 0) -> None:
        """Run a generator as a process: each value it yields is a delay in ms."""
        self.after(delay_ms, self._step, proc)

    def _step(self, proc: Proc) -> None:
        try:
            delay = next(proc)
        except StopIteration:
            return
        self.after(max(0, delay), self._step, proc)

    def run(
        self,
        *,
        until_ms: int | None,
        pacer: Pacer,
        stop: threading.Event,
        done: Callable[[], bool],
    ) -> str:
        """Run steps in time order until ``until_ms`` ("until"), ``stop`` is set ("stopped"),
        ``done()`` turns true after a step ("done"), or nothing is left ("until")."""
        pacer.start(self.now)
        heap = self._heap
        while heap:
            t = heap[0][0]
            if until_ms is not None and t > until_ms:
                self.now = max(self.now, until_ms)
                return "until"
            if not pacer.wait_until(t, stop):
                return "stopped"
            _, _, fn, args = heapq.heappop(heap)
            self.now = t
            fn(*args)
            if done():
                return "done"
        return "until"
