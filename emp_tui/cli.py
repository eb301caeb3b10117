"""The `emp-tui` command: the app, and the debug tools for scripts and CI.

    emp-tui [--job JOB_ID] [--filter QUERY] [--since T] [--until T]    the app
    emp-tui search QUERY [--limit N] [--job-id ID] [--service S] [--type T]
                         [--since T] [--until T] [--last 1h]
    emp-tui stream [QUERY]                         live tail until Ctrl+C
    emp-tui timeline JOB_ID [--gap 2s]
    emp-tui correlate JOB_ID [--gap 5s] [--window 5s]
    emp-tui perf [QUERY] [--last 1h]
    emp-tui health [--maxlen 10000]
    emp-tui export QUERY -o FILE [--format jsonl|csv|json|chrome-trace] [--force]
    emp-tui demo|sim ...                           simulated EMP services (emp_tui.demo)

Global options (before or after the command): --redis-url, --stream, --file PATH (repeatable;
read logs or exports instead of Redis, or beside it when --redis-url is given too), --json.
Settings: flags > environment (REDIS_URL or REDIS_HOST/REDIS_PORT/..., EMP_EVENTS_STREAM) >
defaults.

Exit codes: 0 found, 1 nothing matched, 2 bad usage or query, 3 a source that cannot be read
(Redis unreachable, a file missing or unreadable), 4 an internal error. Every failure is a
one-line message on stderr (a bad query adds the query with a caret under the fault).

Imports stay lazy: start-up time is part of every command's cost, so Redis is imported only
when Redis is read, Rich only when printing for a human, and Textual only by the app.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NoReturn

from emp_tui import __version__

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

    from emp_tui.analysis import Gap, Handoff, Timeline
    from emp_tui.events import TelemetryEvent
    from emp_tui.query import Query

EXIT_FOUND: Final = 0
EXIT_NOTHING: Final = 1
EXIT_USAGE: Final = 2
EXIT_SOURCE: Final = 3
EXIT_INTERNAL: Final = 4

COMMANDS: Final = ("search", "stream", "timeline", "correlate", "perf", "health", "export")
DELEGATED: Final = ("demo", "sim")
_SERVICE_STYLES: Final = (
    "cyan",
    "green",
    "magenta",
    "blue",
    "yellow",
    "bright_cyan",
    "bright_green",
    "bright_magenta",
    "bright_blue",
)
_LEVEL_STYLES: Final = {"error": "bold red", "warn": "yellow", "debug": "dim", "info": ""}


class CliError(Exception):
    """A failure to report in one line, with its exit code."""

    def __init__(self, message: str, code: int, detail: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.detail = detail


# -- arguments ------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad usage as a CliError (one line, exit 2) instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise CliError(f"{message} (see {self.prog} --help)", EXIT_USAGE)


def _global_options(*, suppress: bool) -> _Parser:
    default: Any = argparse.SUPPRESS if suppress else None
    common = _Parser(add_help=False)
    group = common.add_argument_group("sources and output")
    group.add_argument(
        "--redis-url",
        metavar="URL",
        default=default,
        help="Redis URL (default: $REDIS_URL, else $REDIS_HOST/$REDIS_PORT)",
    )
    group.add_argument(
        "--stream",
        metavar="KEY",
        default=default,
        help="stream key (default: $EMP_EVENTS_STREAM or emp:events)",
    )
    group.add_argument(
        "--file",
        metavar="PATH",
        action="append",
        type=Path,
        default=default if suppress else [],
        help="read a log or export file (or a directory of them); repeatable. "
        "Redis is read too only when --redis-url is also given",
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=default if suppress else False,
        help="one JSON object per line",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="emp-tui",
        description="A terminal debugger for the EMP job platform's telemetry events. "
        "With no command it opens the app.",
        parents=[_global_options(suppress=False)],
        epilog="Exit codes: 0 found, 1 nothing matched, 2 bad usage or query, "
        "3 source unreachable or unreadable, 4 internal error.",
    )
    parser.add_argument("--version", action="version", version=f"emp-tui {__version__}")
    parser.add_argument("--job", metavar="JOB_ID", help="open the app on this job's timeline")
    parser.add_argument("--filter", metavar="QUERY", help="open the app with this filter")
    parser.add_argument(
        "--since",
        dest="app_since",
        metavar="TIME",
        help="open the app on history since TIME (10m, 2h, an ISO-8601 date; default: the "
        "last 15 minutes the sources hold, config.toml's window)",
    )
    parser.add_argument(
        "--until", dest="app_until", metavar="TIME", help="open the app on history until TIME"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    common = [_global_options(suppress=True)]

    def query_arg(p: argparse.ArgumentParser, required: bool) -> None:
        p.add_argument(
            "query",
            nargs="+" if required else "*",
            metavar="QUERY",
            help="a query, e.g. 'service:worker type:job.* since:10m' (several words are joined)",
        )

    def time_shortcuts(p: argparse.ArgumentParser) -> None:
        p.add_argument("--since", metavar="TIME", help="same as since:TIME")
        p.add_argument("--until", metavar="TIME", help="same as until:TIME")
        p.add_argument("--last", metavar="DURATION", help="same as since:DURATION (e.g. 1h)")

    p = sub.add_parser("search", parents=common, help="events matching a query")
    query_arg(p, required=False)
    p.add_argument("--limit", type=int, metavar="N", help="only the N most recent matches")
    p.add_argument("--job-id", metavar="ID", help="same as job:ID")
    p.add_argument("--service", metavar="NAME", help="same as service:NAME")
    p.add_argument("--type", metavar="TYPE", help="same as type:TYPE")
    time_shortcuts(p)

    p = sub.add_parser("stream", parents=common, help="follow new events live until Ctrl+C")
    query_arg(p, required=False)
    p.add_argument("--service", metavar="NAME", help="same as service:NAME")
    p.add_argument("--job-id", metavar="ID", help="same as job:ID")

    p = sub.add_parser("timeline", parents=common, help="a job's events, gaps and handoffs")
    p.add_argument("job_id", metavar="JOB_ID")
    p.add_argument(
        "--gap",
        default="5s",
        metavar="DURATION",
        help="a step longer than this is a gap (default 5s)",
    )

    p = sub.add_parser(
        "correlate", parents=common, help="a job's gaps, handoffs and related events"
    )
    p.add_argument("job_id", metavar="JOB_ID")
    p.add_argument("--gap", default="5s", metavar="DURATION", help="gap threshold (default 5s)")
    p.add_argument(
        "--window",
        default="5s",
        metavar="DURATION",
        help="related events this long around the job (default 5s)",
    )

    p = sub.add_parser("perf", parents=common, help="per-event-type counts and durations")
    query_arg(p, required=False)
    time_shortcuts(p)

    p = sub.add_parser("health", parents=common, help="the stream, its readers and collectors")
    p.add_argument(
        "--maxlen",
        type=int,
        default=10_000,
        metavar="N",
        help="the MAXLEN the emitters trim to (default 10000)",
    )

    p = sub.add_parser("export", parents=common, help="write matching events to a file")
    query_arg(p, required=False)
    p.add_argument("-o", "--output", required=True, type=Path, metavar="FILE")
    p.add_argument(
        "--format",
        choices=("jsonl", "csv", "json", "chrome-trace"),
        help="default: from FILE (.csv, .json, .trace.json), else jsonl",
    )
    p.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    time_shortcuts(p)

    for name in DELEGATED:
        sub.add_parser(
            name, help="simulated EMP services over a real Redis (see `emp-tui demo -h`)"
        )
    return parser


@dataclass
class Settings:
    redis_url: str
    redis_explicit: bool
    stream: str
    files: list[Path]
    json: bool

    @property
    def use_redis(self) -> bool:
        return not self.files or self.redis_explicit


def _settings(args: argparse.Namespace) -> Settings:
    from emp_tui.config import redis_url_from_env, stream_from_env

    url = getattr(args, "redis_url", None)
    return Settings(
        redis_url=url or redis_url_from_env(),
        redis_explicit=url is not None,
        stream=getattr(args, "stream", None) or stream_from_env(),
        files=list(getattr(args, "file", None) or []),
        json=bool(getattr(args, "json", False)),
    )


def _quote(value: str) -> str:
    if value and not any(c.isspace() or c in '",' for c in value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _query_text(args: argparse.Namespace) -> str:
    parts = [" ".join(getattr(args, "query", None) or [])]
    for option, field_name in (
        ("job_id", "job"),
        ("service", "service"),
        ("type", "type"),
        ("since", "since"),
        ("until", "until"),
        ("last", "since"),
    ):
        value = getattr(args, option, None)
        if value:
            parts.append(f"{field_name}:{_quote(value)}")
    return " ".join(part for part in parts if part)


def _parse_query(text: str) -> Query:
    from emp_tui.query import QueryError, parse_query

    try:
        return parse_query(text)
    except QueryError as exc:
        raise CliError(f"bad query: {exc}", EXIT_USAGE, exc.caret(text)) from None


def _duration_ms(text: str, option: str) -> int:
    from emp_tui.query import parse_duration_ms

    if text.isdigit():
        return int(text)
    ms = parse_duration_ms(text)
    if ms is None:
        raise CliError(f"bad {option} {text!r}: use e.g. 500ms, 2s, 1m", EXIT_USAGE)
    return ms


# -- reading events -------------------------------------------------------------------------


@dataclass
class Loaded:
    events: list[TelemetryEvent]
    notes: list[str] = field(default_factory=list)


def _source_error(exc: Exception) -> CliError:
    return CliError(str(exc), EXIT_SOURCE)


def _redis_client(settings: Settings) -> Any:
    from emp_tui.sources import SourceError, connect

    try:
        return connect(settings.redis_url)
    except SourceError as exc:
        raise _source_error(exc) from None


def _load(settings: Settings, query: Query, *, limit: int | None = None) -> Loaded:
    """The events ``query`` matches from the configured sources, in stream order."""
    from emp_tui.sources import FileStats, SourceError, merge, read_files, read_query

    sources: list[Iterable[TelemetryEvent]] = []
    notes: list[str] = []
    stats = FileStats()
    try:
        if settings.files:
            sources.append(list(read_files(settings.files, query, stats)))
        if settings.use_redis:
            client = _redis_client(settings)
            try:
                sources.append(read_query(client, settings.stream, query, limit=limit))
            finally:
                client.close()
    except SourceError as exc:
        raise _source_error(exc) from None
    if stats.corrupt:
        first = stats.problems[0] if stats.problems else ""
        notes.append(f"skipped {stats.corrupt} corrupt line(s) (first: {first})")
    events = merge(*sources)
    if limit is not None:
        events = events[-limit:] if limit > 0 else []
    return Loaded(events, notes)


# -- output ---------------------------------------------------------------------------------

_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
_CONTROL[ord("\n")] = "\\n"
_CONTROL[ord("\t")] = "\\t"
_CONTROL[ord("\r")] = "\\r"


def clean(text: str) -> str:
    """Event content made safe for a terminal: control characters shown, not obeyed."""
    return text.translate(_CONTROL)


class Output:
    """Where a command's results go: JSON lines, or aligned Rich text for a human."""

    def __init__(self, json_lines: bool) -> None:
        self.json = json_lines
        self._console: Console | None = None
        # Without colour, a line is plain text: written directly, it costs far less than
        # through Rich (which matters for a search that prints thousands of lines).
        self.plain = not sys.stdout.isatty() or bool(os.environ.get("NO_COLOR"))

    @property
    def console(self) -> Console:
        if self._console is None:
            from rich.console import Console

            # Piped output is not cut to 80 columns: tables keep their full width.
            width = None if sys.stdout.isatty() else 250
            self._console = Console(
                highlight=False, soft_wrap=True, emoji=False, markup=False, width=width
            )
        return self._console

    def record(self, obj: dict[str, Any]) -> None:
        import orjson

        sys.stdout.buffer.write(orjson.dumps(obj, default=str, option=orjson.OPT_APPEND_NEWLINE))

    def line(self, *parts: str | tuple[str, str]) -> None:
        if self.plain:
            joined = "".join(part[0] if isinstance(part, tuple) else part for part in parts)
            sys.stdout.write(clean(joined).rstrip() + "\n")
            return
        text = self.text(*parts)
        text.rstrip()
        self.console.print(text)

    def text(self, *parts: str | tuple[str, str]) -> Text:
        from rich.text import Text

        out = Text()
        for part in parts:
            if isinstance(part, tuple):
                out.append(clean(part[0]), style=part[1] or None)
            else:
                out.append(clean(part))
        return out

    def flush(self) -> None:
        sys.stdout.flush()


