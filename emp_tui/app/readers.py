"""The app's one Redis read beyond :mod:`emp_tui.sources`: the pipeline's health, that is the
collectors' health hashes (for the lag in the status bar, and the Problems view) and the
stream's state from XINFO (its length and ends, its consumer groups: trim loss), and the
shard count the emitters record (the live tail follows a change). Called from a worker."""

from __future__ import annotations

from typing import Any

from emp_tui.health import read_collectors
from emp_tui.problems import StreamState
from emp_tui.topology import async_client_for_url, recorded_shards, shard_keys, trim_policy_key


async def read_pipeline_health(
    url: str, stream: str, shards: int = 1
) -> tuple[list[dict[str, str]], StreamState | None, int | None]:
    """Every live collector's health hash (see :mod:`emp_tui.health`), the stream's state,
    its shards combined (None when it does not exist yet), and the shard count its emitters
    record (None: none recorded)."""
    from redis.exceptions import ResponseError  # here: an offline app never imports redis

    client = async_client_for_url(url, socket_connect_timeout=3)
    try:
        collectors = await read_collectors(client)
        recorded = recorded_shards(await client.hget(trim_policy_key(stream), "shards"))
        states = []
        for key in shard_keys(stream, shards):
            try:
                info: Any = await client.xinfo_stream(key)
                groups: Any = await client.xinfo_groups(key)
            except ResponseError:  # no such stream (shard) yet
                continue
            states.append(StreamState.from_xinfo(key, info, groups))
        return collectors, StreamState.combined(stream, states) if states else None, recorded
    finally:
        await client.aclose()
