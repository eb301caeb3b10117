"""Event content as inert Rich text for the app's widgets: stream rows, the detail pane's JSON,
and :func:`inert_text` for any value shown in a widget. The escaping, summaries and times come
from :mod:`emp_tui.text`, the colours from :mod:`emp_tui.app.style`. Event text only ever
reaches the screen through ``rich.text.Text`` built from plain strings, never through markup."""

from __future__ import annotations

from dataclasses import dataclass, replace

import orjson
from rich.style import Style
from rich.text import Text

from emp_tui.app.style import (
    JOB_COLOR,
    MUTED_COLOR,
    NOTICE_COLOR,
    WARN_COLOR,
    level_mark,
    service_color,
)
from emp_tui.events import TelemetryEvent
from emp_tui.text import clock, data_summary, dumps, inert


def inert_text(value: str, style: str | Style = "", limit: int = 400) -> Text:
    """A one-line :class:`Text` holding ``value`` as inert data, cut to ``limit``."""
    return Text(inert(value, limit), style=style, no_wrap=True, overflow="ellipsis", end="")


MIN_DATA: int = 28
"""The data column's room below which the worker and machine columns give theirs (their IDs
are in the detail pane, and in the event's JSON)."""


@dataclass(frozen=True)
class Seen:
    """The widest service, type, job, worker and machine of the rows shown so far: the
    columns take no more than that, and the data column the rest."""

    service: int = 1
    type: int = 1
    job: int = 1
    worker: int = 1
    machine: int = 1

    def grown(self, event: TelemetryEvent) -> Seen | None:
        """These widths widened by ``event``'s values (None when it fits them)."""
        widths = (
            max(self.service, len(event.service or "")),
            max(self.type, len(event.event_type or "")),
            max(self.job, len(event.job_id or "")),
            max(self.worker, len(event.worker_id or "")),
            max(self.machine, len(event.machine_id or "")),
        )
        if widths == (self.service, self.type, self.job, self.worker, self.machine):
            return None
        return Seen(*widths)


@dataclass(frozen=True)
class RowLayout:
    """Column widths of a stream row for a pane ``width`` cells wide. Each column takes what
    its values need (see :class:`Seen`), up to a cap that depends on the width; the worker and
    machine columns appear when there is room; the data column takes what is left."""

    width: int
    time_w: int = 12
    service_w: int = 15
    type_w: int = 28
    job_w: int = 14
    worker_w: int = 0
    machine_w: int = 0

    @classmethod
    def for_width(cls, width: int, seen: Seen | None = None) -> RowLayout:
        seen = seen or Seen(99, 99, 99, 99, 99)
        layout = cls(
            width,
            service_w=min(15, max(seen.service, 7)),
            type_w=min(30, max(seen.type, 10)),
            job_w=min(16, seen.job),
            worker_w=min(12, seen.worker),
            machine_w=min(12, seen.machine),
        )
        # Too little room for the data: the columns give theirs, the least telling first.
        for step in (
            {"machine_w": 0},
            {"worker_w": 0},
            {"service_w": min(layout.service_w, 12)},
            {"type_w": min(layout.type_w, 26)},
            {"job_w": min(layout.job_w, 13)},
            {"type_w": min(layout.type_w, 22)},
            {"job_w": min(layout.job_w, 10)},
            {"service_w": min(layout.service_w, 9)},
            {"type_w": min(layout.type_w, 18)},
        ):
            if layout.data_w >= MIN_DATA:
                break
            layout = replace(layout, **step)
        return layout

    @property
    def job_start(self) -> int:
        return self.time_w + 1 + self.service_w + 1 + 2 + self.type_w + 1

    @property
    def data_start(self) -> int:
        start = self.job_start + self.job_w + 1
        for column in (self.worker_w, self.machine_w):
            if column:
                start += column + 1
        return start

    @property
    def data_w(self) -> int:
        return self.width - self.data_start


def _cell(text: str | None, width: int) -> str:
    if not text:
        return "-".ljust(width)
    return inert(text, width).ljust(width)


EARLIER_MARK = "↶"
"""Beside the time of a row that is earlier than the row above it: the rows are in arrival
(stream) order, and this event's service stamped it before the one above arrived."""


def event_row(
    event: TelemetryEvent, layout: RowLayout, shift: int = 0, *, earlier: bool = False
) -> Text:
    """One line of the stream: time, service, level, type, job/worker/machine, data (its most
    telling field first, durations readable). ``shift``: how many characters of the data
    are scrolled out on the left (the selected row's ←/→). ``earlier``: its time is before
    the row above's (marked, so that arrival order is not taken for a bug)."""
    row = Text(no_wrap=True, end="")
    if earlier:
        row.append(clock(event.timestamp), WARN_COLOR)
        row.append(EARLIER_MARK, f"bold {WARN_COLOR}")
    else:
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
    data = Text(no_wrap=True, end="")
    if event.malformed:
        data.append("⚠ malformed: ", f"bold {NOTICE_COLOR}")
        data.append(inert(event.malformed, 60), NOTICE_COLOR)
        data.append(" ")
    data.append(data_summary(event.data, room + shift, readable=True), "grey78")
    if shift:
        data = Text("…", MUTED_COLOR, no_wrap=True, end="") + data[min(shift, len(data.plain)) :]
    if data.cell_len > room:
        data.truncate(room - 1)
        data.append("…", MUTED_COLOR)
    row.append_text(data)
    row.truncate(layout.width)
    return row


def event_json(event: TelemetryEvent) -> str:
    """The event's full JSON, indented; every character a terminal would act on is a JSON
    escape (the text is still valid JSON, and means the same)."""
    return dumps(event.to_dict(), option=orjson.OPT_INDENT_2).decode()
