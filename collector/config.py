"""The collector's settings: defaults < environment < command-line flags.

Every setting is one row of :data:`SETTINGS`, which drives ``--help``, ``--print-config`` and
validation. The plan's names work as written (``REDIS_HOST``, ``REDIS_PORT``, ``NODE_ENV``,
``DASH0_ENABLED``, ``DASH0_OTEL_ENDPOINT``, ``DASH0_API_KEY``), beside ``REDIS_URL``, the
standard ``OTEL_EXPORTER_OTLP_*`` variables and the collector's own ``EMP_COLLECTOR_*``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote, urlsplit, urlunsplit

from collector.files import DEFAULT_FILE_MODE
from emp_tui.env import env_flag, parse_size, redis_url_from_env, stream_from_env
from emp_tui.redact import MASK, redact_headers, redact_url
from emp_tui.topology import MAX_SHARDS, has_redis_scheme

DEFAULT_GROUP: Final = "emp-collector"
DEFAULT_LOG_PATH: Final = "./logs/telemetry/events.log"
OTLP_LOGS_PATH: Final = "/v1/logs"


class ConfigError(ValueError):
    """An invalid setting; ``str(error)`` is one line naming the setting."""


@dataclass(frozen=True)
class Setting:
    key: str  # attribute of Settings and the --flag (with dashes)
    env: tuple[str, ...]  # environment names, first found wins
    kind: str  # str | int | float | bool | size | start | mode
    default: str  # as text; "" means unset
    help: str
    secret: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.key.replace("_", "-")


# The order here is the order of --help and --print-config.
SETTINGS: Final[tuple[Setting, ...]] = (
    Setting(
        "redis_url",
        ("REDIS_URL",),
        "str",
        "",
        "redis://, rediss:// (TLS) or unix:// URL, or redis+cluster://host:port[,host:port] "
        "for a Redis Cluster; without it REDIS_HOST, REDIS_PORT, "
        "REDIS_PASSWORD and REDIS_DB are used (default redis://localhost:6379/0)",
        secret=True,
    ),
    Setting("stream", ("EMP_EVENTS_STREAM",), "str", "emp:events", "the stream key"),
    Setting(
        "shards",
        ("EMP_EVENTS_SHARDS",),
        "int",
        "1",
        "the stream's shards, as the emitters are told: emp:events:{0} ... {N-1}, one "
        "consumer group and one blocking read each (not given: the count the emitters "
        "recorded, else 1)",
    ),
    Setting("group", ("EMP_COLLECTOR_GROUP",), "str", DEFAULT_GROUP, "consumer group"),
    Setting(
        "consumer",
        ("EMP_COLLECTOR_CONSUMER",),
        "str",
        "",
        "consumer name, stable across restarts so that the collector re-reads its own "
        "pending entries (default: the host name)",
    ),
    Setting(
        "start",
        ("EMP_COLLECTOR_START",),
        "start",
        "0",
        "where a new group starts: 0 (everything still in the stream) or $ (only new events)",
    ),
    Setting(
        "read_count",
        ("EMP_COLLECTOR_READ_COUNT",),
        "int",
        "500",
        "entries per read, shared by the shards' reads (two reads' worth are held while a "
        "backlog is read)",
    ),
    Setting("block_ms", ("EMP_COLLECTOR_BLOCK_MS",), "int", "1000", "how long one read waits (ms)"),
    Setting(
        "claim_idle_ms",
        ("EMP_COLLECTOR_CLAIM_IDLE_MS",),
        "int",
        "60000",
        "claim entries other consumers left pending for longer than this (ms)",
    ),
    Setting(
        "claim_interval",
        ("EMP_COLLECTOR_CLAIM_INTERVAL",),
        "float",
        "10",
        "seconds between looks for abandoned entries",
    ),
    Setting(
        "node_env",
        ("NODE_ENV",),
        "str",
        "development",
        "file logging is on unless this is production",
    ),
    Setting(
        "file",
        ("EMP_COLLECTOR_FILE",),
        "bool",
        "",
        "write JSON-lines files (default: on unless NODE_ENV=production)",
    ),
    Setting("log_path", ("EMP_COLLECTOR_LOG_PATH",), "str", DEFAULT_LOG_PATH, "events file"),
    Setting(
        "log_max_bytes",
        ("EMP_COLLECTOR_LOG_MAX_BYTES",),
        "size",
        "50M",
        "rotate the events file at this size (k/M/G suffixes)",
    ),
    Setting(
        "log_backups",
        ("EMP_COLLECTOR_LOG_BACKUPS",),
        "int",
        "5",
        "rotated files kept (events.log.1 ... .N)",
    ),
    Setting(
        "fsync",
        ("EMP_COLLECTOR_FSYNC",),
        "bool",
        "false",
        "fsync the events file before acking (survives power loss, slower)",
    ),
    Setting(
        "dash0_enabled",
        ("DASH0_ENABLED",),
        "bool",
        "false",
        "send to Dash0 (needs DASH0_OTEL_ENDPOINT)",
    ),
    Setting(
        "dash0_endpoint",
        ("DASH0_OTEL_ENDPOINT",),
        "str",
        "",
        "Dash0 OTLP/HTTP endpoint; /v1/logs is appended unless present",
    ),
    Setting(
        "dash0_api_key",
        ("DASH0_API_KEY",),
        "str",
        "",
        "sent as Authorization: Bearer <key>",
        secret=True,
    ),
    Setting("dash0_dataset", ("DASH0_DATASET",), "str", "", "sent as the Dash0-Dataset header"),
    Setting(
        "otlp_endpoint",
        ("OTEL_EXPORTER_OTLP_ENDPOINT",),
        "str",
        "",
        "any OTLP/HTTP backend (base URL; /v1/logs is appended); setting it turns OTLP on",
    ),
    Setting(
        "otlp_logs_endpoint",
        ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",),
        "str",
        "",
        "full logs URL, used as is; wins over the others",
    ),
    Setting(
        "otlp_headers",
        ("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS"),
        "str",
        "",
        "extra headers: key=value,key2=value2 (values URL-encoded)",
        secret=True,
    ),
    Setting(
        "otlp_protocol",
        ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"),
        "str",
        "http/json",
        "only http/json is spoken",
    ),
    Setting(
        "resource_attributes",
        ("OTEL_RESOURCE_ATTRIBUTES",),
        "str",
        "",
        "key=value,... added to every resource (service.name is the event's service)",
    ),
    Setting(
        "batch_size",
        ("EMP_COLLECTOR_BATCH_SIZE",),
        "int",
        "100",
        "events per OTLP request",
    ),
    Setting(
        "batch_max_size",
        ("EMP_COLLECTOR_BATCH_MAX_SIZE",),
        "int",
        "1000",
        "events per OTLP request at most: while every consumer is busy, requests grow "
        "from the batch size up to this",
    ),
    Setting(
        "batch_interval",
        ("EMP_COLLECTOR_BATCH_INTERVAL",),
        "float",
        "5",
        "seconds before a partial OTLP batch is sent",
    ),
    Setting(
        "otlp_timeout",
        ("EMP_COLLECTOR_OTLP_TIMEOUT",),
        "float",
        "10",
        "seconds one OTLP request may take",
    ),
    Setting(
        "otlp_consumers",
        ("EMP_COLLECTOR_OTLP_CONSUMERS",),
        "int",
        "10",
        "OTLP requests in flight at once (the sending queue's consumers)",
    ),
    Setting(
        "otlp_queue_size",
        ("EMP_COLLECTOR_OTLP_QUEUE_SIZE",),
        "int",
        "1000",
        "OTLP requests queued in memory; when full, requests go to the spool instead",
    ),
    Setting(
        "retry_window",
        ("EMP_COLLECTOR_RETRY_WINDOW",),
        "float",
        "30",
        "seconds a batch is retried before it goes to the spool",
    ),
    Setting(
        "spool_dir",
        ("EMP_COLLECTOR_SPOOL_DIR",),
        "str",
        "",
        "on-disk queue for batches the backend could not take (default: "
        "<log dir>/spool/<consumer>)",
    ),
    Setting(
        "spool_max_bytes",
        ("EMP_COLLECTOR_SPOOL_MAX_BYTES",),
        "size",
        "100M",
        "spool bound; when full, reading pauses",
    ),
    Setting(
        "dead_letter_path",
        ("EMP_COLLECTOR_DEAD_LETTER",),
        "str",
        "",
        "JSON-lines file of batches the backend rejected (default: <log dir>/dead-letter.jsonl)",
    ),
    Setting(
        "file_mode",
        ("EMP_COLLECTOR_FILE_MODE",),
        "mode",
        f"{DEFAULT_FILE_MODE:04o}",
        "permissions of the files the collector creates (events, spool, dead letters; "
        "octal); the directories it creates get the matching 0700-style mode",
    ),
    Setting(
        "health_interval",
        ("EMP_COLLECTOR_HEALTH_INTERVAL",),
        "float",
        "5",
        "seconds between health reports to emp:collector:<consumer>",
    ),
    Setting(
        "log_level",
        ("EMP_COLLECTOR_LOG_LEVEL",),
        "str",
        "info",
        "the collector's own messages: debug, info, warning, error",
    ),
)
SETTINGS_BY_KEY: Final = {s.key: s for s in SETTINGS}


@dataclass(frozen=True)
class Settings:
    redis_url: str
    stream: str
    shards: int
    group: str
    consumer: str
    start: str
    read_count: int
    block_ms: int
    claim_idle_ms: int
    claim_interval: float
    node_env: str
    file: bool
    log_path: Path
    log_max_bytes: int
    log_backups: int
    fsync: bool
    dash0_enabled: bool
    dash0_endpoint: str
    dash0_api_key: str
    dash0_dataset: str
    otlp_endpoint: str
    otlp_logs_endpoint: str
    otlp_headers: str
    otlp_protocol: str
    resource_attributes: str
    batch_size: int
    batch_max_size: int
    batch_interval: float
    otlp_timeout: float
    otlp_consumers: int
    otlp_queue_size: int
    retry_window: float
    spool_dir: Path
    spool_max_bytes: int
    dead_letter_path: Path
    file_mode: int
    health_interval: float
    log_level: str
    # Derived.
    otlp_url: str = ""  # the resolved .../v1/logs URL; "" when OTLP is off
    headers: dict[str, str] = field(default_factory=dict)
    resource: dict[str, str] = field(default_factory=dict)
    shards_given: bool = True
    """Whether --shards or EMP_EVENTS_SHARDS said the shard count; else the collector reads
    the count the emitters recorded (:func:`emp_tui.topology.find_shards`)."""

    @property
    def otlp(self) -> bool:
        return bool(self.otlp_url)

    @property
    def sinks(self) -> list[str]:
        return [name for name, on in (("file", self.file), ("otlp", self.otlp)) if on]

    def describe(self) -> list[tuple[str, str, str]]:
        """(setting, value with secrets masked, where it came from) for --print-config."""
        rows: list[tuple[str, str, str]] = []
        for f in fields(self):
            value: Any = getattr(self, f.name)
            setting = SETTINGS_BY_KEY.get(f.name)
            if f.name in _URL_FIELDS:
                text = redact_url(value)
            elif f.name == "headers":
                text = _header_text(redact_headers(value))
            elif f.name == "otlp_headers":
                text = _header_text(redact_headers(parse_headers(value)))
            elif setting is not None and setting.secret and value:
                text = MASK
            elif f.name == "file_mode":
                text = f"{value:04o}"
            elif isinstance(value, dict):
                text = _header_text(value)
            elif isinstance(value, bool):
                text = str(value).lower()
            else:
                text = str(value)
            rows.append((f.name, text, "" if setting is None else setting.env[0]))
        return rows


_URL_FIELDS: Final = frozenset(
    {"redis_url", "dash0_endpoint", "otlp_endpoint", "otlp_logs_endpoint", "otlp_url"}
)


def _header_text(headers: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in headers.items())


def _convert(setting: Setting, raw: str) -> Any:
    text = raw.strip()
    where = f"{setting.flag} / {setting.env[0]}"
    if setting.kind == "str":
        return text
    if setting.kind == "bool":
        value = env_flag(text, default=None)  # type: ignore[arg-type]
        if value is None:
            raise ConfigError(f"{where}: {raw!r} is not true or false")
        return value
    if setting.kind == "start":
        if text not in ("0", "$"):
            raise ConfigError(f"{where}: {raw!r} must be 0 or $")
        return text
    if setting.kind == "int":
        try:
            number = int(text)
        except ValueError:
            raise ConfigError(f"{where}: {raw!r} is not an integer") from None
        if number < 0 or (number == 0 and setting.key != "log_backups"):
            raise ConfigError(f"{where}: {raw!r} must be positive")
        return number
    if setting.kind == "float":
        try:
            real = float(text)
        except ValueError:
            raise ConfigError(f"{where}: {raw!r} is not a number") from None
        if not real > 0 or real == float("inf"):
            raise ConfigError(f"{where}: {raw!r} must be a positive number")
        return real
    if setting.kind == "mode":
        try:
            mode = int(text.lower().removeprefix("0o"), 8)
        except ValueError:
            raise ConfigError(f"{where}: {raw!r} is not an octal mode like 0600") from None
        if not 0 <= mode <= 0o777 or mode & 0o600 != 0o600:
            raise ConfigError(
                f"{where}: {raw!r} must be a mode the owner can read and write (0600 to 0777)"
            )
        return mode
    if setting.kind == "size":
        size = parse_size(text)
        if size is None:
            raise ConfigError(f"{where}: {raw!r} is not a positive size like 50M")
        return size
    raise AssertionError(setting.kind)


def parse_headers(text: str) -> dict[str, str]:
    """``OTEL_EXPORTER_OTLP_HEADERS``: ``key=value,key2=value2`` with URL-encoded values.
    An entry that is not key=value is reported by its position: it may hold a secret."""
    headers: dict[str, str] = {}
    for index, part in enumerate(text.split(","), 1):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        if not sep or not name.strip():
            raise ConfigError(
                f"OTEL_EXPORTER_OTLP_HEADERS: entry {index} is not key=value "
                "(not shown: it may hold a secret)"
            )
        headers[unquote(name.strip())] = unquote(value.strip())
    return headers


def _logs_url(base: str, *, append: bool, where: str) -> str:
    """The OTLP logs URL of ``base``: with ``append``, ``/v1/logs`` goes at the end of the
    path (before any query string) unless it is there already."""
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where}: {redact_url(base)!r} is not an http:// or https:// URL")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise ConfigError(f"{where}: {redact_url(base)!r} has a bad port") from None
    if append and not parts.path.rstrip("/").endswith(OTLP_LOGS_PATH):
        return urlunsplit(parts._replace(path=parts.path.rstrip("/") + OTLP_LOGS_PATH))
    return base


def _check_redis_url(url: str) -> None:
    if not has_redis_scheme(url):
        raise ConfigError(
            f"--redis-url / REDIS_URL: {redact_url(url)!r} is not a redis://, rediss://, "
            "unix:// or redis+cluster:// URL"
        )


def load_settings(
    env: Mapping[str, str] | None = None, flags: Mapping[str, str | None] | None = None
) -> Settings:
    """Resolve every setting; raises ConfigError (one line) on the first invalid one."""
    env = os.environ if env is None else env
    flags = flags or {}
    values: dict[str, Any] = {}
    given: set[str] = set()
    for setting in SETTINGS:
        raw = flags.get(setting.key)
        if raw is None:
            raw = next((env[name] for name in setting.env if env.get(name, "").strip()), None)
        if raw is not None:
            given.add(setting.key)
        elif setting.default:
            raw = setting.default
        values[setting.key] = _convert(setting, raw) if raw is not None else ""

    if not values["redis_url"]:
        values["redis_url"] = redis_url_from_env(env)
    _check_redis_url(values["redis_url"])
    if "stream" not in given:
        values["stream"] = stream_from_env(env)
    if not 1 <= values["shards"] <= MAX_SHARDS:
        raise ConfigError(
            f"--shards / EMP_EVENTS_SHARDS: {values['shards']} is not from 1 to {MAX_SHARDS}"
        )
    if not values["consumer"]:
        values["consumer"] = socket.gethostname() or "collector"
    if values["file"] == "":
        values["file"] = values["node_env"].strip().lower() != "production"
    log_path = Path(values["log_path"])
    values["log_path"] = log_path
    values["spool_dir"] = (
        Path(values["spool_dir"])
        if values["spool_dir"]
        else log_path.parent / "spool" / _safe_name(values["consumer"])
    )
    values["dead_letter_path"] = (
        Path(values["dead_letter_path"])
        if values["dead_letter_path"]
        else log_path.parent / "dead-letter.jsonl"
    )
    if values["log_level"].lower() not in ("debug", "info", "warning", "error"):
        raise ConfigError(
            f"--log-level / EMP_COLLECTOR_LOG_LEVEL: {values['log_level']!r} is not one of "
            "debug, info, warning, error"
        )
    values["log_level"] = values["log_level"].lower()

    # OTLP: on when Dash0 is enabled or an OTLP endpoint is set.
    url = ""
    if values["otlp_logs_endpoint"]:
        url = _logs_url(
            values["otlp_logs_endpoint"], append=False, where="OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"
        )
    elif values["dash0_enabled"] or ("dash0_enabled" not in given and values["dash0_endpoint"]):
        if not values["dash0_endpoint"] and not values["otlp_endpoint"]:
            raise ConfigError("DASH0_ENABLED=true needs DASH0_OTEL_ENDPOINT (or an OTLP endpoint)")
        url = _logs_url(
            values["dash0_endpoint"] or values["otlp_endpoint"],
            append=True,
            where="DASH0_OTEL_ENDPOINT",
        )
    elif values["otlp_endpoint"]:
        url = _logs_url(values["otlp_endpoint"], append=True, where="OTEL_EXPORTER_OTLP_ENDPOINT")
    if url and values["otlp_protocol"].lower() not in ("http/json", "http/protobuf"):
        raise ConfigError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL: {values['otlp_protocol']!r} is not supported; "
            "the collector speaks OTLP/HTTP with JSON"
        )
    if values["batch_max_size"] < values["batch_size"]:
        raise ConfigError(
            f"--batch-max-size / EMP_COLLECTOR_BATCH_MAX_SIZE: {values['batch_max_size']} is "
            f"less than the batch size ({values['batch_size']})"
        )
    headers = parse_headers(values["otlp_headers"])
    if values["dash0_api_key"]:
        headers["Authorization"] = f"Bearer {values['dash0_api_key']}"
    if values["dash0_dataset"]:
        headers["Dash0-Dataset"] = values["dash0_dataset"]
    resource: dict[str, str] = {}
    for part in values["resource_attributes"].split(","):
        name, sep, value = part.partition("=")
        if sep and name.strip():
            resource[unquote(name.strip())] = unquote(value.strip())
        elif part.strip():
            raise ConfigError(f"OTEL_RESOURCE_ATTRIBUTES: {part.strip()!r} is not key=value")

    return Settings(
        **values,
        otlp_url=url,
        headers=headers,
        resource=resource,
        shards_given="shards" in given,
    )


def require_sink(settings: Settings) -> None:
    if not settings.sinks:
        raise ConfigError(
            "no sink is enabled: NODE_ENV=production turns the file off; set DASH0_ENABLED=true "
            "with DASH0_OTEL_ENDPOINT, or OTEL_EXPORTER_OTLP_ENDPOINT, or EMP_COLLECTOR_FILE=true"
        )


def _safe_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name) or "collector"
