"""Events as OTLP log records (OTLP/HTTP JSON encoding). Pure, no I/O.

Each event becomes one LogRecord: ``eventName`` is the event type (the semantic conventions
model events as log records with an EventName), times are nanoseconds as decimal strings,
severity comes from the level, ``traceId``/``spanId`` are hex, and the attributes are
``job.id``, ``worker.id``, ``machine.id``, ``user.id`` plus the ``data`` fields flattened
with dotted keys. Records are grouped under one resource per emitting service
(``service.name``). Enums are integers and 64-bit integers strings, as OTLP/JSON requires.
"""

from __future__ import annotations

import gzip
import math
import time
from collections.abc import Iterable, Mapping
from typing import Any, Final

import orjson

from emp_tui.events import TelemetryEvent, is_hex_id

SCOPE_NAME: Final = "emp-collector"
SCOPE_VERSION: Final = "0.1.0"

# level -> (SeverityNumber, SeverityText)
SEVERITY: Final[dict[str, tuple[int, str]]] = {
    "debug": (5, "DEBUG"),
    "info": (9, "INFO"),
    "warn": (13, "WARN"),
    "error": (17, "ERROR"),
}
_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1
_UINT64_MAX: Final = (1 << 64) - 1
_MAX_DEPTH: Final = 8

# Top-level attributes the collector sets itself; a data field of the same name is kept
# under "data.<name>" instead.
_RESERVED: Final = frozenset(
    {
        "job.id",
        "worker.id",
        "machine.id",
        "user.id",
        "emp.stream.id",
        "emp.malformed",
        "emp.timestamp",
    }
)


def any_value(value: Any, depth: int = 0) -> dict[str, Any]:
    """An OTLP AnyValue for a JSON value."""
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        if _INT64_MIN <= value <= _INT64_MAX:
            return {"intValue": str(value)}
        return {"stringValue": str(value)}
    if isinstance(value, float):
        if math.isfinite(value):
            return {"doubleValue": value}
        return {
            "doubleValue": "NaN"
            if math.isnan(value)
            else ("Infinity" if value > 0 else "-Infinity")
        }
    if value is None:
        return {}
    if depth >= _MAX_DEPTH:
        return {"stringValue": orjson.dumps(value, default=str).decode()}
    if isinstance(value, Mapping):
        return {
            "kvlistValue": {
                "values": [
                    {"key": str(k), "value": any_value(v, depth + 1)} for k, v in value.items()
                ]
            }
        }
    if isinstance(value, list | tuple):
        return {"arrayValue": {"values": [any_value(v, depth + 1) for v in value]}}
    return {"stringValue": str(value)}


def flatten(data: Mapping[str, Any], prefix: str = "", depth: int = 0) -> Iterable[tuple[str, Any]]:
    """``{"a": {"b": 1}, "c": [1]}`` -> ``("a.b", 1), ("c", [1])``; lists stay arrays."""
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value and depth < _MAX_DEPTH:
            yield from flatten(value, f"{name}.", depth + 1)
        else:
            yield name, value


def log_record(event: TelemetryEvent, observed_ns: int) -> dict[str, Any]:
    attributes: list[dict[str, Any]] = []
    for key, value in (
        ("job.id", event.job_id),
        ("worker.id", event.worker_id),
        ("machine.id", event.machine_id),
        ("user.id", event.user_id),
    ):
        if value is not None:
            attributes.append({"key": key, "value": {"stringValue": value}})
    if event.id is not None:
        attributes.append({"key": "emp.stream.id", "value": {"stringValue": event.id}})
    if event.malformed is not None:
        attributes.append({"key": "emp.malformed", "value": {"stringValue": event.malformed}})
    for key, value in flatten(event.data):
        if key in _RESERVED:
            key = f"data.{key}"
        attributes.append({"key": key, "value": any_value(value)})

    severity = SEVERITY.get(event.level)
    time_ns = event.timestamp * 1_000_000
    if not 0 <= time_ns <= _UINT64_MAX:
        # OTLP's "unknown" (the observed time still says when it was seen); the given
        # timestamp is kept as an attribute.
        attributes.append({"key": "emp.timestamp", "value": {"stringValue": str(event.timestamp)}})
        time_ns = 0
    record: dict[str, Any] = {
        "timeUnixNano": str(time_ns),
        "observedTimeUnixNano": str(observed_ns),
        "severityNumber": severity[0] if severity else 0,
        "severityText": severity[1] if severity else event.level,
        "eventName": event.event_type,
        "body": {"stringValue": event.event_type},
        "attributes": attributes,
    }
    if is_hex_id(event.trace_id, 32):
        record["traceId"] = event.trace_id
        span = (event.span_id or "").lower()
        if is_hex_id(span, 16):
            record["spanId"] = span
    return record


def export_request(
    events: Iterable[TelemetryEvent],
    resource: Mapping[str, str] | None = None,
    *,
    observed_ns: int | None = None,
) -> dict[str, Any]:
    """An ExportLogsServiceRequest: one ResourceLogs per service, in first-seen order."""
    observed = time.time_ns() if observed_ns is None else observed_ns
    by_service: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_service.setdefault(event.service, []).append(log_record(event, observed))
    extra = [
        {"key": k, "value": {"stringValue": v}}
        for k, v in (resource or {}).items()
        if k != "service.name"
    ]
    return {
        "resourceLogs": [
            {
                "resource": {
                    "attributes": [
                        {"key": "service.name", "value": {"stringValue": service}},
                        *extra,
                    ]
                },
                "scopeLogs": [
                    {
                        "scope": {"name": SCOPE_NAME, "version": SCOPE_VERSION},
                        "logRecords": records,
                    }
                ],
            }
            for service, records in by_service.items()
        ]
    }


def encode_request(request: Mapping[str, Any]) -> bytes:
    """The gzip-compressed JSON body of a request."""
    return gzip.compress(orjson.dumps(request, default=str), compresslevel=5)


def decode_body(body: bytes) -> Any:
    """The JSON object of a (gzipped) request body, for the dead-letter file."""
    return orjson.loads(gzip.decompress(body))
