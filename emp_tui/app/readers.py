"""The app's one Redis read beyond :mod:`emp_tui.sources`: the collectors' health hashes,
for the lag in the status bar. Called from a worker."""

from __future__ import annotations

from emp_tui.health import read_collectors


async def read_collector_health(url: str) -> list[dict[str, str]]:
    """Every live collector's health hash (see :mod:`emp_tui.health`)."""
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(url, socket_connect_timeout=3)
    try:
        return await read_collectors(client)
    finally:
        await client.aclose()
