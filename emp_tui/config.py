"""Settings shared by the emitter, the CLI, the app and the collector. No Textual here."""

from __future__ import annotations

import os
from collections.abc import Mapping
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


def redacted_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, for messages and --print-config."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    auth, _, host = rest.rpartition("@")
    user, colon, _ = auth.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}@{host}"
