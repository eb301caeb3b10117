"""`python -m emp_tui.demo demo|sim ...` (what `emp-tui demo|sim` dispatches to), run as real
processes: the embedded redis-server's life, the configured Redis, the command line."""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import ClassVar

import pytest
import redis
from simhelp import read_events

from emp_tui.demo import cli, main

STARTED = re.compile(r"started redis-server \(pid (\d+)\) on unix://(\S+)/redis\.sock")


class Running:
    """A demo process whose output is read line by line in the background."""

    def __init__(self, *args: str, ignore_sigint: bool = False) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "emp_tui.demo", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            # What a shell does to a script's background job.
            preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
            if ignore_sigint
            else None,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                raise AssertionError(f"no line matching {pattern!r} in:\n" + "\n".join(self.lines))
            self.lines.append(line)
            found = re.search(pattern, line)
            if found:
                return found

    def finish(self, timeout: float = 60.0) -> int:
        code = self.proc.wait(timeout=timeout)
        while (line := self._queue.get(timeout=10)) is not None:
            self.lines.append(line)
        return code


@pytest.fixture
def running() -> Iterator[list[Running]]:
    started: list[Running] = []
    yield started
    for run in started:
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait()


def gone(pid: int, timeout: float = 30.0) -> bool:
    """True once no process has this pid (polling: the kernel may take a moment)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def start_demo(
    running: list[Running], *args: str, ignore_sigint: bool = False
) -> tuple[Running, int, Path]:
    run = Running(
        "demo", "--no-app", "--history", "20", "--seed", "3", *args, ignore_sigint=ignore_sigint
    )
    running.append(run)
    found = run.wait_for(STARTED.pattern)
    pid, directory = int(found[1]), Path(found[2])
    run.wait_for("Ctrl\\+C stops it")
    os.kill(pid, 0)  # alive
    assert (directory / "redis.sock").exists()
    return run, pid, directory


@pytest.mark.parametrize(
    ("sig", "ignored"), [(signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGINT, True)]
)
def test_the_embedded_redis_is_gone_after_the_demo_stops(
    running, sig: signal.Signals, ignored: bool
) -> None:
    run, pid, directory = start_demo(running, ignore_sigint=ignored)
    with redis.Redis(unix_socket_path=str(directory / "redis.sock")) as client:
        # The live services are writing into it.
        history = client.xlen("emp:events")
        assert history > 0
        run.wait_for(r"\d+ events \(\d+/s\)")
        run.wait_for(r"\d+ events \(\d+/s\)")
        assert client.xlen("emp:events") > history
    run.proc.send_signal(sig)
    assert run.finish() == 0
    assert gone(pid)
    assert not directory.exists()
    assert not any("Traceback" in line for line in run.lines)


@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux-only")
def test_the_embedded_redis_dies_with_a_killed_demo(running) -> None:
    run, pid, directory = start_demo(running)
    run.proc.kill()  # no cleanup code runs in the demo at all
    run.finish()
    try:
        assert gone(pid)
    finally:
        if not gone(pid, 0.1):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(directory)  # the socket's directory is all a kill -9 leaves


def test_demo_uses_a_configured_redis_that_answers(running, redis_url: str) -> None:
    run = Running("demo", "--no-app", "--history", "20", "--redis-url", redis_url)
    running.append(run)
    run.wait_for("using your Redis at " + re.escape(redis_url))
    run.wait_for(r"\d+ events \(\d+/s\)")
    run.proc.send_signal(signal.SIGINT)
    assert run.finish() == 0
    assert not any("started redis-server" in line for line in run.lines)
    events = read_events(redis_url)
    assert len(events) > 100
    # Its queue keys are removed on the way out; the events stay.
    with redis.Redis.from_url(redis_url) as client:
        assert client.keys("{emp:demo:*") == []


def test_demo_falls_back_to_its_own_redis_when_the_configured_is_down(running, tmp_path) -> None:
    dead = f"unix://{tmp_path}/nothing.sock"
    run = Running("demo", "--no-app", "--history", "5", "--redis-url", dead)
    running.append(run)
    run.wait_for("does not answer")
    found = run.wait_for(STARTED.pattern)
    run.wait_for("Ctrl\\+C stops it")
    run.proc.send_signal(signal.SIGINT)
    assert run.finish() == 0
    assert gone(int(found[1]))


def test_sim_runs_a_scenario_against_a_given_redis(redis_url: str) -> None:
    done = subprocess.run(
        [
            *(sys.executable, "-m", "emp_tui.demo", "sim", "--redis-url", redis_url),
            *("--duration", "90", "--speed", "max", "--seed", "4", "--scenario", "stalled-job"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "story: stalled-job: job_" in done.stdout
    assert "done:" in done.stdout
    events = read_events(redis_url)
    assert len(events) > 500
    assert max(e.timestamp for e in events) - min(e.timestamp for e in events) <= 90_000


def test_sim_stops_after_the_jobs_it_was_asked_for(redis_url: str) -> None:
    code = main(["sim", "--redis-url", redis_url, "--jobs", "25", "--speed", "max", "--no-faults"])
    assert code == 0
    events = read_events(redis_url)
    assert sum(e.event_type == "job.created" for e in events) == 25
    assert sum(e.event_type in ("job.completed", "job.failed") for e in events) == 25


def test_sim_says_in_one_line_when_redis_does_not_answer(tmp_path, capsys) -> None:
    code = main(["sim", "--redis-url", f"unix://{tmp_path}/none.sock", "--duration", "1"])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not answer" in err[0]


@pytest.mark.parametrize(
    "argv",
    [
        ["sim", "--faults", "stall=lots"],
        ["sim", "--speed", "0"],
        ["sim", "--scenario", "nope"],
        ["demo", "--rate", "-3"],
        ["teleport"],
        [],
    ],
)
def test_bad_arguments_exit_2_with_a_message(argv: list[str], capsys) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "error" in err or "stall" in err
    assert "Traceback" not in err


def test_list_scenarios(capsys) -> None:
    assert main(["demo", "--list-scenarios"]) == 0
    out = capsys.readouterr().out
    for name in ("stalled-job", "failing-connector", "worker-crash", "slow-machine"):
        assert name in out


def test_the_app_being_unavailable_is_reported_not_raised(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "emp_tui.app", None)  # what a missing package looks like
    run_app, why = cli._load_app()
    assert run_app is None
    assert "emp_tui.app" in why


def test_demo_opens_the_app_on_the_embedded_redis_with_the_history_in_it(monkeypatch) -> None:
    seen: dict = {}

    def open_app(url: str, stream: str) -> int:
        seen.update(url=url, stream=stream)
        with redis.Redis.from_url(url) as client:
            seen["history"] = client.xlen(stream)
        return 3

    monkeypatch.setattr(cli, "_load_app", lambda: (open_app, ""))
    assert main(["demo", "--history", "30", "--seed", "9"]) == 3
    assert seen["stream"] == "emp:events"
    assert seen["url"].startswith("unix://")
    assert seen["history"] > 500
    # Stopped and removed once the app returned.
    assert not Path(seen["url"].removeprefix("unix://")).parent.exists()


class StandInApp:
    """Just enough of a Textual app for the demo's handling of it: run() blocks until exit()
    is called from the app's loop (here: any thread, once it runs)."""

    made_with: ClassVar[dict] = {}

    def __init__(self, **kwargs: object) -> None:
        StandInApp.made_with = kwargs
        self.running = threading.Event()
        self.exited = threading.Event()
        self.return_code: int | None = None

    def run(self) -> None:
        self.running.set()
        assert self.exited.wait(60)

    def exit(self, result: object = None, return_code: int = 0) -> None:
        self.return_code = return_code
        self.exited.set()

    def call_from_thread(self, callback):  # type: ignore[no-untyped-def]
        if not self.running.is_set():
            raise RuntimeError("not running")
        return callback()


