"""`emp-tui export`: matching events to a file (or stdout with ``-o -``), in the format its
name asks for (:func:`emp_tui.export.format_for_path`) unless ``--format`` says otherwise."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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

STDOUT = "-"


def run_export(args: argparse.Namespace, settings: Settings, out: Output) -> int:
    from emp_tui.export import format_for_path, write_events, write_to

    query = parse_query(query_text(args), settings)
    to_stdout = args.output == STDOUT
    path = Path(args.output)
    fmt: str = args.format or (None if to_stdout else format_for_path(path)) or "jsonl"
    if not to_stdout and path.exists() and not args.force:
        raise CliError(f"{path} exists; add --force to overwrite it", EXIT_USAGE)
    loaded = load(settings, query)
    notes(loaded.notes)
    if not loaded.events:
        say(
            f"no events match {query.text!r}; "
            + ("nothing written" if to_stdout else f"{path} not written")
        )
        return EXIT_NOTHING
    if to_stdout:
        # stdout holds the export itself: the summary goes to stderr, even with --json.
        count = write_to(loaded.events, sys.stdout.buffer, fmt)
        sys.stdout.flush()
        say(f"wrote {count} event(s) to stdout ({fmt})")
        return EXIT_FOUND
    try:
        count = write_events(loaded.events, path, fmt, overwrite=args.force)
    except FileExistsError:
        raise CliError(f"{path} exists; add --force to overwrite it", EXIT_USAGE) from None
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}", EXIT_USAGE) from None
    if out.json:
        out.record({"kind": "export", "path": str(path), "format": fmt, "count": count})
    else:
        say(f"wrote {count} event(s) to {path} ({fmt})")
    return EXIT_FOUND
