"""Wire format v1: encode, tolerant decode, JSON lines."""

from __future__ import annotations

import orjson
import pytest

from emp_tui.events import (
    MAX_DEPTH,
    SeenEvents,
    TelemetryEvent,
    _decode_well_formed,
    _from_well_formed_dict,
    data_json,
    decode,
    dedupe,
    default_level,
    json_bytes,
    json_text,
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
        {"eventId": "0123456789abcdef"},
        {"eventId": ""},
        {"timestamp": "١٧٣٢٧٠٠٠٠٠٠٠٠"},
        {"timestamp": "9" * 23},
        {"timestamp": "7" * 5000},
        {"data": '{"a":' * 150 + "1" + "}" * 150},
        {"data": "[" * 300 + "]" * 300},
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


# -- total decoding -------------------------------------------------------------------------


def _fields(**changes: str) -> dict[bytes, bytes]:
    fields = {k.encode(): v.encode() for k, v in make().encode().items()}
    fields.update({k.encode(): v.encode() for k, v in changes.items()})
    return fields


@pytest.mark.parametrize(
    "raw",
    [
        "١٧٣٢٧٠٠٠٠٠٠٠٠",  # Arabic-Indic digits: int() takes them, the wire format does not
        "1732700000000²",
        "²",
        "7" * 5000,  # past Python's limit on digits
        "9" * 23,  # past 64 bits
        "-5",
        "1e23",
        "inf",
        "nan",
        "253402300800000",  # the year 10000
    ],
)
def test_timestamps_that_are_not_epoch_ms_are_kept_and_flagged(raw: str) -> None:
    event = decode(b"1732700000123-4", _fields(timestamp=raw))
    assert event.malformed is not None and "is not epoch milliseconds" in event.malformed
    assert event.timestamp == 1732700000123  # the stream's time instead
    assert event.data["_timestamp"] == raw  # kept, as it came
    assert TelemetryEvent.from_json_line(event.to_json_line()) == event


def test_data_nesting_up_to_the_limit_is_read_deeper_is_kept_as_text() -> None:
    def nested(depth: int) -> str:
        return '{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)

    at_limit = decode(b"1-0", _fields(data=nested(MAX_DEPTH)))
    assert at_limit.malformed is None and isinstance(at_limit.data["a"], dict)
    over = decode(b"1-0", _fields(data=nested(MAX_DEPTH + 1)))
    assert over.malformed is not None and f"deeper than {MAX_DEPTH}" in over.malformed
    assert orjson.loads(over.data["a"]) == orjson.loads(nested(MAX_DEPTH + 1))["a"]
    for event in (at_limit, over):
        line = event.to_json_line()
        assert TelemetryEvent.from_json_line(line) == event
        # a file line nested too deep takes the careful path too
        deep_line = line.replace(
            b'"data":', b'"data":{"x":' + b"[" * 200 + b"]" * 200 + b'},"old":', 1
        )
        assert TelemetryEvent.from_json_line(deep_line).malformed is not None


def test_values_that_are_not_text_are_kept_and_flagged() -> None:
    line = orjson.dumps(
        {
            "id": "1" * 42 + "-0",
            "timestamp": 5,
            "service": ["worker"],
            "eventType": "job.claimed",
            "traceId": TRACE,
            "jobId": {"id": 1},
            "level": 3,
            "v": 2**40,
            "eventId": {},
        }
    )
    event = TelemetryEvent.from_json_line(line)
    assert event.id is None and event.data["_id"] == "1" * 42 + "-0"
    assert event.service == "unknown" and event.data["_service"] == ["worker"]
    assert event.job_id is None and event.data["_jobId"] == {"id": 1}
    assert event.level == "info" and event.data["_level"] == 3
    assert event.v == 1 and event.data["_v"] == 2**40
    assert event.event_id is None and event.data["_eventId"] == {}
    assert event.malformed is not None
    for problem in (
        "is not a stream entry ID",
        "service is not a string",
        "jobId is not a string",
        "level is not a string",
        "v is not an integer",
        "eventId is not a string",
    ):
        assert problem in event.malformed
    assert TelemetryEvent.from_json_line(event.to_json_line()) == event


def test_unicode_digits_in_a_file_line_are_flagged_not_taken() -> None:
    line = orjson.dumps(
        {"id": "\u0663-0", "timestamp": "\u0661\u0667", "service": "w", "eventType": "a.b"}
    )
    event = TelemetryEvent.from_json_line(line)
    assert event.id is None and event.timestamp == 0
    assert event.malformed is not None and "not epoch milliseconds" in event.malformed


# -- writing JSON never fails ------------------------------------------------------------------


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no")


def _awkward_values() -> list[object]:
    loop: list[object] = []
    loop.append(loop)
    deep: object = 1
    for _ in range(5000):
        deep = {"a": deep}
    return [
        2**64,
        -(2**63) - 1,
        10**5000,
        "lone \udcff surrogate",
        {1: "int key", None: "none key", ("t",): "tuple key"},
        loop,
        deep,
        _Unprintable(),
        {"nested": [_Unprintable(), float("nan")]},
    ]


@pytest.mark.parametrize("value", _awkward_values(), ids=lambda v: type(v).__name__)
def test_json_writers_never_raise(value: object) -> None:
    assert orjson.loads(json_bytes({"v": value}))
    line = json_bytes(value, newline=True)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    orjson.loads(line)
    assert isinstance(orjson.loads(data_json({"v": value})), dict)
    assert json_text(value)
    event = make(data={"v": value})
    assert orjson.loads(event.to_json_line())["eventType"] == "job.claimed"
    assert decode(b"1-0", event.encode()).event_type == "job.claimed"


def test_json_text_writes_any_depth_as_json() -> None:
    deep: object = []
    for _ in range(3000):
        deep = [deep]
    text = json_text({"k": deep, 2: "two", "f": 1.5, "b": [True, None]})
    assert text.startswith('{"k":[[[') and text.endswith(']]],"2":"two","f":1.5,"b":[true,null]}')
    assert text.count("[") == text.count("]") == 3002


# -- event IDs and collapsing copies ---------------------------------------------------------


def test_event_id_is_on_the_wire_and_in_files() -> None:
    event = make(event_id="0123456789abcdef")
    fields = event.encode()
    assert fields["eventId"] == "0123456789abcdef"
    as_bytes = {k.encode(): v.encode() for k, v in fields.items()}
    back = decode(b"5-0", as_bytes)
    assert back.event_id == "0123456789abcdef" and back.malformed is None
    assert orjson.loads(back.to_json_line())["eventId"] == "0123456789abcdef"
    assert TelemetryEvent.from_json_line(back.to_json_line()) == back
    assert "eventId" not in make().encode() and "eventId" not in make().to_dict()


@pytest.mark.parametrize("event_id", [None, "0123456789abcdef", "a-uuid-from-another-emitter"])
def test_well_formed_entries_take_the_fast_paths(event_id: str | None) -> None:
    event = make(event_id=event_id)
    as_bytes = {k.encode(): v.encode() for k, v in event.encode().items()}
    fast = _decode_well_formed(b"17-3", as_bytes)
    assert fast is not None and fast == decode("17-3", event.encode())
    obj = orjson.loads(fast.to_json_line())
    fast_line = _from_well_formed_dict(obj)
    assert fast_line is not None and fast_line == fast


def test_seen_events_collapse_copies_by_event_id_else_stream_id() -> None:
    seen = SeenEvents()
    a = make(event_id="e1", id="1-0")
    resent = make(event_id="e1", id="2-0")  # the same event, written twice
    other = make(event_id="e2", id="3-0")
    plain = make(id="4-0")
    plain_again = make(id="4-0")  # one entry read from two sources
    anonymous = make()
    assert [seen.first_time(e) for e in (a, resent, other, plain, plain_again)] == [
        True,
        False,
        True,
        True,
        False,
    ]
    assert seen.first_time(anonymous) and seen.first_time(anonymous)  # nothing to know it by
    assert seen.duplicates == 2
    # an event ID that looks like a stream ID is not mistaken for one
    assert seen.first_time(make(event_id="4-0", id="5-0"))


def test_seen_events_remember_the_newest_only() -> None:
    seen = SeenEvents(capacity=3)
    events = [make(event_id=f"e{n}") for n in range(5)]
    assert all(seen.first_time(e) for e in events)
    assert len(seen) == 3
    assert not seen.first_time(events[4]) and not seen.first_time(events[2])
    assert seen.first_time(events[0])  # forgotten: too long ago


def test_dedupe_keeps_the_first_copy_and_order() -> None:
    events = [make(event_id=n, id=f"{i}-0") for i, n in enumerate("abacbd")]
    assert [e.id for e in dedupe(events)] == ["0-0", "1-0", "3-0", "5-0"]
    shared = SeenEvents()
    assert [e.event_id for e in dedupe(events[:2], shared)] == ["a", "b"]
    assert [e.event_id for e in dedupe(events[2:], shared)] == ["c", "d"]


def test_a_malformed_field_in_the_stream_is_data_and_in_a_file_a_list_is_kept() -> None:
    fields = {**make().encode(), "malformed": "not from a reader"}
    event = decode("1-0", fields)
    assert event.malformed is None and event.data["malformed"] == "not from a reader"
    assert TelemetryEvent.from_json_line(event.to_json_line()) == event
    line = orjson.dumps({**make(id="1-0").to_dict(), "malformed": ["x"]})
    read = TelemetryEvent.from_json_line(line)
    assert read.malformed == "malformed is not a string" and read.data["_malformed"] == ["x"]


def test_unreadable_lines_and_entries_read_back_the_same() -> None:
    for event in (
        TelemetryEvent.from_json_line(b"not json"),
        TelemetryEvent.from_json_line(b"[1, 2]"),
        decode(b"3-0", {b"": b""}),
    ):
        assert event.malformed
        assert TelemetryEvent.from_json_line(event.to_json_line()) == event
