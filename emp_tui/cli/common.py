"""What every command shares: exit codes, the one-line error, the settings, the query built
from the arguments, and reading the events the query asks for from Redis and files."""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from emp_tui.text import inert

if TYPE_CHECKING:
    from emp_tui.events import TelemetryEvent
    from emp_tui.history import Holdings
    from emp_tui.query import Query
    from emp_tui.sources import SourceError

EXIT_FOUND: Final = 0
EXIT_NOTHING: Final = 1
EXIT_USAGE: Final = 2
EXIT_SOURCE: Final = 3
EXIT_INTERNAL: Final = 4

APP_REQUIRES: Final = ("textual", "rich", "platformdirs")
"""What the app needs beyond requirements-core.txt (import names)."""
SERVE_REQUIRES: Final = ("textual_serve",)
"""What `emp-tui serve` needs beyond the app."""
SERVE_HOST: Final = "127.0.0.1"
SERVE_PORT: Final = 8000
"""Where `emp-tui serve` listens unless told otherwise (here, not in the serve module: the
parser needs them, and every command and the app start without that module)."""

NEGATED_MARK: Final = "\0"
"""Put before a query word that starts with ``-`` so that argparse takes it for a word, not an
option (no argument from a command line can hold a NUL); taken off again by query_text."""


