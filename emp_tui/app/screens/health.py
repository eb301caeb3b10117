"""The health pane (``h``): the pipeline's health, the figures of ``emp-tui health`` and more.

Events per minute by service (a sparkline over the loaded range), the stream's length, memory,
what its MAXLEN holds at the recent rate and what trimming took, each consumer group and
collector (lag, rates, exported, spooled and dead-lettered counts, delivery success) and the
emitters' own reports (``telemetry.events_dropped``, ``telemetry.circuit_changed``). The app
reads it (:mod:`emp_tui.health`, in a worker) when the pane opens and every few seconds while
it shows; the pane only shows what it is given. A figure the server does not give says so.
Every name and value that comes from Redis or an event is made inert before it is shown.
"""

from __future__ import annotations

from collections.abc import Mapping

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Label, Static

from emp_tui.app.messages import HealthRead, HealthWanted
from emp_tui.app.style import (
    ERROR_COLOR,
    MUTED_COLOR,
    NOTICE_COLOR,
    OK_COLOR,
    RATE_COLOR,
    WARN_COLOR,
    service_color,
)
from emp_tui.app.widgets.status_bar import sparkline
from emp_tui.events import DEFAULT_MAXLEN
from emp_tui.health import (
    RECENT_MS,
    collector_rate,
    delivery_success,
    entries_rate,
    number_field,
)
from emp_tui.text import duration, inert, moment

REFRESH_SECONDS = 5.0
"""How often the pane asks for a fresh reading while it shows."""
NOT_AVAILABLE = "not available on this server"
NAME_WIDTH = 16
SPARK_WIDTH = 30


def _label(text: str) -> Text:
    return Text(f"  {text}", "dim")


def _grid() -> Table:
    table = Table.grid(padding=(0, 1))
    table.add_column(no_wrap=True, width=NAME_WIDTH + 2)
    table.add_column(overflow="fold")
    return table


def _title(text: str, note: str = "") -> Text:
    title = Text(text, "bold underline")
    if note:
        title.append(f"  {note}", MUTED_COLOR)
    return title


def _missing(why: str = NOT_AVAILABLE) -> Text:
    return Text(why, f"italic {MUTED_COLOR}")


def _count(fields: Mapping[str, str], name: str) -> str:
    value = number_field(fields, name)
    return "?" if value is None else f"{value:,}"


def _per_minute(value: float) -> str:
    """A rate a minute: ``1,474``, ``24.5``, ``0.35`` (a quiet service is not ``0``)."""
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if value >= 1 or value == 0 else f"{value:.2f}"


def rates_section(reading: HealthRead) -> RenderableType:
    if reading.start_ms is None or reading.end_ms is None or not reading.rates:
        return Group(_title("Events/min by service"), _label("no events loaded"))
    span = f"{moment(reading.start_ms, reading.now_ms)} to {moment(reading.end_ms, reading.now_ms)}"
    note = f"loaded {span} · {reading.events:,} events · {duration(reading.bucket_ms)} a bar"
    table = Table.grid(padding=(0, 1))
    table.add_column(no_wrap=True, width=NAME_WIDTH + 2)
    table.add_column(no_wrap=True, width=SPARK_WIDTH)
    table.add_column(no_wrap=True, justify="right")
    table.add_column(no_wrap=True, overflow="ellipsis")
    for rate in reading.rates:
        color = service_color(rate.service)
        table.add_row(
            Text(f"  {inert(rate.service, NAME_WIDTH)}", color),
            Text(sparkline(rate.counts[-SPARK_WIDTH:]), color),
            Text(f"{_per_minute(rate.per_minute)}/min", "bold"),
            Text(f"peak {_per_minute(rate.peak_per_minute)}/min", MUTED_COLOR),
        )
    return Group(_title("Events/min by service", note), table)


