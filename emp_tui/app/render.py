"""Event content as inert Rich text for the app's widgets: stream rows, the detail pane's JSON,
and :func:`inert_text` for any value shown in a widget. The escaping, summaries and times come
from :mod:`emp_tui.text`, the colours from :mod:`emp_tui.app.style`. Event text only ever
reaches the screen through ``rich.text.Text`` built from plain strings, never through markup."""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from rich.style import Style
from rich.text import Text

from emp_tui.app.style import JOB_COLOR, MUTED_COLOR, NOTICE_COLOR, level_mark, service_color
from emp_tui.events import TelemetryEvent
from emp_tui.text import clock, data_summary, dumps, inert


def inert_text(value: str, style: str | Style = "", limit: int = 400) -> Text:
    """A one-line :class:`Text` holding ``value`` as inert data, cut to ``limit``."""
    return Text(inert(value, limit), style=style, no_wrap=True, overflow="ellipsis", end="")


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


def _cell(text: str | None, width: int) -> str:
    if not text:
        return "-".ljust(width)
    return inert(text, width).ljust(width)


def event_row(event: TelemetryEvent, layout: RowLayout) -> Text:
    """One line of the stream: time, service, level, type, job/worker/machine, data."""
    row = Text(no_wrap=True, end="")
    row.append(clock(event.timestamp), MUTED_COLOR)
    row.append(" ")
    row.append(_cell(event.service, layout.service_w), service_color(event.service))
    row.append(" ")
    mark, mark_style = level_mark(event.level)
    row.append(mark, mark_style)
    row.append(" ")
    type_style = mark_style if event.level in ("warn", "error") else "bold"
    row.append(_cell(event.event_type, layout.type_w), type_style)
    row.append(" ")
    job_style = Style(color=JOB_COLOR, underline=bool(event.job_id))
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
        row.append("⚠ malformed: ", f"bold {NOTICE_COLOR}")
        row.append(inert(event.malformed, 60), NOTICE_COLOR)
        row.append(" ")
    row.append(data_summary(event.data, room), "grey78")
    row.truncate(layout.width)
    return row


def event_json(event: TelemetryEvent) -> str:
    """The event's full JSON, indented; every character a terminal would act on is a JSON
    escape (the text is still valid JSON, and means the same)."""
    return dumps(event.to_dict(), option=orjson.OPT_INDENT_2).decode()
