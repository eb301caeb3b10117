"""Retrying one export: exponential backoff with jitter, ``Retry-After`` honoured, for up to a
window of time, cut short when the collector stops. The exporter decides what to do with a
request that is still unavailable after the window (spool it, or keep it unacked)."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC
from typing import Final

from collector.exporters import Outcome, Result

RETRY_AFTER_MAX_S: Final = 3600.0


def backoff(attempt: int, base: float = 0.5, cap: float = 30.0) -> float:
    """Exponential backoff with jitter: base, 2 base, 4 base ... up to ``cap``, each times
    0.5-1."""
    ceiling = min(cap, base * (2 ** min(attempt, 16)))
    return random.uniform(ceiling / 2, ceiling)


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or an HTTP date)."""
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_MAX_S)


async def pause(seconds: float, interrupt: asyncio.Event) -> bool:
    """Sleep ``seconds`` unless ``interrupt`` is set first; True when interrupted."""
    if interrupt.is_set():
        return True
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(interrupt.wait(), seconds)
    return interrupt.is_set()


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    window: float  # seconds from the first attempt; float("inf") retries until stopped
    base: float = 0.5
    cap: float = 30.0

    def delay(self, attempt: int, hint: float | None) -> float:
        """The wait before the next attempt: what the server asked for, else backoff."""
        return backoff(attempt, self.base, self.cap) if hint is None else hint

    async def run(
        self,
        attempt: Callable[[], Awaitable[Result]],
        *,
        stopping: asyncio.Event,
        on_retry: Callable[[Result, float], None],
    ) -> Result:
        """Call ``attempt`` until it is not UNAVAILABLE, the window is over, or the
        collector stops; the last result."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.window
        tries = 0
        while True:
            result = await attempt()
            if result.outcome is not Outcome.UNAVAILABLE:
                return result
            wait = self.delay(tries, result.wait)
            on_retry(result, wait)
            if stopping.is_set() or loop.time() + wait > deadline:
                return result
            if await pause(wait, stopping):
                return result
            tries += 1