def _service_style(service: str) -> str:
    return _SERVICE_STYLES[sum(service.encode()) % len(_SERVICE_STYLES)]


def _clock(ms: int) -> str:
    moment = time.localtime(ms / 1000)
    return time.strftime("%Y-%m-%d %H:%M:%S", moment) + f".{ms % 1000:03d}"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 60_000:
        return f"{value / 60_000:.1f}m"
    if abs(value) >= 1000:
        return f"{value / 1000:.2f}s"
    return f"{value:.0f}ms"


def _summary(data: Any, width: int = 100) -> str:
    import orjson

    if not data:
        return ""
    parts = []
    for key, value in data.items():
        shown = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
        parts.append(f"{key}={shown}")
    text = " ".join(parts)
    return text if len(text) <= width else text[: width - 1] + "…"


def _event_line(
    out: Output, event: TelemetryEvent, prefix: Sequence[str | tuple[str, str]] = ()
) -> None:
    ids = " ".join(
        f"{label}={value}"
        for label, value in (
            ("job", event.job_id),
            ("worker", event.worker_id),
            ("machine", event.machine_id),
        )
        if value
    )
    out.line(
        *prefix,
        (_clock(event.timestamp), "dim"),
        "  ",
        (f"{event.service:<16}", _service_style(event.service)),
        (f"{event.event_type:<32}", "bold"),
        (f"{event.level:<6}", _LEVEL_STYLES.get(event.level, "")),
        (f"{ids}  " if ids else "", "cyan"),
        _summary(event.data),
        (f"  [malformed: {event.malformed}]" if event.malformed else "", "bold red"),
    )


