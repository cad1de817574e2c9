"""Trigger an export through Dagster's GraphQL API: what a host product does, with the Python client.

The partition must exist before the run is submitted (Dagster 1.13 starts a run for an unknown dynamic
partition and fails it late), so this registers it first, then submits `export_job` with the request's
parameters as run config. The run's own access check still applies: GraphQL access to Dagster does not
bypass the Maintainer rule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from export_pipeline.clock import now_utc
from export_pipeline.exports.requests import new_export_id

if TYPE_CHECKING:  # loaded by whoever builds a client (batch_exports/backfill.py); 8 MB a process need not pay
    from dagster_graphql import DagsterGraphQLClient

ADD_PARTITION = """
mutation AddExportPartition($selector: RepositorySelector!, $partitions: String!, $key: String!) {
  addDynamicPartition(repositorySelector: $selector, partitionsDefName: $partitions, partitionKey: $key) {
    __typename
    ... on PythonError { message }
    ... on UnauthorizedError { message }
  }
}
"""


def submit_export(
    client: DagsterGraphQLClient,
    *,
    project_id: int,
    requested_by: str,
    format: str = "ndjson",
    compression: str | None = None,
    date_from: str | None = None,
    date_to: str | None = None,
    events: list[str] | None = None,
    export_id: str | None = None,
    location_name: str = "export_pipeline",
    repository_name: str = "__repository__",
) -> tuple[str, str]:
    """Register the export's partition and launch its run; returns (export_id, run_id)."""
    export_id = export_id or new_export_id(now_utc())
    selector = {"repositoryLocationName": location_name, "repositoryName": repository_name}
    added = client._execute(ADD_PARTITION, {"selector": selector, "partitions": "export_requests", "key": export_id})
    outcome = added["addDynamicPartition"]
    if outcome["__typename"] not in ("AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError"):
        raise RuntimeError(f"Dagster refused to register partition {export_id}: {outcome.get('message', outcome)}")
    config = {
        "project_id": project_id,
        "requested_by": requested_by,
        "format": format.upper(),  # Dagster config enums take member names
        "events": events or [],
        **({"compression": compression.upper()} if compression else {}),
        **({"date_from": date_from} if date_from else {}),
        **({"date_to": date_to} if date_to else {}),
    }
    run_id = client.submit_job_execution(
        "export_job",
        repository_location_name=location_name,
        repository_name=repository_name,
        run_config={"ops": {"event_export": {"config": config}}},
        tags={"dagster/partition": export_id},
    )
    return export_id, run_id
