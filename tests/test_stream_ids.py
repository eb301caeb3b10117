"""emp_tui.stream_ids: the one home of stream-ID parsing and arithmetic."""

from __future__ import annotations

import pytest

from emp_tui.stream_ids import (
    MAX_SEQ,
    next_id,
    order_key,
    parse_id,
    previous_id,
    range_bounds,
    stream_id_ms,
)


@pytest.mark.parametrize(
    ("entry_id", "parsed"),
    [
        ("1732700000123-4", (1732700000123, 4)),
        (b"17-0", (17, 0)),
        ("17", (17, 0)),
        (f"0-{MAX_SEQ}", (0, MAX_SEQ)),
        (None, None),
        ("", None),
        ("junk", None),
        ("17-", None),
        ("-3", None),
        ("17-x", None),
        ("1²-0", None),  # a Unicode digit is not a digit of an ID
        ("١٢-0", None),
        (f"{MAX_SEQ + 1}-0", None),
        ("9" * 5000 + "-0", None),
        ("+17-0", None),
        (" 17-0", None),
    ],
)
def test_parse_id_is_strict_and_never_raises(
    entry_id: str | bytes | None, parsed: tuple[int, int] | None
) -> None:
    assert parse_id(entry_id) == parsed
    assert stream_id_ms(entry_id) == (None if parsed is None else parsed[0])


@pytest.mark.parametrize(
    ("entry_id", "after", "before"),
    [
        ("17-3", "17-4", "17-2"),
        ("17-0", "17-1", f"16-{MAX_SEQ}"),
        (f"17-{MAX_SEQ}", "18-0", f"17-{MAX_SEQ - 1}"),
        ("0-0", "0-1", "0-0"),
        ("17", "17-1", f"16-{MAX_SEQ}"),
    ],
)
def test_successor_and_predecessor(entry_id: str, after: str, before: str) -> None:
    assert next_id(entry_id) == after
    assert previous_id(entry_id) == before
    assert parse_id(previous_id(after)) == parse_id(entry_id)


def test_successor_of_junk_is_an_error() -> None:
    with pytest.raises(ValueError, match="not a stream ID"):
        next_id("junk")
    with pytest.raises(ValueError, match="not a stream ID"):
        previous_id("1²-0")


def test_order_key_falls_back_on_the_timestamp() -> None:
    assert order_key("17-3", 99) == (17, 3)
    assert order_key(None, 99) == (99, 0)
    assert order_key("junk", 99) == (99, 0)
    assert sorted(["10-2", "9-5", "10-10"], key=lambda i: order_key(i, 0)) == [
        "9-5",
        "10-2",
        "10-10",
    ]


def test_range_bounds() -> None:
    assert range_bounds(None, None) == ("-", "+")
    assert range_bounds(5, 9) == ("5-0", f"9-{MAX_SEQ}")
    assert range_bounds(-5, None) == ("0-0", "+")
