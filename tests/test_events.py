"""Wire format v1: encode, tolerant decode, JSON lines."""

from __future__ import annotations

import orjson
import pytest

from emp_tui.events import (
    TelemetryEvent,
    decode,
    default_level,
    stream_id_ms,
    trace_id_for_job,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def make(**overrides: object) -> TelemetryEvent:
    base: dict[str, object] = dict(
        timestamp=1732700000000,
        service="worker",
        event_type="job.claimed",
        trace_id=TRACE,
        span_id="00f067aa0ba902b7",
        job_id="job_123",
        worker_id="w-1",
        machine_id="m-1",
        user_id="u-9",
        level="info",
        data={"claimTimeMs": 12, "nested": {"a": [1, 2]}},
    )
    base.update(overrides)
    return TelemetryEvent(**base)  # type: ignore[arg-type]


def test_encode_gives_wire_fields_as_strings() -> None:
    fields = make().encode()
    assert fields == {
        "timestamp": "1732700000000",
        "service": "worker",
        "eventType": "job.claimed",
        "traceId": TRACE,
        "spanId": "00f067aa0ba902b7",
        "jobId": "job_123",
        "workerId": "w-1",
        "machineId": "m-1",
        "userId": "u-9",
        "level": "info",
        "data": '{"claimTimeMs":12,"nested":{"a":[1,2]}}',
        "v": "1",
    }
    assert all(isinstance(v, str) for v in fields.values())


def test_optional_fields_are_left_out() -> None:
    fields = make(span_id=None, worker_id=None, machine_id=None, user_id=None).encode()
    assert "spanId" not in fields and "workerId" not in fields and "userId" not in fields


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"text": "héllo wörld ✓ 日本語 🚀"},
        {"big": "x" * 200_000},
        {"deep": {"a": {"b": {"c": [1, 2.5, None, True, "s"]}}}},
        {"markup": "[bold red]boom[/]", "ansi": "\x1b[2J\x07"},
    ],
)
def test_round_trip_through_stream_fields_bytes_and_str(data: dict[str, object]) -> None:
    event = make(data=data)
    fields = event.encode()
    as_bytes = {k.encode(): v.encode() for k, v in fields.items()}
    for raw in (fields, as_bytes):
        back = decode(b"1732700000000-0", raw)
        assert back.malformed is None
        assert back == make(data=data, id="1732700000000-0")


def test_round_trip_through_json_lines() -> None:
    event = make(id="1732700000000-7")
    line = event.to_json_line()
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert orjson.loads(line)["id"] == "1732700000000-7"
    assert TelemetryEvent.from_json_line(line) == event


def test_malformed_event_round_trips_its_flag() -> None:
    event = decode("5-0", {"service": "api-server"})
    assert event.malformed
    back = TelemetryEvent.from_json_line(event.to_json_line())
    assert back.malformed == event.malformed  # the reasons, each once
    assert TelemetryEvent.from_json_line(back.to_json_line()) == back


