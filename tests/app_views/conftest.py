"""Fixtures and helpers for the widget tests: plain text of what a widget shows."""

from __future__ import annotations

from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget


def strips(widget: Widget) -> list[Strip]:
    """The lines ``widget`` renders on screen, padding included (through the Line API)."""
    width, height = widget.region.size
    return widget.render_lines(Region(0, 0, width, height))


def lines(widget: Widget) -> list[str]:
    """The plain text of each line ``widget`` shows, trailing spaces removed."""
    return [strip.text.rstrip() for strip in strips(widget)]
