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

Readers are tolerant: an entry that is missing fields or carries junk decodes to an event
whose ``malformed`` says what was wrong. Nothing is dropped and nothing raises. This module
does no I/O.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from emp_tui.stream_ids import stream_id_ms as stream_id_ms  # where it was first defined

SCHEMA_VERSION: Final = 1
DEFAULT_STREAM: Final = "emp:events"
DEFAULT_MAXLEN: Final = 10_000

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
    {"timestamp", "service", "eventType", "traceId", "spanId", "level", "data", "v", "id"}
    | {wire for wire, _ in ID_FIELDS}
)
_HEX: Final = frozenset("0123456789abcdef")


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
            orjson.dumps(self.data, default=str, option=orjson.OPT_NON_STR_KEYS).decode(),
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
        if self.malformed is not None:
            out["malformed"] = self.malformed
        return out

    def to_json_line(self) -> bytes:
        """One line of a JSON-lines file, newline included."""
        return orjson.dumps(self.to_dict(), option=orjson.OPT_APPEND_NEWLINE, default=str)

    @classmethod
    def from_json_line(cls, line: bytes | str) -> TelemetryEvent:
        """Read a line written by :meth:`to_json_line` (or any JSON object with wire fields).

        Never raises: a line that is not a JSON object becomes a malformed event."""
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
            return _unreadable(None, text.rstrip("\n"), f"line is not JSON: {exc}")
        if not isinstance(obj, dict):
            return _unreadable(None, obj, "line is not a JSON object")
        fast = _from_well_formed_dict(obj)
        if fast is not None:
            return fast
        return decode_object_general(obj)

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
    return out


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
    return decode_general(entry_id, fields)


# The general paths, public so that the tests can hold the fast paths to them and check that a
# well-formed entry never needs them.


def decode_object_general(obj: dict[str, Any]) -> TelemetryEvent:
    """:meth:`TelemetryEvent.from_json_line` of a JSON object, without the fast path."""
    entry_id = obj.get("id")
    return _from_mapping(
        entry_id if isinstance(entry_id, str) else None,
        obj,
        [],
        previous=obj.get("malformed"),
    )


def decode_general(entry_id: str | bytes | None, fields: Mapping[Any, Any]) -> TelemetryEvent:
    """:func:`decode` without the fast path: reads any entry, tolerantly."""
    problems: list[str] = []
    if isinstance(entry_id, bytes):
        entry_id = entry_id.decode("ascii", "replace")
    strs: dict[str, Any] = {}
    for key, value in fields.items():
        if isinstance(key, bytes):
            key = _text(key, problems, "a field name")
        if isinstance(value, bytes):
            value = _text(value, problems, key)
        strs[str(key)] = value
    if "eventType" not in strs and "service" not in strs and len(strs) == 1:
        # A whole event sent as one JSON field (e.g. `XADD emp:events * event '{...}'`).
        ((_only_key, only_value),) = strs.items()
        inner = _json_object(only_value)
        if inner is not None:
            return _from_mapping(entry_id, inner, problems)
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
        if not raw_ts.isdigit():
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
        data = orjson.loads(raw_data) if raw_data else {}
        if type(data) is not dict:
            return None
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
        if isinstance(entry_id, bytes):
            entry_id = entry_id.decode("ascii")
        return TelemetryEvent(
            timestamp=int(raw_ts),
            service=service,
            event_type=event_type,
            trace_id=trace_id,
            span_id=span_id,
            job_id=job_id,
            worker_id=worker_id,
            machine_id=machine_id,
            user_id=user_id,
            level=level,
            data=data,
            id=entry_id,
        )
    except (UnicodeDecodeError, orjson.JSONDecodeError, KeyError, AttributeError, TypeError):
        return None


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
    elif type(data) is not dict:
        return None
    job_id = get("jobId")
    worker_id = get("workerId")
    machine_id = get("machineId")
    user_id = get("userId")
    span_id = get("spanId")
    entry_id = get("id")
    for value in (job_id, worker_id, machine_id, user_id, span_id, entry_id):
        if value is not None and (type(value) is not str or not value):
            return None
    if data and _ids_to_lift(data, job_id, worker_id, machine_id, user_id):
        return None
    if span_id is not None and (_SPAN_RE.fullmatch(span_id) is None or span_id == _ZERO_SPAN):
        return None
    level = get("level")
    if level is None or level == "":
        level = default_level(event_type)
    elif level not in LEVEL_RANK:
        return None
    v = get("v", SCHEMA_VERSION)
    if v != SCHEMA_VERSION or type(v) is not int:
        return None
    return TelemetryEvent(
        timestamp=timestamp,
        service=service,
        event_type=event_type,
        trace_id=trace_id,
        span_id=span_id,
        job_id=job_id,
        worker_id=worker_id,
        machine_id=machine_id,
        user_id=user_id,
        level=level,
        data=data,
        id=entry_id,
    )


