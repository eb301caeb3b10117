"""Benchmark of the collector (a real subprocess, as deployed) against its own redis-server.

Prints, each beside a baseline measured in the same run over the same stream:
  * events/s from the stream into the file exporter, acked   vs  a raw XREAD + orjson loop
  * events/s from the stream into a local OTLP receiver answering at once, and after 50 ms
    (a backend across a network)                            vs  the same raw loop
  * end-to-end latency, emit (EventClient) -> line in the file, p50/p99 at a steady rate
  * the collector's RSS: steady and peak, and where the memory goes (RSS after each import)
  * on a 3-master Redis Cluster (three masters with a replica each on loopback, started here
    when redis-cli is at hand): events/s into the file exporter with the stream as 1 shard
    and as 4 shards (EMP_EVENTS_SHARDS=4), beside the single instance's figure above

Targets: >= 0.5x the raw loop and >= 40k events/s into files, peak RSS <= 35 MB on the
backlog; >= 20k events/s into OTLP with 50 ms latency; p99 <= 1 s at 5k events/s; RSS <= 40 MB
steady. On a shared machine wall-clock rates swing between runs: the events per CPU-second
of the collector beside those of the raw loop are the steadier comparison.

    .venv/bin/python bench/collector.py [--events 200000] [--rate 5000] [--seconds 10]
                                        [--no-cluster]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import redis
import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from redisproc import RedisProcess  # noqa: E402

from emp_tui.events import TelemetryEvent, decode  # noqa: E402
from emp_tui.telemetry import EventClient  # noqa: E402

STREAM = "bench:events"


def fill(client: redis.Redis, count: int, stream: str = STREAM) -> None:
    pipe = client.pipeline(transaction=False)
    for i in range(count):
        event = TelemetryEvent.create(
            ("api-server", "worker", "machine")[i % 3],
            "job.progress_updated",
            {"progress": i % 100, "step": "sampling", "model": {"name": "sdxl", "steps": 30}},
            job_id=f"job_{i // 20}",
            worker_id=f"w-{i % 7}",
            machine_id=f"m-{i % 3}",
        )
        pipe.xadd(stream, event.encode())  # type: ignore[arg-type]
        if len(pipe) >= 2000:
            pipe.execute()
    pipe.execute()


RAW_CPU: list[float] = []  # events per CPU-second of each raw loop run


async def raw_loop(url: str, count: int) -> float:
    """The ceiling: XREAD batches of 1000 and parse each entry's data with orjson."""
    client = aioredis.from_url(url)
    last: bytes | str = "0"
    seen = 0
    cpu_started = time.process_time()
    started = time.perf_counter()
    while seen < count:
        reply = await client.xread({STREAM: last}, count=1000)
        entries = reply[0][1]
        for entry_id, fields in entries:
            orjson.loads(fields[b"data"])
            last = entry_id
        seen += len(entries)
    elapsed = time.perf_counter() - started
    RAW_CPU.append(count / (time.process_time() - cpu_started))
    await client.aclose()
    return count / elapsed


async def raw_group_loop(url: str, count: int) -> float:
    """A reference beside the baseline: the same loop through a consumer group, acking each
    batch (XREADGROUP + XACK), which is what losing nothing costs Redis and the client."""
    client = aioredis.from_url(url)
    await client.xgroup_create(STREAM, "bench-raw", id="0")
    seen = 0
    started = time.perf_counter()
    while seen < count:
        reply = await client.xreadgroup("bench-raw", "raw", {STREAM: ">"}, count=1000)
        entries = reply[0][1]
        for _entry_id, fields in entries:
            orjson.loads(fields[b"data"])
        await client.xack(STREAM, "bench-raw", *(entry_id for entry_id, _ in entries))
        seen += len(entries)
    elapsed = time.perf_counter() - started
    await client.xgroup_destroy(STREAM, "bench-raw")
    await client.aclose()
    return count / elapsed


def decode_ceiling(client: redis.Redis, count: int = 20_000) -> float:
    """Events/s of emp_tui.events.decode + to_json_line alone (one core, no I/O): the part
    of the collector's work per event that the raw loop does not do."""
    entries = client.xrange(STREAM, count=count)
    started = time.perf_counter()
    for entry_id, fields in entries:
        decode(entry_id, fields).to_json_line()
    return len(entries) / (time.perf_counter() - started)


