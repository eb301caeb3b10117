"""What flows between the collector's stages: a batch of stream entries, read together, with
the holds that decide when it may be acked, and the decoding of its entries into events.

A :class:`Batch` is handed to every exporter. An exporter that finishes with it later
(after a queue, a retry, a spool) *holds* it and releases it once the events are exported,
spooled or dead-lettered; the entries are acked when the last hold is released, so acks wait
for every exporter and only a failing exporter retries. What an exporter needs of the
entries it takes from :attr:`Batch.content` when it is offered the batch: the batch drops
its own reference once every exporter has been offered it, so that a batch that waits only
for its ack holds its IDs, not its events.

Decoding never stops a batch: an entry whose decoding raises becomes an event built from
its raw fields and flagged malformed, and so does an event that cannot be written as JSON.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Final, cast

import orjson

from collector.health import Health
from collector.lines import Fields, as_mapping, json_lines
from emp_tui.events import TelemetryEvent, decode, stream_id_ms
from emp_tui.text import escape_json

log = logging.getLogger("collector")

Entry = tuple[bytes, Fields]  # a stream entry as Redis sends it: ID, then name, value, ...

_MALFORMED_LOGGED: Final = 10
_FLAGGED_REMEMBERED: Final = 4096
_REASON_MAX: Final = 300
_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else repr(value)


def _reason(what: str, exc: BaseException) -> str:
    detail = " ".join(str(exc).split()) or type(exc).__name__
    return f"{what} ({type(exc).__name__}: {detail})"[:_REASON_MAX]


def raw_event(entry_id: str, fields: Mapping[Any, Any], why: str) -> TelemetryEvent:
    """An event that keeps an entry's raw fields as text under ``data._raw``, flagged with
    ``why``: for entries the decoder could not read. Always writable as JSON."""
    raw = {_text(key): _text(value) for key, value in fields.items()}
    ms = stream_id_ms(entry_id)
    return TelemetryEvent(
        timestamp=ms if ms is not None else 0,
        service=raw.get("service") or "unknown",
        event_type=raw.get("eventType") or "unknown",
        trace_id="",
        data={"_raw": raw},
        id=entry_id,
        malformed=why,
    )


def data_as_text(data: Any) -> str:
    """``data`` as a string, for an event whose data cannot be written as JSON."""
    try:
        return repr(data)
    except (RecursionError, ValueError, TypeError) as exc:
        return f"<data not representable: {type(exc).__name__}>"


def _safe(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _all_text(event: TelemetryEvent) -> TelemetryEvent:
    def maybe(value: str | None) -> str | None:
        return None if value is None else _safe(value)

    return TelemetryEvent(
        timestamp=event.timestamp,
        service=_safe(event.service),
        event_type=_safe(event.event_type),
        trace_id=_safe(event.trace_id),
        span_id=maybe(event.span_id),
        job_id=maybe(event.job_id),
        worker_id=maybe(event.worker_id),
        machine_id=maybe(event.machine_id),
        user_id=maybe(event.user_id),
        level=_safe(event.level),
        data={"_raw": _safe(data_as_text(event.data))},
        id=maybe(event.id),
        malformed=maybe(event.malformed),
    )


class Decoder:
    """The decoding stage: entries to events, counting and logging malformed ones."""

    def __init__(self, health: Health) -> None:
        self.health = health
        self._flagged: OrderedDict[str | None, TelemetryEvent] = OrderedDict()

    def decode(self, entry_id: str, fields: Mapping[Any, Any]) -> TelemetryEvent:
        try:
            event = decode(entry_id, fields)
        except Exception as exc:  # noqa: BLE001 - one entry must never stop a batch
            event = raw_event(entry_id, fields, _reason("not decodable", exc))
        if event.malformed is not None:
            self._count(event)
        return event

    def flag(self, event: TelemetryEvent, exc: BaseException) -> TelemetryEvent:
        """``event`` with its data as text, flagged: for an event that cannot be written
        (as a JSON line, as an OTLP record). The same event flagged by two exporters is
        counted once."""
        known = self._flagged.get(event.id)
        if known is not None:
            return known
        why = _reason("could not be written", exc)
        data: dict[str, Any]
        try:
            orjson.dumps(event.data)
        except (TypeError, ValueError):
            data = {"_raw": data_as_text(event.data)}
        else:
            data = dict(event.data)
        timestamp = event.timestamp
        if not _INT64_MIN <= timestamp <= _INT64_MAX:
            data["_timestamp"] = str(timestamp)
            ms = stream_id_ms(event.id)
            timestamp = ms if ms is not None else 0
        flagged = TelemetryEvent(
            timestamp=timestamp,
            service=event.service,
            event_type=event.event_type,
            trace_id=event.trace_id,
            span_id=event.span_id,
            job_id=event.job_id,
            worker_id=event.worker_id,
            machine_id=event.machine_id,
            user_id=event.user_id,
            level=event.level,
            data=data,
            id=event.id,
            malformed=why if event.malformed is None else f"{event.malformed}; {why}",
        )
        try:
            flagged.to_json_line()
        except Exception:  # noqa: BLE001 - text that JSON cannot hold: every field as safe text
            flagged = _all_text(flagged)
        if event.malformed is None:
            self._count(flagged)
        else:
            log.warning("entry %s: %s", event.id, why)
        self._flagged[event.id] = flagged
        if len(self._flagged) > _FLAGGED_REMEMBERED:
            self._flagged.popitem(last=False)
        return flagged

    def _count(self, event: TelemetryEvent) -> None:
        health = self.health
        health.malformed += 1
        if health.malformed <= _MALFORMED_LOGGED:
            log.warning("malformed entry %s: %s (kept, flagged)", event.id, event.malformed)
        elif health.malformed == _MALFORMED_LOGGED + 1:
            log.warning("more malformed entries; counting them in health without logging each")


class Content:
    """The entries of a batch and, decoded on first use and then shared by the exporters,
    their events. A well-formed entry is written to a file straight from its fields
    (:func:`collector.lines.json_line`), without an event; the others, and every entry an
    exporter wants as an event (OTLP), are decoded, each once."""

    __slots__ = ("_decoder", "_events", "entries", "fast_lines", "ids")

    def __init__(self, ids: list[str], entries: list[Entry], decoder: Decoder) -> None:
        self.ids = ids
        self.entries = entries
        self._decoder = decoder
        self._events: list[TelemetryEvent | None] | None = None
        self.fast_lines = 0  # lines the last json_lines() built without an event

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def events(self) -> list[TelemetryEvent]:
        events = self._events
        decode_one = self._decoder.decode
        if events is None:
            decoded = [
                decode_one(entry_id, as_mapping(fields))
                for entry_id, (_, fields) in zip(self.ids, self.entries, strict=True)
            ]
            self._events = list(decoded)
            return decoded
        for index, event in enumerate(events):
            if event is None:
                events[index] = decode_one(self.ids[index], as_mapping(self.entries[index][1]))
        return events  # type: ignore[return-value]  # no None left

    def _event(self, index: int) -> TelemetryEvent:
        events = self._events
        if events is None:
            events = self._events = [None] * len(self.ids)
        event = events[index]
        if event is None:
            fields = as_mapping(self.entries[index][1])
            event = events[index] = self._decoder.decode(self.ids[index], fields)
        return event

    def json_lines(self) -> bytes:
        """Every entry as a JSON line, joined: straight from its fields when it is well
        formed (and not decoded already), else from its event; an event that cannot be
        written is written flagged, with its data as text."""
        events = self._events
        if events is None:
            fast_lines = json_lines(self.entries)
        else:
            # Entries decoded already (for OTLP) are written from their events: cheaper.
            fast_lines = [None] * len(events)
            todo = [index for index, event in enumerate(events) if event is None]
            for index, line in zip(todo, json_lines([self.entries[i] for i in todo]), strict=True):
                fast_lines[index] = line
        if None not in fast_lines:  # nearly always: every line built from its entry's fields
            self.fast_lines = len(fast_lines)
            return escape_json(b"".join(cast("list[bytes]", fast_lines)))
        lines: list[bytes] = []
        fast = 0
        for index, line in enumerate(fast_lines):
            if line is not None:
                lines.append(line)
                fast += 1
                continue
            event = self._event(index)
            try:
                lines.append(event.to_json_line())
            except Exception as exc:  # noqa: BLE001 - written flagged instead
                flagged = self._decoder.flag(event, exc)
                assert self._events is not None
                self._events[index] = flagged
                lines.append(flagged.to_json_line())
        self.fast_lines = fast
        # DEL, C1 and bidi characters as \uXXXX: the same JSON to a reader, inert in a
        # terminal that shows the file (what every JSON output of ours does).
        return escape_json(b"".join(lines))


class Batch:
    """Entries read together, and the holds on them: the entries are acked when the last
    hold is released. The collector holds a batch while it offers it to the exporters; an
    exporter that finishes with it later holds it until then."""

    __slots__ = ("_holds", "_on_done", "content", "ids")

    def __init__(self, content: Content, on_done: Callable[[Batch], None]) -> None:
        self.ids = content.ids
        self.content: Content | None = content
        self._on_done = on_done
        self._holds = 1

    def __len__(self) -> int:
        return len(self.ids)

    def hold(self) -> None:
        self._holds += 1

    def release(self) -> None:
        self._holds -= 1
        if self._holds == 0:
            self._on_done(self)

    @property
    def done(self) -> bool:
        return self._holds == 0
