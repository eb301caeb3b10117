"""The app's live tail over a stream of four shards on a real 3-master Redis Cluster: the
time range is loaded from every shard, then every shard is followed, and all of it shows in
stream order (two shards may hold one stream ID: both show)."""

from __future__ import annotations

import pytest
from samples import sample_events

from emp_tui.config import AppConfig
from emp_tui.events import TelemetryEvent
from emp_tui.stream_ids import order_key
from emp_tui.topology import client_for_url, shard_key, trim_policy_key

from .test_live import _live_app, _until

pytestmark = pytest.mark.redis

STREAM = "emp:events"
SHARDS = 4


def _spread(url: str, events: list[TelemetryEvent]) -> set[str]:
    """XADD each event to its shard (as the emitter picks it); the shards written."""
    client = client_for_url(url)
    keys = set()
    try:
        for event in events:
            key = shard_key(STREAM, SHARDS, event.job_id, event.service)
            client.xadd(key, event.encode())  # type: ignore[arg-type]
            keys.add(key)
    finally:
        client.close()
    return keys


async def test_live_tail_over_four_shards_on_a_cluster(cluster_url: str) -> None:
    events = sample_events()
    assert len(_spread(cluster_url, events[:120])) == SHARDS  # every shard has some
    app = _live_app(cluster_url, shards=SHARDS, config=AppConfig(log_dir=""))
    async with app.run_test(size=(160, 48)) as pilot:
        await _until(pilot, lambda: len(app.store) == 120 and not app.state.loading, 30)
        await _until(pilot, lambda: app.status.state == "connected", 30)
        status = app.query_one("#status").render().plain  # type: ignore[attr-defined]
        assert "120 loaded" in status and "stream holds 120 since" in status
        _spread(cluster_url, events[120:])
        await _until(pilot, lambda: len(app.store) == len(events), 30)
        shown = app.shown_events()
        assert sorted(e.event_type + (e.job_id or "") for e in shown) == sorted(
            e.event_type + (e.job_id or "") for e in events
        )
        keys = [order_key(e.id, e.timestamp) for e in shown]
        assert keys == sorted(keys)  # merged by stream ID
        assert app.stream_list.follow


@pytest.mark.parametrize("recorded", [True, False])
async def test_the_app_finds_the_shard_count_itself(cluster_url: str, recorded: bool) -> None:
    """Not told EMP_EVENTS_SHARDS, the app reads the count the emitters recorded, or (none
    recorded, emp:events missing) finds the shard keys and says so."""
    events = sample_events()[:120]
    _spread(cluster_url, events)
    if recorded:
        client = client_for_url(cluster_url)
        try:
            client.hset(trim_policy_key(STREAM), mapping={"shards": SHARDS, "service": "worker"})
        finally:
            client.close()
    app = _live_app(cluster_url, config=AppConfig(log_dir=""))
    assert app.shards == 1 and not app.shards_settled
    said: list[str] = []
    notify = app.notify

    def recording(message: str, **kwargs: object) -> None:
        said.append(message)
        notify(message, **kwargs)  # type: ignore[arg-type]

    app.notify = recording  # type: ignore[method-assign]
    async with app.run_test(size=(160, 48)) as pilot:
        await _until(pilot, lambda: len(app.store) == 120 and not app.state.loading, 30)
        assert app.shards == SHARDS
        assert app.status.source.endswith(f" {STREAM} ({SHARDS} shards)")  # once found
        if recorded:
            assert app.shards_warning is None
            assert not any("shard" in text for text in said)
        else:
            assert app.shards_warning is not None
            assert "emp:events does not exist but 4 of its shard keys do" in app.shards_warning
            assert [app.shards_warning] == said
