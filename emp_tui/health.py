"""Reading the health of the pipeline: the collectors' health hashes and the stream's state.

The health hashes are the one contract between the collector, which writes them, and
`emp-collector --health`, `emp-tui health` and the app, which read them. Each live collector
keeps a Redis hash ``emp:collector:<consumer>``, rewritten every few seconds and expiring 30 s
after the last write, so the hashes that exist are the live collectors. Every field is a
string.

:func:`read_stream_state` is what `emp-tui health` shows of the stream itself: its length and
ends, recent rates per service (over the last 5 minutes, or over what the stream holds when
it holds less), consumer groups and their lag, memory; :func:`read_logs_state` what
`emp-tui health --file` shows of the collector's logs. No I/O here beyond the reads below.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from emp_tui.events import CIRCUIT_EVENT_TYPE, DROPPED_EVENT_TYPE
from emp_tui.stream_ids import order_key, parse_id, stream_id_ms
from emp_tui.topology import AsyncClient, SyncClient, shard_keys, trim_policy_key

if TYPE_CHECKING:
    import redis

    from emp_tui.events import TelemetryEvent

KEY_PREFIX: Final = "emp:collector:"
PATTERN: Final = KEY_PREFIX + "*"


def number_field(fields: Mapping[str, str], name: str) -> int | None:
    """A field of a health hash that holds a whole number, or None (absent, empty, or not
    one: ASCII digits only, since ``"²".isdigit()`` holds and ``int("²")`` raises)."""
    value = fields.get(name, "")
    return int(value) if value.isascii() and value.isdigit() else None


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _sorted(found: list[dict[str, str]]) -> list[dict[str, str]]:
    found.sort(key=lambda h: h.get("consumer", ""))
    return found


async def read_collectors(client: AsyncClient) -> list[dict[str, str]]:
    """Every live collector's health hash, sorted by consumer name."""
    found: list[dict[str, str]] = []
    async for key in client.scan_iter(match=PATTERN, count=100, _type="hash"):
        raw: dict[Any, Any] = await client.hgetall(key)
        if raw:
            found.append({_text(k): _text(v) for k, v in raw.items()})
    return _sorted(found)


def read_collectors_sync(client: SyncClient) -> list[dict[str, str]]:
    """:func:`read_collectors` for synchronous callers (the CLI)."""
    found: list[dict[str, str]] = []
    for key in client.scan_iter(match=PATTERN, count=100, _type="hash"):
        raw: dict[Any, Any] = client.hgetall(key)
        if raw:
            found.append({_text(k): _text(v) for k, v in raw.items()})
    return _sorted(found)


# -- the stream's own state (`emp-tui health`) ------------------------------------------------

RECENT_MS: Final = 5 * 60_000
"""How far back the per-service rates look."""


@dataclass
class GroupState:
    """A consumer group of the stream, as XINFO GROUPS tells it."""

    name: str
    consumers: int
    pending: int
    lag: int | None
    """Entries not yet delivered to the group (counted by hand before Redis 7)."""
    last_delivered_id: str
    entries_read: int | None = None
    """Entries the group has been given since it was created (Redis 7; None before)."""


@dataclass(frozen=True)
class TrimPolicy:
    """How the emitters trim the stream, as the last one to write it recorded it (the hash
    :func:`emp_tui.topology.trim_policy_key`): ``MAXLEN ~`` and/or ``MINID ~`` by age."""

    maxlen: int | None
    retention_ms: int | None
    shards: int
    service: str
    updated_ms: int | None

    def describe(self) -> str:
        """``MINID ~ now-86400000ms, MAXLEN ~ 10000``: the trims in force."""
        parts = []
        if self.retention_ms:
            parts.append(f"MINID ~ now-{self.retention_ms}ms")
        if self.maxlen:
            parts.append(f"MAXLEN ~ {self.maxlen}")
        return ", ".join(parts) or "none"

    def to_dict(self) -> dict[str, Any]:
        return {
            "maxlen": self.maxlen,
            "retentionMs": self.retention_ms,
            "shards": self.shards,
            "service": self.service,
            "updatedMs": self.updated_ms,
        }


