"""Dagster's GraphQL API, as a host product or an operator tool calls it: register a dynamic partition, launch
a partitioned run, launch a multi-run asset backfill.

One client for the three, over plain HTTP (`POST /graphql`), so no caller depends on a private method of
`dagster_graphql`. A partition is registered before its run is launched: Dagster 1.13 starts a run for an
unknown dynamic partition and fails it late. A run launched here still checks access itself: GraphQL access to
Dagster does not bypass the Maintainer rule.
"""

from __future__ import annotations

from datetime import date

import httpx

from export_pipeline.clock import now_utc
from export_pipeline.defs.export_config import moment_config
from export_pipeline.defs.names import (
    BATCH_EXPORT_ASSET,
    CODE_LOCATION,
    DESTINATIONS_PARTITIONS,
    EXPORT_JOB,
    EXPORT_OP,
    EXPORT_PARTITIONS,
    REPOSITORY,
)
from export_pipeline.errors import BackfillRefused
from export_pipeline.exports.requests import new_export_id

# Each answers its result type's name, and an error's message (every Dagster error type has one).
_ADD_PARTITION = """mutation AddPartition($selector: RepositorySelector!, $partitions: String!, $key: String!) {
  addDynamicPartition(repositorySelector: $selector, partitionsDefName: $partitions, partitionKey: $key) {
    __typename ... on Error { message } } }"""
_LAUNCH_RUN = """mutation LaunchRun($params: ExecutionParams!) { launchRun(executionParams: $params) {
    __typename ... on LaunchRunSuccess { run { runId } } ... on RunConfigValidationInvalid { errors { message } }
    ... on Error { message } } }"""
_RUN_STATUS = """query RunStatus($runId: ID!) { runOrError(runId: $runId) {
    __typename ... on Run { status } ... on Error { message } } }"""
_LAUNCH_BACKFILL = """mutation LaunchBackfill($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename ... on LaunchBackfillSuccess { backfillId } ... on Error { message } } }"""


class DagsterGraphQL:
    """The GraphQL API of the Dagster webserver at `url` (DAGSTER_WEBSERVER_URL)."""

    def __init__(self, url: str, *, timeout_seconds: float = 30.0, location: str = CODE_LOCATION,
                 repository: str = REPOSITORY):
        self.url = url.rstrip("/")
        self.timeout_seconds = timeout_seconds
        self.selector = {"repositoryLocationName": location, "repositoryName": repository}

    def execute(self, query: str, variables: dict) -> dict:
        try:
            answer = httpx.post(f"{self.url}/graphql", json={"query": query, "variables": variables},
                                timeout=self.timeout_seconds)
            answer.raise_for_status()
            body = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            down = isinstance(exc, httpx.TransportError) or (
                isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code >= 500)
            raise BackfillRefused(f"Could not reach Dagster's GraphQL API: {exc or type(exc).__name__} ({self.url})",
                                  hint="Check that the Dagster webserver at DAGSTER_WEBSERVER_URL is running.",
                                  retryable=down) from None
        if body.get("errors"):
            raise BackfillRefused(f"Dagster's GraphQL API refused the request: {body['errors'][0].get('message')}")
        return body["data"]

    def add_partition(self, partitions: str, key: str) -> None:
        added = self.execute(_ADD_PARTITION, {"selector": self.selector, "partitions": partitions,
                                              "key": key})["addDynamicPartition"]
        if added["__typename"] not in ("AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError"):
            raise BackfillRefused(f"Dagster refused to register partition {key} of {partitions}: "
                                  f"{added.get('message', added['__typename'])}")

    def launch_run(self, job: str, *, run_config: dict, tags: dict[str, str]) -> str:
        """Launch `job` and return its run id."""
        params = {"selector": {**self.selector, "jobName": job}, "runConfigData": run_config,
                  "executionMetadata": {"tags": [{"key": key, "value": value} for key, value in tags.items()]}}
        launched = self.execute(_LAUNCH_RUN, {"params": params})["launchRun"]
        if launched["__typename"] != "LaunchRunSuccess":
            problems = [error["message"] for error in launched.get("errors", ())] or [launched.get("message", "")]
            raise BackfillRefused(f"Dagster refused to launch {job}: {launched['__typename']} {'; '.join(problems)}".strip())
        return launched["run"]["runId"]

    def run_status(self, run_id: str) -> str:
        """The run's `DagsterRunStatus` name, e.g. `QUEUED`, `STARTED`, `SUCCESS`."""
        found = self.execute(_RUN_STATUS, {"runId": run_id})["runOrError"]
        if found["__typename"] != "Run":
            raise BackfillRefused(f"Dagster has no run {run_id}: {found.get('message', found['__typename'])}")
        return found["status"]

    def submit_export(self, *, project_id: int, requested_by: str, format: str = "ndjson",
                      compression: str | None = None, date_from: date | None = None, date_to: date | None = None,
                      events: list[str] | None = None, export_id: str | None = None) -> tuple[str, str]:
        """Register an export's partition and launch its run; returns (export_id, run_id). A date is a day or
        a datetime (UTC if naive), as the run config takes it (export_config.py)."""
        export_id = export_id or new_export_id(now_utc())
        self.add_partition(EXPORT_PARTITIONS, export_id)
        config = {
            "project_id": project_id,
            "requested_by": requested_by,
            "format": format,
            "events": events or [],
            **({"compression": compression} if compression else {}),
            **({"date_from": moment_config(date_from)} if date_from else {}),
            **({"date_to": moment_config(date_to)} if date_to else {}),
        }
        run_id = self.launch_run(EXPORT_JOB, run_config={"ops": {EXPORT_OP: {"config": config}}},
                                 tags={"dagster/partition": export_id})
        return export_id, run_id

    def launch_backfill(self, destination_id: str, partition_keys: list[str], *, title: str, description: str,
                        tags: dict[str, str]) -> str:
        """Register the destination's partition and launch a backfill of the batch-export asset over
        `partition_keys`; returns the backfill id."""
        self.add_partition(DESTINATIONS_PARTITIONS, destination_id)
        params = {"assetSelection": [{"path": [BATCH_EXPORT_ASSET]}], "partitionNames": partition_keys,
                  "title": title, "description": description,
                  "tags": [{"key": key, "value": value} for key, value in tags.items()]}
        launched = self.execute(_LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
        if launched["__typename"] != "LaunchBackfillSuccess":
            raise BackfillRefused(f"Dagster refused the backfill of {destination_id}: "
                                  f"{launched['__typename']} {launched.get('message', '')}".strip(),
                                  hint="Check that the export_pipeline code location is loaded in the Dagster UI.")
        return launched["backfillId"]
