"""Event content as text for people and files: escaping, one-line summaries, durations, offsets
and clock times. One policy for the CLI, the app and the exports. No Textual, no Rich, no I/O.

Event text is data. Before it reaches a terminal or a file, every character that a terminal
would obey or that would hide or reorder what follows is replaced by a visible escape:

* C0 controls, DEL and C1 controls: ``\\n`` ``\\r`` ``\\t`` ``\\b``, else ``\\x1b``, ``\\x7f``,
  ``\\x9b`` ...
* bidirectional and other invisible format characters (the overrides U+202A-202E, the isolates
  U+2066-2069, the marks U+200E/F and U+061C, the line and paragraph separators U+2028/9, the
  zero-width characters U+200B-200D and U+2060-2064, the byte order mark U+FEFF, ...):
  ``\\u202e`` and so on.

Text output uses :func:`escape` (or :func:`inert`, which also cuts to a length); JSON output
uses :func:`escape_json`, which writes the same characters as JSON ``\\uXXXX`` escapes, so a
JSON reader gets back exactly what was sent.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from emp_tui.events import json_bytes

# -- escaping ---------------------------------------------------------------------------------

_NAMED: Final = {0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t", 0x08: "\\b"}
_CONTROLS: Final = (*range(0x20), 0x7F, *range(0x80, 0xA0))
# Invisible characters that reorder, join, hide or break what follows them.
_FORMATS: Final = (
    0x061C,  # Arabic letter mark
    0x180E,  # Mongolian vowel separator
    *range(0x200B, 0x2010),  # zero-width space/non-joiner/joiner, LRM, RLM
    0x2028,  # line separator
    0x2029,  # paragraph separator
    *range(0x202A, 0x202F),  # bidi embeddings and overrides, PDF
    *range(0x2060, 0x2065),  # word joiner, invisible operators
    *range(0x2066, 0x2070),  # bidi isolates, deprecated format characters
    0xFEFF,  # byte order mark, zero-width no-break space
    *range(0xFFF9, 0xFFFC),  # interlinear annotation
)

ESCAPES: Final[dict[int, str]] = {
    **{code: _NAMED.get(code, f"\\x{code:02x}") for code in _CONTROLS},
    **{code: f"\\u{code:04x}" for code in _FORMATS},
}
"""The one table: code point -> the visible text shown in its place."""


def escape(text: str) -> str:
    """``text`` with every character of :data:`ESCAPES` replaced by its visible escape."""
    # Every character of the table is one isprintable() refuses: most text is done at C speed.
    if text.isprintable():
        return text
    return text.translate(ESCAPES)


def inert(text: str, limit: int | None = None) -> str:
    """``text`` escaped, on one line, and cut to ``limit`` characters (ending in ``…``) when
    a limit is given."""
    if limit is None:
        return escape(text)
    limit = max(limit, 0)
    escaped = escape(text[: limit + 1])
    if len(escaped) > limit:
        return escaped[: max(limit - 1, 0)] + "…"
    return escaped


# In JSON, orjson already writes C0 controls as escapes; these it writes raw, as UTF-8.
_JSON_ESCAPES: Final[dict[bytes, bytes]] = {
    chr(code).encode(): f"\\u{code:04x}".encode() for code in ESCAPES if code >= 0x20
}
_JSON_UNSAFE: Final = re.compile(b"|".join(re.escape(raw) for raw in _JSON_ESCAPES))
_JSON_LEADS: Final = bytes(sorted({raw[0] for raw in _JSON_ESCAPES}))
"""The first bytes of those characters: where none occurs (nearly always: they are DEL and
the lead bytes of C1 and of a few punctuation blocks), there is nothing to escape."""


def escape_json(data: bytes) -> bytes:
    """JSON text (UTF-8, as orjson writes it) with DEL, C1 and the format characters of
    :data:`ESCAPES` written as ``\\uXXXX``: the same JSON to a reader, inert on a terminal.
    Such characters can only stand inside JSON strings, so the replacement is exact."""
    if data.isascii():
        if b"\x7f" not in data:
            return data
    elif len(data.translate(None, _JSON_LEADS)) == len(data):
        return data
    return _JSON_UNSAFE.sub(lambda match: _JSON_ESCAPES[match.group()], data)


def dumps(obj: Any, *, option: int = 0) -> bytes:
    """``obj`` as JSON (:func:`~emp_tui.events.json_bytes`: never raises; anything JSON cannot
    hold becomes a string), escaped with :func:`escape_json`."""
    return escape_json(json_bytes(obj, option=option))


# -- summaries --------------------------------------------------------------------------------

FIRST_KEYS: Final = ("error", "message", "status", "reason", "progress", "durationMs")
"""The data keys that tell most about an event, shown first in a summary (then the other
durations, ``*TimeMs``, then the rest in their own order)."""


def _compact(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value, default=str).decode()
    except (TypeError, orjson.JSONEncodeError):
        return str(value)


def _is_ms(key: object, value: object) -> bool:
    return (
        isinstance(key, str)
        and key.endswith("Ms")
        and isinstance(value, int | float)
        and not isinstance(value, bool)
    )


def summary_keys(data: Mapping[str, Any]) -> list[str]:
    """The keys of ``data`` in the order a summary shows them."""
    first = [key for key in FIRST_KEYS if key in data]
    timed = [
        key
        for key in data
        if isinstance(key, str) and key.endswith("TimeMs") and key not in FIRST_KEYS
    ]
    shown = {*first, *timed}
    return first + timed + [key for key in data if key not in shown]


def data_summary(data: Mapping[str, Any], limit: int = 200, *, readable: bool = False) -> str:
    """``key=value`` pairs of an event's data on one line, most telling first, escaped and cut
    to ``limit`` characters. ``readable``: milliseconds (``durationMs``, ``*TimeMs``) as a
    duration, ``claimTimeMs=12.3s`` (for the eye; scripts get the number)."""
    if not data:
        return ""
    parts: list[str] = []
    length = 0
    for key in summary_keys(data):
        value = data[key]
        if readable and _is_ms(key, value):
            part = f"{key}={duration(value)}"
        else:
            part = f"{key}={_compact(value)[:limit]}"
        parts.append(part)
        length += len(part) + 1
        if length > limit:
            break
    return inert(" ".join(parts), limit)


# -- times ------------------------------------------------------------------------------------


def plural(count: int, one: str, many: str | None = None) -> str:
    """``1 edge``, ``2 edges``, ``1,204 handoffs`` (``many`` for an irregular plural)."""
    return f"{count:,} {one if count == 1 else (many or one + 's')}"


def duration(ms: float | None) -> str:
    """A short duration: ``0.4ms``, ``840ms``, ``1.5s``, ``12.3s``, ``4m05s``, ``2h03m``
    (``-`` for None)."""
    if ms is None or not math.isfinite(ms):
        return "-"
    if ms < 0:
        return "-" + duration(-ms)
    if ms < 10:
        return f"{ms:.1f}ms" if ms != int(ms) else f"{int(ms)}ms"
    if ms < 1000:
        return f"{ms:.0f}ms"
    seconds = ms / 1000
    if seconds < 60:
        text = f"{seconds:.1f}" if seconds >= 10 else f"{seconds:.2f}"
        return text.rstrip("0").rstrip(".") + "s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def offset(ms: int) -> str:
    """A time from the start of a job, to the millisecond: ``+1.234s``, ``+2m03.456s``,
    ``+1h02m03s``."""
    sign = "+" if ms >= 0 else "-"
    ms = abs(ms)
    if ms < 100_000:
        return f"{sign}{ms / 1000:.3f}s"
    minutes, rest = divmod(ms, 60_000)
    if minutes < 60:
        return f"{sign}{minutes}m{rest / 1000:06.3f}s"
    hours, minutes = divmod(minutes, 60)
    return f"{sign}{hours}h{minutes:02d}m{rest // 1000:02d}s"


def clock(ms: int) -> str:
    """``HH:MM:SS.mmm`` in UTC (``??:??:??.???`` for a time no calendar holds)."""
    try:
        moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return "??:??:??.???"
    return moment.strftime("%H:%M:%S.") + f"{ms % 1000:03d}"


def moment(ms: int, now_ms: int, *, day_only: bool = False) -> str:
    """A moment beside "now", in UTC as the app's rows are: ``06:04:19`` on the day of
    ``now_ms``, else ``Nov 28 06:04`` (``Nov 28`` with ``day_only``)."""
    try:
        when = datetime.fromtimestamp(ms / 1000, tz=UTC)
        today = datetime.fromtimestamp(now_ms / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return "??:??:??"
    if when.date() == today.date():
        return when.strftime("%H:%M:%S")
    return when.strftime("%b %d" if day_only else "%b %d %H:%M")


def local_time(ms: int) -> str:
    """``YYYY-MM-DD HH:MM:SS.mmm`` in the local time zone (the CLI's human output)."""
    try:
        moment = time.localtime(ms / 1000)
    except (OverflowError, OSError, ValueError):
        return "????-??-?? ??:??:??.???"
    return time.strftime("%Y-%m-%d %H:%M:%S", moment) + f".{ms % 1000:03d}"


def iso_time(ms: int) -> str:
    """ISO 8601 in UTC to the millisecond, ``""`` for a time no calendar holds."""
    try:
        return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
    except (OverflowError, OSError, ValueError):
        return ""
