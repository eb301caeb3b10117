"""Settings shared by the emitter, the CLI, the app and the collector. No Textual here."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from emp_tui.env import DEFAULT_REDIS_URL, redis_url_from_env
from emp_tui.events import DEFAULT_STREAM
from emp_tui.redact import redact_url

if TYPE_CHECKING:
    from emp_tui.lint import LintConfig


def _lint_config() -> LintConfig:
    # Imported when an app's settings are made: the collector and the emitter read their
    # environment settings here without the lint rules (and the query language they use).
    from emp_tui.lint import LintConfig

    return LintConfig()


DEFAULT_GAP_MS: Final = 5_000
"""A pause between two steps of a job longer than this is a gap: the default of the app's
gap_threshold_ms, the CLI's --gap and emp_tui.analysis."""
DEFAULT_STALL_THRESHOLD_MS: Final = 20_000
"""An open job quiet this long is stalled (emp_tui.problems); and how long after a job's last
event `emp-tui correlate` (emp_tui.analysis.correlate) still lists what its workers and
machines did: a worker that restarted within it is what left the job."""


def redacted_url(url: str) -> str:
    """``url`` with its secrets (password, token-like query parameters) replaced by ``***``,
    for messages, logs and --print-config: :func:`emp_tui.redact.redact_url`."""
    return redact_url(url)


# -- the app's settings (config.toml) --------------------------------------------------------

APP_NAME = "emp-tui"
CONFIG_ENV = "EMP_TUI_CONFIG"
"""Names the config file to read instead of the platform one (tests point it elsewhere)."""

_REDIS_ENV = ("REDIS_URL", "REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD", "REDIS_DB")


class ConfigError(ValueError):
    """config.toml cannot be read or holds a value of the wrong kind; one line, no traceback."""


@dataclass(frozen=True)
class AppConfig:
    """What config.toml may set for the app. Every field has a default; unknown keys are errors
    so that a typo does not silently do nothing."""

    redis_url: str | None = None
    stream: str | None = None
    window: str = "15m"
    """The time range the app opens on: this much history up to the newest event the
    sources hold (``--since``/``--until`` instead choose it)."""
    log_dir: str = "./logs/telemetry"
    """The collector's logs, read beside the stream when the directory exists ("" for none;
    ``--file`` names others)."""
    export_dir: str = ""
    """Where the app's exports (``e``) and written events (``Y``) go by default ("": the
    directory emp-tui was started in)."""
    buffer_size: int = 100_000
    """How many events the app holds: a range that holds more keeps its newest (and says
    how many were left out)."""
    first_load: int = 20_000
    """How many of a range's events the app reads when it opens the range (its newest):
    older ones come a page at a time as the top of the stream is passed, up to
    buffer_size, and a filter naming IDs finds its events in the logs' index. Decoding is
    what opening costs (about 10 µs and 1.3 KB an event), so a large range opens in a
    fraction of the time and memory that reading it to the cap takes."""
    gap_threshold_ms: int = DEFAULT_GAP_MS
    """A pause between two steps of a job longer than this is highlighted as a gap."""
    theme: str = "textual-dark"
    keymap: Mapping[str, str] = field(default_factory=dict)
    """Binding id -> keys, e.g. ``export = "ctrl+e"`` (ids are listed on the help screen)."""
    lint: LintConfig = field(default_factory=_lint_config)
    """The ``[lint]`` table: a team's additions to the event standards (emp_tui.lint)."""
    path: Path | None = None
    """The file these settings came from, when one was found."""


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """``$EMP_TUI_CONFIG``, else ``config.toml`` in the platform's config directory."""
    env = os.environ if env is None else env
    override = env.get(CONFIG_ENV, "").strip()
    if override:
        return Path(override).expanduser()
    from platformdirs import user_config_dir

    return Path(user_config_dir(APP_NAME, appauthor=False)) / "config.toml"


def load_app_config(path: Path | None = None) -> AppConfig:
    """Read the app's config.toml (a missing file gives the defaults). Raises ConfigError."""
    path = config_path() if path is None else path
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return AppConfig()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        table = tomllib.loads(raw.decode("utf-8", "replace"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return _app_config_from(table, path)


def _app_config_from(table: Mapping[str, Any], path: Path) -> AppConfig:
    defaults = AppConfig()
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key in ("redis_url", "stream", "theme"):
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"{path}: {key} must be a non-empty string")
            values[key] = value.strip()
        elif key == "window":
            from emp_tui.query import parse_duration_ms

            if not isinstance(value, str) or not parse_duration_ms(value.strip()):
                raise ConfigError(f'{path}: window must be a duration, e.g. "15m", "2h", "1d"')
            values[key] = value.strip()
        elif key in ("log_dir", "export_dir"):
            if not isinstance(value, str):
                raise ConfigError(f'{path}: {key} must be a path (or "" for the default)')
            values[key] = value.strip()
        elif key == "backfill":
            raise ConfigError(
                f'{path}: backfill is gone: the app opens on a time range, window = "15m" '
                "(and holds at most buffer_size events)"
            )
        elif key in ("buffer_size", "first_load", "gap_threshold_ms"):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{path}: {key} must be an integer")
            if value < 1:
                raise ConfigError(f"{path}: {key} must be at least 1")
            values[key] = value
        elif key == "keymap":
            if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in value.items()
            ):
                raise ConfigError(f'{path}: [keymap] maps binding ids to keys, e.g. export = "x"')
            values[key] = dict(value)
        elif key == "lint":
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: lint must be a table: [lint]")
            from emp_tui.lint import LintConfig, LintConfigError

            try:
                values[key] = LintConfig.from_toml(value)
            except LintConfigError as exc:
                raise ConfigError(f"{path}: {exc}") from None
        else:
            known = ", ".join(f.name for f in fields(defaults) if f.name != "path")
            raise ConfigError(f"{path}: unknown setting {key!r} (known: {known})")
    return replace(defaults, path=path, **values)


def resolve_redis_url(
    flag: str | None, config: AppConfig, env: Mapping[str, str] | None = None
) -> str:
    """The Redis URL the app uses: the flag, else the environment, else config.toml, else
    localhost."""
    if flag:
        return flag
    env = os.environ if env is None else env
    if any(env.get(name, "").strip() for name in _REDIS_ENV):
        return redis_url_from_env(env)
    return config.redis_url or DEFAULT_REDIS_URL


def resolve_stream(
    flag: str | None, config: AppConfig, env: Mapping[str, str] | None = None
) -> str:
    """The stream key: the flag, else ``EMP_EVENTS_STREAM``, else config.toml, else the default."""
    if flag:
        return flag
    env = os.environ if env is None else env
    return env.get("EMP_EVENTS_STREAM", "").strip() or config.stream or DEFAULT_STREAM
