"""Helpers for the collector's tests: emitting, running the collector (in this process or as
a real subprocess), reading its files, and an OTLP/HTTP receiver that checks every request
against the official protobuf definitions."""

from __future__ import annotations

import asyncio
import base64
import gzip
import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import redis
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from collector.config import Settings, load_settings
from collector.pipeline import Collector
from emp_tui.events import TelemetryEvent

STREAM = "emp:events"
REPO = Path(__file__).resolve().parent.parent


def emit(
    client: redis.Redis, count: int, *, start: int = 0, maxlen: int | None = None
) -> list[str]:
    """XADD ``count`` valid events (job_<start> ...) and return their stream IDs."""
    ids: list[str] = []
    pipe = client.pipeline(transaction=False)
    for i in range(start, start + count):
        event = TelemetryEvent.create(
            "worker" if i % 2 else "api-server",
            "job.progress_updated",
            {"n": i, "progress": {"pct": i % 100}},
            job_id=f"job_{i}",
            worker_id="w-1",
            span_id="00f067aa0ba902b7",
        )
        if maxlen is None:
            pipe.xadd(STREAM, event.encode())  # type: ignore[arg-type]
        else:
            pipe.xadd(STREAM, event.encode(), maxlen=maxlen, approximate=False)  # type: ignore[arg-type]
        if len(pipe) >= 500:
            ids.extend(_text(x) for x in pipe.execute())
    ids.extend(_text(x) for x in pipe.execute())
    return ids


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def base_env(redis_url: str, tmp: Path, **extra: str) -> dict[str, str]:
    env = {
        "REDIS_URL": redis_url,
        "EMP_COLLECTOR_LOG_PATH": str(tmp / "logs" / "events.log"),
        "EMP_COLLECTOR_CONSUMER": "c1",
        "EMP_COLLECTOR_BLOCK_MS": "100",
        "EMP_COLLECTOR_HEALTH_INTERVAL": "0.2",
        "EMP_COLLECTOR_CLAIM_INTERVAL": "0.5",
        "EMP_COLLECTOR_BATCH_INTERVAL": "0.2",
        "EMP_COLLECTOR_READ_COUNT": "200",
    }
    env.update(extra)
    return env


def settings_for(redis_url: str, tmp: Path, **extra: str) -> Settings:
    return load_settings(env=base_env(redis_url, tmp, **extra))


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Collector]:
    """A collector running in this event loop; stopped (and its exit code checked) after."""
    collector = Collector(settings)
    task = asyncio.create_task(collector.run(install_signals=False))
    try:
        yield collector
    finally:
        collector.stop()
        code = await asyncio.wait_for(task, 15)
        assert code == 0


async def until(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not _holds(predicate):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await asyncio.sleep(0.02)


def _holds(predicate: Callable[[], bool]) -> bool:
    """``predicate()``, False while a file it reads is caught halfway through a write (the
    strict readers above assert whole lines)."""
    try:
        return predicate()
    except AssertionError:
        return False


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not _holds(predicate):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.05)


def log_files(path: Path) -> list[Path]:
    """The events file and its rotated copies, oldest first."""
    rotated = sorted(
        (p for p in path.parent.glob(path.name + ".*") if p.suffix.lstrip(".").isdigit()),
        key=lambda p: -int(p.suffix.lstrip(".")),
    )
    return [*rotated, *([path] if path.exists() else [])]


