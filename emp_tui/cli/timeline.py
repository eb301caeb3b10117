"""`emp-tui timeline` (a job's steps, gaps and handoffs) and `emp-tui correlate` (the same with
the events of its trace, and of its workers and machines over its life and just after it)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from emp_tui.app.style import ERROR_COLOR, OK_COLOR, PENDING_COLOR, WARN_COLOR, service_color
from emp_tui.cli.common import (
    EXIT_FOUND,
    EXIT_USAGE,
    CliError,
    Settings,
    duration_option,
    holdings,
    job_context,
    notes,
    sources_now,
)
from emp_tui.cli.output import Output, event_line
from emp_tui.config import DEFAULT_GAP_MS, DEFAULT_STALL_THRESHOLD_MS
from emp_tui.text import duration, offset

if TYPE_CHECKING:
    from emp_tui.analysis import Gap, Handoff, Timeline
    from emp_tui.history import Holdings

_HANDOFF_STYLE = {True: f"bold {ERROR_COLOR}", False: "bold"}
_STATUS_STYLE = {
    "completed": OK_COLOR,
    "failed": f"bold {ERROR_COLOR}",
    "stalled": WARN_COLOR,
    "queued": PENDING_COLOR,
}


def gap_record(gap: Gap) -> dict[str, Any]:
    return {
        "kind": "gap",
        "gapKind": gap.kind,
        "afterIndex": gap.after_index,
        "startMs": gap.start_ms,
        "endMs": gap.end_ms,
        "durationMs": gap.duration_ms,
        "usualP95Ms": gap.usual_p95_ms,
        "from": {"service": gap.from_service, "eventType": gap.from_type},
        "to": {"service": gap.to_service, "eventType": gap.to_type},
    }


def handoff_record(handoff: Handoff) -> dict[str, Any]:
    return {
        "kind": "handoff",
        "from": handoff.from_service,
        "to": handoff.to_service,
        "fromType": handoff.from_type,
        "toType": handoff.to_type,
        "startMs": handoff.start_ms,
        "endMs": handoff.end_ms,
        "durationMs": handoff.duration_ms,
        "error": handoff.error,
    }


def timeline_record(
    timeline: Timeline, held: Holdings, now: int, usual_from: str | None = None
) -> dict[str, Any]:
    """The summary line: the job, and ``nowMs`` it was judged at (the one rule's "now"), where
    the sources begin and, when its first event held is not its creation and comes soon after
    that, how long after (``missingStartMs``: its start may be cut)."""
    from emp_tui.analysis import missing_start

    return {
        "kind": "summary",
        "jobId": timeline.job_id,
        "status": timeline.status,
        "startMs": timeline.start_ms,
        "endMs": timeline.end_ms,
        "durationMs": timeline.duration_ms,
        "services": timeline.services,
        "events": len(timeline.steps),
        "gaps": len(timeline.gaps),
        "silentMs": timeline.silent_ms,
        "nowMs": now,
        "sourcesStartMs": held.first_ms,
        "missingStartMs": missing_start(timeline.events, held.first_ms),
        "usualFrom": usual_from,
    }


def gap_text(gap: Gap, gap_ms: int) -> str:
    if gap.kind == "threshold":
        why = f"over {duration(gap_ms)}"
        if gap.usual_p95_ms is not None:
            why += f"; usually p95 {duration(gap.usual_p95_ms)}"
    else:
        why = f"slower than usual: p95 {duration(gap.usual_p95_ms)}"
    return (
        f"gap {duration(gap.duration_ms)} ({why}) {gap.from_service} {gap.from_type} → "
        f"{gap.to_service} {gap.to_type}"
    )


def _print_header(out: Output, timeline: Timeline, held: Holdings) -> None:
    from emp_tui.analysis import missing_start

    out.line(
        ("Job ", "bold"),
        (timeline.job_id, "bold cyan"),
        "  ",
        (timeline.status, _STATUS_STYLE.get(timeline.status, "")),
        f"  {duration(timeline.duration_ms)}  {len(timeline.steps)} event(s)  ",
        " → ".join(timeline.services),
    )
    lead = missing_start(timeline.events, held.first_ms)
    if lead is not None and timeline.steps:
        out.line(
            ("  may lack its start: ", f"bold {WARN_COLOR}"),
            (
                f"its first event held is not its creation and comes {duration(lead)} after "
                "the oldest event the sources hold; earlier ones were trimmed away or never read",
                WARN_COLOR,
            ),
        )


def _print_usual_from(out: Output, usual_from: str | None) -> None:
    if usual_from is not None:
        out.line((f"  {usual_from}", "dim"))


def _print_gaps(out: Output, gaps: list[Gap], gap_ms: int) -> None:
    out.line(("Gaps", "bold"), f" ({len(gaps)})")
    for gap in gaps:
        out.line("  ", (gap_text(gap, gap_ms), WARN_COLOR))


def _print_handoffs(out: Output, handoffs: list[Handoff]) -> None:
    out.line(("Handoffs", "bold"), f" ({len(handoffs)})")
    for handoff in handoffs:
        out.line(
            "  ",
            (f"{handoff.from_service:>16}", service_color(handoff.from_service)),
            " → ",
            (f"{handoff.to_service:<16}", service_color(handoff.to_service)),
            (
                f"{duration(handoff.duration_ms):>8}",
                f"bold {ERROR_COLOR}" if handoff.error else "bold",
            ),
            (f"  {handoff.from_type} → {handoff.to_type}", "dim"),
        )


def run_timeline(args: argparse.Namespace, settings: Settings, out: Output) -> int:
    from emp_tui.analysis import job_handoffs, job_timeline

    gap_ms = duration_option(args.gap, "--gap", DEFAULT_GAP_MS)
    context = job_context(settings, args.job_id)
    notes(context.notes)
    # Live (Redis): an open job is silent up to now. Files alone are a recording: up to their
    # newest event, or every open job in an old log would look silent for days.
    held = holdings(settings)
    now = sources_now(settings, held)
    timeline = job_timeline(
        context.events, args.job_id, gap_ms=gap_ms, reference=context.reference, now_ms=now
    )
    handoffs = job_handoffs(timeline.events, args.job_id)
    if out.json:
        out.record(timeline_record(timeline, held, now, context.usual_from))
        for step in timeline.steps:
            out.record(
                {
                    "kind": "step",
                    "offsetMs": step.offset_ms,
                    "deltaMs": step.delta_ms,
                    "serviceChanged": step.service_changed,
                    "gap": step.gap is not None,
                    "event": step.event.to_dict(),
                }
            )
        for gap in timeline.gaps:
            out.record(gap_record(gap))
        for handoff in handoffs:
            out.record(handoff_record(handoff))
        return EXIT_FOUND
    _print_header(out, timeline, held)
    if timeline.silent_ms is not None and timeline.silent_ms >= gap_ms:
        out.line(
            (
                "  waiting for " if timeline.status == "queued" else "  silent for ",
                f"bold {WARN_COLOR}",
            ),
            (duration(timeline.silent_ms), f"bold {WARN_COLOR}"),
            ("  since its last event, with no terminal event", WARN_COLOR),
        )
    _print_usual_from(out, context.usual_from)
    out.line(("      offset      delta  time", "dim"))
    for step in timeline.steps:
        if step.gap is not None:
            out.line(("  ── ", WARN_COLOR), (gap_text(step.gap, gap_ms), f"bold {WARN_COLOR}"))
        delta_style = f"bold {WARN_COLOR}" if step.gap else "dim"
        event_line(
            out,
            step.event,
            prefix=(
                (f"{offset(step.offset_ms):>12}", ""),
                (f"{offset(step.delta_ms):>11}", delta_style),
                ("  ", ""),
            ),
        )
    _print_gaps(out, timeline.gaps, gap_ms)
    _print_handoffs(out, handoffs)
    return EXIT_FOUND


DEFAULT_RELATED_LIMIT = 50
"""Related events `correlate` lists unless --limit says otherwise."""


def run_correlate(args: argparse.Namespace, settings: Settings, out: Output) -> int:
    from emp_tui.analysis import correlate

    gap_ms = duration_option(args.gap, "--gap", DEFAULT_GAP_MS)
    after_ms = duration_option(args.after, "--after", DEFAULT_STALL_THRESHOLD_MS)
    limit = DEFAULT_RELATED_LIMIT if args.limit is None else args.limit
    if limit < 1:
        raise CliError("--limit must be at least 1", EXIT_USAGE)
    context = job_context(settings, args.job_id, related=True, after_ms=after_ms)
    notes(context.notes)
    held = holdings(settings)
    now = sources_now(settings, held)  # as timeline's: they agree on a job's silence
    found = correlate(
        context.events,
        args.job_id,
        gap_ms=gap_ms,
        after_ms=after_ms,
        now_ms=now,
        reference=context.reference,
    )
    related = found.most_telling(limit)
    left_out = len(found.related) - len(related)
    if out.json:
        summary = timeline_record(found.timeline, held, now, context.usual_from)
        summary["traceIds"] = found.trace_ids
        summary["windowStartMs"] = found.window_start_ms
        summary["windowEndMs"] = found.window_end_ms
        summary["related"] = len(found.related)
        summary["relatedShown"] = len(related)
        out.record(summary)
        for gap in found.timeline.gaps:
            out.record(gap_record(gap))
        for handoff in found.handoffs:
            out.record(handoff_record(handoff))
        for item in related:
            out.record(
                {
                    "kind": "related",
                    "by": list(item.by),
                    "keys": list(item.keys),
                    "event": item.event.to_dict(),
                }
            )
        return EXIT_FOUND
    _print_header(out, found.timeline, held)
    _print_usual_from(out, context.usual_from)
    out.line(("Trace ", "dim"), ", ".join(found.trace_ids) or "-")
    _print_gaps(out, found.timeline.gaps, gap_ms)
    _print_handoffs(out, found.handoffs)
    shown = f"{len(related)} of {len(found.related)}" if left_out else f"{len(related)}"
    out.line(
        ("Related events", "bold"),
        f" ({shown}: its trace; its workers' and machines' over its life and "
        f"{duration(after_ms)} after its last event)",
    )
    for item in related:
        label = ",".join(f"{by}:{key[:16]}" for by, key in zip(item.by, item.keys, strict=True))
        event_line(out, item.event, prefix=((f"  {label:<24} ", "dim"),))
    if left_out:
        out.line(
            (
                f"  … {left_out} more (the furthest from the job, other jobs' first): --limit N",
                "dim",
            )
        )
    return EXIT_FOUND
