"""Textual stays inside the app: the core, the emitter and the collector never load it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from samples import sample_events

# Every module that must import without Textual (and without Rich, for the emitter).
CORE_MODULES = [
    "emp_tui.events",
    "emp_tui.text",
    "emp_tui.stream_ids",
    "emp_tui.telemetry",
    "emp_tui.topology",
    "emp_tui.spill",
    "emp_tui.config",
    "emp_tui.redact",
    "emp_tui.health",
    "emp_tui.query",
    "emp_tui.store",
    "emp_tui.app.state",
    "emp_tui.app.triage",
    "emp_tui.analysis",
    "emp_tui.problems",
    "emp_tui.lint",
    "emp_tui.sources",
    "emp_tui.logindex",
    "emp_tui.history",
    "emp_tui.cli",
    "emp_tui.app.style",  # the CLI's colours: plain strings, no Rich
    "collector",
    "collector.__main__",
    "collector.config",
    "collector.pipeline",
    "collector.reader",
    "collector.health",
    "collector.otel",
    "collector.http",
    "collector.spool",
    "collector.batch",
    "collector.batcher",
    "collector.acks",
    "collector.exporters.file",
    "collector.exporters.otlp",
    "emp_tui.demo",
    "emp_tui.demo.sim",
    "emp_tui.demo.queue",
    "emp_tui.demo.embedded",
]


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_module_does_not_import_textual(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich'))\n"
        "print(','.join(loaded))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "", f"{module} loaded {done.stdout.strip()}"


# What `emp-tui --file` must start without: Redis's client (and the code that talks to it
# only), the dialogs and screens that are not on the first screen, the other commands.
NOT_FOR_THE_FIRST_SCREEN = (
    "redis",
    "hiredis",
    "textual_serve",
    "emp_tui.telemetry",
    "emp_tui.demo",
    "emp_tui.app.screens",
    "emp_tui.cli.serve",
    "emp_tui.cli.search",
)

FIRST_SCREEN = """\
import asyncio, sys
from pathlib import Path

import emp_tui.cli.main  # as `emp-tui` starts
from emp_tui.app import make_app
from emp_tui.config import AppConfig

async def first_screen() -> int:
    app = make_app(files=[Path(sys.argv[1])], config=AppConfig(), clock=lambda: {now})
    async with app.run_test(size=(160, 48)) as pilot:
        while app.state.covered is None or app.state.loading:
            await pilot.pause(0.05)
        app.drain_now()
        await pilot.pause()
        return len(app.shown_events())

shown = asyncio.run(first_screen())
banned = {banned!r}
loaded = sorted(m for m in sys.modules if any(m == b or m.startswith(b + ".") for b in banned))
print(shown, ",".join(loaded))
"""


def test_the_app_on_files_starts_without_redis_or_its_dialogs(tmp_path: Path) -> None:
    """A file-only app (`emp-tui --file DIR`) gets to its rows without importing Redis's
    client, the dialogs or the other commands (each costs start-up time: see the app's
    module docstring); checked in a fresh interpreter, once the rows are there."""
    events = sample_events(jobs=3)
    (tmp_path / "events.log").write_bytes(b"".join(e.to_json_line() for e in events))
    now = events[-1].timestamp / 1000 + 60
    code = FIRST_SCREEN.format(now=now, banned=NOT_FOR_THE_FIRST_SCREEN)
    env = {**os.environ, "EMP_TUI_CONFIG": "/nonexistent/emp-tui-tests/config.toml"}
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    shown, _, loaded = done.stdout.strip().partition(" ")
    assert int(shown) == len(events)  # the rows came from the file: the path was taken
    assert loaded == "", f"the app on files loaded {loaded}"


COMMAND_MODULES = ("search", "timeline", "perf", "health", "export", "problems", "lint", "serve")


def test_each_command_s_module_loads_only_when_it_runs() -> None:
    """`emp-tui` (the app, or any command) starts without the command modules; each command
    of the parser has its runner."""
    code = (
        "import sys\n"
        "from emp_tui.cli.main import runner\n"
        "from emp_tui.cli.parser import COMMANDS\n"
        f"modules = ['emp_tui.cli.' + name for name in {COMMAND_MODULES!r}]\n"
        "print(','.join(m for m in modules if m in sys.modules))\n"
        "print(','.join(c for c in COMMANDS if not callable(runner(c))))\n"
        "print(','.join(m for m in modules if m not in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    at_start, without_runner, never_loaded = done.stdout.split("\n")[:3]
    assert at_start == "", f"loaded at start: {at_start}"
    assert without_runner == ""
    assert never_loaded == ""  # every command module is reached through runner()