# -- commands -------------------------------------------------------------------------------


def cmd_search(args: argparse.Namespace, settings: Settings, out: Output) -> int:
    query = _parse_query(_query_text(args))
    if args.limit is not None and args.limit < 0:
        raise CliError("--limit must be 0 or more", EXIT_USAGE)
    loaded = _load(settings, query, limit=args.limit)
    _notes(loaded.notes)
    for event in loaded.events:
        if out.json:
            out.record(event.to_dict())
        else:
            _event_line(out, event)
    if not loaded.events:
        _say(f"no events match {query.text!r}" if query.text else "no events")
        return EXIT_NOTHING
    if not out.json:
        _say(f"{len(loaded.events)} event(s)")
    return EXIT_FOUND


def cmd_stream(args: argparse.Namespace, settings: Settings, out: Output) -> int:
    import asyncio

    from emp_tui.sources import RedisTail

    query = _parse_query(_query_text(args))
    if settings.files and not settings.redis_explicit:
        raise CliError("stream follows Redis; --file is not followed (use search)", EXIT_USAGE)
    _redis_client(settings).close()  # unreachable at the start: say so and stop

    def state(name: str, error: str | None) -> None:
        if name != "disconnected":
            _say(f"{name}{f' ({error})' if error else ''}")

    async def follow() -> None:
        tail = RedisTail(settings.redis_url, settings.stream, on_state=state)
        try:
            async for batch in tail:
                for event in batch:
                    if query.matches(event):
                        if out.json:
                            out.record(event.to_dict())
                        else:
                            _event_line(out, event)
                out.flush()
        finally:
            await tail.aclose()

    _say(f"following {settings.stream} (Ctrl+C to stop)")
    with suppress(KeyboardInterrupt):  # Ctrl+C is how a live tail ends
        asyncio.run(follow())
    return EXIT_FOUND


