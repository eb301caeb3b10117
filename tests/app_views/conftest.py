"""Fixtures and helpers for the widget tests: plain text of what a widget shows.

The test apps hold no text input, so nothing blinks; animations are off all the same.
"""

from __future__ import annotations

import pytest
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


@pytest.fixture(autouse=True)
def _no_animations(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")
