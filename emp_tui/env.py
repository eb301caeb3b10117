"""Settings read from the environment, shared by the emitter, the collector, the CLI and the
app: flags, sizes, the Redis URL and the stream's name. Small on purpose: the emitter and the
collector read their settings here without the app's config (config.toml, lint rules)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final
from urllib.parse import quote

from emp_tui.events import DEFAULT_STREAM

DEFAULT_REDIS_URL = "redis://localhost:6379/0"

_FALSE = frozenset({"0", "false", "no", "off", "disabled"})
_TRUE = frozenset({"1", "true", "yes", "on", "enabled"})


def env_flag(value: str | None, default: bool) -> bool:
    """Read a boolean environment value; anything unrecognised keeps the default."""
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _FALSE:
        return False
    if lowered in _TRUE:
        return True
    return default


_SIZE_SUFFIXES: Final = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_size(text: str) -> int | None:
    """A size in bytes: ``50M``, ``512k``, ``1.5G``, ``100MB``, ``2GiB`` or a plain number
    (powers of 1024). None when ``text`` is not a positive size."""
    lowered = text.strip().lower().removesuffix("b").removesuffix("i")
    scale = 1
    if lowered and lowered[-1] in _SIZE_SUFFIXES:
        scale = _SIZE_SUFFIXES[lowered[-1]]
        lowered = lowered[:-1]
    try:
        size = int(float(lowered) * scale)
    except (ValueError, OverflowError):
        return None
    return size if size > 0 else None


def redis_url_from_env(env: Mapping[str, str] | None = None) -> str:
    """The Redis URL from ``REDIS_URL``, else the plan's ``REDIS_HOST``/``REDIS_PORT``/
    ``REDIS_PASSWORD`` (and ``REDIS_DB``), else localhost."""
    env = os.environ if env is None else env
    url = env.get("REDIS_URL", "").strip()
    if url:
        return url
    host = env.get("REDIS_HOST", "").strip()
    port = env.get("REDIS_PORT", "").strip()
    password = env.get("REDIS_PASSWORD", "")
    db = env.get("REDIS_DB", "").strip()
    if not (host or port or password or db):
        return DEFAULT_REDIS_URL
    auth = f":{quote(password, safe='')}@" if password else ""
    return f"redis://{auth}{host or 'localhost'}:{port or '6379'}/{db or '0'}"


def stream_from_env(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return env.get("EMP_EVENTS_STREAM", "").strip() or DEFAULT_STREAM
