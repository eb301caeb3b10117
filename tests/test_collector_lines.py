"""The file exporter's fast path (collector.lines) writes exactly the bytes the full decode
writes, and is the path actually taken for well-formed entries."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from collector_helpers import STREAM, emit, line_ids, pending_count, running, settings_for, until

from collector.batch import Content, Decoder
from collector.health import Health
from collector.lines import as_mapping, field, flat, json_line, json_lines
from emp_tui.events import TelemetryEvent, decode

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def wire(**fields: str | bytes) -> dict[bytes, bytes]:
    base: dict[str, str | bytes] = {
        "timestamp": "1732700000000",
        "service": "worker",
        "eventType": "job.progress_updated",
        "traceId": TRACE,
    }
    base.update(fields)
    return {k.encode(): v.encode() if isinstance(v, str) else v for k, v in base.items()}


# (entry, whether the fast path takes it)
CORPUS: list[tuple[dict[bytes, bytes], bool]] = [
    (wire(), True),
    (wire(data='{"progress":{"pct":5},"tags":["a",1,null,true,1.5]}', v="1"), True),
    (
        wire(
            jobId="job_1", workerId="w-1", machineId="m-1", userId="u-1", spanId="00f067aa0ba902b7"
        ),
        True,
    ),
    (wire(level="warn", data="{}"), True),
    (wire(level="", data=""), True),  # empty: the defaults
    (wire(eventType="connector.processing_failed"), True),  # error by default
    (wire(eventType="job.error"), True),
    (wire(service="wörker", jobId="job_é_😀", data='{"msg":"été 😀 \u2028"}'), True),
    (wire(data='{ "spaced" : 1 , "esc":"\\u00e9\\/", "num": 1E5, "neg": -0, "f": 1.50 }'), True),
    (wire(data='{"big": 123456789012345678}', jobId="job\x7fdel"), True),  # DEL is not escaped
    (wire(jobId='job"quoted', service="back\\slash"), True),  # escaped by orjson itself
    (wire(jobId="job\nnewline", workerId="w\x01"), True),
    (wire(timestamp="0001732700000000"), True),  # leading zeros: written as a number
    (wire(timestamp="253402214400000"), False),  # past year 9999: flagged by the decoder
    (wire(data='{"jobId":"job_9"}', workerId="w-1"), False),  # an ID to lift from data
    (wire(data='{"workerId":"w-9"}', jobId="j"), False),
    (wire(data='{"machineId":"m-9"}', jobId="j"), False),
    (wire(data='{"userId":"u-9"}', jobId="j"), False),
    (wire(data='{"userId":"u-9"}', userId=""), False),  # empty at the top: lifted too
    (wire(data='{"jobId":"inner"}', jobId="outer"), True),  # nothing to lift
    (wire(level="WARN"), False),  # normalised by the full decode
    (wire(level="warning"), False),
    (wire(level="verbose"), False),  # unknown: flagged
    (wire(v="2"), False),
    (wire(traceId=TRACE.upper()), False),  # lowercased by the full decode
    (wire(traceId="0" * 32), False),
    (wire(traceId="abc"), False),
    (wire(spanId="00F067AA0BA902B7"), False),
    (wire(spanId="0" * 16), False),
    (wire(data="[1,2]"), False),
    (wire(data="null"), False),
    (wire(data="not json"), False),
    (wire(data='{"a":' * 300 + "1" + "}" * 300), False),  # too deep to write again
    (wire(timestamp="²"), False),
    (wire(timestamp="1" * 23), False),
    (wire(timestamp="-5"), False),
    (wire(timestamp="17.5"), False),
    (wire(service=""), False),
    (wire(service=b"w\xc3\x28"), False),  # invalid UTF-8
    (wire(jobId=b"\xff"), False),
    (wire(eventId="00000a0000000001"), True),  # the emitter's own ID for the event
    (wire(eventId='id\u202e"q', jobId="j"), True),  # text JSON escapes: orjson writes it
    (wire(eventId=b"\xff"), False),
    (wire(data='{"a":' * 150 + "1" + "}" * 150), False),  # deeper than the decoder keeps
    (wire(extra="field"), False),  # unknown fields are kept in data by the full decode
    ({b"event": b'{"timestamp":1,"service":"a","eventType":"b.c"}'}, False),
    ({}, False),
]


def full_line(entry_id: bytes, fields: dict[bytes, bytes]) -> bytes:
    return decode(entry_id, fields).to_json_line()


def test_the_fast_path_writes_the_bytes_the_full_decode_writes() -> None:
    taken = 0
    for index, (fields, well_formed) in enumerate(CORPUS):
        entry_id = f"1732700000000-{index}".encode()
        fast = json_line(entry_id, fields)
        assert (fast is not None) == well_formed, (index, fields)
        if fast is not None:
            taken += 1
            assert fast == full_line(entry_id, fields), index
    assert taken == sum(well_formed for _, well_formed in CORPUS)
    # The whole batch at once gives the same as one at a time.
    entries = [(f"1-{i}".encode(), fields) for i, (fields, _) in enumerate(CORPUS)]
    assert json_lines([(i, flat(f)) for i, f in entries]) == [json_line(i, f) for i, f in entries]


def test_fields_read_as_redis_sends_them() -> None:
    """An entry's fields come as a flat list; a repeated name keeps its last value, as in a
    dict of them, on the fast path as on the full decode."""
    fields = flat(wire(jobId="job_1"))
    assert field(fields, b"jobId") == b"job_1" and field(fields, b"userId") is None
    repeated = [*fields, b"jobId", b"job_2", b"level", b"warn"]
    assert field(repeated, b"jobId") == b"job_2"
    assert as_mapping(repeated)[b"jobId"] == b"job_2"
    (line,) = json_lines([(b"1-0", repeated)])
    assert line is not None and line == full_line(b"1-0", as_mapping(repeated))
    assert b'"jobId":"job_2"' in line and b'"level":"warn"' in line
    # The same names in another order give the same line as the dict of them.
    backwards = flat(dict(reversed(wire(jobId="job_1", level="debug").items())))
    assert json_lines([(b"1-0", backwards)]) == [
        json_line(b"1-0", wire(jobId="job_1", level="debug"))
    ]
    # An unknown name anywhere sends the entry to the full decode.
    assert json_lines([(b"1-0", [*fields, b"extra", b"x"])]) == [None]


def test_events_from_the_emitter_take_the_fast_path() -> None:
    event = TelemetryEvent.create(
        "api-server",
        "job.created",
        {"jobType": "comfyui", "n": 3, "nested": {"ok": True, "ratio": 0.25}},
        job_id="job_123",
        user_id="u-9",
        span_id="00f067aa0ba902b7",
    )
    fields = {k.encode(): v.encode() for k, v in event.encode().items()}
    fields[b"eventId"] = b"00000a0000000001"  # as EventClient sends it
    fast = json_line(b"1-0", fields)
    assert fast is not None and fast == full_line(b"1-0", fields)


@pytest.mark.redis
async def test_the_collector_writes_a_mixed_corpus_as_the_full_path_would(
    redis_url: str, rclient: redis.Redis, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(redis_url)
    ids = [client.xadd(STREAM, fields) for fields, _ in CORPUS if fields]  # type: ignore[arg-type]
    ids += [i.encode() for i in emit(client, 50)]
    entries = [(entry_id, flat(fields)) for entry_id, fields in client.xrange(STREAM)]
    client.close()
    settings = settings_for(redis_url, tmp_path, EMP_COLLECTOR_READ_COUNT="16")
    async with running(settings) as collector:
        await until(lambda: collector.health.written == len(ids), what="all written")
        await until(lambda: pending_count(rclient) == 0, what="acked")
        (exporter,) = collector.exporters
        fast = exporter.fast_lines  # type: ignore[attr-defined]
    # What the full path writes: every entry decoded first, then written from its event.
    full = Content([i.decode() for i, _ in entries], entries, Decoder(Health("c", "g", "s", [])))
    full.events  # noqa: B018 - decoded: json_lines() then writes every line from its event
    expected = full.json_lines()
    assert full.fast_lines == 0
    assert settings.log_path.read_bytes() == expected
    assert line_ids(settings.log_path) == [i.decode() for i in ids]
    well_formed = sum(ok for fields, ok in CORPUS if fields) + 50
    assert fast == well_formed  # the fast path was taken for each of them, and only them
