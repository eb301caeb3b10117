"""The app's one Redis read beyond :mod:`emp_tui.sources`: the pipeline's health, that is the
collectors' health hashes (for the lag in the status bar, and the Problems view) and the
stream's state from XINFO (its length and ends, its consumer groups: trim loss). Called from
a worker."""

from __future__ import annotations

from typing import Any

from redis.exceptions import ResponseError

from emp_tui.health import read_collectors
from emp_tui.problems import StreamState


async def read_pipeline_health(
    url: str, stream: str
) -> tuple[list[dict[str, str]], StreamState | None]:
    """Every live collector's health hash (see :mod:`emp_tui.health`), and the stream's
    state (None when it does not exist yet)."""
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(url, socket_connect_timeout=3)
    try:
        collectors = await read_collectors(client)
        try:
            info: Any = await client.xinfo_stream(stream)
            groups: Any = await client.xinfo_groups(stream)
        except ResponseError:  # no such stream (yet)
            return collectors, None
        return collectors, StreamState.from_xinfo(stream, info, groups)
    finally:
        await client.aclose()