def read_trim_policy(client: SyncClient, stream: str) -> TrimPolicy | None:
    """The trim policy emitters recorded for ``stream``; None when none did (emitters older
    than this one, or none that wrote in the last hour). Raises redis errors."""
    raw: dict[Any, Any] = client.hgetall(trim_policy_key(stream))
    if not raw:
        return None
    fields = {_text(k): _text(v) for k, v in raw.items()}

    def number(name: str) -> int | None:
        value = number_field(fields, name)
        return value if value else None

    return TrimPolicy(
        maxlen=number("maxlen"),
        retention_ms=number("retention_ms"),
        shards=number("shards") or 1,
        service=fields.get("service", "?"),
        updated_ms=number("updated_ms"),
    )


NOT_AVAILABLE: Final = "not available on this server"
"""Said of what a server does not offer (Redis before 7, a managed Redis that refuses a
command), instead of failing."""


@dataclass
class ShardState:
    """One key of a sharded stream (``emp:events:{n}``): what it holds and who reads it."""

    key: str
    length: int
    first_id: str | None
    last_id: str | None
    recent: int
    """Its events in the last :data:`RECENT_MS` (or since its oldest)."""
    groups: list[GroupState]
    entries_added: int | None = None
    """Entries ever added (Redis 7: XINFO STREAM ``entries-added``), None where not said."""
    memory_bytes: int | None = None

    def events_per_minute(self, window_ms: int) -> float:
        """Its rate over ``window_ms`` (the stream's: the shards' rates add up to its)."""
        return self.recent / (window_ms / 60_000)

    @property
    def lag(self) -> int | None:
        """Entries its groups have yet to be given (summed over groups; None: unknown)."""
        lags = [group.lag for group in self.groups]
        return None if not lags or None in lags else sum(lag or 0 for lag in lags)


@dataclass
class StreamState:
    """What the stream holds and who reads it, at ``now_ms``: over every shard of a sharded
    stream (lengths, rates and lags summed), each shard's in ``shards``."""

    stream: str
    now_ms: int
    length: int
    first_id: str | None
    last_id: str | None
    recent_by_service: dict[str, int]
    """Events per service in the last :data:`RECENT_MS`."""
    groups: list[GroupState]
    memory_bytes: int | None
    collectors: list[dict[str, str]]
    trim: TrimPolicy | None = None
    """How the emitters trim it, when they recorded it."""
    shards: list[ShardState] = field(default_factory=list)
    entries_added: int | None = None
    """Every entry ever added to it (XINFO STREAM ``entries-added``, Redis 7; None before)."""
    unavailable: dict[str, str] = field(default_factory=dict)
    """What this server does not offer, each with what it means here (see NOT_AVAILABLE)."""

    @property
    def trimmed(self) -> int | None:
        """Entries trimmed (or deleted) from it so far: those added that it no longer holds
        (None when the server does not count what was added)."""
        if self.entries_added is None:
            return None
        return max(0, self.entries_added - self.length)

    def maxlen(self, default: int) -> int | None:
        """The MAXLEN in force: the one the emitters recorded (None: they trim by age only),
        else ``default``."""
        return self.trim.maxlen if self.trim is not None else default

    def behind_oldest(self, group: GroupState) -> bool:
        """Whether ``group`` last read an entry older than the stream's oldest: what came
        between was trimmed before it read it (a group created at 0-0 has not started)."""
        first, delivered = parse_id(self.first_id), parse_id(group.last_delivered_id)
        if first is None or delivered is None or delivered == (0, 0):
            return False
        return delivered < first

    @property
    def first_ms(self) -> int | None:
        return stream_id_ms(self.first_id)

    @property
    def last_ms(self) -> int | None:
        return stream_id_ms(self.last_id)

    @property
    def span_ms(self) -> int | None:
        first, last = self.first_ms, self.last_ms
        return None if first is None or last is None else last - first

    @property
    def rate_window_ms(self) -> int:
        """What the rates are measured over: the last :data:`RECENT_MS`, or less when the
        stream holds less (MAXLEN trimmed it): from its oldest entry to now."""
        return rate_window(self.now_ms, self.first_ms)

    @property
    def events_per_minute(self) -> float:
        return sum(self.recent_by_service.values()) / (self.rate_window_ms / 60_000)

    def per_minute_by_service(self) -> dict[str, float]:
        minutes = self.rate_window_ms / 60_000
        return {service: count / minutes for service, count in self.recent_by_service.items()}

    def covers_ms(self, maxlen: int) -> float | None:
        """How much time ``maxlen`` entries hold at the recent rate (None: no recent events);
        of a sharded stream, each shard trimmed to ``maxlen``, the time its busiest shard
        holds (from then on, events go)."""
        if self.shards:
            rate = max(shard.events_per_minute(self.rate_window_ms) for shard in self.shards)
        else:
            rate = self.events_per_minute
        return maxlen / rate * 60_000 if rate else None


