"""The decoder's fast paths: taken for every well-formed entry and line, and reading each the
same way as the general paths. (A fast path that is never taken passes any agreement test.)"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import orjson
import pytest
from samples import event

from emp_tui import events
from emp_tui.events import TelemetryEvent, decode, decode_general, decode_object_general


def well_formed() -> list[TelemetryEvent]:
    data = {"claimTimeMs": 12, "nested": {"a": [1, 2.5, None, True]}, "note": "ワーカー 🧪"}
    ids = {"job_id": "job_123", "worker_id": "w-1", "machine_id": "m-1"}
    full = replace(event(7, 1732700000000, "worker", "job.claimed", data, **ids), user_id="u-9")
    return [
        full,
        replace(full, span_id=None, user_id=None, machine_id=None, data={}),
        replace(full, job_id=None, worker_id=None, level="error", event_type="api.error"),
        event(8, 1732700000001, "api-server", "job.created", {"jobType": "comfyui"}, job_id="j"),
        event(9, 1, "monitor", "monitor.heartbeat", level="warn"),
    ]


@pytest.fixture
def general_paths_refused(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make the general paths fail loudly; returns the names of those that were called."""
    called: list[str] = []

    def refuse(name: str) -> Callable[..., Any]:
        def general(*args: object, **kwargs: object) -> TelemetryEvent:
            called.append(name)
            raise AssertionError(f"{name} was called for a well-formed entry")

        return general

    monkeypatch.setattr(events, "decode_general", refuse("decode_general"))
    monkeypatch.setattr(events, "decode_object_general", refuse("decode_object_general"))
    return called


@pytest.mark.parametrize("sample", well_formed())
def test_well_formed_entries_and_lines_take_the_fast_paths(
    sample: TelemetryEvent, general_paths_refused: list[str]
) -> None:
    entry = {name.encode(): value.encode() for name, value in sample.encode().items()}
    decoded = decode(b"1732700000000-7", entry)
    assert decoded == replace(sample, id="1732700000000-7")
    assert TelemetryEvent.from_json_line(decoded.to_json_line()) == decoded
    assert general_paths_refused == []


@pytest.mark.parametrize("sample", well_formed())
def test_fast_and_general_paths_read_the_same(sample: TelemetryEvent) -> None:
    entry = {name.encode(): value.encode() for name, value in sample.encode().items()}
    assert decode(b"17-3", entry) == decode_general(b"17-3", entry)
    line = replace(sample, id="17-3").to_json_line()
    assert TelemetryEvent.from_json_line(line) == decode_object_general(orjson.loads(line))


def test_unusual_entries_are_left_to_the_general_path(general_paths_refused: list[str]) -> None:
    """The fast path steps aside at the first sign of anything unusual (the refused general
    path then costs that one entry, flagged, as any decoder failure does)."""
    entry = {name.encode(): value.encode() for name, value in well_formed()[0].encode().items()}
    decoded = [
        decode(b"17-3", {**entry, b"level": b"WARNING"}),
        decode("17-3", {name.decode(): value.decode() for name, value in entry.items()}),
        TelemetryEvent.from_json_line(b'{"service": "monitor"}'),
    ]
    for flagged in decoded:
        assert flagged.malformed is not None and "could not be decoded" in flagged.malformed
    assert general_paths_refused == ["decode_general", "decode_general", "decode_object_general"]