def test_typescript_style_entry_decodes_like_ours() -> None:
    ours = TelemetryEvent.create(
        "api-server", "job.created", {"a": 1}, timestamp=1732700000000, job_id="job_1"
    )
    ts_fields = {
        "timestamp": "1732700000000",
        "service": "api-server",
        "eventType": "job.created",
        "traceId": trace_id_for_job("job_1"),
        "jobId": "job_1",
        "data": '{"a":1}',
    }
    assert decode("1-0", ts_fields) == decode("1-0", ours.encode())


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"service": "worker", "eventType": "x.y", "traceId": TRACE}, "timestamp missing"),
        (
            {"timestamp": "soon", "service": "w", "eventType": "x.y", "traceId": TRACE},
            "not epoch milliseconds",
        ),
        ({"timestamp": "1", "eventType": "x.y", "traceId": TRACE}, "service missing"),
        ({"timestamp": "1", "service": "w", "traceId": TRACE}, "eventType missing"),
        ({"timestamp": "1", "service": "w", "eventType": "x.y"}, "traceId missing"),
        (
            {"timestamp": "1", "service": "w", "eventType": "x.y", "traceId": "nothex"},
            "traceId is not 32 hex digits",
        ),
        (
            {"timestamp": "1", "service": "w", "eventType": "x.y", "traceId": TRACE, "data": "{"},
            "data is not JSON",
        ),
        (
            {"timestamp": "1", "service": "w", "eventType": "x.y", "traceId": TRACE, "data": "[1]"},
            "data is not a JSON object",
        ),
        (
            {"timestamp": "1", "service": "w", "eventType": "x.y", "traceId": TRACE, "level": "x"},
            "unknown level",
        ),
        (
            {"timestamp": "1", "service": "w", "eventType": "x.y", "traceId": TRACE, "v": "one"},
            "v is not an integer",
        ),
    ],
)
def test_malformed_entries_decode_flagged_never_raise(fields: dict[str, str], problem: str) -> None:
    event = decode("1732700000123-4", fields)
    assert event.malformed is not None and problem in event.malformed
    assert event.id == "1732700000123-4"


def test_missing_timestamp_falls_back_on_stream_id_time() -> None:
    event = decode("1732700000123-4", {"service": "w", "eventType": "x.y", "traceId": TRACE})
    assert event.timestamp == 1732700000123


def test_non_json_data_is_kept_not_dropped() -> None:
    event = decode("1-0", {"timestamp": "1", "service": "w", "eventType": "a.b", "data": "oops"})
    assert event.data == {"_raw": "oops"}


def test_invalid_utf8_is_kept_as_escapes_and_flagged() -> None:
    event = decode(
        b"1-0",
        {b"timestamp": b"1", b"service": b"w\xff\xfe", b"eventType": b"a.b", b"traceId": TRACE},
    )
    assert event.service == "w\\xff\\xfe"  # the bytes stay visible, as text
    assert event.malformed is not None and "invalid UTF-8 in service" in event.malformed


def test_binary_junk_everywhere_never_raises() -> None:
    junk = bytes(range(256))
    event = decode(b"9-9", {junk: junk, b"data": junk, b"timestamp": junk})
    assert event.malformed
    assert event.id == "9-9"


def test_numbers_sent_as_text_and_as_numbers() -> None:
    event = decode(
        "1-0",
        {"timestamp": "1732700000000.0", "service": "w", "eventType": "a.b", "traceId": TRACE},
    )
    assert event.timestamp == 1732700000000 and event.malformed is None
    line = orjson.dumps(
        {
            "timestamp": 1732700000000,
            "service": "w",
            "eventType": "a.b",
            "traceId": TRACE,
            "jobId": 42,
            "v": 1,
        }
    )
    from_file = TelemetryEvent.from_json_line(line)
    assert from_file.job_id == "42" and from_file.timestamp == 1732700000000


def test_ids_only_inside_data_are_lifted() -> None:
    event = decode(
        "1-0",
        {
            "timestamp": "1",
            "service": "w",
            "eventType": "job.claimed",
            "data": '{"jobId":"job_9","workerId":"w-3","machineId":"m-2","userId":"u"}',
        },
    )
    assert (event.job_id, event.worker_id, event.machine_id, event.user_id) == (
        "job_9",
        "w-3",
        "m-2",
        "u",
    )
    # and the trace is derived from the job, so the event joins the job's trace
    assert event.trace_id == trace_id_for_job("job_9")


def test_whole_event_as_one_json_field() -> None:
    inner = {
        "timestamp": 1732700000000,
        "service": "machine",
        "eventType": "machine.ready",
        "traceId": TRACE,
        "machineId": "m-7",
        "data": {"gpus": 2},
    }
    event = decode("1-0", {"event": orjson.dumps(inner).decode()})
    assert event.malformed is None
    assert (event.service, event.event_type, event.machine_id) == (
        "machine",
        "machine.ready",
        "m-7",
    )
    assert event.data == {"gpus": 2}


