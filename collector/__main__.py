"""``emp-collector`` / ``python -m collector``: the headless collector's command line."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import NoReturn

from collector.config import SETTINGS, ConfigError, Settings, load_settings, require_sink
from emp_tui.text import escape

PROG = "emp-collector"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{PROG}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description=(
            "Read the EMP telemetry stream with a Redis consumer group and deliver every event "
            "to JSON-lines files and/or an OTLP backend (Dash0 or any other). Every setting "
            "comes from a flag, else its environment variable, else its default."
        ),
        usage="%(prog)s [--print-config | --health [--json]] [--SETTING VALUE ...]",
        epilog="Redis: REDIS_URL, else REDIS_HOST, REDIS_PORT, REDIS_PASSWORD, REDIS_DB.",
    )
    actions = parser.add_argument_group("actions (instead of running)")
    actions.add_argument(
        "--print-config", action="store_true", help="print the effective settings (secrets masked)"
    )
    actions.add_argument(
        "--health",
        action="store_true",
        help="print the state of every live collector; exit 0 when one is live, 1 when none "
        "is, 3 when Redis cannot be reached",
    )
    actions.add_argument(
        "--json",
        action="store_true",
        help="with --health: one JSON object per collector and line, numbers as numbers",
    )
    settings = parser.add_argument_group("settings (flag / environment; default)")
    for setting in SETTINGS:
        envs = " / ".join(setting.env)
        default = f"; default {setting.default}" if setting.default else ""
        settings.add_argument(
            setting.flag,
            dest=setting.key,
            metavar="VALUE",
            default=None,
            help=f"{setting.help} [{envs}{default}]".replace("%", "%%"),
        )
    return parser


class SafeFormatter(logging.Formatter):
    """Log lines with control and bidi characters shown as escapes (event content in a
    message, a field name or a reason, must not steer the terminal that shows the log); the
    line breaks of a traceback stay."""

    def format(self, record: logging.LogRecord) -> str:
        return "\n".join(escape(line) for line in super().format(record).split("\n"))


def _setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(SafeFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler])


def print_config(settings: Settings) -> None:
    rows = settings.describe()
    width = max(len(name) for name, _, _ in rows)
    for name, value, env in rows:
        source = f"  ({env})" if env else ""
        print(f"{name.ljust(width)}  {value}{source}")


@contextmanager
def _quiet_broken_pipe(code: int = 0) -> Iterator[None]:
    """`emp-collector --print-config | head -2` ends quietly when head has read enough (as
    `emp-tui` does): stdout goes to /dev/null, so the interpreter's last flush at exit does
    not complain either."""
    try:
        yield
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise SystemExit(code) from None


EXIT_NO_COLLECTOR = 1
EXIT_UNREACHABLE = 3


async def _health(settings: Settings, as_json: bool) -> int:
    """Exit 0 when a collector is live, 1 when none is, 3 when Redis cannot be read."""
    import orjson
    from redis.exceptions import RedisClusterException, RedisError

    from collector.health import format_table, typed
    from emp_tui.health import read_collectors
    from emp_tui.redact import redact_text, redact_url
    from emp_tui.topology import async_client_for_url

    try:
        client = async_client_for_url(
            settings.redis_url, socket_connect_timeout=5, socket_timeout=10
        )
        try:
            collectors = await read_collectors(client)
        finally:
            await client.aclose()
    except (RedisError, OSError, ValueError, RedisClusterException) as exc:
        message = redact_text(" ".join(str(exc).split()) or type(exc).__name__)
        print(
            f"{PROG}: cannot read health from {redact_url(settings.redis_url)}: {message}",
            file=sys.stderr,
        )
        return EXIT_UNREACHABLE
    if as_json:
        out = sys.stdout.buffer
        for collector in collectors:
            out.write(orjson.dumps(typed(collector), option=orjson.OPT_APPEND_NEWLINE))
        out.flush()
    else:
        print(format_table(collectors))
    return 0 if collectors else EXIT_NO_COLLECTOR


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    flags = {s.key: getattr(args, s.key) for s in SETTINGS}
    try:
        settings = load_settings(flags=flags)
    except ConfigError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        with _quiet_broken_pipe():
            print_config(settings)
            sys.stdout.flush()
        return 0
    if args.health:
        with _quiet_broken_pipe():
            code = asyncio.run(_health(settings, args.json))
            sys.stdout.flush()
            return code
    try:
        require_sink(settings)
    except ConfigError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    _setup_logging(settings.log_level)
    from collector.pipeline import Collector, settle_shards

    # Events are freed by reference counting (they hold no cycles), so the cycle collector
    # only burns time at tens of thousands of events a second: keep what start-up loaded out
    # of its sight and let it run less often.
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)

    try:
        with _sigterm_stops():
            settings = settle_shards(settings)
    except _Stopped:
        return 0  # asked to stop before reading anything: nothing to hand over
    except KeyboardInterrupt:
        return 130
    try:
        return asyncio.run(Collector(settings).run())
    except KeyboardInterrupt:
        return 130


class _Stopped(Exception):
    """SIGTERM while the collector was still waiting for Redis to start reading."""


@contextmanager
def _sigterm_stops() -> Iterator[None]:
    def stop(signum: int, frame: object) -> NoReturn:
        raise _Stopped

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
