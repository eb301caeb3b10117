"""Installs that fit each user: `pip install emp-tui` is the whole thing; the emitter and the
collector install and run without Textual or Rich (`pip install --no-deps` of the package plus
requirements-core.txt), and the two lists cannot drift apart."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import urllib.request
import venv
import zipfile
from pathlib import Path

import orjson
import pytest
import redis
from samples import incident_sample
from serving import Served

from emp_tui.cli.common import APP_REQUIRES, SERVE_REQUIRES
from emp_tui.events import decode

ROOT = Path(__file__).resolve().parent.parent
CORE_FILE = ROOT / "requirements-core.txt"
SAMPLE = incident_sample(time.time_ns() // 1_000_000 - 30 * 60_000)


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
    assert app_only == {_name(module) for module in (*APP_REQUIRES, *SERVE_REQUIRES)}
    assert not {"textual", "rich", "textual-serve"} & {_name(line) for line in core}


def test_the_collector_image_installs_the_core_only() -> None:
    dockerfile = (ROOT / "collector" / "Dockerfile").read_text()
    assert "pip install --no-deps ." in dockerfile
    assert "pip install -r requirements-core.txt" in dockerfile
    assert re.search(r"^COPY .*requirements-core\.txt", dockerfile, re.MULTILINE)


SHIPPED = ("emp_tui", "collector")
"""The import packages the distribution ships."""


def _source_tree(dest: Path) -> Path:
    """What a clone holds of the package's sources, copied, so that no build/ lands here."""
    dest.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in SHIPPED:
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md", "requirements-core.txt"):
        shutil.copy2(ROOT / name, dest / name)
    return dest


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built once per session from the sources; the build's output is build.log
    beside it (-v: the build's own warnings are part of what is checked)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = _source_tree(tmp / "src")
    command = [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w", str(tmp), str(source)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=540)
    assert done.returncode == 0, done.stdout + done.stderr
    (tmp / "build.log").write_text(done.stdout + done.stderr)
    (built,) = tmp.glob("*.whl")
    return built


def _venv(directory: Path, *installs: list[str]) -> Path:
    """A fresh virtual environment with ``pip install`` run once for each of ``installs``;
    its bin/."""
    venv.EnvBuilder(with_pip=True, clear=True).create(directory)
    python = directory / "bin" / "python"
    for arguments in installs:
        command = [str(python), "-m", "pip", "install", "--quiet", *arguments]
        done = subprocess.run(command, capture_output=True, text=True, timeout=540)
        assert done.returncode == 0, done.stdout + done.stderr
    return directory / "bin"


@pytest.fixture(scope="module")
def lean_env(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package installed the lean way (no dependencies, then requirements-core.txt)."""
    tmp = tmp_path_factory.mktemp("lean")
    return _venv(tmp / "venv", ["--no-deps", str(wheel)], ["-r", str(CORE_FILE)])


@pytest.fixture(scope="module")
def full_env(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package installed whole, as `pip install emp-tui` (or pipx, or uv tool) does."""
    tmp = tmp_path_factory.mktemp("full")
    return _venv(tmp / "venv", [str(wheel)])


@pytest.fixture(scope="module")
def sample_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CLI tests' incident sample as a collector log, half an hour old."""
    path = tmp_path_factory.mktemp("sample") / "events.log"
    path.write_bytes(b"".join(event.to_json_line() for event in SAMPLE))
    return path


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
def test_the_build_warns_of_nothing(wheel: Path) -> None:
    """No deprecation banners (setuptools once complained of the license table)."""
    log = (wheel.parent / "build.log").read_text()
    assert wheel.name in log
    assert "Deprecat" not in log, log


@pytest.mark.timeout(600)
def test_lean_install_has_no_textual_or_rich(lean_env: Path, tmp_path: Path) -> None:
    done = _run([str(lean_env / "python"), "-m", "pip", "list", "--format=freeze"], cwd=tmp_path)
    installed = {_name(line) for line in done.stdout.splitlines()}
    assert {"emp-tui", "redis", "orjson"} <= installed
    assert not {"textual", "rich", "platformdirs", "textual-serve", "aiohttp"} & installed


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
    # Log files too: their index kept in the XDG cache when it cannot be kept beside them
    # (platformdirs is the app's). A search naming no ID reads through the index (one for a
    # job ID searches the bytes, and builds none).
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "events.log").write_bytes(event.to_json_line())
    (logs / ".emp-index").write_text("a file where the index directory would go")
    cache = tmp_path / "cache"
    for query in ("job:job_lean", "service:lean-svc"):
        found = _run(
            [str(lean_env / "emp-tui"), "--file", str(logs), "search", query, "--json"],
            {"XDG_CACHE_HOME": str(cache)},
            cwd=tmp_path,
        )
        assert found.returncode == 0, found.stderr
        assert '"jobId":"job_lean"' in found.stdout
    assert list((cache / "emp-tui" / "log-index").rglob("events.log.idx"))
    app = _run([str(lean_env / "emp-tui"), "--redis-url", redis_url], cwd=tmp_path)
    assert app.returncode == 2 and "Traceback" not in app.stderr
    assert "the app cannot start: textual, rich, platformdirs not installed" in app.stderr
    serve = _run([str(lean_env / "emp-tui"), "serve", "--port", "0"], cwd=tmp_path)
    assert serve.returncode == 2 and "Traceback" not in serve.stderr
    assert "serve cannot start: textual, rich, platformdirs, textual-serve not" in serve.stderr


@pytest.mark.timeout(600)
def test_lean_install_runs_the_collector(lean_env: Path, redis_url: str, tmp_path: Path) -> None:
    done = _run(
        [str(lean_env / "emp-collector"), "--print-config"],
        {"REDIS_URL": redis_url, "EMP_EVENTS_STREAM": "emp:lean"},
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "emp:lean" in done.stdout


# -- the whole package, as pip, pipx and uv tool install it ---------------------------------


def _shipped_files() -> set[str]:
    return {
        path.relative_to(ROOT).as_posix()
        for package in SHIPPED
        for path in (ROOT / package).rglob("*")
        if path.suffix in (".py", ".tcss") and "__pycache__" not in path.parts
    }


def test_the_wheel_carries_every_module_the_stylesheet_and_both_commands(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (entry_points,) = (name for name in names if name.endswith(".dist-info/entry_points.txt"))
        scripts = archive.read(entry_points).decode()
        (metadata,) = (name for name in names if name.endswith(".dist-info/METADATA"))
        requires = [
            line.split(":", 1)[1].strip()
            for line in archive.read(metadata).decode().splitlines()
            if line.startswith("Requires-Dist:")
        ]
    assert "emp_tui/app/app.tcss" in names
    assert _shipped_files() <= names, sorted(_shipped_files() - names)
    assert not [name for name in names if name.startswith(("tests/", "bench/", "scripts/"))]
    assert "emp-tui = emp_tui.cli:main" in scripts
    assert "emp-collector = collector.__main__:main" in scripts
    # Without an extra: `pip install emp-tui` brings the app and `serve`.
    plain = {_name(line) for line in requires if "extra ==" not in line}
    assert {"textual", "rich", "textual-serve", "redis", "orjson"} <= plain


@pytest.mark.timeout(600)
def test_full_install_runs_both_commands(full_env: Path, sample_log: Path, tmp_path: Path) -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    done = _run([str(full_env / "emp-tui"), "--version"], cwd=tmp_path)
    assert (done.returncode, done.stdout.strip()) == (0, f"emp-tui {version}"), done.stderr
    search = [str(full_env / "emp-tui"), "--file", str(sample_log), "search"]
    done = _run([*search, "job:job_bad", "level:error", "--json"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    found = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert [record["eventType"] for record in found] == [
        "connector.processing_failed",
        "job.failed",
    ]
    done = _run([*search, "job:no_such_job"], cwd=tmp_path)
    assert done.returncode == 1 and done.stdout == ""
    done = _run(
        [str(full_env / "emp-collector"), "--print-config"],
        {"REDIS_URL": "redis://localhost:1/0", "EMP_EVENTS_STREAM": "emp:full"},
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "emp:full" in done.stdout


# Run by the installed interpreter: every module of the wheel imports, and the app starts from
# it (its stylesheet read from the installed package) and shows the sample's events.
_APP_FROM_THE_WHEEL = """
import asyncio, importlib, pkgutil, sys
from pathlib import Path
import collector, emp_tui

for package in (emp_tui, collector):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if not info.name.endswith(".__main__"):  # those run their command
            importlib.import_module(info.name)

from emp_tui.app import make_app

stylesheet = Path(sys.modules["emp_tui.app"].__file__).with_name("app.tcss")

async def main() -> None:
    app = make_app(files=[Path(sys.argv[1])])
    async with app.run_test(size=(160, 48)) as pilot:
        for _ in range(600):
            await pilot.pause(0.05)
            if "job_bad" in app.export_screenshot():
                break
        else:
            raise SystemExit("the app never showed job_bad")
    print(stylesheet, stylesheet.is_file())

asyncio.run(main())
"""


@pytest.mark.timeout(600)
def test_full_install_starts_the_app(full_env: Path, sample_log: Path, tmp_path: Path) -> None:
    done = _run(
        [str(full_env / "python"), "-c", _APP_FROM_THE_WHEEL, str(sample_log)],
        {"EMP_TUI_CONFIG": str(tmp_path / "no-config.toml"), "TEXTUAL_ANIMATIONS": "none"},
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    stylesheet, present = done.stdout.split()
    assert stylesheet.startswith(str(full_env.parent)) and present == "True"


@pytest.mark.timeout(600)
def test_full_install_serves_the_app(full_env: Path, sample_log: Path, tmp_path: Path) -> None:
    """The page, textual-serve's own scripts, and an app behind the websocket, all from the
    installed package (the browser itself is tests/test_serve.py's)."""
    served = Served(
        [full_env / "emp-tui"],
        "--port",
        "0",
        "--file",
        str(sample_log),
        env={"EMP_TUI_CONFIG": str(tmp_path / "no-config.toml")},
        cwd=tmp_path,
    )
    try:
        with urllib.request.urlopen(served.url, timeout=30) as page:
            html = page.read().decode()
        assert "js/textual.js" in html and f"{served.url.split('//')[1]}/ws" in html
        with urllib.request.urlopen(f"{served.url}/static/js/textual.js", timeout=30) as script:
            assert b"xterm" in script.read()
        screen = asyncio.run(_first_screen(served.url, "job_bad"))
        assert "job_bad" in screen
        (app,) = served.app_processes()
        argv = Path(f"/proc/{app}/cmdline").read_bytes().split(b"\0")
        assert argv[0].decode().startswith(str(full_env.parent))  # the installed interpreter
    finally:
        code = served.stop()
    assert code == 0, served.stderr


async def _first_screen(url: str, needle: str) -> str:
    """Connect as the page does and read the app's output until it shows ``needle``."""
    import aiohttp

    seen = b""
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{url}/ws?width=160&height=48") as websocket,
    ):
        async for message in websocket:
            if message.type == aiohttp.WSMsgType.BINARY:
                seen += message.data
                if needle.encode() in seen:
                    break
            elif message.type != aiohttp.WSMsgType.TEXT:
                break
    return seen.decode(errors="replace")


# -- pipx and uv, from a fresh clone ----------------------------------------------------------


def _tool_installer(name: str) -> list[str] | None:
    return [sys.executable, "-m", name] if importlib.util.find_spec(name) else None


def _tool_install(tool: str, clone: Path, home: Path) -> tuple[list[str], dict[str, str], Path]:
    """The command that installs ``clone`` with ``tool``, its environment (everything it
    writes under ``home``), and the folder it puts the commands in."""
    bin_dir = home / "bin"
    if tool == "pipx":
        env = {"PIPX_HOME": str(home / "pipx"), "PIPX_BIN_DIR": str(bin_dir)}
        env["PIPX_MAN_DIR"] = str(home / "man")
        return ["install", str(clone)], env, bin_dir
    env = {"UV_TOOL_DIR": str(home / "uv"), "UV_TOOL_BIN_DIR": str(bin_dir)}
    env["UV_PYTHON_DOWNLOADS"] = "never"  # this interpreter, never one uv would fetch
    return ["tool", "install", "--python", sys.executable, str(clone)], env, bin_dir


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A `git clone` of this checkout: what is committed, nothing else."""
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout, or no git: nothing to clone")  # reason beside it
    clone = tmp_path_factory.mktemp("clone") / "emp-tui"
    done = subprocess.run(
        ["git", "clone", "--quiet", str(ROOT), str(clone)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return clone


@pytest.mark.timeout(600)
@pytest.mark.parametrize("tool", ["pipx", "uv"])
def test_pipx_and_uv_tool_install_from_a_fresh_clone(
    tool: str, fresh_clone: Path, sample_log: Path, tmp_path: Path
) -> None:
    installer = _tool_installer(tool)
    if installer is None:  # the dev extra brings both; a bare environment may lack them
        pytest.skip(f"{tool} is not installed here (pip install -e '.[dev]' brings it)")
    arguments, env, bin_dir = _tool_install(tool, fresh_clone, tmp_path / tool)
    done = _run([*installer, *arguments], env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(path.name for path in bin_dir.iterdir()) == ["emp-collector", "emp-tui"]
    done = _run([str(bin_dir / "emp-tui"), "--version"], cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.startswith("emp-tui "), done.stderr
    done = _run(
        [str(bin_dir / "emp-tui"), "--file", str(sample_log), "search", "job:job_bad", "--json"],
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert {orjson.loads(line)["jobId"] for line in done.stdout.splitlines()} == {"job_bad"}
    done = _run(
        [str(bin_dir / "emp-collector"), "--print-config"],
        {"REDIS_URL": "redis://localhost:1/0", "EMP_EVENTS_STREAM": f"emp:{tool}"},
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert f"emp:{tool}" in done.stdout
    # The commands run the tool's own environment, not this checkout's.
    interpreter = (bin_dir / "emp-tui").read_text().splitlines()[0].removeprefix("#!")
    assert interpreter.startswith(str(tmp_path / tool)), interpreter