def proc_memory(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process, in bytes."""
    rss = hwm = 0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) * 1024
    return rss, hwm


def collector_env(workdir: Path) -> dict[str, str]:
    """The environment the collector runs in, as deployed: with its modules' bytecode cached
    (``pip install`` compiles it; this checkout is an editable install, and a shell with
    PYTHONDONTWRITEBYTECODE would otherwise compile every module from source at each start,
    memory the process keeps). The cache lives in the bench's temporary directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "OTEL_", "DASH0"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    return env


def compile_collector(workdir: Path) -> None:
    """Fill the bytecode cache once, before any measured run (what installing does)."""
    code = "import collector.__main__, collector.pipeline, collector.exporters.otlp"
    subprocess.run([sys.executable, "-c", code], env=collector_env(workdir), cwd=ROOT, check=True)


def start_collector(url: str, workdir: Path, group: str, **extra: str) -> subprocess.Popen[bytes]:
    env = {
        **collector_env(workdir),
        "REDIS_URL": url,
        "EMP_EVENTS_STREAM": STREAM,
        "EMP_COLLECTOR_GROUP": group,
        "EMP_COLLECTOR_CONSUMER": group,
        "EMP_COLLECTOR_LOG_PATH": str(workdir / group / "events.log"),
        "EMP_COLLECTOR_LOG_MAX_BYTES": "1G",
        "EMP_COLLECTOR_LOG_LEVEL": "warning",
        **extra,
    }
    with open(workdir / f"{group}.err", "wb") as err:
        return subprocess.Popen([sys.executable, "-m", "collector"], env=env, cwd=ROOT, stderr=err)


def group_progress(client: Any, group: str, keys: tuple[str, ...] = (STREAM,)) -> tuple[int, int]:
    """(entries delivered to the group, entries pending) over ``keys`` (the shards) — 0s
    before the group exists."""
    read = pending = 0
    for key in keys:
        try:
            groups = client.xinfo_groups(key)
        except redis.ResponseError:
            continue
        for g in groups:
            if g["name"] in (group, group.encode()):
                read += int(g["entries-read"] or 0)
                pending += int(g["pending"])
    return read, pending


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Drain:
    rate: float  # events/s, wall clock
    per_cpu_s: float  # events per CPU-second of the collector: steadier on a busy machine
    peak: int  # peak RSS, bytes


def timed_drain(
    client: Any,
    proc: subprocess.Popen[bytes],
    group: str,
    count: int,
    keys: tuple[str, ...] = (STREAM,),
) -> Drain:
    """From the first delivery to the group until all ``count`` are acked: events/s, events
    per CPU-second the collector used meanwhile, and its peak RSS so far."""
    first = None
    cpu_first = 0.0
    while True:
        read, pending = group_progress(client, group, keys)
        now = time.perf_counter()
        if first is None and read > 0:
            first = now
            cpu_first = cpu_seconds(proc.pid)
        if read >= count and pending == 0:
            break
        if proc.poll() is not None:
            raise SystemExit(f"the collector exited early ({proc.returncode})")
        time.sleep(0.003)
    assert first is not None
    cpu = cpu_seconds(proc.pid) - cpu_first
    _, peak = proc_memory(proc.pid)
    return Drain(count / (now - first), count / cpu if cpu else float("inf"), peak)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(15)


class Receiver:
    """A minimal OTLP/HTTP receiver: reads each request and answers 200 after ``latency``
    seconds, counting requests (the collector's throughput is what is measured)."""

    def __init__(self, latency: float = 0.0) -> None:
        self.latency = latency
        self.requests = 0
        self.port = 0
        self._ready = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()
        self._ready.wait()

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await server.serve_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                writer.close()
                return  # the collector closed the connection
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            if self.latency:
                await asyncio.sleep(self.latency)
            self.requests += 1
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}"
            )
            await writer.drain()


