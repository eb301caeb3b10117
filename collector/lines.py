"""The file exporter's fast path: a well-formed stream entry straight to its JSON line.

Nearly every entry is well formed. For those, the line that ``decode(...).to_json_line()``
writes can be built from the raw fields directly: the same keys in the same order, the same
values, without building a :class:`~emp_tui.events.TelemetryEvent` on the way. At the first
sign of anything unusual (an unknown field, a value the decoder would repair or flag, data
that is not a JSON object or holds IDs to lift) :func:`json_line` returns None and the entry
takes the full decode. The tests check, on a mixed corpus, that both give the same bytes.

Its ``data`` is parsed (to know it is an object and has no IDs to lift) and written again,
so the line is exactly what the full path writes, whatever the emitter's JSON looked like.
The other values are copied as they are when JSON needs no escape in them and they are
valid UTF-8 (what orjson would write is then the same bytes); otherwise orjson builds the
line from a dict.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from operator import itemgetter
from typing import Any, Final, cast

import orjson

from emp_tui.events import LEVELS, MAX_TIMESTAMP_MS, SHALLOW_LEN, nests_too_deep

_TRACE: Final = re.compile(rb"[0-9a-f]{32}")
_SPAN: Final = re.compile(rb"[0-9a-f]{16}")
_ZERO_TRACE: Final = b"0" * 32
_ZERO_SPAN: Final = b"0" * 16
_LEVELS: Final = {name.encode(): name for name in LEVELS}
_MAX_TS_DIGITS: Final = 18  # always within 64 bits; longer ones take the full path
_IDS_ALL: Final = (
    ("jobId", b"jobId"),
    ("workerId", b"workerId"),
    ("machineId", b"machineId"),
    ("userId", b"userId"),
)
# What orjson would escape in a string: then the line is built by orjson itself.
_NEEDS_ESCAPE: Final = re.compile(rb'[\x00-\x1f"\\]')
_NEWLINE: Final = orjson.OPT_APPEND_NEWLINE

Fields = list[bytes]  # an entry's fields as Redis sends them: name, value, name, ...


def json_line(entry_id: bytes, fields: Mapping[bytes, bytes]) -> bytes | None:
    """The JSON line of a well-formed entry, as the full decode would write it; None when
    the entry needs the full decode."""
    return json_lines([(entry_id, flat(fields))])[0]


def flat(fields: Mapping[bytes, bytes]) -> list[bytes]:
    """``fields`` as Redis sends them: name, value, name, value, ..."""
    return [item for pair in fields.items() for item in pair]


def as_mapping(fields: Fields) -> dict[bytes, bytes]:
    """An entry's fields by name (a repeated name keeps its last value, as Redis clients
    read it)."""
    pairs = iter(fields)
    return dict(zip(pairs, pairs, strict=False))


def field(fields: Fields, name: bytes) -> bytes | None:
    """The value of one of an entry's fields (of a repeated name, the last), or None."""
    names = fields[::2]
    if name not in names:
        return None
    return fields[2 * (len(names) - 1 - names[::-1].index(name)) + 1]


# The values the fast path reads, in the order a layout's getter gives them.
_READ: Final = (
    b"timestamp",
    b"service",
    b"eventType",
    b"traceId",
    b"spanId",
    b"jobId",
    b"workerId",
    b"machineId",
    b"userId",
    b"level",
    b"data",
    b"v",
    b"eventId",
)
# Wire fields the fast path knows; any other field sends the entry to the full decode.
_FIELDS: Final = frozenset(_READ)
_Layout = Callable[[list[bytes]], tuple[bytes, ...]]
# An entry's field names, as a tuple, to the getter of its values in the order of _READ (a
# name it lacks reads the b"" appended after its values), or to None when a name is unknown
# or repeated. Emitters write few such shapes, in a fixed order: looking the shape up once
# per entry is cheaper than a dict of each entry's fields.
_LAYOUTS: dict[tuple[bytes, ...], _Layout | None] = {}
_LAYOUTS_MAX: Final = 256


def _layout(names: tuple[bytes, ...]) -> _Layout | None:
    if len(set(names)) != len(names) or not _FIELDS.issuperset(names):
        return None
    position = {name: index for index, name in enumerate(names)}
    absent = len(names)
    return cast("_Layout", itemgetter(*(position.get(name, absent) for name in _READ)))


