"""Writing events to files: JSON lines, CSV, a JSON array, and Chrome's trace-event format.

* ``jsonl`` — one event per line exactly as the collector writes them; reads back through
  :func:`emp_tui.sources.read_file` to the same events.
* ``csv`` — one row per event, the wire fields as columns, ``data`` as compact JSON.
* ``json`` — one JSON array of the same objects as ``jsonl``.
* ``chrome-trace`` — the Trace Event Format (a ``traceEvents`` array) for Perfetto or
  chrome://tracing: one process per job (or per service for events with no job), one thread
  per service, a complete event (``ph: "X"``) for every duration :func:`emp_tui.analysis.durations`
  finds and an instant event (``ph: "i"``) for every event.

The format follows the file name (:func:`format_for_path`: ``.csv``, ``.json``,
``.trace.json``, else JSON lines), for the CLI and the app alike. A target that exists is refused
(FileExistsError) unless ``overwrite``; a file is written to a temporary name beside the target
and renamed into place, so a failed export leaves no half file. :func:`write_to` writes to an open
binary stream instead (``emp-tui export -o -``).

Event text is data: in JSON, control and bidi characters are ``\\uXXXX`` escapes (lossless);
in CSV cells other than ``data`` (which is JSON), visible escapes (:mod:`emp_tui.text`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any, Final

from emp_tui.events import ID_FIELDS, TelemetryEvent
from emp_tui.text import dumps, escape, escape_json, iso_time

__all__ = [
    "CSV_COLUMNS",
    "EXTENSIONS",
    "FORMATS",
    "chrome_trace",
    "format_for_path",
    "with_format",
    "write_events",
    "write_to",
]

FORMATS: Final = ("jsonl", "csv", "json", "chrome-trace")
EXTENSIONS: Final[dict[str, str]] = {
    "jsonl": ".jsonl",
    "csv": ".csv",
    "json": ".json",
    "chrome-trace": ".trace.json",
}
"""The file name ending each format is written with."""
_READ_AS: Final[dict[str, str]] = {".log": "jsonl"}
"""Other endings that name a format (the collector's log files are JSON lines)."""
CSV_COLUMNS: Final = (
    "id",
    "timestamp",
    "time",
    "service",
    "eventType",
    "level",
    "traceId",
    "spanId",
    *(wire for wire, _ in ID_FIELDS),
    "data",
    "malformed",
)


def format_for_path(path: str | Path) -> str | None:
    """The format a file name asks for by its ending (case-insensitive), or None."""
    name = Path(path).name.lower()
    by_length = sorted(EXTENSIONS.items(), key=lambda item: len(item[1]), reverse=True)
    for fmt, extension in (*by_length, *((fmt, ext) for ext, fmt in _READ_AS.items())):
        if name.endswith(extension) and len(name) > len(extension):
            return fmt
    return None


def with_format(path: str, fmt: str) -> str:
    """``path`` with the ending of the format it names swapped for ``fmt``'s (unchanged when
    its ending names no format)."""
    named = format_for_path(path)
    if named is None:
        return path
    ending = EXTENSIONS.get(named) or next(ext for ext, f in _READ_AS.items() if f == named)
    return path[: -len(ending)] + EXTENSIONS[fmt]


def _csv_cell(value: str) -> str:
    value = escape(value)
    # A spreadsheet runs cells that start with these as formulas: keep event data inert.
    if value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


def _write_csv(events: Iterable[TelemetryEvent], out: IO[str]) -> int:
    import csv

    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    count = 0
    for event in events:
        text = (
            event.id or "",
            str(event.timestamp),
            iso_time(event.timestamp),
            event.service,
            event.event_type,
            event.level,
            event.trace_id,
            event.span_id or "",
            *((getattr(event, attr) or "") for _, attr in ID_FIELDS),
        )
        # data is JSON, with JSON's escapes: a reader gets back exactly what was sent.
        data = dumps(event.data).decode()
        writer.writerow([*map(_csv_cell, text), data, _csv_cell(event.malformed or "")])
        count += 1
    return count


def chrome_trace(events: Iterable[TelemetryEvent]) -> dict[str, Any]:
    """The Trace Event Format object for ``events`` (timestamps in microseconds)."""
    from emp_tui.analysis import durations, sort_events

    ordered = sort_events(events)
    if not ordered:
        return {"traceEvents": [], "displayTimeUnit": "ms"}
    origin = ordered[0].timestamp
    pids: dict[str, int] = {}
    tids: dict[tuple[int, str], int] = {}
    trace: list[dict[str, Any]] = []

    def ids(event: TelemetryEvent) -> tuple[int, int]:
        process = f"job {event.job_id}" if event.job_id else event.service
        pid = pids.get(process)
        if pid is None:
            pid = pids[process] = len(pids) + 1
            trace.append(
                {"ph": "M", "name": "process_name", "pid": pid, "tid": 0, "args": {"name": process}}
            )
        tid = tids.get((pid, event.service))
        if tid is None:
            tid = tids[(pid, event.service)] = len(tids) + 1
            trace.append(
                {
                    "ph": "M",
                    "name": "thread_name",
                    "pid": pid,
                    "tid": tid,
                    "args": {"name": event.service},
                }
            )
        return pid, tid

    for event in ordered:
        pid, tid = ids(event)
        trace.append(
            {
                "ph": "i",
                "s": "t",
                "name": event.event_type,
                "cat": event.level,
                "ts": (event.timestamp - origin) * 1000,
                "pid": pid,
                "tid": tid,
                "args": event.to_dict(),
            }
        )
    for duration in durations(ordered):
        if duration.field not in (None, "durationMs"):
            continue
        pid, tid = ids(duration.end)
        end_us = (duration.end.timestamp - origin) * 1000
        trace.append(
            {
                "ph": "X",
                "name": duration.name,
                "cat": duration.outcome or "duration",
                "ts": end_us - duration.duration_ms * 1000,
                "dur": duration.duration_ms * 1000,
                "pid": pid,
                "tid": tid,
                "args": {"key": duration.key, "source": duration.source, "end": duration.end.id},
            }
        )
    return {
        "traceEvents": trace,
        "displayTimeUnit": "ms",
        "otherData": {"origin_epoch_ms": origin, "source": "emp-tui"},
    }


def write_events(
    events: Iterable[TelemetryEvent], path: Path, fmt: str, *, overwrite: bool = False
) -> int:
    """Write ``events`` to ``path`` in ``fmt`` (one of FORMATS); returns how many.

    Raises FileExistsError when ``path`` exists and not ``overwrite``, ValueError for an
    unknown format, OSError when the file cannot be written."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r} (use one of {', '.join(FORMATS)})")
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists (overwrite it with --force)")
    directory = path.parent if str(path.parent) else Path(".")
    import tempfile

    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    tmp = Path(tmp_name)
    try:
        # mkstemp makes the file private (0600): give the export the mode any new file gets.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as raw:
            count = write_to(events, raw, fmt)
        if not overwrite:
            # Refuse again at the last moment: another writer may have made the file meanwhile.
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise FileExistsError(f"{path} exists (overwrite it with --force)") from None
            except OSError:  # a filesystem without hard links: check, then rename
                if path.exists():
                    raise FileExistsError(f"{path} exists (overwrite it with --force)") from None
                tmp.replace(path)
            else:
                tmp.unlink()
        else:
            tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return count


def _umask() -> int:
    """The process's umask, read without changing it (os.umask can only swap it, which
    would briefly affect files other threads create); 022 where it cannot be read."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            lines = [line for line in status if line.startswith("Umask:")]
        return int(lines[0].split()[1], 8) if lines else 0o022
    except (OSError, ValueError, IndexError):  # not Linux, or an odd line: the usual mask
        return 0o022


def write_to(events: Iterable[TelemetryEvent], raw: IO[bytes], fmt: str) -> int:
    """Write ``events`` in ``fmt`` to an open binary stream; returns how many."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r} (use one of {', '.join(FORMATS)})")
    count = 0
    if fmt == "jsonl":
        for event in events:
            raw.write(escape_json(event.to_json_line()))
            count += 1
    elif fmt == "json":
        raw.write(b"[")
        for event in events:
            raw.write(b",\n" if count else b"\n")
            raw.write(dumps(event.to_dict()))
            count += 1
        raw.write(b"\n]\n")
    elif fmt == "csv":
        import io

        text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        count = _write_csv(events, text)
        text.flush()
        text.detach()
    else:
        listed = list(events)
        raw.write(dumps(chrome_trace(listed)))
        count = len(listed)
    return count