def stream_section(reading: HealthRead) -> RenderableType:
    key = inert(reading.stream_key, 60)
    if not reading.live:
        return Group(_title(f"Stream {key}"), _label("offline: no Redis is read (--file)"))
    state = reading.stream
    if state is None:
        why = reading.error or "not read yet"
        return Group(_title(f"Stream {key}"), Text(f"  {inert(why, 300)}", WARN_COLOR))
    now = reading.now_ms
    table = _grid()
    maxlen = state.maxlen(DEFAULT_MAXLEN)
    table.add_row(
        _label("length"),
        Text(f"{state.length:,}" + (f" (MAXLEN ~{maxlen:,})" if maxlen else ""), "bold"),
    )
    trim = state.trim
    if trim is None:
        table.add_row(_label("trim"), Text(f"MAXLEN ~ {maxlen} (assumed: none recorded)"))
    else:
        by = f"recorded by {inert(trim.service, 40)}"
        if trim.updated_ms is not None:
            by += f" {duration(max(0, now - trim.updated_ms))} ago"
        table.add_row(_label("trim"), Text(f"{trim.describe()} ({by})"))
    memory = state.memory_bytes
    table.add_row(
        _label("memory"),
        Text(f"{memory / 1024:,.0f} KiB") if memory is not None else _missing(),
    )
    first, last = state.first_ms, state.last_ms
    if first is not None and last is not None:
        held = f"{duration(state.span_ms)} ({moment(first, now)} to {moment(last, now)})"
        table.add_row(_label("holds"), Text(held))
    window = (
        f"last {duration(RECENT_MS)}"
        if state.rate_window_ms >= RECENT_MS
        else f"over {duration(state.rate_window_ms)}"
    )
    table.add_row(_label("rate"), Text(f"{state.events_per_minute:,.1f} events/min ({window})"))
    covers = state.covers_ms(maxlen) if maxlen else None
    table.add_row(
        _label("MAXLEN covers"),
        Text(f"{duration(covers)} at this rate")
        if covers
        else _missing("no MAXLEN: trimmed by age" if not maxlen else "no recent events"),
    )
    trimmed = state.trimmed
    if trimmed is None:
        loss: Text = _missing(f"{NOT_AVAILABLE} (XINFO STREAM has no entries-added before 7.0)")
    else:
        added = state.entries_added or 0
        loss = Text(f"{trimmed:,} of {added:,} added", NOTICE_COLOR if trimmed else "")
    table.add_row(_label("trimmed so far"), loss)
    return Group(_title(f"Stream {key}"), table)


def groups_section(reading: HealthRead, before: HealthRead | None = None) -> RenderableType | None:
    state = reading.stream
    if state is None:
        return None
    earlier: dict[str, int | None] = {}
    if before is not None and before.stream is not None:
        earlier = {group.name: group.entries_read for group in before.stream.groups}
    table = _grid()
    # Redis 7 counts what a group read (and its lag) but may not know it for a group made at
    # an ID of its choosing or after deletions; 6.2 never says (its lag is counted by hand).
    unknown = _missing("unknown to Redis") if state.entries_added is not None else _missing()
    for group in state.groups:
        row = Text(f"consumers {group.consumers} · pending {group.pending:,} · lag ")
        row.append_text(unknown if group.lag is None else Text(f"{group.lag:,}"))
        row.append(" · reads ")
        if group.entries_read is None:
            row.append_text(unknown)
        else:
            rate = None
            if before is not None:
                then = earlier.get(group.name)
                rate = entries_rate(before.now_ms, then, reading.now_ms, group.entries_read)
            row.append("-" if rate is None else f"{rate:,.1f}/s", RATE_COLOR)
        row.append(f" · last {inert(group.last_delivered_id, 40)}")
        if state.behind_oldest(group):
            row.append("  trim loss: behind the oldest entry", f"bold {ERROR_COLOR}")
        table.add_row(Text(f"  {inert(group.name, NAME_WIDTH)}", "bold"), row)
    if not state.groups:
        table.add_row(_label("-"), _missing("no consumer group: nothing keeps what is trimmed"))
    return Group(_title("Consumer groups"), table)


def collectors_section(
    reading: HealthRead, previous: Mapping[str, Mapping[str, str]]
) -> RenderableType | None:
    state = reading.stream
    if state is None:
        return None
    now = reading.now_ms
    table = _grid()
    for fields in state.collectors:
        name = fields.get("consumer", "?")
        running = fields.get("state") == "running"
        updated = number_field(fields, "updated_ms")
        head = Text(inert(fields.get("state", "?"), 20), OK_COLOR if running else WARN_COLOR)
        if updated is not None:
            head.append(f" · updated {duration(max(0, now - updated))} ago")
        rss = number_field(fields, "rss_bytes")
        head.append(f" · rss {rss / (1 << 20):,.0f} MB" if rss is not None else " · rss ?")
        head.append(f" · sinks {inert(fields.get('sinks', '?'), 30)}")
        table.add_row(Text(f"  {inert(name, NAME_WIDTH)}", "bold"), head)
        rate, average = collector_rate(fields, previous.get(name))
        reads = Text(f"read {_count(fields, 'read')}")
        if rate is not None:
            reads.append(f" ({rate:,.1f}/s{' since start' if average else ''})", RATE_COLOR)
        reads.append(f" · written {_count(fields, 'written')}")
        reads.append(f" · exported {_count(fields, 'exported')}")
        reads.append(f" · retried {_count(fields, 'retried')}")
        table.add_row("", reads)
        spooled, dead = number_field(fields, "spooled"), number_field(fields, "dead_lettered")
        tail = Text()
        tail.append(f"spooled {_count(fields, 'spooled')}", NOTICE_COLOR if spooled else "")
        tail.append(" · ")
        tail.append(f"dead-lettered {_count(fields, 'dead_lettered')}", ERROR_COLOR if dead else "")
        success = delivery_success(fields)
        tail.append(" · delivery ")
        if "otlp" not in fields.get("sinks", "").split(","):
            tail.append("- (no OTLP sink)", MUTED_COLOR)
        elif success is None:
            tail.append("- (nothing exported yet)", MUTED_COLOR)
        else:
            tail.append(f"{success:.1%}", OK_COLOR if success >= 0.999 else ERROR_COLOR)
        table.add_row("", tail)
        lost = number_field(fields, "trimmed_lost")
        last = Text(f"lag {_count(fields, 'lag')} · pending {_count(fields, 'pending')}")
        last.append(" · trim loss ")
        last.append(f"{lost:,}" if lost is not None else "?", ERROR_COLOR if lost else "")
        last.append(f" · malformed {_count(fields, 'malformed')}")
        table.add_row("", last)
    if not state.collectors:
        table.add_row(_label("-"), _missing("no collector reporting (emp:collector:* hashes)"))
    return Group(_title("Collectors"), table)