def rate_window(now_ms: int, first_ms: int | None) -> int:
    """The last :data:`RECENT_MS` before ``now_ms``, cut to start at ``first_ms`` (what a
    source holds from): rates over a 24-second stream are per 24 seconds, not per 5 minutes."""
    start = now_ms - RECENT_MS if first_ms is None else max(now_ms - RECENT_MS, first_ms)
    return max(1, now_ms - start)


def _refused(exc: redis.ResponseError) -> bool:
    """A command this server does not have or does not allow (not a wrong key)."""
    text = str(exc).lower()
    return any(word in text for word in ("unknown", "noperm", "not allowed", "disabled"))


def read_stream_state(
    client: SyncClient, stream: str, now_ms: int, shards: int = 1
) -> StreamState | None:
    """The stream's length, ends, recent rates per service, consumer groups (with their lag),
    memory, live collectors and the trim policy in force, over its ``shards`` (each read on
    its own, each one's state in ``shards``); None when the stream does not exist. What the
    server does not offer (Redis 6.2: ``entries-added``, a group's ``lag``; a managed Redis
    refusing XINFO, MEMORY USAGE or SCAN) is left out and named in ``unavailable``. Raises
    redis errors."""
    import redis  # here: an offline app never imports redis

    unavailable: dict[str, str] = {}
    by_service: dict[str, int] = {}
    parts = [
        part
        for key in shard_keys(stream, shards)
        if (part := _read_shard(client, key, now_ms, by_service, unavailable)) is not None
    ]
    if not parts:
        return None
    try:
        collectors = read_collectors_sync(client)
    except redis.ResponseError as exc:
        if not _refused(exc):
            raise
        collectors = []
        unavailable["collectors"] = f"{NOT_AVAILABLE}: SCAN refused ({exc})"
    try:
        trim = read_trim_policy(client, stream)
    except redis.ResponseError as exc:
        if not _refused(exc):
            raise
        trim = None
        unavailable["trim policy"] = f"{NOT_AVAILABLE} ({exc})"
    firsts = [part.first_id for part in parts if part.first_id is not None]
    lasts = [part.last_id for part in parts if part.last_id is not None]
    memories = [part.memory_bytes for part in parts]
    added = [part.entries_added for part in parts]
    return StreamState(
        stream=stream,
        now_ms=now_ms,
        length=sum(part.length for part in parts),
        first_id=min(firsts, key=lambda i: order_key(i, 0)) if firsts else None,
        last_id=max(lasts, key=lambda i: order_key(i, 0)) if lasts else None,
        recent_by_service=by_service,
        groups=_combined_groups(parts),
        memory_bytes=None if None in memories else sum(m or 0 for m in memories),
        collectors=collectors,
        trim=trim,
        shards=parts if shards > 1 else [],
        entries_added=None if None in added else sum(a or 0 for a in added),
        unavailable=unavailable,
    )


