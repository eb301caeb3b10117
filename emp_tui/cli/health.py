"""`emp-tui health`: the stream (length, age, rate, what MAXLEN holds), its consumer groups and
the collectors' own reports (:func:`emp_tui.health.read_stream_state`); with ``--file`` and no
``--redis-url``, the collector's log files instead (:func:`emp_tui.health.read_logs_state`).
Rates are measured over the last 5 minutes, or over what the source holds when it holds less;
"now" is the wall clock for the stream, the newest event for the files."""

from __future__ import annotations

import argparse
from pathlib import Path
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
    say,
    source_error,
)
from emp_tui.cli.output import Output
from emp_tui.text import duration, local_time

if TYPE_CHECKING:
    from emp_tui.health import LogsState, StreamState


def run_health(args: argparse.Namespace, settings: Settings, out: Output) -> int:
    import redis

    from emp_tui.health import read_stream_state

    if settings.files and not settings.redis_explicit:
        return _run_logs_health(settings, out)

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


def _records(out: Output, state: StreamState, flag_maxlen: int) -> None:
    last_ms = state.last_ms
    maxlen = state.maxlen(flag_maxlen)
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
            "rateWindowMs": state.rate_window_ms,
            "nowMs": state.now_ms,
            "maxlenCoversMs": state.covers_ms(maxlen) if maxlen else None,
            "trim": state.trim.to_dict() if state.trim is not None else None,
            "memoryBytes": state.memory_bytes,
            "entriesAdded": state.entries_added,
            "trimmed": state.trimmed,
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
                "entriesRead": group.entries_read,
            }
        )
    for collector in state.collectors:
        out.record({"kind": "collector", **collector})


def _report(out: Output, state: StreamState, flag_maxlen: int) -> None:
    from emp_tui.health import number_field

    def row(label: str, value: str, style: str = "") -> None:
        out.line((f"  {label:<22}", "dim"), (value, style))

    now = state.now_ms
    first_ms, last_ms = state.first_ms, state.last_ms
    maxlen = state.maxlen(flag_maxlen)
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
    window = _window_text(state.rate_window_ms)
    row("rate", f"{state.events_per_minute:.1f} events/min ({window})")
    covers = state.covers_ms(maxlen) if maxlen else None
    row(
        "MAXLEN window",
        f"{duration(covers)} at this rate"
        if covers
        else (f"- (no events {window})" if maxlen else "- (no MAXLEN: trimmed by age)"),
    )
    memory = state.memory_bytes
    row("memory", f"{memory / 1024:.0f} KiB" if memory else "-")
    out.line(("Events/min by service", "bold"), f" ({window})")
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
        updated = number_field(collector, "updated_ms")
        age = f"{duration(now - updated)} ago" if updated is not None else "?"
        row(
            collector.get("consumer", "?"),
            f"{collector.get('state', '?')}  updated {age}  read {collector.get('read', '?')}  "
            f"written {collector.get('written', '?')}  lag {collector.get('lag', '?')}  "
            f"pending {collector.get('pending', '?')}  sinks {collector.get('sinks', '?')}",
            OK_COLOR if collector.get("state") == "running" else WARN_COLOR,
        )
    if not state.collectors:
        row("-", "no collector reporting")


def _window_text(window_ms: int, source: str = "the stream") -> str:
    """What a rate is measured over, in words."""
    from emp_tui.health import RECENT_MS

    if window_ms >= RECENT_MS:
        newest = " before the newest event" if source == "the logs" else ""
        return f"last {duration(RECENT_MS)}{newest}"
    return f"over {duration(window_ms)}, all {source} hold{'' if source == 'the logs' else 's'}"


def _run_logs_health(settings: Settings, out: Output) -> int:
    from emp_tui.health import read_logs_state
    from emp_tui.sources import SourceError

    try:
        state = read_logs_state(settings.files)
    except SourceError as exc:
        raise source_error(exc) from None
    if state.last_ms is None:
        for reason in state.unreadable:
            say(f"skipped an unreadable file: {reason}")
        raise CliError("the files hold no events", EXIT_NOTHING)
    if out.json:
        _logs_records(out, state)
    else:
        _logs_report(out, state)
        for reason in state.unreadable:
            say(f"skipped an unreadable file: {reason}")
    return EXIT_FOUND


def _logs_records(out: Output, state: LogsState) -> None:
    out.record(
        {
            "kind": "logs",
            "files": len(state.files),
            "bytes": sum(f.size for f in state.files),
            "lines": state.lines,
            "firstMs": state.first_ms,
            "lastMs": state.last_ms,
            "spanMs": state.span_ms,
            "nowMs": state.now_ms,
            "eventsPerMinute": state.events_per_minute,
            "rateWindowMs": state.rate_window_ms,
            "corrupt": state.corrupt,
            "unreadable": state.unreadable,
        }
    )
    for log in state.files:
        out.record({"kind": "file", "path": log.path, "bytes": log.size, "lines": log.lines})
    for service, rate in sorted(state.per_minute_by_service().items()):
        out.record({"kind": "service", "service": service, "eventsPerMinute": rate})


def _logs_report(out: Output, state: LogsState) -> None:
    def row(label: str, value: str, style: str = "") -> None:
        out.line((f"  {label:<22}", "dim"), (value, style))

    window = _window_text(state.rate_window_ms, "the logs")
    out.line(("Logs ", "bold"), (f"{len(state.files)} file(s)", "bold cyan"))
    row("lines", f"{state.lines:,} ({sum(f.size for f in state.files) / 1e6:.1f} MB)")
    if state.first_ms is not None and state.last_ms is not None:
        row("oldest", local_time(state.first_ms))
        row("newest", local_time(state.last_ms))
        row("holds", duration(state.span_ms))
    row("rate", f"{state.events_per_minute:.1f} events/min ({window})")
    if state.corrupt:
        row("corrupt lines", f"{state.corrupt} (among the recent ones read)", WARN_COLOR)
    out.line(("Events/min by service", "bold"), f" ({window})")
    for service, rate in sorted(state.per_minute_by_service().items(), key=lambda kv: -kv[1]):
        row(service, f"{rate:.1f}", service_color(service))
    out.line(("Files", "bold"))
    for log in state.files:
        row(Path(log.path).name, f"{log.lines:,} lines  {log.size / 1e6:.1f} MB")
