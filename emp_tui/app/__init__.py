"""The emp-tui app (the only package of emp-tui that imports Textual).

``make_app`` builds the app for the CLI, the tests, the screenshots and the benchmark alike;
``run_app`` runs it in the terminal and returns the exit code.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from emp_tui.config import (
    AppConfig,
    ConfigError,
    load_app_config,
    redacted_url,
    resolve_redis_url,
    resolve_stream,
)
from emp_tui.env import env_flag

if TYPE_CHECKING:
    from emp_tui.app.app import EmpTuiApp

__all__ = ["make_app", "run_app"]


def make_app(
    *,
    redis_url: str | None = None,
    stream: str | None = None,
    files: Iterable[Path] = (),
    job_id: str | None = None,
    query: str | None = None,
    config: AppConfig | None = None,
    clock: Callable[[], float] = time.time,
    live: bool = True,
    since: str | None = None,
    until: str | None = None,
    shards: int | None = None,
) -> EmpTuiApp:
    """The app, configured. With ``files`` and no ``redis_url`` it reads only the files;
    with neither it connects to the Redis named by the environment or config.toml, and reads
    the collector's logs in config.toml's ``log_dir`` beside it when that directory exists.
    ``live=False`` keeps it off Redis altogether (events come from ``add_events``, or
    ``files``). ``since``/``until`` choose the time range (else the last ``window``).
    ``shards``: the stream's shards, else ``EMP_EVENTS_SHARDS`` (ValueError when bad), else
    the count the emitters recorded (found once connected)."""
    from emp_tui.app.app import EmpTuiApp
    from emp_tui.topology import has_redis_scheme, shards_configured

    configured = shards_configured(os.environ) if shards is None else shards
    config = load_app_config() if config is None else config
    file_list = [Path(path) for path in files]
    url: str | None = None
    if live and (redis_url or not file_list):
        url = resolve_redis_url(redis_url, config)
        if not has_redis_scheme(url):  # else the app would retry it for good
            raise ValueError(
                f"bad Redis URL {redacted_url(url)}: use a redis://, rediss://, unix:// or "
                "redis+cluster:// URL"
            )
        log_dir = Path(config.log_dir).expanduser() if config.log_dir else None
        if not file_list and log_dir is not None and log_dir.is_dir():
            file_list = [log_dir]
    return EmpTuiApp(
        config=config,
        redis_url=url,
        stream=resolve_stream(stream, config),
        shards=configured or 1,
        shards_configured=configured is not None,
        files=file_list,
        job_id=job_id,
        query=query,
        clock=clock,
        live=live,
        since=since,
        until=until,
        cursor_blink=env_flag(os.environ.get("EMP_TUI_CURSOR_BLINK"), True),
    )


def run_app(
    *,
    redis_url: str | None,
    stream: str | None,
    files: list[Path],
    job_id: str | None,
    query: str | None,
    since: str | None = None,
    until: str | None = None,
) -> int:
    """Run the app in this terminal; the exit code. A bad config.toml, or a bad
    ``--since``/``--until``/window, is one line on stderr."""
    try:
        with _left_out_of_collections():
            app = make_app(
                redis_url=redis_url,
                stream=stream,
                files=files,
                job_id=job_id,
                query=query,
                since=since,
                until=until,
            )
            app.check_range()
    except (ConfigError, ValueError) as error:
        print(f"emp-tui: {error}", file=sys.stderr)
        return 2
    result = app.run()
    return result if isinstance(result, int) else (app.return_code or 0)


@contextmanager
def _left_out_of_collections() -> Iterator[None]:
    """What is made inside, the app's imports and the app (some 56,000 objects, all but a few
    hundred kept for the life of the process), is not walked by the cyclic collector while it
    is made (~10-15 ms of the start) nor at any full collection after (gc.freeze)."""
    gc.disable()
    try:
        yield
        gc.freeze()
    finally:
        gc.enable()
