"""Subscriptions, their destinations and deliveries, in the app database.

A delivery is one scheduled slot of one subscription; its id (`<subscription>-<slot as 20261123T0800Z>`) is also
its Dagster partition key and run key, so a slot can be planned, requested and run any number of times and is
still one delivery. States: queued → rendering → delivering → succeeded | partially_failed | failed, or skipped
(a slot missed while the scheduler was down, when a later one was due too).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from export_pipeline.clock import as_utc, iso_utc, now_utc
from export_pipeline.db import (
    delivery_outcomes,
    subscription_deliveries,
    subscription_destinations,
    subscriptions,
)
from export_pipeline.errors import NotFound
from export_pipeline.subscriptions.records import (
    FINISHED_STATES,
    RUNNING_STATES,
    Delivery,
    DeliveryBusy,
    DeliveryState,
    Destination,
    DestinationIn,
    Outcome,
    Subscription,
    SubscriptionIn,
    SubscriptionPatch,
    delivery_id,
    validated,
)
from export_pipeline.subscriptions.schedule import due_slots, to_rrule


class SubscriptionStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    # --- subscriptions --------------------------------------------------------------------------------

    def create(self, project_id: int, raw: SubscriptionIn | object, *, created_by: str) -> Subscription:
        """`raw`: a validated SubscriptionIn, or the fields to validate (InvalidRequest names each bad one)."""
        body = raw if isinstance(raw, SubscriptionIn) else validated(SubscriptionIn, raw, "subscription")
        rrule = to_rrule(body.schedule)
        now = now_utc()
        subscription_id = secrets.token_hex(8)
        with self.engine.begin() as conn:
            conn.execute(subscriptions.insert().values(
                id=subscription_id, project_id=project_id, resource=body.resource, target_id=body.target_id,
                title=body.title.strip(), message=body.message, rrule=rrule, created_by=created_by,
                enabled=body.enabled, unsubscribe_version=1, created_at=now, updated_at=now,
            ))
            self._write_destinations(conn, subscription_id, body.destinations)
        return self.get(project_id, subscription_id)

    def get(self, project_id: int, subscription_id: str) -> Subscription:
        found = self.find(subscription_id)
        if found is None or found.project_id != project_id:
            raise NotFound(f"Subscription {subscription_id!r} not found in project {project_id}.")
        return found

    def find(self, subscription_id: str) -> Subscription | None:
        with self.engine.connect() as conn:
            row = conn.execute(subscriptions.select().where(subscriptions.c.id == subscription_id)).first()
            return None if row is None else _subscription(row, self._destinations(conn, [row.id])[row.id])

    def list(self, project_id: int) -> list[Subscription]:
        return self._select(subscriptions.c.project_id == project_id)

    def _select(self, *where) -> list[Subscription]:
        with self.engine.connect() as conn:
            rows = conn.execute(subscriptions.select().where(*where)
                                .order_by(subscriptions.c.created_at, subscriptions.c.id)).all()
            destinations = self._destinations(conn, [row.id for row in rows])
        return [_subscription(row, destinations[row.id]) for row in rows]

    def update(self, project_id: int, subscription_id: str, raw: SubscriptionPatch | object) -> Subscription:
        patch = raw if isinstance(raw, SubscriptionPatch) else validated(SubscriptionPatch, raw, "subscription")
        current = self.get(project_id, subscription_id)
        values: dict = {"updated_at": now_utc()}
        if patch.title is not None:
            values["title"] = patch.title.strip()
        if "message" in patch.model_fields_set:
            values["message"] = patch.message
        if patch.schedule is not None:
            values["rrule"] = to_rrule(patch.schedule)
            # A new schedule starts now: slots of the old one that were missed are not sent late.
            values["last_slot"] = now_utc()
        if patch.enabled is not None:
            values["enabled"] = patch.enabled
            if patch.enabled:
                values["disabled_reason"] = None
                if not current.enabled:
                    values["last_slot"] = now_utc()  # re-enabled: no catch-up of the disabled period
        with self.engine.begin() as conn:
            conn.execute(subscriptions.update().where(subscriptions.c.id == subscription_id).values(**values))
            if patch.destinations is not None:
                conn.execute(subscription_destinations.delete().where(
                    subscription_destinations.c.subscription_id == subscription_id))
                self._write_destinations(conn, subscription_id, patch.destinations)
        return self.get(project_id, subscription_id)

    def delete(self, project_id: int, subscription_id: str) -> None:
        self.get(project_id, subscription_id)
        with self.engine.begin() as conn:
            conn.execute(subscription_destinations.delete().where(
                subscription_destinations.c.subscription_id == subscription_id))
            conn.execute(subscriptions.delete().where(subscriptions.c.id == subscription_id))

    def set_share_link(self, subscription_id: str, link_id: str, token: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(subscriptions.update().where(subscriptions.c.id == subscription_id)
                         .values(share_link_id=link_id, share_token=token))

    def revoke_unsubscribe_links(self, project_id: int, subscription_id: str) -> Subscription:
        self.get(project_id, subscription_id)
        with self.engine.begin() as conn:
            conn.execute(subscriptions.update().where(subscriptions.c.id == subscription_id).values(
                unsubscribe_version=subscriptions.c.unsubscribe_version + 1, updated_at=now_utc()))
        return self.get(project_id, subscription_id)

    def unsubscribe(self, subscription_id: str, email: str) -> tuple[Subscription, bool]:
        """Disable every email destination of `email` (any case). Returns (the subscription, whether it is
        now disabled because no destination is left)."""
        now = now_utc()
        with self.engine.begin() as conn:
            conn.execute(subscription_destinations.update().where(
                subscription_destinations.c.subscription_id == subscription_id,
                subscription_destinations.c.kind == "email",
                sa.func.lower(subscription_destinations.c.email) == email.strip().lower(),
                subscription_destinations.c.enabled.is_(True),
            ).values(enabled=False, disabled_reason="unsubscribed by the recipient", disabled_at=now))
            left = conn.execute(sa.select(sa.func.count()).select_from(subscription_destinations).where(
                subscription_destinations.c.subscription_id == subscription_id,
                subscription_destinations.c.enabled.is_(True))).scalar_one()
            emptied = left == 0
            if emptied:
                conn.execute(subscriptions.update().where(
                    subscriptions.c.id == subscription_id, subscriptions.c.enabled.is_(True),
                ).values(enabled=False, updated_at=now,
                         disabled_reason="Every recipient unsubscribed; add destinations and enable it to resume."))
        found = self.find(subscription_id)
        assert found is not None
        return found, emptied

    def disable_destination(self, destination_id: str, reason: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(subscription_destinations.update().where(subscription_destinations.c.id == destination_id)
                         .values(enabled=False, disabled_reason=reason, disabled_at=now_utc()))

    @staticmethod
    def _write_destinations(conn: sa.Connection, subscription_id: str, destinations: list[DestinationIn]) -> None:
        seen: set[tuple] = set()
        rows = []
        for destination in destinations:
            key = (destination.kind, (destination.email or "").lower(), destination.workspace,
                   (destination.channel or "").lstrip("#"))
            if key in seen:
                continue  # the same address or channel twice gets one report
            seen.add(key)
            rows.append({"id": secrets.token_hex(8), "subscription_id": subscription_id, "kind": destination.kind,
                         "email": destination.email, "workspace": destination.workspace,
                         "channel": destination.channel, "enabled": True})
        conn.execute(subscription_destinations.insert(), rows)

    @staticmethod
    def _destinations(conn: sa.Connection, subscription_ids: list[str]) -> dict[str, list[Destination]]:
        found: dict[str, list[Destination]] = {sid: [] for sid in subscription_ids}
        if subscription_ids:
            rows = conn.execute(subscription_destinations.select().where(
                subscription_destinations.c.subscription_id.in_(subscription_ids))
                .order_by(subscription_destinations.c.kind, subscription_destinations.c.id)).all()
            for row in rows:
                found[row.subscription_id].append(Destination(row.id, row.kind, row.email, row.workspace,
                                                              row.channel, row.enabled, row.disabled_reason))
        return found

    # --- deliveries -----------------------------------------------------------------------------------

    def plan(self, now: datetime) -> tuple[list[Delivery], list[Delivery]]:
        """Create the deliveries due at `now`: per subscription, the latest due slot is queued and older due
        slots (missed while nothing ticked) are skipped. Returns (queued, skipped) created by this call;
        idempotent — a slot is planned once, whoever ticks and however often."""
        queued: list[Delivery] = []
        skipped: list[Delivery] = []
        # Only what the schedule needs: this runs at every tick.
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(subscriptions.c.id, subscriptions.c.rrule, subscriptions.c.last_slot,
                                          subscriptions.c.created_at).where(subscriptions.c.enabled.is_(True))).all()
        for row in rows:
            due = due_slots(row.rrule, last_slot=as_utc(row.last_slot), not_before=as_utc(row.created_at), now=now)  # type: ignore[arg-type]
            if due.send is None:
                continue
            with self.engine.begin() as conn:
                # Only the tick that moves last_slot creates the deliveries (another tick may race us).
                moved = conn.execute(subscriptions.update().where(
                    subscriptions.c.id == row.id,
                    subscriptions.c.last_slot.is_(None) if row.last_slot is None
                    else subscriptions.c.last_slot == row.last_slot,
                ).values(last_slot=due.send)).rowcount
                if not moved:
                    continue
                for slot in due.skipped:
                    skipped.append(self._insert_delivery(
                        conn, row.id, slot, DeliveryState.SKIPPED, now,
                        error=f"Not sent: the scheduler was not running at this time; only the latest missed "
                        f"slot ({iso_utc(due.send)}) was sent. Backfill this partition to send it anyway."))
                queued.append(self._insert_delivery(conn, row.id, due.send, DeliveryState.QUEUED, now))
        return queued, skipped

    def request_delivery(self, subscription: Subscription, slot: datetime) -> Delivery:
        """The delivery of `slot` (an operator's re-send or backfill), created queued if it does not exist."""
        existing = self.delivery(delivery_id(subscription.id, slot))
        if existing is not None:
            return existing
        try:
            with self.engine.begin() as conn:
                return self._insert_delivery(conn, subscription.id, slot, DeliveryState.QUEUED, now_utc())
        except sa.exc.IntegrityError:  # created at the same moment by another request (or the scheduler)
            return self.delivery(delivery_id(subscription.id, slot))  # type: ignore[return-value]

    @staticmethod
    def _insert_delivery(conn: sa.Connection, subscription_id: str, slot: datetime, state: DeliveryState,
                         now: datetime, *, error: str | None = None) -> Delivery:
        delivery = Delivery(delivery_id(subscription_id, slot), subscription_id, as_utc(slot), state, None, error,  # type: ignore[arg-type]
                            now, now, now if state is DeliveryState.SKIPPED else None)
        exists = conn.execute(sa.select(subscription_deliveries.c.id).where(
            subscription_deliveries.c.id == delivery.id)).first()
        if exists is None:
            conn.execute(subscription_deliveries.insert().values(
                id=delivery.id, subscription_id=subscription_id, scheduled_for=delivery.scheduled_for,
                state=state.value, error=error, created_at=now, updated_at=now, finished_at=delivery.finished_at))
        return delivery

    def delivery(self, delivery_id_: str) -> Delivery | None:
        with self.engine.connect() as conn:
            row = conn.execute(subscription_deliveries.select().where(
                subscription_deliveries.c.id == delivery_id_)).first()
        return None if row is None else _delivery(row)

    def deliveries(self, subscription_id: str, *, limit: int = 50) -> list[Delivery]:
        with self.engine.connect() as conn:
            rows = conn.execute(subscription_deliveries.select().where(
                subscription_deliveries.c.subscription_id == subscription_id)
                .order_by(subscription_deliveries.c.scheduled_for.desc()).limit(limit)).all()
        return [_delivery(row) for row in rows]

    def queued(self) -> list[Delivery]:
        """Deliveries waiting for a run (their runs are requested again on every tick: run keys dedupe)."""
        with self.engine.connect() as conn:
            rows = conn.execute(subscription_deliveries.select().where(
                subscription_deliveries.c.state == DeliveryState.QUEUED.value)
                .order_by(subscription_deliveries.c.scheduled_for)).all()
        return [_delivery(row) for row in rows]

    def start(self, delivery_id_: str, run_id: str, *, run_is_active: Callable[[str], bool] = lambda _: False) -> None:
        """Claim the delivery for `run_id`; DeliveryBusy while another live run is delivering it, or when another
        run took it at the same moment."""
        now = now_utc()
        running = [s.value for s in RUNNING_STATES]
        with self.engine.begin() as conn:
            row = conn.execute(subscription_deliveries.select().where(
                subscription_deliveries.c.id == delivery_id_)).first()
            if row is None:
                return
            if row.state in running and row.run_id not in (None, run_id) and run_is_active(row.run_id):
                raise DeliveryBusy(f"Delivery {delivery_id_} is being delivered by run {row.run_id}.",
                                   hint="Wait for that run to finish; this run sends nothing, so nobody gets it twice.")
            # Only if nobody changed it since we read it: of runs starting together, exactly one takes it.
            taken = conn.execute(subscription_deliveries.update().where(
                subscription_deliveries.c.id == delivery_id_,
                subscription_deliveries.c.state == row.state,
                subscription_deliveries.c.run_id.is_(None) if row.run_id is None
                else subscription_deliveries.c.run_id == row.run_id,
            ).values(state=DeliveryState.RENDERING.value, run_id=run_id, error=None, updated_at=now,
                     finished_at=None)).rowcount
        if not taken:
            raise DeliveryBusy(f"Delivery {delivery_id_} was taken by another run at the same moment.",
                               hint="Nothing to do: that run delivers it; this run sends nothing.")

    def set_state(self, delivery_id_: str, state: DeliveryState, *, run_id: str | None = None,
                  error: str | None = None, finished: bool | None = None) -> None:
        now = now_utc()
        values: dict = {"state": state.value, "updated_at": now, "error": error}
        if run_id is not None:
            values["run_id"] = run_id
        if finished or (finished is None and state in FINISHED_STATES):
            values["finished_at"] = now
        elif finished is False:
            values["finished_at"] = None
        with self.engine.begin() as conn:
            conn.execute(subscription_deliveries.update().where(subscription_deliveries.c.id == delivery_id_)
                         .values(**values))

    def record_outcome(self, delivery_id_: str, destination_id: str, *, ok: bool, detail: str | None,
                       error: str | None, attempts: int) -> None:
        now = now_utc()
        with self.engine.begin() as conn:
            conn.execute(delivery_outcomes.delete().where(delivery_outcomes.c.delivery_id == delivery_id_,
                                                          delivery_outcomes.c.destination_id == destination_id))
            conn.execute(delivery_outcomes.insert().values(
                delivery_id=delivery_id_, destination_id=destination_id, state="succeeded" if ok else "failed",
                detail=detail, error=error, attempts=attempts, at=now))
            # The delivery is alive: this is its heartbeat too.
            conn.execute(subscription_deliveries.update().where(subscription_deliveries.c.id == delivery_id_)
                         .values(updated_at=now))

    def outcomes(self, delivery_id_: str) -> dict[str, Outcome]:
        with self.engine.connect() as conn:
            rows = conn.execute(delivery_outcomes.select().where(delivery_outcomes.c.delivery_id == delivery_id_)).all()
        return {row.destination_id: Outcome(row.destination_id, row.state == "succeeded", row.detail, row.error,
                                            row.attempts) for row in rows}

    def fail_stale(self, now: datetime, *, stale_after: timedelta,
                   run_finished: Callable[[str], bool]) -> list[str]:
        """Fail deliveries whose run died: the run is finished while the delivery is not, or it has not
        reported for `stale_after`. Returns their ids."""
        with self.engine.connect() as conn:
            rows = conn.execute(subscription_deliveries.select().where(
                subscription_deliveries.c.state.in_([s.value for s in RUNNING_STATES]))).all()
        failed = []
        for row in rows:
            delivery = _delivery(row)
            silent = now - delivery.updated_at > stale_after
            dead = delivery.run_id is not None and run_finished(delivery.run_id)
            if not (silent or dead):
                continue
            why = (f"its run {delivery.run_id} ended" if dead else
                   f"it made no progress for {int(stale_after.total_seconds() // 60)} minutes")
            with self.engine.begin() as conn:
                changed = conn.execute(subscription_deliveries.update().where(
                    subscription_deliveries.c.id == delivery.id,
                    subscription_deliveries.c.updated_at == row.updated_at,
                ).values(state=DeliveryState.FAILED.value, updated_at=now, finished_at=now,
                         error=f"The delivery was interrupted while {delivery.state.value}: {why}. Destinations "
                         "already reached are kept; re-run its partition to deliver to the others.")).rowcount
            if changed:
                failed.append(delivery.id)
        return failed


def _subscription(row: sa.Row, destinations: list[Destination]) -> Subscription:
    return Subscription(
        row.id, row.project_id, row.resource, row.target_id, row.title, row.message, row.rrule, row.created_by,
        bool(row.enabled), row.disabled_reason, as_utc(row.last_slot) if row.last_slot else None,
        row.unsubscribe_version, row.share_link_id, row.share_token, as_utc(row.created_at),  # type: ignore[arg-type]
        as_utc(row.updated_at), destinations,  # type: ignore[arg-type]
    )


def _delivery(row: sa.Row) -> Delivery:
    return Delivery(row.id, row.subscription_id, as_utc(row.scheduled_for), DeliveryState(row.state), row.run_id,  # type: ignore[arg-type]
                    row.error, as_utc(row.created_at), as_utc(row.updated_at),  # type: ignore[arg-type]
                    as_utc(row.finished_at) if row.finished_at else None)
