"""`emp-tui problems`, `emp-tui lint` and `correlate`'s window, end to end in a subprocess,
against a real redis-server and against files: exit codes, --json, time bounds, escaping."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
import redis
from samples import HOSTILE_TEXT, event, incident_sample, with_stream_ids

from emp_tui.events import TelemetryEvent

STREAM = "emp:events"
NOW = time.time_ns() // 1_000_000
BASE = NOW - 30 * 60_000


def run(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "emp_tui.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1", "TZ": "UTC", **(env or {})},
    )


def records(done: subprocess.CompletedProcess[str]) -> list[dict]:  # type: ignore[type-arg]
    return [orjson.loads(line) for line in done.stdout.splitlines()]


def assert_clean_failure(done: subprocess.CompletedProcess[str], code: int, fragment: str) -> None:
    assert done.returncode == code, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    first = done.stderr.splitlines()[0]
    assert first.startswith("emp-tui: ") and fragment in first, done.stderr


def _orphan(base: int) -> list[TelemetryEvent]:
    """job_orphan on worker w-9 (machine m-9) never ends: w-9 restarts 18 s after its last
    event. Another job of m-9 (on w-8) runs meanwhile and after."""
    at = base + 800_000
    events = [
        event(1, at, "api-server", "job.created", {"jobType": "comfyui"}, job_id="job_orphan"),
        event(2, at + 50, "api-server", "job.queued", {}, job_id="job_orphan"),
        event(3, at + 300, "worker", "job.claimed", {}, job_id="job_orphan", worker_id="w-9",
              machine_id="m-9"),
        event(4, at + 400, "worker", "connector.processing_started", {}, job_id="job_orphan",
              worker_id="w-9", machine_id="m-9"),
        event(5, at + 18_400, "worker", "worker.starting",
              {"reason": "restarted by pm2 after exit code 137"}, worker_id="w-9",
              machine_id="m-9"),
    ]  # fmt: skip
    for n in range(6):
        events.append(
            event(10 + n, at + 1_000 + n * 3_000, "worker", "job.progress_updated",
                  {"progress": n * 10}, job_id="job_other", worker_id="w-8", machine_id="m-9")
        )  # fmt: skip
    events.append(
        event(16, at + 60_000, "worker", "job.completed", {}, job_id="job_other", worker_id="w-8")
    )
    return events


def _offenders(base: int) -> list[TelemetryEvent]:
    """Events that break the standards: a legacy service naming types its own way, claims
    without the worker, a key whose type changes, and a failure with terminal controls in
    its error."""
    at = base + 900_000
    bad = [event(100 + n, at + n, "legacy-api", "JobDone", {"n": n}) for n in range(6)]
    for n in range(20):
        job = f"job_c{n}"
        bad.append(event(200 + n, at + 100 + n, "worker", "job.claimed", {"claimTimeMs": 40 + n},
                         job_id=job))  # fmt: skip
        bad.append(event(400 + n, at + 150 + n, "worker", "job.completed", {}, job_id=job,
                         worker_id="w-7"))  # fmt: skip
    bad.append(
        event(300, at + 200, "worker", "job.claimed", {"claimTimeMs": "1500"}, job_id="job_s",
              worker_id="w-7")
    )  # fmt: skip
    bad.append(event(301, at + 250, "worker", "job.completed", {}, job_id="job_s", worker_id="w-7"))
    bad.append(
        event(302, at + 300, "worker", "connector.processing_failed",
              {"error": HOSTILE_TEXT, "connectorType": "comfyui"}, job_id="job_h",
              worker_id="w-7", level="error")
    )  # fmt: skip
    bad.append(event(303, at + 320, "worker", "job.failed", {"error": "connector"}, job_id="job_h",
                     worker_id="w-7"))  # fmt: skip
    return bad


EVENTS = with_stream_ids([*incident_sample(BASE), *_orphan(BASE), *_offenders(BASE)])
CLEAN = incident_sample(BASE)


def _write(path: Path, events: list[TelemetryEvent]) -> Path:
    path.write_bytes(b"".join(e.to_json_line() for e in events))
    return path


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    return _write(tmp_path / "events.log", EVENTS)


@pytest.fixture
def loaded_redis(redis_url: str) -> str:
    client = redis.Redis.from_url(redis_url)
    for made in EVENTS:
        client.xadd(STREAM, made.encode(), id=made.id)
    client.close()
    return redis_url


@pytest.fixture(params=["redis", "file"])
def source(request: pytest.FixtureRequest) -> list[str]:
    if request.param == "redis":
        return ["--redis-url", request.getfixturevalue("loaded_redis")]
    return ["--file", str(request.getfixturevalue("log_file"))]


# -- problems -------------------------------------------------------------------------------


def test_problems_json_one_finding_per_line_most_severe_first(source: list[str]) -> None:
    done = run(*source, "problems", "--json")
    assert done.returncode == 0, done.stderr
    found = records(done)
    ranks = {"critical": 3, "error": 2, "warn": 1, "info": 0}
    assert [ranks[f["severity"]] for f in found] == sorted(
        (ranks[f["severity"]] for f in found), reverse=True
    )
    (orphaned,) = [f for f in found if f["kind"] == "orphaned" and f["jobId"] == "job_orphan"]
    assert orphaned["workerId"] == "w-9"
    assert "exit 137" in orphaned["title"] and orphaned["severity"] in ("error", "critical")
    stalled = [f for f in found if f["kind"] == "stalled"]
    assert "job_stuck" in {f["jobId"] for f in stalled}
    assert len({f["key"] for f in found}) == len(found)


def test_problems_from_redis_reads_the_collectors_and_the_stream(loaded_redis: str) -> None:
    """No collector hash: the stream is unread for good. One that lost events to trimming:
    trim loss. A consumer group behind the stream's oldest entry: trim loss too."""
    absent = records(run("--redis-url", loaded_redis, "problems", "--json"))
    assert "collector-absent" in {f["kind"] for f in absent}
    text = run("--redis-url", loaded_redis, "problems", "--kind", "collector-absent").stdout
    assert "collector-absent  no collector is reading" in text  # the longest kind, a gap
    client = redis.Redis.from_url(loaded_redis)
    client.hset(
        "emp:collector:c-1",
        mapping={"consumer": "c-1", "state": "running", "lag": "0", "trimmed_lost": "412"},
    )
    client.expire("emp:collector:c-1", 60)
    client.close()
    done = run("--redis-url", loaded_redis, "problems", "--json", "--kind", "trim-loss")
    assert done.returncode == 0, done.stderr
    (lost,) = records(done)
    assert lost["severity"] == "error" and "412" in lost["title"] and lost["count"] == 412
    rest = records(run("--redis-url", loaded_redis, "problems", "--json"))
    assert "collector-absent" not in {f["kind"] for f in rest}


