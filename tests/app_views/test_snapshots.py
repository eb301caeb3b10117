"""Snapshots of the two widgets, each in a tiny app, at 160x48 and 80x24 (deterministic data).

Update with ``pytest tests/app_views/test_snapshots.py --snapshot-update`` and look at every
changed SVG before committing it. Nothing here blinks (no text inputs).
"""

from __future__ import annotations

from typing import Any

import pytest
from samples import crossing_job, crossing_timeline, fleet_edges

from emp_tui.analysis import handoffs

from .apps import GraphApp, TimelineApp

SIZES = [(160, 48), (80, 24)]


@pytest.mark.parametrize("size", SIZES, ids=["160x48", "80x24"])
def test_timeline(snap_compare: Any, size: tuple[int, int]) -> None:
    # "n" puts the cursor on the step after the 12.3 s gap.
    assert snap_compare(TimelineApp(crossing_timeline()), terminal_size=size, press=["n"])


def test_timeline_unknown_job(snap_compare: Any) -> None:
    assert snap_compare(TimelineApp(None, job_id="job_missing"), terminal_size=(80, 24))


@pytest.mark.parametrize("size", SIZES, ids=["160x48", "80x24"])
def test_graph_all_jobs(snap_compare: Any, size: tuple[int, int]) -> None:
    app = GraphApp(fleet_edges(), detail="service:worker,machine since:10m")
    assert snap_compare(app, terminal_size=size, press=["g"])


@pytest.mark.parametrize("size", SIZES, ids=["160x48", "80x24"])
def test_graph_one_job(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(GraphApp(handoffs(crossing_job()), detail="job_7f3a"), terminal_size=size)


def test_graph_empty(snap_compare: Any) -> None:
    assert snap_compare(GraphApp([], detail="job_7f3a"), terminal_size=(80, 24))
