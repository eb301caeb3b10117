"""The status bar: connection, events/s with a sparkline, what is shown and loaded beside what
the sources hold (or a load's progress), what the memory cap left out, whether the app looks
at the past, malformed/dropped, and the collector's lag when a collector reports its health.
The app sets ``status``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from emp_tui.app.state import RangeView
from emp_tui.app.style import (
    ERROR_COLOR,
    ERROR_TEXT_COLOR,
    NOTICE_COLOR,
    OFFLINE_COLOR,
    OK_COLOR,
    PENDING_COLOR,
    RATE_COLOR,
)
from emp_tui.sources import ConnectionState
from emp_tui.text import inert, moment

SourceState = ConnectionState | Literal["offline"]
"""The live reader's state, or ``offline``: reading files, no Redis."""

_BARS = "▁▂▃▄▅▆▇█"
COMPACT_BELOW: Final = 120
"""Narrower than this (the app's one-pane layout), the line drops the sparkline and words."""
_STATE_STYLE: Final[dict[SourceState, tuple[str, str]]] = {
    "connected": ("●", f"bold {OK_COLOR}"),
    "connecting": ("◌", f"bold {PENDING_COLOR}"),
    "reconnecting": ("○", f"bold {ERROR_COLOR}"),
    "disconnected": ("○", f"bold {ERROR_COLOR}"),
    "offline": ("■", f"bold {OFFLINE_COLOR}"),
}


def sparkline(values: Sequence[float]) -> str:
    """One character per value, scaled to the largest."""
    top = max(values, default=0)
    if top <= 0:
        return _BARS[0] * len(values)
    last = len(_BARS) - 1
    return "".join(_BARS[min(last, round(value / top * last))] for value in values)


@dataclass(frozen=True)
class Status:
    state: SourceState = "connecting"
    source: str = ""
    error: str | None = None
    rates: Sequence[int] = field(default_factory=tuple)
    buffered: int = 0
    capacity: int = 0
    shown: int = 0
    malformed: int = 0
    dropped: int = 0
    paused_new: int | None = None
    collector_lag: int | None = None
    collector_state: str | None = None
    range: RangeView | None = None
    """The range and the sources (None: events are given, not read)."""


class StatusBar(Widget):
    DEFAULT_CSS = """
    StatusBar {
        height: 1;
        background: $panel;
        color: $text;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    status: reactive[Status] = reactive(Status, layout=False)

    def render(self) -> Text:
        s = self.status
        compact = self.size.width < COMPACT_BELOW
        mark, style = _STATE_STYLE.get(s.state, ("?", "bold"))
        text = Text(no_wrap=True, overflow="ellipsis")
        if not compact or s.error or s.state != "connected":
            text.append(f" {mark} {s.state}", style)
        else:
            text.append(f" {mark}", style)
        if s.error:
            text.append(f" — {inert(s.error, 80)}", ERROR_TEXT_COLOR)
        elif s.source and s.range is None:
            text.append(f" {inert(s.source, 60)}", "dim")
        rate = s.rates[-1] if s.rates else 0
        text.append(" " if compact else "  │ ")
        text.append(f"{rate:,}/s ", "bold")
        if not compact:
            text.append(sparkline(list(s.rates)[-20:]), RATE_COLOR)
        text.append("  │ ")
        if s.range is None:
            text.append(f"{s.shown:,}", "bold")
            text.append(f" shown of {s.buffered:,}")
            if s.capacity:
                text.append(f" (cap {s.capacity:,})", "dim")
        else:
            _range_parts(text, s.range, s.shown, compact)
        if s.paused_new is not None and (s.range is None or s.range.held_back is None):
            text.append(f"  │ ‖ paused, {s.paused_new:,} new", f"bold {PENDING_COLOR}")
        if s.range is not None:
            _holdings(text, s.range, compact)
        if s.malformed:
            text.append(f"  │ {s.malformed:,} malformed", f"bold {NOTICE_COLOR}")
        if s.dropped and s.range is None:
            text.append(f"  │ {s.dropped:,} dropped", f"bold {NOTICE_COLOR}")
        if s.collector_lag is not None:
            text.append(f"  │ collector lag {s.collector_lag:,}")
            if s.collector_state and s.collector_state != "running":
                text.append(f" ({inert(s.collector_state, 20)})", NOTICE_COLOR)
        if s.range is not None and s.source and not s.error:
            text.append(f"  │ {inert(s.source, 60)}", "dim")
        return text


def _range_parts(text: Text, r: RangeView, shown: int, compact: bool) -> None:
    """What is shown and loaded (the loaded span), or a load's progress; the past being
    looked at; what the cap left out. Compact (a narrow terminal): "shown" only when a
    filter shows less than is loaded."""
    now = r.now_ms
    if not compact or shown != r.loaded or r.loading is not None:
        text.append(f"{shown:,}", "bold")
        text.append(" shown")
        if r.partial:
            text.append(" of the loaded", "dim")
        text.append(" · " if r.loading is None else "  │ ")
    if r.loading is not None:
        text.append(f"loading {r.loading:,}", f"bold {PENDING_COLOR}")
        if r.loading_total:
            approx = "" if r.loading_exact else "~"
            text.append(f" / {approx}{r.loading_total:,}", PENDING_COLOR)
        elif r.loading_percent is not None:
            text.append(f" ({r.loading_percent}%)", PENDING_COLOR)
        text.append(" · Esc stops", "dim")
    else:
        text.append(f"{r.loaded:,}", "bold" if compact and shown == r.loaded else "")
        text.append(" loaded")
        if r.first_ms is not None and r.last_ms is not None:
            text.append(f" {moment(r.first_ms, now)}\N{EN DASH}{moment(r.last_ms, now)}")
    if r.held_back is not None:
        why = "until: in the filter" if r.closed_by_filter else "f follows"
        text.append(
            f"  │ ‖ looking at the past, {r.held_back:,} new not taken · {why}",
            f"bold {PENDING_COLOR}",
        )
    if r.left_out:
        count = "some" if r.left_out < 0 else f"~{r.left_out:,}"
        if r.full:
            said = f"cap {r.capacity:,}: {count} older left out · narrow with since:/until: or ]"
        else:
            said = f"{count} older not read yet · ↑ at the top reads more, or since:/until:"
        text.append(f"  │ {said}", f"bold {NOTICE_COLOR}")


def _holdings(text: Text, r: RangeView, compact: bool) -> None:
    """What each source holds."""
    now = r.now_ms
    held: list[str] = []
    if r.stream is not None:
        if r.stream.first_ms is None:
            held.append("stream empty")
        else:
            holds = "" if compact else " holds"
            held.append(
                f"stream{holds} {r.stream.count or 0:,} since {moment(r.stream.first_ms, now)}"
            )
    if r.logs is not None:
        if r.logs.first_ms is None:
            held.append("logs empty")
        else:
            held.append(f"logs since {moment(r.logs.first_ms, now, day_only=True)}")
    if held:
        text.append("  │ " + " · ".join(held), "dim")
