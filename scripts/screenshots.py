"""Regenerate screenshots/ (SVG, and PNG when rsvg-convert or cairosvg is available) from the
deterministic sample data: `make screenshots`."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from textual.pilot import Pilot

from emp_tui.app import make_app
from emp_tui.app.app import EmpTuiApp
from emp_tui.config import AppConfig

# The sample events come from the tests' factory (tests/samples.py), which the package does
# not ship.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from samples import START_MS, sample_events

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


SHOTS: list[tuple[str, tuple[int, int], Steps]] = [
    ("main", (160, 48), _main_view),
    ("filter-error", (160, 48), _filtered),
    ("narrow-timeline", (80, 24), _timeline),
    ("graph-all-jobs", (160, 48), _graph_all),
    ("export", (160, 48), _export),
    ("help", (160, 48), _help),
]


async def shoot(name: str, size: tuple[int, int], steps: Steps) -> Path:
    app = make_app(live=False, config=AppConfig(), clock=lambda: FIXED_NOW)
    async with app.run_test(size=size) as pilot:
        app.add_events(sample_events())
        app.drain_now()
        await pilot.pause()
        await steps(pilot, app)
        await pilot.pause(0.2)
        path = OUT / f"{name}.svg"
        app.save_screenshot(filename=path.name, path=str(OUT))
    return path


def to_png(svg: Path) -> Path | None:
    png = svg.with_suffix(".png")
    if shutil.which("rsvg-convert"):
        subprocess.run(["rsvg-convert", str(svg), "-o", str(png)], check=True)
        return png
    try:
        import cairosvg  # type: ignore[import-not-found]
    except ImportError:
        return None
    cairosvg.svg2png(url=str(svg), write_to=str(png))
    return png


async def main() -> int:
    OUT.mkdir(exist_ok=True)
    for name, size, steps in SHOTS:
        svg = await shoot(name, size, steps)
        png = to_png(svg)
        print(f"{svg.relative_to(OUT.parent)}" + (f" + {png.name}" if png else ""))
    if shutil.which("rsvg-convert") is None:
        print("(no rsvg-convert or cairosvg: SVG only)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
