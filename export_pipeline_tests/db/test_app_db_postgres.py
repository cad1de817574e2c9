"""The app database's stores on SQLite and on a real PostgreSQL server (`app_engine` runs each test on both):
export requests and their claim, subscription planning and the delivery claim, members and roles, access
tokens; and the exactly-once races, with threads released together by a barrier.

The races run RACE_ROUNDS times per backend (3 in `make test`); prove them with
`RACE_ROUNDS=100 pytest -k race export_pipeline_tests/db/test_app_db_postgres.py`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from export_pipeline.accounts.roles import (
    MemberTable,
    Role,
    access_level,
    add_member,
    list_members,
    remove_member,
    require_role,
)
from export_pipeline.accounts.tokens import authenticate, create_token, list_tokens, revoke_token
from export_pipeline.db import access_refusals, access_tokens, export_requests
from export_pipeline.db import subscriptions as subscriptions_table
from export_pipeline.engine.compression import Compression
from export_pipeline.engine.formats import Format
from export_pipeline.engine.spec import ExportSpec
from export_pipeline.errors import AccessDenied, ExportConflict, NotFound
from export_pipeline.exports.requests import ExportState
from export_pipeline.exports.store import ExportStore
from export_pipeline.subscriptions.records import DeliveryBusy, DeliveryState, delivery_id
from export_pipeline.subscriptions.store import SubscriptionStore

RACE_ROUNDS = int(os.environ.get("RACE_ROUNDS", "3"))
RACERS = 8
PROJECT = 4242
SPEC = ExportSpec(project_id=PROJECT, requested_by="ana", format=Format.CSV, compression=Compression.GZIP,
                  date_from=datetime(2026, 3, 1, tzinfo=UTC), date_to=datetime(2026, 3, 4, tzinfo=UTC),
                  events=("alpha", "beta"))
WEEKLY = {"frequency": "weekly", "weekdays": ["MO"], "hour": 9, "timezone": "Europe/Berlin", "start": "2026-11-01T00:00"}
# Created Sunday 2026-11-15; at Monday 2026-11-16 08:05Z the 09:00 Berlin slot (08:00Z) is due.
CREATED = datetime(2026, 11, 15, 12, tzinfo=UTC)
TICK = datetime(2026, 11, 16, 8, 5, tzinfo=UTC)
SLOT = datetime(2026, 11, 16, 8, tzinfo=UTC)
LATER = datetime(2026, 11, 23, 8, 0, 30, tzinfo=UTC)


def never(_run_id: str) -> bool:
    return False


def always(_run_id: str) -> bool:
    return True


def race(count: int, attempt: Callable[[int], object]) -> tuple[dict[int, object], dict[int, BaseException]]:
    """Run attempt(0..count-1) in threads released together; returns (results, errors) by racer."""
    barrier = threading.Barrier(count)
    results: dict[int, object] = {}
    errors: dict[int, BaseException] = {}

    def run(racer: int) -> None:
        barrier.wait()
        try:
            results[racer] = attempt(racer)
        except BaseException as error:  # noqa: BLE001 - every outcome is asserted by the caller
            errors[racer] = error

    threads = [threading.Thread(target=run, args=(racer,)) for racer in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a racer is stuck (a lock never released?)"
    return results, errors


def subscribe(store: SubscriptionStore, *, title: str = "Weekly", schedule: dict | None = None,
              created: datetime = CREATED):
    subscription = store.create(PROJECT, {
        "resource": "insight", "target_id": "ins1", "title": title, "schedule": schedule or WEEKLY,
        "destinations": [{"kind": "email", "email": "ana@example.com"},
                         {"kind": "slack", "workspace": "acme", "channel": "#general"}],
    }, created_by="ana")
    with store.engine.begin() as conn:
        conn.execute(subscriptions_table.update().where(subscriptions_table.c.id == subscription.id)
                     .values(created_at=created))
    return store.find(subscription.id)


# ------------------------------------------------------------------------------------------ export requests


def test_an_export_request_round_trips_and_lists_by_state(app_engine):
    store = ExportStore(app_engine)
    first = store.create(SPEC, source="api", notify_email="Ana@Example.com")
    second = store.create(SPEC, source="cli", export_id="exp_fixed_id")
    assert store.get(first.id) == first and store.get("exp_fixed_id") == second
    assert first.state is ExportState.QUEUED and first.spec == SPEC and first.as_of.tzinfo is UTC
    assert store.get("exp_missing") is None
    with pytest.raises(NotFound, match="No export request 'exp_missing'"):
        store.require("exp_missing")
    assert [r.id for r in store.in_state(ExportState.QUEUED)] == [first.id, "exp_fixed_id"]
    assert [r.id for r in store.in_state(ExportState.QUEUED, limit=1)] == [first.id]
    assert store.in_state(ExportState.RUNNING) == []


def test_an_export_is_claimed_written_and_finished_by_its_run_only(app_engine):
    store = ExportStore(app_engine)
    request = store.create(SPEC, source="api")
    claimed = store.claim(request.id, "run-a", always)
    assert (claimed.state, claimed.run_id) == (ExportState.RUNNING, "run-a")
    assert store.get(request.id) == claimed
    with pytest.raises(ExportConflict, match="already being written by run run-a"):
        store.claim(request.id, "run-b", always)
    store.record_progress(request.id, "run-a", rows=10, bytes_written=100)
    with pytest.raises(ExportConflict, match="no longer owned by run run-b"):
        store.record_progress(request.id, "run-b", rows=1, bytes_written=1)
    finished = datetime(2026, 3, 5, tzinfo=UTC)
    store.succeed(request.id, "run-a", rows=20, bytes_written=300, files=2, manifest_key="k/manifest.json",
                  finished_at=finished, expires_at=finished + timedelta(days=7))
    done = store.get(request.id)
    assert (done.state, done.row_count, done.byte_count, done.file_count, done.manifest_key) == (
        ExportState.SUCCEEDED, 20, 300, 2, "k/manifest.json")
    assert (done.finished_at, done.expires_at) == (finished, finished + timedelta(days=7))
    # A succeeded export is reported, not written again; its run can no longer change it.
    assert store.claim(request.id, "run-c", never) == done
    with pytest.raises(ExportConflict, match="no longer owned by run run-a"):
        store.record_progress(request.id, "run-a", rows=1, bytes_written=1)
    assert [r.id for r in store.expired_before(finished + timedelta(days=7))] == [request.id]
    assert store.expired_before(finished + timedelta(days=6)) == []


def test_a_failed_or_abandoned_export_is_taken_over_and_the_old_run_writes_nothing(app_engine):
    store = ExportStore(app_engine)
    request = store.create(SPEC, source="api")
    store.claim(request.id, "run-a", never)
    store.fail(request.id, "run-b", code="boom", message="not the owner", expires_at=LATER)  # guarded: no-op
    assert store.get(request.id).state is ExportState.RUNNING
    store.fail(request.id, "run-a", code="boom", message="ClickHouse went away", expires_at=LATER)
    failed = store.get(request.id)
    assert (failed.state, failed.error_code, failed.error, failed.expires_at) == (
        ExportState.FAILED, "boom", "ClickHouse went away", LATER)
    store.claim(request.id, "run-b", always)  # a retry of a failed export
    retried = store.get(request.id)
    assert (retried.state, retried.run_id, retried.error_code, retried.error, retried.finished_at) == (
        ExportState.RUNNING, "run-b", None, None, None)
    taken = store.claim(request.id, "run-c", never)  # run-b died
    assert (taken.state, taken.run_id) == (ExportState.RUNNING, "run-c")
    with pytest.raises(ExportConflict, match="no longer owned by run run-b"):
        store.succeed(request.id, "run-b", rows=1, bytes_written=1, files=1, manifest_key="x",
                      finished_at=LATER, expires_at=LATER)
    assert store.get(request.id).run_id == "run-c"


def test_a_canceled_export_is_never_claimed_and_cancel_leaves_finished_ones(app_engine):
    store = ExportStore(app_engine)
    queued = store.create(SPEC, source="api")
    store.cancel(queued.id)
    canceled = store.get(queued.id)
    assert (canceled.state, canceled.error_code, canceled.error) == (
        ExportState.CANCELED, "canceled", "Canceled by request.")
    with pytest.raises(ExportConflict, match=f"Export {queued.id} is canceled"):
        store.claim(queued.id, "run-a", never)
    running = store.create(SPEC, source="api")
    store.claim(running.id, "run-a", never)
    store.cancel(running.id)
    with pytest.raises(ExportConflict, match="no longer owned by run run-a"):
        store.record_progress(running.id, "run-a", rows=1, bytes_written=1)
    succeeded = store.create(SPEC, source="api")
    store.claim(succeeded.id, "run-s", never)
    store.succeed(succeeded.id, "run-s", rows=1, bytes_written=1, files=1, manifest_key="m",
                  finished_at=LATER, expires_at=LATER)
    store.cancel(succeeded.id)
    assert store.get(succeeded.id).state is ExportState.SUCCEEDED
    assert [r.id for r in store.in_state(ExportState.CANCELED)] == [queued.id, running.id]


# --------------------------------------------------------------------------------------------- subscriptions


def test_a_due_slot_is_planned_once_and_missed_slots_are_skipped(app_engine):
    store = SubscriptionStore(app_engine)
    weekly = subscribe(store)
    daily = subscribe(store, title="Daily", created=datetime(2026, 11, 13, 12, tzinfo=UTC),
                      schedule={"frequency": "daily", "hour": 7, "timezone": "UTC", "start": "2026-11-01T00:00"})
    assert [(d.label, d.enabled) for d in weekly.destinations] == [("ana@example.com", True),
                                                                   ("slack acme #general", True)]
    queued, skipped = store.plan(TICK)
    assert sorted(d.id for d in queued) == sorted([delivery_id(weekly.id, SLOT),
                                                   delivery_id(daily.id, datetime(2026, 11, 16, 7, tzinfo=UTC))])
    assert [d.id for d in skipped] == [delivery_id(daily.id, datetime(2026, 11, 14, 7, tzinfo=UTC)),
                                       delivery_id(daily.id, datetime(2026, 11, 15, 7, tzinfo=UTC))]
    assert store.plan(TICK) == ([], [])  # a retried tick
    assert store.find(weekly.id).last_slot == SLOT
    planned = store.delivery(delivery_id(weekly.id, SLOT))
    assert (planned.state, planned.scheduled_for, planned.run_id, planned.finished_at) == (
        DeliveryState.QUEUED, SLOT, None, None)
    assert [d.id for d in store.queued()] == [d.id for d in sorted(queued, key=lambda d: d.scheduled_for)]
    assert store.request_delivery(weekly, SLOT) == planned  # an operator's re-send finds the same delivery


def test_a_delivery_is_claimed_by_one_live_run_and_a_dead_ones_is_failed(app_engine):
    store = SubscriptionStore(app_engine)
    subscription = subscribe(store)
    store.plan(TICK)
    slot = delivery_id(subscription.id, SLOT)
    store.start(slot, "run-a", run_is_active=always)
    with pytest.raises(DeliveryBusy, match=f"Delivery {slot} is being delivered by run run-a"):
        store.start(slot, "run-b", run_is_active=always)
    email = subscription.destinations[0]
    store.record_outcome(slot, email.id, ok=True, detail="sendgrid", error=None, attempts=1)
    assert {k: (o.ok, o.detail, o.attempts) for k, o in store.outcomes(slot).items()} == {email.id: (True, "sendgrid", 1)}
    assert store.fail_stale(datetime.now(UTC), stale_after=timedelta(hours=1), run_finished=never) == []
    assert store.fail_stale(datetime.now(UTC), stale_after=timedelta(hours=1),
                            run_finished=lambda run: run == "run-a") == [slot]
    failed = store.delivery(slot)
    assert failed.state is DeliveryState.FAILED and "its run run-a ended" in failed.error
    store.start(slot, "run-c", run_is_active=always)  # a failed delivery is re-run
    store.set_state(slot, DeliveryState.SUCCEEDED)
    done = store.delivery(slot)
    assert (done.state, done.run_id, done.error) == (DeliveryState.SUCCEEDED, "run-c", None)
    assert done.finished_at is not None


# ------------------------------------------------------------------------------------- members and tokens


def test_members_roles_and_refusals(app_engine):
    add_member(app_engine, PROJECT, "ana", Role.DEVELOPER)
    add_member(app_engine, PROJECT, "bo", Role.MAINTAINER)
    add_member(app_engine, PROJECT, " ana ", Role.OWNER)  # a role change, not a second member
    assert list_members(app_engine, PROJECT) == [("ana", Role.OWNER), ("bo", Role.MAINTAINER)]
    assert access_level(app_engine, PROJECT, "bo") is Role.MAINTAINER
    assert access_level(app_engine, PROJECT + 1, "bo") is None
    roles = MemberTable(app_engine)
    assert require_role(roles, app_engine, PROJECT, "bo", action="export") is Role.MAINTAINER
    remove_member(app_engine, PROJECT, "bo")
    with pytest.raises(NotFound, match="'bo' is not a member of project 4242"):
        remove_member(app_engine, PROJECT, "bo")
    with pytest.raises(AccessDenied, match="'bo' is not a member of project 4242; export needs Maintainer"):
        require_role(roles, app_engine, PROJECT, "bo", action="export", export_id="exp_1")
    with app_engine.connect() as conn:
        refusals = conn.execute(sa.select(access_refusals.c.user_name, access_refusals.c.action,
                                          access_refusals.c.access_level, access_refusals.c.required_level,
                                          access_refusals.c.export_id)).all()
    assert [tuple(r) for r in refusals] == [("bo", "export", None, 40, "exp_1")]


def test_access_tokens_authenticate_until_revoked_or_expired(app_engine):
    token, info = create_token(app_engine, "ana", name="laptop", expires_in_days=30)
    other, other_info = create_token(app_engine, "ana", name="ci", expires_in_days=None)
    assert authenticate(app_engine, token) == "ana" and authenticate(app_engine, other) == "ana"
    assert authenticate(app_engine, token + "x") is None and authenticate(app_engine, "not-a-token") is None
    assert [(t.id, t.name, t.expires_at) for t in list_tokens(app_engine, "ana")] == [
        (info.id, "laptop", info.expires_at), (other_info.id, "ci", None)]
    with app_engine.connect() as conn:
        used = conn.execute(sa.select(access_tokens.c.last_used_at).where(access_tokens.c.id == info.id)).scalar_one()
    assert used is not None
    revoke_token(app_engine, info.id)
    assert authenticate(app_engine, token) is None
    with pytest.raises(NotFound, match=f"No active token '{info.id}'"):
        revoke_token(app_engine, info.id)
    with app_engine.begin() as conn:
        conn.execute(access_tokens.update().where(access_tokens.c.id == other_info.id)
                     .values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert authenticate(app_engine, other) is None


# ------------------------------------------------------------------------------------------------- races


@pytest.mark.parametrize("round_", range(RACE_ROUNDS))
def test_race_for_an_export_claim_has_exactly_one_winner(app_engine, round_):
    store = ExportStore(app_engine)
    request = store.create(SPEC, source="api")
    results, errors = race(RACERS, lambda racer: store.claim(request.id, f"run-{racer}", always))
    assert len(results) == 1, f"winners: {sorted(results)}"
    (winner,) = results
    assert sorted(errors) == sorted(set(range(RACERS)) - {winner})
    assert all(isinstance(error, ExportConflict) for error in errors.values()), errors
    stored = store.get(request.id)
    assert (stored.state, stored.run_id) == (ExportState.RUNNING, f"run-{winner}")


@pytest.mark.parametrize("round_", range(RACE_ROUNDS))
def test_race_to_take_over_an_abandoned_export_has_exactly_one_winner(app_engine, round_):
    store = ExportStore(app_engine)
    request = store.create(SPEC, source="api")
    store.claim(request.id, "run-dead", never)
    # Every racer sees run-dead as gone, and only run-dead: each sees the others as alive.
    results, errors = race(RACERS, lambda racer: store.claim(request.id, f"run-{racer}",
                                                             lambda run: run != "run-dead"))
    assert len(results) == 1, f"winners: {sorted(results)}"
    assert all(isinstance(error, ExportConflict) for error in errors.values()), errors
    (winner,) = results
    with app_engine.connect() as conn:
        run_id = conn.execute(sa.select(export_requests.c.run_id)
                              .where(export_requests.c.id == request.id)).scalar_one()
    assert run_id == f"run-{winner}"


@pytest.mark.parametrize("round_", range(RACE_ROUNDS))
def test_race_for_a_subscription_delivery_has_exactly_one_winner(app_engine, round_):
    store = SubscriptionStore(app_engine)
    subscription = subscribe(store)
    store.plan(TICK)
    slot = delivery_id(subscription.id, SLOT)
    results, errors = race(RACERS, lambda racer: store.start(slot, f"run-{racer}", run_is_active=always))
    assert len(results) == 1, f"winners: {sorted(results)}"
    assert all(isinstance(error, DeliveryBusy) for error in errors.values()), errors
    (winner,) = results
    claimed = store.delivery(slot)
    assert (claimed.state, claimed.run_id) == (DeliveryState.RENDERING, f"run-{winner}")


@pytest.mark.parametrize("round_", range(RACE_ROUNDS))
def test_race_of_schedulers_plans_each_due_slot_once(app_engine, round_):
    store = SubscriptionStore(app_engine)
    subscriptions = [subscribe(store, title=f"Weekly {i}") for i in range(3)]
    results, errors = race(RACERS, lambda racer: store.plan(TICK))
    assert errors == {}
    queued = [d.id for queued, _ in results.values() for d in queued]
    assert sorted(queued) == sorted(delivery_id(s.id, SLOT) for s in subscriptions)
    assert [d.id for queued_, skipped in results.values() for d in skipped] == []
    assert sorted(d.id for d in store.queued()) == sorted(queued)


@pytest.mark.parametrize("round_", range(RACE_ROUNDS))
def test_race_of_resends_of_one_slot_creates_one_delivery(app_engine, round_):
    store = SubscriptionStore(app_engine)
    subscription = subscribe(store)
    minute = datetime(2026, 11, 17, 10, 30, tzinfo=UTC)  # `subscriptions send-now` by several operators
    results, errors = race(RACERS, lambda racer: store.request_delivery(subscription, minute))
    assert errors == {}
    assert {delivery.id for delivery in results.values()} == {delivery_id(subscription.id, minute)}
    assert [d.id for d in store.deliveries(subscription.id)] == [delivery_id(subscription.id, minute)]
