"""The two small Redis reads the app needs beyond :mod:`emp_tui.sources`: the newest events
(for the backfill) and the collectors' health hashes. Called from the app's workers only."""

from __future__ import annotations

from itertools import islice

from emp_tui.events import TelemetryEvent
from emp_tui.sources import connect, read_range

HEALTH_PATTERN = "emp:collector:*"


def read_newest(url: str, stream: str, count: int) -> list[TelemetryEvent]:
    """The newest ``count`` events of ``stream``, oldest first. Raises SourceError."""
    client = connect(url)
    try:
        if count <= 0:
            newest = list(read_range(client, stream, reverse=True, page=1))
        else:
            page = min(count, 1000)
            newest = list(islice(read_range(client, stream, reverse=True, page=page), count))
    finally:
        client.close()
    newest.reverse()
    return newest


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
