"""The status bar: connection, events/s with a sparkline, what is shown and loaded beside what
the sources hold (or a load's progress), what the memory cap left out, whether the app looks
at the past, malformed/dropped, and the collector's lag when a collector reports its health.
The app sets ``status``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from emp_tui.app.render import inert
from emp_tui.app.state import RangeView, moment

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
        mark, style = _STATE_STYLE.get(s.state, ("?", "bold"))
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f" {mark} {s.state}", style)
        if s.error:
            text.append(f" — {inert(s.error, 80)}", "#ff8787")
        elif s.source and s.range is None:
            text.append(f" {inert(s.source, 60)}", "dim")
        rate = s.rates[-1] if s.rates else 0
        text.append("  │ ")
        text.append(f"{rate:,}/s ", "bold")
        text.append(sparkline(list(s.rates)[-20:]), "#5fafff")
        text.append("  │ ")
        text.append(f"{s.shown:,}", "bold")
        if s.range is None:
            text.append(f" shown of {s.buffered:,}")
            if s.capacity:
                text.append(f" (cap {s.capacity:,})", "dim")
        else:
            _range_parts(text, s.range)
        if s.paused_new is not None and (s.range is None or s.range.held_back is None):
            text.append(f"  │ ‖ paused, {s.paused_new:,} new", "bold #ffd75f")
        if s.malformed:
            text.append(f"  │ {s.malformed:,} malformed", "bold #ffaf00")
        if s.dropped and s.range is None:
            text.append(f"  │ {s.dropped:,} dropped", "bold #ffaf00")
        if s.collector_lag is not None:
            text.append(f"  │ collector lag {s.collector_lag:,}")
            if s.collector_state and s.collector_state != "running":
                text.append(f" ({inert(s.collector_state, 20)})", "#ffaf00")
        if s.range is not None and s.source and not s.error:
            text.append(f"  │ {inert(s.source, 60)}", "dim")
        return text


def _range_parts(text: Text, r: RangeView) -> None:
    """Shown and loaded (the loaded span), or a load's progress; what the sources hold; what
    the cap left out; the past being looked at."""
    now = r.now_ms
    text.append(" shown")
    if r.partial:
        text.append(" of the loaded", "dim")
    if r.loading is not None:
        text.append("  │ ")
        text.append(f"loading {r.loading:,}", "bold #ffd75f")
        if r.loading_total:
            approx = "" if r.loading_exact else "~"
            text.append(f" / {approx}{r.loading_total:,}", "#ffd75f")
        elif r.loading_percent is not None:
            text.append(f" ({r.loading_percent}%)", "#ffd75f")
        text.append(" · Esc stops", "dim")
    else:
        text.append(f" · {r.loaded:,} loaded")
        if r.first_ms is not None and r.last_ms is not None:
            text.append(f" {moment(r.first_ms, now)}\N{EN DASH}{moment(r.last_ms, now)}")
    held: list[str] = []
    if r.stream is not None:
        if r.stream.first_ms is None:
            held.append("stream empty")
        else:
            held.append(
                f"stream holds {r.stream.count or 0:,} since {moment(r.stream.first_ms, now)}"
            )
    if r.logs is not None:
        if r.logs.first_ms is None:
            held.append("logs empty")
        else:
            held.append(f"logs since {moment(r.logs.first_ms, now, day_only=True)}")
    if held:
        text.append("  │ " + " · ".join(held), "dim")
    if r.left_out:
        count = "some" if r.left_out < 0 else f"~{r.left_out:,}"
        text.append(
            f"  │ cap {r.capacity:,}: {count} older left out · narrow with since:/until: or ]",
            "bold #ffaf00",
        )
    if r.held_back is not None:
        why = "until: in the filter" if r.closed_by_filter else "f follows"
        text.append(
            f"  │ ‖ looking at the past, {r.held_back:,} new not taken · {why}", "bold #ffd75f"
        )