def _job_events(settings: Settings, job_id: str) -> Loaded:
    """Everything at hand (the other jobs too: they tell what "usual" is)."""
    from emp_tui.query import parse_query

    if settings.files and not settings.use_redis:
        # Decoding every line of large logs takes a while: first make sure the job is there,
        # which the pre-filter answers quickly.
        own = _load(settings, parse_query(f"job:{_quote(job_id)}"))
        if not own.events:
            _notes(own.notes)
            raise CliError(f"no events for job {job_id!r}", EXIT_NOTHING)
    loaded = _load(settings, parse_query(""))
    if not any(event.job_id == job_id for event in loaded.events):
        _notes(loaded.notes)
        raise CliError(f"no events for job {job_id!r}", EXIT_NOTHING)
    return loaded


def _gap_record(gap: Gap) -> dict[str, Any]:
    return {
        "kind": "gap",
        "gapKind": gap.kind,
        "afterIndex": gap.after_index,
        "startMs": gap.start_ms,
        "endMs": gap.end_ms,
        "durationMs": gap.duration_ms,
        "usualP95Ms": gap.usual_p95_ms,
        "from": {"service": gap.from_service, "eventType": gap.from_type},
        "to": {"service": gap.to_service, "eventType": gap.to_type},
    }


def _handoff_record(handoff: Handoff) -> dict[str, Any]:
    return {
        "kind": "handoff",
        "from": handoff.from_service,
        "to": handoff.to_service,
        "fromType": handoff.from_type,
        "toType": handoff.to_type,
        "startMs": handoff.start_ms,
        "endMs": handoff.end_ms,
        "durationMs": handoff.duration_ms,
        "error": handoff.error,
    }


