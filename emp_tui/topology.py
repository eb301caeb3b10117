"""Where the events live in Redis: one server or a Redis Cluster, one stream or N shards.

The emitter, the collector and every reader build their Redis clients and name their stream
keys here, so that they agree:

- **A URL names the server, and says whether it is a cluster.** ``redis://``, ``rediss://``
  and ``unix://`` are one server; ``redis+cluster://host:port`` (``rediss+cluster://`` with
  TLS) is a Redis Cluster reached through any of its nodes, several of them allowed, comma
  separated (``redis+cluster://10.0.0.1:7000,10.0.0.2:7000``). :func:`client_for_url` and
  :func:`async_client_for_url` return redis-py's plain or cluster client for it.
- **Shards.** With ``EMP_EVENTS_SHARDS=N`` (N > 1) the stream ``emp:events`` is the N keys
  ``emp:events:{0}`` ... ``emp:events:{N-1}`` (:func:`shard_keys`). The braces are a hash tag:
  each key is in a hash slot of its own, so a cluster spreads the shards over its masters. An
  event goes to shard ``crc32(jobId) % N`` (UTF-8 bytes; events without a job by their
  service, :func:`shard_key`), so one job's events stay in order on one shard. Any language
  can compute it (Node: ``zlib.crc32(jobId) % N``). A read across shards is one read per
  shard, never one command over several keys (a cluster answers that with CROSSSLOT).
- **The trim policy.** Emitters record how they trim each stream in the hash
  :func:`trim_policy_key` (``maxlen``, ``retention_ms``, ``shards``, ``service``,
  ``updated_ms``; a field that does not apply is absent), which ``emp-tui health`` reads.
- **Readers find the shard count.** A reader not told ``EMP_EVENTS_SHARDS`` reads the count
  the emitters recorded in that hash (:func:`find_shards`); when none is recorded and the
  stream itself does not exist, a SCAN for its shard keys says how many there are. A reader
  told a count that differs from the recorded one reads what it was told, and says so.

No Textual here; redis-py is imported when a client is made.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeAlias
from urllib.parse import urlsplit, urlunsplit

from emp_tui.events import DEFAULT_STREAM

if TYPE_CHECKING:
    import redis
    import redis.asyncio
    import redis.asyncio.cluster
    import redis.cluster

__all__ = [
    "CLUSTER_SCHEMES",
    "SHARDS_ENV",
    "TRIM_POLICY_PREFIX",
    "AsyncClient",
    "ShardCount",
    "SyncClient",
    "async_client_for_url",
    "client_for_url",
    "find_shards",
    "is_cluster_url",
    "shard_key",
    "shard_keys",
    "shards_configured",
    "shards_from_env",
    "transient_errors",
    "trim_policy_key",
]

CLUSTER_SCHEMES: Final = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
"""URL schemes that name a Redis Cluster, and the scheme redis-py reads for each."""
SHARDS_ENV: Final = "EMP_EVENTS_SHARDS"
MAX_SHARDS: Final = 1024
TRIM_POLICY_PREFIX: Final = "emp:telemetry:trim:"

SyncClient: TypeAlias = "redis.Redis | redis.cluster.RedisCluster"
AsyncClient: TypeAlias = "redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster"


REDIS_SCHEMES: Final = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster")
"""The URL schemes of a Redis to read: one server (TCP, TLS, a unix socket) or a cluster."""


def has_redis_scheme(url: str) -> bool:
    """Whether ``url`` is a redis://, rediss://, unix:// or (rediss+)redis+cluster:// URL."""
    scheme, sep, _ = url.partition("://")
    return bool(sep) and scheme.lower() in REDIS_SCHEMES


def is_cluster_url(url: str) -> bool:
    """True for ``redis+cluster://`` and ``rediss+cluster://`` URLs."""
    scheme, sep, _ = url.partition("://")
    return bool(sep) and scheme.lower() in CLUSTER_SCHEMES


def _cluster_parts(url: str) -> tuple[str, list[tuple[str, int]]]:
    """A cluster URL as the URL of its first node for redis-py (scheme ``redis``/``rediss``,
    password and options kept) and every node it names. Raises ValueError."""
    parts = urlsplit(url)
    scheme = CLUSTER_SCHEMES[parts.scheme.lower()]
    auth, at, hosts = parts.netloc.rpartition("@")
    nodes: list[tuple[str, int]] = []
    for host_port in hosts.split(","):
        host, colon, port_text = host_port.strip().rpartition(":")
        if not colon:
            host, port_text = host_port.strip(), "6379"
        host = host.strip("[]")
        if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"bad cluster node {host_port!r}: expected host:port")
        nodes.append((host, int(port_text)))
    first_host, first_port = nodes[0]
    netloc = f"{auth}{at}{first_host}:{first_port}"
    return urlunsplit((scheme, netloc, parts.path, parts.query, "")), nodes


