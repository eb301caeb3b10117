"""The poison corpus (tests/poison.py) through every reader, against a real redis-server: the
decoder, the sources' range reads, backfill, live tail and files, every CLI subcommand and the
collector, the last two as the user runs them. No crash, every entry delivered (the poison
flagged ``malformed``), no neighbour lost."""

from __future__ import annotations

import asyncio
import csv
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from poison import (
    CORRUPT_LINES,
    JOB,
    POISON,
    POISON_LINES,
    VALID_BUT_ODD,
    VALID_BUT_ODD_LINES,
    Corpus,
    good,
    write_corpus,
    write_poison_log,
)

from emp_tui.events import TelemetryEvent, decode, json_bytes
from emp_tui.export import FORMATS, write_events
from emp_tui.query import parse_query
from emp_tui.sources import FileStats, RedisTail, backfill, read_files, read_query, read_range

STREAM = "emp:events"
BIN = Path(sys.executable).parent
QUERIES = ('"x"', "/s+/", "data.blob:*", "-service:worker level:>=info", f"job:{JOB}", "id:*")

Record = TelemetryEvent | Mapping[str, Any]


def _malformed(record: Record) -> str | None:
    if isinstance(record, TelemetryEvent):
        return record.malformed
    return record.get("malformed")


def _data(record: Record) -> Any:
    return record.data if isinstance(record, TelemetryEvent) else record["data"]


def assert_delivered(got: Mapping[str, Record], corpus: Corpus) -> None:
    """Every entry of ``corpus`` is in ``got`` (by stream ID): the poison flagged unless it is
    only odd, the neighbours whole."""
    missing = [entry_id for entry_id in corpus.ids if entry_id not in got]
    assert not missing, f"{len(missing)} entries not delivered"
    for name, entry_id in corpus.poison.items():
        flagged = _malformed(got[entry_id])
        assert (flagged is None) == (name in VALID_BUT_ODD), (name, flagged)
    for n, entry_id in enumerate(corpus.good):
        assert _malformed(got[entry_id]) is None
        assert _data(got[entry_id]) == {"n": n}