def test_problems_exit_1_when_none_and_filters(source: list[str]) -> None:
    done = run(*source, "problems", "--kind", "clock-skew")
    assert done.returncode == 1, done.stderr
    assert done.stdout.startswith("0 problem(s) in ")
    quiet = run(*source, "problems", "--json", "--kind", "clock-skew")
    assert quiet.returncode == 1 and quiet.stdout == ""
    assert "no problems found" in quiet.stderr
    errors = records(run(*source, "problems", "--json", "--min-severity", "error"))
    assert errors and all(f["severity"] in ("error", "critical") for f in errors)
    assert_clean_failure(run(*source, "problems", "--kind", "bogus"), 2, "unknown --kind bogus")
    assert_clean_failure(run(*source, "problems", "--stall", "soon"), 2, "bad --stall")


def test_problems_time_bounds(source: list[str]) -> None:
    """Up to a bound, "now" is the bound: the job that never ended had been quiet only
    since shortly before it, and what came after is not looked at."""
    until = str(BASE + 600_250 + 30_000)  # job_stuck's last event + 30 s
    done = run(*source, "problems", "--json", "--until", until, "--kind", "stalled")
    assert done.returncode == 0, done.stderr
    (stalled,) = records(done)
    assert stalled["jobId"] == "job_stuck" and stalled["data"]["quietMs"] == 30_000
    # Before the orphan's story: no orphaned job.
    early = records(run(*source, "problems", "--json", "--until", until))
    assert "orphaned" not in {f["kind"] for f in early}
    since = records(run(*source, "problems", "--json", "--since", str(BASE + 850_000)))
    assert "job_stuck" not in {f["jobId"] for f in since}


def test_problems_text_is_escaped(log_file: Path) -> None:
    done = run("--file", log_file, "problems")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"{len(records(run('--file', log_file, 'problems', '--json')))} ")
    assert "orphaned" in done.stdout and "    job       job_orphan" in done.stdout
    for raw in ("\x1b", "\u202e", "\x9b", "\x7f"):
        assert raw not in done.stdout


def test_problems_of_no_events(tmp_path: Path) -> None:
    empty = _write(tmp_path / "empty.log", [])
    done = run("--file", empty, "problems")
    assert_clean_failure(done, 1, "no problems found in 0 event(s)")


# -- lint -----------------------------------------------------------------------------------