def client_for_url(url: str, **kwargs: Any) -> SyncClient:
    """redis-py's client for ``url``: ``redis.Redis`` for one server, ``RedisCluster`` for a
    ``redis+cluster://`` URL. ``kwargs`` go to the client (socket timeouts, retry, ...).
    Connects lazily for one server; a cluster client asks a node for the slot map at once, so
    it raises redis errors (or RedisClusterException) when no node answers. Raises ValueError
    for a URL that cannot be read."""
    import redis

    _check_scheme(url)
    if not is_cluster_url(url):
        return redis.Redis.from_url(url, **kwargs)
    from redis.cluster import ClusterNode, RedisCluster

    first, nodes = _cluster_parts(url)
    kwargs.pop("health_check_interval", None)  # per node, not the cluster's to take
    others = [ClusterNode(host, port) for host, port in nodes[1:]]  # type: ignore[no-untyped-call]
    return RedisCluster.from_url(first, startup_nodes=others, **kwargs)


def async_client_for_url(url: str, **kwargs: Any) -> AsyncClient:
    """:func:`client_for_url` for asyncio code (``redis.asyncio``)."""
    import redis.asyncio

    _check_scheme(url)
    if not is_cluster_url(url):
        return redis.asyncio.Redis.from_url(url, **kwargs)
    from redis.asyncio.cluster import ClusterNode, RedisCluster

    first, nodes = _cluster_parts(url)
    kwargs.pop("health_check_interval", None)
    others = [ClusterNode(host, port) for host, port in nodes[1:]]
    return RedisCluster.from_url(first, startup_nodes=others, **kwargs)


def _check_scheme(url: str) -> None:
    if not has_redis_scheme(url):
        raise ValueError("use a redis://, rediss://, unix:// or redis+cluster:// URL")


