"""An operator's backfill of a range: plan it (empty intervals skipped at once, with one count), then hand the
intervals holding rows to Dagster as one multi-run asset backfill through GraphQL `launchPartitionBackfill`,
at a lower priority than live intervals (`dagster/priority` -1). Each run replaces its interval's files, so
a backfill over intervals that live runs already exported duplicates nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from export_pipeline.batch_exports.plan import backfill_intervals
from export_pipeline.batch_exports.run import BatchDeps
from export_pipeline.clock import as_utc, iso_utc, now_utc
from export_pipeline.errors import BackfillRefused, InvalidRequest
from export_pipeline.exports.graphql import ADD_PARTITION

if TYPE_CHECKING:
    from dagster_graphql import DagsterGraphQLClient

ASSET = "batch_export"
DESTINATIONS_PARTITIONS = "batch_export_destinations"
BACKFILL_PRIORITY = "-1"

_LAUNCH = """
mutation LaunchBackfill($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on PartitionSetNotFoundError { message }
    ... on PartitionKeysNotFoundError { message }
    ... on UnauthorizedError { message }
    ... on InvalidSubsetError { message }
  }
}
"""


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


def graphql_client(url: str) -> DagsterGraphQLClient:
    """A client of the Dagster webserver at `url` (DAGSTER_WEBSERVER_URL)."""
    # Imported here: 8 MB of memory that every process importing this module would pay.
    from dagster_graphql import DagsterGraphQLClient

    parts = urlsplit(url)
    return DagsterGraphQLClient(parts.hostname or "127.0.0.1", port_number=parts.port,
                                use_https=parts.scheme == "https")


def launch_backfill(client: DagsterGraphQLClient, deps: BatchDeps, destination_id: str, start: datetime,
                    end: datetime, *, requested_by: str, location_name: str = "export_pipeline",
                    repository_name: str = "__repository__") -> Backfill:
    destination = deps.destinations.require(destination_id)
    intervals, skipped = backfill_intervals(destination, start, end, deps, now_utc())
    keys = [f"{destination.id}|{interval.partition_key}" for interval in intervals]
    if not keys:
        return Backfill(destination.id, None, [], skipped)
    selector = {"repositoryLocationName": location_name, "repositoryName": repository_name}
    added = _execute(client, ADD_PARTITION, {"selector": selector, "partitions": DESTINATIONS_PARTITIONS,
                                             "key": destination.id})["addDynamicPartition"]
    if added["__typename"] not in ("AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError"):
        raise BackfillRefused(f"Dagster refused to register batch export {destination.id}: {added.get('message')}")
    params = {
        "assetSelection": [{"path": [ASSET]}],
        "partitionNames": keys,
        "title": f"Backfill {destination.id} {iso_utc(start)} to {iso_utc(end)}",
        "description": f"Requested by {requested_by}: {len(keys)} interval(s), {skipped} empty skipped.",
        "tags": [{"key": "dagster/priority", "value": BACKFILL_PRIORITY},
                 {"key": "export-pipeline/batch-export", "value": destination.id},
                 {"key": "export-pipeline/requested-by", "value": requested_by}],
    }
    launched = _execute(client, _LAUNCH, {"params": params})["launchPartitionBackfill"]
    if launched["__typename"] != "LaunchBackfillSuccess":
        raise BackfillRefused(f"Dagster refused the backfill of {destination.id}: "
                              f"{launched['__typename']} {launched.get('message', '')}".strip(),
                              hint="Check that the export_pipeline code location is loaded in the Dagster UI.")
    return Backfill(destination.id, launched["backfillId"], keys, skipped)


def _execute(client: DagsterGraphQLClient, query: str, variables: dict) -> dict:
    try:
        return client._execute(query, variables)
    except Exception as exc:  # the client wraps transport and GraphQL errors alike
        # Its text repeats the whole query; the cause is what follows it.
        text = str(exc.__cause__ or exc).strip()
        cause = text.splitlines()[-1] if text else type(exc).__name__
        raise BackfillRefused(f"Could not reach Dagster's GraphQL API: {cause}",
                              hint="Check that the Dagster webserver at DAGSTER_WEBSERVER_URL is running.") from None
