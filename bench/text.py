"""Benchmark: what escaping event text costs (emp_tui.text), beside the work it is added to,
in the same run.

    .venv/bin/python bench/text.py [--events 100000] [--runs 5]

* JSON: ``event.to_json_line()`` alone (the baseline), then with ``escape_json()`` as the
  exports and ``--json`` write it.
* Text: ``data_summary()`` of an event's data with ``escape()`` switched off (the baseline),
  then as it is.

For plain ASCII events (the usual case), non-ASCII text, and hostile text (controls, C1, a
right-to-left override). The figure is the best of --runs, in nanoseconds per event; baseline
and escaped runs alternate.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from unittest import mock

from emp_tui import text
from emp_tui.events import TelemetryEvent


def events(count: int, note: str) -> list[TelemetryEvent]:
    return [
        TelemetryEvent.create(
            "worker",
            "job.progress_updated",
            {"progress": n % 100, "note": note, "durationMs": n},
            timestamp=1_764_000_000_000 + n,
            job_id=f"job_{n:07d}",
            worker_id="w-1",
        )
        for n in range(count)
    ]


def paired(
    runs: int, count: int, baseline: Callable[[], object], other: Callable[[], object]
) -> tuple[float, float]:
    """Best time of each, in ns per event; the two alternate, so that a busy moment of the
    machine costs both alike."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(runs):
        for work, into in ((baseline, times[0]), (other, times[1])):
            start = time.perf_counter()
            work()
            into.append(time.perf_counter() - start)
    return min(times[0]) / count * 1e9, min(times[1]) / count * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"{args.events:,} events, best of {args.runs} runs, ns per event")
    print(f"{'':28} {'baseline':>9} {'escaped':>9} {'added':>7}")
    for label, note in (
        ("ascii", "upstream answered 503"),
        ("non-ascii", "ワーカー 🧪 ü"),
        ("hostile", "a\x1b[2Jb\u202ec\x9b"),
    ):
        sample = events(args.events, note)

        def lines(escape: bool, sample: list[TelemetryEvent] = sample) -> None:
            if escape:
                for event in sample:
                    text.escape_json(event.to_json_line())
            else:
                for event in sample:
                    event.to_json_line()

        def summaries(sample: list[TelemetryEvent] = sample) -> None:
            for event in sample:
                text.data_summary(event.data)

        json_base, json_escaped = paired(
            args.runs,
            len(sample),
            lambda: lines(False),
            lambda: lines(True),
        )
        plain_summary = mock.patch.object(text, "escape", lambda value: value)

        def without_escape() -> None:
            with plain_summary:  # noqa: B023
                summaries()

        summary_base, summary_escaped = paired(args.runs, len(sample), without_escape, summaries)
        for name, base, escaped in (
            ("JSON line", json_base, json_escaped),
            ("data summary", summary_base, summary_escaped),
        ):
            added = (escaped - base) / base * 100
            print(f"{name + ', ' + label:28} {base:9.0f} {escaped:9.0f} {added:+6.0f}%")


if __name__ == "__main__":
    main()
