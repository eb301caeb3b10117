"""The collector's own health, published to a Redis hash ``emp:collector:<consumer>``.

The hash is rewritten every few seconds and expires 30 s after the last write, so the hashes
that exist are the live collectors. ``emp-collector --health``, ``emp-tui health`` and the
app find them with ``SCAN MATCH emp:collector:*``. Every field is a string.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Final

import redis.asyncio as aioredis

from emp_tui.health import KEY_PREFIX, number_field

TTL_S: Final = 30
COUNTERS: Final = (
    "read",
    "written",
    "exported",
    "retried",
    "spooled",
    "dead_lettered",
    "trimmed_lost",
    "malformed",
    "duplicates",
)


@dataclass
class Health:
    """Counters and state of one running collector (mutated by its parts, one event loop)."""

    consumer: str
    group: str
    stream: str
    sinks: list[str]
    started_ms: int = field(default_factory=lambda: time.time_ns() // 1_000_000)
    state: str = "running"
    last_read_id: str = ""
    read: int = 0
    written: int = 0
    exported: int = 0
    retried: int = 0
    spooled: int = 0
    dead_lettered: int = 0
    trimmed_lost: int = 0
    malformed: int = 0
    duplicates: int = 0  # copies of an event already delivered (one eventId), acked unsent
    pending: int = 0
    lag: int | None = None

    def fields(self) -> dict[str, str]:
        out = {
            "consumer": self.consumer,
            "group": self.group,
            "stream": self.stream,
            "pid": str(os.getpid()),
            "host": socket.gethostname(),
            "started_ms": str(self.started_ms),
            "updated_ms": str(time.time_ns() // 1_000_000),
            "state": self.state,
            "last_read_id": self.last_read_id,
            "pending": str(self.pending),
            "lag": "" if self.lag is None else str(self.lag),
            "rss_bytes": str(rss_bytes()),
            "sinks": ",".join(self.sinks),
        }
        for name in COUNTERS:
            out[name] = str(getattr(self, name))
        return out


def rss_bytes() -> int:
    """Resident memory of this process (Linux /proc; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if os.uname().sysname == "Darwin" else peak * 1024


async def publish(client: aioredis.Redis, health: Health, ttl: int = TTL_S) -> None:
    key = KEY_PREFIX + health.consumer
    async with client.pipeline(transaction=True) as pipe:
        pipe.hset(key, mapping=health.fields())  # type: ignore[arg-type]
        pipe.expire(key, ttl)
        await pipe.execute()


async def remove(client: aioredis.Redis, consumer: str) -> None:
    await client.delete(KEY_PREFIX + consumer)


# Fields of the hash that hold numbers (as text, like every field of a Redis hash).
NUMBERS: Final = ("pid", "started_ms", "updated_ms", "pending", "lag", "rss_bytes", *COUNTERS)


def typed(fields: dict[str, str]) -> dict[str, Any]:
    """A health hash with its numbers as numbers (``lag`` unknown: None), for JSON output.
    A field that should be a number and is not stays text."""
    out: dict[str, Any] = dict(fields)
    for name in NUMBERS:
        value = fields.get(name)
        if value is None:
            continue
        if value == "":
            out[name] = None
        else:
            try:
                out[name] = int(value)
            except ValueError:
                out[name] = value
    return out


def format_table(collectors: list[dict[str, str]], now_ms: int | None = None) -> str:
    """A plain-text view of the health hashes for ``emp-collector --health``."""
    if not collectors:
        return "no live collector (no emp:collector:* hash in Redis)"
    now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    lines: list[str] = []
    for h in collectors:
        updated = number_field(h, "updated_ms")
        age = f"{(now - updated) / 1000:.0f}s ago" if updated is not None else "?"
        rss = number_field(h, "rss_bytes")
        rss_text = f"{rss / (1 << 20):.1f} MB" if rss is not None else "?"
        lines.append(
            f"{h.get('consumer', '?')}  state={h.get('state', '?')}  host={h.get('host', '?')} "
            f"pid={h.get('pid', '?')}  updated {age}  rss {rss_text}  sinks={h.get('sinks', '')}"
        )
        lines.append(
            f"  stream={h.get('stream', '?')} group={h.get('group', '?')} "
            f"last_read_id={h.get('last_read_id', '') or '-'} pending={h.get('pending', '?')} "
            f"lag={h.get('lag', '') or '?'}"
        )
        lines.append("  " + "  ".join(f"{name}={h.get(name, '?')}" for name in COUNTERS))
    return "\n".join(lines)
