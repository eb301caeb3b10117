"""A corpus of poison stream entries: what a broken or hostile emitter can put in the stream.

Each entry is a list of (field, value) pairs as raw bytes, written with a raw ``XADD`` (so
nothing on the way can tidy it up). :func:`write_corpus` writes them into a real stream, each
between two well-formed neighbours, and says which IDs are which: a reader must deliver every
one of them, the poison flagged ``malformed`` and the neighbours intact.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import orjson
import redis

from emp_tui.events import TelemetryEvent, trace_id_for_job

JOB = "job_poison"
TRACE = trace_id_for_job(JOB).encode()
BIG = 5 * 1024 * 1024


def _nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def _entry(**fields: bytes) -> list[tuple[bytes, bytes]]:
    """A well-formed entry of the poison job with ``fields`` replacing or adding to it."""
    base = {
        "timestamp": str(time.time_ns() // 1_000_000).encode(),
        "service": b"worker",
        "eventType": b"job.progress_updated",
        "traceId": TRACE,
        "jobId": JOB.encode(),
        "data": b"{}",
    }
    base.update(fields)
    return [(key.encode(), value) for key, value in base.items()]


def _whole(event: bytes) -> list[tuple[bytes, bytes]]:
    """A whole event sent as one JSON field."""
    return [(b"event", event)]


POISON: dict[str, list[tuple[bytes, bytes]]] = {
    "timestamp superscript two": _entry(timestamp="²".encode()),
    "timestamp with a superscript digit": _entry(timestamp="173270000000²".encode()),
    "timestamp in Arabic-Indic digits": _entry(timestamp="١٧٣٢٧٠٠٠٠٠٠٠٠".encode()),
    "timestamp of 5,000 digits": _entry(timestamp=b"7" * 5000),
    "timestamp of 23 digits": _entry(timestamp=b"9" * 23),
    "timestamp negative": _entry(timestamp=b"-1732700000000"),
    "timestamp nan": _entry(timestamp=b"nan"),
    "timestamp 1e400": _entry(timestamp=b"1e400"),
    "whole event, timestamp 1e23": _whole(
        b'{"timestamp":1e23,"service":"worker","eventType":"job.claimed","jobId":"%s"}'
        % JOB.encode()
    ),
    "whole event, fields of every type": _whole(
        orjson.dumps(
            {
                "timestamp": True,
                "service": {"name": "worker"},
                "eventType": ["job", "claimed"],
                "jobId": {"id": JOB},
                "traceId": 12,
                "level": {"x": 1},
                "v": 1e23,
                "eventId": [1, 2],
                "data": {"n": 18446744073709551615},
            }
        )
    ),
    "whole event nested 1,000 deep": _whole(
        b'{"timestamp":1,"service":"worker","eventType":"job.x","jobId":"%s","data":%s}'
        % (JOB.encode(), b'{"a":' * 1000 + b"1" + b"}" * 1000)
    ),
    "data nested 300 deep": _entry(data=_nested(300)),
    "data nested 2,000 deep": _entry(data=_nested(2000)),
    "data a list nested 300 deep": _entry(data=b"[" * 300 + b"]" * 300),
    "data with a huge number": _entry(data=b'{"n":1e400,"m":123456789012345678901234567890}'),
    "data with NaN": _entry(data=b'{"n":NaN}'),
    "data with a lone surrogate escape": _entry(data=b'{"s":"\\ud800"}'),
    "data that is not JSON": _entry(data=b"{not json"),
    "data that is a string": _entry(data=b'"just text"'),
    "binary junk": [(bytes(range(256)), bytes(range(255, -1, -1)))],
    "binary junk in known fields": _entry(
        service=bytes(range(128, 256)), eventType=b"\x00\xff\xfe", data=bytes(range(256))
    ),
    "empty entry": [(b"", b"")],
    "empty values": _entry(timestamp=b"", service=b"", eventType=b"", traceId=b"", data=b""),
    "invalid UTF-8": _entry(service=b"work\xc3\x28er", data=b'{"s":"\xff\xfe"}'),
    "invalid UTF-8 in a field name": [*_entry(), (b"na\xffme", b"value")],
    "5 MB data": _entry(data=b'{"blob":"' + b"x" * BIG + b'"}'),
    "5 MB service": _entry(service=b"s" * BIG),
    "terminal escapes and markup": _entry(
        service=b"\x1b[2J\x1b]0;pwned\x07worker",
        eventType=b"[bold red]job[/].\xe2\x80\xaeclaimed",
        data=b'{"msg":"\\u001b[31mred\\u0007 [link=http://x]x[/link]"}',
    ),
    "id-like junk in data": _entry(data=b'{"jobId":{"deep":[1,2]},"workerId":[1]}'),
    "level and v out of range": _entry(level=b"\xd9\xa3", v="٣".encode()),
    "spanId and traceId junk": _entry(spanId=b"zz" * 8, traceId="\uff26".encode() * 32),
    "eventId empty and odd": _entry(eventId=b"\x00" * 3),
}
"""Poison entries by name. All that carry a jobId carry JOB, so a job's timeline meets them."""

