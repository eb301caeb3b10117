"""`emp-tui health`: the stream (length, age, rate, what MAXLEN holds), its consumer groups and
the collectors' own reports. The reading is :func:`emp_tui.health.read_stream_state`."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from emp_tui.app.style import OK_COLOR, WARN_COLOR, service_color
from emp_tui.cli.common import (
    EXIT_FOUND,
    EXIT_NOTHING,
    EXIT_SOURCE,
    CliError,
    Settings,
    now_ms,
    redis_client,
)
from emp_tui.cli.output import Output
from emp_tui.text import duration, local_time

if TYPE_CHECKING:
    from emp_tui.health import StreamState


def run_health(args: argparse.Namespace, settings: Settings, out: Output) -> int:
    import redis

    from emp_tui.health import read_stream_state

    client = redis_client(settings)
    try:
        state = read_stream_state(client, settings.stream, now_ms())
    except redis.ResponseError as exc:
        raise CliError(f"cannot inspect stream {settings.stream!r}: {exc}", EXIT_SOURCE) from None
    except (redis.RedisError, OSError) as exc:
        raise CliError(f"lost Redis: {exc}", EXIT_SOURCE) from None
    finally:
        client.close()
    if state is None:
        raise CliError(f"stream {settings.stream!r} does not exist (no events yet?)", EXIT_NOTHING)
    if out.json:
        _records(out, state, args.maxlen)
    else:
        _report(out, state, args.maxlen)
    return EXIT_FOUND


def _maxlen(state: StreamState, maxlen: int) -> int | None:
    """The MAXLEN in force: the one the emitters recorded (None: they trim by age only),
    else the flag's."""
    return state.trim.maxlen if state.trim is not None else maxlen


def _records(out: Output, state: StreamState, flag_maxlen: int) -> None:
    last_ms = state.last_ms
    maxlen = _maxlen(state, flag_maxlen)
    out.record(
        {
            "kind": "stream",
            "stream": state.stream,
            "length": state.length,
            "maxlen": maxlen,
            "firstId": state.first_id,
            "lastId": state.last_id,
            "spanMs": state.span_ms,
            "eventsPerMinute": state.events_per_minute,
            "maxlenCoversMs": state.covers_ms(maxlen) if maxlen else None,
            "trim": state.trim.to_dict() if state.trim is not None else None,
            "memoryBytes": state.memory_bytes,
            "lastEventAgeMs": None if last_ms is None else state.now_ms - last_ms,
        }
    )
    for service, rate in sorted(state.per_minute_by_service().items()):
        out.record({"kind": "service", "service": service, "eventsPerMinute": rate})
    for group in state.groups:
        out.record(
            {
                "kind": "group",
                "name": group.name,
                "consumers": group.consumers,
                "pending": group.pending,
                "lag": group.lag,
                "lastDeliveredId": group.last_delivered_id,
            }
        )
    for collector in state.collectors:
        out.record({"kind": "collector", **collector})


def _report(out: Output, state: StreamState, flag_maxlen: int) -> None:
    def row(label: str, value: str, style: str = "") -> None:
        out.line((f"  {label:<22}", "dim"), (value, style))

    now = state.now_ms
    first_ms, last_ms = state.first_ms, state.last_ms
    maxlen = _maxlen(state, flag_maxlen)
    out.line(("Stream ", "bold"), (state.stream, "bold cyan"))
    row("length", f"{state.length}" + (f" (MAXLEN ~{maxlen})" if maxlen else ""))
    trim = state.trim
    if trim is None:
        row("trim", f"MAXLEN ~ {maxlen} (assumed: no emitter recorded its trim policy)")
    else:
        by = f"recorded by {trim.service}"
        if trim.updated_ms is not None:
            by += f" {duration(max(0, now - trim.updated_ms))} ago"
        keeps = f", keeps {duration(trim.retention_ms)}" if trim.retention_ms else ""
        row("trim", f"{trim.describe()}{keeps} ({by})")
    if first_ms is not None and last_ms is not None:
        row("oldest", f"{state.first_id}  {local_time(first_ms)}")
        row("newest", f"{state.last_id}  {local_time(last_ms)}  ({duration(now - last_ms)} ago)")
        row("holds", duration(state.span_ms))
    row("rate", f"{state.events_per_minute:.1f} events/min (last 5 min)")
    covers = state.covers_ms(maxlen) if maxlen else None
    row(
        "MAXLEN window",
        f"{duration(covers)} at this rate"
        if covers
        else ("- (no events in the last 5 min)" if maxlen else "- (no MAXLEN: trimmed by age)"),
    )
    memory = state.memory_bytes
    row("memory", f"{memory / 1024:.0f} KiB" if memory else "-")
    out.line(("Events/min by service", "bold"), " (last 5 min)")
    for service, rate in sorted(state.per_minute_by_service().items(), key=lambda kv: -kv[1]):
        row(service, f"{rate:.1f}", service_color(service))
    if not state.recent_by_service:
        row("-", "none")
    out.line(("Consumer groups", "bold"))
    for group in state.groups:
        lag = "?" if group.lag is None else str(group.lag)
        row(
            group.name,
            f"consumers {group.consumers}  pending {group.pending}  "
            f"lag {lag}  last {group.last_delivered_id}",
            WARN_COLOR if group.pending or group.lag else "",
        )
    if not state.groups:
        row("-", "none")
    out.line(("Collectors", "bold"))
    for collector in state.collectors:
        updated = collector.get("updated_ms", "")
        age = f"{duration(now - int(updated))} ago" if updated.isdigit() else "?"
        row(
            collector.get("consumer", "?"),
            f"{collector.get('state', '?')}  updated {age}  read {collector.get('read', '?')}  "
            f"written {collector.get('written', '?')}  lag {collector.get('lag', '?')}  "
            f"pending {collector.get('pending', '?')}  sinks {collector.get('sinks', '?')}",
            OK_COLOR if collector.get("state") == "running" else WARN_COLOR,
        )
    if not state.collectors:
        row("-", "no collector reporting")
