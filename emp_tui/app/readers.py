"""The one Redis read the app needs beyond :mod:`emp_tui.sources`: the collectors' health
hashes (``emp:collector:<consumer>``), for the lag in the status bar. Called from a worker."""

from __future__ import annotations

HEALTH_PATTERN = "emp:collector:*"


async def read_collector_health(url: str) -> list[dict[str, str]]:
    """Every ``emp:collector:<consumer>`` hash, newest update first."""
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(url, socket_connect_timeout=3, decode_responses=True)
    try:
        found: list[dict[str, str]] = []
        async for key in client.scan_iter(match=HEALTH_PATTERN, count=100):
            fields = await client.hgetall(key)
            if fields:
                found.append({str(k): str(v) for k, v in fields.items()})
    finally:
        await client.aclose()
    found.sort(key=lambda c: c.get("updated_ms", ""), reverse=True)
    return found
