"""The arguments of `emp-tui` and its subcommands.

A query word may start with ``-`` (``emp-tui search '-service:monitor'``): argparse would take
it for an option, so :meth:`CliParser.mark_negated_terms` marks such words before parsing (the
exact options ``-h`` and ``-o`` stay options, as does the value after an option that takes one).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Final, NoReturn

from emp_tui import __version__
from emp_tui.cli.common import EXIT_USAGE, NEGATED_MARK, SERVE_HOST, SERVE_PORT, CliError
from emp_tui.config import DEFAULT_GAP_MS, DEFAULT_STALL_THRESHOLD_MS
from emp_tui.export import FORMATS
from emp_tui.text import duration

COMMANDS: Final = (
    "search",
    "stream",
    "timeline",
    "correlate",
    "perf",
    "health",
    "export",
    "problems",
    "lint",
    "serve",
)
QUERY_COMMANDS: Final = frozenset({"search", "stream", "perf", "export", "lint"})
"""The commands whose positional arguments are query words."""
DELEGATED: Final = ("demo", "sim")
"""Commands with parsers of their own (emp_tui.demo): everything after them is theirs."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad usage as a CliError (one line, exit 2) instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise CliError(f"{message} (see {self.prog} --help)", EXIT_USAGE)


class CliParser(_Parser):
    """The `emp-tui` parser; it knows which of its options take a value, which it needs to
    find the command in an argument list and to tell options from negated query words."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.valued: set[str] = set()
        self.short: set[str] = {"-h"}

    def option(self, parser: Any, *names: str, **kwargs: Any) -> None:
        """``parser.add_argument`` for an option of this command line (``parser``: this one,
        a subcommand's, or a group), remembering the ones that take a value."""
        parser.add_argument(*names, **kwargs)
        if kwargs.get("action") != "store_true":
            self.valued.update(names)
        self.short.update(name for name in names if not name.startswith("--"))

    def command_index(self, argv: list[str]) -> int | None:
        """Where the command stands in ``argv`` (after the global options), or None."""
        index = 0
        while index < len(argv) and argv[index].startswith("-"):
            index += 2 if argv[index] in self.valued else 1
        if index < len(argv) and argv[index] in (*COMMANDS, *DELEGATED):
            return index
        return None

    def mark_negated_terms(self, argv: list[str]) -> list[str]:
        """``argv`` with the query words that start with ``-`` marked (see NEGATED_MARK)."""
        index = self.command_index(argv)
        if index is None or argv[index] not in QUERY_COMMANDS:
            return argv
        out = argv[: index + 1]
        value_next = False
        for position in range(index + 1, len(argv)):
            token = argv[position]
            if token == "--":
                out += argv[position:]
                break
            if value_next:
                value_next = False
            elif self._is_negated_term(token):
                token = NEGATED_MARK + token
            else:
                value_next = token in self.valued
            out.append(token)
        return out

    def _is_negated_term(self, token: str) -> bool:
        return (
            token.startswith("-")
            and not token.startswith("--")
            and len(token) > 1
            and token not in self.short
        )


def _global_options(cli: CliParser, parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """The options every command takes, before or after the command: added to ``parser`` (the
    main one, or a parent of the subcommands' with ``suppress``, so that a value given before
    the command is not reset by the subcommand's default)."""
    default: Any = argparse.SUPPRESS if suppress else None
    group = parser.add_argument_group("sources and output")
    cli.option(
        group,
        "--redis-url",
        metavar="URL",
        default=default,
        help="Redis URL (default: $REDIS_URL, else $REDIS_HOST/$REDIS_PORT)",
    )
    cli.option(
        group,
        "--stream",
        metavar="KEY",
        default=default,
        help="stream key (default: $EMP_EVENTS_STREAM or emp:events)",
    )
    cli.option(
        group,
        "--file",
        metavar="PATH",
        action="append",
        type=Path,
        default=default if suppress else [],
        help="read a log or export file (or a directory of them); repeatable. "
        "Redis is read too only when --redis-url is also given",
    )
    cli.option(
        group,
        "--json",
        action="store_true",
        default=default if suppress else False,
        help="one JSON object per line",
    )


def _query_words(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "query",
        nargs="*",
        metavar="QUERY",
        help="a query, e.g. 'service:worker type:job.* since:10m' (several words are joined; "
        "'-service:monitor' negates a term)",
    )


def _time_shortcuts(cli: CliParser, parser: argparse.ArgumentParser) -> None:
    cli.option(parser, "--since", metavar="TIME", help="same as since:TIME")
    cli.option(parser, "--until", metavar="TIME", help="same as until:TIME")
    cli.option(parser, "--last", metavar="DURATION", help="same as since:DURATION (e.g. 1h)")


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"bad port {text!r}: use 0 to 65535")
    return int(text)


def build_parser() -> CliParser:
    cli = CliParser(
        prog="emp-tui",
        description="A terminal debugger for the EMP job platform's telemetry events. "
        "With no command it opens the app.",
        epilog="Exit codes: 0 found, 1 nothing matched, 2 bad usage or query, "
        "3 source unreachable or unreadable, 4 internal error.",
    )
    _global_options(cli, cli, suppress=False)
    cli.add_argument("--version", action="version", version=f"emp-tui {__version__}")
    cli.option(cli, "--job", metavar="JOB_ID", help="open the app on this job's timeline")
    cli.option(cli, "--filter", metavar="QUERY", help="open the app with this filter")
    cli.option(
        cli,
        "--since",
        dest="app_since",
        metavar="TIME",
        help="open the app on history since TIME (10m, 2h, 16:42, an ISO-8601 date; default: the "
        "last 15 minutes the sources hold, config.toml's window)",
    )
    cli.option(
        cli, "--until", dest="app_until", metavar="TIME", help="open the app on history until TIME"
    )
    sub = cli.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    parent = _Parser(add_help=False)
    _global_options(cli, parent, suppress=True)
    common = [parent]
    gap = f"a step longer than this is a gap (default {duration(DEFAULT_GAP_MS)})"

    p = sub.add_parser("search", parents=common, help="events matching a query")
    _query_words(p)
    cli.option(p, "--limit", type=int, metavar="N", help="only the N most recent matches")
    cli.option(p, "--job-id", metavar="ID", help="same as job:ID")
    cli.option(p, "--service", metavar="NAME", help="same as service:NAME")
    cli.option(p, "--type", metavar="TYPE", help="same as type:TYPE")
    _time_shortcuts(cli, p)

    p = sub.add_parser("stream", parents=common, help="follow new events live until Ctrl+C")
    _query_words(p)
    cli.option(p, "--service", metavar="NAME", help="same as service:NAME")
    cli.option(p, "--job-id", metavar="ID", help="same as job:ID")

    p = sub.add_parser("timeline", parents=common, help="a job's events, gaps and handoffs")
    p.add_argument("job_id", metavar="JOB_ID")
    cli.option(p, "--gap", metavar="DURATION", help=gap)

    p = sub.add_parser(
        "correlate", parents=common, help="a job's gaps, handoffs and related events"
    )
    p.add_argument("job_id", metavar="JOB_ID")
    cli.option(p, "--gap", metavar="DURATION", help=gap)
    cli.option(
        p,
        "--after",
        "--window",
        dest="after",
        metavar="DURATION",
        help="events of the job's workers and machines over its whole life and this long "
        f"after its last event (default {duration(DEFAULT_STALL_THRESHOLD_MS)}, the stall "
        "threshold)",
    )
    cli.option(
        p,
        "--limit",
        type=int,
        metavar="N",
        help="at most N related events: the workers' and machines' own first, then the "
        "nearest to the job (default 50)",
    )

    p = sub.add_parser("perf", parents=common, help="per-event-type counts and durations")
    _query_words(p)
    _time_shortcuts(cli, p)

    p = sub.add_parser("health", parents=common, help="the stream, its readers and collectors")
    cli.option(
        p,
        "--maxlen",
        type=int,
        default=10_000,
        metavar="N",
        help="the MAXLEN the emitters trim to (default 10000)",
    )

    p = sub.add_parser("export", parents=common, help="write matching events to a file")
    _query_words(p)
    cli.option(
        p, "-o", "--output", required=True, metavar="FILE", help="the file to write; - is stdout"
    )
    cli.option(
        p,
        "--format",
        choices=FORMATS,
        help="default: from FILE (.csv, .json, .trace.json), else jsonl",
    )
    cli.option(p, "--force", action="store_true", help="overwrite FILE if it exists")
    _time_shortcuts(cli, p)

    p = sub.add_parser(
        "problems",
        parents=common,
        help="what is wrong: stalled and orphaned jobs, failure bursts, slow jobs, ...",
        description="Every detector of emp_tui.problems over the events (and, from Redis, "
        "the collectors' health and the stream's state). Exit 0 when something was found, "
        "1 when nothing was.",
    )
    _time_shortcuts(cli, p)
    cli.option(p, "--gap", metavar="DURATION", help=gap)
    cli.option(
        p,
        "--stall",
        metavar="DURATION",
        help="an open job quiet this long is stalled "
        f"(default {duration(DEFAULT_STALL_THRESHOLD_MS)})",
    )
    cli.option(
        p,
        "--min-severity",
        choices=("info", "warn", "error", "critical"),
        default="info",
        help="only findings this severe or more (default info: all)",
    )
    cli.option(
        p, "--kind", metavar="KIND[,KIND]", help="only findings of these kinds (e.g. stalled)"
    )

    p = sub.add_parser(
        "lint",
        parents=common,
        help="the event standards: naming, required fields, a score per service",
        description="Score the events against the event standards (README: Event standards "
        "and quality; [lint] in config.toml extends them). Exit 0 when every service meets "
        "the target, 1 when one does not (or there is no event to score).",
    )
    _query_words(p)
    _time_shortcuts(cli, p)
    cli.option(
        p,
        "--offenders",
        type=int,
        default=10,
        metavar="N",
        help="list the N worst ways events break the rules (default 10)",
    )

    p = sub.add_parser(
        "serve",
        parents=common,
        help="the app in a browser: one app per tab (textual-serve; no authentication)",
        description="Serve the app to browsers: each tab that opens the page runs its own app "
        "with the options given here. textual-serve has no authentication, so it listens on "
        "127.0.0.1 unless --host says otherwise.",
    )
    cli.option(
        p,
        "--host",
        default=SERVE_HOST,
        metavar="HOST",
        help=f"address to listen on (default {SERVE_HOST}; anything else is reachable by others)",
    )
    cli.option(
        p,
        "--port",
        type=_port,
        default=SERVE_PORT,
        metavar="PORT",
        help=f"port to listen on (default {SERVE_PORT}; 0 picks a free one)",
    )
    cli.option(
        p,
        "--public-url",
        metavar="URL",
        help="the URL browsers reach the server by, when it is not http://HOST:PORT "
        "(a proxy in front)",
    )
    # SUPPRESS: given before `serve`, the main parser's value stands.
    cli.option(
        p, "--job", metavar="JOB_ID", default=argparse.SUPPRESS, help="open on this job's timeline"
    )
    cli.option(
        p, "--filter", metavar="QUERY", default=argparse.SUPPRESS, help="open with this filter"
    )

    delegated_help = {
        "demo": "simulated EMP services over a real Redis, shown in the app (see `emp-tui "
        "demo -h`)",
        "sim": "the simulated services alone, into the Redis given (see `emp-tui sim -h`)",
    }
    for name in DELEGATED:
        sub.add_parser(name, help=delegated_help[name])
    return cli