# The common entry passes a few checks in C: a timestamp of at most 14 digits without a
# leading zero (within year 9999), a known level and version, and text of printable ASCII
# without `"` or `\\` (no escape in JSON, valid UTF-8). Any other entry takes the
# field-by-field checks of :func:`_checked_line`.
_COMMON_LEVELS: Final = frozenset({b"", *_LEVELS})
_COMMON_V: Final = frozenset({b"", b"1"})
_COMMON_TS_DIGITS: Final = 14
# Trace IDs seen well formed lately: one job's events share theirs, so most are checked once.
_GOOD_TRACES: dict[bytes, None] = {}
_GOOD_TRACES_MAX: Final = 1024
_K_SPAN: Final = b'","spanId":"'
_K_JOB: Final = b'","jobId":"'
_K_WORKER: Final = b'","workerId":"'
_K_MACHINE: Final = b'","machineId":"'
_K_USER: Final = b'","userId":"'
_K_EVENT: Final = b',"eventId":"'


def json_lines(entries: Iterable[tuple[bytes, Fields]]) -> list[bytes | None]:
    """:func:`json_line` of each entry, its fields as Redis sends them (one loop with its
    names bound locally: this runs for every entry the collector writes)."""
    out: list[bytes | None] = []
    add = out.append
    layouts = _LAYOUTS
    if len(layouts) > _LAYOUTS_MAX:
        layouts.clear()
    trace_ok = _TRACE.fullmatch
    span_ok = _SPAN.fullmatch
    common_levels, common_v = _COMMON_LEVELS, _COMMON_V
    loads, dumps = orjson.loads, orjson.dumps
    decode_error = orjson.JSONDecodeError
    join = b"".join
    zero_trace, zero_span = _ZERO_TRACE, _ZERO_SPAN
    shallow = SHALLOW_LEN
    good_traces = _GOOD_TRACES
    if len(good_traces) > _GOOD_TRACES_MAX:
        good_traces.clear()
    for entry_id, fields in entries:
        names = tuple(fields[::2])
        try:
            values_of = layouts[names]
        except KeyError:
            values_of = layouts[names] = _layout(names)
        if values_of is None:
            add(_mapped_line(entry_id, as_mapping(fields)))
            continue
        values = fields[1::2]
        values.append(b"")
        (
            timestamp,
            service,
            event_type,
            trace_id,
            span_id,
            job_id,
            worker_id,
            machine_id,
            user_id,
            level,
            raw_data,
            v,
            event_id,
        ) = values_of(values)
        texts = join((service, event_type, job_id, worker_id, machine_id, user_id, event_id))
        if (
            not timestamp.isdigit()
            or len(timestamp) > _COMMON_TS_DIGITS
            or timestamp[0] == 0x30
            or not service
            or not event_type
            or (
                trace_id not in good_traces
                and (trace_ok(trace_id) is None or trace_id == zero_trace)
            )
            or (span_id and (span_ok(span_id) is None or span_id == zero_span))
            or level not in common_levels
            or v not in common_v
            or not texts.isascii()
            or b'"' in texts
            or b"\\" in texts
            or not texts.decode().isprintable()
        ):
            add(_checked_line(entry_id, as_mapping(fields)))
            continue
        good_traces[trace_id] = None
        try:
            data: Any = loads(raw_data) if raw_data else {}
        except decode_error:
            add(None)
            continue
        if type(data) is not dict:
            add(None)  # not an object
            continue
        if data:
            if (
                (len(raw_data) > shallow and nests_too_deep(data))
                or (not job_id and "jobId" in data)
                or (not worker_id and "workerId" in data)
                or (not machine_id and "machineId" in data)
                or (not user_id and "userId" in data)
            ):
                add(None)  # nested too deep, or an ID inside data to lift: the full decode
                continue
            try:
                data_json = dumps(data)
            except TypeError:  # orjson.JSONEncodeError
                add(None)
                continue
        else:
            data_json = b"{}"
        if not level:
            level = b"error" if event_type.endswith((b"failed", b".error")) else b"info"
        add(
            join(
                (
                    b'{"id":"', entry_id,
                    b'","timestamp":', timestamp,
                    b',"service":"', service,
                    b'","eventType":"', event_type,
                    b'","traceId":"', trace_id,
                    span_id and _K_SPAN, span_id,
                    job_id and _K_JOB, job_id,
                    worker_id and _K_WORKER, worker_id,
                    machine_id and _K_MACHINE, machine_id,
                    user_id and _K_USER, user_id,
                    b'","level":"', level,
                    b'","data":', data_json,
                    b',"v":1',
                    event_id and _K_EVENT, event_id,
                    b'"}\n' if event_id else b"}\n",
                )
            )
        )  # fmt: skip
    return out


def _mapped_line(entry_id: bytes, fields: Mapping[bytes, bytes]) -> bytes | None:
    """:func:`json_line` of an entry whose names are unknown (None: the full decode) or
    repeated (read by name, as the decoder reads them)."""
    if not _FIELDS.issuperset(fields):
        return None
    return _checked_line(entry_id, fields)


