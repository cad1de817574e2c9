"""An operator's backfill of a range: plan it (empty intervals skipped at once, with one count), then hand the
intervals holding rows to Dagster as one multi-run asset backfill (`defs/graphql.py` launches it through
GraphQL `launchPartitionBackfill`), at a lower priority than live intervals (`dagster/priority` -1). Each run
replaces its interval's files, so a backfill over intervals that live runs already exported duplicates nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from export_pipeline.batch_exports.plan import backfill_intervals
from export_pipeline.batch_exports.run import BatchDeps
from export_pipeline.clock import as_utc, iso_utc, now_utc
from export_pipeline.errors import InvalidRequest

BACKFILL_PRIORITY = "-1"


class BackfillLauncher(Protocol):
    """What starts the runs of a backfill (Dagster, through `defs/graphql.py`); returns the backfill's id."""

    def launch_backfill(self, destination_id: str, partition_keys: list[str], *, title: str, description: str,
                        tags: dict[str, str]) -> str: ...


@dataclass(frozen=True)
class Backfill:
    destination_id: str
    backfill_id: str | None  # None when every interval of the range was empty
    intervals: list[str]  # the partition keys (destination|hour) handed to Dagster
    skipped: int


def parse_range(start: object, end: object) -> tuple[datetime, datetime]:
    """ISO 8601 dates or datetimes (naive: UTC), `end` exclusive; every bad field reported at once."""
    errors: dict[str, str] = {}
    parsed: dict[str, datetime] = {}
    for field, value in (("start", start), ("end", end)):
        try:
            moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
            parsed[field] = as_utc(moment)
        except ValueError:
            errors[field] = f"must be an ISO 8601 date or datetime, got {value!r}"
    if not errors and parsed["start"] >= parsed["end"]:
        errors["end"] = "must be after start"
    if errors:
        raise InvalidRequest("Invalid backfill range: " + "; ".join(f"{k}: {v}" for k, v in errors.items()) + ".",
                             details=errors)
    return parsed["start"], parsed["end"]


def launch_backfill(launcher: BackfillLauncher, deps: BatchDeps, destination_id: str, start: datetime,
                    end: datetime, *, requested_by: str) -> Backfill:
    destination = deps.destinations.require(destination_id)
    intervals, skipped = backfill_intervals(destination, start, end, deps, now_utc())
    keys = [f"{destination.id}|{interval.partition_key}" for interval in intervals]
    if not keys:
        return Backfill(destination.id, None, [], skipped)
    backfill_id = launcher.launch_backfill(
        destination.id, keys,
        title=f"Backfill {destination.id} {iso_utc(start)} to {iso_utc(end)}",
        description=f"Requested by {requested_by}: {len(keys)} interval(s), {skipped} empty skipped.",
        tags={"dagster/priority": BACKFILL_PRIORITY, "export-pipeline/batch-export": destination.id,
              "export-pipeline/requested-by": requested_by},
    )
    return Backfill(destination.id, backfill_id, keys, skipped)