def _text(raw: bytes, problems: list[str], what: str) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        problems.append(f"invalid UTF-8 in {what}")
        return raw.decode("utf-8", "replace")


def _json_object(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, str) or not value.lstrip().startswith("{"):
        return None
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def _unreadable(entry_id: str | None, raw: Any, why: str) -> TelemetryEvent:
    ms = stream_id_ms(entry_id)
    return TelemetryEvent(
        timestamp=ms if ms is not None else 0,
        service="unknown",
        event_type="unknown",
        trace_id="",
        level="info",
        data={"_raw": raw},
        id=entry_id,
        malformed=why,
    )


def _str_or_none(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    return None


def _from_mapping(
    entry_id: str | None,
    m: Mapping[str, Any],
    problems: list[str],
    *,
    previous: Any = None,
) -> TelemetryEvent:
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

    extra = [key for key in m if key not in _KNOWN_FIELDS and key != "malformed"]
    if extra:
        # Unknown top-level fields are kept, inside data, so that nothing is hidden.
        data = dict(data)
        for key in extra:
            data.setdefault(key, m[key])

    timestamp = _timestamp(m.get("timestamp"), entry_id, problems)

    service = _str_or_none(m.get("service"))
    if service is None:
        problems.append("service missing")
        service = "unknown"
    event_type = _str_or_none(m.get("eventType"))
    if event_type is None:
        problems.append("eventType missing")
        event_type = "unknown"

    ids: dict[str, str | None] = {}
    for wire, attr in ID_FIELDS:
        value = _str_or_none(m.get(wire))
        if value is None and data:
            value = _str_or_none(data.get(wire))
        ids[attr] = value

    trace_id = _str_or_none(m.get("traceId"))
    if trace_id is None and data:
        trace_id = _str_or_none(data.get("traceId"))
    if trace_id is None:
        job_id = ids["job_id"]
        trace_id = trace_id_for_job(job_id) if job_id else ""
        problems.append("traceId missing")
    elif not is_hex_id(trace_id, 32):
        lowered = trace_id.lower()
        if is_hex_id(lowered, 32):
            trace_id = lowered
        else:
            problems.append("traceId is not 32 hex digits")

    span_id = _str_or_none(m.get("spanId"))
    if span_id is not None and not is_hex_id(span_id.lower(), 16):
        problems.append("spanId is not 16 hex digits")

    raw_level = m.get("level")
    if raw_level is None or raw_level == "":
        level = default_level(event_type)
    else:
        text_level = str(raw_level)
        level = normalize_level(text_level) or text_level
        if level not in LEVEL_RANK:
            problems.append(f"unknown level {text_level!r}")

    raw_v = m.get("v")
    v = SCHEMA_VERSION
    if raw_v is not None and raw_v != "":
        try:
            v = int(raw_v)
        except (TypeError, ValueError):
            problems.append("v is not an integer")

    if isinstance(previous, str) and previous:
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
        id=entry_id,
        malformed="; ".join(dict.fromkeys(problems)) if problems else None,
    )


def _timestamp(raw: Any, entry_id: str | None, problems: list[str]) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, float) and math.isfinite(raw):
        return int(raw)
    if isinstance(raw, str) and raw:
        if raw.isdigit():
            return int(raw)
        try:
            return int(float(raw))
        except (ValueError, OverflowError):
            pass
        problems.append(f"timestamp {raw[:40]!r} is not epoch milliseconds")
    else:
        problems.append("timestamp missing")
    # Fall back on the time the stream gave the entry: still ordered, still findable.
    ms = stream_id_ms(entry_id)
    return ms if ms is not None else 0