def _checked_line(entry_id: bytes, fields: Mapping[bytes, bytes]) -> bytes | None:
    """:func:`json_line` of an entry that is not of the common shape, field by field."""
    trace_ok = _TRACE.fullmatch
    span_ok = _SPAN.fullmatch
    levels = _LEVELS
    get = fields.get
    timestamp = get(b"timestamp")
    service = get(b"service")
    event_type = get(b"eventType")
    trace_id = get(b"traceId")
    if (
        not timestamp
        or not timestamp.isdigit()  # bytes: ASCII digits only
        or len(timestamp) > _MAX_TS_DIGITS
        or int(timestamp) > MAX_TIMESTAMP_MS  # past year 9999: flagged by the decoder
        or not service
        or not event_type
        or trace_id is None
        or trace_ok(trace_id) is None
        or trace_id == _ZERO_TRACE
    ):
        return None
    span_id = get(b"spanId")
    if span_id and (span_ok(span_id) is None or span_id == _ZERO_SPAN):
        return None
    v = get(b"v")
    level = get(b"level")
    if (v and v != b"1") or (level and level not in levels):
        return None
    if not level:
        level = b"error" if event_type.endswith((b"failed", b".error")) else b"info"
    raw_data = get(b"data")
    try:
        data: Any = orjson.loads(raw_data) if raw_data else {}
    except orjson.JSONDecodeError:
        return None
    if type(data) is not dict or (
        raw_data is not None and len(raw_data) > SHALLOW_LEN and nests_too_deep(data)
    ):
        return None  # not an object, or nested deeper than the decoder keeps as it is
    job_id = get(b"jobId")
    worker_id = get(b"workerId")
    machine_id = get(b"machineId")
    user_id = get(b"userId")
    if data and (
        (not job_id and "jobId" in data)
        or (not worker_id and "workerId" in data)
        or (not machine_id and "machineId" in data)
        or (not user_id and "userId" in data)
    ):
        return None  # an ID inside data to lift to the top: the full decode does it
    try:
        data_json = orjson.dumps(data) if data else b"{}"
    except TypeError:  # orjson.JSONEncodeError: nested too deep, say
        return None
    parts = [
        b'{"id":"',
        entry_id,
        b'","timestamp":',
        timestamp,
        b',"service":"',
        service,
        b'","eventType":"',
        event_type,
        b'","traceId":"',
        trace_id,
    ]
    texts = [service, event_type]
    if span_id:
        parts += (b'","spanId":"', span_id)
    if job_id:
        parts += (b'","jobId":"', job_id)
        texts.append(job_id)
    if worker_id:
        parts += (b'","workerId":"', worker_id)
        texts.append(worker_id)
    if machine_id:
        parts += (b'","machineId":"', machine_id)
        texts.append(machine_id)
    if user_id:
        parts += (b'","userId":"', user_id)
        texts.append(user_id)
    event_id = get(b"eventId")
    if event_id:
        texts.append(event_id)
    joined = b",".join(texts)
    if _NEEDS_ESCAPE.search(joined) is not None or (timestamp[0] == 0x30 and len(timestamp) > 1):
        # Text JSON must escape, or a number with leading zeros: orjson writes it.
        return _via_dict(entry_id, fields, timestamp, level, data)
    if not joined.isascii():
        try:
            joined.decode()
        except UnicodeDecodeError:
            return None
    parts += (b'","level":"', level, b'","data":', data_json, b',"v":1')
    if event_id:
        parts += (b',"eventId":"', event_id, b'"')
    parts.append(b"}\n")
    return b"".join(parts)


def _via_dict(
    entry_id: bytes, fields: Mapping[bytes, bytes], timestamp: bytes, level: bytes, data: Any
) -> bytes | None:
    """The same line built by orjson, for text that needs escaping in JSON."""
    get = fields.get
    try:
        line: dict[str, Any] = {
            "id": entry_id.decode("ascii"),
            "timestamp": int(timestamp),
            "service": fields[b"service"].decode(),
            "eventType": fields[b"eventType"].decode(),
            "traceId": fields[b"traceId"].decode(),
        }
        span_id = get(b"spanId")
        if span_id:
            line["spanId"] = span_id.decode()
        for name, wire in _IDS_ALL:
            value = get(wire)
            if value:
                line[name] = value.decode()
    except UnicodeDecodeError:
        return None
    line["level"] = level.decode()
    line["data"] = data
    line["v"] = 1
    event_id = get(b"eventId")
    if event_id:
        try:
            line["eventId"] = event_id.decode()
        except UnicodeDecodeError:
            return None
    return orjson.dumps(line, option=_NEWLINE)
