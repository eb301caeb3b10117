"""A real Redis Cluster for the tests: ``redis-server --cluster-enabled yes`` on free loopback
ports, joined by ``redis-cli --cluster create``, three masters with a replica each. A test may
kill a master (its replica takes over) and start it again (it comes back as a replica).

    with RedisClusterProcess() as cluster:
        cluster.url                      # redis+cluster://127.0.0.1:<port>,...
        client = cluster.client()        # redis.cluster.RedisCluster
        node = cluster.master_of("emp:events:{0}")
        cluster.kill(node); cluster.wait_for_master_of("emp:events:{0}", other_than=node)
        cluster.start(node); cluster.wait_healthy()

Started once per test session by the ``redis_cluster`` fixture (tests/conftest.py); tests get
a flushed, healthy cluster through ``cluster_url``."""

from __future__ import annotations

import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.cluster import ClusterNode, RedisCluster

from emp_tui.demo.embedded import redis_server_binary

NODE_TIMEOUT_MS = 1000
"""How long a master may be silent before its replica takes over: short, for the tests."""


class ClusterUnavailable(RuntimeError):
    """What a Redis Cluster needs is missing here (redis-cli): the message says what."""


@dataclass
class ClusterNodeProcess:
    port: int
    dir: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def client(self, **kwargs: object) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5, **kwargs)  # type: ignore[arg-type]


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ephemeral_low() -> int:
    """Where the kernel's range of ports for outgoing connections begins (Linux's default
    elsewhere)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def _free_ports(count: int) -> list[int]:
    """``count`` consecutive ports whose cluster bus ports (port + 10000) are free too, all
    below the range of ports for outgoing connections: a node killed and started again
    must find its ports free, and a client's connection may take any port of that range
    meanwhile (one took a bus port once: "Address already in use", the node aborted)."""
    high = min(30_000, _ephemeral_low() - 10_000) - count
    for _ in range(200):
        base = random.randrange(10_000, max(high, 10_001))
        ports = list(range(base, base + count))
        if all(_port_free(p) and _port_free(p + 10_000) for p in ports):
            return ports
    raise RuntimeError("no free loopback ports for a Redis Cluster")


def wait_until(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.1)


class RedisClusterProcess:
    """Three masters and three replicas on loopback (see the module's doc)."""

    def __init__(self, masters: int = 3, replicas: int = 1) -> None:
        self.redis_cli = shutil.which("redis-cli")
        if self.redis_cli is None:
            raise ClusterUnavailable("redis-cli is not on PATH (apt-get install redis-tools)")
        self.binary = redis_server_binary()
        self.masters = masters
        self.replicas = replicas
        self.dir = Path(tempfile.mkdtemp(prefix="emp-cluster-"))
        self.nodes: list[ClusterNodeProcess] = []

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(n.address for n in self.nodes)

    def client(self, **kwargs: object) -> RedisCluster:
        return RedisCluster(
            startup_nodes=[ClusterNode("127.0.0.1", n.port) for n in self.nodes if n.running],
            **kwargs,  # type: ignore[arg-type]
        )

    # -- lifecycle ---------------------------------------------------------------------

    def start_cluster(self) -> RedisClusterProcess:
        ports = _free_ports(self.masters * (1 + self.replicas))
        for port in ports:
            node_dir = self.dir / str(port)
            node_dir.mkdir()
            node = ClusterNodeProcess(port, node_dir)
            self.nodes.append(node)
            self.start(node, wait=False)
        for node in self.nodes:
            self._wait_serving(node)
        done = subprocess.run(
            [
                str(self.redis_cli),
                "--cluster",
                "create",
                *(n.address for n in self.nodes),
                "--cluster-replicas",
                str(self.replicas),
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {done.stdout}{done.stderr}")
        self.wait_healthy()
        return self

    def start(self, node: ClusterNodeProcess, *, wait: bool = True) -> None:
        """Start (or start again) one node, with the cluster state it saved."""
        if node.running:
            return
        node.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(node.port),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                str(NODE_TIMEOUT_MS),
                "--cluster-replica-validity-factor",
                "0",
                "--dir",
                str(node.dir),
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
                "--logfile",
                str(node.dir / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        if wait:
            self._wait_serving(node)

    def _wait_serving(self, node: ClusterNodeProcess) -> None:
        def serving() -> bool:
            if node.proc is not None and node.proc.poll() is not None:
                log = node.dir / "redis.log"
                raise RuntimeError(
                    f"redis-server on {node.port} exited: "
                    + (log.read_text(errors="replace")[-500:] if log.exists() else "")
                )
            try:
                with node.client() as probe:
                    return bool(probe.ping())
            except redis.ConnectionError:
                return False

        wait_until(serving, f"redis-server on port {node.port}", timeout=15)

    def kill(self, node: ClusterNodeProcess) -> None:
        """Kill one node outright (SIGKILL): a crash."""
        proc, node.proc = node.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)

    def close(self) -> None:
        for node in self.nodes:
            proc, node.proc = node.proc, None
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisClusterProcess:
        try:
            return self.start_cluster()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- state -------------------------------------------------------------------------

    def _info(self, node: ClusterNodeProcess, section: str) -> dict[str, str]:
        with node.client(decode_responses=True) as c:
            if section == "cluster":
                text = c.execute_command("CLUSTER", "INFO")
                return dict(line.split(":", 1) for line in str(text).splitlines() if ":" in line)
            return {k: str(v) for k, v in c.info(section).items()}

    def roles(self) -> dict[int, str]:
        """Port -> ``master`` or ``slave`` for every running node."""
        return {n.port: self._info(n, "replication")["role"] for n in self.nodes if n.running}

    def master_of(self, key: str) -> ClusterNodeProcess:
        """The node that holds ``key``'s slot now."""
        for node in self.nodes:
            if not node.running:
                continue
            try:
                with node.client() as c:
                    slot = int(c.execute_command("CLUSTER", "KEYSLOT", key))
                    for start, end, master, *_ in c.execute_command("CLUSTER", "SLOTS"):
                        if start <= slot <= end:
                            port = int(master[1])
                            return next(n for n in self.nodes if n.port == port)
            except redis.ConnectionError:
                continue
        raise RuntimeError(f"no running node knows who holds {key!r}")

    def healthy(self) -> bool:
        """Every node running, the cluster state ``ok`` on each, every slot served, each
        master with its replicas attached and in sync."""
        try:
            if not all(n.running for n in self.nodes):
                return False
            masters = 0
            for node in self.nodes:
                cluster = self._info(node, "cluster")
                if (
                    cluster.get("cluster_state") != "ok"
                    or cluster.get("cluster_slots_ok") != "16384"
                ):
                    return False
                replication = self._info(node, "replication")
                if replication["role"] == "master":
                    masters += 1
                    if int(replication.get("connected_slaves", 0)) < self.replicas:
                        return False
                elif replication.get("master_link_status") != "up":
                    return False
            return masters == self.masters
        except redis.RedisError:
            return False

    def wait_healthy(self, timeout: float = 60.0) -> None:
        wait_until(self.healthy, "the Redis Cluster to be healthy", timeout)

    def wait_for_master_of(
        self, key: str, *, other_than: ClusterNodeProcess, timeout: float = 60.0
    ) -> ClusterNodeProcess:
        """Wait until a node other than ``other_than`` serves ``key``'s slot as a master (a
        replica promoted after its master died), and return it."""
        found: list[ClusterNodeProcess] = []

        def promoted() -> bool:
            try:
                node = self.master_of(key)
            except RuntimeError:
                return False
            if node is other_than or self._info(node, "replication")["role"] != "master":
                return False
            if self._info(node, "cluster").get("cluster_state") != "ok":
                return False
            found.append(node)
            return True

        wait_until(promoted, f"a replica to take over {key!r}", timeout)
        return found[-1]

    def flushall(self) -> None:
        for node in self.nodes:
            if node.running and self._info(node, "replication")["role"] == "master":
                with node.client() as c:
                    c.flushall()