def _combined_groups(parts: list[ShardState]) -> list[GroupState]:
    """Each group over the shards: consumers the most of any shard, pending and lag summed
    (lag unknown when one shard's is), the oldest last-delivered ID."""
    if len(parts) == 1:
        return parts[0].groups
    by_name: dict[str, list[GroupState]] = {}
    for part in parts:
        for group in part.groups:
            by_name.setdefault(group.name, []).append(group)
    out = []
    for name, groups in by_name.items():
        lags = [g.lag for g in groups]
        out.append(
            GroupState(
                name=name,
                consumers=max(g.consumers for g in groups),
                pending=sum(g.pending for g in groups),
                lag=None if None in lags or len(groups) < len(parts) else sum(lags),  # type: ignore[arg-type]
                last_delivered_id=min(
                    (g.last_delivered_id for g in groups), key=lambda i: order_key(i, 0)
                ),
            )
        )
    return out


def _read_shard(
    client: SyncClient,
    key: str,
    now_ms: int,
    by_service: dict[str, int],
    unavailable: dict[str, str],
) -> ShardState | None:
    """One key's state (None when it does not exist); its recent events counted into
    ``by_service``; what the server does not offer named in ``unavailable``."""
    import redis

    from emp_tui.events import decode

    if not client.exists(key):
        return None
    info: Any
    try:
        info = client.xinfo_stream(key)
    except redis.ResponseError as exc:
        if not _refused(exc):
            raise
        unavailable["XINFO STREAM"] = f"{NOT_AVAILABLE} ({exc}): ends read with XRANGE"
        first: Any = client.xrange(key, count=1)
        last: Any = client.xrevrange(key, count=1)
        info = {
            "length": client.xlen(key),
            "first-entry": first[0] if first else None,
            "last-entry": last[0] if last else None,
        }
    first_entry, last_entry = info.get("first-entry"), info.get("last-entry")
    added = info.get("entries-added")
    if added is None:
        unavailable["entries-added"] = (
            f"{NOT_AVAILABLE} (Redis before 7): how many entries were trimmed is unknown"
        )
    recent: Any = client.xrange(key, f"{max(now_ms - RECENT_MS, 0)}-0", "+")
    for entry_id, fields in recent:
        service = decode(entry_id, fields or {}).service
        by_service[service] = by_service.get(service, 0) + 1
    groups: list[GroupState] = []
    raw_groups: Any
    try:
        raw_groups = client.xinfo_groups(key)
    except redis.ResponseError as exc:
        if not _refused(exc):
            raise
        unavailable["XINFO GROUPS"] = f"{NOT_AVAILABLE} ({exc}): consumer groups unknown"
        raw_groups = []
    for group in raw_groups:
        last_delivered = _text(group.get("last-delivered-id"))
        lag = group.get("lag")
        if "lag" not in group:
            # Redis before 7 does not say: count what the group has not been given yet.
            unavailable.setdefault(
                "group lag", f"{NOT_AVAILABLE} (Redis before 7): counted here entry by entry"
            )
            undelivered: Any = client.xrange(key, "(" + last_delivered, "+")
            lag = len(undelivered)
        groups.append(
            GroupState(
                name=_text(group.get("name")),
                consumers=int(group.get("consumers") or 0),
                pending=int(group.get("pending") or 0),
                lag=None if lag is None else int(lag),
                last_delivered_id=last_delivered,
                entries_read=None
                if group.get("entries-read") is None
                else int(group["entries-read"]),
            )
        )
    added = info.get("entries-added")
    try:
        memory = client.memory_usage(key, samples=0)
    except redis.ResponseError as exc:  # MEMORY USAGE refused (a managed Redis may not allow it)
        unavailable["MEMORY USAGE"] = f"{NOT_AVAILABLE} ({exc})"
        memory = None
    return ShardState(
        key=key,
        length=int(info.get("length", 0)),
        first_id=_text(first_entry[0]) if first_entry else None,
        last_id=_text(last_entry[0]) if last_entry else None,
        recent=len(recent),
        groups=groups,
        entries_added=None if added is None else int(added),
        memory_bytes=None if memory is None else int(memory),
    )


# -- the collector's log files (`emp-tui health --file`) ------------------------------------------


@dataclass
class LogFile:
    """One log file: its size and lines (counted as bytes, none decoded)."""

    path: str
    size: int
    lines: int


