"""Benchmark: the app's memory at 100,000 events of the demo's event mix, beside the same count
of small synthetic events (tests/samples.py's flood) in the same run.

    .venv/bin/python bench/memory.py [--events 100000] [--simulated 250]

The mix: the demo's simulated platform (`emp-tui sim`, seed 1) runs --simulated seconds of its
traffic as fast as it goes into a redis-server of its own; the stream's entries are then read
raw and repeated, each copy under later stream IDs and its own job IDs, and decoded afresh
(so no two events share their data), up to --events; each copy's events have their own
eventId too (else the store would take them for an emitter's resends). Each measure runs in
a process of its own: the app (offline, buffer_size 100,000, 160x48, headless, the Problems
view open and focused) is given the events as a load gives them, in pages of 5,000, and the
figure is the process's peak RSS once they are all shown and the problems were looked for
over them. Target: <= 200 MB at 100k events of the demo's mix.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

STREAM = "emp:events"
PAGE = 5000


def demo_entries(seconds: float) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """The raw stream entries of ``seconds`` of the demo's simulated traffic."""
    from redisproc import RedisProcess

    from emp_tui.demo.model import SimConfig
    from emp_tui.demo.sim import Simulation

    with RedisProcess() as server:
        sim = Simulation(server.url, STREAM, SimConfig(seed=1))
        sim.run(until_ms=sim.start_ms + int(seconds * 1000))
        sim.close(timeout=60)
        if sim.error:
            raise SystemExit(f"the simulation failed: {sim.error}")
        with server.client() as client:
            entries: Any = client.xrange(STREAM)
    return [(entry_id, dict(fields)) for entry_id, fields in entries]


def mix(count: int, seconds: float) -> list[Any]:
    from emp_tui.events import decode

    entries = demo_entries(seconds)
    if not entries:
        raise SystemExit("the simulation wrote nothing")
    first = int(entries[0][0].split(b"-")[0])
    span = int(entries[-1][0].split(b"-")[0]) - first + 1
    events = []
    copy = 0
    while len(events) < count:
        for entry_id, fields in entries:
            if len(events) >= count:
                break
            ms, _, seq = entry_id.partition(b"-")
            new_id = f"{int(ms) + copy * span}-{int(seq)}"
            changed = dict(fields)
            for key in (b"jobId", b"eventId"):  # another job; not a resend of the event
                value = changed.get(key)
                if value:
                    changed[key] = value + f"-{copy}".encode()
            events.append(decode(new_id, changed))
        copy += 1
    return events


async def measure(kind: str, count: int, seconds: float) -> dict[str, Any]:
    from samples import flood

    from emp_tui.app import make_app
    from emp_tui.config import AppConfig

    events = mix(count, seconds) if kind == "demo" else list(flood(count))
    sizes = sum(len(e.to_json_line()) for e in events[:: max(1, count // 1000)])
    average = sizes / len(events[:: max(1, count // 1000)])
    types = len({e.event_type for e in events})
    app = make_app(config=AppConfig(log_dir="", buffer_size=100_000), live=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("exclamation_mark")  # the Problems view, focused
        for at in range(0, len(events), PAGE):
            app.add_events(events[at : at + PAGE])
            app.drain_now()
            await pilot.pause(0)
        del events
        pacer = app.problems_pacer
        searched = pacer.last_start
        for _ in range(600):  # a search over them all started, and ended (60 s at most)
            if pacer.last_start != searched and not pacer.running:
                break
            await pilot.pause(0.1)
        held = len(app.store)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"kind": kind, "held": held, "rss_mb": rss, "line_bytes": average, "types": types}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--simulated", type=float, default=250.0)
    parser.add_argument("--one", choices=("demo", "flood"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(asyncio.run(measure(args.one, args.events, args.simulated))))
        return 0
    rows = []
    for kind in ("demo", "flood"):
        done = subprocess.run(
            [sys.executable, __file__, "--one", kind, "--events", str(args.events),
             "--simulated", str(args.simulated)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            print(done.stderr[-2000:])
            return 1
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"{'events':<34}{'held':>9}{'types':>7}{'avg line':>10}{'peak RSS':>11}")
    names = {"demo": "the demo's mix (emp-tui sim)", "flood": "small synthetic (flood)"}
    for row in rows:
        print(
            f"{names[row['kind']]:<34}{row['held']:>9,}{row['types']:>7}"
            f"{row['line_bytes']:>8.0f} B{row['rss_mb']:>8.0f} MB"
        )
    demo = rows[0]["rss_mb"]
    print(f"target: <= 200 MB at 100k events of the demo's mix: {'ok' if demo <= 200 else 'OVER'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
