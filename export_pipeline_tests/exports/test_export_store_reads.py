"""ExportStore's reads for the HTTP API: a project's requests newest first by (created_at, id) keyset, ties
on created_at included, and the project's queued and running requests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from export_pipeline.db import export_requests
from export_pipeline.engine.spec import parse_spec
from export_pipeline.exports.requests import ExportState

PROJECT = 7107
OTHER_PROJECT = 7108
EARLY = datetime(2026, 2, 1, 9, tzinfo=UTC)
LATE = datetime(2026, 2, 1, 10, tzinfo=UTC)


@pytest.fixture()
def create(store) -> Iterator[Callable[[int, str, datetime, list[str]], None]]:
    """Store a queued request created at a given moment; canceled afterwards, so that no other test's sensor
    or reconciler picks it up from the shared store."""
    created: list[str] = []

    def queued(project_id: int, export_id: str, created_at: datetime, events: list[str]) -> None:
        store.create(parse_spec(project_id=project_id, requested_by="maria", events=events), source="test",
                     export_id=export_id)
        created.append(export_id)
        with store.engine.begin() as conn:
            conn.execute(sa.update(export_requests).where(export_requests.c.id == export_id)
                         .values(created_at=created_at))

    yield queued
    for export_id in created:
        store.cancel(export_id)


def test_a_projects_requests_page_newest_first_through_ties_on_created_at(store, create):
    create(PROJECT, "exp_store_a", EARLY, ["a"])
    create(PROJECT, "exp_store_b", LATE, ["b"])
    create(PROJECT, "exp_store_c", LATE, ["c"])  # same moment as b: the id decides
    create(PROJECT, "exp_store_d", LATE, ["d"])
    create(OTHER_PROJECT, "exp_store_z", LATE, ["z"])

    first = store.project_page(PROJECT, after=None, limit=2)
    assert [r.id for r in first] == ["exp_store_d", "exp_store_c"]
    assert first[1].created_at == LATE and first[1].spec.events == ("c",)
    second = store.project_page(PROJECT, after=(first[-1].created_at, first[-1].id), limit=2)
    assert [r.id for r in second] == ["exp_store_b", "exp_store_a"]
    assert store.project_page(PROJECT, after=(second[-1].created_at, second[-1].id), limit=2) == []


def test_in_flight_is_the_projects_queued_and_running_requests(store, create):
    for n, events in enumerate((["q"], ["r"], ["s"], ["x"])):
        create(OTHER_PROJECT + 1, f"exp_flight_{n}", EARLY, events)
    store.claim("exp_flight_1", "run-1", lambda _: False)
    store.mark_expired("exp_flight_2")
    store.cancel("exp_flight_3")  # terminal states only: nothing the shared store's sweeper would pick up

    flying = store.in_flight(OTHER_PROJECT + 1)
    assert sorted((r.id, r.state) for r in flying) == [
        ("exp_flight_0", ExportState.QUEUED), ("exp_flight_1", ExportState.RUNNING)]
    assert store.in_flight(OTHER_PROJECT + 2) == []
