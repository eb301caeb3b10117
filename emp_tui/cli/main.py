"""``main``: parse the command line, run the command (or the app, or the demo), and turn every
failure into one line and its exit code."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Final

from emp_tui.cli.common import (
    APP_REQUIRES,
    EXIT_FOUND,
    EXIT_INTERNAL,
    EXIT_USAGE,
    CliError,
    Settings,
    parse_query,
    require,
    say,
    settings_from,
)
from emp_tui.cli.output import Output
from emp_tui.cli.parser import DELEGATED, build_parser
from emp_tui.text import inert

Runner = Callable[[argparse.Namespace, Settings, Output], int]


RUNNERS: Final[dict[str, tuple[str, str]]] = {
    "search": ("search", "run_search"),
    "stream": ("search", "run_stream"),
    "timeline": ("timeline", "run_timeline"),
    "correlate": ("timeline", "run_correlate"),
    "perf": ("perf", "run_perf"),
    "health": ("health", "run_health"),
    "export": ("export", "run_export"),
    "problems": ("problems", "run_problems"),
    "lint": ("lint", "run_lint"),
    "serve": ("serve", "run_serve"),
}
"""Each command's module (in emp_tui.cli) and the function that runs it."""


def runner(command: str) -> Runner:
    """The function that runs ``command`` (one of parser.COMMANDS). Its module is imported
    only now: the app, and each command, start without the code of the others. Raises
    KeyError for a command there is none of."""
    module, name = RUNNERS[command]
    run: Runner = getattr(importlib.import_module(f"emp_tui.cli.{module}"), name)
    return run


def _run_app(args: argparse.Namespace, settings: Settings) -> int:
    if args.filter:
        parse_query(args.filter)
    require(APP_REQUIRES, "the app")
    try:
        from emp_tui.app import run_app
    except ImportError as exc:
        raise CliError(f"the app cannot start: {exc}", EXIT_USAGE) from None
    return int(
        run_app(
            # Only what the flags say: the app layers the environment and config.toml under
            # them, and --file alone stays offline.
            redis_url=settings.redis_url if settings.redis_explicit else None,
            stream=getattr(args, "stream", None),
            files=settings.files,
            job_id=args.job,
            query=args.filter,
            since=args.app_since,
            until=args.app_until,
        )
    )


def _run_delegated(argv: list[str]) -> int:
    try:
        from emp_tui.demo import main as demo_main
    except ImportError as exc:
        raise CliError(f"'{argv[0]}' is not available: {exc}", EXIT_USAGE) from None
    return int(demo_main(argv))


@contextmanager
def _quiet_broken_pipe() -> Iterator[None]:
    """`emp-tui search ... | head` must end quietly when head has read enough."""
    try:
        yield
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise SystemExit(EXIT_FOUND) from None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        with _quiet_broken_pipe():
            parser = build_parser()
            command = parser.command_index(argv)
            if command is not None and argv[command] in DELEGATED:
                return _run_delegated(argv[command:])
            args = parser.parse_args(parser.mark_negated_terms(argv))
            settings = settings_from(args)
            if args.command is None:
                return _run_app(args, settings)
            out = Output(settings.json)
            code = runner(args.command)(args, settings, out)
            out.flush()
            return code
    except CliError as exc:
        say(str(exc))
        if exc.detail:
            print("\n".join(inert(line) for line in exc.detail.split("\n")), file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the last line of defence: one line, no traceback
        if os.environ.get("EMP_TUI_DEBUG"):
            raise
        say(f"internal error: {type(exc).__name__}: {exc} (EMP_TUI_DEBUG=1 shows the traceback)")
        return EXIT_INTERNAL
