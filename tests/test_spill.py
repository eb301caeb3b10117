"""The emitter's spill files (emp_tui.spill), without Redis: segments, the cursor, the bound,
files left by an emitter that is gone, permissions."""

from __future__ import annotations

import fcntl
import os
import stat
import subprocess
import sys
from pathlib import Path

import orjson

from emp_tui.sources import read_files
from emp_tui.spill import Spill, spill_group_name


def lines(start: int, count: int) -> bytes:
    return b"".join(
        orjson.dumps(
            {
                "timestamp": 1_732_700_000_000 + i,
                "service": "worker",
                "eventType": "job.progress_updated",
                "traceId": "0c32f617bbf2c4f91ed1a0b4a1d621b8",
                "jobId": f"job_{i}",
                "level": "info",
                "data": {"i": i},
                "v": 1,
                "eventId": f"{i:016x}",
            },
            option=orjson.OPT_APPEND_NEWLINE,
        )
        for i in range(start, start + count)
    )


def replay_all(spill: Spill, batch: int = 7) -> list[int]:
    seen: list[int] = []
    while (read := spill.read(batch)) is not None:
        seen += [orjson.loads(line)["data"]["i"] for line in read.lines]
        spill.consume(read, len(read.lines))
    return seen


def test_lines_come_back_in_order_across_segments_and_replayed_segments_go(
    tmp_path: Path,
) -> None:
    spill = Spill(tmp_path / "spill", spill_group_name("worker", 1, "aa"), max_bytes=1 << 20)
    spill.segment_bytes = 2000  # small segments: several of them
    for start in range(0, 200, 10):
        assert spill.append(lines(start, 10), 10, counted=start % 20 == 0)
    segments = sorted((tmp_path / "spill").glob("*.jsonl"))
    assert len(segments) > 3
    assert spill.pending_lines == 200
    read = spill.read(15)
    assert read is not None and len(read.lines) == 10  # one run of 10, the first segment's
    assert read.counted[:10] == [True] * 10
    spill.consume(read, 4)  # a partial answer: the cursor stops after 4
    assert spill.pending_lines == 196
    rest = replay_all(spill)
    assert rest == list(range(4, 200))
    assert spill.read(10) is None and spill.pending_lines == 0
    assert not list((tmp_path / "spill").glob("*.jsonl"))  # replayed: removed
    assert spill.own_bytes == 0
    spill.close()
    assert not list((tmp_path / "spill").iterdir())  # nothing left behind


def test_counted_flags_follow_the_runs_they_were_written_in(tmp_path: Path) -> None:
    spill = Spill(tmp_path, spill_group_name("api-server", 1, "bb"), max_bytes=1 << 20)
    spill.append(lines(0, 3), 3, counted=True)
    spill.append(lines(3, 1), 1, counted=False)  # the emitter's own note
    spill.append(lines(4, 2), 2, counted=True)
    read = spill.read(100)
    assert read is not None
    assert read.counted == [True, True, True, False, True, True]
    spill.consume(read, 2)
    read = spill.read(100)
    assert read is not None and read.counted == [True, False, True, True]
    spill.close()


def test_the_bound_refuses_what_would_pass_it_and_frees_as_it_replays(tmp_path: Path) -> None:
    one = lines(0, 1)
    spill = Spill(tmp_path, spill_group_name("worker", 1, "cc"), max_bytes=len(one) * 5)
    for i in range(5):
        assert spill.append(lines(i, 1), 1, counted=True)
    assert not spill.append(lines(5, 1), 1, counted=True)  # nothing written
    assert spill.pending_lines == 5
    assert spill.own_bytes == len(one) * 5  # the lines are all the same size
    replay_all(spill)
    assert spill.append(lines(5, 1), 1, counted=True)  # room again
    spill.close()


def test_files_and_directory_are_private(tmp_path: Path) -> None:
    directory = tmp_path / "a" / "spill"
    spill = Spill(directory, spill_group_name("worker", 1, "dd"), max_bytes=1 << 20)
    spill.append(lines(0, 3), 3, counted=True)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for path in directory.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    spill.close()


def test_emp_tui_file_reads_a_spill_directory(tmp_path: Path) -> None:
    spill = Spill(tmp_path, spill_group_name("worker", 1, "ee"), max_bytes=1 << 20)
    spill.segment_bytes = 1000
    for start in range(0, 30, 5):
        spill.append(lines(start, 5), 5, counted=True)
    events = list(read_files([tmp_path]))
    assert sorted(e.data["i"] for e in events) == list(range(30))
    assert all(e.malformed is None and e.event_id for e in events)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "emp_tui.cli",
            "--file",
            str(tmp_path),
            "search",
            "job:job_7",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (found,) = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert found["data"] == {"i": 7} and found["eventId"] == f"{7:016x}"
    spill.close()


_GONE = """
import sys
from pathlib import Path
from emp_tui.spill import Spill, spill_group_name
spill = Spill(Path(sys.argv[1]), spill_group_name("worker", 99, "ff"), max_bytes=1 << 20)
spill.segment_bytes = 1500
spill.append(sys.stdin.buffer.read(), int(sys.argv[2]), counted=True)
read = spill.read(3)
spill.consume(read, 3)  # three replayed before it went
with open(spill._own.segments[-1].path, "ab") as torn:
    torn.write(b'{"timestamp": 17327')  # a crash in the middle of a line
"""


def test_files_of_an_emitter_that_is_gone_are_adopted_once(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-c", _GONE, str(tmp_path), "20"], input=lines(0, 20), check=True
    )
    live = Spill(tmp_path, spill_group_name("worker", 2, "gg"), max_bytes=1 << 20)
    other = Spill(tmp_path, spill_group_name("api-server", 3, "hh"), max_bytes=1 << 20)
    other.append(lines(100, 2), 2, counted=True)  # alive: its files are not adopted
    assert live.adopt_orphans() == 17
    assert live.adopt_orphans() == 0  # already ours
    third = Spill(tmp_path, spill_group_name("worker", 4, "ii"), max_bytes=1 << 20)
    assert third.adopt_orphans() == 0  # locked by `live`
    read = live.read(100)
    assert read is not None and read.counted == [False] * len(read.lines)  # nobody's stats
    first = [orjson.loads(line)["data"]["i"] for line in read.lines]
    live.consume(read, len(read.lines))
    assert first + replay_all(live) == list(range(3, 20))
    assert not list(tmp_path.glob("spill-worker-99-*"))  # replayed: all its files gone
    assert list(tmp_path.glob("spill-api-server-3-*"))
    for spill in (live, other, third):
        spill.close()


def test_a_live_owner_keeps_its_lock_across_a_fork(tmp_path: Path) -> None:
    spill = Spill(tmp_path, spill_group_name("worker", 1, "kk"), max_bytes=1 << 20)
    spill.append(lines(0, 2), 2, counted=True)
    pid = os.fork()
    if pid == 0:  # the child lets go of its copies without touching the parent's files
        spill.forget()
        os._exit(0)
    os.waitpid(pid, 0)
    fd = os.open(tmp_path / f"{spill.stem}.cursor", os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            locked_by_owner = False
        except BlockingIOError:
            locked_by_owner = True
    finally:
        os.close(fd)
    assert locked_by_owner
    assert replay_all(spill) == [0, 1]
    spill.close()
