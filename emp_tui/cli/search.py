"""`emp-tui search` (events matching a query) and `emp-tui stream` (a live tail)."""

from __future__ import annotations

import argparse
from contextlib import suppress
from typing import TYPE_CHECKING

from emp_tui.cli.common import (
    EXIT_FOUND,
    EXIT_NOTHING,
    EXIT_USAGE,
    CliError,
    Settings,
    load,
    notes,
    parse_query,
    query_text,
    redis_client,
    say,
)
from emp_tui.cli.output import Output, event_line

if TYPE_CHECKING:
    from emp_tui.sources import RedisTail


def run_search(args: argparse.Namespace, settings: Settings, out: Output) -> int:
    query = parse_query(query_text(args), settings)
    if args.limit is not None and args.limit < 1:
        raise CliError("--limit must be 1 or more", EXIT_USAGE)
    loaded = load(settings, query, limit=args.limit)
    notes(loaded.notes)
    for event in loaded.events:
        if out.json:
            out.record(event.to_dict())
        else:
            event_line(out, event)
    if not loaded.events:
        say(f"no events match {query.text!r}" if query.text else "no events")
        return EXIT_NOTHING
    if not out.json:
        say(f"{len(loaded.events)} event(s)")
    return EXIT_FOUND


RECORD_SECONDS = 5.0
"""How often ``stream`` reads the shard count the emitters record."""


async def _follow_recorded_shards(tail: RedisTail, url: str) -> None:
    """Every few seconds, the shard count the emitters record: the keys of a new count are
    followed too (services reconfigured while ``stream`` runs; see
    :meth:`~emp_tui.sources.RedisTail.add_keys`), and said on stderr."""
    import asyncio

    from redis.exceptions import RedisError

    from emp_tui.topology import async_client_for_url, recorded_shards, shard_keys, trim_policy_key

    client = async_client_for_url(url, socket_connect_timeout=3)
    try:
        while True:
            await asyncio.sleep(RECORD_SECONDS)
            try:
                value = await client.hget(trim_policy_key(tail.stream), "shards")
            except (RedisError, OSError):
                continue  # the tail says when Redis is away
            count = recorded_shards(value)
            added = tail.add_keys(shard_keys(tail.stream, count)) if count else []
            if added:
                say(f"the emitters now write {count} shards: following {', '.join(added)} too")
    finally:
        await client.aclose()


def run_stream(args: argparse.Namespace, settings: Settings, out: Output) -> int:
    import asyncio

    from emp_tui.sources import ConnectionState, RedisTail

    query = parse_query(query_text(args))
    if settings.files and not settings.redis_explicit:
        raise CliError("stream follows Redis; --file is not followed (use search)", EXIT_USAGE)
    redis_client(settings).close()  # unreachable at the start: say so and stop

    def state(name: ConnectionState, error: str | None) -> None:
        if name != "disconnected":
            say(f"{name}{f' ({error})' if error else ''}")

    async def follow() -> None:
        tail = RedisTail(
            settings.redis_url, settings.stream, on_state=state, shards=settings.shards
        )
        watch = None
        if not settings.shards_configured:
            watch = asyncio.create_task(_follow_recorded_shards(tail, settings.redis_url))
        try:
            async for batch in tail:
                for event in batch:
                    if query.matches(event):
                        if out.json:
                            out.record(event.to_dict())
                        else:
                            event_line(out, event)
                out.flush()
        finally:
            if watch is not None:
                watch.cancel()
            await tail.aclose()

    shards = f" ({settings.shards} shards)" if settings.shards > 1 else ""
    say(f"following {settings.stream}{shards} (Ctrl+C to stop)")
    with suppress(KeyboardInterrupt):  # Ctrl+C is how a live tail ends
        asyncio.run(follow())
    return EXIT_FOUND
