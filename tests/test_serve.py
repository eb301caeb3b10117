"""`emp-tui serve`: the app in a real headless Chromium, fed by a real redis-server, one app
process per browser tab; and the server's own edges (its address, its warnings, bad input)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from browser import Browser, BrowserError, chromium_binary
from samples import incident_sample
from serving import Served

from emp_tui.cli.common import SERVE_HOST, settings_from
from emp_tui.cli.parser import build_parser
from emp_tui.cli.serve import app_command, exposure_warning, is_loopback, public_url
from emp_tui.events import TelemetryEvent

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOT = ROOT / "screenshots" / "browser.png"
"""Where the README's browser screenshot is written: by `make screenshots`, which sets
EMP_TUI_SCREENSHOTS=1; an ordinary test run writes its screenshot to a temporary directory
instead, so that it never leaves the work tree changed."""
STREAM = "emp:events"
CHROMIUM = chromium_binary()


EMP_TUI = [sys.executable, "-m", "emp_tui.cli"]


@pytest.fixture
def loaded_redis(redis_url: str) -> str:
    now = time.time_ns() // 1_000_000
    with redis.Redis.from_url(redis_url) as client:
        for event in incident_sample(now - 12 * 60_000):  # 11.7 minutes of it
            client.xadd(STREAM, event.encode(), id=event.id)
    return redis_url


# -- in a real browser ------------------------------------------------------------------------


# Beside it, why: a machine without Chromium cannot run this; CI installs Debian's first.
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (apt-get install chromium)")
@pytest.mark.timeout(300)
def test_the_app_in_a_browser_shows_the_stream_and_follows_it(
    loaded_redis: str, tmp_path: Path
) -> None:
    assert CHROMIUM is not None
    screenshot = SCREENSHOT if os.environ.get("EMP_TUI_SCREENSHOTS") else tmp_path / "browser.png"
    served = Served(EMP_TUI, "--port", "0", "--redis-url", loaded_redis, "--job", "job_gap")
    try:
        assert served.url.startswith(f"http://{SERVE_HOST}:")
        with Browser(CHROMIUM, width=1600, height=1000) as browser:
            tab = browser.open(served.url)
            # The events from Redis, the job given with --job on its timeline, connected (the
            # rows may come from the history read before the live reader has connected).
            shown = tab.wait_for_text(
                "job_bad", "connector.processing_fail", "job job_gap", "connected"
            )
            assert "connected" in shown
            screen = tab.terminal_text()
            assert screen is not None and screen["cols"] >= 120  # the four-pane layout
            (app,) = served.wait_for_apps(1)

            # The live tail reaches the page: an event written now appears.
            live = TelemetryEvent.create(
                "api-server", "job.created", {"jobType": "browser"}, job_id="job_browser"
            )
            with redis.Redis.from_url(loaded_redis) as client:
                client.xadd(STREAM, live.encode())
            tab.wait_for_text("job_browser", "jobType=browser")
            png = tab.screenshot(screenshot)
            assert png.startswith(b"\x89PNG\r\n\x1a\n")
            width, height = (int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big"))
            assert (width, height) == (1600, 1000)

            # A second tab is a second visitor: an app process of its own.
            other = browser.open(served.url)
            other.wait_for_text("job_browser", "job job_gap")
            apps = served.wait_for_apps(2)
            assert app in apps
            # Closing the first tab ends its app, not the other's.
            tab.close()
            (left,) = served.wait_for_apps(1)
            assert left != app
            other.wait_for_text("job_browser")
    except BrowserError as exc:
        pytest.fail(str(exc))
    finally:
        code = served.stop()
    assert code == 0, served.stderr
    assert served.app_processes() == []


# -- the server's edges -----------------------------------------------------------------------


def serve_args(*argv: str) -> list[str]:
    parser = build_parser()
    args = parser.parse_args(argv)
    return app_command(args, settings_from(args))


def test_each_app_gets_the_app_options(tmp_path: Path) -> None:
    log = tmp_path / "events.log"
    argv = serve_args(
        "--job",
        "job_1",
        "serve",
        "--redis-url",
        "redis://h:1/0",
        "--stream",
        "emp:x",
        "--file",
        str(log),
        "--filter",
        "service:worker -level:debug",
        "--port",
        "0",
    )
    assert argv[:3] == [sys.executable, "-m", "emp_tui.cli"]
    rest = argv[3:]
    pairs = dict(zip(rest[::2], rest[1::2], strict=True))
    assert pairs == {
        "--redis-url": "redis://h:1/0",
        "--stream": "emp:x",
        "--file": str(log),
        "--job": "job_1",
        "--filter": "service:worker -level:debug",
    }
    # Only what was given: the environment and config.toml reach the apps by themselves.
    assert serve_args("serve") == [sys.executable, "-m", "emp_tui.cli"]


def test_the_app_command_survives_the_shell() -> None:
    """textual-serve runs the command through a shell: quotes, $ and ; stay text."""
    import shlex

    query = "\"a b\" $(touch /tmp/x); 'c'"
    argv = serve_args("serve", "--filter", query)
    assert shlex.split(shlex.join(argv)) == argv


def test_loopback_and_the_warning() -> None:
    for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        assert is_loopback(host), host
        assert exposure_warning(host, 8000) is None
    for host in ("0.0.0.0", "::", "192.0.2.1"):
        assert not is_loopback(host), host
        warning = exposure_warning(host, 8000)
        assert warning is not None and "no authentication" in warning
        assert f"{host}:8000" in warning


def test_public_url() -> None:
    assert public_url("127.0.0.1", 8000) == "http://127.0.0.1:8000"
    assert public_url("::1", 80) == "http://[::1]:80"
    assert public_url("0.0.0.0", 8000) == f"http://{socket.gethostname()}:8000"
    assert public_url("localhost", 1) == "http://localhost:1"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "emp_tui.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_one_line(done: subprocess.CompletedProcess[str], code: int, fragment: str) -> None:
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    first = done.stderr.splitlines()[0]
    assert first.startswith("emp-tui: ") and fragment in first, done.stderr
    assert done.stdout == ""  # it never said it was serving


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_port_in_use_is_one_line(busy_port: int) -> None:
    done = run("serve", "--port", str(busy_port))
    assert_one_line(done, 2, f"cannot serve on 127.0.0.1:{busy_port}: the port is in use")
    assert len(done.stderr.splitlines()) == 1


def test_bad_addresses_are_one_line() -> None:
    # An address of no interface here (TEST-NET-1): the system refuses it, no packet leaves.
    done = run("serve", "--host", "192.0.2.1", "--port", "0")
    assert_one_line(done, 2, "cannot serve on 192.0.2.1:0: Cannot assign requested address")
    # A name that cannot be a host name (a label over 63 characters) fails before any lookup.
    done = run("serve", "--host", "a" * 64 + ".example")
    assert_one_line(done, 2, "cannot serve on 'aaaa")
    done = run("serve", "--port", "http")
    assert_one_line(done, 2, "bad port 'http'")
    done = run("serve", "--public-url", "ftp://x")
    assert_one_line(done, 2, "bad --public-url 'ftp://x'")


def test_bad_app_options_are_caught_before_serving(tmp_path: Path) -> None:
    done = run("serve", "--filter", "level:loud", "--port", "0")
    assert_one_line(done, 2, "bad query")
    assert "^" in done.stderr  # the caret under the fault
    done = run("serve", "--file", str(tmp_path / "missing.log"), "--port", "0")
    assert_one_line(done, 3, "missing.log does not exist")
    config = tmp_path / "config.toml"
    config.write_text("backfill = 'lots'\n")
    done = subprocess.run(
        [sys.executable, "-m", "emp_tui.cli", "serve", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "EMP_TUI_CONFIG": str(config)},
    )
    assert_one_line(done, 2, "config.toml")


def test_serve_on_loopback_warns_of_nothing_and_stops_on_sigterm(redis_url: str) -> None:
    served = Served(EMP_TUI, "--port", "0", "--redis-url", redis_url)
    assert served.url.startswith("http://127.0.0.1:")
    assert served.stop() == 0
    assert served.stderr == ""
