"""Subscriptions, their destinations, deliveries and outcomes as values: what the API and the CLI accept
(`SubscriptionIn`, `SubscriptionPatch`, `DestinationIn`, checked field by field) and what the store returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic import ValidationError as PydanticValidationError

from export_pipeline.accounts.emails import is_email
from export_pipeline.clock import as_utc, iso_utc, now_utc
from export_pipeline.errors import ExportPipelineError, invalid_fields
from export_pipeline.subscriptions.schedule import Schedule, describe, next_slot, schedule_from_rrule

MAX_DESTINATIONS = 100


class DeliveryBusy(ExportPipelineError):
    code = "delivery_busy"


class DeliveryState(StrEnum):
    QUEUED = "queued"
    RENDERING = "rendering"
    DELIVERING = "delivering"
    SUCCEEDED = "succeeded"
    PARTIALLY_FAILED = "partially_failed"
    FAILED = "failed"
    SKIPPED = "skipped"


RUNNING_STATES = (DeliveryState.RENDERING, DeliveryState.DELIVERING)
FINISHED_STATES = (DeliveryState.SUCCEEDED, DeliveryState.PARTIALLY_FAILED, DeliveryState.FAILED)


class DestinationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["email", "slack"]
    email: str | None = Field(None, max_length=320)
    workspace: str | None = Field(None, min_length=1, max_length=255)
    channel: str | None = Field(None, min_length=1, max_length=255)

    @model_validator(mode="after")
    def _complete(self):
        if self.kind == "email":
            if self.workspace or self.channel:
                raise ValueError("an email destination takes only `email`")
            if not self.email or not is_email(self.email.strip()):
                raise ValueError(f"`email` must be an email address, got {self.email!r}")
            self.email = self.email.strip()
        else:
            if self.email:
                raise ValueError("a Slack destination takes `workspace` and `channel`, not `email`")
            if not self.workspace or not self.channel:
                raise ValueError("a Slack destination needs `workspace` (a key of SLACK_BOT_TOKENS) and `channel`")
        return self


class SubscriptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resource: Literal["insight", "dashboard"]
    target_id: str = Field(min_length=1, max_length=32)
    title: str = Field(min_length=1, max_length=255)
    message: str | None = Field(None, max_length=5000)
    schedule: Schedule
    destinations: list[DestinationIn] = Field(min_length=1, max_length=MAX_DESTINATIONS)
    enabled: bool = True


class SubscriptionPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(None, min_length=1, max_length=255)
    message: str | None = Field(None, max_length=5000)
    schedule: Schedule | None = None
    destinations: list[DestinationIn] | None = Field(None, min_length=1, max_length=MAX_DESTINATIONS)
    enabled: bool | None = None


def validated(model: type[BaseModel], raw: object, what: str):
    """`raw` as `model`, or InvalidRequest with one message per field."""
    try:
        return model.model_validate(raw)
    except PydanticValidationError as error:
        raise invalid_fields(error, what, default=what) from None


@dataclass(frozen=True)
class Destination:
    id: str
    kind: str
    email: str | None
    workspace: str | None
    channel: str | None
    enabled: bool
    disabled_reason: str | None = None

    @property
    def label(self) -> str:
        return self.email if self.kind == "email" else f"slack {self.workspace} {self.channel}"  # type: ignore[return-value]

    def to_json(self) -> dict:
        base = {"id": self.id, "kind": self.kind, "enabled": self.enabled, "disabled_reason": self.disabled_reason}
        if self.kind == "email":
            return {**base, "email": self.email}
        return {**base, "workspace": self.workspace, "channel": self.channel}


@dataclass(frozen=True)
class Subscription:
    id: str
    project_id: int
    resource: str
    target_id: str
    title: str
    message: str | None
    rrule: str
    created_by: str
    enabled: bool
    disabled_reason: str | None
    last_slot: datetime | None
    unsubscribe_version: int
    share_link_id: str | None
    share_token: str | None
    created_at: datetime
    updated_at: datetime
    destinations: list[Destination] = field(default_factory=list)

    def next_slot(self, after: datetime | None = None) -> datetime | None:
        return next_slot(self.rrule, max(after or now_utc(), self.last_slot or self.created_at))

    def to_json(self) -> dict:
        schedule = schedule_from_rrule(self.rrule)
        upcoming = self.next_slot() if self.enabled else None
        return {
            "id": self.id, "project_id": self.project_id, "resource": self.resource, "target_id": self.target_id,
            "title": self.title, "message": self.message,
            "schedule": schedule.model_dump(mode="json"), "rrule": self.rrule, "description": describe(schedule),
            "next_delivery_at": iso_utc(upcoming), "destinations": [d.to_json() for d in self.destinations],
            "created_by": self.created_by, "enabled": self.enabled, "disabled_reason": self.disabled_reason,
            "created_at": iso_utc(self.created_at), "updated_at": iso_utc(self.updated_at),
        }


@dataclass(frozen=True)
class Delivery:
    id: str
    subscription_id: str
    scheduled_for: datetime
    state: DeliveryState
    run_id: str | None
    error: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    def to_json(self, outcomes: list[dict] | None = None) -> dict:
        body = {"id": self.id, "subscription_id": self.subscription_id, "scheduled_for": iso_utc(self.scheduled_for),
                "state": self.state.value, "run_id": self.run_id, "error": self.error,
                "created_at": iso_utc(self.created_at), "finished_at": iso_utc(self.finished_at)}
        return body if outcomes is None else {**body, "destinations": outcomes}


@dataclass(frozen=True)
class Outcome:
    destination_id: str
    ok: bool
    detail: str | None
    error: str | None
    attempts: int


def delivery_id(subscription_id: str, slot: datetime) -> str:
    return f"{subscription_id}-{as_utc(slot):%Y%m%dT%H%MZ}"  # type: ignore[str-format]