def test_lint_exit_1_below_target_with_offenders_and_evidence(source: list[str]) -> None:
    done = run(*source, "lint", "--json")
    assert done.returncode == 1, done.stderr
    got = records(done)
    summary = got[0]
    assert summary["kind"] == "summary" and not summary["meetsTarget"]
    assert set(summary["servicesBelowTarget"]) == {"legacy-api", "worker"}
    services = {r["service"]: r for r in got if r["kind"] == "service"}
    assert services["legacy-api"]["actionable"] == 0 and services["legacy-api"]["events"] == 6
    offenders = [r for r in got if r["kind"] == "offender"]
    claims = next(o for o in offenders if o["rule"] == "required.claim")
    assert claims["count"] == 20
    assert claims["evidence"] == "service:worker type:job.claimed -worker:*"
    # The evidence query finds exactly those events.
    shown = records(run(*source, "search", claims["evidence"], "--json"))
    assert len(shown) == 20
    changes = [r for r in got if r["kind"] == "typeChange"]
    assert [(c["eventType"], c["key"], c["types"]) for c in changes] == [
        ("job.claimed", "claimTimeMs", {"number": 20, "string": 1})
    ]
    unknown = {r["eventType"] for r in got if r["kind"] == "unknownType"}
    assert "JobDone" in unknown


def test_lint_text_and_exit_0_when_every_service_meets_the_target(tmp_path: Path) -> None:
    clean = _write(tmp_path / "clean.log", CLEAN)
    done = run("--file", clean, "lint")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Event standards: 100.0% of ")
    assert "every service meets it" in done.stdout
    bad = run("--file", _write(tmp_path / "all.log", EVENTS), "lint")
    assert bad.returncode == 1
    assert "below it: legacy-api, worker" in bad.stdout.splitlines()[0]
    assert "search service:worker type:job.claimed -worker:*" in bad.stdout
    for raw in ("\x1b", "\u202e", "\x9b"):
        assert raw not in bad.stdout


def test_lint_query_time_bounds_and_nothing_to_score(source: list[str]) -> None:
    only = records(run(*source, "lint", "service:legacy-api", "--json"))
    assert only[0]["events"] == 6 and only[0]["actionable"] == 0
    early = run(*source, "lint", "--until", str(BASE + 850_000), "--json")
    assert early.returncode == 0, early.stderr  # the offenders came later
    assert_clean_failure(run(*source, "lint", "service:nobody"), 1, "no events to score")
    assert_clean_failure(run(*source, "lint", "--offenders", "-1"), 2, "--offenders")


def test_lint_reads_the_lint_table_of_config_toml(tmp_path: Path, log_file: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[lint]\ntarget = 0.5\n[lint.exempt]\n"naming.shape" = ["JobDone"]\n')
    done = run("--file", log_file, "lint", "--json", env={"EMP_TUI_CONFIG": str(config)})
    assert done.returncode == 0, done.stderr
    assert records(done)[0]["target"] == 0.5
    config.write_text("[lint]\ntarget = 'high'\n")
    bad = run("--file", log_file, "lint", env={"EMP_TUI_CONFIG": str(config)})
    assert_clean_failure(bad, 2, str(config))


# -- correlate ------------------------------------------------------------------------------


def test_correlate_looks_past_the_jobs_last_event(source: list[str]) -> None:
    """The worker's restart 18 s after the orphan's last event is related (within the stall
    threshold); with --after 5s it is not. Each event once."""
    got = records(run(*source, "correlate", "job_orphan", "--json"))
    related = [r for r in got if r["kind"] == "related"]
    restart = [r for r in related if r["event"]["eventType"] == "worker.starting"]
    assert [(r["by"], r["keys"]) for r in restart] == [(["worker", "machine"], ["w-9", "m-9"])]
    ids = [r["event"]["id"] for r in related]
    assert len(ids) == len(set(ids)) == 7  # the restart and job_other's first six events
    assert got[0]["windowEndMs"] - got[0]["startMs"] == 400 + 20_000
    short = records(run(*source, "correlate", "job_orphan", "--json", "--after", "5s"))
    assert "worker.starting" not in {r["event"]["eventType"] for r in short if "event" in r}


def test_correlate_limit_keeps_the_workers_own_events_first(source: list[str]) -> None:
    done = run(*source, "correlate", "job_orphan", "--limit", "2", "--json")
    assert done.returncode == 0, done.stderr
    got = records(done)
    related = [r["event"] for r in got if r["kind"] == "related"]
    assert (got[0]["related"], got[0]["relatedShown"]) == (7, 2)
    # The restart (no job of its own) first; then the nearest of job_other's events.
    assert [e["eventType"] for e in related] == ["job.progress_updated", "worker.starting"]
    assert related[0]["data"]["progress"] == 0
    human = run(*source, "correlate", "job_orphan", "--limit", "2")
    assert "Related events (2 of 7:" in human.stdout and "… 5 more" in human.stdout
    assert_clean_failure(run(*source, "correlate", "job_orphan", "--limit", "0"), 2, "--limit")
