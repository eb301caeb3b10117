"""Where a command's results go: JSON lines for machines, aligned text for people.

Both are escaped (:mod:`emp_tui.text`): JSON with ``\\uXXXX`` for control and bidi characters,
text with visible escapes. Colour, through Rich, only on a terminal without ``NO_COLOR``; the
colours are the app's (:mod:`emp_tui.app.style`), so a service looks the same in both.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from emp_tui.app.style import level_text_style, service_color
from emp_tui.cli.common import EXIT_USAGE, CliError
from emp_tui.text import data_summary, dumps, escape, local_time

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

    from emp_tui.events import TelemetryEvent

Part = str | tuple[str, str]
"""Text, or (text, Rich style)."""

SUMMARY_WIDTH = 100


class Output:
    """JSON lines (``record``) or lines of text (``line``), on stdout."""

    def __init__(self, json_lines: bool) -> None:
        self.json = json_lines
        self._console: Console | None = None
        # Without colour, a line is plain text: written directly, it costs far less than
        # through Rich (which matters for a search that prints thousands of lines). The lean
        # install (requirements-core.txt) has no Rich: plain text there too.
        self.has_rich = importlib.util.find_spec("rich") is not None
        self.plain = (
            not sys.stdout.isatty() or bool(os.environ.get("NO_COLOR")) or not self.has_rich
        )

    @property
    def console(self) -> Console:
        if self._console is None:
            if not self.has_rich:
                raise CliError(
                    "this output needs Rich, which the lean install leaves out: add --json, "
                    "or install emp-tui with its dependencies",
                    EXIT_USAGE,
                )
            from rich.console import Console

            # Piped output is not cut to 80 columns: tables keep their full width.
            width = None if sys.stdout.isatty() else 250
            self._console = Console(
                highlight=False, soft_wrap=True, emoji=False, markup=False, width=width
            )
        return self._console

    def record(self, obj: dict[str, Any]) -> None:
        import orjson

        sys.stdout.buffer.write(dumps(obj, option=orjson.OPT_APPEND_NEWLINE))

    def line(self, *parts: Part) -> None:
        if self.plain:
            joined = "".join(part[0] if isinstance(part, tuple) else part for part in parts)
            sys.stdout.write(escape(joined).rstrip() + "\n")
            return
        text = self.text(*parts)
        text.rstrip()
        self.console.print(text)

    def text(self, *parts: Part) -> Text:
        from rich.text import Text

        out = Text()
        for part in parts:
            if isinstance(part, tuple):
                out.append(escape(part[0]), style=part[1] or None)
            else:
                out.append(escape(part))
        return out

    def flush(self) -> None:
        sys.stdout.flush()


def event_line(out: Output, event: TelemetryEvent, prefix: Sequence[Part] = ()) -> None:
    """One event on one line: time, service, type, level, IDs, data summary, malformed."""
    ids = " ".join(
        f"{label}={value}"
        for label, value in (
            ("job", event.job_id),
            ("worker", event.worker_id),
            ("machine", event.machine_id),
        )
        if value
    )
    out.line(
        *prefix,
        (local_time(event.timestamp), "dim"),
        "  ",
        (f"{event.service:<16}", service_color(event.service)),
        (f"{event.event_type:<32}", "bold"),
        (f"{event.level:<6}", level_text_style(event.level)),
        (f"{ids}  " if ids else "", "cyan"),
        data_summary(event.data, SUMMARY_WIDTH),
        (f"  [malformed: {event.malformed}]" if event.malformed else "", "bold red"),
    )
