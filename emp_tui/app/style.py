"""Colours: one stable colour per service and one look per level, for every widget of the app
and for the CLI's coloured output, so a service looks the same everywhere and in every run.

Plain style strings (Rich's syntax, e.g. ``"bold #ff5f5f"``): this module imports neither Rich
nor Textual, so the CLI can use it without loading the app.
"""

from __future__ import annotations

import zlib
from typing import Final

# The EMP services get fixed, well-separated colours; any other name hashes into the palette.
SERVICE_COLORS: Final[dict[str, str]] = {
    "api-server": "#5f9fff",
    "worker": "#5fc75f",
    "machine": "#d7a03c",
    "webhook-service": "#c77fdf",
    "monitor": "#3cc7c7",
}
PALETTE: Final = (
    "#e0766b",
    "#8f9fff",
    "#9fcf4f",
    "#df8fbf",
    "#4fbf9f",
    "#cfaf6f",
    "#6fafdf",
    "#bf8f5f",
)

ERROR_COLOR: Final = "#ff5f5f"
WARN_COLOR: Final = "#e5c07b"
OK_COLOR: Final = "#5fd787"
NOTICE_COLOR: Final = "#ffaf00"
"""Something about the data itself: malformed entries, dropped events."""
PENDING_COLOR: Final = "#ffd75f"
"""Waiting on something: connecting, paused."""
RUNNING_COLOR: Final = "#5f9fff"
OFFLINE_COLOR: Final = "#87afd7"
ERROR_TEXT_COLOR: Final = "#ff8787"
"""The text of an error message (its mark is ERROR_COLOR)."""
JOB_COLOR: Final = "#87d7ff"
"""Job IDs, which open the job's timeline when clicked."""
RATE_COLOR: Final = "#5fafff"
MUTED_COLOR: Final = "grey62"

LEVEL_COLORS: Final[dict[str, str]] = {
    "debug": "grey50",
    "info": "#5f87d7",
    "warn": WARN_COLOR,
    "error": ERROR_COLOR,
}
LEVEL_MARKS: Final[dict[str, str]] = {"debug": "·", "info": "●", "warn": "▲", "error": "✖"}
"""One cell per level, in the stream's level column and the timeline's lanes."""
UNKNOWN_LEVEL: Final = ("?", "magenta")

CRITICAL_COLOR: Final = "#ff5fd7"
"""A finding that needs someone now (an outage, a service no machine runs)."""
SEVERITY_COLORS: Final[dict[str, str]] = {
    "critical": CRITICAL_COLOR,
    "error": ERROR_COLOR,
    "warn": WARN_COLOR,
    "info": LEVEL_COLORS["info"],
}
SEVERITY_MARKS: Final[dict[str, str]] = {"critical": "‼", "error": "✖", "warn": "▲", "info": "●"}
"""One cell per severity of a finding (emp_tui.problems), in the Problems view and the CLI."""


def service_color(name: str) -> str:
    """A colour (``#rrggbb``) for a service name, the same in every run and every widget."""
    known = SERVICE_COLORS.get(name)
    if known is not None:
        return known
    return PALETTE[zlib.crc32(name.encode("utf-8", "replace")) % len(PALETTE)]


def level_mark(level: str) -> tuple[str, str]:
    """The mark and its style for an event level (a level outside the four: ``?``)."""
    color = LEVEL_COLORS.get(level)
    if color is None:
        return UNKNOWN_LEVEL
    bold = "bold " if level in ("warn", "error") else ""
    return LEVEL_MARKS[level], bold + color


def severity_mark(severity: str) -> tuple[str, str]:
    """The mark and its style for a finding's severity (an unknown one: ``?``)."""
    color = SEVERITY_COLORS.get(severity)
    if color is None:
        return UNKNOWN_LEVEL
    return SEVERITY_MARKS[severity], f"bold {color}"


def severity_text_style(severity: str) -> str:
    """The style of a finding's text: critical and errors stand out, information recedes."""
    if severity == "critical":
        return f"bold {CRITICAL_COLOR}"
    if severity == "error":
        return ERROR_TEXT_COLOR
    return "dim" if severity == "info" else ""


def level_text_style(level: str) -> str:
    """The style of an event's text by level: errors and warnings stand out, debug recedes."""
    if level in ("warn", "error"):
        return "bold " + LEVEL_COLORS[level]
    return "dim" if level == "debug" else ""
