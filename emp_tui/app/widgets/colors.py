"""Colours shared by the app's widgets: one stable colour per service, one style per level.

Everything that colours a service (stream list, timeline lanes, handoff graph) calls
:func:`service_color`, so a service looks the same everywhere and from run to run.
"""

from __future__ import annotations

import zlib
from typing import Final

# The EMP services get fixed, well-separated colours; any other name hashes into the palette.
KNOWN_SERVICES: Final[dict[str, str]] = {
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

# Rich styles by level: errors stand out, debug recedes. Unknown levels read like info.
LEVEL_STYLE: Final[dict[str, str]] = {
    "debug": "dim",
    "info": "",
    "warn": "bold #e5c07b",
    "error": "bold #ff5f5f",
}
# One cell per mark in the timeline lanes, by level.
LEVEL_GLYPH: Final[dict[str, str]] = {"debug": "·", "info": "●", "warn": "▲", "error": "✖"}
ERROR_COLOR: Final = "#ff5f5f"
WARN_COLOR: Final = "#e5c07b"


def service_color(name: str) -> str:
    """A colour (``#rrggbb``) for a service name, the same in every run and every widget."""
    known = KNOWN_SERVICES.get(name)
    if known is not None:
        return known
    return PALETTE[zlib.crc32(name.encode("utf-8", "replace")) % len(PALETTE)]


def level_style(level: str) -> str:
    """The Rich style for an event level (``""`` for info and unknown levels)."""
    return LEVEL_STYLE.get(level, "")
