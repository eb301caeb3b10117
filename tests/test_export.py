"""Export: JSON lines round-trip through the file source, CSV, JSON array, Chrome trace."""

from __future__ import annotations

import csv
from pathlib import Path

import orjson
import pytest

from emp_tui.events import TelemetryEvent
from emp_tui.export import (
    CSV_COLUMNS,
    FORMATS,
    chrome_trace,
    format_for_path,
    with_format,
    write_events,
    write_to,
)
from emp_tui.sources import read_file

T0 = 1_700_000_000_000


def sample() -> list[TelemetryEvent]:
    return [
        TelemetryEvent.create(
            "api-server", "job.created", {"jobType": "comfyui"}, timestamp=T0, job_id="j1"
        ),
        TelemetryEvent.create(
            "worker",
            "connector.processing_started",
            timestamp=T0 + 100,
            job_id="j1",
            worker_id="w-1",
        ),
        TelemetryEvent.create(
            "worker",
            "connector.processing_completed",
            {"note": '=HYPERLINK("x")', "text": 'line\nbreak, "quoted"'},
            timestamp=T0 + 1100,
            job_id="j1",
            worker_id="w-1",
        ),
        TelemetryEvent.from_json_line(b'{"service": "monitor", "id": "1700000002000-3"}'),
    ]


def test_jsonl_round_trips_through_the_file_source(tmp_path: Path) -> None:
    events = sample()
    path = tmp_path / "out.jsonl"
    assert write_events(events, path, "jsonl") == 4
    back = list(read_file(path))
    assert back[:3] == events[:3]
    # The malformed one comes back still flagged, with the same content. (Its reason text
    # repeats "traceId missing": events.from_json_line re-adds a reason it already carries.)
    assert back[3].malformed and back[3].to_dict() | {"malformed": ""} == events[3].to_dict() | {
        "malformed": ""
    }


def test_json_array_round_trips_too(tmp_path: Path) -> None:
    events = sample()
    path = tmp_path / "out.json"
    assert write_events(events, path, "json") == 4
    assert [e.to_dict() for e in read_file(path)][:3] == [e.to_dict() for e in events][:3]
    empty = tmp_path / "empty.json"
    assert write_events([], empty, "json") == 0
    assert orjson.loads(empty.read_bytes()) == []


def test_csv_has_a_row_per_event_and_inert_cells(tmp_path: Path) -> None:
    events = sample()
    path = tmp_path / "out.csv"
    assert write_events(events, path, "csv") == 4
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert len(rows) == 4
    assert rows[0]["eventType"] == "job.created"
    assert rows[0]["time"] == "2023-11-14T22:13:20.000+00:00"
    assert orjson.loads(rows[0]["data"]) == {"jobType": "comfyui"}
    assert rows[1]["workerId"] == "w-1"
    data = orjson.loads(rows[2]["data"])
    assert data["text"] == 'line\nbreak, "quoted"'
    assert rows[3]["malformed"]
    # A cell that a spreadsheet would run as a formula is defused.
    formula = TelemetryEvent.create("=cmd", "x.y", timestamp=T0)
    write_events([formula], path, "csv", overwrite=True)
    with path.open(newline="") as f:
        assert next(csv.DictReader(f))["service"] == "'=cmd"


def test_chrome_trace_has_instants_and_durations(tmp_path: Path) -> None:
    events = sample()
    trace = chrome_trace(events)
    items = trace["traceEvents"]
    instants = [i for i in items if i["ph"] == "i"]
    assert len(instants) == 4
    assert instants[0]["ts"] == 0 and instants[0]["name"] == "job.created"
    (complete,) = [i for i in items if i["ph"] == "X"]
    assert complete["name"] == "connector.processing"
    assert (complete["ts"], complete["dur"]) == (100_000, 1_000_000)
    names = {i["args"]["name"] for i in items if i["ph"] == "M" and i["name"] == "process_name"}
    assert names == {"job j1", "monitor"}
    # Events of one job and service share a pid and tid.
    started = next(i for i in instants if i["name"] == "connector.processing_started")
    assert (complete["pid"], complete["tid"]) == (started["pid"], started["tid"])
    path = tmp_path / "trace.json"
    assert write_events(events, path, "chrome-trace") == 4
    assert orjson.loads(path.read_bytes())["traceEvents"] == orjson.loads(orjson.dumps(items))
    assert chrome_trace([])["traceEvents"] == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_existing_target_is_refused_without_overwrite(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "out"
    path.write_text("precious")
    with pytest.raises(FileExistsError):
        write_events(sample(), path, fmt)
    assert path.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary left behind
    assert write_events(sample(), path, fmt, overwrite=True) == 4
    assert path.read_text() != "precious"


def test_unknown_format_and_unwritable_place(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown export format"):
        write_events(sample(), tmp_path / "x", "xml")
    with pytest.raises(OSError):
        write_events(sample(), tmp_path / "no" / "such" / "dir.jsonl", "jsonl")


def test_a_failing_source_leaves_no_file(tmp_path: Path) -> None:
    def broken() -> list[TelemetryEvent]:
        raise RuntimeError("source died")

    def events():  # type: ignore[no-untyped-def]
        yield sample()[0]
        broken()

    with pytest.raises(RuntimeError):
        write_events(events(), tmp_path / "half.jsonl", "jsonl")
    assert list(tmp_path.iterdir()) == []


def test_an_export_gets_the_mode_of_any_new_file(tmp_path: Path) -> None:
    """Written through a private temporary file, the export must not stay private."""
    import os
    import stat

    old = os.umask(0o022)
    try:
        target = tmp_path / "shared.jsonl"
        write_events([], target, "jsonl")
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("out.jsonl", "jsonl"),
        ("OUT.CSV", "csv"),
        ("out.json", "json"),
        ("job.trace.json", "chrome-trace"),
        ("events.log", "jsonl"),
        ("dir.csv/out", None),
        ("out.txt", None),
        (".json", None),
    ],
)
def test_the_format_follows_the_file_name(name: str, fmt: str | None) -> None:
    assert format_for_path(name) == fmt
    assert format_for_path(Path("/tmp") / name) == fmt


def test_with_format_swaps_the_ending() -> None:
    assert with_format("story.jsonl", "chrome-trace") == "story.trace.json"
    assert with_format("story.trace.json", "csv") == "story.csv"
    assert with_format("story.json", "jsonl") == "story.jsonl"
    assert with_format("story", "csv") == "story"
    for fmt in FORMATS:
        assert format_for_path(with_format("x.jsonl", fmt)) == fmt


@pytest.mark.parametrize("fmt", FORMATS)
def test_write_to_a_stream_is_the_file_s_content(tmp_path: Path, fmt: str) -> None:
    import io

    path = tmp_path / "out"
    write_events(sample(), path, fmt)
    stream = io.BytesIO()
    assert write_to(sample(), stream, fmt) == len(sample())
    assert stream.getvalue() == path.read_bytes()
