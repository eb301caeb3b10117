"""The simulation's output, pinned: for a few seeds, scenarios and fault rates, a digest of
every event it writes (time from the start, service, type, IDs, level and data, in emission
order) and of the stories it tells. Any change to what the simulation emits, however small,
changes a digest; a change that is meant must update them here, on purpose."""

from __future__ import annotations

import hashlib

import orjson
import pytest
import redis
from simhelp import START_MS, in_emission_order, read_events, run_sim, story_lines

from emp_tui.demo.model import FaultRates

# (seed, scenario, random faults, simulated seconds) -> (events, digest)
# Runs stay under the stream's MAXLEN (10,000), so that the stream holds every event.
GOLDEN = {
    (1, None, True, 180): (
        6169,
        "32cfd989897f60d7d3c2c96d0760f2cbd05b4c7cf7e660e715047619deb82a79",
    ),
    (7, None, True, 180): (
        8494,
        "92ac95ffa29cc82705de8f08f12c0cb19cd066b4120f4619bd84d045e324812d",
    ),
    (1, "mixed", True, 180): (
        7079,
        "21ffde26bbc32d2e53b06c855c86563ad76d5ce52525c2ba4b1aa12407140d56",
    ),
    (7, "mixed", True, 180): (
        7025,
        "48afe13e420751ab060d947ffa881f9b7b6723a4e679e2649ef24c668e88e2d2",
    ),
    (1, "worker-crash", False, 120): (
        4460,
        "0398878ee10680c4f595f63615995bd526af3a5c4a5360c849dc034414e772b1",
    ),
    (7, "slow-machine", False, 120): (
        4236,
        "3181ce19ca28c5c995f5ce9c1c0e6a9fb989281851e954c7860182b879d4d45b",
    ),
    (1, "failing-connector", True, 150): (
        5207,
        "9ac9ac04ff59030420bacb39ce6d5df7034237710093c153be9e26c03da4787f",
    ),
}


def digest(url: str, stories: list[str]) -> tuple[int, str]:
    events = in_emission_order(read_events(url))
    sha = hashlib.sha256()
    for line in stories:
        sha.update(line.encode() + b"\n")
    for e in events:
        sha.update(
            orjson.dumps(
                [
                    e.timestamp - START_MS,
                    e.service,
                    e.event_type,
                    e.job_id,
                    e.worker_id,
                    e.machine_id,
                    e.user_id,
                    e.level,
                    dict(e.data),
                ],
                option=orjson.OPT_SORT_KEYS,
            )
            + b"\n"
        )
    return len(events), sha.hexdigest()


@pytest.mark.parametrize(("seed", "scenario", "faults", "seconds"), list(GOLDEN))
def test_the_same_seed_gives_the_events_it_always_gave(
    redis_url: str, seed: int, scenario: str | None, faults: bool, seconds: int
) -> None:
    sim = run_sim(
        redis_url,
        seconds,
        seed=seed,
        scenario=scenario,
        faults=FaultRates() if faults else FaultRates.none(),
    )
    found = digest(redis_url, story_lines(sim))
    assert found == GOLDEN[seed, scenario, faults, seconds]
    with redis.Redis.from_url(redis_url) as client:
        assert client.xlen("emp:events") == sim.events


def test_a_long_run_records_what_it_always_recorded(redis_url: str) -> None:
    # Seven minutes: past the stream's MAXLEN and into the mixed scenario's second cycle,
    # so the record (service, type, job, data) is what is pinned.
    sim = run_sim(redis_url, 420, seed=3, scenario="mixed", faults=FaultRates())
    sha = hashlib.sha256()
    for line in story_lines(sim):
        sha.update(line.encode() + b"\n")
    for record in sim.record or []:
        sha.update(orjson.dumps(record, option=orjson.OPT_SORT_KEYS) + b"\n")
    assert (len(sim.record or []), sha.hexdigest()) == (
        16975,
        "daf744e3b7f7b326ba4fecdbc0c08aba3ad88961d02e599ab48e00b5d0e1bc74",
    )
