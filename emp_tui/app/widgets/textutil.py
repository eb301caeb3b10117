"""Event content is data: turn it into plain, single-line, bounded text for a screen.

Control characters (ESC, CR, backspace, newlines, DEL, C1, bidi overrides) become visible
escapes such as ``\\x1b``; the result goes into ``rich.text.Text`` as plain text, never into
markup, so ``[red]`` stays the five characters it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import orjson
from rich.text import Text

from emp_tui.analysis import format_duration

_NAMED: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\x1b": "\\x1b"}


def _escape_table() -> dict[int, str]:
    table: dict[int, str] = {}
    for code in [*range(0x20), 0x7F, *range(0x80, 0xA0)]:
        char = chr(code)
        table[code] = _NAMED.get(char, f"\\x{code:02x}")
    # Line separators and bidirectional overrides would move or reorder what follows them.
    for code in [0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F]:
        table[code] = f"\\u{code:04x}"
    return table


_ESCAPES: Final = _escape_table()


def one_line(value: str, limit: int = 400) -> str:
    """``value`` with control characters escaped, cut to about ``limit`` characters (with …)."""
    cut = len(value) > limit
    escaped = value[:limit].translate(_ESCAPES)
    if cut or len(escaped) > limit:
        return escaped[: max(limit - 1, 0)] + "…"
    return escaped


def inert(value: str, style: str = "", limit: int = 400) -> Text:
    """A one-line :class:`Text` holding ``value`` as inert data."""
    return Text(one_line(value, limit), style=style, no_wrap=True, overflow="ellipsis", end="")


def _compact(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, bool | int | float):
        return orjson.dumps(value).decode()
    try:
        return orjson.dumps(value, default=str).decode()
    except TypeError:
        return str(value)


# Keys that say most about an event, shown first in a summary.
_FIRST_KEYS: Final = ("error", "message", "status", "reason", "durationMs")


def data_summary(data: Mapping[str, Any], limit: int = 200) -> str:
    """``key=value`` pairs of an event's data on one line, most telling keys first."""
    if not data:
        return ""
    keys = [k for k in _FIRST_KEYS if k in data]
    keys += [k for k in data if k not in _FIRST_KEYS]
    parts: list[str] = []
    length = 0
    for key in keys:
        part = f"{key}={_compact(data[key])[:limit]}"
        parts.append(part)
        length += len(part) + 1
        if length >= limit:
            break
    return one_line(" ".join(parts), limit)


def duration(ms: float) -> str:
    """A short human duration: ``840ms``, ``0.4ms``, ``12.3s``, ``4m05s``, ``2h03m``."""
    return format_duration(ms)


def offset(ms: int) -> str:
    """A time from the start of a job, to the millisecond: ``+1.234s``, ``+2m03.456s``."""
    sign = "+" if ms >= 0 else "-"
    ms = abs(ms)
    if ms < 100_000:
        return f"{sign}{ms / 1000:.3f}s"
    minutes, rest = divmod(ms, 60_000)
    if minutes < 60:
        return f"{sign}{minutes}m{rest / 1000:06.3f}s"
    hours, minutes = divmod(minutes, 60)
    return f"{sign}{hours}h{minutes:02d}m{rest // 1000:02d}s"
