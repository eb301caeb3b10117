"""The `emp-tui` command."""

from __future__ import annotations

import argparse
import sys

from emp_tui import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emp-tui",
        description="A terminal debugger for the EMP job platform's telemetry events.",
    )
    parser.add_argument("--version", action="version", version=f"emp-tui {__version__}")
    parser.add_argument("command", nargs="?", help="a subcommand (none is available yet)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    what = f"'{args.command}'" if args.command else "the app"
    print(f"emp-tui: {what} is not built yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
