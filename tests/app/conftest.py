from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from samples import START_MS
from textual.widget import Widget

from emp_tui.app import make_app
from emp_tui.app.app import EmpTuiApp
from emp_tui.config import AppConfig

NO_CONFIG = "/nonexistent/emp-tui-tests/config.toml"
FIXED_NOW = START_MS / 1000 + 60.0
"""The tests' clock: one minute after the sample events start."""


@pytest.fixture(autouse=True)
def _deterministic_app(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No real config discovery, no cursor blink, no user theme."""
    monkeypatch.setenv("EMP_TUI_CONFIG", NO_CONFIG)
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")
    monkeypatch.setenv("EMP_TUI_CURSOR_BLINK", "0")
    yield


def offline_app(**kwargs: object) -> EmpTuiApp:
    """The app with no Redis: events come from ``add_events``."""
    kwargs.setdefault("config", AppConfig())
    return make_app(live=False, clock=lambda: FIXED_NOW, **kwargs)  # type: ignore[arg-type]


def plain(widget: Widget) -> str:
    """The text a Static-like widget shows, without styles."""
    rendered = widget.render()
    text = getattr(rendered, "plain", None)
    assert isinstance(text, str), f"{widget!r} rendered {type(rendered).__name__}"
    return text