def _gap_text(gap: Gap, gap_ms: int) -> str:
    if gap.kind == "threshold":
        why = f"over {_ms(gap_ms)}"
        if gap.usual_p95_ms is not None:
            why += f"; usually p95 {_ms(gap.usual_p95_ms)}"
    else:
        why = f"slower than usual: p95 {_ms(gap.usual_p95_ms)}"
    return (
        f"gap {_ms(gap.duration_ms)} ({why}) {gap.from_service} {gap.from_type} → "
        f"{gap.to_service} {gap.to_type}"
    )


def _timeline_summary(timeline: Timeline) -> dict[str, Any]:
    return {
        "kind": "summary",
        "jobId": timeline.job_id,
        "status": timeline.status,
        "startMs": timeline.start_ms,
        "endMs": timeline.end_ms,
        "durationMs": timeline.duration_ms,
        "services": timeline.services,
        "events": len(timeline.steps),
        "gaps": len(timeline.gaps),
        "silentMs": timeline.silent_ms,
    }


def _print_timeline_header(out: Output, timeline: Timeline) -> None:
    status_style = {"completed": "green", "failed": "bold red", "stalled": "yellow"}
    out.line(
        ("Job ", "bold"),
        (timeline.job_id, "bold cyan"),
        "  ",
        (timeline.status, status_style.get(timeline.status, "")),
        f"  {_ms(timeline.duration_ms)}  {len(timeline.steps)} event(s)  ",
        " → ".join(timeline.services),
    )


def _print_handoffs(out: Output, handoffs: list[Handoff]) -> None:
    out.line(("Handoffs", "bold"), f" ({len(handoffs)})")
    for handoff in handoffs:
        out.line(
            "  ",
            (f"{handoff.from_service:>16}", _service_style(handoff.from_service)),
            " → ",
            (f"{handoff.to_service:<16}", _service_style(handoff.to_service)),
            (f"{handoff.duration_ms:>8} ms", "bold red" if handoff.error else "bold"),
            (f"  {handoff.from_type} → {handoff.to_type}", "dim"),
        )


def cmd_timeline(args: argparse.Namespace, settings: Settings, out: Output) -> int:
    from emp_tui.analysis import job_handoffs, job_timeline

    gap_ms = _duration_ms(args.gap, "--gap")
    loaded = _job_events(settings, args.job_id)
    _notes(loaded.notes)
    # Live (Redis): an open job is silent up to now. Files alone are a recording: up to their
    # newest event, or every open job in an old log would look silent for days.
    newest = max((event.timestamp for event in loaded.events), default=None)
    now_ms = _now_ms() if settings.use_redis or newest is None else newest
    timeline = job_timeline(loaded.events, args.job_id, gap_ms=gap_ms, now_ms=now_ms)
    handoffs = job_handoffs(timeline.events, args.job_id)
    if out.json:
        out.record(_timeline_summary(timeline))
        for step in timeline.steps:
            out.record(
                {
                    "kind": "step",
                    "offsetMs": step.offset_ms,
                    "deltaMs": step.delta_ms,
                    "serviceChanged": step.service_changed,
                    "gap": step.gap is not None,
                    "event": step.event.to_dict(),
                }
            )
        for gap in timeline.gaps:
            out.record(_gap_record(gap))
        for handoff in handoffs:
            out.record(_handoff_record(handoff))
        return EXIT_FOUND
    _print_timeline_header(out, timeline)
    if timeline.silent_ms is not None and timeline.silent_ms >= gap_ms:
        out.line(("  silent for ", "bold yellow"), (_ms(timeline.silent_ms), "bold yellow"),
                 ("  since its last event, with no terminal event", "yellow"))  # fmt: skip
    out.line(("      offset     delta  time", "dim"))
    for step in timeline.steps:
        if step.gap is not None:
            out.line(("  ── ", "yellow"), (_gap_text(step.gap, gap_ms), "bold yellow"))
        _event_line(
            out,
            step.event,
            prefix=(
                (f"{'+' + _ms(step.offset_ms):>12}", ""),
                (f"{'+' + _ms(step.delta_ms):>10}", "bold yellow" if step.gap else "dim"),
                ("  ", ""),
            ),
        )
    out.line(("Gaps", "bold"), f" ({len(timeline.gaps)})")
    for gap in timeline.gaps:
        out.line("  ", (_gap_text(gap, gap_ms), "yellow"))
    _print_handoffs(out, handoffs)
    return EXIT_FOUND


