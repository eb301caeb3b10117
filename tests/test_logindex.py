"""The log index finds what a full decode of the files finds: by ID, by time, across rotated
and gzip'd files, with malformed lines, and from an index kept beside a file that changed."""

from __future__ import annotations

import gzip
import mmap
import os
import random
from pathlib import Path

import orjson
import pytest
from samples import START_MS, event

from emp_tui import logindex
from emp_tui.events import TelemetryEvent
from emp_tui.history import ReadStats, event_ms, read_logs_back
from emp_tui.logindex import INDEX_DIR, open_index, read_indexed
from emp_tui.query import parse_query
from emp_tui.sources import FileStats, read_files


@pytest.fixture(autouse=True)
def _small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks and search pieces of a few lines, so that every test crosses their edges."""
    monkeypatch.setattr(logindex, "BLOCK", 700)
    monkeypatch.setattr(logindex, "SEARCH", 1500)


def _events(count: int, start: int = 0) -> list[TelemetryEvent]:
    return [
        event(
            n,
            START_MS + n * 10,
            "worker" if n % 2 else "api-server",
            "job.progress_updated",
            {"n": n},
            job_id=f"job-{n % 7}",
            worker_id=f"w-{n % 3}" if n % 2 else None,
        )
        for n in range(start, start + count)
    ]


def _lines(events: list[TelemetryEvent]) -> list[bytes]:
    return [e.to_json_line() for e in events]


BAD = [
    b"not json at all\n",
    b"\n",
    b'{"id":"oops","service":"worker"}\n',  # an object, malformed (no type, a bad ID)
    b'{"timestamp":' + str(START_MS + 55).encode() + b',"service":"api-server",'
    b'"eventType":"job.created","traceId":"' + b"ab" * 16 + b'","jobId":"job-3"}\n',  # no id
]


def _write_logs(directory: Path) -> list[TelemetryEvent]:
    """Four files the way the collector leaves them, two of them gzip'd, with malformed lines
    and one line written twice."""
    events = _events(200)
    lines = _lines(events)
    parts = [lines[:50], lines[50:100], lines[100:150], lines[150:]]
    parts[1][10:10] = BAD
    parts[2].insert(0, lines[99])  # redelivered across a rotation
    parts[3][5:5] = BAD[:2]
    names = ["events.log.3.gz", "events.log.2.gz", "events.log.1", "events.log"]
    for name, part in zip(names, parts, strict=True):
        raw = b"".join(part)
        (directory / name).write_bytes(gzip.compress(raw) if name.endswith(".gz") else raw)
    return events


def _ids(events: list[TelemetryEvent]) -> list[tuple[str | None, str | None]]:
    return [(e.id, e.malformed) for e in events]


@pytest.mark.parametrize(
    "text",
    [
        "job:job-3",
        "worker:w-1",
        "job:job-3 worker:w-1",
        "job:job-2,job-5",
        "job:job-1,job-4,job-6 worker:w-2",
        "service:worker",
        "",
    ],
)
def test_the_index_finds_what_a_full_decode_finds(tmp_path: Path, text: str) -> None:
    _write_logs(tmp_path)
    query = parse_query(text)
    whole, indexed = FileStats(), FileStats()
    expected = list(read_files([tmp_path], query, whole))
    found = list(read_indexed([tmp_path], query, indexed))
    assert _ids(found) == _ids(expected)
    assert found
    assert (indexed.duplicates, indexed.events) == (whole.duplicates, whole.events)
    if not query.required_literals():
        assert indexed.corrupt == whole.corrupt == 2  # the lines that are no JSON


def test_the_index_is_kept_beside_the_logs_and_read_again(tmp_path: Path) -> None:
    _write_logs(tmp_path)
    first = [open_index(path) for path in sorted(tmp_path.glob("events.log*"))]
    kept = sorted(p.name for p in (tmp_path / INDEX_DIR).iterdir())
    assert "events.log.idx" in kept and "events.log.2.gz.raw" in kept
    again = [open_index(path) for path in sorted(tmp_path.glob("events.log*"))]
    try:
        assert not any(index.reused for index in first)
        assert all(index.reused for index in again)
        for old, new in zip(first, again, strict=True):
            assert (old.ms, old.block_offsets, old.block_lines) == (
                new.ms,
                new.block_offsets,
                new.block_lines,
            )
            assert old.slice(0, old.lines) == new.slice(0, new.lines)
    finally:
        for index in first + again:
            index.close()


def test_a_search_for_ids_reads_plain_files_unindexed_and_indexes_nothing(
    tmp_path: Path,
) -> None:
    _write_logs(tmp_path)
    query = parse_query("job:job-3")
    found = list(read_indexed([tmp_path], query))
    assert _ids(found) == _ids(list(read_files([tmp_path], query)))
    assert {e.job_id for e in found} == {"job-3"} and len(found) > 20  # in every file
    # The plain files were searched as they are; the gzip'd ones through their copies.
    kept = sorted(p.name for p in (tmp_path / INDEX_DIR).iterdir())
    assert kept == [
        "events.log.2.gz.idx",
        "events.log.2.gz.raw",
        "events.log.3.gz.idx",
        "events.log.3.gz.raw",
    ]
    with open_index(tmp_path / "events.log.1") as index:  # indexed when a range needs it
        assert not index.reused and index.lines == 51


@pytest.mark.parametrize(
    "extra",
    [[], [b"job-404", b"job-77 a"]],
    ids=["a search per ID", "one alternation"],  # from MANY_NEEDLES on
)
@pytest.mark.parametrize("native", [True, False], ids=["memmem", "bytes.find"])
def test_the_byte_search_finds_every_line_across_its_pieces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, native: bool, extra: list[bytes]
) -> None:
    if not native:
        monkeypatch.setattr(logindex, "_libc_memmem", lambda: None)
    elif logindex._libc_memmem() is None:
        pytest.skip("no C library memmem here: Python's search is the only one")
    page = mmap.PAGESIZE  # a piece of the search is a page here (SEARCH is 1500)
    filler = b'{"id":"1-0","jobId":"other","data":"' + b"x" * 60 + b'"}\n'
    head = filler * (page // len(filler))
    before = b'{"id":"2-0","data":"'
    pad = page - 3 - len(head) - len(before) - len(b'","jobId":"')
    straddling = before + b"y" * pad + b'","jobId":"job-77"}\n'
    at = len(head) + straddling.index(b"job-77")
    assert at < page < at + len(b"job-77")  # the piece's edge cuts the ID
    tail = b'{"id":"3-0","note":"job-77 and job-77 again","jobId":"job-8"}'  # no newline
    path = tmp_path / "events.log"
    path.write_bytes(head + straddling + filler * 3 + tail)
    with open_index(path, keep=False, lines=False) as index:
        found = list(index.find([b"job-77", b"job-8", *extra]))
    assert found == [straddling.rstrip(b"\n"), tail]
    assert (len(extra) + 2 >= logindex.MANY_NEEDLES) == bool(extra)
    assert not (tmp_path / INDEX_DIR).exists()


def test_a_file_changed_since_its_index_is_indexed_again(tmp_path: Path) -> None:
    path = tmp_path / "events.log"
    path.write_bytes(b"".join(_lines(_events(30))))
    open_index(path).close()
    other = b"".join(_lines(_events(30, start=1000)))
    path.write_bytes(other[: path.stat().st_size].ljust(path.stat().st_size, b" "))
    with open_index(path) as index:
        assert not index.reused
        assert index.first_ms == START_MS + 1000 * 10
    query = parse_query("job:job-1")
    assert _ids(list(read_indexed([path], query))) == _ids(list(read_files([path], query)))


def test_a_file_that_grew_is_indexed_from_where_its_index_stopped(tmp_path: Path) -> None:
    path = tmp_path / "events.log"
    events = _events(60)
    lines = _lines(events)
    half = b"".join(lines[:30])
    path.write_bytes(half + lines[30][:20])  # the collector is writing a line
    with open_index(path) as index:
        assert index.lines == 31
    path.write_bytes(half + b"".join(lines[30:]))
    with open_index(path) as index:
        assert index.reused  # extended, not built again
        assert index.lines == 60
        assert list(index.ms) == [event_ms(e) for e in events]
        assert index.slice(0, 60) == [line.rstrip(b"\n") for line in lines]


def test_a_changed_gzip_file_is_decompressed_again(tmp_path: Path) -> None:
    path = tmp_path / "events.log.1.gz"
    path.write_bytes(gzip.compress(b"".join(_lines(_events(20)))))
    open_index(path).close()
    path.write_bytes(gzip.compress(b"".join(_lines(_events(25, start=500)))))
    with open_index(path) as index:
        assert not index.reused
        assert index.lines == 25
        assert index.first_ms == START_MS + 5000


def test_a_time_range_reads_only_its_lines(tmp_path: Path) -> None:
    events = _write_logs(tmp_path)
    since, until = START_MS + 620, START_MS + 1210
    stats = ReadStats()
    got = [e for page in read_logs_back([tmp_path], since, until, stats=stats) for e in page]
    expected = [e for e in events if since <= event_ms(e) <= until]
    assert sorted(_ids(got)) == sorted(_ids(expected))
    assert stats.decoded <= len(expected) + 2  # not the whole files
    assert stats.opened == 3  # the oldest file holds nothing of the range: left unopened


def test_malformed_lines_stand_by_their_neighbours_in_the_index(tmp_path: Path) -> None:
    path = tmp_path / "events.log"
    lines = _lines(_events(10))
    lines[6:6] = BAD  # between the events at +50 and +60 ms
    path.write_bytes(b"".join(lines))
    with open_index(path) as index:
        assert index.ordered
        assert index.lines == 14
        assert index.ms[9] == START_MS + 55  # its own timestamp: an event never in a stream
        assert index.ms[6] == index.ms[7] == index.ms[8] == START_MS + 55  # the next line's
        assert index.time_range(START_MS + 51, START_MS + 55) == (6, 10)


def test_a_file_the_index_cannot_be_kept_beside_is_still_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    _write_logs(logs)
    (logs / INDEX_DIR).write_text("a file where the index directory would go")
    monkeypatch.setattr(logindex, "_index_dirs", lambda path: [path.parent / INDEX_DIR])
    query = parse_query("job:job-4")
    assert _ids(list(read_indexed([logs], query))) == _ids(list(read_files([logs], query)))
    with open_index(logs / "events.log.2.gz") as index:
        assert index.note is not None and "cannot be kept" in index.note
        assert index.lines == 54


def test_a_json_array_export_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "export.json"
    events = _events(12)
    path.write_bytes(orjson.dumps([e.to_dict() for e in events]))
    with open_index(path) as index:
        assert index.is_array
    query = parse_query("job:job-2")
    assert _ids(list(read_indexed([path], query))) == _ids(list(read_files([path], query)))


def test_an_unreadable_gzip_file_is_skipped_and_said(tmp_path: Path) -> None:
    _write_logs(tmp_path)
    broken = tmp_path / "events.log.2.gz"
    broken.write_bytes(broken.read_bytes()[:40])
    stats = FileStats()
    found = list(read_indexed([tmp_path], parse_query("job:job-1"), stats))
    assert found and stats.unreadable and "events.log.2.gz" in stats.unreadable[0]
    leftovers = [p for p in (tmp_path / INDEX_DIR).iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []
    assert os.listdir(tmp_path / INDEX_DIR)


def test_a_file_without_a_time_on_any_line_is_read_whole_for_any_range(tmp_path: Path) -> None:
    path = tmp_path / "events.log"
    path.write_bytes(b"".join(BAD[:3]))  # not JSON, blank, an object without a type or ID
    with open_index(path) as index:
        assert index.time_range(START_MS, START_MS + 10) == (0, 3)
    stats = ReadStats()
    got = [e for page in read_logs_back([path], START_MS, stats=stats) for e in page]
    assert [e.malformed is not None for e in got] == [True]
    assert stats.files.corrupt == 1


def test_a_touched_file_is_indexed_again(tmp_path: Path) -> None:
    path = tmp_path / "events.log"
    path.write_bytes(b"".join(_lines(_events(5))))
    open_index(path).close()
    os.utime(path, ns=(1, 1))
    with open_index(path) as index:
        assert not index.reused and index.lines == 5


@pytest.mark.parametrize("seed", range(6))
def test_many_needles_find_the_lines_a_substring_test_finds(tmp_path: Path, seed: int) -> None:
    """The trie-shaped expression of many needles (shared starts, one the start of another,
    bytes regular expressions give a meaning to) finds exactly the lines that hold one."""
    rng = random.Random(seed)
    alphabet = b"ab.*(|\\_-"
    needles = [bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 6))) for _ in range(40)]
    needles += [b"job_" + n for n in needles[:10]] + [b"job_"[: rng.randint(1, 4)] + b"zz"]
    lines = [
        bytes(rng.choice(alphabet + b"jobz ") for _ in range(rng.randint(0, 30)))
        for _ in range(400)
    ]
    path = tmp_path / "events.log"
    path.write_bytes(b"\n".join(lines) + b"\n")
    expected = [line for line in lines if any(needle in line for needle in needles)]
    assert 0 < len(expected) < len(lines)
    with open_index(path, keep=False, lines=False) as index:
        assert list(index.find(needles)) == expected
    long = [needles[0] * 300, *needles[1:]]  # past TRIE_LONGEST: a plain alternation
    assert len(long[0]) > logindex.TRIE_LONGEST
    with open_index(path, keep=False, lines=False) as index:
        assert list(index.find(long)) == [
            line for line in lines if any(needle in line for needle in long)
        ]