def test_sigterm_asks_the_app_to_exit_and_the_demo_cleans_up(monkeypatch) -> None:
    apps: list[StandInApp] = []

    def make_app(**kwargs: object) -> StandInApp:
        apps.append(StandInApp(**kwargs))
        return apps[-1]

    monkeypatch.setattr(cli, "_load_app", lambda: (partial(cli._run_app_made_by, make_app), ""))

    def terminate_once_running() -> None:
        while not apps:
            time.sleep(0.01)
        apps[0].running.wait(30)
        os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    threading.Thread(target=terminate_once_running, daemon=True).start()
    assert main(["demo", "--history", "5", "--seed", "2"]) == 0
    assert apps[0].exited.is_set()
    made = StandInApp.made_with
    assert (made["files"], made["job_id"], made["query"], made["stream"]) == (
        [],
        None,
        None,
        "emp:events",
    )
    assert not Path(str(made["redis_url"]).removeprefix("unix://")).parent.exists()
    assert signal.getsignal(signal.SIGTERM) == before


def test_a_bad_app_config_is_one_line(monkeypatch, capsys) -> None:
    def make_app(**kwargs: object) -> StandInApp:
        raise ValueError("config.toml: line 3: gap_threshold_ms must be a number")

    monkeypatch.setattr(cli, "_load_app", lambda: (partial(cli._run_app_made_by, make_app), ""))
    assert main(["demo", "--history", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["emp-tui demo: config.toml: line 3: gap_threshold_ms must be a number"]


def test_emp_tui_sim_reaches_the_simulator_through_the_cli(redis_url: str) -> None:
    done = subprocess.run(
        [
            *(sys.executable, "-m", "emp_tui.cli", "sim", "--redis-url", redis_url),
            *("--jobs", "10", "--speed", "max", "--no-faults", "--seed", "5"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "done:" in done.stdout
    events = read_events(redis_url)
    assert sum(e.event_type == "job.claimed" for e in events) == 10