def cmd_correlate(args: argparse.Namespace, settings: Settings, out: Output) -> int:
    from emp_tui.analysis import correlate

    gap_ms = _duration_ms(args.gap, "--gap")
    window_ms = _duration_ms(args.window, "--window")
    loaded = _job_events(settings, args.job_id)
    _notes(loaded.notes)
    found = correlate(
        loaded.events, args.job_id, gap_ms=gap_ms, window_ms=window_ms, now_ms=_now_ms()
    )
    related: list[tuple[str, str, TelemetryEvent]] = [
        ("trace", event.trace_id, event) for event in found.by_trace
    ]
    for worker, events in found.by_worker.items():
        related += [("worker", worker, event) for event in events]
    for machine, events in found.by_machine.items():
        related += [("machine", machine, event) for event in events]
    if out.json:
        summary = _timeline_summary(found.timeline)
        summary["traceIds"] = found.trace_ids
        summary["windowStartMs"] = found.window_start_ms
        summary["windowEndMs"] = found.window_end_ms
        out.record(summary)
        for gap in found.timeline.gaps:
            out.record(_gap_record(gap))
        for handoff in found.handoffs:
            out.record(_handoff_record(handoff))
        for by, key, event in related:
            out.record({"kind": "related", "by": by, "key": key, "event": event.to_dict()})
        return EXIT_FOUND
    _print_timeline_header(out, found.timeline)
    out.line(("Trace ", "dim"), ", ".join(found.trace_ids) or "-")
    out.line(("Gaps", "bold"), f" ({len(found.timeline.gaps)})")
    for gap in found.timeline.gaps:
        out.line("  ", (_gap_text(gap, gap_ms), "yellow"))
    _print_handoffs(out, found.handoffs)
    out.line(
        ("Related events", "bold"),
        f" ({len(related)}; workers and machines within {_ms(window_ms)} of the job)",
    )
    for by, key, event in related:
        _event_line(out, event, prefix=((f"  {by + ':' + key[:16]:<24} ", "dim"),))
    return EXIT_FOUND


def cmd_perf(args: argparse.Namespace, settings: Settings, out: Output) -> int:
    from emp_tui.analysis import event_type_stats

    query = _parse_query(_query_text(args))
    loaded = _load(settings, query)
    _notes(loaded.notes)
    if not loaded.events:
        _say("no events")
        return EXIT_NOTHING
    stats = event_type_stats(loaded.events)
    if out.json:
        for s in stats:
            out.record(
                {
                    "eventType": s.event_type,
                    "count": s.count,
                    "errors": s.errors,
                    "timed": s.timed,
                    "avgMs": s.avg_ms,
                    "p50Ms": s.p50_ms,
                    "p95Ms": s.p95_ms,
                    "maxMs": s.max_ms,
                    "services": s.services,
                }
            )
        return EXIT_FOUND
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for name, justify in (
        ("event type", "left"),
        ("count", "right"),
        ("errors", "right"),
        ("timed", "right"),
        ("avg", "right"),
        ("p50", "right"),
        ("p95", "right"),
        ("max", "right"),
        ("services", "left"),
    ):
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for s in stats:
        table.add_row(
            out.text((s.event_type, "bold")),
            str(s.count),
            out.text((str(s.errors), "red" if s.errors else "dim")),
            str(s.timed),
            _ms(s.avg_ms),
            _ms(s.p50_ms),
            _ms(s.p95_ms),
            _ms(s.max_ms),
            out.text(", ".join(s.services)),
        )
    out.console.print(table)
    first, last = loaded.events[0], loaded.events[-1]
    _say(
        f"{len(loaded.events)} event(s) from {_clock(first.timestamp)} to {_clock(last.timestamp)}"
    )
    return EXIT_FOUND