@dataclass
class LogsState:
    """What the collector's log files hold. "Now" is their newest event (the one rule for a
    recording), so the recent rates are those of the logs' last minutes, however old."""

    files: list[LogFile]
    unreadable: list[str]
    first_ms: int | None
    last_ms: int | None
    now_ms: int | None
    recent_by_service: dict[str, int]
    """Events per service in the last :data:`RECENT_MS` the logs hold."""
    corrupt: int
    """Corrupt lines among those looked at (the recent ones)."""

    @property
    def lines(self) -> int:
        return sum(f.lines for f in self.files)

    @property
    def span_ms(self) -> int | None:
        first, last = self.first_ms, self.last_ms
        return None if first is None or last is None else last - first

    @property
    def rate_window_ms(self) -> int:
        return RECENT_MS if self.last_ms is None else rate_window(self.last_ms, self.first_ms)

    @property
    def events_per_minute(self) -> float:
        return sum(self.recent_by_service.values()) / (self.rate_window_ms / 60_000)

    def per_minute_by_service(self) -> dict[str, float]:
        minutes = self.rate_window_ms / 60_000
        return {service: count / minutes for service, count in self.recent_by_service.items()}


def read_logs_state(paths: list[Path]) -> LogsState:
    """The files' sizes and lines, their span, and the rates of their last minutes (only those
    lines are decoded). An unreadable file is listed, not fatal. Raises SourceError for a path
    that does not exist."""
    from emp_tui.history import ReadStats, count_lines, logs_span, read_logs_back
    from emp_tui.sources import SourceError, expand_paths

    span = logs_span(paths)
    files: list[LogFile] = []
    unreadable = list(span.unreadable)
    for path in expand_paths(paths):
        try:
            files.append(LogFile(str(path), path.stat().st_size, count_lines(path)))
        except (SourceError, OSError) as exc:
            if not any(str(path) in reason for reason in unreadable):
                unreadable.append(str(exc))
    by_service: dict[str, int] = {}
    stats = ReadStats()
    if span.last_ms is not None:
        for page in read_logs_back(paths, span.last_ms - RECENT_MS, stats=stats):
            for event in page:
                by_service[event.service] = by_service.get(event.service, 0) + 1
    return LogsState(
        files=files,
        unreadable=unreadable,
        first_ms=span.first_ms,
        last_ms=span.last_ms,
        now_ms=span.newest_ms if span.newest_ms is not None else span.last_ms,
        recent_by_service=by_service,
        corrupt=stats.files.corrupt,
    )


# -- figures of the events at hand (the app's health pane) -----------------------------------

SPARK_BUCKETS: Final = 30
"""How many buckets an events/minute sparkline has over the loaded range."""


@dataclass(frozen=True)
class ServiceRate:
    """One service's events over a range, counted in equal buckets (oldest first)."""

    service: str
    counts: list[int]
    total: int
    per_minute: float
    """Over the whole range."""
    peak_per_minute: float
    """In its busiest bucket."""


