"""`emp-tui perf`: counts, errors and durations per event type."""

from __future__ import annotations

import argparse

from emp_tui.app.style import ERROR_COLOR
from emp_tui.cli.common import (
    EXIT_FOUND,
    EXIT_NOTHING,
    Settings,
    load,
    notes,
    parse_query,
    query_text,
    say,
)
from emp_tui.cli.output import Output
from emp_tui.text import duration, local_time

_COLUMNS = (
    ("event type", "left"),
    ("count", "right"),
    ("errors", "right"),
    ("timed", "right"),
    ("avg", "right"),
    ("p50", "right"),
    ("p95", "right"),
    ("max", "right"),
    ("services", "left"),
)


def run_perf(args: argparse.Namespace, settings: Settings, out: Output) -> int:
    from emp_tui.analysis import event_type_stats

    query = parse_query(query_text(args), settings)
    loaded = load(settings, query)
    notes(loaded.notes)
    if not loaded.events:
        say("no events")
        return EXIT_NOTHING
    stats = event_type_stats(loaded.events)
    if out.json:
        for s in stats:
            out.record(
                {
                    "eventType": s.event_type,
                    "count": s.count,
                    "errors": s.errors,
                    "timed": s.timed,
                    "avgMs": s.avg_ms,
                    "p50Ms": s.p50_ms,
                    "p95Ms": s.p95_ms,
                    "maxMs": s.max_ms,
                    "services": s.services,
                }
            )
        return EXIT_FOUND
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for name, justify in _COLUMNS:
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for s in stats:
        table.add_row(
            out.text((s.event_type, "bold")),
            str(s.count),
            out.text((str(s.errors), ERROR_COLOR if s.errors else "dim")),
            str(s.timed),
            duration(s.avg_ms),
            duration(s.p50_ms),
            duration(s.p95_ms),
            duration(s.max_ms),
            out.text(", ".join(s.services)),
        )
    out.console.print(table)
    first, last = loaded.events[0], loaded.events[-1]
    say(
        f"{len(loaded.events)} event(s) from {local_time(first.timestamp)} "
        f"to {local_time(last.timestamp)}"
    )
    return EXIT_FOUND