def cmd_health(args: argparse.Namespace, settings: Settings, out: Output) -> int:
    import redis

    from emp_tui.events import decode, stream_id_ms
    from emp_tui.health import read_collectors_sync

    client = _redis_client(settings)
    stream = settings.stream
    now = _now_ms()
    try:
        if not client.exists(stream):
            raise CliError(f"stream {stream!r} does not exist (no events yet?)", EXIT_NOTHING)
        info: Any = client.xinfo_stream(stream)
        length = int(info.get("length", 0))
        first_entry, last_entry = info.get("first-entry"), info.get("last-entry")
        first_id = first_entry[0].decode() if first_entry else None
        last_id = last_entry[0].decode() if last_entry else None
        window_ms = 5 * 60_000
        recent: Any = client.xrange(stream, f"{now - window_ms}-0", "+")
        per_service: dict[str, int] = {}
        for entry_id, fields in recent:
            service = decode(entry_id, fields or {}).service
            per_service[service] = per_service.get(service, 0) + 1
        rate = len(recent) / (window_ms / 60_000)
        groups: Any = client.xinfo_groups(stream)
        for group in groups:
            if "lag" not in group:
                # Redis before 7 does not say: count what the group has not been given yet.
                after = "(" + _decoded(group.get("last-delivered-id"))
                group["lag"] = len(client.xrange(stream, after, "+"))
        try:
            memory = client.memory_usage(stream, samples=0)
        except redis.ResponseError:
            memory = None
        collectors = read_collectors_sync(client)
    except redis.ResponseError as exc:
        raise CliError(f"cannot inspect stream {stream!r}: {exc}", EXIT_SOURCE) from None
    except (redis.RedisError, OSError) as exc:
        raise CliError(f"lost Redis: {exc}", EXIT_SOURCE) from None
    finally:
        client.close()

    first_ms, last_ms = stream_id_ms(first_id), stream_id_ms(last_id)
    span_ms = (last_ms - first_ms) if first_ms is not None and last_ms is not None else None
    covers_ms = args.maxlen / rate * 60_000 if rate else None
    group_rows = [
        {
            "name": _decoded(g.get("name")),
            "consumers": g.get("consumers"),
            "pending": g.get("pending"),
            "lag": g.get("lag"),
            "lastDeliveredId": _decoded(g.get("last-delivered-id")),
        }
        for g in groups
    ]
    stream_record = {
        "kind": "stream",
        "stream": stream,
        "length": length,
        "maxlen": args.maxlen,
        "firstId": first_id,
        "lastId": last_id,
        "spanMs": span_ms,
        "eventsPerMinute": rate,
        "maxlenCoversMs": covers_ms,
        "memoryBytes": memory,
        "lastEventAgeMs": now - last_ms if last_ms is not None else None,
    }
    if out.json:
        out.record(stream_record)
        for service, count in sorted(per_service.items()):
            out.record({"kind": "service", "service": service, "eventsPerMinute": count / 5})
        for group in group_rows:
            out.record({"kind": "group", **group})
        for collector in collectors:
            out.record({"kind": "collector", **collector})
        return EXIT_FOUND

    def row(label: str, value: str, style: str = "") -> None:
        out.line((f"  {label:<22}", "dim"), (value, style))

    out.line(("Stream ", "bold"), (stream, "bold cyan"))
    row("length", f"{length} (MAXLEN ~{args.maxlen})")
    if first_ms is not None and last_ms is not None:
        row("oldest", f"{first_id}  {_clock(first_ms)}")
        row("newest", f"{last_id}  {_clock(last_ms)}  ({_ms(now - last_ms)} ago)")
        row("holds", _ms(span_ms))
    row("rate", f"{rate:.1f} events/min (last 5 min)")
    row(
        "MAXLEN window",
        f"{_ms(covers_ms)} at this rate" if covers_ms else "- (no events in the last 5 min)",
    )
    row("memory", f"{memory / 1024:.0f} KiB" if memory else "-")
    out.line(("Events/min by service", "bold"), " (last 5 min)")
    for service, count in sorted(per_service.items(), key=lambda kv: -kv[1]):
        row(service, f"{count / 5:.1f}", _service_style(service))
    if not per_service:
        row("-", "none")
    out.line(("Consumer groups", "bold"))
    for group in group_rows:
        lag = group["lag"]
        row(
            str(group["name"]),
            f"consumers {group['consumers']}  pending {group['pending']}  "
            f"lag {'?' if lag is None else lag}  last {group['lastDeliveredId']}",
            "yellow" if group["pending"] or lag else "",
        )
    if not group_rows:
        row("-", "none")
    out.line(("Collectors", "bold"))
    for collector in collectors:
        updated = collector.get("updated_ms", "")
        age = f"{_ms(now - int(updated))} ago" if updated.isdigit() else "?"
        row(
            collector.get("consumer", "?"),
            f"{collector.get('state', '?')}  updated {age}  read {collector.get('read', '?')}  "
            f"written {collector.get('written', '?')}  lag {collector.get('lag', '?')}  "
            f"pending {collector.get('pending', '?')}  sinks {collector.get('sinks', '?')}",
            "green" if collector.get("state") == "running" else "yellow",
        )
    if not collectors:
        row("-", "no collector reporting")
    return EXIT_FOUND