def read_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of the events file and its rotated copies; fails on a broken line."""
    lines: list[dict[str, Any]] = []
    for file in log_files(path):
        data = file.read_bytes()
        assert not data or data.endswith(b"\n"), f"{file} ends in half a line"
        lines.extend(orjson.loads(line) for line in data.splitlines())
    return lines


def line_ids(path: Path) -> list[str]:
    return [line["id"] for line in read_lines(path)]


def pending_count(client: redis.Redis, group: str = "emp-collector") -> int:
    return int(client.xpending(STREAM, group)["pending"])


# -- a collector as a real process ----------------------------------------------------------


class CollectorProcess:
    def __init__(self, env: Mapping[str, str], log_path: Path) -> None:
        self.env = {**os.environ, **env}
        for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "DASH0_ENABLED", "NODE_ENV"):
            if name not in env:
                self.env.pop(name, None)
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> CollectorProcess:
        self._stderr = open(self.log_path, "ab")  # noqa: SIM115 - closed in wait()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "collector"],
            env=self.env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )
        return self

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 15.0) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        finally:
            self._stderr.close()

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.wait()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop_quietly(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


# -- an OTLP/HTTP receiver --------------------------------------------------------------------


@dataclass
class Received:
    at: float  # time.monotonic()
    headers: dict[str, str]
    status: int
    request: ExportLogsServiceRequest | None
    json: Any = None
    ids: list[str] = field(default_factory=list)  # the records' emp.stream.id, in order


def validate_otlp(body: bytes) -> tuple[ExportLogsServiceRequest, Any]:
    """Parse an OTLP/JSON body with the official definitions. OTLP/JSON carries traceId and
    spanId as hex, protobuf's JSON parser expects base64: convert them first, then check
    that the decoded bytes are the hex we sent."""
    obj = orjson.loads(body)
    hexes: list[tuple[str, str]] = []
    for rl in obj.get("resourceLogs", []):
        for sl in rl.get("scopeLogs", []):
            for rec in sl.get("logRecords", []):
                for name in ("traceId", "spanId"):
                    if name in rec:
                        hexes.append((name, rec[name]))
                        rec[name] = base64.b64encode(bytes.fromhex(rec[name])).decode()
    message = ExportLogsServiceRequest()
    json_format.Parse(orjson.dumps(obj), message)
    got: list[tuple[str, str]] = []
    for rl in message.resource_logs:
        for sl in rl.scope_logs:
            for rec in sl.log_records:
                if rec.trace_id:
                    assert len(rec.trace_id) == 16
                    got.append(("traceId", rec.trace_id.hex()))
                if rec.span_id:
                    assert len(rec.span_id) == 8
                    got.append(("spanId", rec.span_id.hex()))
    assert got == hexes
    return message, orjson.loads(body)


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1. ``script`` holds (status, headers, body) answers
    used in order; after it runs out, every request gets 200. While ``down_until`` (a
    time.monotonic()) is ahead, every request gets 503 instead; while ``hang`` is set,
    requests get no answer at all (until the server stops)."""

    port: int = 0
    script: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    down_until: float = 0.0
    hang: bool = False
    paths: list[str] = field(default_factory=list)
    keep_bodies: bool = True  # False: keep only each request's stream IDs (long runs)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: http.server.ThreadingHTTPServer | None = None
        self._stopped = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Receiver:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._lock:
                    receiver.paths.append(self.path)
                if receiver.hang:
                    receiver._stopped.wait()
                    return
                with receiver._lock:
                    if time.monotonic() < receiver.down_until:
                        status, extra, answer = 503, {}, b"down"
                    elif receiver.script:
                        status, extra, answer = receiver.script.pop(0)
                    else:
                        status, extra, answer = 200, {}, b"{}"
                parsed: ExportLogsServiceRequest | None = None
                as_json: Any = None
                if self.path.partition("?")[0] != "/v1/logs":
                    receiver.errors.append(f"path {self.path}")
                try:
                    body = (
                        gzip.decompress(raw) if headers.get("content-encoding") == "gzip" else raw
                    )
                    parsed, as_json = validate_otlp(body)
                except Exception as exc:  # noqa: BLE001 - recorded and asserted on by the test
                    receiver.errors.append(f"{type(exc).__name__}: {exc}")
                ids = list(stream_ids(parsed))
                if not receiver.keep_bodies:
                    parsed = as_json = None
                with receiver._lock:
                    receiver.received.append(
                        Received(time.monotonic(), headers, status, parsed, as_json, ids)
                    )
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def accepted(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if 200 <= r.status < 300]

    def accepted_ids(self) -> list[str]:
        """Stream IDs in the order of the requests (within a request, records are grouped
        by service, so they are put back in stream order)."""
        ids: list[str] = []
        for r in self.accepted():
            ids.extend(sorted(r.ids, key=id_key))
        return ids


def id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq)


def stream_ids(request: ExportLogsServiceRequest | None) -> Iterable[str]:
    if request is None:
        return
    for rl in request.resource_logs:
        for sl in rl.scope_logs:
            for rec in sl.log_records:
                for kv in rec.attributes:
                    if kv.key == "emp.stream.id":
                        yield kv.value.string_value


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