def emitters_section(reading: HealthRead) -> RenderableType:
    table = _grid()
    for figures in reading.emitters:
        row = Text()
        if figures.circuit is not None:
            state = inert(figures.circuit, 20)
            row.append("circuit ")
            row.append(state, f"bold {OK_COLOR if state == 'closed' else WARN_COLOR}")
            if figures.circuit_at_ms is not None:
                row.append(f" since {moment(figures.circuit_at_ms, reading.now_ms)}")
            if figures.circuit_reason:
                row.append(f" ({inert(figures.circuit_reason, 40)})")
            row.append(f" · opened {figures.opened} time{'' if figures.opened == 1 else 's'}")
            if figures.spilled:
                row.append(f" · {figures.spilled:,} spilled", NOTICE_COLOR)
        if figures.drop_reports:
            if row:
                row.append(" · ")
            row.append(f"dropped {figures.dropped:,}", f"bold {NOTICE_COLOR}")
            reasons = ", ".join(
                f"{inert(reason, 30)} {count:,}"
                for reason, count in sorted(figures.reasons.items())
            )
            row.append(
                f" in {figures.drop_reports} report(s)" + (f": {reasons}" if reasons else "")
            )
        table.add_row(
            Text(f"  {inert(figures.service, NAME_WIDTH)}", service_color(figures.service)), row
        )
    if not reading.emitters:
        table.add_row(_label("-"), _missing("no drop report and no circuit change in the events"))
    table.add_row(
        _label("buffers"), _missing("emitters publish no buffer counters: their reports above")
    )
    return Group(_title("Emitters", "their own reports, in the loaded events"), table)


def health_view(
    reading: HealthRead,
    previous: Mapping[str, Mapping[str, str]],
    before: HealthRead | None = None,
) -> RenderableType:
    """The whole pane for ``reading`` (``previous``: each collector's hash as last read, for
    its rate; ``before``: the reading before, for the groups' rates)."""
    parts: list[RenderableType] = [rates_section(reading), Text(), stream_section(reading)]
    for section in (groups_section(reading, before), collectors_section(reading, previous)):
        if section is not None:
            parts += [Text(), section]
    parts += [Text(), emitters_section(reading)]
    return Group(*parts)


class HealthScreen(Screen[None]):
    """The pipeline's health, over the main screen; ``h`` or Esc goes back."""

    BINDINGS = [
        Binding("escape,h", "close", "Back", id="health.close"),
        Binding("r", "refresh_now", "Read again", id="health.refresh"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.reading: HealthRead | None = None
        self._previous: dict[str, Mapping[str, str]] = {}
        self._last: dict[str, Mapping[str, str]] = {}

    def compose(self) -> ComposeResult:
        yield Label("Pipeline health", id="health-title")
        with VerticalScroll(id="health-body"):
            yield Static(Text("Reading …", "dim"), id="health-view")
        yield Footer()

    def on_mount(self) -> None:
        self.post_message(HealthWanted())
        self.set_interval(REFRESH_SECONDS, lambda: self.post_message(HealthWanted()))
        self.query_one("#health-body").focus()

    def show(self, reading: HealthRead) -> None:
        """Show ``reading`` (the app gives each one as it comes)."""
        before, self.reading = self.reading, reading
        collectors = reading.stream.collectors if reading.stream is not None else []
        if collectors:
            self._previous, self._last = self._last, {c.get("consumer", "?"): c for c in collectors}
        title = Text("Pipeline health", "bold")
        title.append(f" · {inert(reading.stream_key, 60)}")
        title.append(f" · read at {moment(reading.now_ms, reading.now_ms)}", MUTED_COLOR)
        if reading.live:
            title.append(f" · every {REFRESH_SECONDS:.0f}s", MUTED_COLOR)
        self.query_one("#health-title", Label).update(title)
        view = health_view(reading, self._previous, before)
        self.query_one("#health-view", Static).update(view)

    def action_close(self) -> None:
        self.dismiss(None)

    def action_refresh_now(self) -> None:
        self.post_message(HealthWanted())