class CliError(Exception):
    """A failure to report in one line, with its exit code."""

    def __init__(self, message: str, code: int, detail: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.detail = detail


def require(modules: Iterable[str], what: str) -> None:
    """A CliError (bad usage) naming the ``modules`` that are not installed, if any."""
    missing = [name.replace("_", "-") for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise CliError(
            f"{what} cannot start: {', '.join(missing)} not installed (the lean install "
            "leaves the app out; `pip install emp-tui` brings it)",
            EXIT_USAGE,
        )


def say(message: str) -> None:
    """A note or an error on stderr, one line, escaped."""
    sys.stdout.flush()  # keep stdout and stderr in order on a terminal
    print(f"emp-tui: {inert(message)}", file=sys.stderr)


def notes(lines: Iterable[str]) -> None:
    for line in lines:
        say(line)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def reading_now_ms(settings: Settings, until_ms: int | None = None) -> int:
    """The "now" of what was read, by the one rule (:func:`sources_now`): the wall clock while
    Redis is read (a live stream), otherwise the newest event the files hold. With an
    ``until`` bound, the bound when it is earlier (what was wrong as of then)."""
    now = sources_now(settings, holdings(settings))
    return now if until_ms is None else min(until_ms, now)


# -- settings and the query -------------------------------------------------------------------


@dataclass
class Settings:
    redis_url: str
    redis_explicit: bool
    stream: str
    files: list[Path]
    json: bool
    shards: int = 1
    """The stream's shards (``EMP_EVENTS_SHARDS``, as the emitters are told): each read.
    Unless it was configured, the count the emitters recorded replaces it once connected
    (:func:`redis_client`)."""
    shards_configured: bool = False
    shards_found: bool = False

    @property
    def use_redis(self) -> bool:
        return not self.files or self.redis_explicit


def settings_from(args: argparse.Namespace) -> Settings:
    import os

    from emp_tui.env import redis_url_from_env, stream_from_env
    from emp_tui.topology import shards_configured

    url = getattr(args, "redis_url", None)
    try:
        configured = shards_configured(os.environ)
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    return Settings(
        redis_url=url or redis_url_from_env(),
        redis_explicit=url is not None,
        stream=getattr(args, "stream", None) or stream_from_env(),
        files=list(getattr(args, "file", None) or []),
        json=bool(getattr(args, "json", False)),
        shards=configured or 1,
        shards_configured=configured is not None,
    )


def quote(value: str) -> str:
    """``value`` as one query word (quoted when it holds spaces, quotes or commas)."""
    if value and not any(c.isspace() or c in '",' for c in value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


_SHORTCUTS: Final = (
    ("job_id", "job"),
    ("service", "service"),
    ("type", "type"),
    ("since", "since"),
    ("until", "until"),
    ("last", "since"),
)


def query_text(args: argparse.Namespace) -> str:
    """The query the arguments ask for: the words, then the shortcut options as terms."""
    words = [word.removeprefix(NEGATED_MARK) for word in getattr(args, "query", None) or []]
    parts = [" ".join(words)]
    for option, field_name in _SHORTCUTS:
        value = getattr(args, option, None)
        if value:
            parts.append(f"{field_name}:{quote(value)}")
    return " ".join(part for part in parts if part)


def parse_query(text: str, settings: Settings | None = None) -> Query:
    """The query ``text`` says. Its relative times (``since:10m``) count back from "now" by
    the one rule when ``settings`` are given (:func:`reading_now_ms`: the newest event of
    the files when only files are read), else from the clock."""
    from emp_tui.query import QueryError
    from emp_tui.query import parse_query as parse

    now = reading_now_ms(settings) if settings is not None and not settings.use_redis else None
    try:
        return parse(text, now_ms=now)
    except QueryError as exc:
        raise CliError(f"bad query: {exc}", EXIT_USAGE, exc.caret(text)) from None


def duration_option(text: str | None, option: str, default_ms: int) -> int:
    """A duration option (``500ms``, ``2s``, ``1m``, or plain milliseconds)."""
    from emp_tui.query import parse_duration_ms

    if text is None:
        return default_ms
    if text.isascii() and text.isdigit():
        return int(text)
    ms = parse_duration_ms(text)
    if ms is None:
        raise CliError(f"bad {option} {text!r}: use e.g. 500ms, 2s, 1m", EXIT_USAGE)
    return ms


# -- reading events ---------------------------------------------------------------------------


@dataclass
class Loaded:
    events: list[TelemetryEvent]
    notes: list[str] = field(default_factory=list)


def source_error(exc: SourceError) -> CliError:
    """A source that cannot be read is exit 3; a wrong Redis URL is bad usage (2)."""
    from emp_tui.sources import BadRedisUrl

    return CliError(str(exc), EXIT_USAGE if isinstance(exc, BadRedisUrl) else EXIT_SOURCE)


def redis_client(settings: Settings) -> Any:
    """A connected client for the configured Redis; a CliError when there is none. The
    first time, it settles how many shards to read (:func:`emp_tui.topology.find_shards`)
    and says on stderr when the configuration and the stream disagree."""
    from emp_tui.sources import SourceError, connect, find_shards_sync

    try:
        client = connect(settings.redis_url)
        if not settings.shards_found:
            found = find_shards_sync(
                client, settings.stream, settings.shards if settings.shards_configured else None
            )
            settings.shards, settings.shards_found = found.count, True
            if found.warning:
                say(found.warning)
        return client
    except SourceError as exc:
        raise source_error(exc) from None


def load(settings: Settings, query: Query, *, limit: int | None = None) -> Loaded:
    """The events ``query`` matches from the configured sources, in stream order."""
    from emp_tui.logindex import read_indexed
    from emp_tui.sources import FileStats, SourceError, merge, read_query

    sources: list[Iterable[TelemetryEvent]] = []
    found_notes: list[str] = []
    stats = FileStats()
    try:
        if settings.files:
            sources.append(list(read_indexed(settings.files, query, stats)))
        if settings.use_redis:
            client = redis_client(settings)
            try:
                sources.append(
                    read_query(client, settings.stream, query, limit=limit, shards=settings.shards)
                )
            finally:
                client.close()
    except SourceError as exc:
        raise source_error(exc) from None
    found_notes.extend(stats.notes())  # unreadable files and corrupt lines: skipped, said
    events = merge(*sources)
    if limit is not None:
        events = events[-limit:] if limit > 0 else []
    return Loaded(events, found_notes)


def holdings(settings: Settings) -> Holdings:
    """What the configured sources hold (their spans); a CliError when one cannot say."""
    from emp_tui.history import Holdings, logs_span, stream_span
    from emp_tui.sources import SourceError

    stream = logs = None
    try:
        if settings.files:
            logs = logs_span(settings.files)
        if settings.use_redis:
            client = redis_client(settings)
            try:
                stream = stream_span(client, settings.stream, settings.shards)
            finally:
                client.close()
    except SourceError as exc:
        raise source_error(exc) from None
    return Holdings(stream, logs)


def sources_now(settings: Settings, held: Holdings) -> int:
    """ "Now" by the one rule (:func:`emp_tui.history.now_ms`): the wall clock while Redis is
    read (a live stream), otherwise the newest event the files hold."""
    from emp_tui.history import now_ms as one_rule

    return one_rule(live=settings.use_redis, holdings=held, clock=time.time)


REFERENCE_EVENTS: Final = 10_000
"""Over log files, "usual" is learnt from the jobs (of the job's type) among this many events
up to the job's end: a bounded sample, not every line of the logs."""


@dataclass
class JobContext:
    """What `timeline` and `correlate` look at: the job's events with those around it
    (``events``), the other jobs "usual" is learnt from (``reference``; None: the other jobs
    among ``events``) and how that sample was taken (``usual_from``, for the output)."""

    events: list[TelemetryEvent]
    reference: list[TelemetryEvent] | None
    usual_from: str | None
    notes: list[str] = field(default_factory=list)


def job_context(
    settings: Settings, job_id: str, *, related: bool = False, after_ms: int = 0
) -> JobContext:
    """The job's events and the context analysis needs. From Redis: everything at hand
    (:func:`job_events`). From log files alone, through their index: the job's lines (a byte
    search), with ``related`` the events of its trace (any time) and of its life up to
    ``after_ms`` after it (a time range), and for "usual" the jobs of its type among the
    :data:`REFERENCE_EVENTS` events up to its end; no other line is decoded."""
    if not settings.files or settings.use_redis:
        loaded = job_events(settings, job_id)
        return JobContext(loaded.events, None, None, loaded.notes)
    from emp_tui.analysis import job_type
    from emp_tui.history import ReadStats, event_ms, read_logs_back
    from emp_tui.logindex import read_indexed
    from emp_tui.sources import FileStats, SourceError, merge

    stats = FileStats()
    try:
        own = list(read_indexed(settings.files, parse_query(f"job:{quote(job_id)}"), stats))
        own = [event for event in own if event.job_id == job_id]
        if not own:
            notes(stats.notes())
            raise CliError(f"no events for job {job_id!r}", EXIT_NOTHING)
        times = [event_ms(event) for event in own]
        start, end = min(times), max(times)
        traces = {event.trace_id for event in own if event.trace_id} if related else set()
        by_trace = (
            list(read_indexed(settings.files, None, stats, literals=traces)) if traces else []
        )
        life: list[TelemetryEvent] = []
        if related:
            for page in read_logs_back(settings.files, start, end + after_ms):
                life.extend(page)
        sample: list[TelemetryEvent] = []
        read = ReadStats()
        for page in read_logs_back(settings.files, None, end, stats=read, limit=REFERENCE_EVENTS):
            sample.extend(page)
    except SourceError as exc:
        raise source_error(exc) from None
    kind = job_type(own)
    jobs: dict[str, list[TelemetryEvent]] = {}
    for event in sample:
        if event.job_id and event.job_id != job_id:
            jobs.setdefault(event.job_id, []).append(event)
    if kind is not None:
        jobs = {other: evs for other, evs in jobs.items() if job_type(evs) in (kind, None)}
    reference = [event for evs in jobs.values() for event in evs]
    of_type = f" of type {kind}" if kind is not None else ""
    usual_from = (
        f"usual steps from {len(jobs):,} jobs{of_type} among the {len(sample):,} events "
        f"up to its end{' (a sample of the logs)' if read.cut else ''}"
    )
    return JobContext(merge(own, by_trace, life), reference, usual_from, stats.notes())


def job_events(settings: Settings, job_id: str) -> Loaded:
    """Everything at hand (the other jobs too: they tell what "usual" is), once it is sure
    that ``job_id`` is among them."""
    if settings.files and not settings.use_redis:
        # Decoding every line of large logs takes a while: first make sure the job is there,
        # which the pre-filter answers quickly.
        own = load(settings, parse_query(f"job:{quote(job_id)}"))
        if not own.events:
            notes(own.notes)
            raise CliError(f"no events for job {job_id!r}", EXIT_NOTHING)
    loaded = load(settings, parse_query(""))
    if not any(event.job_id == job_id for event in loaded.events):
        notes(loaded.notes)
        raise CliError(f"no events for job {job_id!r}", EXIT_NOTHING)
    return loaded
