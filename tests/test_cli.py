"""Every `emp-tui` subcommand end to end, in a subprocess, against Redis and against files;
and bad input for each: a bad query, an unknown job, unreachable Redis, an unreadable file,
an existing export target."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis
from redisproc import RedisProcess
from samples import HOSTILE_TEXT, incident_sample

from emp_tui.events import TelemetryEvent, trace_id_for_job
from emp_tui.topology import trim_policy_key

STREAM = "emp:events"
NOW = time.time_ns() // 1_000_000
BASE = NOW - 30 * 60_000  # the sample happened half an hour ago


EVENTS = incident_sample(BASE)


@pytest.fixture
def loaded_redis(redis_url: str) -> str:
    client = redis.Redis.from_url(redis_url)
    for event in EVENTS:
        client.xadd(STREAM, event.encode(), id=event.id)
    client.close()
    return redis_url


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    path = tmp_path / "events.log"
    path.write_bytes(b"".join(event.to_json_line() for event in EVENTS))
    return path


def run(*args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "TZ": "UTC", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "emp_tui.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def records(done: subprocess.CompletedProcess[str]) -> list[dict]:  # type: ignore[type-arg]
    return [orjson.loads(line) for line in done.stdout.splitlines()]


def assert_clean_failure(done: subprocess.CompletedProcess[str], code: int, fragment: str) -> None:
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    first = done.stderr.splitlines()[0]
    assert first.startswith("emp-tui: ") and fragment in first, done.stderr


@pytest.fixture(params=["redis", "file"])
def source(request: pytest.FixtureRequest, tmp_path: Path) -> list[str]:
    """The global options that point a command at the sample, in Redis or in a file."""
    if request.param == "redis":
        return ["--redis-url", request.getfixturevalue("loaded_redis")]
    return ["--file", str(request.getfixturevalue("log_file"))]


# -- search ---------------------------------------------------------------------------------


def test_search_json_by_job(source: list[str]) -> None:
    done = run(*source, "search", "job:job_bad", "--json")
    assert done.returncode == 0, done.stderr
    got = records(done)
    assert [r["eventType"] for r in got] == [e.event_type for e in EVENTS if e.job_id == "job_bad"]
    assert all(r["jobId"] == "job_bad" and r["id"] for r in got)


def test_search_shortcuts_and_limit(source: list[str]) -> None:
    done = run(
        *source,
        "search",
        "--service",
        "worker",
        "--type",
        "connector.*",
        "--last",
        "1h",
        "--limit",
        "3",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    expected = [
        e.id for e in EVENTS if e.service == "worker" and e.event_type.startswith("connector.")
    ][-3:]
    assert [r["id"] for r in records(done)] == expected
    done = run(*source, "search", "level:error", "--job-id", "job_bad", "--json")
    assert [r["eventType"] for r in records(done)] == [
        "connector.processing_failed",
        "job.failed",
    ]


def test_search_human_output_is_aligned_and_escaped(source: list[str]) -> None:
    done = run(*source, "search", "service:monitor")
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()
    assert "monitor" in line and "monitor.note" in line
    for raw in ("\x1b", "\u202e", "\x9b", "\x7f"):
        assert raw not in done.stdout  # event content never reaches the terminal raw
    assert "\\x1b[31mred" in line and "\\nnext\\u202eevil\\x9b2J\\x7f" in line
    assert "1 event(s)" in done.stderr


def test_json_output_escapes_controls_and_bidi_losslessly(source: list[str]) -> None:
    done = run(*source, "search", "service:monitor", "--json")
    assert done.returncode == 0, done.stderr
    for raw in ("\x1b", "\u202e", "\x9b", "\x7f"):
        assert raw not in done.stdout
    assert "\\u202e" in done.stdout and "\\u009b" in done.stdout
    (record,) = records(done)
    assert record["data"]["text"] == HOSTILE_TEXT  # a JSON reader gets back what was sent


def test_negated_term_as_the_first_query_word(source: list[str]) -> None:
    """`emp-tui search '-service:worker'` as the README shows it, without `--`."""
    done = run(*source, "search", "-service:worker", "-type:job.*", "--json")
    assert done.returncode == 0, done.stderr
    got = records(done)
    expected = [
        e.id for e in EVENTS if e.service != "worker" and not e.event_type.startswith("job.")
    ]
    assert [r["id"] for r in got] == expected
    done = run(*source, "search", "-service:monitor", "--limit", "2", "--json")
    assert [r["id"] for r in records(done)] == [e.id for e in EVENTS if e.service != "monitor"][-2:]
    # the value of an option is the option's, even when it starts with "-"
    done = run(*source, "search", "-service:monitor", "--limit", "-1")
    assert_clean_failure(done, 2, "--limit must be 1 or more")
    done = run(*source, "perf", "-level:error", "--json")
    assert done.returncode == 0, done.stderr
    assert "connector.processing_failed" not in {r["eventType"] for r in records(done)}


def test_limit_zero_and_a_redis_url_of_another_scheme_are_usage_errors(tmp_path: Path) -> None:
    assert_clean_failure(run("search", "--limit", "0"), 2, "--limit must be 1 or more")
    for command in (["search", "x"], ["health"], ["stream"], ["timeline", "j"]):
        done = run("--redis-url", "http://localhost:6379", *command)
        assert_clean_failure(done, 2, "bad Redis URL")
    env_url = subprocess.run(
        [sys.executable, "-m", "emp_tui.cli", "search", "x"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "REDIS_URL": "ftp://localhost/0"},
    )
    assert_clean_failure(env_url, 2, "bad Redis URL")
    # Every scheme a Redis can be read by is named, and the app does not start to retry one
    # it can never read.
    for command in (["search", "x"], []):
        done = run("--redis-url", "bogus://x", *command)
        assert_clean_failure(done, 2, "use a redis://, rediss://, unix:// or redis+cluster://")


def test_search_nothing_matched_exits_1(source: list[str]) -> None:
    done = run(*source, "search", "job:nope", "--json")
    assert done.returncode == 1 and done.stdout == ""
    assert "no events match" in done.stderr


def test_search_bad_query_exits_2_with_caret(source: list[str]) -> None:
    done = run(*source, "search", "service:worker level:loud")
    assert_clean_failure(done, 2, "unknown level")
    assert done.stderr.splitlines()[1:] == ["service:worker level:loud", " " * 21 + "^~~~"]


def test_search_since_until_as_iso(source: list[str]) -> None:
    from datetime import UTC, datetime

    lo = datetime.fromtimestamp((BASE + 499_000) / 1000, UTC).isoformat()
    hi = datetime.fromtimestamp((BASE + 501_000) / 1000, UTC).isoformat()
    done = run(*source, "search", "--since", lo, "--until", hi, "--json")
    assert done.returncode == 0, done.stderr
    assert {r["jobId"] for r in records(done)} == {"job_bad"}


def test_relative_times_over_files_count_back_from_their_newest_event(log_file: Path) -> None:
    """The recording is half an hour old: `--since 2m` over its files means the last two
    minutes it holds (as in the app), not the last two minutes of the clock."""
    from emp_tui.stream_ids import stream_id_ms

    newest = max(stream_id_ms(e.id) or 0 for e in EVENTS)
    expected = {e.id for e in EVENTS if (stream_id_ms(e.id) or 0) >= newest - 120_000}
    assert expected and len(expected) < len(EVENTS)
    for command in ("search", "export"):
        extra = ["-o", "-", "--format", "jsonl"] if command == "export" else ["--json"]
        done = run("--file", log_file, command, "--since", "2m", *extra)
        assert done.returncode == 0, done.stderr
        assert {r["id"] for r in records(done)} == expected


def test_files_beside_redis_are_merged_without_duplicates(
    loaded_redis: str, log_file: Path, tmp_path: Path
) -> None:
    extra = tmp_path / "extra.jsonl"
    late = TelemetryEvent.create("worker", "job.note", timestamp=NOW, job_id="job_bad")
    extra.write_bytes(late.to_json_line())
    done = run(
        "--redis-url",
        loaded_redis,
        "--file",
        log_file,
        "--file",
        extra,
        "search",
        "job:job_bad",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    got = records(done)
    assert len(got) == 1 + sum(1 for e in EVENTS if e.job_id == "job_bad")
    assert got[-1]["eventType"] == "job.note"


def test_corrupt_lines_are_reported_not_fatal(log_file: Path) -> None:
    with log_file.open("ab") as f:
        f.write(b"{this is not json\n")
    done = run("--file", log_file, "search", "service:monitor", "--json")
    assert done.returncode == 0
    assert "skipped 1 corrupt line(s)" in done.stderr


def test_unreachable_redis_exits_3(tmp_path: Path) -> None:
    for command in (
        ["search", "x"],
        ["timeline", "j"],
        ["health"],
        ["stream"],
        ["perf"],
        ["correlate", "j"],
        ["export", "x", "-o", str(tmp_path / "o.jsonl")],
        ["problems"],
        ["lint"],
    ):
        done = run("--redis-url", f"unix://{tmp_path}/none.sock", *command)
        assert_clean_failure(done, 3, "cannot reach Redis")


def test_missing_or_unreadable_file_exits_3(tmp_path: Path) -> None:
    assert_clean_failure(run("--file", tmp_path / "nope.log", "search", "x"), 3, "no such file")
    assert_clean_failure(run("--file", tmp_path, "search", "x"), 1, "no events")
    broken = tmp_path / "broken.log.gz"
    broken.write_bytes(b"\x1f\x8bnot really gzip")
    assert_clean_failure(run("--file", broken, "search", "x"), 3, "cannot read")


def test_bad_usage_exits_2() -> None:
    assert_clean_failure(run("search", "--limit", "many"), 2, "invalid int value")
    assert_clean_failure(run("frobnicate"), 2, "invalid choice")
    assert_clean_failure(run("timeline"), 2, "required")


# -- timeline and correlate -----------------------------------------------------------------


def test_timeline_json(source: list[str]) -> None:
    done = run(*source, "timeline", "job_gap", "--json")
    assert done.returncode == 0, done.stderr
    got = records(done)
    summary = got[0]
    assert summary["kind"] == "summary" and summary["status"] == "completed"
    assert summary["services"] == ["api-server", "worker"]
    steps = [r for r in got if r["kind"] == "step"]
    assert [s["event"]["eventType"] for s in steps][:3] == [
        "job.created",
        "job.queued",
        "job.claimed",
    ]
    (gap,) = [r for r in got if r["kind"] == "gap"]
    assert gap["durationMs"] == 9000 and gap["gapKind"] == "threshold"
    handoffs = [r for r in got if r["kind"] == "handoff"]
    assert [(h["from"], h["to"], h["durationMs"]) for h in handoffs] == [
        ("api-server", "worker", 9000),
        ("worker", "api-server", 20),
    ]


def test_timeline_finds_slower_than_usual_and_honours_gap(source: list[str]) -> None:
    got = records(run(*source, "timeline", "job_slow", "--json"))
    (gap,) = [r for r in got if r["kind"] == "gap"]
    assert gap["gapKind"] == "slower_than_usual" and gap["durationMs"] == 3200
    got = records(run(*source, "timeline", "job_ok_0", "--gap", "500ms", "--json"))
    assert [r["durationMs"] for r in got if r["kind"] == "gap"] == [1000]


def test_timeline_human(source: list[str]) -> None:
    done = run(*source, "timeline", "job_gap", "--gap", "2s")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.splitlines()[0].startswith("Job job_gap  completed")
    assert "gap 9s (over 2s" in out
    assert "api-server → worker" in out and "9s  job.queued → job.claimed" in out
    assert "+0.000s" in out and "+9.050s" in out  # offsets to the millisecond, as in the app
    assert "Handoffs (2)" in out


def test_timeline_of_an_open_job_says_how_long_it_has_been_silent(log_file: Path) -> None:
    """From files, silence is measured up to the newest event they hold (a recording), not
    up to today."""
    (summary, *_) = records(run("--file", log_file, "timeline", "job_stuck", "--json"))
    assert summary["status"] == "running"
    assert summary["silentMs"] == 700_000 - 600_250  # the monitor's note is the newest event
    done = run("--file", log_file, "timeline", "job_stuck")
    assert done.returncode == 0, done.stderr
    assert "silent for" in done.stdout.splitlines()[1]
    (closed, *_) = records(run("--file", log_file, "timeline", "job_gap", "--json"))
    assert closed["silentMs"] is None


def test_timeline_unknown_job_and_bad_gap(source: list[str]) -> None:
    assert_clean_failure(run(*source, "timeline", "job_none"), 1, "no events for job 'job_none'")
    assert_clean_failure(run(*source, "timeline", "job_gap", "--gap", "soon"), 2, "bad --gap")


def test_correlate(source: list[str]) -> None:
    done = run(*source, "correlate", "job_gap", "--json")
    assert done.returncode == 0, done.stderr
    got = records(done)
    assert got[0]["traceIds"] == [trace_id_for_job("job_gap")]
    assert [r["durationMs"] for r in got if r["kind"] == "gap"] == [9000]
    # w-1's heartbeat during the job is related through its worker and its machine: listed
    # once, with both.
    related = [r for r in got if r["kind"] == "related"]
    assert [(r["by"], r["keys"], r["event"]["eventType"]) for r in related] == [
        (["worker", "machine"], ["w-1", "m-1"], "worker.heartbeat")
    ]
    assert (got[0]["related"], got[0]["relatedShown"]) == (1, 1)
    human = run(*source, "correlate", "job_gap")
    assert "Related events (1:" in human.stdout and "9s  job.queued" in human.stdout
    assert "worker:w-1,machine:m-1" in human.stdout
    assert_clean_failure(run(*source, "correlate", "nope"), 1, "no events for job")


# -- perf -----------------------------------------------------------------------------------


def test_perf(source: list[str]) -> None:
    done = run(*source, "perf", "--last", "2h", "--json")
    assert done.returncode == 0, done.stderr
    stats = {r["eventType"]: r for r in records(done)}
    done_stats = stats["connector.processing_completed"]
    assert done_stats["count"] == 26 and done_stats["timed"] == 26
    assert done_stats["p95Ms"] == pytest.approx(1000.0)
    assert stats["connector.processing_failed"]["errors"] == 1
    human = run(*source, "perf", "service:worker")
    assert human.returncode == 0
    header = human.stdout.splitlines()[0].split()
    assert header[:4] == ["event", "type", "count", "errors"]
    assert "connector.processing_completed" in human.stdout
    assert run(*source, "perf", "service:nobody").returncode == 1


# -- health ---------------------------------------------------------------------------------


def test_health_without_collectors(loaded_redis: str) -> None:
    client = redis.Redis.from_url(loaded_redis)
    client.xgroup_create(STREAM, "telemetry-collectors", id="0")
    client.xreadgroup("telemetry-collectors", "c1", {STREAM: ">"}, count=5)
    for _ in range(12):  # some traffic in the last five minutes
        client.xadd(STREAM, TelemetryEvent.create("api-server", "job.created").encode())
    client.close()
    done = run("--redis-url", loaded_redis, "health", "--json")
    assert done.returncode == 0, done.stderr
    got = records(done)
    stream = got[0]
    assert stream["kind"] == "stream" and stream["length"] == len(EVENTS) + 12
    assert stream["firstId"] == EVENTS[0].id
    assert stream["eventsPerMinute"] == pytest.approx(12 / 5)
    assert stream["maxlenCoversMs"] == pytest.approx(10_000 / (12 / 5) * 60_000)
    assert stream["memoryBytes"] > 0
    if stream["entriesAdded"] is not None:  # Redis 7 counts what was added; 6.2 does not
        assert (stream["entriesAdded"], stream["trimmed"]) == (len(EVENTS) + 12, 0)
    else:
        assert stream["trimmed"] is None
    (group,) = [r for r in got if r["kind"] == "group"]
    assert group["name"] == "telemetry-collectors" and group["pending"] == 5
    assert group["lag"] == len(EVENTS) + 12 - 5
    assert [r for r in got if r["kind"] == "service"] == [
        {"kind": "service", "service": "api-server", "eventsPerMinute": pytest.approx(2.4)}
    ]
    human = run("--redis-url", loaded_redis, "health")
    assert "no collector reporting" in human.stdout
    assert "telemetry-collectors" in human.stdout and "pending 5" in human.stdout


def test_health_reads_collector_hashes(loaded_redis: str) -> None:
    client = redis.Redis.from_url(loaded_redis)
    client.hset(
        "emp:collector:c-7",
        mapping={
            "consumer": "c-7",
            "group": "telemetry-collectors",
            "stream": STREAM,
            "pid": "42",
            "host": "box",
            "started_ms": str(NOW - 60_000),
            "updated_ms": str(NOW),
            "state": "running",
            "read": "100",
            "written": "99",
            "lag": "3",
            "pending": "1",
            "sinks": "file,otlp",
        },
    )
    client.close()
    done = run("--redis-url", loaded_redis, "health", "--json")
    (collector,) = [r for r in records(done) if r["kind"] == "collector"]
    assert collector["consumer"] == "c-7" and collector["state"] == "running"
    human = run("--redis-url", loaded_redis, "health").stdout
    assert "c-7" in human and "running" in human and "sinks file,otlp" in human


def test_health_hashes_with_numbers_that_are_not_read_as_numbers(loaded_redis: str) -> None:
    """ "²" is a digit to str.isdigit() and not to int(): shown as unknown, never a traceback,
    by `emp-tui health`, `emp-collector --health` and the problems they feed."""
    client = redis.Redis.from_url(loaded_redis)
    odd = "\u00b2"
    client.hset(
        "emp:collector:c-8",
        mapping={"consumer": "c-8", "state": "running", "updated_ms": odd, "rss_bytes": odd,
                 "lag": odd, "trimmed_lost": odd, "started_ms": odd},
    )  # fmt: skip
    client.hset(trim_policy_key(STREAM), mapping={"maxlen": odd, "service": "worker"})
    client.close()
    human = run("--redis-url", loaded_redis, "health")
    assert human.returncode == 0 and "Traceback" not in human.stderr, human.stderr
    assert "c-8" in human.stdout and "updated ?" in human.stdout
    collector = subprocess.run(
        [sys.executable, "-m", "collector", "--health"],
        env={"PATH": "/usr/bin:/bin", "HOME": "/tmp", "REDIS_URL": loaded_redis},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert collector.returncode == 0 and "updated ? " in collector.stdout, collector.stderr
    problems = run("--redis-url", loaded_redis, "problems")
    assert "Traceback" not in problems.stderr and problems.returncode in (0, 1), problems.stderr


def test_health_of_missing_stream(redis_url: str) -> None:
    assert_clean_failure(run("--redis-url", redis_url, "health"), 1, "does not exist")


# -- export ---------------------------------------------------------------------------------


def test_export_formats_and_refusal(source: list[str], tmp_path: Path) -> None:
    target = tmp_path / "bad.jsonl"
    done = run(*source, "export", "job:job_bad", "-o", target)
    assert done.returncode == 0, done.stderr
    assert "wrote 6 event(s)" in done.stderr
    back = run("--file", target, "search", "--json")
    assert [r["id"] for r in records(back)] == [e.id for e in EVENTS if e.job_id == "job_bad"]

    done = run(*source, "export", "job:job_bad", "-o", target)
    assert_clean_failure(done, 2, "exists; add --force")
    assert run(*source, "export", "job:job_ok_1", "-o", target, "--force").returncode == 0
    assert len(target.read_text().splitlines()) == 6

    table = tmp_path / "all.csv"
    assert run(*source, "export", "service:worker", "-o", table).returncode == 0
    with table.open(newline="") as f:
        assert {row["service"] for row in csv.DictReader(f)} == {"worker"}
    trace = tmp_path / "job.trace.json"
    done = run(*source, "export", "job:job_gap", "-o", trace, "--json")
    assert records(done) == [
        {"kind": "export", "path": str(trace), "format": "chrome-trace", "count": 6}
    ]
    assert any(i["ph"] == "X" for i in orjson.loads(trace.read_bytes())["traceEvents"])
    nothing = tmp_path / "nothing.json"
    assert run(*source, "export", "job:none", "-o", nothing).returncode == 1
    assert not nothing.exists()
    assert_clean_failure(run(*source, "export", "level:", "-o", nothing), 2, "needs a value")


def test_export_to_stdout(source: list[str], tmp_path: Path) -> None:
    done = run(*source, "export", "job:job_bad", "-o", "-")
    assert done.returncode == 0, done.stderr
    assert [r["id"] for r in records(done)] == [e.id for e in EVENTS if e.job_id == "job_bad"]
    assert "wrote 6 event(s) to stdout (jsonl)" in done.stderr
    assert not (tmp_path / "-").exists()
    done = run(*source, "export", "job:job_bad", "-o", "-", "--format", "csv", "--json")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(done.stdout.splitlines()))
    assert [row["eventType"] for row in rows][-1] == "job.failed"


def test_exports_escape_controls_and_bidi(source: list[str], tmp_path: Path) -> None:
    for name in ("note.jsonl", "note.json", "note.csv", "note.trace.json"):
        target = tmp_path / name
        done = run(*source, "export", "service:monitor", "-o", target)
        assert done.returncode == 0, done.stderr
        written = target.read_text(encoding="utf-8")
        for raw in ("\x1b", "\u202e", "\x9b", "\x7f"):
            assert raw not in written, (name, raw)
    back = run("--file", tmp_path / "note.jsonl", "search", "--json")
    assert records(back)[0]["data"]["text"] == HOSTILE_TEXT
    with (tmp_path / "note.csv").open(newline="") as f:
        (row,) = csv.DictReader(f)
    assert orjson.loads(row["data"])["text"] == HOSTILE_TEXT


# -- stream ---------------------------------------------------------------------------------


@pytest.fixture
def streaming(redis_url: str) -> Iterator[tuple[subprocess.Popen[str], redis.Redis]]:
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "emp_tui.cli",
            "--redis-url",
            redis_url,
            "stream",
            "service:worker",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    client = redis.Redis.from_url(redis_url)
    yield proc, client
    client.close()
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_stream_follows_and_ctrl_c_exits_cleanly(
    streaming: tuple[subprocess.Popen[str], redis.Redis],
) -> None:
    proc, client = streaming
    assert proc.stdout is not None and proc.stderr is not None
    # Wait until it is connected: it says so on stderr.
    said = [proc.stderr.readline() for _ in range(2)]
    assert said[0].startswith("emp-tui: following emp:events") and "connected" in said[1]
    client.xadd(STREAM, TelemetryEvent.create("api-server", "job.created", job_id="j").encode())
    client.xadd(STREAM, TelemetryEvent.create("worker", "job.claimed", job_id="j").encode())
    line = proc.stdout.readline()
    assert orjson.loads(line)["eventType"] == "job.claimed"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0
    assert "Traceback" not in proc.stderr.read()


def test_stream_follows_the_shards_the_emitters_move_to(
    streaming: tuple[subprocess.Popen[str], redis.Redis], redis_url: str
) -> None:
    """Services reconfigured with EMP_EVENTS_SHARDS=4 while `stream` follows the one key:
    within a few seconds of their record saying so it follows the four keys too, from where
    it began (what they got before it noticed comes as well)."""
    from emp_tui.telemetry import EventClient

    proc, _ = streaming
    assert proc.stdout is not None and proc.stderr is not None
    said = [proc.stderr.readline() for _ in range(2)]
    assert "connected" in said[1]
    emitter = EventClient("worker", redis_url=redis_url, shards=4, enabled=True)
    try:
        for n in range(12):
            emitter.event("job.claimed", job_id=f"job_{n}")
        assert emitter.flush(10)
    finally:
        emitter.close()
    watchdog = threading.Timer(60, proc.kill)  # a tail that never follows: EOF, not a hang
    watchdog.start()
    try:
        lines = [proc.stdout.readline() for _ in range(12)]
    finally:
        watchdog.cancel()
    assert all(lines), "the events on the new shards never came"
    assert {orjson.loads(line)["jobId"] for line in lines} == {f"job_{n}" for n in range(12)}
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0
    rest = proc.stderr.read()
    assert "now write 4 shards: following emp:events:{0}, emp:events:{1}" in rest
    assert "Traceback" not in rest


def test_stream_rejects_file_only_and_bad_query(log_file: Path) -> None:
    assert_clean_failure(run("--file", log_file, "stream"), 2, "stream follows Redis")
    assert_clean_failure(run("stream", "/unclosed"), 2, "unterminated /regex/")


# -- the app and the delegated commands -----------------------------------------------------


def test_app_and_demo_missing_give_one_line(tmp_path: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("emp_tui.app") is None:
        assert_clean_failure(run(), 2, "the app cannot start")
    if importlib.util.find_spec("emp_tui.demo") is None:
        assert_clean_failure(run("demo"), 2, "'demo' is not available")
        assert_clean_failure(run("--redis-url", "redis://x", "sim", "--fault", "x"), 2, "'sim'")
    assert_clean_failure(run("--filter", "level:nope"), 2, "unknown level")


@pytest.mark.parametrize(
    "command",
    [
        ["search", "x"],
        ["timeline", "job_bad"],
        ["correlate", "job_bad"],
        ["perf"],
        ["export", "x", "-o", "{tmp}/out.jsonl"],
        ["problems"],
        ["lint"],
    ],
)
def test_unreadable_file_exits_3_for_every_reader(command: list[str], tmp_path: Path) -> None:
    broken = tmp_path / "events.log.gz"
    broken.write_bytes(b"\x1f\x8b" + b"\x00" * 40)
    args = [part.replace("{tmp}", str(tmp_path)) for part in command]
    assert_clean_failure(run("--file", broken, *args), 3, "cannot read")
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize(
    "command", [["search"], ["perf"], ["stream"], ["export", "-o", "out.jsonl"], ["lint"]]
)
def test_bad_query_exits_2_for_every_command(command: list[str], log_file: Path) -> None:
    done = run(
        "--file",
        log_file,
        "--redis-url",
        "unix:///nonexistent.sock",
        *command,
        "type:job.* bogus:1",
    )
    assert_clean_failure(done, 2, "unknown field 'bogus'")
    assert done.stderr.splitlines()[2] == " " * 11 + "^~~~~"


def test_stream_survives_a_redis_restart(redis_proc: RedisProcess) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "emp_tui.cli", "--redis-url", redis_proc.url, "stream", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        said = [proc.stderr.readline() for _ in range(2)]
        assert "connected" in said[1]
        redis_proc.stop(kill=True)
        assert "reconnecting" in proc.stderr.readline()
        redis_proc.start()
        line = proc.stderr.readline()
        while "reconnecting" in line:  # it may retry a few times before the server is up
            line = proc.stderr.readline()
        assert "connected" in line
        with redis_proc.client() as client:
            client.xadd(STREAM, TelemetryEvent.create("worker", "job.claimed").encode())
        assert orjson.loads(proc.stdout.readline())["eventType"] == "job.claimed"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- history: one "now" for every command, a corrupt rotated file ----------------------------

OPEN_JOB = [
    TelemetryEvent.create(service, event_type, {}, job_id="job_1", timestamp=ms)
    for service, event_type, ms in (
        ("api-server", "job.created", 1_764_000_000_000),
        ("worker", "job.claimed", 1_764_000_001_000),
        ("worker", "job.progress_updated", 1_764_000_004_000),
    )
]
"""A job still open: three lines of a log, as in a recording."""


@pytest.mark.parametrize(
    "command",
    [
        ["search", "job:job_gap"],
        ["timeline", "job_gap"],
        ["correlate", "job_gap"],
        ["perf"],
        ["export", "job:job_gap", "-o", "{tmp}/out.jsonl"],
    ],
)
def test_a_corrupt_rotated_file_is_skipped_and_counted(
    command: list[str], log_file: Path, tmp_path: Path
) -> None:
    args = [part.replace("{tmp}", str(tmp_path)) for part in command]
    whole = run("--file", log_file, *args, "--json")
    (tmp_path / "out.jsonl").unlink(missing_ok=True)
    (tmp_path / "events.log.2.gz").write_bytes(b"\x1f\x8b" + b"\x00" * 40)  # cut short
    done = run("--file", log_file, *args, "--json")
    assert done.returncode == 0, done.stderr
    assert done.stdout == whole.stdout  # events.log is read as before
    warnings = [line for line in done.stderr.splitlines() if "unreadable" in line]
    assert len(warnings) == 1 and "events.log.2.gz" in warnings[0], done.stderr
    assert "Traceback" not in done.stderr


def test_timeline_correlate_and_health_agree_on_now_for_files(tmp_path: Path) -> None:
    path = tmp_path / "events.log"
    path.write_bytes(b"".join(event.to_json_line() for event in OPEN_JOB))
    (timeline, *_) = records(run("--file", path, "timeline", "job_1", "--json"))
    (correlated, *_) = records(run("--file", path, "correlate", "job_1", "--json"))
    (logs, *_) = records(run("--file", path, "health", "--json"))
    newest = OPEN_JOB[-1].timestamp
    assert timeline["nowMs"] == correlated["nowMs"] == logs["nowMs"] == newest
    assert timeline["status"] == correlated["status"] == "running"
    assert timeline["silentMs"] == correlated["silentMs"] == 0


def test_timeline_correlate_and_health_agree_on_now_for_a_live_stream(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    start = time.time_ns() // 1_000_000 - 60_000
    for n, event in enumerate(OPEN_JOB):
        ms = start + n * 1000
        client.xadd(STREAM, {**event.encode(), "timestamp": str(ms)}, id=f"{ms}-0")
    client.close()
    before = time.time_ns() // 1_000_000
    (timeline, *_) = records(run("--redis-url", redis_url, "timeline", "job_1", "--json"))
    (correlated, *_) = records(run("--redis-url", redis_url, "correlate", "job_1", "--json"))
    (stream, *_) = records(run("--redis-url", redis_url, "health", "--json"))
    after = time.time_ns() // 1_000_000
    last = start + 2000
    for now in (timeline["nowMs"], correlated["nowMs"], stream["nowMs"]):
        assert before <= now <= after  # the wall clock, for each of them
    assert timeline["silentMs"] == timeline["nowMs"] - last
    assert correlated["silentMs"] == correlated["nowMs"] - last
    assert stream["lastEventAgeMs"] == stream["nowMs"] - last


def test_health_rates_a_short_stream_over_what_it_holds(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    first = time.time_ns() // 1_000_000 - 24_000
    pipe = client.pipeline()
    for n in range(240):  # 10 a second for 24 s: 600 a minute
        ms = first + n * 100
        pipe.xadd(
            STREAM, TelemetryEvent.create("worker", "job.progress_updated").encode(), id=f"{ms}-0"
        )
    pipe.execute()
    client.close()
    (stream, *_) = records(run("--redis-url", redis_url, "health", "--json"))
    window = stream["rateWindowMs"]
    assert window == stream["nowMs"] - first  # from its oldest entry, not 5 minutes
    assert stream["eventsPerMinute"] == pytest.approx(240 / (window / 60_000))
    assert 400 < stream["eventsPerMinute"] < 700  # not 240 / 5 = 48
    human = run("--redis-url", redis_url, "health").stdout
    assert "all the stream holds" in human


def test_health_with_files_reports_on_the_files(log_file: Path, tmp_path: Path) -> None:
    (tmp_path / "events.log.3.gz").write_bytes(b"\x1f\x8bnot gzip")
    done = run("--file", log_file, "health", "--json")
    assert done.returncode == 0, done.stderr
    got = records(done)
    logs = got[0]
    assert logs["kind"] == "logs" and logs["lines"] == len(EVENTS)
    assert logs["lastMs"] == max(int(e.id.split("-")[0]) for e in EVENTS if e.id)
    assert logs["nowMs"] == max(e.timestamp for e in EVENTS)
    assert len(logs["unreadable"]) == 1 and "events.log.3.gz" in logs["unreadable"][0]
    assert {r["path"] for r in got if r["kind"] == "file"} == {str(log_file)}
    assert sum(1 for r in got if r["kind"] == "service") >= 2
    human = run("--file", log_file, "health")
    assert human.returncode == 0 and "Logs 1 file(s)" in human.stdout
    assert "unreadable" in human.stderr


def test_timeline_says_when_the_stream_trimmed_a_jobs_start(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    start = time.time_ns() // 1_000_000 - 60_000
    for n, event in enumerate(OPEN_JOB):
        client.xadd(STREAM, event.encode(), id=f"{start + n * 1000}-0")
    client.xtrim(STREAM, maxlen=2, approximate=False)  # job.created is gone
    client.close()
    (summary, *_) = records(run("--redis-url", redis_url, "timeline", "job_1", "--json"))
    assert summary["events"] == 2 and summary["gaps"] == 0
    assert summary["sourcesStartMs"] == start + 1000 and summary["missingStartMs"] == 0
    human = run("--redis-url", redis_url, "timeline", "job_1").stdout
    assert "may lack its start" in human.splitlines()[1]


def test_timeline_over_files_says_where_usual_came_from(log_file: Path) -> None:
    (summary, *_) = records(run("--file", log_file, "timeline", "job_gap", "--json"))
    assert summary["usualFrom"].startswith("usual steps from ")
    assert "events up to its end" in summary["usualFrom"]
    done = run("--file", log_file, "correlate", "job_gap")
    assert done.returncode == 0, done.stderr
    assert "usual steps from" in done.stdout.splitlines()[1]
