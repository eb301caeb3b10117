"""emp_tui.text: one escaping policy for terminals and files, summaries, durations and times."""

from __future__ import annotations

import unicodedata

import orjson
import pytest

from emp_tui.text import (
    ESCAPES,
    clock,
    data_summary,
    dumps,
    duration,
    escape,
    escape_json,
    inert,
    iso_time,
    offset,
    summary_keys,
)

HOSTILE = "a\x1b[2Jb\x07c\x7fd\x85e\x9bf\u202eg\u2066h\u200bi\ufeffj\u2028k\r\n\tl\x00"
EVERY_UNSAFE = "".join(chr(code) for code in ESCAPES)


def test_the_table_covers_controls_and_invisible_format_characters() -> None:
    for code in (*range(0x20), 0x7F, *range(0x80, 0xA0)):
        assert code in ESCAPES
    for code in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x2028, 0x2029):
        assert code in ESCAPES
    for code in (0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0x061C):
        assert code in ESCAPES
    # Every format character of those blocks is in it, and nothing printable is.
    for code in (*range(0x2000, 0x2070), 0xFEFF):
        if unicodedata.category(chr(code)) in ("Cf", "Zl", "Zp"):
            assert code in ESCAPES, hex(code)
    # escape() relies on this: text that isprintable() accepts has nothing to escape.
    assert all(not chr(code).isprintable() for code in ESCAPES)


def test_escape_shows_every_unsafe_character_and_nothing_else() -> None:
    shown = escape(HOSTILE)
    assert shown == (
        "a\\x1b[2Jb\\x07c\\x7fd\\x85e\\x9bf\\u202eg\\u2066h\\u200bi\\ufeffj\\u2028k\\r\\n\\tl\\x00"
    )
    assert all(char.isprintable() for char in escape(EVERY_UNSAFE))
    ordinary = "job-7 ✖ 50% ワーカー 🧪 é [red]x[/red] \\x1b"
    assert escape(ordinary) is ordinary  # nothing to do: the same object back


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("short", 10, "short"),
        ("exactly10!", 10, "exactly10!"),
        ("eleven char", 10, "eleven ch…"),
        ("a\x1bb", 10, "a\\x1bb"),
        ("ab\x1bcdefgh", 6, "ab\\x1…"),  # the escape counts in the length
        ("anything", 0, "…"),
        ("x" * 10_000, 5, "xxxx…"),
    ],
)
def test_inert_escapes_then_cuts(text: str, limit: int, expected: str) -> None:
    assert inert(text, limit) == expected
    assert len(inert(text, limit)) <= max(limit, 1)


def test_escape_json_is_lossless_and_leaves_nothing_raw() -> None:
    obj = {"text": HOSTILE + EVERY_UNSAFE, HOSTILE: [1, "\u202e"]}
    written = escape_json(orjson.dumps(obj))
    assert orjson.loads(written) == obj
    text = written.decode("utf-8")
    assert all(char.isprintable() for char in text)
    assert "\\u202e" in text and "\\u009b" in text and "\\u007f" in text
    assert dumps(obj) == written


def test_escape_json_leaves_plain_json_alone() -> None:
    plain = orjson.dumps({"a": "ワーカー 🧪", "b": [1.5, None]})
    assert escape_json(plain) == plain
    ascii_only = b'{"a":"b"}'
    assert escape_json(ascii_only) is ascii_only


def test_dumps_writes_what_json_cannot_as_text() -> None:
    class Thing:
        def __str__(self) -> str:
            return "thing\u202e"

    assert orjson.loads(dumps({"x": Thing()})) == {"x": "thing\u202e"}


def test_summary_puts_the_most_telling_keys_first() -> None:
    data = {
        "attempt": 2,
        "startupTimeMs": 31_000,
        "progress": 50,
        "error": "upstream 503",
        "durationMs": 980,
        "claimTimeMs": 12,
        "status": 503,
    }
    assert summary_keys(data) == [
        "error",
        "status",
        "progress",
        "durationMs",
        "startupTimeMs",
        "claimTimeMs",
        "attempt",
    ]
    assert data_summary(data).startswith("error=upstream 503 status=503 progress=50")
    assert data_summary({}) == ""


def test_summary_is_one_escaped_line_of_bounded_length() -> None:
    data = {"note": "line1\nline2\u202e", "nested": {"a": [1, {"b": None}]}, "big": "x" * 5000}
    shown = data_summary(data, limit=60)
    assert shown.startswith('note=line1\\nline2\\u202e nested={"a":[1,{"b":null}]}')
    assert len(shown) == 60 and shown.endswith("…")


@pytest.mark.parametrize(
    ("ms", "expected"),
    [
        (0, "0ms"),
        (0.4, "0.4ms"),
        (7, "7ms"),
        (840, "840ms"),
        (1000, "1s"),
        (1500, "1.5s"),
        (1234, "1.23s"),
        (9000, "9s"),
        (12_340, "12.3s"),
        (245_000, "4m05s"),
        (7_380_000, "2h03m"),
        (-1500, "-1.5s"),
        (None, "-"),
        (float("nan"), "-"),
        (float("inf"), "-"),
    ],
)
def test_duration_has_one_format(ms: float | None, expected: str) -> None:
    assert duration(ms) == expected


@pytest.mark.parametrize(
    ("ms", "expected"),
    [
        (0, "+0.000s"),
        (1234, "+1.234s"),
        (99_999, "+99.999s"),
        (123_456, "+2m03.456s"),
        (3_723_000, "+1h02m03s"),
        (-50, "-0.050s"),
    ],
)
def test_offset_is_to_the_millisecond(ms: int, expected: str) -> None:
    assert offset(ms) == expected


def test_clock_times() -> None:
    assert clock(1_795_773_600_123) == "10:00:00.123"
    assert clock(10**20) == "??:??:??.???"
    assert iso_time(1_795_773_600_123) == "2026-11-27T10:00:00.123+00:00"
    assert iso_time(10**20) == ""