def rates_by_service(
    events: Iterable[TelemetryEvent], start_ms: int, end_ms: int, buckets: int = SPARK_BUCKETS
) -> tuple[int, list[ServiceRate]]:
    """Each service's events between ``start_ms`` and ``end_ms`` in ``buckets`` buckets of
    equal length (whole seconds, or whole minutes past half an hour), busiest service first;
    and the bucket length."""
    span = max(1, end_ms - start_ms)
    raw = -(-span // buckets)
    unit = 60_000 if raw >= 60_000 else 1000  # whole minutes, else whole seconds
    bucket_ms = max(1, -(-raw // unit)) * unit
    count = max(1, -(-span // bucket_ms))
    counts: dict[str, list[int]] = {}
    for event in events:
        at = event.timestamp
        if at < start_ms or at > end_ms:
            continue
        row = counts.get(event.service)
        if row is None:
            row = counts[event.service] = [0] * count
        row[min(count - 1, (at - start_ms) // bucket_ms)] += 1
    minutes = max(span, bucket_ms) / 60_000
    rates = [
        ServiceRate(
            service=service,
            counts=row,
            total=sum(row),
            per_minute=sum(row) / minutes,
            peak_per_minute=max(row) * 60_000 / bucket_ms,
        )
        for service, row in counts.items()
    ]
    rates.sort(key=lambda rate: (-rate.total, rate.service))
    return bucket_ms, rates


@dataclass
class EmitterFigures:
    """What one service's emitters said about themselves in the events at hand: their drop
    reports and their circuit's changes."""

    service: str
    dropped: int = 0
    drop_reports: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    circuit: str | None = None
    """The circuit's state in its last change (None: no change seen)."""
    circuit_at_ms: int | None = None
    circuit_reason: str | None = None
    circuit_changes: int = 0
    opened: int = 0
    spilled: int | None = None
    """Events in the spill files at its last change, when it said."""


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def emitter_figures(events: Iterable[TelemetryEvent]) -> list[EmitterFigures]:
    """Each service's drop reports (``telemetry.events_dropped``: counts and reasons added
    up) and circuit changes (``telemetry.circuit_changed``: the last state, how often it
    opened), in the events given (oldest first), by service name."""
    found: dict[str, EmitterFigures] = {}
    for event in events:
        kind = event.event_type
        if kind != DROPPED_EVENT_TYPE and kind != CIRCUIT_EVENT_TYPE:
            continue
        figures = found.get(event.service)
        if figures is None:
            figures = found[event.service] = EmitterFigures(event.service)
        data: Mapping[str, Any] = event.data if isinstance(event.data, Mapping) else {}
        if kind == DROPPED_EVENT_TYPE:
            figures.drop_reports += 1
            figures.dropped += _count(data.get("count"))
            reasons = data.get("reasons")
            if isinstance(reasons, Mapping):
                for reason, number in reasons.items():
                    name = str(reason)
                    figures.reasons[name] = figures.reasons.get(name, 0) + _count(number)
            continue
        state = data.get("state")
        figures.circuit_changes += 1
        figures.circuit = str(state) if state is not None else "?"
        figures.opened += figures.circuit == "open"
        figures.circuit_at_ms = event.timestamp
        reason = data.get("reason")
        figures.circuit_reason = None if reason is None else str(reason)
        spilled = data.get("spilled")
        figures.spilled = spilled if isinstance(spilled, int) else None
    return sorted(found.values(), key=lambda figures: figures.service)


def collector_rate(
    current: Mapping[str, str], previous: Mapping[str, str] | None = None
) -> tuple[float | None, bool]:
    """Events a collector read per second: between two readings of its health hash when
    ``previous`` is one of the same run, else on average since it started; and whether it is
    that average. None when its hash does not say."""
    read, updated = number_field(current, "read"), number_field(current, "updated_ms")
    if read is None or updated is None:
        return None, False
    if previous is not None and previous.get("started_ms") == current.get("started_ms"):
        was, then = number_field(previous, "read"), number_field(previous, "updated_ms")
        if was is not None and then is not None and updated > then and read >= was:
            return (read - was) * 1000 / (updated - then), False
    started = number_field(current, "started_ms")
    if started is None or updated <= started:
        return None, True
    return read * 1000 / (updated - started), True


def entries_rate(
    then_ms: int, then_read: int | None, now_ms: int, now_read: int | None
) -> float | None:
    """Entries a second between two readings of a counter (a consumer group's entries-read);
    None when either is unknown, no time passed, or the counter went back (a new group)."""
    if then_read is None or now_read is None or now_ms <= then_ms or now_read < then_read:
        return None
    return (now_read - then_read) * 1000 / (now_ms - then_ms)


def delivery_success(fields: Mapping[str, str]) -> float | None:
    """The share of a collector's OTLP deliveries the backend took: exported over exported
    and dead-lettered (spooled ones are still on their way). None before any ended."""
    exported = number_field(fields, "exported") or 0
    dead = number_field(fields, "dead_lettered") or 0
    return exported / (exported + dead) if exported + dead else None
