"""A batch export destination: what is copied (a model of one project), where to, in which files, how often.

Credentials are given by reference: `credentials_ref` names an environment variable (a Kubernetes or Docker
secret mounted as one) holding `{"aws_access_key_id": …, "aws_secret_access_key": …}`. The app database and
every API answer hold only that name. What a new destination may hold is checked in `validation.py`; where its
files go, by kind of URL, in `targets.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from export_pipeline.batch_exports.intervals import Interval, IntervalUnit
from export_pipeline.clock import as_utc
from export_pipeline.engine.compression import Compression
from export_pipeline.engine.formats import Format
from export_pipeline.errors import InvalidRequest


class RunState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    SKIPPED = "skipped"  # the interval had no rows and never had files
    FAILED = "failed"


@dataclass(frozen=True)
class Destination:
    id: str
    project_id: int
    name: str
    model: str
    url: str
    endpoint_url: str | None
    credentials_ref: str | None
    key_template: str
    format: Format
    compression: Compression
    file_size_bytes: int
    split_by_event: bool
    interval: IntervalUnit
    timezone: str
    start_at: datetime
    settle_seconds: int
    max_failures: int
    paused: bool
    paused_reason: str | None
    consecutive_failures: int
    created_by: str
    notify_email: str | None
    slack_workspace: str | None
    slack_channel: str | None
    created_at: datetime

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def interval_at(self, start: datetime) -> Interval:
        """The interval starting at `start`; refuses a moment that is not one of this destination's starts."""
        interval = Interval.containing(self.interval, as_utc(start), self.zone)
        if interval.start != as_utc(start) or interval.start < self.start_at:
            raise InvalidRequest(
                f"{start.isoformat()} is not the start of an interval of batch export {self.id} "
                f"({self.interval.value} intervals in {self.timezone} from {self.start_at.isoformat()}).",
                hint="Pick an interval start, e.g. from `batch-exports runs`.",
            )
        return interval

    def closed_by(self, interval: Interval, now: datetime) -> bool:
        """An interval is exported only once it has ended and late writes have had the settle delay."""
        return interval.end + timedelta(seconds=self.settle_seconds) <= now

    def prefix_for(self, interval: Interval) -> str:
        """The folder of an interval's files and manifest: the rendered key template, then the interval, so
        that intervals never share a folder whatever the template."""
        local = interval.start.astimezone(self.zone)
        rendered = self.key_template.format(
            project_id=self.project_id, model=self.model, year=f"{local.year:04d}", month=f"{local.month:02d}",
            day=f"{local.day:02d}", hour=f"{local.hour:02d}", data_interval_start=interval.start_label,
            data_interval_end=interval.end_label,
        )
        return f"{rendered}/{interval.label}"