def latency_run(url: str, workdir: Path, rate: int, seconds: float) -> dict[str, Any]:
    """Emit at ``rate`` events/s through EventClient; time each line's arrival in the file."""
    client = redis.Redis.from_url(url)
    client.delete(STREAM)
    proc = start_collector(url, workdir, "bench-latency")
    log_path = workdir / "bench-latency" / "events.log"
    while group_progress(client, "bench-latency") == (0, 0) and not client.exists(
        "emp:collector:bench-latency"
    ):
        time.sleep(0.05)
    latencies: list[float] = []
    done = threading.Event()

    def tail() -> None:
        while not log_path.exists():
            time.sleep(0.005)
        with open(log_path, "rb") as f:
            buffer = b""
            while not done.is_set() or buffer:
                chunk = f.read()
                now = time.time_ns()
                if not chunk:
                    if done.is_set():
                        break
                    time.sleep(0.002)
                    continue
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    sent = orjson.loads(line)["data"]["emit_ns"]
                    latencies.append((now - sent) / 1e6)

    tailer = threading.Thread(target=tail, daemon=True)
    tailer.start()
    emitter = EventClient("bench", redis_url=url, stream=STREAM, maxlen=100_000)
    rss_samples: list[int] = []
    total = int(rate * seconds)
    tick = 0.01
    per_tick = max(1, int(rate * tick))
    started = time.perf_counter()
    sent = 0
    next_sample = started + 1.0
    while sent < total:
        target = started + (sent // per_tick) * tick
        delay = target - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        for _ in range(per_tick):
            emitter.event(
                "job.progress_updated",
                {"emit_ns": time.time_ns(), "progress": sent % 100},
                job_id=f"job_{sent // 20}",
            )
            sent += 1
        if time.perf_counter() >= next_sample:
            rss_samples.append(proc_memory(proc.pid)[0])
            next_sample += 0.5
    achieved = total / (time.perf_counter() - started)
    emitter.flush(5)
    deadline = time.monotonic() + 20
    while len(latencies) < total and time.monotonic() < deadline:
        time.sleep(0.05)
    done.set()
    tailer.join(5)
    _, peak = proc_memory(proc.pid)
    stop(proc)
    emitter.close()
    latencies.sort()
    return {
        "events": total,
        "seen": len(latencies),
        "achieved_rate": achieved,
        "p50_ms": statistics.median(latencies) if latencies else float("nan"),
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] if latencies else float("nan"),
        "max_ms": latencies[-1] if latencies else float("nan"),
        "rss_steady": statistics.median(rss_samples[len(rss_samples) // 2 :]) if rss_samples else 0,
        "rss_peak": peak,
    }


MEMORY_STEPS = """
import os, sys
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
steps = [("python interpreter", None), ("+ orjson", "orjson"), ("+ asyncio", "asyncio"),
         ("+ redis.asyncio (hiredis)", "redis.asyncio"), ("+ emp_tui.events", "emp_tui.events"),
         ("+ collector (pipeline, file exporter)", "collector.pipeline"),
         ("+ OTLP exporter (ssl, gzip, http)", "collector.exporters.otlp")]
import importlib
for label, module in steps:
    if module:
        importlib.import_module(module)
    print(f"{label}\\t{rss()}")
"""


def memory_steps(workdir: Path) -> list[tuple[str, int]]:
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_STEPS],
        env=collector_env(workdir),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [(label, int(value)) for label, value in (line.split("\t") for line in out.splitlines())]


def cluster_runs(workdir: Path, count: int) -> list[tuple[int, Drain | None, str]]:
    """The collector into files on a 3-master Redis Cluster (started here, a replica per
    master), the stream as 1 shard and as 4: (shards, drain, note) for each."""
    from rediscluster import ClusterUnavailable, RedisClusterProcess

    from emp_tui.topology import shard_key, shard_keys

    try:
        cluster = RedisClusterProcess()
    except ClusterUnavailable as exc:
        return [(0, None, str(exc))]
    out: list[tuple[int, Drain | None, str]] = []
    with cluster:
        for shards in (1, 4):
            cluster.flushall()
            client = cluster.client()
            keys = tuple(shard_keys(STREAM, shards))
            print(f"filling {shards} shard(s) of {STREAM} on the cluster ...", flush=True)
            pipe = client.pipeline(transaction=False)
            for i in range(count):
                event = TelemetryEvent.create(
                    ("api-server", "worker", "machine")[i % 3],
                    "job.progress_updated",
                    {"progress": i % 100, "step": "sampling", "model": {"name": "sdxl"}},
                    job_id=f"job_{i // 20}",
                    worker_id=f"w-{i % 7}",
                    machine_id=f"m-{i % 3}",
                )
                pipe.xadd(shard_key(STREAM, shards, event.job_id, event.service), event.encode())  # type: ignore[arg-type]
                if len(pipe) >= 2000:
                    pipe.execute()
            pipe.execute()
            group = f"bench-cluster-{shards}"
            proc = start_collector(cluster.url, workdir, group, EMP_EVENTS_SHARDS=str(shards))
            drain = timed_drain(client, proc, group, count, keys)
            stop(proc)
            with open(workdir / group / "events.log", "rb") as written:
                lines = sum(1 for _ in written)
            assert lines == count, f"{lines} lines for {count} events"
            masters = len({cluster.master_of(key).port for key in keys})
            out.append((shards, drain, f" (the shards on {masters} master(s))"))
            client.close()
    return out


def mb(n: float) -> str:
    return f"{n / (1 << 20):.1f} MB"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rate", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--no-cluster", action="store_true", help="leave out the runs on a Redis Cluster"
    )
    args = parser.parse_args()

    with RedisProcess() as server, tempfile.TemporaryDirectory(prefix="emp-bench-") as tmp:
        workdir = Path(tmp)
        client = server.client()
        print(f"filling {STREAM} with {args.events} events ...", flush=True)
        fill(client, args.events)
        compile_collector(workdir)
        raw_before = asyncio.run(raw_loop(server.url, args.events))
        group_raw = asyncio.run(raw_group_loop(server.url, args.events))
        ceiling = decode_ceiling(client)

        proc = start_collector(server.url, workdir, "bench-file")
        file = timed_drain(client, proc, "bench-file", args.events)
        stop(proc)
        with open(workdir / "bench-file" / "events.log", "rb") as written:
            lines = sum(1 for _ in written)
        assert lines == args.events, f"{lines} lines for {args.events} events"

        otlp: list[tuple[float, Drain, int]] = []  # latency, drain, requests
        for latency in (0.0, 0.05):
            receiver = Receiver(latency)
            group = f"bench-otlp-{int(latency * 1000)}ms"
            proc = start_collector(
                server.url, workdir, group,
                EMP_COLLECTOR_FILE="false",
                OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{receiver.port}",
            )  # fmt: skip
            drain = timed_drain(client, proc, group, args.events)
            stop(proc)
            otlp.append((latency, drain, receiver.requests))
        raw_after = asyncio.run(raw_loop(server.url, args.events))
        raw = max(raw_before, raw_after)

        latency = latency_run(server.url, workdir, args.rate, args.seconds)
        steps = memory_steps(workdir)
        cluster = [] if args.no_cluster else cluster_runs(workdir, args.events)

    print()
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; {args.events} events")
    raw_cpu = max(RAW_CPU)
    print(f"raw XREAD + orjson loop (baseline): {raw:,.0f} events/s "
          f"(runs: {raw_before:,.0f}, {raw_after:,.0f}); "
          f"{raw_cpu:,.0f} events per CPU-second")  # fmt: skip
    print(f"collector -> file, acked:  {file.rate:,.0f} events/s = {file.rate / raw:.2f}x raw "
          f"(targets >= 0.5x and >= 40,000/s); {file.per_cpu_s:,.0f} events per CPU-second "
          f"= {file.per_cpu_s / raw_cpu:.2f}x raw's; peak RSS {mb(file.peak)} "
          f"(target <= 35 MB)")  # fmt: skip
    group_share = f"{group_raw / raw:.2f}x raw; the collector: {file.rate / group_raw:.2f}x it"
    print(f"reference: raw XREADGROUP + XACK + orjson: {group_raw:,.0f} events/s = {group_share}")
    print(f"decode + to_json_line alone (no I/O): {ceiling:,.0f} events/s")
    for delay, drain, requests in otlp:
        target = "  (target >= 20,000/s)" if delay else ""
        print(f"collector -> OTLP, {delay * 1000:.0f} ms latency, acked: "
              f"{drain.rate:,.0f} events/s = {drain.rate / raw:.2f}x raw ({requests} requests, "
              f"{args.events / max(requests, 1):.0f} events each); {drain.per_cpu_s:,.0f} events "
              f"per CPU-second; peak RSS {mb(drain.peak)}{target}")  # fmt: skip
    lat = latency
    print(
        f"latency emit -> line at {lat['achieved_rate']:,.0f} events/s for {args.seconds:g} s: "
        f"p50 {lat['p50_ms']:.0f} ms, p99 {lat['p99_ms']:.0f} ms, max {lat['max_ms']:.0f} ms "
        f"({lat['seen']}/{lat['events']} lines; target p99 <= 1000 ms)"
    )
    print(
        f"collector RSS at {args.rate}/s: steady {mb(lat['rss_steady'])}, "
        f"peak {mb(lat['rss_peak'])} (target <= 40 MB steady)"
    )
    for shards, drain, note in cluster:
        if drain is None:
            print(f"collector -> file on a 3-master Redis Cluster: not run ({note})")
            continue
        print(f"collector -> file, acked, 3-master Redis Cluster, {shards} shard"
              f"{'s' if shards > 1 else ''}: {drain.rate:,.0f} events/s = "
              f"{drain.rate / file.rate:.2f}x the single instance's {file.rate:,.0f}/s; "
              f"{drain.per_cpu_s:,.0f} events per CPU-second; peak RSS {mb(drain.peak)}"
              f"{note}")  # fmt: skip
    print("where the memory goes (RSS of a fresh interpreter after each import):")
    previous = 0
    for label, value in steps:
        print(f"  {label:<36} {mb(value):>9}  (+{mb(value - previous)})")
        previous = value
    return 0


if __name__ == "__main__":
    sys.exit(main())
