"""Turning event content into inert Rich text: control characters made visible, long values
cut, a stable colour per service. Event text is data: it only ever reaches the screen through
``rich.text.Text`` built from plain strings, never through a markup string."""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from rich.style import Style
from rich.text import Text

from emp_tui.events import TelemetryEvent


def _control_table() -> dict[int, str]:
    table: dict[int, str] = {}
    for code in range(0x20):
        table[code] = chr(0x2400 + code)  # the Unicode "control pictures": \u241b for ESC
    table[0x7F] = "\u2421"  # ␡
    for code in range(0x80, 0xA0):
        table[code] = "\ufffd"
    # Format characters that reorder or hide text (bidi overrides, zero-width joiners, BOM).
    for code in (*range(0x200B, 0x2010), *range(0x202A, 0x202F), *range(0x2060, 0x2070), 0xFEFF):
        if unicodedata.category(chr(code)) == "Cf":
            table[code] = "\ufffd"
    return table


_CONTROL: Final = _control_table()
_LINE_CONTROL: Final = {**_CONTROL, 0x0A: "\u2424", 0x09: " "}  # newline shown as ␤ in a row


def inert(text: str, limit: int | None = None) -> str:
    """``text`` with every control/format character replaced by a visible stand-in, and cut
    to ``limit`` characters (with an ellipsis) when given."""
    if limit is not None and len(text) > limit:
        text = text[: max(limit - 1, 0)] + "…"
    return text.translate(_LINE_CONTROL)


def inert_block(text: str) -> str:
    """Like :func:`inert` but keeps newlines and tabs (for multi-line JSON)."""
    table = dict(_CONTROL)
    table.pop(0x0A)
    table[0x09] = "    "
    return text.translate(table)


# -- colours ------------------------------------------------------------------------------

_KNOWN_SERVICE_COLOURS: Final = {
    "api-server": "#5fafff",
    "worker": "#87d75f",
    "machine": "#d7af5f",
    "webhook-service": "#d787d7",
    "monitor": "#5fd7d7",
}
_PALETTE: Final = (
    "#ff875f",
    "#afafff",
    "#5fd787",
    "#ffd75f",
    "#ff87af",
    "#87afd7",
    "#d7d787",
    "#af87ff",
)
LEVEL_STYLES: Final[dict[str, Style]] = {
    "debug": Style(color="grey50"),
    "info": Style(color="#5f87d7"),
    "warn": Style(color="#ffaf00", bold=True),
    "error": Style(color="#ff5f5f", bold=True),
}
LEVEL_MARKS: Final = {"debug": "·", "info": "●", "warn": "▲", "error": "✖"}


def service_colour(service: str) -> str:
    """The same colour for a service in every run (known services get fixed ones)."""
    known = _KNOWN_SERVICE_COLOURS.get(service)
    if known is not None:
        return known
    digest = hashlib.md5(service.encode(), usedforsecurity=False).digest()
    return _PALETTE[digest[0] % len(_PALETTE)]


def service_style(service: str) -> Style:
    return Style(color=service_colour(service))


# -- rows ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowLayout:
    """Column widths of a stream row for a pane ``width`` cells wide. The worker and machine
    columns appear when there is room; the data summary takes what is left."""

    width: int
    time_w: int = 12
    service_w: int = 15
    type_w: int = 28
    job_w: int = 14
    worker_w: int = 0
    machine_w: int = 0

    @classmethod
    def for_width(cls, width: int) -> RowLayout:
        if width >= 120:
            return cls(width, job_w=16, worker_w=12, machine_w=12)
        if width >= 100:
            return cls(width, service_w=12, type_w=26, job_w=12, worker_w=10, machine_w=10)
        return cls(width, service_w=12, type_w=24, job_w=12)

    @property
    def job_start(self) -> int:
        return self.time_w + 1 + self.service_w + 1 + 2 + self.type_w + 1


def clock_text(ms: int) -> str:
    """HH:MM:SS.mmm in UTC."""
    try:
        moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return "??:??:??.???"
    return moment.strftime("%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, bool | int | float):
        return orjson.dumps(value).decode()
    return orjson.dumps(value, default=str).decode()


def data_summary(data: Mapping[str, Any], limit: int = 120) -> str:
    """``key=value`` pairs of an event's data, short, on one line."""
    parts: list[str] = []
    used = 0
    for key, value in data.items():
        part = f"{key}={_scalar(value)}"
        if len(part) > 48:
            part = part[:47] + "…"
        parts.append(part)
        used += len(part) + 1
        if used >= limit:
            break
    return inert(" ".join(parts), limit)


def _cell(text: str | None, width: int) -> str:
    if not text:
        return "-".ljust(width)
    text = inert(text, width)
    return text.ljust(width)


def event_row(event: TelemetryEvent, layout: RowLayout) -> Text:
    """One line of the stream: time, service, level, type, job/worker/machine, data."""
    row = Text(no_wrap=True, end="")
    row.append(clock_text(event.timestamp), "grey62")
    row.append(" ")
    row.append(_cell(event.service, layout.service_w), service_style(event.service))
    row.append(" ")
    level_style = LEVEL_STYLES.get(event.level, Style(color="magenta"))
    row.append(LEVEL_MARKS.get(event.level, "?"), level_style)
    row.append(" ")
    type_style = level_style if event.level in ("warn", "error") else Style(bold=True)
    row.append(_cell(event.event_type, layout.type_w), type_style)
    row.append(" ")
    job_style = Style(color="#87d7ff", underline=bool(event.job_id))
    row.append(_cell(event.job_id, layout.job_w), job_style)
    row.append(" ")
    if layout.worker_w:
        row.append(_cell(event.worker_id, layout.worker_w), "grey70")
        row.append(" ")
    if layout.machine_w:
        row.append(_cell(event.machine_id, layout.machine_w), "grey70")
        row.append(" ")
    room = max(layout.width - row.cell_len, 8)
    if event.malformed:
        row.append("⚠ malformed: ", Style(color="#ffaf00", bold=True))
        row.append(inert(event.malformed, 60), Style(color="#ffaf00"))
        row.append(" ")
    row.append(data_summary(event.data, room), "grey78")
    row.truncate(layout.width)
    return row


def event_json(event: TelemetryEvent) -> str:
    """The event's full JSON, indented, with nothing in it that a terminal would act on."""
    dumped = orjson.dumps(event.to_dict(), option=orjson.OPT_INDENT_2, default=str).decode()
    return inert_block(dumped)
