"""Redis stream entry IDs (``<ms>-<seq>``): reading them, ordering by them, and the IDs just
after and just before one (for paging with XRANGE, whose bounds are inclusive). Pure.

An ID is read strictly: ASCII digits only, each part within 64 bits, as Redis makes them. What
is not such an ID (junk in a file, an event that never was in a stream) reads as None, and
:func:`order_key` falls back on the event's own timestamp.
"""

from __future__ import annotations

from typing import Final

MAX_SEQ: Final = 2**64 - 1
"""The largest sequence number (and millisecond time) an ID can hold."""
_MAX_DIGITS: Final = len(str(MAX_SEQ))


def _part(text: str) -> int | None:
    if not text or len(text) > _MAX_DIGITS or not text.isascii() or not text.isdigit():
        return None
    value = int(text)
    return value if value <= MAX_SEQ else None


def parse_id(entry_id: str | bytes | None) -> tuple[int, int] | None:
    """``(ms, seq)`` of a stream entry ID (``"17-3"``, or ``"17"`` meaning ``17-0``), None
    when it is not one."""
    if entry_id is None:
        return None
    if isinstance(entry_id, bytes):
        entry_id = entry_id.decode("ascii", "replace")
    ms_text, dash, seq_text = entry_id.partition("-")
    ms = _part(ms_text)
    seq = _part(seq_text) if dash else 0
    if ms is None or seq is None:
        return None
    return ms, seq


def stream_id_ms(entry_id: str | bytes | None) -> int | None:
    """The millisecond part of a stream entry ID, or None."""
    parsed = parse_id(entry_id)
    return None if parsed is None else parsed[0]


def next_id(entry_id: str) -> str:
    """The smallest ID after ``entry_id``."""
    parsed = parse_id(entry_id)
    if parsed is None:
        raise ValueError(f"not a stream ID: {entry_id!r}")
    ms, seq = parsed
    return f"{ms + 1}-0" if seq >= MAX_SEQ else f"{ms}-{seq + 1}"


def previous_id(entry_id: str) -> str:
    """The largest ID before ``entry_id`` (``0-0`` has none: ``0-0`` itself)."""
    parsed = parse_id(entry_id)
    if parsed is None:
        raise ValueError(f"not a stream ID: {entry_id!r}")
    ms, seq = parsed
    if seq > 0:
        return f"{ms}-{seq - 1}"
    return f"{ms - 1}-{MAX_SEQ}" if ms > 0 else "0-0"


def order_key(entry_id: str | None, timestamp: int) -> tuple[int, int]:
    """Where an event stands in stream order: its ID's ``(ms, seq)``, else ``(timestamp, 0)``
    for an event without a stream ID."""
    parsed = parse_id(entry_id)
    return (timestamp, 0) if parsed is None else parsed


def range_bounds(since_ms: int | None, until_ms: int | None) -> tuple[str, str]:
    """XRANGE ``(start, end)`` covering every entry written from ``since_ms`` to ``until_ms``
    inclusive (``-`` and ``+`` where there is no bound)."""
    start = "-" if since_ms is None else f"{max(since_ms, 0)}-0"
    end = "+" if until_ms is None else f"{max(until_ms, 0)}-{MAX_SEQ}"
    return start, end
