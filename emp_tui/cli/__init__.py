"""The `emp-tui` command: the app, and the debug tools for scripts and CI.

    emp-tui [--job JOB_ID] [--filter QUERY] [--since T] [--until T]   the app
    emp-tui search QUERY [--limit N] [--job-id ID] [--service S] [--type T]
                         [--since T] [--until T] [--last 1h]
    emp-tui stream [QUERY]                         live tail until Ctrl+C
    emp-tui timeline JOB_ID [--gap 2s]
    emp-tui correlate JOB_ID [--gap 5s] [--after 20s] [--limit N]
    emp-tui perf [QUERY] [--last 1h]
    emp-tui health [--maxlen 10000]
    emp-tui export QUERY -o FILE|- [--format jsonl|csv|json|chrome-trace] [--force]
    emp-tui problems [--since T] [--until T] [--last 1h] [--min-severity warn] [--kind K]
    emp-tui lint [QUERY] [--last 1h] [--offenders N]
    emp-tui serve [--host H] [--port P] [--public-url URL] [--job ID] [--filter QUERY]
                                                   the app in a browser (textual-serve)
    emp-tui demo|sim ...                           simulated EMP services (emp_tui.demo)

Global options (before or after the command): --redis-url, --stream, --file PATH (repeatable;
read logs or exports instead of Redis, or beside it when --redis-url is given too), --json.
Settings: flags > environment (REDIS_URL or REDIS_HOST/REDIS_PORT/..., EMP_EVENTS_STREAM) >
defaults.

Exit codes: 0 found, 1 nothing matched, 2 bad usage or query, 3 a source that cannot be read
(Redis unreachable, a file missing or unreadable), 4 an internal error. Every failure is a
one-line message on stderr (a bad query adds the query with a caret under the fault).

The package: :mod:`~emp_tui.cli.main` (``main``, the app and the delegated commands),
:mod:`~emp_tui.cli.parser` (arguments), :mod:`~emp_tui.cli.common` (exit codes, settings,
reading events), :mod:`~emp_tui.cli.output` (text and JSON lines), and one module per command
group: ``search`` (search, stream), ``timeline`` (timeline, correlate), ``perf``, ``health``,
``export``, ``problems``, ``lint``, ``serve``.

`problems` exits 0 when it found something and 1 when not, as grep; `lint` exits 0 when every
service meets the target share of actionable events and 1 when one does not (or there is no
event to score).

Imports stay lazy: start-up time is part of every command's cost, so Redis is imported only
when Redis is read, Rich only when printing for a human, Textual only by the app, and each
command's module only when that command runs (``main.runner``).
"""

from __future__ import annotations

from emp_tui.cli.main import main

__all__ = ["main"]
