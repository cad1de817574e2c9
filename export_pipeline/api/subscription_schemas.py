"""What the subscription routes answer: a subscription (with its schedule and destinations), a delivery with
one outcome per destination. Built from the records' `to_json` (subscriptions/records.py, views.py)."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from export_pipeline.subscriptions.records import DeliveryState


class _Exact(BaseModel):
    # A key added to a record's to_json alone fails the tests instead of vanishing from the answer.
    model_config = ConfigDict(extra="forbid")


class _DestinationBase(_Exact):
    id: str
    enabled: bool
    disabled_reason: str | None


class EmailDestination(_DestinationBase):
    kind: Literal["email"]
    email: str


class SlackDestination(_DestinationBase):
    kind: Literal["slack"]
    workspace: str
    channel: str


Destination = Annotated[EmailDestination | SlackDestination, Field(discriminator="kind")]


class ScheduleOut(_Exact):
    frequency: Literal["daily", "weekly", "monthly"]
    interval: int
    weekdays: list[str] | None
    day_of_month: int | None
    hour: int
    minute: int
    timezone: str
    start: str | None = Field(description="ISO 8601 in the schedule's time zone")
    until: str | None


class SubscriptionOut(_Exact):
    id: str
    project_id: int
    resource: Literal["insight", "dashboard"]
    target_id: str
    title: str
    message: str | None
    schedule: ScheduleOut
    rrule: str = Field(description="The schedule as an RFC 5545 recurrence rule")
    description: str = Field(description="The schedule in words")
    next_delivery_at: str | None
    destinations: list[Destination]
    created_by: str
    enabled: bool
    disabled_reason: str | None
    created_at: str
    updated_at: str


class SubscriptionList(_Exact):
    data: list[SubscriptionOut]


class RevokedLinks(SubscriptionOut):
    unsubscribe_version: int = Field(description="Links carrying an older version no longer work")


class Outcome(_Exact):
    destination_id: str
    destination: Destination | None = Field(description="null once the destination was removed")
    state: Literal["succeeded", "failed"]
    detail: str | None
    error: str | None
    attempts: int


class DeliveryOut(_Exact):
    id: str
    subscription_id: str
    scheduled_for: str
    state: DeliveryState
    run_id: str | None
    error: str | None = Field(description="Why it failed, or why the slot was skipped")
    created_at: str
    finished_at: str | None
    destinations: list[Outcome]


class DeliveryList(_Exact):
    data: list[DeliveryOut]
