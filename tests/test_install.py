"""Installs that fit each user: `pip install emp-tui` is the whole thing; the emitter and the
collector install and run without Textual or Rich (`pip install --no-deps` of the package plus
requirements-core.txt), and the two lists cannot drift apart."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
import venv
from pathlib import Path

import pytest
import redis

from emp_tui.cli.main import APP_REQUIRES
from emp_tui.events import decode

ROOT = Path(__file__).resolve().parent.parent
CORE_FILE = ROOT / "requirements-core.txt"


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match, requirement
    return match.group().lower().replace("_", "-")


def _core_lines() -> list[str]:
    lines = (line.strip() for line in CORE_FILE.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def test_core_requirements_are_the_package_s_dependencies_without_the_app_s() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    dependencies: list[str] = project["dependencies"]
    core = _core_lines()
    # The same lines, letter for letter: a version floor raised in one place is raised in both.
    assert set(core) <= set(dependencies)
    app_only = {_name(dep) for dep in dependencies if dep not in core}
    assert app_only == set(APP_REQUIRES)
    assert not {"textual", "rich"} & {_name(line) for line in core}


def test_the_collector_image_installs_the_core_only() -> None:
    dockerfile = (ROOT / "collector" / "Dockerfile").read_text()
    assert "pip install --no-deps ." in dockerfile
    assert "pip install -r requirements-core.txt" in dockerfile
    assert re.search(r"^COPY .*requirements-core\.txt", dockerfile, re.MULTILINE)


@pytest.fixture(scope="module")
def lean_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the package installed the lean way; its bin/."""
    tmp = tmp_path_factory.mktemp("lean")
    source = tmp / "src"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("emp_tui", "collector"):
        shutil.copytree(ROOT / name, source / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md", "requirements-core.txt"):
        shutil.copy2(ROOT / name, source / name)
    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    python = env_dir / "bin" / "python"
    log = []
    for command in (
        # -v: the build's own warnings are part of what is checked
        [str(python), "-m", "pip", "install", "-v", "--no-deps", str(source)],
        [str(python), "-m", "pip", "install", "--quiet", "-r", str(source / CORE_FILE.name)],
    ):
        done = subprocess.run(command, capture_output=True, text=True, timeout=540)
        assert done.returncode == 0, done.stdout + done.stderr
        log.append(done.stdout + done.stderr)
    (env_dir / "install.log").write_text("\n".join(log))
    return env_dir / "bin"


def _run(
    argv: list[str], env: dict[str, str] | None = None, *, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    # Away from the checkout, so that the installed package is what gets imported.
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


@pytest.mark.timeout(600)
def test_the_build_warns_of_nothing(lean_env: Path) -> None:
    """No deprecation banners (setuptools once complained of the license table)."""
    log = (lean_env.parent / "install.log").read_text()
    assert "Successfully installed emp-tui" in log
    assert "Deprecat" not in log, log


@pytest.mark.timeout(600)
def test_lean_install_has_no_textual_or_rich(lean_env: Path, tmp_path: Path) -> None:
    done = _run([str(lean_env / "python"), "-m", "pip", "list", "--format=freeze"], cwd=tmp_path)
    installed = {_name(line) for line in done.stdout.splitlines()}
    assert {"emp-tui", "redis", "orjson"} <= installed
    assert not {"textual", "rich", "platformdirs"} & installed


@pytest.mark.timeout(600)
def test_lean_install_emits_and_reads_back(lean_env: Path, redis_url: str, tmp_path: Path) -> None:
    stream = "emp:lean"
    script = (
        "import sys\n"
        "from emp_tui.telemetry import EventClient\n"
        f"client = EventClient('lean-svc', redis_url={redis_url!r}, stream={stream!r})\n"
        "client.job_event('job_lean', 'job.created', {'jobType': 'comfyui'})\n"
        "assert client.flush(10), client.stats\n"
        "client.close()\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich'))\n"
        "assert not loaded, loaded\n"
        "import emp_tui\n"
        "print(emp_tui.__file__)\n"
    )
    done = _run([str(lean_env / "python"), "-c", script], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert str(lean_env.parent) in done.stdout  # the installed copy, not the checkout
    with redis.Redis.from_url(redis_url) as client:
        ((entry_id, fields),) = client.xrange(stream)
    event = decode(entry_id, fields)
    assert (event.service, event.event_type) == ("lean-svc", "job.created")
    assert event.job_id == "job_lean"
    assert event.malformed is None
    # The CLI reads it back too (its --json needs no Rich), and says plainly that the app is
    # not there.
    cli = [str(lean_env / "emp-tui"), "--redis-url", redis_url, "--stream", stream]
    search = _run([*cli, "search", "--json"], cwd=tmp_path)
    assert search.returncode == 0, search.stderr
    assert '"jobId":"job_lean"' in search.stdout
    app = _run([str(lean_env / "emp-tui"), "--redis-url", redis_url], cwd=tmp_path)
    assert app.returncode == 2 and "Traceback" not in app.stderr
    assert "the app cannot start: textual, rich, platformdirs not installed" in app.stderr


@pytest.mark.timeout(600)
def test_lean_install_runs_the_collector(lean_env: Path, redis_url: str, tmp_path: Path) -> None:
    done = _run(
        [str(lean_env / "emp-collector"), "--print-config"],
        {"REDIS_URL": redis_url, "EMP_EVENTS_STREAM": "emp:lean"},
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "emp:lean" in done.stdout
