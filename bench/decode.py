"""Benchmark of the decoder's fast paths, each figure beside a baseline from the same run.

    .venv/bin/python bench/decode.py [--quick]

Well-formed entries, as Redis hands them to a reader (bytes field names and values), and
well-formed JSON lines, as the collector writes them. Pure CPU, one core, no I/O:

1. decode() of stream entries, beside the least any reader must do per entry (orjson.loads
   of ``data`` and a dict of the fields as text);
2. decode() + to_json_line() (the collector's file sink per event), beside that baseline plus
   orjson.dumps of the dict;
3. TelemetryEvent.from_json_line() (reading collector logs), beside orjson.loads of the line.

The ratios are what to compare from one version of the decoder to the next.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson

from emp_tui.events import TelemetryEvent, decode, trace_id_for_job

DATA = {"jobType": "comfyui", "priority": "normal", "queueName": "default", "attempt": 1}


def entries(n: int) -> list[tuple[bytes, dict[bytes, bytes]]]:
    out = []
    for i in range(n):
        job = f"job_{i % 500}"
        event = TelemetryEvent.create(
            "worker",
            "job.progress_updated",
            {**DATA, "progress": i % 100},
            timestamp=1_732_700_000_000 + i,
            job_id=job,
            worker_id="w-1",
            trace_id=trace_id_for_job(job),
        )
        fields = {k.encode(): v.encode() for k, v in event.encode().items()}
        out.append((f"{1_732_700_000_000 + i}-0".encode(), fields))
    return out


def rates(
    ours: Callable[[], Any], base: Callable[[], Any], n: int, repeat: int = 7
) -> tuple[float, float]:
    """Items/s of the best of ``repeat`` runs of each (each run handles ``n`` items), the two
    alternating so that both see the same machine noise. CPU time of this process, not wall
    time: on a shared machine, other processes' work does not count against ours."""
    best = [float("inf"), float("inf")]
    for _ in range(repeat):
        for side, fn in enumerate((ours, base)):
            started = time.process_time()
            fn()
            best[side] = min(best[side], time.process_time() - started)
    return n / best[0], n / best[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer entries")
    args = parser.parse_args()
    n = 20_000 if args.quick else 100_000
    raw = entries(n)
    decoded = [decode(entry_id, fields) for entry_id, fields in raw]
    slow = sum(1 for event in decoded if event.malformed is not None)
    assert slow == 0, f"{slow} sample entries decoded as malformed"
    lines = [event.to_json_line() for event in decoded]

    def ours_decode() -> None:
        for entry_id, fields in raw:
            decode(entry_id, fields)

    def base_decode() -> None:
        for entry_id, fields in raw:
            out = {k.decode(): v.decode() for k, v in fields.items() if k != b"data"}
            out["data"] = orjson.loads(fields[b"data"])
            out["id"] = entry_id.decode()

    def ours_write() -> None:
        for entry_id, fields in raw:
            decode(entry_id, fields).to_json_line()

    def base_write() -> None:
        for entry_id, fields in raw:
            out = {k.decode(): v.decode() for k, v in fields.items() if k != b"data"}
            out["data"] = orjson.loads(fields[b"data"])
            out["id"] = entry_id.decode()
            orjson.dumps(out, option=orjson.OPT_APPEND_NEWLINE)

    def ours_read() -> None:
        for line in lines:
            TelemetryEvent.from_json_line(line)

    def base_read() -> None:
        for line in lines:
            orjson.loads(line)

    for label, ours_fn, base_fn in (
        ("decode() of stream entries   ", ours_decode, base_decode),
        ("decode() + to_json_line()    ", ours_write, base_write),
        ("from_json_line()             ", ours_read, base_read),
    ):
        ours, base = rates(ours_fn, base_fn, n)
        print(f"{label}{ours:12,.0f} /s   baseline {base:12,.0f} /s   ratio {base / ours:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