def wait_for(check: Callable[[], bool], what: str, timeout: float = 90.0) -> None:
    """Poll until ``check()`` holds (a generous limit: the machine is shared)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def corpus(redis_url: str) -> Corpus:
    with redis.Redis.from_url(redis_url) as client:
        return write_corpus(client)


# -- the decoder --------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(POISON))
def test_each_poison_entry_decodes_and_writes_back(name: str) -> None:
    fields = dict(POISON[name])
    event = decode(b"1732700000000-3", fields)
    assert (event.malformed is None) == (name in VALID_BUT_ODD), event.malformed
    assert event.id == "1732700000000-3"
    assert 0 <= event.timestamp <= 253_402_300_799_999
    line = event.to_json_line()
    assert orjson.loads(line)["id"] == event.id
    assert TelemetryEvent.from_json_line(line) == event
    assert decode(b"1732700000000-4", event.encode()).service == event.service
    assert orjson.loads(json_bytes(event.to_dict()))["eventType"] == event.event_type
    for query in QUERIES:
        parse_query(query).matches(event)
    # the same entry handed over as text takes the general path only, and reads too
    as_text = {
        k.decode("utf-8", "backslashreplace"): v.decode("utf-8", "backslashreplace")
        for k, v in fields.items()
    }
    assert decode("1732700000000-3", as_text).service == event.service


# -- the sources ----------------------------------------------------------------------------


def test_range_reads_deliver_every_entry(redis_url: str, corpus: Corpus) -> None:
    with redis.Redis.from_url(redis_url) as client:
        forward = list(read_range(client, STREAM, page=7))
        backward = list(read_range(client, STREAM, reverse=True, page=7))
        recent = read_query(client, STREAM, parse_query("since:1h"), limit=10_000)
        for query in QUERIES:
            read_query(client, STREAM, parse_query(query))
    assert [e.id for e in forward] == corpus.ids
    assert [e.id for e in backward] == corpus.ids[::-1]
    assert [e.id for e in recent] == corpus.ids
    assert_delivered({e.id: e for e in forward if e.id}, corpus)


async def test_backfill_and_live_tail_deliver_every_entry(redis_url: str) -> None:
    tail = RedisTail(redis_url, STREAM)
    try:
        async with asyncio.timeout(60):
            while tail.state != "connected":
                await anext(tail)
        with redis.Redis.from_url(redis_url) as client:
            corpus = await asyncio.to_thread(write_corpus, client)
        live: dict[str, TelemetryEvent] = {}
        async with asyncio.timeout(90):
            while len(live) < len(corpus.ids):
                for event in await anext(tail):
                    assert event.id is not None
                    live[event.id] = event
        assert tail.state == "connected"
    finally:
        await tail.aclose()
    assert list(live) == corpus.ids
    assert_delivered(live, corpus)

    backfilled = await backfill(redis_url, STREAM, limit=10_000)
    assert [e.id for e in backfilled] == corpus.ids
    assert_delivered({e.id: e for e in backfilled if e.id}, corpus)


def test_every_export_format_writes_and_files_read_back(
    redis_url: str, corpus: Corpus, tmp_path: Path
) -> None:
    with redis.Redis.from_url(redis_url) as client:
        events = list(read_range(client, STREAM))
    for fmt in FORMATS:
        path = tmp_path / f"out.{fmt}"
        assert write_events(events, path, fmt) == len(events)
    for fmt in ("jsonl", "json"):
        back = list(read_files([tmp_path / f"out.{fmt}"]))
        assert [e.id for e in back] == corpus.ids
        assert_delivered({e.id: e for e in back if e.id}, corpus)
    csv.field_size_limit(sys.maxsize)  # the reader's own limit; 5 MB cells are in the file
    with (tmp_path / "out.csv").open(newline="", encoding="utf-8") as rows:
        assert [row[0] for row in csv.reader(rows)][1:] == corpus.ids
    trace = orjson.loads((tmp_path / "out.chrome-trace").read_bytes())
    assert sum(1 for t in trace["traceEvents"] if t["ph"] == "i") == len(events)


# -- the CLI, as a user runs it -------------------------------------------------------------


def cli(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BIN / "emp-tui", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "NO_COLOR": "1", "TZ": "UTC", "COLUMNS": "200"},
    )


def assert_ran(done: subprocess.CompletedProcess[str], *codes: int) -> None:
    assert done.returncode in (codes or (0,)), done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]


def by_id(stdout: str) -> dict[str, dict[str, Any]]:
    records = [orjson.loads(line) for line in stdout.splitlines()]
    return {r["id"]: r for r in records if "id" in r}


def test_every_subcommand_reads_the_poison(redis_url: str, corpus: Corpus, tmp_path: Path) -> None:
    source = ("--redis-url", redis_url)

    done = cli(*source, "search", "--json")
    assert_ran(done)
    assert_delivered(by_id(done.stdout), corpus)
    assert list(by_id(done.stdout)) == corpus.ids
    done = cli(*source, "search", "--last", "1h", "--limit", "5000")
    assert_ran(done)
    assert len(done.stdout.splitlines()) == len(corpus.ids)
    assert "\x1b" not in done.stdout
    for query in QUERIES:
        assert_ran(cli(*source, "search", query, "--json"), 0, 1)

    for json in ((), ("--json",)):
        for command in (("timeline", JOB), ("correlate", JOB), ("perf", "--last", "1h")):
            done = cli(*source, *command, *json)
            assert_ran(done)
            assert done.stdout
        assert_ran(cli(*source, "health", *json))
    timeline = cli(*source, "timeline", JOB, "--json")
    assert all(entry_id in timeline.stdout for entry_id in corpus.good)

    for fmt in FORMATS:
        out = tmp_path / f"export.{fmt}"
        assert_ran(cli(*source, "export", "--format", fmt, "-o", out))
        assert out.stat().st_size > 0
    done = cli("--file", tmp_path / "export.jsonl", "search", "--json")
    assert_ran(done)
    assert list(by_id(done.stdout)) == corpus.ids
    assert_delivered(by_id(done.stdout), corpus)


def test_stream_follows_the_poison(redis_url: str, tmp_path: Path) -> None:
    out_path = tmp_path / "stream.jsonl"
    err_path = tmp_path / "stream.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(
            [BIN / "emp-tui", "--redis-url", redis_url, "stream", "--json"],
            stdout=out,
            stderr=err,
            env={**os.environ, "NO_COLOR": "1"},
        )
    try:
        shown: dict[str, dict[str, Any]] = {}

        def read_shown() -> dict[str, dict[str, Any]]:
            text = out_path.read_text(encoding="utf-8")
            complete = text[: text.rfind("\n") + 1]
            shown.update(by_id(complete))
            return shown

        with redis.Redis.from_url(redis_url) as client:
            # Write a neighbour until the tail shows one: from then on it is following.
            def following() -> bool:
                flat = [part for pair in good(-1) for part in pair]
                client.execute_command("XADD", STREAM, "*", *flat)
                time.sleep(0.2)
                return bool(read_shown())

            wait_for(following, "the stream to follow")
            corpus = write_corpus(client)
        wait_for(lambda: set(corpus.ids) <= read_shown().keys(), "every entry shown")
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
    assert code == 0, err_path.read_text()
    assert "Traceback" not in err_path.read_text()
    assert_delivered(shown, corpus)


# -- the collector, as it runs ----------------------------------------------------------------


@pytest.fixture
def collector(redis_url: str, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    log_path = tmp_path / "logs" / "events.log"
    err_path = tmp_path / "collector.err"
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "NODE_ENV": "development",
        "EMP_COLLECTOR_CONSUMER": "poison-test",
        "EMP_COLLECTOR_LOG_PATH": str(log_path),
        "EMP_COLLECTOR_READ_COUNT": "7",
    }
    with err_path.open("wb") as err:
        proc = subprocess.Popen([BIN / "emp-collector"], stderr=err, env=env)
    try:
        yield proc, log_path
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        assert "Traceback" not in err_path.read_text(errors="replace")


def test_collector_writes_every_entry(
    redis_url: str, corpus: Corpus, collector: tuple[subprocess.Popen[bytes], Path]
) -> None:
    proc, log_path = collector
    written: dict[str, dict[str, Any]] = {}

    def all_written() -> bool:
        assert proc.poll() is None, "the collector exited"
        if log_path.exists():
            data = log_path.read_bytes()
            written.update(by_id(data[: data.rfind(b"\n") + 1].decode()))
        return set(corpus.ids) <= written.keys()

    wait_for(all_written, "the collector to write every entry")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    assert_delivered(written, corpus)
    with redis.Redis.from_url(redis_url) as client:
        pending = client.xpending(STREAM, "emp-collector")
    assert pending["pending"] == 0  # every entry acked: none comes back to crash a restart


def test_exports_write_values_json_cannot_hold(tmp_path: Path) -> None:
    """Events built in code (not decoded) may hold anything: every format still writes."""
    loop: list[Any] = []
    loop.append(loop)
    deep: Any = 1
    for _ in range(400):
        deep = {"a": deep}
    events = [
        TelemetryEvent.create("worker", "job.x", {"big": 2**80, "loop": loop}, job_id=JOB),
        TelemetryEvent.create("worker", "job.y", {"deep": deep, 3: "int key"}, job_id=JOB),
        TelemetryEvent.create("worker", "job.z", {"s": "lone \udcff"}, job_id=JOB),
    ]
    for fmt in FORMATS:
        path = tmp_path / f"odd.{fmt}"
        assert write_events(events, path, fmt) == len(events)
    back = list(read_files([tmp_path / "odd.jsonl"]))
    assert [e.event_type for e in back] == ["job.x", "job.y", "job.z"]
    assert back[0].data["big"] == str(2**80)


# -- poison lines in files --------------------------------------------------------------------


def _assert_log_read(events: list[Any], good_ids: list[str]) -> None:
    """Every object line of the poison log read: the neighbours whole and in order, each
    poison line one event, flagged unless it is only odd."""
    good = set(good_ids)
    neighbours = [e for e in events if _get(e, "id") in good]
    assert [_get(e, "id") for e in neighbours] == good_ids
    for n, event in enumerate(neighbours):
        assert _malformed(event) is None and _data(event) == {"n": n}
    poison = [e for e in events if _get(e, "id") not in good]
    assert len(poison) == len(POISON_LINES)
    flagged = sum(1 for e in poison if _malformed(e))
    assert flagged == len(POISON_LINES) - len(VALID_BUT_ODD_LINES)


def _get(record: Record, name: str) -> Any:
    return getattr(record, name) if isinstance(record, TelemetryEvent) else record.get(name)


def test_poison_lines_are_read_from_files(tmp_path: Path) -> None:
    log = tmp_path / "events.log"
    good_ids = write_poison_log(log)
    stats = FileStats()
    events = list(read_files([log], None, stats))
    assert stats.corrupt == len(CORRUPT_LINES)
    _assert_log_read(events, good_ids)
    for event in events:
        assert TelemetryEvent.from_json_line(event.to_json_line()) == event
    for query in QUERIES:
        list(read_files([log], parse_query(query)))


def test_every_subcommand_reads_poison_lines(tmp_path: Path) -> None:
    log = tmp_path / "events.log"
    good_ids = write_poison_log(log)
    source = ("--file", log)
    done = cli(*source, "search", "--json")
    assert_ran(done)
    _assert_log_read([orjson.loads(line) for line in done.stdout.splitlines()], good_ids)
    assert f"skipped {len(CORRUPT_LINES)} corrupt line(s)" in done.stderr
    for json in ((), ("--json",)):
        assert_ran(cli(*source, "search", *json))
        for command in (("timeline", JOB), ("correlate", JOB), ("perf",)):
            done = cli(*source, *command, *json)
            assert_ran(done)
            assert done.stdout
    for fmt in FORMATS:
        out = tmp_path / f"export.{fmt}"
        assert_ran(cli(*source, "export", "--format", fmt, "-o", out))
        assert out.stat().st_size > 0


# -- a decoder bug costs one entry --------------------------------------------------------------


async def test_a_decoder_failure_costs_one_entry_in_every_reader(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection: the general path raises on one entry, as a bug would. Every reader
    delivers that entry flagged with the failure, and the entries around it."""
    import emp_tui.events as events

    real = events._from_mapping

    def failing(entry_id: Any, m: Mapping[str, Any], *args: Any, **kwargs: Any) -> Any:
        if "boom" in m:
            raise RuntimeError("a bug\nwith a second line")
        return real(entry_id, m, *args, **kwargs)

    monkeypatch.setattr(events, "_from_mapping", failing)
    with redis.Redis.from_url(redis_url) as client:
        entries = [*(good(n) for n in range(2)), [(b"boom", b"1"), (b"timestamp", "²".encode())]]
        entries.append(good(2))
        ids = [
            client.execute_command("XADD", STREAM, "*", *[p for f in pairs for p in f]).decode()
            for pairs in entries
        ]

        def check(events_read: list[TelemetryEvent]) -> None:
            assert [e.id for e in events_read] == ids
            flagged = events_read[2].malformed
            assert flagged == "could not be decoded: RuntimeError: a bug"
            assert events_read[2].data["_raw"] == {"boom": "1", "timestamp": "²"}
            assert [e.malformed for e in events_read if e.id != ids[2]] == [None] * 3

        check(list(read_range(client, STREAM)))
    check(await backfill(redis_url, STREAM))
    tail = RedisTail(redis_url, STREAM, start_id="0-0")
    try:
        async with asyncio.timeout(60):
            tailed: list[TelemetryEvent] = []
            while len(tailed) < len(ids):
                tailed += await anext(tail)
    finally:
        await tail.aclose()
    check(tailed)
    log = tmp_path / "events.log"
    write_events(tailed, log, "jsonl")
    with log.open("ab") as out:
        out.write(b'{"boom": 1}\n')
    from_file = list(read_files([log]))
    check(from_file[:-1])
    assert from_file[-1].malformed == "could not be decoded: RuntimeError: a bug"
