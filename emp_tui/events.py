"""The telemetry event and wire format v1: the contract with every emitter, in any language.

One Redis Stream entry is one event. Its fields are strings::

    timestamp  epoch milliseconds            (required)
    service    emitting service              (required)
    eventType  "{entity}.{action}"           (required)
    traceId    32 lowercase hex, W3C         (required; derived from jobId when not given)
    spanId     16 lowercase hex
    jobId workerId machineId userId          correlation IDs
    level      debug | info | warn | error   (default from the event type)
    data       a JSON object                 (default {})
    v          schema version, 1
    eventId    unique per event: a resent event carries the same one

Readers are tolerant: an entry that is missing fields or carries junk decodes to an event
whose ``malformed`` says what was wrong, and a value that cannot be read is kept in ``data``
as ``_<field>`` (``_timestamp``, ``_jobId``, ...; ``_raw`` for data that is not JSON). Nothing
is dropped and nothing raises, and writing a decoded event out as JSON never fails either.
:class:`SeenEvents` collapses copies of one event (a resend, a redelivery). No I/O here.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from sys import intern
from typing import Any, Final

import orjson

from emp_tui.stream_ids import stream_id_ms as stream_id_ms  # where it was first defined

SCHEMA_VERSION: Final = 1
DEFAULT_STREAM: Final = "emp:events"
DEFAULT_MAXLEN: Final = 10_000
DROPPED_EVENT_TYPE: Final = "telemetry.events_dropped"
"""An emitter's report of the events it dropped (``data``: count, maxBuffer, reasons)."""
CIRCUIT_EVENT_TYPE: Final = "telemetry.circuit_changed"
"""An emitter's circuit changed (``data``: state, previous, reason, spill, spilled, ...)."""

MAX_TIMESTAMP_MS: Final = 253_402_214_399_999
"""The last epoch millisecond of 9999-12-30 (UTC): later timestamps (and negative ones) are
flagged, so that every reader can turn a timestamp into a date in any time zone."""
MAX_DEPTH: Final = 100
"""How deeply ``data`` may nest (``{}`` is 1). Deeper values are kept as JSON text, so that
no reader recurses without bound and every event can be written as JSON again."""

LEVELS: Final = ("debug", "info", "warn", "error")
LEVEL_RANK: Final[dict[str, int]] = {name: rank for rank, name in enumerate(LEVELS)}
_LEVEL_ALIASES: Final[dict[str, str]] = {
    "warning": "warn",
    "err": "error",
    "fatal": "error",
    "critical": "error",
    "trace": "debug",
}

# (wire field, attribute) for the correlation IDs, in wire order.
ID_FIELDS: Final = (
    ("jobId", "job_id"),
    ("workerId", "worker_id"),
    ("machineId", "machine_id"),
    ("userId", "user_id"),
)
_KNOWN_FIELDS: Final = frozenset(
    {"timestamp", "service", "eventType", "traceId", "spanId", "level", "data", "v", "eventId"}
    | {"id"}
    | {wire for wire, _ in ID_FIELDS}
)
_HEX: Final = frozenset("0123456789abcdef")
_MAX_ID_LEN: Final = 41  # <ms>-<seq>, two 64-bit numbers


def default_level(event_type: str) -> str:
    """The level an event gets when its emitter names none: failures are errors."""
    if event_type.endswith(("failed", ".error")):
        return "error"
    return "info"


def normalize_level(level: str) -> str | None:
    """``level`` as one of LEVELS, or None when it is not a level at all."""
    lowered = level.strip().lower()
    lowered = _LEVEL_ALIASES.get(lowered, lowered)
    return lowered if lowered in LEVEL_RANK else None


def trace_id_for_job(job_id: str) -> str:
    """The trace ID every service derives from a job ID, so one job's events share a trace.

    It is the MD5 digest of the job ID's UTF-8 bytes as 32 lowercase hex digits: any
    language can compute it (Node: ``createHash('md5').update(jobId).digest('hex')``).
    """
    return hashlib.md5(job_id.encode(), usedforsecurity=False).hexdigest()


def new_trace_id() -> str:
    return os.urandom(16).hex()


def new_span_id() -> str:
    return os.urandom(8).hex()


def is_hex_id(value: str, length: int) -> bool:
    return len(value) == length and _HEX.issuperset(value) and value != "0" * length


