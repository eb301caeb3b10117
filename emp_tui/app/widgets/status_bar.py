"""The status bar: connection, events/s with a sparkline, buffered/shown, malformed/dropped,
and the collector's lag when a collector reports its health. The app sets ``status``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

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
from emp_tui.text import inert

SourceState = ConnectionState | Literal["offline"]
"""The live reader's state, or ``offline``: reading files, no Redis."""

_BARS = "▁▂▃▄▅▆▇█"
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
        mark, style = _STATE_STYLE.get(s.state, ("?", "bold"))
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f" {mark} {s.state}", style)
        if s.error:
            text.append(f" — {inert(s.error, 80)}", ERROR_TEXT_COLOR)
        elif s.source:
            text.append(f" {inert(s.source, 60)}", "dim")
        rate = s.rates[-1] if s.rates else 0
        text.append("  │ ")
        text.append(f"{rate:,}/s ", "bold")
        text.append(sparkline(list(s.rates)[-20:]), RATE_COLOR)
        text.append("  │ ")
        text.append(f"{s.shown:,}", "bold")
        text.append(f" shown of {s.buffered:,}")
        if s.capacity:
            text.append(f" (cap {s.capacity:,})", "dim")
        if s.malformed:
            text.append(f"  │ {s.malformed:,} malformed", f"bold {NOTICE_COLOR}")
        if s.dropped:
            text.append(f"  │ {s.dropped:,} dropped", f"bold {NOTICE_COLOR}")
        if s.paused_new is not None:
            text.append(f"  │ ‖ paused, {s.paused_new:,} new", f"bold {PENDING_COLOR}")
        if s.collector_lag is not None:
            text.append(f"  │ collector lag {s.collector_lag:,}")
            if s.collector_state and s.collector_state != "running":
                text.append(f" ({inert(s.collector_state, 20)})", NOTICE_COLOR)
        return text
