"""`emp-tui lint`: how well the events follow the event standards (:mod:`emp_tui.lint`, with the
``[lint]`` additions of config.toml): the share of actionable events per service against the
target, the types below it, the worst offenders with an example each and the query that shows
them, unknown types and data keys whose type changes.

Exit 0 when every service meets the target, 1 when one does not or there is no event to
score."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from emp_tui.app.style import ERROR_COLOR, OK_COLOR, WARN_COLOR, service_color
from emp_tui.cli.common import (
    EXIT_FOUND,
    EXIT_NOTHING,
    EXIT_USAGE,
    CliError,
    Settings,
    load,
    notes,
    parse_query,
    query_text,
    say,
)
from emp_tui.cli.output import Output
from emp_tui.text import data_summary, local_time

if TYPE_CHECKING:
    from emp_tui.events import TelemetryEvent
    from emp_tui.lint import LintConfig, LintReport

SHOWN_TYPES = 15
"""Event types below 100% listed in the text report (`--json` has them all)."""


def lint_config() -> LintConfig:
    """config.toml's ``[lint]`` (a wrong one is bad usage); the defaults where the lean
    install cannot look for config.toml."""
    from emp_tui.config import ConfigError, load_app_config
    from emp_tui.lint import LintConfig

    try:
        return load_app_config().lint
    except ConfigError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    except ImportError:  # no platformdirs: config.toml cannot be found, only EMP_TUI_CONFIG
        return LintConfig()


def run_lint(args: argparse.Namespace, settings: Settings, out: Output) -> int:
    from emp_tui.lint import lint

    if args.offenders < 0:
        raise CliError("--offenders must be 0 or more", EXIT_USAGE)
    config = lint_config()
    query = parse_query(query_text(args), settings)
    loaded = load(settings, query)
    notes(loaded.notes)
    if not loaded.events:
        say(f"no events to score{f' (query {query.text!r})' if query.text else ''}")
        return EXIT_NOTHING
    report = lint(loaded.events, config, offenders=args.offenders)
    if out.json:
        for record in report.records():
            out.record(record)
    else:
        _report(out, report)
    return EXIT_FOUND if all(s.meets_target for s in report.services) else EXIT_NOTHING


def _example(event: TelemetryEvent) -> str:
    ids = " ".join(
        f"{label}={value}"
        for label, value in (("job", event.job_id), ("worker", event.worker_id))
        if value
    )
    return f"{local_time(event.timestamp)}  {ids}  {data_summary(event.data, 80)}".rstrip()


def _report(out: Output, report: LintReport) -> None:
    below = [s.service for s in report.services if not s.meets_target]
    out.line(
        ("Event standards: ", "bold"),
        (
            f"{report.share:.1%} of {report.events:,} events actionable",
            f"bold {OK_COLOR if report.meets_target else ERROR_COLOR}",
        ),
        f" (target {report.target:.0%} per service)",
        (f"; below it: {', '.join(below)}" if below else "; every service meets it", "bold"),
    )
    out.line(("Services", "bold"), " (worst first)")
    for score in report.services:
        rules = ", ".join(f"{rule} {count:,}" for rule, count in score.by_rule.items())
        out.line(
            (
                "  ✓ " if score.meets_target else "  ✖ ",
                OK_COLOR if score.meets_target else ERROR_COLOR,
            ),
            (f"{score.service:<18}", service_color(score.service)),
            (f"{score.share:>7.1%}", "bold"),
            (f"  {score.actionable:,} of {score.events:,}", "dim"),
            f"  {rules}" if rules else "",
        )
    flawed = [t for t in report.types if t.actionable < t.events]
    if flawed:
        out.line(("Event types below 100%", "bold"), f" ({len(flawed)}, worst first)")
        for kind in flawed[:SHOWN_TYPES]:
            problems = "; ".join(f"{p} x{n:,}" for p, n in kind.problems.items())
            out.line(
                f"  {kind.event_type:<34}",
                (f"{kind.share:>7.1%}", "bold"),
                (f"  {kind.actionable:,} of {kind.events:,}", "dim"),
                f"  {', '.join(kind.services)}  ",
                (problems, WARN_COLOR),
            )
        if len(flawed) > SHOWN_TYPES:
            out.line((f"  … {len(flawed) - SHOWN_TYPES} more: --json lists them all", "dim"))
    if report.offenders:
        out.line(
            ("Worst offenders", "bold"),
            f" ({len(report.offenders)} of {report.offender_groups} ways events break the rules)",
        )
        for offender in report.offenders:
            out.line(
                (f"  {offender.count:>6,}x ", "bold"),
                (offender.service, service_color(offender.service)),
                f" {offender.event_type}: ",
                (offender.message, WARN_COLOR),
                (f"  [{offender.rule}]", "dim"),
            )
            out.line(("          e.g. ", "dim"), _example(offender.example))
            if offender.evidence:
                out.line(("          search ", "dim"), offender.evidence)
    if report.unknown_types:
        out.line(("Unknown event types", "bold"), f" ({len(report.unknown_types)})")
        for unknown in report.unknown_types:
            similar = f", like {unknown.similar}" if unknown.similar else ""
            one_off = ", one-off" if unknown.one_off else ""
            out.line(
                f"  {unknown.event_type:<34}",
                (f"x{unknown.count:,}{one_off}{similar}", WARN_COLOR),
                (f"  from {', '.join(unknown.services)}", "dim"),
            )
    if report.type_changes:
        out.line(("Data keys whose type changes", "bold"), f" ({len(report.type_changes)})")
        for change in report.type_changes:
            kinds = ", ".join(
                f"{json_type} x{count:,}" for json_type, count in change.types.items()
            )
            out.line(f"  {change.event_type} data.{change.key}: ", (kinds, WARN_COLOR))
            for json_type, event in change.examples.items():
                out.line((f"      {json_type}: ", "dim"), _example(event))
    if report.capped_types:
        out.line(
            (
                "Data keys past the cap were not followed for: " + ", ".join(report.capped_types),
                "dim",
            )
        )