@dataclass(frozen=True, slots=True)
class TelemetryEvent:
    """One event. ``id`` is the stream entry ID when the event was read from a stream;
    ``event_id`` the emitter's own ID for it (None from emitters that send none);
    ``malformed`` says what was wrong with the entry it was decoded from (None when nothing).
    ``data`` belongs to the event: treat it as read-only."""

    timestamp: int
    service: str
    event_type: str
    trace_id: str
    span_id: str | None = None
    job_id: str | None = None
    worker_id: str | None = None
    machine_id: str | None = None
    user_id: str | None = None
    level: str = "info"
    data: Mapping[str, Any] = field(default_factory=dict)
    v: int = SCHEMA_VERSION
    event_id: str | None = None
    id: str | None = None
    malformed: str | None = None
    _search_text: str | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def create(
        cls,
        service: str,
        event_type: str,
        data: Mapping[str, Any] | None = None,
        *,
        timestamp: int | None = None,
        job_id: str | None = None,
        worker_id: str | None = None,
        machine_id: str | None = None,
        user_id: str | None = None,
        trace_id: str | None = None,
        span_id: str | None = None,
        level: str | None = None,
        event_id: str | None = None,
    ) -> TelemetryEvent:
        """A new event with the defaults of wire format v1 filled in."""
        if timestamp is None:
            timestamp = time.time_ns() // 1_000_000
        if trace_id is None:
            trace_id = trace_id_for_job(job_id) if job_id else new_trace_id()
        return cls(
            timestamp=timestamp,
            service=service,
            event_type=event_type,
            trace_id=trace_id,
            span_id=span_id,
            job_id=job_id,
            worker_id=worker_id,
            machine_id=machine_id,
            user_id=user_id,
            level=(normalize_level(level) or level) if level else default_level(event_type),
            data=dict(data) if data else {},
            event_id=event_id,
        )

    # -- wire format -------------------------------------------------------------------

    def encode(self) -> dict[str, str]:
        """The XADD fields of this event."""
        flat = flat_fields(
            self.timestamp,
            self.service,
            self.event_type,
            self.trace_id,
            self.span_id,
            self.job_id,
            self.worker_id,
            self.machine_id,
            self.user_id,
            self.level,
            data_json(self.data),
            self.event_id,
        )
        return dict(zip(flat[::2], flat[1::2], strict=True))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: wire field names, native types, the stream ``id`` when known."""
        out: dict[str, Any] = {}
        if self.id is not None:
            out["id"] = self.id
        out["timestamp"] = self.timestamp
        out["service"] = self.service
        out["eventType"] = self.event_type
        out["traceId"] = self.trace_id
        if self.span_id is not None:
            out["spanId"] = self.span_id
        for wire, attr in ID_FIELDS:
            value = getattr(self, attr)
            if value is not None:
                out[wire] = value
        out["level"] = self.level
        out["data"] = self.data
        out["v"] = self.v
        if self.event_id is not None:
            out["eventId"] = self.event_id
        if self.malformed is not None:
            out["malformed"] = self.malformed
        return out

    def to_json_line(self) -> bytes:
        """One line of a JSON-lines file, newline included. Never raises (see
        :func:`json_bytes`)."""
        out = self.to_dict()
        try:
            return orjson.dumps(out, option=orjson.OPT_APPEND_NEWLINE, default=str)
        except orjson.JSONEncodeError:
            return json_bytes(out, newline=True)

    @classmethod
    def from_json_line(cls, line: bytes | str) -> TelemetryEvent:
        """Read a line written by :meth:`to_json_line` (or any JSON object with wire fields).

        Never raises: a line that is not a JSON object becomes a malformed event."""
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            text = line.decode("utf-8", "backslashreplace") if isinstance(line, bytes) else line
            return _unreadable(None, text.rstrip("\n"), f"line is not JSON: {exc}")
        if not isinstance(obj, dict):
            return _unreadable(None, obj, "line is not a JSON object")
        return cls.from_dict(obj)

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> TelemetryEvent:
        """:meth:`from_json_line` of a line already parsed. Never raises."""
        try:
            fast = _from_well_formed_dict(obj) if type(obj) is dict else None
            if fast is not None:
                return fast
            return decode_object_general(obj)
        except Exception as exc:  # noqa: BLE001 - a bug must cost one event, never a reader
            return _undecodable(None, obj, exc)

    def search_text(self) -> str:
        """What free-text search looks in: :func:`searchable_texts` casefolded and joined
        with NUL (which no query can contain). Computed on first use, then kept."""
        text = self._search_text
        if text is None:
            text = "\0".join(searchable_texts(self)).casefold()
            object.__setattr__(self, "_search_text", text)
        return text


def flat_fields(
    timestamp: int,
    service: str,
    event_type: str,
    trace_id: str,
    span_id: str | None,
    job_id: str | None,
    worker_id: str | None,
    machine_id: str | None,
    user_id: str | None,
    level: str,
    data_json: str,
    event_id: str | None = None,
) -> list[str]:
    """The XADD field/value list from already-validated parts (the emitter's hot path):
    ``[name, value, name, value, ...]`` in wire order."""
    out = [
        "timestamp",
        str(timestamp),
        "service",
        service,
        "eventType",
        event_type,
        "traceId",
        trace_id,
    ]
    if span_id is not None:
        out += ("spanId", span_id)
    if job_id is not None:
        out += ("jobId", job_id)
    if worker_id is not None:
        out += ("workerId", worker_id)
    if machine_id is not None:
        out += ("machineId", machine_id)
    if user_id is not None:
        out += ("userId", user_id)
    out += ("level", level, "data", data_json, "v", "1")
    if event_id is not None:
        out += ("eventId", event_id)
    return out


# -- writing JSON that never fails -------------------------------------------------------

_INT_MIN: Final = -(2**63)
_UINT_MAX: Final = 2**64 - 1
_END: Final = object()


def json_bytes(value: Any, *, newline: bool = False, option: int = 0) -> bytes:
    """``value`` as JSON (orjson with ``option``, non-JSON objects as their ``str``). Never
    raises: what orjson cannot write (integers beyond 64 bits, nesting deeper than it allows, a
    container inside itself, strings with lone surrogates, non-string keys) is written as a
    string instead."""
    if newline:
        option |= orjson.OPT_APPEND_NEWLINE
    try:
        return orjson.dumps(value, default=str, option=option)
    except orjson.JSONEncodeError:
        return orjson.dumps(_json_safe(value, 0), option=option)


def data_json(data: Any) -> str:
    """The wire form of ``data``: :func:`json_bytes` as text, non-string keys allowed."""
    try:
        return orjson.dumps(data, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except orjson.JSONEncodeError:
        return orjson.dumps(_json_safe(data, 0)).decode()


def json_text(value: Any) -> str:
    """``value`` as JSON text at any depth, without recursion (what :func:`json_bytes` writes
    for a value nested deeper than :data:`MAX_DEPTH`). A container met again inside itself
    is written as ``"<cycle>"``; leaves and keys as :func:`json_bytes` would."""
    parts: list[str] = []
    # One frame per open container: its (key, value) pairs, its closing bracket, its id and
    # whether an item was written in it yet.
    frames: list[tuple[Iterator[tuple[Any, Any]], str, int, list[bool]]] = []
    open_ids: set[int] = set()
    item: Any = value
    has_item = True
    while True:
        if has_item:
            has_item = False
            if isinstance(item, Mapping):
                pairs: Iterator[tuple[Any, Any]] = iter(item.items())
                opener, closer = "{", "}"
            elif isinstance(item, list | tuple):
                pairs = ((None, child) for child in item)
                opener, closer = "[", "]"
            else:
                parts.append(orjson.dumps(_safe_scalar(item)).decode())
                pairs = iter(())
                opener = ""
            if opener and id(item) in open_ids:
                parts.append('"<cycle>"')
            elif opener:
                parts.append(opener)
                open_ids.add(id(item))
                frames.append((pairs, closer, id(item), [True]))
        if not frames:
            return "".join(parts)
        pairs, closer, ident, first = frames[-1]
        pair: Any = next(pairs, _END)
        if pair is _END:
            parts.append(closer)
            open_ids.discard(ident)
            frames.pop()
            continue
        key, item = pair
        has_item = True
        separator = "" if first[0] else ","
        first[0] = False
        if closer == "}":
            parts.append(f"{separator}{orjson.dumps(_key_text(key)).decode()}:")
        elif separator:
            parts.append(separator)


def _json_safe(value: Any, depth: int) -> Any:
    """A copy of ``value`` that orjson can write (see :func:`json_bytes`)."""
    if isinstance(value, Mapping | list | tuple):
        if depth >= MAX_DEPTH:
            return json_text(value)
        if isinstance(value, Mapping):
            return {_key_text(k): _json_safe(v, depth + 1) for k, v in value.items()}
        return [_json_safe(v, depth + 1) for v in value]
    return _safe_scalar(value)


def _safe_scalar(value: Any) -> Any:
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, int):
        return value if _INT_MIN <= value <= _UINT_MAX else _int_text(value)
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:  # lone surrogates: written as their escapes
            return value.encode("utf-8", "backslashreplace").decode()
        return value
    try:
        orjson.dumps(value)  # datetime, UUID, enum, ...: as orjson writes them
    except orjson.JSONEncodeError:
        return _object_text(value)
    return value


def _key_text(key: Any) -> str:
    if isinstance(key, str):
        text: str = _safe_scalar(key)
        return text
    if key is None or isinstance(key, bool):
        return orjson.dumps(key).decode()
    return _int_text(key) if isinstance(key, int) else _object_text(key)


def _int_text(value: int) -> str:
    try:
        return str(value)
    except ValueError:  # past Python's limit on digits
        return f"<integer of {value.bit_length()} bits>"


def _object_text(value: Any) -> str:
    try:
        text = str(value)
    except Exception as exc:  # noqa: BLE001 - the caller's __str__: name it and its failure
        return f"<{type(value).__name__}: str() raised {type(exc).__name__}>"
    return text.encode("utf-8", "backslashreplace").decode()


# -- collapsing copies of one event -------------------------------------------------------


class SeenEvents:
    """The events a reader has passed on lately, to collapse copies of one event: the same
    ``eventId`` (an emitter resent the event after a timeout that left it unsure whether
    Redis had taken it), or for an event without one the same stream ``id`` (one entry read
    from two sources, or written twice by a collector that redelivered it).

    Remembers the newest ``capacity`` keys (all of them with None): copies of one event lie
    close together in a stream, far closer than 100,000 events."""

    __slots__ = ("_keys", "_order", "capacity", "duplicates")

    def __init__(self, capacity: int | None = 100_000) -> None:
        self.capacity = capacity
        self.duplicates = 0
        self._keys: set[str] = set()
        self._order: deque[str] | None = deque() if capacity is not None else None

    def first_time(self, event: TelemetryEvent) -> bool:
        """True the first time ``event`` (or a copy of it) is seen; counts the copies."""
        key = event.event_id
        if key is None:
            if event.id is None:
                return True
            key = "\0" + event.id  # another namespace than the event IDs
        return self.first_key(key)

    def first_key(self, key: str) -> bool:
        """True the first time ``key`` (an event's ``eventId``) is seen; counts the copies.
        For a reader that has the raw field and no event (the collector's fast path)."""
        keys = self._keys
        if key in keys:
            self.duplicates += 1
            return False
        keys.add(key)
        order = self._order
        if order is not None:
            order.append(key)
            if len(order) > self.capacity:  # type: ignore[operator]
                keys.discard(order.popleft())
        return True

    def __len__(self) -> int:
        return len(self._keys)


def dedupe(
    events: Iterable[TelemetryEvent], seen: SeenEvents | None = None
) -> Iterator[TelemetryEvent]:
    """``events`` with the copies of an event already passed on left out (the first copy
    stays). Pass one ``seen`` to several calls to collapse copies across them."""
    first_time = (seen if seen is not None else SeenEvents()).first_time
    for event in events:
        if first_time(event):
            yield event


# -- text search ---------------------------------------------------------------------


def scalar_text(value: Any) -> str | None:
    """A scalar as free-text search sees it (None for lists and objects)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return None


def _collect_texts(container: Any, out: list[str]) -> None:
    """Append every scalar inside a data object or list to ``out``, as text."""
    values = container.values() if isinstance(container, Mapping) else container
    for value in values:
        kind = type(value)
        if kind is str:
            out.append(value)
        elif kind is int or kind is float:
            out.append(str(value))
        elif isinstance(value, Mapping | list | tuple):
            _collect_texts(value, out)
        else:
            text = scalar_text(value)
            if text is not None:
                out.append(text)


def searchable_texts(event: TelemetryEvent) -> list[str]:
    """What free text and /regex/ look at: type, service, IDs and every data value."""
    texts = [event.event_type, event.service]
    for value in (
        event.job_id,
        event.worker_id,
        event.machine_id,
        event.user_id,
        event.trace_id,
        event.span_id,
        event.id,
    ):
        if value:
            texts.append(value)
    if event.data:
        _collect_texts(event.data, texts)
    return texts


# -- decoding ------------------------------------------------------------------------------


def decode(entry_id: str | bytes | None, fields: Mapping[Any, Any]) -> TelemetryEvent:
    """Decode one stream entry (field names and values as bytes or str). Never raises."""
    fast = _decode_well_formed(entry_id, fields)
    if fast is not None:
        return fast
    try:
        return decode_general(entry_id, fields)
    except Exception as exc:  # noqa: BLE001 - a bug must cost one entry, never a reader
        return _undecodable(entry_id, fields, exc)


# The general paths, public so that the tests can hold the fast paths to them and check that a
# well-formed entry never needs them.


def decode_object_general(obj: Mapping[str, Any]) -> TelemetryEvent:
    """:meth:`TelemetryEvent.from_dict` without the fast path: reads any object, tolerantly."""
    return _from_mapping(obj.get("id"), obj, [], file_line=True)


def decode_general(entry_id: str | bytes | None, fields: Mapping[Any, Any]) -> TelemetryEvent:
    """:func:`decode` without the fast path: reads any entry, tolerantly."""
    problems: list[str] = []
    if isinstance(entry_id, bytes):
        entry_id = entry_id.decode("utf-8", "backslashreplace")
    strs: dict[str, Any] = {}
    for key, value in fields.items():
        if isinstance(key, bytes):
            key = _text(key, problems, "a field name")
        if isinstance(value, bytes):
            value = _text(value, problems, key if key in _KNOWN_FIELDS else f"field {_short(key)}")
        strs[str(key)] = value
    if "eventType" not in strs and "service" not in strs and len(strs) == 1:
        # A whole event sent as one JSON field (e.g. `XADD emp:events * event '{...}'`).
        ((_only_key, only_value),) = strs.items()
        inner = _json_object(only_value)
        if inner is not None:
            return _from_mapping(entry_id, inner, problems, whole=True)
    return _from_mapping(entry_id, strs, problems)


# -- fast paths --------------------------------------------------------------------------
# Nearly every entry is well formed. These read such an entry with a handful of checks and
# return None at the first sign of anything unusual, leaving it to the general (tolerant,
# slower) path; both give the same event for a well-formed entry (the tests check this).

_TRACE_RE: Final = re.compile(r"[0-9a-f]{32}")
_SPAN_RE: Final = re.compile(r"[0-9a-f]{16}")
_ZERO_TRACE: Final = "0" * 32
_ZERO_SPAN: Final = "0" * 16
_WIRE_KEYS_B: Final = frozenset(k.encode() for k in _KNOWN_FIELDS if k != "id")
_JSON_KEYS: Final = _KNOWN_FIELDS
_LEVEL_BYTES: Final = {name.encode(): name for name in LEVELS}
_MAX_TIMESTAMP_DIGITS: Final = len(str(MAX_TIMESTAMP_MS))
SHALLOW_LEN: Final = 2 * MAX_DEPTH  # JSON text this short cannot nest deeper than MAX_DEPTH


def nests_too_deep(data: dict[str, Any]) -> bool:
    """Whether ``data`` nests deeper than MAX_DEPTH: a glance at its values, a walk only
    through those that are containers."""
    for value in data.values():
        kind = type(value)
        if (kind is dict or kind is list) and _too_deep(value, MAX_DEPTH - 1):
            return True
    return False


def _ids_to_lift(
    data: dict[str, Any],
    job_id: str | None,
    worker_id: str | None,
    machine_id: str | None,
    user_id: str | None,
) -> bool:
    return (
        (job_id is None and "jobId" in data)
        or (worker_id is None and "workerId" in data)
        or (machine_id is None and "machineId" in data)
        or (user_id is None and "userId" in data)
    )


def _decode_well_formed(
    entry_id: str | bytes | None, fields: Mapping[Any, Any]
) -> TelemetryEvent | None:
    try:
        if not _WIRE_KEYS_B.issuperset(fields):
            return None  # str keys, unknown fields: the general path
        raw_ts = fields[b"timestamp"]
        if len(raw_ts) > _MAX_TIMESTAMP_DIGITS or not raw_ts.isdigit():  # bytes: ASCII only
            return None
        timestamp = int(raw_ts)
        if timestamp > MAX_TIMESTAMP_MS:
            return None
        service = fields[b"service"].decode()
        event_type = fields[b"eventType"].decode()
        trace_id = fields[b"traceId"].decode()
        if (
            not service
            or not event_type
            or _TRACE_RE.fullmatch(trace_id) is None
            or trace_id == _ZERO_TRACE
        ):
            return None
        get = fields.get
        raw_data = get(b"data")
        if raw_data:
            data = orjson.loads(raw_data)
            if type(data) is not dict or (len(raw_data) > SHALLOW_LEN and nests_too_deep(data)):
                return None
        else:
            data = {}
        raw = get(b"jobId")
        job_id = raw.decode() if raw else None
        raw = get(b"workerId")
        worker_id = raw.decode() if raw else None
        raw = get(b"machineId")
        machine_id = raw.decode() if raw else None
        raw = get(b"userId")
        user_id = raw.decode() if raw else None
        if data and _ids_to_lift(data, job_id, worker_id, machine_id, user_id):
            return None
        raw = get(b"spanId")
        span_id = raw.decode() if raw else None
        if span_id is not None and (_SPAN_RE.fullmatch(span_id) is None or span_id == _ZERO_SPAN):
            return None
        raw = get(b"level")
        if raw:
            level = _LEVEL_BYTES.get(raw)
            if level is None:
                return None
        else:
            level = default_level(event_type)
        raw = get(b"v")
        if raw and raw != b"1":
            return None
        raw = get(b"eventId")
        event_id = raw.decode() if raw else None
        if isinstance(entry_id, bytes):
            entry_id = entry_id.decode("ascii")
        if entry_id is not None and (len(entry_id) > _MAX_ID_LEN or not entry_id.isascii()):
            return None
        return TelemetryEvent(
            timestamp=timestamp,
            service=intern(service),
            event_type=intern(event_type),
            trace_id=trace_id,
            span_id=span_id,
            job_id=job_id,
            worker_id=None if worker_id is None else intern(worker_id),
            machine_id=None if machine_id is None else intern(machine_id),
            user_id=user_id,
            level=level,
            data=data,
            event_id=event_id,
            id=entry_id,
        )
    except (ValueError, KeyError, AttributeError, TypeError):
        return None  # invalid UTF-8, data that is not JSON, values that are not bytes, ...


def _from_well_formed_dict(obj: dict[str, Any]) -> TelemetryEvent | None:
    if not _JSON_KEYS.issuperset(obj):
        return None  # unknown fields, or a `malformed` flag to carry: the general path
    get = obj.get
    timestamp = get("timestamp")
    service = get("service")
    event_type = get("eventType")
    trace_id = get("traceId")
    if (
        type(timestamp) is not int
        or not 0 <= timestamp <= MAX_TIMESTAMP_MS
        or type(service) is not str
        or type(event_type) is not str
        or type(trace_id) is not str
        or not service
        or not event_type
        or _TRACE_RE.fullmatch(trace_id) is None
        or trace_id == _ZERO_TRACE
    ):
        return None
    data = get("data")
    if data is None:
        data = {}
    elif type(data) is not dict or nests_too_deep(data):
        return None
    job_id = get("jobId")
    worker_id = get("workerId")
    machine_id = get("machineId")
    user_id = get("userId")
    span_id = get("spanId")
    event_id = get("eventId")
    entry_id = get("id")
    for value in (job_id, worker_id, machine_id, user_id, span_id, event_id, entry_id):
        if value is not None and (type(value) is not str or not value):
            return None
    if entry_id is not None and (len(entry_id) > _MAX_ID_LEN or not entry_id.isascii()):
        return None
    if data and _ids_to_lift(data, job_id, worker_id, machine_id, user_id):
        return None
    if span_id is not None and (_SPAN_RE.fullmatch(span_id) is None or span_id == _ZERO_SPAN):
        return None
    level = get("level")
    if level is None or level == "":
        level = default_level(event_type)
    elif type(level) is not str or level not in LEVEL_RANK:
        return None
    v = get("v", SCHEMA_VERSION)
    if v != SCHEMA_VERSION or type(v) is not int:
        return None
    return TelemetryEvent(
        timestamp=timestamp,
        service=intern(service),
        event_type=intern(event_type),
        trace_id=trace_id,
        span_id=span_id,
        job_id=job_id,
        worker_id=None if worker_id is None else intern(worker_id),
        machine_id=None if machine_id is None else intern(machine_id),
        user_id=user_id,
        level=intern(level),
        data=data,
        event_id=event_id,
        id=entry_id,
    )


# -- the general path: every field parsed, or kept raw and flagged -------------------------


def _text(raw: bytes, problems: list[str], what: str) -> str:
    """UTF-8 text; invalid bytes are kept visible as ``\\xff`` escapes (and flagged)."""
    try:
        return raw.decode()
    except UnicodeDecodeError:
        problems.append(f"invalid UTF-8 in {what}")
        return raw.decode("utf-8", "backslashreplace")


def _json_object(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, str) or not value.lstrip().startswith("{"):
        return None
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def _short(value: Any) -> str:
    """``value`` for a problem's text: short, and whatever it is."""
    if isinstance(value, str):
        return repr(value[:40]) + ("..." if len(value) > 40 else "")
    if isinstance(value, int) and value.bit_length() > 128:
        return f"an integer of {value.bit_length()} bits"
    if value is None or isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return "a JSON object"
    if isinstance(value, list):
        return "a JSON array"
    return f"a {type(value).__name__}"


def _too_deep(value: Any, limit: int) -> bool:
    """Whether the containers in ``value`` nest more than ``limit`` deep (no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        for child in item.values() if isinstance(item, dict) else item:
            if isinstance(child, dict | list | tuple):
                stack.append((child, depth + 1))
    return False


def _bounded(data: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    """``data`` with every value that nests too deep replaced by its JSON text."""
    if not _too_deep(data, MAX_DEPTH):
        return data
    problems.append(f"data nests deeper than {MAX_DEPTH} levels (kept as JSON text)")
    return {
        key: json_text(value)
        if isinstance(value, dict | list | tuple) and _too_deep(value, MAX_DEPTH - 1)
        else value
        for key, value in data.items()
    }


def _valid_entry_id(entry_id: Any, problems: list[str], kept: dict[str, Any]) -> str | None:
    """The entry ID, when it can be one: text, ASCII, as long as a stream ID at most (so that
    every reader can take its numbers apart); else None, the value kept and flagged."""
    if entry_id is None or (
        isinstance(entry_id, str) and 0 < len(entry_id) <= _MAX_ID_LEN and entry_id.isascii()
    ):
        return entry_id
    problems.append(f"id {_short(entry_id)} is not a stream entry ID")
    kept["id"] = entry_id
    return None


def _fallback_ms(entry_id: str | None) -> int:
    """The time the stream gave an entry (its ID checked for ASCII and length first): still
    ordered, still findable."""
    ms = stream_id_ms(entry_id)
    return ms if ms is not None and ms <= MAX_TIMESTAMP_MS else 0


def _unreadable(entry_id: Any, raw: Any, why: str) -> TelemetryEvent:
    problems = [why]
    kept: dict[str, Any] = {}
    entry_id = _valid_entry_id(entry_id, problems, kept)
    # The raw value as it came, as JSON text when it nests too deep (no news beyond ``why``).
    data = _bounded({"_raw": raw, **{f"_{k}": v for k, v in kept.items()}}, [])
    return TelemetryEvent(
        timestamp=_fallback_ms(entry_id),
        service="unknown",
        event_type="unknown",
        trace_id="",
        level="info",
        data=data,
        id=entry_id,
        malformed="; ".join(problems),
    )


def _undecodable(entry_id: Any, fields: Mapping[Any, Any], exc: Exception) -> TelemetryEvent:
    """The last resort: an entry the decoder failed on, flagged with the failure, its fields
    kept as text."""
    if isinstance(entry_id, bytes):
        entry_id = entry_id.decode("utf-8", "backslashreplace")
    raw = {_raw_text(key): _raw_text(value) for key, value in fields.items()}
    detail = str(exc).strip().splitlines()
    why = f"could not be decoded: {type(exc).__name__}: {detail[0] if detail else ''}"
    return _unreadable(entry_id, raw, why.rstrip(": "))


def _raw_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list | tuple):
        return json_text(value)
    return orjson.dumps(_safe_scalar(value)).decode()


def _str_or_none(value: Any) -> str | None:
    """A scalar as an ID lifted out of ``data`` (None for anything else, which stays there)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    return None


def _field_text(
    m: Mapping[str, Any], wire: str, problems: list[str], kept: dict[str, Any]
) -> str | None:
    """A text field: a string as it is, a number as text, anything else kept and flagged."""
    value = m.get(wire)
    text = _str_or_none(value)
    if text is None and value is not None and value != "":
        problems.append(f"{wire} is not a string")
        kept[wire] = value
    return text


def _from_mapping(
    entry_id: Any,
    m: Mapping[str, Any],
    problems: list[str],
    *,
    file_line: bool = False,
    whole: bool = False,
) -> TelemetryEvent:
    """The general path. ``file_line``: ``m`` is a line of a file, whose ``malformed`` holds
    the reasons found when the entry was first decoded (elsewhere it is just another field)."""
    # Raw values of the fields that cannot be read, by wire name: they end up in data.
    kept: dict[str, Any] = {}
    previous = m.get("malformed") if file_line else None
    if previous is not None and not isinstance(previous, str):
        problems.append("malformed is not a string")
        kept["malformed"] = previous
        previous = None
    entry_id = _valid_entry_id(entry_id, problems, kept) if not whole else entry_id

    # data first: correlation IDs found only inside it are lifted to the top.
    raw_data = m.get("data")
    data: dict[str, Any]
    if raw_data is None or raw_data == "":
        data = {}
    elif isinstance(raw_data, dict):
        data = raw_data
    elif isinstance(raw_data, str):
        try:
            parsed = orjson.loads(raw_data)
        except orjson.JSONDecodeError:
            problems.append("data is not JSON")
            data = {"_raw": raw_data}
        else:
            if isinstance(parsed, dict):
                data = parsed
            else:
                problems.append("data is not a JSON object")
                data = {"_value": parsed}
    else:
        problems.append("data is not a JSON object")
        data = {"_value": raw_data}

    extra = [key for key in m if key not in _KNOWN_FIELDS and (key != "malformed" or not file_line)]
    if extra:
        # Unknown top-level fields are kept, inside data, so that nothing is hidden.
        data = dict(data)
        for key in extra:
            data.setdefault(key, m[key])

    timestamp = _timestamp(m.get("timestamp"), entry_id, problems, kept)

    service = _field_text(m, "service", problems, kept)
    if service is None:
        if "service" not in kept:
            problems.append("service missing")
        service = "unknown"
    event_type = _field_text(m, "eventType", problems, kept)
    if event_type is None:
        if "eventType" not in kept:
            problems.append("eventType missing")
        event_type = "unknown"

    ids: dict[str, str | None] = {}
    for wire, attr in ID_FIELDS:
        value = _field_text(m, wire, problems, kept)
        if value is None and data:
            value = _str_or_none(data.get(wire))
        ids[attr] = value

    trace_id = _field_text(m, "traceId", problems, kept)
    if trace_id is None and data:
        trace_id = _str_or_none(data.get("traceId"))
    if trace_id is None:
        job_id = ids["job_id"]
        trace_id = trace_id_for_job(job_id) if job_id else ""
        # A flagged line read back with an empty trace: its writer's reasons say what was wrong.
        if "traceId" not in kept and not (previous and m.get("traceId") == ""):
            problems.append("traceId missing")
    elif not is_hex_id(trace_id, 32):
        lowered = trace_id.lower()
        if is_hex_id(lowered, 32):
            trace_id = lowered
        else:
            problems.append("traceId is not 32 hex digits")

    span_id = _field_text(m, "spanId", problems, kept)
    if span_id is not None and not is_hex_id(span_id.lower(), 16):
        problems.append("spanId is not 16 hex digits")

    raw_level = m.get("level")
    if raw_level is None or raw_level == "":
        level = default_level(event_type)
    elif isinstance(raw_level, str):
        level = normalize_level(raw_level) or raw_level
        if level not in LEVEL_RANK:
            problems.append(f"unknown level {_short(raw_level)}")
    else:
        problems.append("level is not a string")
        kept["level"] = raw_level
        level = default_level(event_type)

    raw_v = m.get("v")
    v = SCHEMA_VERSION
    if raw_v is not None and raw_v != "":
        parsed_v = _small_int(raw_v)
        if parsed_v is None:
            problems.append("v is not an integer")
            kept["v"] = raw_v
        else:
            v = parsed_v

    event_id = _field_text(m, "eventId", problems, kept)

    if kept:
        data = dict(data)
        for wire, value in kept.items():
            data.setdefault(f"_{wire}", value)
    data = _bounded(data, problems)

    if previous:
        # Read back from a file: keep the reasons found when the entry was first decoded.
        problems[:0] = previous.split("; ")
    return TelemetryEvent(
        timestamp=timestamp,
        service=service,
        event_type=event_type,
        trace_id=trace_id,
        span_id=span_id,
        job_id=ids["job_id"],
        worker_id=ids["worker_id"],
        machine_id=ids["machine_id"],
        user_id=ids["user_id"],
        level=level,
        data=data,
        v=v,
        event_id=event_id,
        id=entry_id,
        malformed="; ".join(dict.fromkeys(problems)) if problems else None,
    )


def _small_int(raw: Any) -> int | None:
    """A schema version: a non-negative integer below 2**31, as a number or ASCII digits."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw if 0 <= raw < 2**31 else None
    if isinstance(raw, str) and 0 < len(raw) <= 9 and raw.isascii() and raw.isdigit():
        return int(raw)
    return None


def _timestamp(raw: Any, entry_id: str | None, problems: list[str], kept: dict[str, Any]) -> int:
    """Epoch milliseconds from 0 to MAX_TIMESTAMP_MS: an integer, a float or their text in
    ASCII (``int()`` and ``float()`` also take other scripts' digits: those are flagged)."""
    value: int | None = None
    if isinstance(raw, bool):
        pass
    elif isinstance(raw, int):
        value = raw
    elif isinstance(raw, float):
        if math.isfinite(raw):
            value = int(raw)
    elif isinstance(raw, str) and raw.isascii() and len(raw) <= 40:
        if raw.isdigit():
            value = int(raw)
        else:
            try:
                number = float(raw)
            except ValueError:
                number = math.nan
            if math.isfinite(number):
                value = int(number)
    if value is not None and 0 <= value <= MAX_TIMESTAMP_MS:
        return value
    if raw is None or raw == "":
        problems.append("timestamp missing")
    else:
        problems.append(f"timestamp {_short(raw)} is not epoch milliseconds")
        kept["timestamp"] = raw
    return _fallback_ms(entry_id)
