"""The collectors' health hashes: the one contract between the collector, which writes them,
and `emp-collector --health`, `emp-tui health` and the app, which read them.

Each live collector keeps a Redis hash ``emp:collector:<consumer>``, rewritten every few
seconds and expiring 30 s after the last write, so the hashes that exist are the live
collectors. Every field is a string. No I/O of its own here beyond the reads below.
"""

from __future__ import annotations

from typing import Any, Final

import redis
import redis.asyncio as aioredis

KEY_PREFIX: Final = "emp:collector:"
PATTERN: Final = KEY_PREFIX + "*"


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _sorted(found: list[dict[str, str]]) -> list[dict[str, str]]:
    found.sort(key=lambda h: h.get("consumer", ""))
    return found


async def read_collectors(client: aioredis.Redis) -> list[dict[str, str]]:
    """Every live collector's health hash, sorted by consumer name."""
    found: list[dict[str, str]] = []
    async for key in client.scan_iter(match=PATTERN, count=100, _type="hash"):
        raw: dict[Any, Any] = await client.hgetall(key)
        if raw:
            found.append({_text(k): _text(v) for k, v in raw.items()})
    return _sorted(found)


def read_collectors_sync(client: redis.Redis) -> list[dict[str, str]]:
    """:func:`read_collectors` for synchronous callers (the CLI)."""
    found: list[dict[str, str]] = []
    for key in client.scan_iter(match=PATTERN, count=100, _type="hash"):
        raw: dict[Any, Any] = client.hgetall(key)
        if raw:
            found.append({_text(k): _text(v) for k, v in raw.items()})
    return _sorted(found)
