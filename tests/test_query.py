"""The query language: parsing, matching, time bounds and every error with its position."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from emp_tui.events import TelemetryEvent, trace_id_for_job
from emp_tui.query import QueryError, parse_duration_ms, parse_query, parse_time_ms, quote_value
from emp_tui.stream_ids import MAX_SEQ

NOW = 1_800_000_000_000  # a fixed clock


def ev(**overrides: object) -> TelemetryEvent:
    base: dict[str, object] = dict(
        timestamp=NOW - 1000,
        service="worker",
        event_type="job.claimed",
        trace_id=trace_id_for_job("job_123"),
        span_id="00f067aa0ba902b7",
        job_id="job_123",
        worker_id="w-1",
        machine_id="m-1",
        user_id="u-9",
        level="info",
        data={"queueName": "default", "attempt": 2, "gpu": {"model": "A100"}, "ok": True},
        id=f"{NOW - 1000}-0",
    )
    base.update(overrides)
    return TelemetryEvent(**base)  # type: ignore[arg-type]


EVENT = ev()

# (query, event, expected)
MATCH_CASES: list[tuple[str, TelemetryEvent, bool]] = [
    ("", EVENT, True),
    ("   ", EVENT, True),
    ("service:worker", EVENT, True),
    ("service:WORKER", EVENT, True),
    ("service:api-server", EVENT, False),
    ("service:api-server,worker", EVENT, True),
    ("service:work*", EVENT, True),
    ("-service:worker", EVENT, False),
    ("-service:monitor", EVENT, True),
    ("type:job.*", EVENT, True),
    ("type:job.claim?d", EVENT, True),
    ("type:worker.*", EVENT, False),
    ("type:job.created,job.claimed", EVENT, True),
    ("eventType:job.claimed", EVENT, True),
    ("job:job_123", EVENT, True),
    ("job:job_12", EVENT, False),
    ("job:job_1*", EVENT, True),
    ("job:JOB_123", EVENT, False),  # IDs are case-sensitive
    ("job:job_999", ev(job_id=None), False),
    ("-job:job_999", ev(job_id=None), True),
    ("worker:w-1", EVENT, True),
    ("machine:m-1", EVENT, True),
    ("machine:m-2", EVENT, False),
    ("user:u-9", EVENT, True),
    (f"trace:{trace_id_for_job('job_123')}", EVENT, True),
    (f"trace:{trace_id_for_job('job_123')[:4]}*", EVENT, True),
    ("trace:0000*", EVENT, False),
    ("span:00f0*", EVENT, True),
    (f"id:{NOW - 1000}-0", EVENT, True),
    ("level:info", EVENT, True),
    ("level:error", EVENT, False),
    ("level:warn,info", EVENT, True),
    ("level:>=warn", EVENT, False),
    ("level:>=warn", ev(level="warn"), True),
    ("level:>=warn", ev(level="error"), True),
    ("level:>warn", ev(level="warn"), False),
    ("level:<=info", ev(level="debug"), True),
    ("level:<info", EVENT, False),
    ("level:=info", EVENT, True),
    ("level:warning", ev(level="warn"), True),
    ("-level:debug", EVENT, True),
    ("data.queueName:default", EVENT, True),
    ("data.queueName:def*", EVENT, True),
    ("data.queueName:other", EVENT, False),
    ("data.attempt:2", EVENT, True),
    ("data.ok:true", EVENT, True),
    ("data.gpu.model:A100", EVENT, True),
    ("data.gpu.model:a100", EVENT, False),
    ("data.missing:*", EVENT, False),
    ("data.gpu:*", EVENT, True),
    ("-data.missing:*", EVENT, True),
    ("data.tags:b", ev(data={"tags": ["a", "b"]}), True),
    ("data.a.b:1", ev(data={"a.b": 1}), True),
    ("claimed", EVENT, True),
    ("CLAIMED", EVENT, True),
    ("a100", EVENT, True),  # free text reaches nested data values
    ("default", EVENT, True),
    ("nothere", EVENT, False),
    ('"job.claimed"', EVENT, True),
    ('"queue default"', EVENT, False),
    ('"out of memory"', ev(data={"error": "CUDA out of memory"}), True),
    ('-"out of memory"', ev(data={"error": "CUDA out of memory"}), False),
    ("w-1", EVENT, True),
    ("/job\\.cl.*ed/", EVENT, True),
    ("/^JOB/", EVENT, False),
    ("/^JOB/i", EVENT, True),
    ("-/claimed/", EVENT, False),
    ("/a\\/b/", ev(data={"path": "a/b"}), True),
    ('service:"worker"', EVENT, True),
    ('data.error:"out of memory"', ev(data={"error": "out of memory"}), True),
    ('service:"api server",worker', EVENT, True),
    ("service:worker type:job.* level:info job:job_123", EVENT, True),
    ("service:worker type:job.created", EVENT, False),
    ("since:10m", EVENT, True),
    ("since:10m", ev(id=f"{NOW - 3_600_000}-0", timestamp=NOW - 3_600_000), False),
    ("until:10m", EVENT, False),
    ("until:now", EVENT, True),
    # Time bounds use the stream's time when the event has an ID, else its own timestamp.
    ("since:1m", ev(timestamp=NOW - 3_600_000), True),
    ("since:1m", ev(timestamp=NOW - 3_600_000, id=None), False),
]


@pytest.mark.parametrize(("text", "event", "expected"), MATCH_CASES)
def test_matches(text: str, event: TelemetryEvent, expected: bool) -> None:
    assert parse_query(text, now_ms=NOW).matches(event) is expected


# (query, message fragment, position, token)
ERROR_CASES: list[tuple[str, str, int, str]] = [
    ("service:", "needs a value", 0, "service:"),
    ("type:job.* bogus:1", "unknown field 'bogus'", 11, "bogus"),
    ("http://x", "unknown field 'http'", 0, "http"),
    ("level:loud", "unknown level", 6, "loud"),
    ("level:>=loud", "unknown level", 8, "loud"),
    ("level:info,,warn", "empty value", 11, "info,,warn"),
    ("service:a,", "empty value", 10, "a,"),
    ("since:yesterday", "bad time for since:", 6, "yesterday"),
    ("until:10", "bad time for until:", 6, "10"),
    ("-since:10m", "cannot be negated", 0, "-since:10m"),
    ("since:1h until:2h", "since: is later than until:", 0, "since:1h"),
    ('"unterminated', "unterminated quote", 0, '"unterminated'),
    ('service:worker "open', "unterminated quote", 15, '"open'),
    ("/abc", "unterminated /regex/", 0, "/abc"),
    ("/a(b/", "bad regex", 0, "/a(b/"),
    ("/abc/x", "unknown regex flag", 5, "x"),
    ("/abc/foo", "unknown regex flag", 5, "f"),
    ("//", "empty /regex/", 0, "//"),
    ("-", "'-' must be followed by a term", 0, "-"),
    ("x -", "'-' must be followed by a term", 2, "-"),
    ("data.:x", "unknown field", 0, "data."),
    ("data.a..b:x", "empty key in data path", 0, "data.a..b"),
    ('ab"cd"', "a quote must enclose a whole value", 2, 'ab"cd"'),
    ("/a/:x", "expected a space after /regex/", 3, ":x"),
]


@pytest.mark.parametrize(("text", "fragment", "position", "token"), ERROR_CASES)
def test_errors_name_token_and_position(
    text: str, fragment: str, position: int, token: str
) -> None:
    with pytest.raises(QueryError) as info:
        parse_query(text, now_ms=NOW)
    error = info.value
    assert fragment in error.message
    assert (error.position, error.token) == (position, token)
    line = str(error)
    assert "\n" not in line
    assert f"position {position}" in line and repr(token) in line
    # The caret sits under the token.
    query_line, caret_line = error.caret(text).split("\n")
    assert query_line == text
    assert caret_line.index("^") == position
    assert len(caret_line) == position + max(1, len(token))


def test_query_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_query("level:nope")


def test_relative_and_absolute_times_resolve_to_epoch_ms() -> None:
    q = parse_query("since:10m until:1m", now_ms=NOW)
    assert (q.since_ms, q.until_ms) == (NOW - 600_000, NOW - 60_000)
    assert q.stream_range() == (f"{NOW - 600_000}-0", f"{NOW - 60_000}-{MAX_SEQ}")
    q = parse_query("since:2026-11-27T10:00 until:2026-11-27T10:00:30Z", now_ms=NOW)
    ten = int(datetime(2026, 11, 27, 10, 0, tzinfo=UTC).timestamp() * 1000)
    assert (q.since_ms, q.until_ms) == (ten, ten + 30_000)
    q = parse_query("since:2026-11-27T12:00+02:00", now_ms=NOW)
    assert q.since_ms == ten
    q = parse_query("since:1732700000000", now_ms=NOW)
    assert q.since_ms == 1732700000000


def test_several_bounds_narrow_the_range() -> None:
    q = parse_query("since:2h since:1h until:5m until:10m", now_ms=NOW)
    assert (q.since_ms, q.until_ms) == (NOW - 3_600_000, NOW - 600_000)


def test_no_bounds_give_the_whole_stream() -> None:
    q = parse_query("service:worker", now_ms=NOW)
    assert (q.since_ms, q.until_ms) == (None, None)
    assert q.stream_range() == ("-", "+")


@pytest.mark.parametrize(
    ("text", "ms"),
    [("10m", 600_000), ("2h", 7_200_000), ("1d", 86_400_000), ("1h30m", 5_400_000),
     ("500ms", 500), ("1.5s", 1500), ("2w", 1_209_600_000), ("", None), ("10", None),
     ("m", None), ("10x", None)],
)  # fmt: skip
def test_durations(text: str, ms: int | None) -> None:
    assert parse_duration_ms(text) == ms


def test_time_words() -> None:
    assert parse_time_ms("now", NOW) == NOW
    assert parse_time_ms("not a time", NOW) is None


def test_is_empty_and_job_ids() -> None:
    assert parse_query("").is_empty
    assert parse_query("  \t").is_empty
    assert not parse_query("worker").is_empty
    q = parse_query("job:job_1 service:worker -job:job_2 job:job_3*")
    assert q.job_ids == frozenset({"job_1"})
    assert parse_query("job:a,b").job_ids == frozenset()


def test_required_literals_cover_exact_positive_ids_only() -> None:
    q = parse_query("job:job_1 worker:w-1,w-2 -machine:m-1 service:worker job:x* user:u/1")
    assert set(q.required_literals()) == {frozenset({"job_1"}), frozenset({"w-1", "w-2"})}
    # Values JSON might spell differently (escapes, numbers) are never offered.
    assert parse_query('job:"a\\"b"').required_literals() == ()
    assert parse_query("job:1000").required_literals() == ()
    assert parse_query("job:jöb").required_literals() == ()
    assert parse_query("job:a<b").required_literals() == ()  # Go writes < as \\u003c
    assert parse_query("job:1e3").required_literals() == ()
    assert parse_query("job:f47ac10b-58cc-4372-a567-0e02b2c3d479").required_literals()


def test_negated_job_term_matches_events_without_job() -> None:
    q = parse_query("-job:job_123")
    assert not q.matches(EVENT)
    assert q.matches(ev(job_id="job_456"))


def test_malformed_events_are_searchable() -> None:
    broken = TelemetryEvent.from_json_line(b'{"service": "worker", "data": "not json"}')
    assert broken.malformed
    assert parse_query("service:worker").matches(broken)
    assert parse_query('"not json"').matches(broken)


@pytest.mark.parametrize(
    "value",
    ["plain", "two words", 'say "hi"', "a,b", "back\\slash", "tab\there", "new\nline", "é ü"],
)
def test_a_quoted_value_reads_back_whole(value: str) -> None:
    quoted = quote_value(value)
    # quoted only when it must be
    assert (quoted == value) == (value in ("plain", "back\\slash"))
    event = ev(data={"error": value})
    assert parse_query(f"data.error:{quoted}").matches(event)
    assert not parse_query(f"data.error:{quoted}").matches(ev(data={"error": value + "x"}))


# -- numbers ----------------------------------------------------------------------------------


def data(**values: object) -> TelemetryEvent:
    return ev(data=values)


# (query, event, expected): comparisons on data fields and on the durations events carry.
NUMBER_CASES: list[tuple[str, TelemetryEvent, bool]] = [
    ("data.claimTimeMs:>10000", data(claimTimeMs=12_000), True),
    ("data.claimTimeMs:>10000", data(claimTimeMs=10_000), False),
    ("data.claimTimeMs:>=10000", data(claimTimeMs=10_000), True),
    ("data.progress:<50", data(progress=49.5), True),
    ("data.progress:<50", data(progress=50), False),
    ("data.progress:<=50", data(progress=50), True),
    ("data.progress:=100", data(progress=100), True),
    ("data.progress:=100", data(progress=100.0), True),
    ("data.progress:=100", data(progress="100"), True),
    ("data.progress:=100", data(progress=99), False),
    ("data.progress:100", data(progress=100.0), False),  # without '=' the text is matched
    # Numbers sent as strings compare as numbers; anything else never matches a comparison.
    ("data.claimTimeMs:>10000", data(claimTimeMs="12000"), True),
    ("data.claimTimeMs:>10000", data(claimTimeMs="9999.5"), False),
    ("data.claimTimeMs:>10", data(claimTimeMs="12 s"), False),
    ("data.claimTimeMs:>10", data(claimTimeMs="fast"), False),
    ("data.claimTimeMs:>10", data(claimTimeMs=None), False),
    ("data.claimTimeMs:>10", data(claimTimeMs={"ms": 20}), False),
    ("data.claimTimeMs:>10", data(), False),
    ("data.ok:>0", data(ok=True), False),  # a boolean is not a number
    ("data.ok:=1", data(ok=True), False),
    ("data.x:<5", data(x=float("nan")), False),
    ("data.x:=1000", data(x="1e3"), True),
    ("data.delta:<-5", data(delta=-10), True),
    ("data.delta:<-5", data(delta="-4"), False),
    ("data.score:>0.5", data(score=0.75), True),
    ("data.gpu.memoryGb:>=40", data(gpu={"memoryGb": 80}), True),
    ("data.sizes:>10", data(sizes=[1, 20]), True),  # a list matches when one item does
    ("data.sizes:>10", data(sizes=[1, 2]), False),
    # Integers compare exactly, beyond what a float holds.
    ("data.n:>9007199254740992", data(n=9_007_199_254_740_993), True),
    ("data.n:>9007199254740992", data(n="9007199254740993"), True),
    # Alternatives: either comparison, or a comparison or a text value.
    ("data.progress:<10,>90", data(progress=5), True),
    ("data.progress:<10,>90", data(progress=95), True),
    ("data.progress:<10,>90", data(progress=50), False),
    ("data.status:>5,done", data(status="done"), True),
    ("data.status:>5,done", data(status=7), True),
    ("data.status:>5,done", data(status=3), False),
    ('data.status:">5"', data(status=">5"), True),  # quoted: text, not a comparison
    ('data.status:">5"', data(status=7), False),
    # Units on fields in milliseconds (*Ms, *_ms) and seconds (*Seconds, *_seconds).
    ("data.durationMs:>2s", data(durationMs=2_500), True),
    ("data.durationMs:>2s", data(durationMs=1_500), False),
    ("data.waitMs:<=1m30s", data(waitMs=90_000), True),
    ("data.waitMs:<=1m30s", data(waitMs=90_001), False),
    ("data.durationMs:<1.5ms", data(durationMs=1.2), True),
    ("data.wait_ms:>1s", data(wait_ms=1_001), True),
    ("data.timeoutSeconds:>1m", data(timeoutSeconds=90), True),
    ("data.timeoutSeconds:>1m", data(timeoutSeconds=30), False),
    ("data.timeout_seconds:<=500ms", data(timeout_seconds=0.5), True),
    # Negation: not (present, a number and > 5).
    ("-data.x:>5", data(x=3), True),
    ("-data.x:>5", data(x=10), False),
    ("-data.x:>5", data(), True),
    ("-data.x:>5", data(x="many"), True),
    # duration: any durationMs or *TimeMs in data, in milliseconds.
    ("duration:>30s", data(startupTimeMs=45_000), True),
    ("duration:>30s", data(claimTimeMs=1_000), False),
    ("duration:>30s", data(claimTimeMs=1_000, processingTimeMs=31_000), True),
    ("duration:>30s", data(durationMs="31000"), True),
    ("duration:>30000", data(durationMs=30_001), True),
    ("duration:>30s", data(gapMs=60_000), False),  # not a duration field
    ("duration:>30s", data(durationMs="slow"), False),
    ("duration:>30s", data(), False),
    ("duration:<1s,>1m", data(durationMs=500), True),
    ("duration:<1s,>1m", data(durationMs=5_000), False),
    ("duration:*", data(processingTimeMs=5), True),
    ("duration:*", data(processingTimeMs="n/a"), False),
    ("duration:*", data(attempt=2), False),
    ("-duration:>30s", data(), True),
    ("-duration:>30s", data(durationMs=40_000), False),
    ("type:job.claimed duration:>10s", data(claimTimeMs=12_000), True),
]


@pytest.mark.parametrize(("text", "event", "expected"), NUMBER_CASES)
def test_number_comparisons(text: str, event: TelemetryEvent, expected: bool) -> None:
    assert parse_query(text, now_ms=NOW).matches(event) is expected


def test_numbers_read_from_the_wire_compare_as_numbers() -> None:
    line = b'{"timestamp": 1, "service": "worker", "eventType": "job.claimed", "data": '
    sent_as_text = TelemetryEvent.from_json_line(line + b'{"claimTimeMs": "12000"}}')
    sent_as_number = TelemetryEvent.from_json_line(line + b'{"claimTimeMs": 12000}}')
    query = parse_query("data.claimTimeMs:>10s")
    assert query.matches(sent_as_text) and query.matches(sent_as_number)
    assert not parse_query("data.claimTimeMs:>12s").matches(sent_as_text)


NUMBER_ERROR_CASES: list[tuple[str, str, int, str]] = [
    ("data.x:>", "'>' needs a number", 7, ">"),
    ("data.x:<10,>=", "'>=' needs a number", 11, ">="),
    ("data.progress:>abc", "'>' compares numbers: expected a number ", 15, "abc"),
    ("data.durationMs:>2parsecs", "expected a number or a duration", 17, "2parsecs"),
    ("data.x:=foo", "quote a value", 8, "foo"),
    ("data.gpuCount:>2s", "'gpuCount' is not a duration field", 15, "2s"),
    ("service:worker data.progress:<10,>1m", "'progress' is not a duration field", 34, "1m"),
    ("duration:30s", "duration: takes a comparison", 9, "30s"),
    ("duration:>30s,long", "duration: takes a comparison", 14, "long"),
    ('duration:">1s"', "duration: takes a comparison", 9, ">1s"),
    ("duration:>fast", "expected a number or a duration", 10, "fast"),
    ("duration:>", "'>' needs a number", 9, ">"),
    ("duration:", "needs a value", 0, "duration:"),
]


@pytest.mark.parametrize(("text", "fragment", "position", "token"), NUMBER_ERROR_CASES)
def test_number_errors_name_token_and_position(
    text: str, fragment: str, position: int, token: str
) -> None:
    with pytest.raises(QueryError) as info:
        parse_query(text, now_ms=NOW)
    error = info.value
    assert fragment in error.message
    assert (error.position, error.token) == (position, token)
    assert "\n" not in str(error)
    assert error.caret(text).split("\n")[1] == " " * position + "^" + "~" * (len(token) - 1)


def test_level_comparisons_still_rank_levels() -> None:
    levels = ["debug", "info", "warn", "error"]
    for op, expected in [(">", ["error"]), (">=", ["warn", "error"]), ("<", ["debug", "info"]),
                         ("<=", ["debug", "info", "warn"]), ("=", ["warn"])]:  # fmt: skip
        query = parse_query(f"level:{op}warn")
        assert [lv for lv in levels if query.matches(ev(level=lv))] == expected


@pytest.mark.parametrize(
    ("text", "now", "expected"),
    [
        ("16:42", "2026-11-30T16:45:00", "2026-11-30T16:42:00"),
        ("16:42:05.25", "2026-11-30T16:45:00", "2026-11-30T16:42:05.250"),
        ("7:05", "2026-11-30T16:45:00", "2026-11-30T07:05:00"),
        ("17:30", "2026-11-30T16:45:00", "2026-11-30T17:30:00"),  # under an hour ahead
        ("18:00", "2026-11-30T16:45:00", "2026-11-29T18:00:00"),  # else the day before
        ("23:00", "2026-12-01T01:00:00", "2026-11-30T23:00:00"),  # last night
        ("00:00", "2026-11-30T00:00:00", "2026-11-30T00:00:00"),
    ],
)
def test_a_time_of_day_is_the_latest_one_in_utc(text: str, now: str, expected: str) -> None:
    def ms(iso: str) -> int:
        return int(datetime.fromisoformat(iso + "+00:00").timestamp() * 1000)

    assert parse_time_ms(text, ms(now)) == ms(expected)
    query = parse_query(f"since:{text}", now_ms=ms(now))
    assert query.since_ms == ms(expected)


@pytest.mark.parametrize(
    "text",
    ["24:00", "16:60", "16:42:61", "1642", "16:4", "16:42:05.1234", "\u0661\u0666:\u0664\u0662"],
)
def test_what_is_not_a_time_of_day_is_refused_by_name(text: str) -> None:
    assert parse_time_ms(text, 1_796_000_000_000) is None
    with pytest.raises(QueryError, match=r"bad time for until:.*16:42"):
        parse_query(f"until:{text}", now_ms=1_796_000_000_000)
