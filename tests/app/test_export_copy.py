"""The in-app export's directory and absolute path; y says whether the copy can reach the
clipboard, and Y writes the event's JSON to a file instead."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest
from samples import sample_events
from textual.widgets import Input, Label

from emp_tui.app.app import EmpTuiApp
from emp_tui.app.screens.export import ExportScreen
from emp_tui.config import AppConfig, load_app_config

from .conftest import offline_app


def _recorded(app: EmpTuiApp) -> list[str]:
    said: list[str] = []
    notify = app.notify

    def recording(message: str, **kwargs: Any) -> None:
        said.append(message)
        notify(message, **kwargs)

    app.notify = recording  # type: ignore[method-assign]
    return said


def test_export_dir_is_read_from_config(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('export_dir = "~/emp-exports"\n')
    assert load_app_config(path).export_dir == "~/emp-exports"
    assert AppConfig().export_dir == ""


async def test_export_defaults_to_the_configured_directory_and_shows_absolute_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    exports = tmp_path / "exports"
    app = offline_app(config=AppConfig(export_dir=str(exports)))
    async with app.run_test(size=(160, 48)) as pilot:
        said = _recorded(app)
        app.add_events(sample_events())
        app.drain_now()
        await pilot.press("e")
        await pilot.pause()
        assert isinstance(app.screen, ExportScreen)
        field = app.screen.query_one("#export-path", Input)
        default = Path(field.value)
        assert default.is_absolute() and default.parent == exports
        # A relative name: the dialog says where it goes, and in which format.
        field.value = "story.trace.json"
        await pilot.pause()
        where = str(app.screen.query_one("#export-where", Label).render())
        assert f"→ {tmp_path / 'story.trace.json'}  (chrome-trace)" in where
        field.value = str(default)
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert default.exists()  # the directory was made
        assert app.last_export is not None and app.last_export.path == default
        assert any(f"to {default}" in line for line in said)


def _fake_tmux(tmp_path: Path, answer: str) -> str:
    """A ``tmux`` on PATH that answers ``show-options -gv set-clipboard`` with ``answer``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "tmux"
    script.write_text(f"#!/bin/sh\necho {answer}\n")
    script.chmod(0o755)
    return f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"


@pytest.mark.parametrize(("answer", "reaches"), [("off", False), ("on", True)])
async def test_y_says_whether_the_copy_can_reach_and_shift_y_writes_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, answer: str, reaches: bool
) -> None:
    monkeypatch.setenv("TMUX", "/tmp/tmux-1000/default,1,0")
    monkeypatch.delenv("STY", raising=False)
    monkeypatch.setenv("PATH", _fake_tmux(tmp_path, answer))
    exports = tmp_path / "out"
    app = offline_app(config=AppConfig(export_dir=str(exports)))
    async with app.run_test(size=(160, 48)) as pilot:
        said = _recorded(app)
        events = sample_events()
        app.add_events(events)
        app.drain_now()
        await pilot.press("up", "y")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert orjson.loads(app.clipboard) == orjson.loads(events[-1].to_json_line())
        if reaches:
            assert said[-1].startswith("Copied the event's JSON (")
            return
        assert "may not reach the clipboard" in said[-1]
        assert "set-clipboard is off" in said[-1] and "Y writes it to a file" in said[-1]
        await pilot.press("Y")
        await app.workers.wait_for_complete()
        await pilot.pause()
        written = list(exports.iterdir())
        assert len(written) == 1 and written[0].suffix == ".json"
        assert orjson.loads(written[0].read_bytes()) == orjson.loads(events[-1].to_json_line())
        assert said[-1] == f"Wrote the event's JSON to {written[0]}"


async def test_y_outside_tmux_says_the_copy_was_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TMUX", "STY", "TERM_PROGRAM"):
        monkeypatch.delenv(name, raising=False)
    app = offline_app()
    async with app.run_test(size=(160, 48)) as pilot:
        said = _recorded(app)
        app.add_events(sample_events())
        app.drain_now()
        await pilot.press("up", "y")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert said[-1].startswith("Copied the event's JSON (") and "bytes" in said[-1]