def test_unknown_fields_are_kept_in_data() -> None:
    event = decode(
        "1-0",
        {"timestamp": "1", "service": "w", "eventType": "a.b", "traceId": TRACE, "region": "eu"},
    )
    assert event.data["region"] == "eu"


def test_uppercase_trace_id_is_normalised() -> None:
    event = decode(
        "1-0", {"timestamp": "1", "service": "w", "eventType": "a.b", "traceId": TRACE.upper()}
    )
    assert event.trace_id == TRACE and event.malformed is None


def test_json_line_that_is_not_json_becomes_malformed_event() -> None:
    event = TelemetryEvent.from_json_line(b"this is not json\n")
    assert event.malformed and "not JSON" in event.malformed
    assert event.data == {"_raw": "this is not json"}
    assert TelemetryEvent.from_json_line(b"[1,2]").malformed == "line is not a JSON object"


def test_trace_id_derived_from_job_is_stable_w3c() -> None:
    a = trace_id_for_job("job_123")
    assert a == trace_id_for_job("job_123") != trace_id_for_job("job_124")
    assert len(a) == 32 and int(a, 16) != 0 and a == a.lower()
    # the derivation any language can reproduce: md5 hex of the UTF-8 job ID
    # Node: createHash("md5").update("job_123").digest("hex")
    assert a == "0c32f617bbf2c4f91ed1a0b4a1d621b8"


def test_create_fills_defaults() -> None:
    event = TelemetryEvent.create("worker", "connector.processing_failed", job_id="j")
    assert event.level == "error"
    assert event.trace_id == trace_id_for_job("j")
    random_trace = TelemetryEvent.create("worker", "worker.ready").trace_id
    assert len(random_trace) == 32 and random_trace != TelemetryEvent.create("w", "x").trace_id


@pytest.mark.parametrize(
    ("event_type", "level"),
    [
        ("job.created", "info"),
        ("connector.processing_failed", "error"),
        ("job.failed", "error"),
        ("api.error", "error"),
        ("job.progress_updated", "info"),
    ],
)
def test_default_level(event_type: str, level: str) -> None:
    assert default_level(event_type) == level


def test_stream_id_ms() -> None:
    assert stream_id_ms("1732700000123-4") == 1732700000123
    assert stream_id_ms(None) is None and stream_id_ms("junk") is None


def _variants() -> list[dict[str, str]]:
    good = make().encode()
    out = [good, make(span_id=None, user_id=None, data={}).encode()]
    changes: list[dict[str, str | None]] = [
        {"level": "WARNING"},
        {"level": ""},
        {"level": None},
        {"traceId": TRACE.upper()},
        {"traceId": "0" * 32},
        {"spanId": "xyz"},
        {"spanId": "0" * 16},
        {"data": "null"},
        {"data": ""},
        {"data": None},
        {"data": '{"jobId": "lifted", "workerId": "w-9"}', "jobId": None, "workerId": None},
        {"data": '{"jobId": "not lifted"}'},
        {"timestamp": "12.5"},
        {"timestamp": ""},
        {"service": ""},
        {"eventType": None},
        {"v": "2"},
        {"v": "x"},
        {"jobId": ""},
        {"extra": "kept"},
    ]
    for change in changes:
        fields: dict[str, str] = dict(good)
        for key, value in change.items():
            if value is None:
                fields.pop(key, None)
            else:
                fields[key] = value
        out.append(fields)
    return out


@pytest.mark.parametrize("fields", _variants())
def test_fast_and_general_paths_agree(fields: dict[str, str]) -> None:
    """Bytes entries from Redis take a fast path when well formed; str entries always take
    the general path. Both must read every entry the same way."""
    as_bytes = {k.encode(): v.encode() for k, v in fields.items()}
    assert decode(b"17-3", as_bytes) == decode("17-3", fields)
    # and the JSON-lines reader agrees with itself through both of its paths
    event = decode("17-3", fields)
    assert TelemetryEvent.from_json_line(event.to_json_line()) == event
