"""Batch exports over HTTP (Maintainer+, typed answers, our error shape) and the `batch-exports` CLI."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from export_pipeline.accounts.roles import Role, add_member
from export_pipeline.accounts.tokens import create_token
from export_pipeline.api.app import create_app
from export_pipeline.cli import main
from export_pipeline.defs.graphql import DagsterGraphQL
from export_pipeline.errors import BackfillRefused
from export_pipeline_tests.fakes.exportdata import INGESTED_COLUMNS
from export_pipeline_tests.fakes.net import free_port

PROJECT = 9986
BASE = f"/api/v1/projects/{PROJECT}/batch_exports"


@pytest.fixture(scope="module")
def tokens(store) -> dict[str, str]:
    add_member(store.engine, PROJECT, "mia", Role.MAINTAINER)
    add_member(store.engine, PROJECT, "dev", Role.DEVELOPER)
    return {user: create_token(store.engine, user)[0] for user in ("mia", "dev", "stranger")}


@pytest.fixture(scope="module")
def client(settings, tokens) -> Iterator[TestClient]:
    unreachable = settings.model_copy(update={"dagster_url": f"http://127.0.0.1:{free_port()}"})
    with TestClient(create_app(unreachable)) as client:
        yield client


def as_(tokens, who: str) -> dict:
    return {"Authorization": f"Bearer {tokens[who]}"}


BODY = {"url": "s3://customer-bucket/events", "endpoint_url": "https://minio.example.com",
        "credentials_ref": "ACME_S3_CREDENTIALS", "start_at": "2026-10-01", "interval": "day",
        "timezone": "Europe/Berlin", "format": "parquet", "key_template": "{model}/{year}/{month}"}


def test_a_maintainer_creates_shows_pauses_resumes_and_deletes_a_batch_export(client, tokens):
    created = client.post(BASE, json=BODY, headers=as_(tokens, "mia"))
    assert created.status_code == 201, created.text
    view = created.json()
    whole = dict(view)
    destination_id = view.pop("id")
    assert view.pop("created_at").startswith("20")
    assert view == {
        "project_id": PROJECT, "name": "events to s3://customer-bucket/events", "model": "events",
        "url": "s3://customer-bucket/events", "endpoint_url": "https://minio.example.com",
        "credentials_ref": "ACME_S3_CREDENTIALS", "key_template": "{model}/{year}/{month}", "format": "parquet",
        "compression": "zstd", "file_size_bytes": 268435456, "split_by_event": False, "interval": "day",
        "timezone": "Europe/Berlin", "start_at": "2026-09-30T22:00:00Z", "settle_seconds": 900, "max_failures": 3,
        "paused": False, "paused_reason": None, "consecutive_failures": 0, "created_by": "mia",
        "notify_email": None, "slack_workspace": None, "slack_channel": None,
    }
    item = f"{BASE}/{destination_id}"
    assert client.get(BASE, headers=as_(tokens, "mia")).json() == {"data": [whole]}
    paused = client.post(f"{item}/pause", headers=as_(tokens, "mia")).json()
    assert (paused["paused"], paused["paused_reason"]) == (True, "Paused by mia.")
    resumed = client.post(f"{item}/resume", headers=as_(tokens, "mia")).json()
    assert (resumed["paused"], resumed["paused_reason"]) == (False, None)
    assert client.get(f"{item}/runs", headers=as_(tokens, "mia")).json() == {"data": []}
    assert client.delete(item, headers=as_(tokens, "mia")).status_code == 204
    missing = client.get(item, headers=as_(tokens, "mia"))
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_bad_fields_are_reported_at_once_in_our_error_shape(client, tokens):
    answer = client.post(BASE, json={**BODY, "key_template": "{bucket}/x", "interval": "month",
                                     "credentials_ref": "AKIA/SECRET"}, headers=as_(tokens, "mia"))
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "invalid_request"
    assert answer.json()["error"]["details"] == {
        "credentials_ref": "must be the NAME of an environment variable holding the credentials (A-Z, 0-9, _)",
        "key_template": "unknown placeholder {bucket}; use {project_id} {model} {year} {month} {day} {hour} "
                        "{data_interval_start} {data_interval_end}",
        "interval": "must be one of hour, day, week, got 'month'",
    }


def test_below_maintainer_is_refused_and_non_members_see_nothing(client, tokens):
    refused = client.get(BASE, headers=as_(tokens, "dev"))
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "access_denied"
    assert "managing batch exports needs Maintainer (40)" in refused.json()["error"]["message"]
    assert client.get(BASE, headers=as_(tokens, "stranger")).status_code == 404


def test_a_backfill_needs_dagster_unless_every_interval_is_empty(client, tokens, clickhouse, events_table):
    created = client.post(BASE, json={"url": "/tmp/never-written", "start_at": "2026-01-01T00:00:00Z"},
                          headers=as_(tokens, "mia")).json()
    backfills = f"{BASE}/{created['id']}/backfills"
    empty = client.post(backfills, json={"start": "2026-01-01", "end": "2026-01-02"}, headers=as_(tokens, "mia"))
    assert empty.status_code == 202
    assert empty.json() == {"destination_id": created["id"], "backfill_id": None, "partitions": [],
                            "skipped_empty": 24}
    runs = client.get(f"{BASE}/{created['id']}/runs", params={"state": "skipped", "limit": 2},
                      headers=as_(tokens, "mia")).json()
    assert list(runs) == ["data"]
    assert [(r["data_interval_start"], r["state"], r["rows"]) for r in runs["data"]] == [
        ("2026-01-01T00:00:00Z", "skipped", 0), ("2026-01-01T01:00:00Z", "skipped", 0)]
    moment = datetime(2026, 1, 3, 0, 30, tzinfo=UTC)
    with clickhouse.session("test insert") as session:
        session.client.insert(events_table.table, [[PROJECT, uuid.uuid4(), "e", moment, "u", uuid.uuid4(), "{}", moment]],
                              column_names=INGESTED_COLUMNS, database=events_table.database)
    down = client.post(backfills, json={"start": "2026-01-03", "end": "2026-01-04"}, headers=as_(tokens, "mia"))
    assert down.status_code == 503 and down.json()["error"]["code"] == "backfill_refused"
    assert down.json()["error"]["hint"] == "Check that the Dagster webserver at DAGSTER_WEBSERVER_URL is running."
    assert down.json()["error"]["message"].startswith("Could not reach Dagster's GraphQL API: ")
    assert "mutation" not in down.json()["error"]["message"]
    backwards = client.post(backfills, json={"start": "2026-01-02", "end": "2026-01-01"}, headers=as_(tokens, "mia"))
    assert backwards.status_code == 422 and backwards.json()["error"]["details"] == {"end": "must be after start"}


def test_the_cli_manages_batch_exports_for_maintainers(tokens, tmp_path):
    runner = CliRunner()
    created = runner.invoke(main, ["batch-exports", "create", "--project-id", str(PROJECT), "--user", "mia",
                                   "--url", str(tmp_path), "--start-at", "2026-11-02", "--interval", "week",
                                   "--split-by-event", "--slack", "acme:#alerts"])
    assert created.exit_code == 0, created.output
    view = json.loads(created.stdout)
    assert (view["interval"], view["split_by_event"], view["slack_workspace"], view["slack_channel"]) == (
        "week", True, "acme", "#alerts")
    assert view["start_at"] == "2026-11-02T00:00:00Z"  # a Monday
    shown = runner.invoke(main, ["batch-exports", "show", "--project-id", str(PROJECT), "--user", "mia", view["id"]])
    assert json.loads(shown.stdout) == view
    refused = runner.invoke(main, ["batch-exports", "list", "--project-id", str(PROJECT), "--user", "dev"])
    assert refused.exit_code == 2 and "needs Maintainer (40)" in refused.stderr
    paused = runner.invoke(main, ["batch-exports", "pause", "--project-id", str(PROJECT), "--user", "mia", view["id"]])
    assert json.loads(paused.stdout)["paused"] is True
    runs = runner.invoke(main, ["batch-exports", "runs", "--project-id", str(PROJECT), "--user", "mia", view["id"]])
    assert json.loads(runs.stdout) == {"data": []}
    listed = runner.invoke(main, ["batch-exports", "list", "--project-id", str(PROJECT), "--user", "mia"])
    listed = json.loads(listed.stdout)
    assert list(listed) == ["data"]  # the API's list shape
    assert [d for d in listed["data"] if d["id"] == view["id"]] == [
        {**view, "paused": True, "paused_reason": "Paused by mia."}]
    deleted = runner.invoke(main, ["batch-exports", "delete", "--project-id", str(PROJECT), "--user", "mia", view["id"]])
    assert json.loads(deleted.stdout) == {"deleted": view["id"]}


def test_persons_are_a_batch_export_model_and_a_model_without_ingestion_time_is_refused(client, tokens):
    persons = client.post(BASE, json={**BODY, "model": "persons"}, headers=as_(tokens, "mia"))
    assert persons.status_code == 201 and persons.json()["model"] == "persons"
    refused = client.post(BASE, json={**BODY, "model": "groups"}, headers=as_(tokens, "mia"))
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "invalid_request"
    assert refused.json()["error"]["details"] == {
        "model": "groups has no ingestion-time column, so it cannot be cut into intervals that never overlap; "
                 "batch exports take events, persons"}
    cli = CliRunner().invoke(main, ["batch-exports", "create", "--project-id", str(PROJECT), "--user", "mia",
                                    "--url", "/tmp/never-written", "--start-at", "2026-11-02", "--model", "cohort"])
    assert cli.exit_code == 2 and "model: cohort has no ingestion-time column" in cli.stderr


def test_create_can_test_the_connection_first_and_then_stores_nothing_on_failure(client, tokens, moto_endpoint,
                                                                                 tmp_path):
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    before = client.get(BASE, headers=as_(tokens, "mia")).json()
    refused = client.post(BASE, json={**BODY, "url": f"s3://{missing}/events", "endpoint_url": moto_endpoint,
                                      "credentials_ref": None, "probe": True}, headers=as_(tokens, "mia"))
    assert refused.status_code == 503
    error = refused.json()["error"]
    assert error["code"] == "storage_error"
    assert error["message"].startswith(f"The connection test of s3://{missing}/events (us-east-1, {moto_endpoint}) "
                                       f"failed: Could not write '.export-pipeline-probe-")
    assert f"bucket '{missing}' does not exist at {moto_endpoint}." in error["message"]
    assert client.get(BASE, headers=as_(tokens, "mia")).json() == before

    created = CliRunner().invoke(main, ["batch-exports", "create", "--project-id", str(PROJECT), "--user", "mia",
                                        "--url", str(tmp_path / "archive"), "--start-at", "2026-11-02", "--probe"])
    assert created.exit_code == 0, created.output
    assert json.loads(created.stdout)["url"] == f"file://{tmp_path}/archive"
    assert list((tmp_path / "archive").iterdir()) == []  # the test object was deleted


def test_an_unreachable_dagster_is_worth_another_try():
    with pytest.raises(BackfillRefused, match="Could not reach Dagster's GraphQL API") as down:
        DagsterGraphQL(f"http://127.0.0.1:{free_port()}", timeout_seconds=5).execute("{ version }", {})
    assert down.value.retryable is True
