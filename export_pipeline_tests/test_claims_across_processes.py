"""Exactly one winner when separate processes (API workers, the daemon, runs are processes, each with its own
engine and connection pool) race for the same export claim on Postgres.

The racers are started once (spawned: a fresh interpreter each, no state shared with the test session) and
released together by a barrier for every round. RACE_ROUNDS rounds (3 in `make test`); prove it with
`RACE_ROUNDS=100 pytest export_pipeline_tests/test_claims_across_processes.py`.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import Counter

from export_pipeline.db import get_engine
from export_pipeline.exports.requests import ExportConflict, ExportState, ExportStore
from export_pipeline.exports.spec import Compression, ExportFormat, ExportSpec

RACE_ROUNDS = int(os.environ.get("RACE_ROUNDS", "3"))
RACERS = 5


def _racer(url: str, racer: int, export_ids: list[str], barrier, results) -> None:
    """One process: for each export, wait for the others, claim it, report the outcome."""
    store = ExportStore(get_engine(url))
    for export_id in export_ids:
        barrier.wait(timeout=120)
        try:
            store.claim(export_id, f"run-{racer}", lambda _run: True)
            results.put((export_id, racer, "won"))
        except ExportConflict:
            results.put((export_id, racer, "conflict"))
        except Exception as exc:  # reported, so the assertion names it
            results.put((export_id, racer, repr(exc)))


def test_processes_racing_for_an_export_claim_have_exactly_one_winner_every_round(postgres_server):
    url = postgres_server.create_database("claims_across_processes")
    store = ExportStore(get_engine(url))
    spec = ExportSpec(project_id=4343, requested_by="ana", format=ExportFormat.CSV, compression=Compression.NONE)
    export_ids = [store.create(spec, source="api").id for _ in range(RACE_ROUNDS)]
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(RACERS), context.Queue()
    racers = [context.Process(target=_racer, args=(url, racer, export_ids, barrier, results)) for racer in range(RACERS)]
    for process in racers:
        process.start()
    outcomes = [results.get(timeout=300) for _ in range(RACERS * RACE_ROUNDS)]
    for process in racers:
        process.join(timeout=60)
        assert process.exitcode == 0

    for export_id in export_ids:
        mine = {racer: outcome for eid, racer, outcome in outcomes if eid == export_id}
        assert Counter(mine.values()) == {"won": 1, "conflict": RACERS - 1}, mine
        (winner,) = [racer for racer, outcome in mine.items() if outcome == "won"]
        stored = store.require(export_id)
        assert (stored.state, stored.run_id) == (ExportState.RUNNING, f"run-{winner}")