def transient_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean "Redis, or a node of the cluster, is not reachable right now": the
    connection's, and a cluster's that pass when a replica has taken over a failed master
    (CLUSTERDOWN, TRYAGAIN, a slot map that cannot be read, READONLY from a demoted master).
    A writer keeps what it was writing and tries again later."""
    import redis
    from redis.exceptions import (
        ClusterDownError,
        ReadOnlyError,
        RedisClusterException,
        TryAgainError,
    )

    return (
        redis.ConnectionError,
        redis.TimeoutError,
        OSError,
        ClusterDownError,
        TryAgainError,
        ReadOnlyError,
        RedisClusterException,
    )


# -- shards -------------------------------------------------------------------------------


def shards_from_env(env: Mapping[str, str]) -> int:
    """``EMP_EVENTS_SHARDS`` as a number of shards (1 when unset). Raises ValueError naming
    the bad value."""
    text = env.get(SHARDS_ENV, "").strip()
    if not text:
        return 1
    if not text.isdigit() or not 1 <= int(text) <= MAX_SHARDS:
        raise ValueError(f"{SHARDS_ENV}={text!r}: expected a whole number from 1 to {MAX_SHARDS}")
    return int(text)


def shards_configured(env: Mapping[str, str]) -> int | None:
    """``EMP_EVENTS_SHARDS`` when it is set (None when not: a reader then finds the count,
    :func:`find_shards`). Raises ValueError naming a bad value."""
    return shards_from_env(env) if env.get(SHARDS_ENV, "").strip() else None


def shard_keys(stream: str = DEFAULT_STREAM, shards: int = 1) -> list[str]:
    """Every key the stream is made of: ``[stream]`` for one shard, else
    ``stream:{0}`` ... ``stream:{shards-1}``."""
    if shards <= 1:
        return [stream]
    return [f"{stream}:{{{n}}}" for n in range(shards)]


def shard_key(stream: str, shards: int, job_id: str | None, service: str) -> str:
    """The key an event goes to: by a stable hash of its job ID (CRC-32 of the UTF-8 bytes),
    else of its service, modulo ``shards``; ``stream`` itself for one shard."""
    if shards <= 1:
        return stream
    owner = job_id or service
    return f"{stream}:{{{zlib.crc32(owner.encode('utf-8', 'surrogatepass')) % shards}}}"


def trim_policy_key(stream: str = DEFAULT_STREAM) -> str:
    """The hash in which emitters record how they trim ``stream`` (see the module's doc)."""
    return TRIM_POLICY_PREFIX + stream


@dataclass(frozen=True, slots=True)
class ShardCount:
    """How many shards a reader reads, where the number came from, and what it should tell
    its user (None when all agree)."""

    count: int
    source: str
    """``configured`` (EMP_EVENTS_SHARDS), ``recorded`` (by the emitters), ``found`` (by a
    SCAN for the shard keys) or ``default`` (one stream)."""
    warning: str | None = None


_SHARD_INDEX = re.compile(r":\{(\d+)\}$")


def _glob_escape(text: str) -> str:
    """``text`` matched literally by a SCAN MATCH pattern."""
    return re.sub(r"([\\*?\[\]])", r"\\\1", text)


def _recorded_shards(client: SyncClient, stream: str) -> int | None:
    return recorded_shards(client.hget(trim_policy_key(stream), "shards"))


def recorded_shards(value: object) -> int | None:
    """The shard count the emitters record (the ``shards`` field of the hash at
    :func:`trim_policy_key`, as Redis returned it); None when there is none, or it is not a
    count."""
    if value is None:
        return None
    text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    if not (text.isascii() and text.isdigit()) or len(text) > 5:
        return None
    return int(text) if 1 <= int(text) <= MAX_SHARDS else None


def _found_shards(client: SyncClient, stream: str) -> list[int]:
    """The shard numbers of the keys ``stream:{n}`` that exist (a SCAN of every node):
    only when nothing says how many there are."""
    pattern = _glob_escape(stream) + ":{*}"
    found = set()
    for key in client.scan_iter(match=pattern, count=1000):
        text = key.decode() if isinstance(key, bytes) else str(key)
        match = _SHARD_INDEX.search(text)
        if match and text[: match.start()] == stream and int(match.group(1)) < MAX_SHARDS:
            found.add(int(match.group(1)))
    return sorted(found)


def _also_unsharded(client: SyncClient, stream: str, count: int) -> str | None:
    """What to say when ``stream`` is read as ``count`` > 1 shards but the one key holds
    events too (written before the emitters were sharded): they are not read."""
    if count <= 1 or not client.exists(stream):
        return None
    return (
        f"{stream} itself holds events too (written before the emitters used {count} shards): "
        f"reading the {count} shards, not it (EMP_EVENTS_SHARDS=1 reads it)"
    )


def find_shards(client: SyncClient, stream: str, configured: int | None) -> ShardCount:
    """How many shards to read ``stream`` over: ``configured`` (EMP_EVENTS_SHARDS) when
    given, else the count the emitters recorded (:func:`trim_policy_key`), else, when the
    stream does not exist but keys ``stream:{n}`` do, as many as those keys say, else 1.
    The warning says when the configured count differs from the recorded one, when the
    stream read as one key is missing while its shard keys exist, or when it is read as
    shards while the one key holds events too. A server that refuses a command this needs
    (a managed Redis without SCAN) is answered by ``configured`` (else 1) and a warning.
    Raises redis errors when Redis cannot be read."""
    import redis

    try:
        return _find_shards(client, stream, configured)
    except redis.ResponseError as exc:
        return ShardCount(
            configured or 1,
            "configured" if configured else "default",
            f"cannot tell how many shards the emitters of {stream} use ({exc})",
        )


def _find_shards(client: SyncClient, stream: str, configured: int | None) -> ShardCount:
    recorded = _recorded_shards(client, stream)
    if configured is not None:
        if recorded is not None and recorded != configured:
            what = (
                "events on the others are missed"
                if configured < recorded
                else f"{configured - recorded} of them are empty or stale"
            )
            return ShardCount(
                configured,
                "configured",
                f"{SHARDS_ENV}={configured}, but the emitters of {stream} record {recorded} "
                f"shards: reading {configured}, so {what} "
                f"(set {SHARDS_ENV}={recorded}, or unset it)",
            )
        if configured == 1 and recorded is None and not client.exists(stream):
            found = _found_shards(client, stream)
            if found:
                return ShardCount(
                    1,
                    "configured",
                    f"{stream} does not exist but {len(found)} of its shard keys do "
                    f"({stream}:{{{found[0]}}} ...): {SHARDS_ENV}=1 reads none of them "
                    f"(set {SHARDS_ENV}={found[-1] + 1}, or unset it)",
                )
        return ShardCount(configured, "configured", _also_unsharded(client, stream, configured))
    if recorded is not None:
        return ShardCount(recorded, "recorded", _also_unsharded(client, stream, recorded))
    if client.exists(stream):
        return ShardCount(1, "default")
    found = _found_shards(client, stream)
    if not found:
        return ShardCount(1, "default")
    count = found[-1] + 1
    return ShardCount(
        count,
        "found",
        f"{stream} does not exist but {len(found)} of its shard keys do and no emitter "
        f"recorded how many there are: reading {count} shards "
        f"({stream}:{{0}} ... {{{count - 1}}}); set {SHARDS_ENV}={count} to say so",
    )
