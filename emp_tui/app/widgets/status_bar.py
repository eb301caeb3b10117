"""The status bar: connection, events/s with a sparkline, buffered/shown, malformed/dropped,
and the collector's lag when a collector reports its health. The app sets ``status``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from emp_tui.app.render import inert

_BARS = "▁▂▃▄▅▆▇█"
_STATE_STYLE = {
    "connected": ("●", "bold #5fd787"),
    "connecting": ("◌", "bold #ffd75f"),
    "reconnecting": ("○", "bold #ff5f5f"),
    "disconnected": ("○", "bold #ff5f5f"),
    "offline": ("■", "bold #87afd7"),
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
    state: str = "connecting"
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
            text.append(f" — {inert(s.error, 80)}", "#ff8787")
        elif s.source:
            text.append(f" {inert(s.source, 60)}", "dim")
        rate = s.rates[-1] if s.rates else 0
        text.append("  │ ")
        text.append(f"{rate:,}/s ", "bold")
        text.append(sparkline(list(s.rates)[-20:]), "#5fafff")
        text.append("  │ ")
        text.append(f"{s.shown:,}", "bold")
        text.append(f" shown of {s.buffered:,}")
        if s.capacity:
            text.append(f" (cap {s.capacity:,})", "dim")
        if s.malformed:
            text.append(f"  │ {s.malformed:,} malformed", "bold #ffaf00")
        if s.dropped:
            text.append(f"  │ {s.dropped:,} dropped", "bold #ffaf00")
        if s.paused_new is not None:
            text.append(f"  │ ‖ paused, {s.paused_new:,} new", "bold #ffd75f")
        if s.collector_lag is not None:
            text.append(f"  │ collector lag {s.collector_lag:,}")
            if s.collector_state and s.collector_state != "running":
                text.append(f" ({inert(s.collector_state, 20)})", "#ffaf00")
        return text