VALID_BUT_ODD = frozenset(
    {
        "5 MB data",
        "5 MB service",
        "terminal escapes and markup",
        "id-like junk in data",
        "eventId empty and odd",
    }
)
"""The poison entries that are well formed, only hostile or huge: delivered unflagged. Every
other one is delivered flagged ``malformed``."""


def good(n: int) -> list[tuple[bytes, bytes]]:
    """A well-formed neighbour: event ``n`` of the poison job."""
    event = TelemetryEvent.create(
        "api-server", "job.queued", {"n": n}, job_id=JOB, timestamp=time.time_ns() // 1_000_000
    )
    return [(k.encode(), v.encode()) for k, v in event.encode().items()]


@dataclass
class Corpus:
    """What :func:`write_corpus` wrote: the stream IDs of the poison entries (by name) and
    of their well-formed neighbours, in stream order."""

    poison: dict[str, str]
    good: list[str]

    @property
    def ids(self) -> list[str]:
        return sorted([*self.poison.values(), *self.good], key=_order)


def _order(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq)


HUGE = frozenset({"5 MB data", "5 MB service"})


def write_corpus(
    client: redis.Redis, stream: str = "emp:events", *, leave_out: frozenset[str] = frozenset()
) -> Corpus:
    """Every poison entry (but those named in ``leave_out``), each between well-formed
    neighbours, with a raw XADD."""
    corpus = Corpus({}, [])
    n = 0

    def xadd(pairs: list[tuple[bytes, bytes]]) -> str:
        flat = [part for pair in pairs for part in pair]
        reply = client.execute_command("XADD", stream, "*", *flat)
        return reply.decode() if isinstance(reply, bytes) else str(reply)

    corpus.good.append(xadd(good(n)))
    for name, pairs in POISON.items():
        if name in leave_out:
            continue
        corpus.poison[name] = xadd(pairs)
        n += 1
        corpus.good.append(xadd(good(n)))
    return corpus


# -- the same for files: lines a broken writer (or a hand edit) can leave in a log ------------

_LINE_BASE = {
    "timestamp": 1_732_700_000_000,
    "service": "worker",
    "eventType": "job.progress_updated",
    "traceId": TRACE.decode(),
    "jobId": JOB,
    "data": {},
}


def _line(**fields: object) -> bytes:
    return orjson.dumps({**_LINE_BASE, **fields})


POISON_LINES: dict[str, bytes] = {
    "id of 20-digit numbers": _line(id="99999999999999999999-99999999999999999999"),
    "id with a superscript digit": _line(id="²-0"),
    "id of 5,000 digits": _line(id="1" * 5000 + "-0"),
    "id a number": _line(id=5),
    "timestamp in Arabic-Indic digits": _line(timestamp="١٧٣٢٧٠٠٠٠٠٠٠٠"),
    "timestamp 1e300": _line(timestamp=1e300),
    "timestamp negative": _line(timestamp=-1),
    "timestamp past 64 bits": b'{"timestamp":123456789012345678901234567890,"service":"w"}',
    "data nested 500 deep": _line(data=0).replace(b'"data":0', b'"data":' + _nested(500)),
    "data a list nested 300 deep": _line(data=0).replace(
        b'"data":0', b'"data":{"a":' + b"[" * 300 + b"]" * 300 + b"}"
    ),
    "level a list": _line(level=["warn"]),
    "v in Arabic-Indic digits": _line(v="٣"),
    "eventId a number": _line(eventId=7),
    "malformed a list": _line(malformed=["x"]),
    "jobId a list": _line(jobId=[JOB]),
    "service null": _line(service=None),
    "durations that are not numbers": _line(
        eventType="job.processing_completed", data={"durationMs": "abc", "queueTimeMs": 1e308}
    ),
}
"""Poison JSON lines by name: each is a JSON object, read as one event, flagged ``malformed``
unless named in VALID_BUT_ODD_LINES."""

VALID_BUT_ODD_LINES = frozenset(
    {"id of 20-digit numbers", "eventId a number", "durations that are not numbers"}
)

CORRUPT_LINES: tuple[bytes, ...] = (
    b"[" * 1000 + b"]" * 1000,
    b'{"timestamp": 1e400}',
    b'\xff\xfe{"x":1}',
    b"not json at all",
)
"""Lines that are not a JSON object: counted as corrupt and skipped, as the README says."""


def write_poison_log(path: Path) -> list[str]:
    """Every poison and corrupt line, each between well-formed neighbours (with stream IDs);
    returns the neighbours' IDs, in order."""
    good_ids = []
    lines = []
    poison = [*POISON_LINES.values(), *CORRUPT_LINES]
    for n in range(len(poison) + 1):
        entry_id = f"1732700000{n:03d}-0"
        event = dict(orjson.loads(_line(id=entry_id, data={"n": n})))
        event["timestamp"] = 1_732_700_000_000 + n
        lines.append(orjson.dumps(event))
        good_ids.append(entry_id)
        if n < len(poison):
            lines.append(poison[n])
    path.write_bytes(b"\n".join(lines) + b"\n")
    return good_ids
