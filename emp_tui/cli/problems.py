"""`emp-tui problems`: what is wrong over the events (:func:`emp_tui.problems.find_problems`),
most severe then newest first, each with its evidence (a filter for `emp-tui search`, a job
for `emp-tui timeline`). From Redis it also reads the collectors' health hashes and the
stream's state (XINFO), so that trim loss and a collector that lags or is absent show.

Exit 0 when something was found, 1 when nothing was (as grep)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from emp_tui.app.style import MUTED_COLOR, severity_mark, severity_text_style
from emp_tui.cli.common import (
    EXIT_FOUND,
    EXIT_NOTHING,
    EXIT_SOURCE,
    EXIT_USAGE,
    CliError,
    Settings,
    duration_option,
    load,
    notes,
    parse_query,
    query_text,
    reading_now_ms,
    redis_client,
    say,
)
from emp_tui.cli.output import Output
from emp_tui.config import DEFAULT_GAP_MS, DEFAULT_STALL_THRESHOLD_MS
from emp_tui.text import clock, iso_time

if TYPE_CHECKING:
    from emp_tui.problems import Finding, StreamState


def pipeline_health(settings: Settings) -> tuple[list[dict[str, str]], StreamState | None]:
    """The collectors' health hashes and the stream's state (None: no such stream)."""
    import redis
    from redis.exceptions import RedisClusterException

    from emp_tui.health import read_collectors_sync
    from emp_tui.problems import StreamState
    from emp_tui.topology import shard_keys

    client = redis_client(settings)
    try:
        collectors = read_collectors_sync(client)
        shards = []
        for key in shard_keys(settings.stream, settings.shards):
            try:
                info: Any = client.xinfo_stream(key)
                groups: Any = client.xinfo_groups(key)
            except redis.ResponseError:  # no such stream (shard)
                continue
            shards.append(StreamState.from_xinfo(key, info, groups))
        if not shards:
            return collectors, None
        return collectors, StreamState.combined(settings.stream, shards)
    except (redis.RedisError, OSError, RedisClusterException) as exc:
        raise CliError(f"lost Redis: {exc}", EXIT_SOURCE) from None
    finally:
        client.close()


def run_problems(args: argparse.Namespace, settings: Settings, out: Output) -> int:
    from emp_tui.problems import KINDS, SEVERITY_RANK, find_problems

    gap_ms = duration_option(args.gap, "--gap", DEFAULT_GAP_MS)
    stall_ms = duration_option(args.stall, "--stall", DEFAULT_STALL_THRESHOLD_MS)
    kinds = {kind.strip() for kind in (args.kind or "").split(",") if kind.strip()}
    unknown = sorted(kinds - set(KINDS))
    if unknown:
        raise CliError(
            f"unknown --kind {', '.join(unknown)} (kinds: {', '.join(KINDS)})", EXIT_USAGE
        )
    query = parse_query(query_text(args), settings)
    loaded = load(settings, query)
    notes(loaded.notes)
    collectors: list[dict[str, str]] | None = None
    stream: StreamState | None = None
    if settings.use_redis:
        collectors, stream = pipeline_health(settings)
    events = loaded.events
    now = reading_now_ms(settings, query.until_ms)
    floor = SEVERITY_RANK[args.min_severity]
    findings = [
        finding
        for finding in find_problems(
            events,
            now_ms=now,
            gap_ms=gap_ms,
            stall_ms=stall_ms,
            collectors=collectors,
            stream=stream,
        )
        if SEVERITY_RANK[finding.severity] >= floor and (not kinds or finding.kind in kinds)
    ]
    if out.json:
        for finding in findings:
            out.record(finding.to_dict())
    else:
        _report(out, findings, len(events), now)
    if not findings:
        if out.json or not events:
            say(f"no problems found in {len(events):,} event(s)")
        return EXIT_NOTHING
    return EXIT_FOUND


def _report(out: Output, findings: list[Finding], events: int, now: int) -> None:
    from emp_tui.problems import KINDS

    width = max(map(len, KINDS)) + 2  # the kind, and a gap before the title
    counts: dict[str, int] = {}
    for finding in findings:
        counts[finding.severity] = counts.get(finding.severity, 0) + 1
    tally = ", ".join(f"{count} {severity}" for severity, count in counts.items())
    out.line(
        (f"{len(findings)} problem(s)", "bold"),
        f" ({tally})" if tally else "",
        (f" in {events:,} event(s), now {iso_time(now)} (times in UTC)", "dim"),
    )
    for finding in findings:
        mark, mark_style = severity_mark(finding.severity)
        out.line(
            (mark, mark_style),
            " ",
            (f"{finding.severity:<8}", mark_style),
            (clock(finding.last_ms)[:8], MUTED_COLOR),
            "  ",
            (f"{finding.kind:<{width}}", "bold"),
            (finding.title, severity_text_style(finding.severity)),
        )
        if finding.job_id:
            out.line(("    job       ", "dim"), (finding.job_id, "cyan"))
        if finding.evidence:
            out.line(("    evidence  ", "dim"), finding.evidence)
