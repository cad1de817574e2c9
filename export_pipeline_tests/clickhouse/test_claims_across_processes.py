"""Exactly one winner when separate processes (API workers, the daemon, runs are processes, each with its own
engine and connection pool) race for the same claim on Postgres: an export, a subscription delivery slot
(`SubscriptionStore.start`) and a batch-export interval (`RunStore.claim`).

The racers are started once per claim (spawned: a fresh interpreter each, no state shared with the test session)
and released together by a barrier for every round. RACE_ROUNDS rounds (3 in `make test`); prove it with
`RACE_ROUNDS=100 pytest export_pipeline_tests/clickhouse/test_claims_across_processes.py`.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from export_pipeline.batch_exports.destinations import RunState
from export_pipeline.batch_exports.intervals import Interval, IntervalUnit
from export_pipeline.batch_exports.records import RunStore
from export_pipeline.db import get_engine
from export_pipeline.engine.compression import Compression
from export_pipeline.engine.formats import Format
from export_pipeline.engine.spec import ExportSpec
from export_pipeline.errors import ExportConflict, IntervalBusy
from export_pipeline.exports.requests import ExportState
from export_pipeline.exports.store import ExportStore
from export_pipeline.subscriptions.records import DeliveryBusy, DeliveryState
from export_pipeline.subscriptions.store import SubscriptionStore

RACE_ROUNDS = int(os.environ.get("RACE_ROUNDS", "3"))
RACERS = 5
REFUSED = "refused"


def _claim_export(url: str, key: str, run_id: str) -> None:
    ExportStore(get_engine(url)).claim(key, run_id, lambda _run: True)


def _claim_delivery(url: str, key: str, run_id: str) -> None:
    # Every other run is alive: a loser must be refused, never take the delivery over.
    SubscriptionStore(get_engine(url)).start(key, run_id, run_is_active=lambda _run: True)


def _claim_interval(url: str, key: Interval, run_id: str) -> None:
    RunStore(get_engine(url)).claim(DESTINATION, key, run_id, lambda _run: True)


# name -> (claim, the refusal its losers get)
CLAIMS = {
    "export": (_claim_export, ExportConflict),
    "delivery": (_claim_delivery, DeliveryBusy),
    "interval": (_claim_interval, IntervalBusy),
}
DESTINATION = "race-destination"


def _racer(url: str, claim: str, racer: int, keys: list, barrier, results) -> None:
    """One process: for each key, wait for the others, claim it, report the outcome."""
    take, refusal = CLAIMS[claim]
    for round_, key in enumerate(keys):
        barrier.wait(timeout=120)
        try:
            take(url, key, f"run-{racer}")
            results.put((round_, racer, "won"))
        except refusal:
            results.put((round_, racer, REFUSED))
        except Exception as exc:  # reported, so the assertion names it
            results.put((round_, racer, repr(exc)))


def _race(url: str, claim: str, keys: list) -> list[int]:
    """Race RACERS processes for every key; asserts one winner and only refusals per round; the winners."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(RACERS), context.Queue()
    racers = [context.Process(target=_racer, args=(url, claim, racer, keys, barrier, results))
              for racer in range(RACERS)]
    for process in racers:
        process.start()
    outcomes = [results.get(timeout=300) for _ in range(RACERS * len(keys))]
    for process in racers:
        process.join(timeout=60)
        assert process.exitcode == 0
    winners = []
    for round_ in range(len(keys)):
        mine = {racer: outcome for r, racer, outcome in outcomes if r == round_}
        assert Counter(mine.values()) == {"won": 1, REFUSED: RACERS - 1}, (claim, round_, mine)
        winners += [racer for racer, outcome in mine.items() if outcome == "won"]
    return winners


def test_processes_racing_for_an_export_claim_have_exactly_one_winner_every_round(postgres_server):
    url = postgres_server.create_database("claims_across_processes")
    store = ExportStore(get_engine(url))
    spec = ExportSpec(project_id=4343, requested_by="ana", format=Format.CSV, compression=Compression.NONE)
    export_ids = [store.create(spec, source="api").id for _ in range(RACE_ROUNDS)]

    winners = _race(url, "export", export_ids)

    for export_id, winner in zip(export_ids, winners, strict=True):
        stored = store.require(export_id)
        assert (stored.state, stored.run_id) == (ExportState.RUNNING, f"run-{winner}")


def test_processes_racing_for_a_subscription_delivery_have_exactly_one_winner_every_round(postgres_server):
    url = postgres_server.create_database("delivery_claims_across_processes")
    store = SubscriptionStore(get_engine(url))
    subscription = store.create(4343, {
        "resource": "dashboard", "target_id": "1", "title": "Weekly numbers",
        "schedule": {"frequency": "weekly", "weekdays": ["MO"], "hour": 9, "timezone": "Europe/Berlin",
                     "start": "2026-11-01T00:00"},
        "destinations": [{"kind": "email", "email": "ana@example.com"}],
    }, created_by="sam")
    first = datetime(2026, 11, 16, 8, tzinfo=UTC)
    delivery_ids = [store.request_delivery(subscription, first + timedelta(weeks=week)).id
                    for week in range(RACE_ROUNDS)]

    winners = _race(url, "delivery", delivery_ids)

    for delivery_id, winner in zip(delivery_ids, winners, strict=True):
        stored = store.delivery(delivery_id)
        assert stored is not None
        assert (stored.state, stored.run_id, stored.error) == (DeliveryState.RENDERING, f"run-{winner}", None)


def test_processes_racing_for_a_batch_export_interval_have_exactly_one_winner_every_round(postgres_server):
    url = postgres_server.create_database("interval_claims_across_processes")
    store = RunStore(get_engine(url))
    first = datetime(2026, 11, 16, tzinfo=UTC)
    # No record yet: the racers also race to create it (RunStore.ensure) before claiming it.
    intervals = [Interval(IntervalUnit.HOUR, first + timedelta(hours=hour), first + timedelta(hours=hour + 1),
                          ZoneInfo("UTC")) for hour in range(RACE_ROUNDS)]

    winners = _race(url, "interval", intervals)

    for interval, winner in zip(intervals, winners, strict=True):
        stored = store.get(DESTINATION, interval.start)
        assert stored is not None
        assert (stored.state, stored.run_id, stored.attempts) == (RunState.RUNNING, f"run-{winner}", 1)
