"""Regenerate screenshots/ (SVG, and PNG when rsvg-convert or cairosvg is available) from the
deterministic sample data: `make screenshots`."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from textual.pilot import Pilot

from emp_tui.app import make_app
from emp_tui.app.app import EmpTuiApp
from emp_tui.config import AppConfig
from emp_tui.events import TelemetryEvent

# The sample events come from the tests' factory (tests/samples.py), which the package does
# not ship.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from samples import START_MS, sample_events, triage_sample

os.environ.setdefault("EMP_TUI_CURSOR_BLINK", "0")
OUT = Path(__file__).resolve().parent.parent / "screenshots"
FIXED_NOW = START_MS / 1000 + 60.0

Steps = Callable[[Pilot[int], EmpTuiApp], Awaitable[None]]


async def _main_view(pilot: Pilot[int], app: EmpTuiApp) -> None:
    app.open_job("job-0005")
    await pilot.pause()
    app.query_one("#timeline").action_next_marker()  # type: ignore[attr-defined]
    await pilot.press("up", "up", "up")


async def _filtered(pilot: Pilot[int], app: EmpTuiApp) -> None:
    await pilot.press("slash", *"level:>=warn", "enter")
    await pilot.press("up")
    await pilot.press("slash", *"service:worker bogus:1", "enter")


async def _timeline(pilot: Pilot[int], app: EmpTuiApp) -> None:
    app.open_job("job-0009")
    await pilot.pause()
    await pilot.press("3", "n")


async def _graph_all(pilot: Pilot[int], app: EmpTuiApp) -> None:
    app.open_job("job-0005")
    await pilot.press("g", "4")


async def _export(pilot: Pilot[int], app: EmpTuiApp) -> None:
    await pilot.press("slash", *"service:worker", "enter", "e")


async def _help(pilot: Pilot[int], app: EmpTuiApp) -> None:
    await pilot.press("question_mark")


async def _problems(pilot: Pilot[int], app: EmpTuiApp) -> None:
    await pilot.press("exclamation_mark", "down")


async def _first_screen(pilot: Pilot[int], app: EmpTuiApp) -> None:
    """As it opens: the stream, and the banner that points at the worst problem."""


async def _compare(pilot: Pilot[int], app: EmpTuiApp) -> None:
    app.open_job("job-0005")
    await pilot.pause()
    await pilot.press("u")


Events = Callable[[], list[TelemetryEvent]]
SHOTS: list[tuple[str, tuple[int, int], Steps, Events]] = [
    ("main", (160, 48), _main_view, sample_events),
    ("filter-error", (160, 48), _filtered, sample_events),
    ("narrow-timeline", (80, 24), _timeline, sample_events),
    ("graph-all-jobs", (160, 48), _graph_all, sample_events),
    ("export", (160, 48), _export, sample_events),
    ("help", (160, 48), _help, sample_events),
    ("problems", (160, 48), _problems, triage_sample),
    ("narrow-problems", (80, 24), _first_screen, triage_sample),
    ("compare", (160, 48), _compare, sample_events),
]


async def shoot(name: str, size: tuple[int, int], steps: Steps, events: Events) -> Path:
    # A fixed export directory: the export dialog shows absolute paths.
    config = AppConfig(export_dir="/srv/emp-exports")
    app = make_app(live=False, config=config, clock=lambda: FIXED_NOW)
    async with app.run_test(size=size) as pilot:
        app.add_events(events())
        app.drain_now()
        while app.problems.triage is None:  # the problem finder runs in a thread
            await pilot.pause(0.05)
        await pilot.pause()
        await steps(pilot, app)
        await pilot.pause(0.2)
        path = OUT / f"{name}.svg"
        app.save_screenshot(filename=path.name, path=str(OUT))
    return path


def to_png(svg: Path) -> Path | None:
    png = svg.with_suffix(".png")
    if shutil.which("rsvg-convert"):
        # Textual writes spaces as &#160; without xml:space="preserve", and librsvg drops the
        # leading ones of each text run (right-aligned numbers lose their alignment): convert
        # a copy that says to keep them.
        text = svg.read_text(encoding="utf-8")
        if "xml:space=" not in text:
            text = text.replace("<svg ", '<svg xml:space="preserve" ', 1)
        with tempfile.TemporaryDirectory() as tmp:
            kept = Path(tmp) / svg.name
            kept.write_text(text, encoding="utf-8")
            subprocess.run(["rsvg-convert", str(kept), "-o", str(png)], check=True)
        return png
    try:
        import cairosvg  # type: ignore[import-not-found]
    except ImportError:
        return None
    cairosvg.svg2png(url=str(svg), write_to=str(png))
    return png


async def main() -> int:
    OUT.mkdir(exist_ok=True)
    for name, size, steps, events in SHOTS:
        svg = await shoot(name, size, steps, events)
        png = to_png(svg)
        print(f"{svg.relative_to(OUT.parent)}" + (f" + {png.name}" if png else ""))
    if shutil.which("rsvg-convert") is None:
        print("(no rsvg-convert or cairosvg: SVG only)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