def _decoded(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


_EXTENSIONS: Final = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".log": "jsonl"}


def cmd_export(args: argparse.Namespace, settings: Settings, out: Output) -> int:
    from emp_tui.export import write_events

    query = _parse_query(_query_text(args))
    path: Path = args.output
    fmt = args.format
    if fmt is None:
        fmt = (
            "chrome-trace"
            if path.name.endswith(".trace.json")
            else _EXTENSIONS.get(path.suffix.lower(), "jsonl")
        )
    if path.exists() and not args.force:
        raise CliError(f"{path} exists; add --force to overwrite it", EXIT_USAGE)
    loaded = _load(settings, query)
    _notes(loaded.notes)
    if not loaded.events:
        _say(f"no events match {query.text!r}; {path} not written")
        return EXIT_NOTHING
    try:
        count = write_events(loaded.events, path, fmt, overwrite=args.force)
    except FileExistsError:
        raise CliError(f"{path} exists; add --force to overwrite it", EXIT_USAGE) from None
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}", EXIT_USAGE) from None
    if out.json:
        out.record({"kind": "export", "path": str(path), "format": fmt, "count": count})
    else:
        _say(f"wrote {count} event(s) to {path} ({fmt})")
    return EXIT_FOUND


_HANDLERS: Final[dict[str, Callable[[argparse.Namespace, Settings, Output], int]]] = {
    "search": cmd_search,
    "stream": cmd_stream,
    "timeline": cmd_timeline,
    "correlate": cmd_correlate,
    "perf": cmd_perf,
    "health": cmd_health,
    "export": cmd_export,
}


# -- entry points ---------------------------------------------------------------------------


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _say(message: str) -> None:
    sys.stdout.flush()  # keep stdout and stderr in order on a terminal
    print(f"emp-tui: {clean(message)}", file=sys.stderr)


def _notes(notes: Iterable[str]) -> None:
    for note in notes:
        _say(note)


def _run_app(args: argparse.Namespace, settings: Settings) -> int:
    if args.filter:
        _parse_query(args.filter)
    try:
        from emp_tui.app import run_app
    except ImportError as exc:
        raise CliError(f"the app cannot start: {exc}", EXIT_USAGE) from None
    return int(
        run_app(
            # Only what the flags say: the app layers the environment and config.toml under
            # them, and --file alone stays offline.
            redis_url=settings.redis_url if settings.redis_explicit else None,
            stream=getattr(args, "stream", None),
            files=settings.files,
            job_id=args.job,
            query=args.filter,
            since=args.app_since,
            until=args.app_until,
        )
    )


def _run_delegated(argv: list[str]) -> int:
    try:
        from emp_tui.demo import main as demo_main
    except ImportError as exc:
        raise CliError(f"'{argv[0]}' is not available: {exc}", EXIT_USAGE) from None
    return int(demo_main(argv))


_VALUED_OPTIONS: Final = frozenset(
    {"--redis-url", "--stream", "--file", "--job", "--filter", "--since", "--until"}
)


def _delegated_index(argv: list[str]) -> int | None:
    """Where `demo`/`sim` stands when it is the command: its own options follow it."""
    index = 0
    while index < len(argv) and argv[index].startswith("-"):
        index += 2 if argv[index] in _VALUED_OPTIONS else 1
    if index < len(argv) and argv[index] in DELEGATED:
        return index
    return None


@contextmanager
def _quiet_broken_pipe() -> Iterator[None]:
    """`emp-tui search ... | head` must end quietly when head has read enough."""
    try:
        yield
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise SystemExit(EXIT_FOUND) from None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        with _quiet_broken_pipe():
            delegated = _delegated_index(argv)
            if delegated is not None:
                return _run_delegated(argv[delegated:])
            args = build_parser().parse_args(argv)
            settings = _settings(args)
            if args.command is None:
                return _run_app(args, settings)
            out = Output(settings.json)
            code = _HANDLERS[args.command](args, settings, out)
            out.flush()
            return code
    except CliError as exc:
        _say(str(exc))
        if exc.detail:
            print("\n".join(clean(line) for line in exc.detail.split("\n")), file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the last line of defence: one line, no traceback
        if os.environ.get("EMP_TUI_DEBUG"):
            raise
        _say(f"internal error: {type(exc).__name__}: {exc} (EMP_TUI_DEBUG=1 shows the traceback)")
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
