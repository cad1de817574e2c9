"""The HTTP API describes itself: a valid OpenAPI 3.1 document where every operation has its success schema,
every error the one error shape, and a bearer scheme; and the export resource answers exactly that."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from export_pipeline.accounts.roles import Role, add_member
from export_pipeline.accounts.tokens import create_token
from export_pipeline.api.app import create_app
from export_pipeline.api.daemon import NO_DAEMON_HINT, DaemonWatch
from export_pipeline.api.responses import ErrorBody
from export_pipeline.clock import iso_utc, now_utc
from export_pipeline.db import export_requests
from export_pipeline.engine.request import ExportFields
from export_pipeline.engine.spec import parse_spec
from export_pipeline.exports.deps import build_deps
from export_pipeline.exports.run import run_export
from export_pipeline_tests.fakes.exportdata import T0, insert_events

PROJECT = 9437
ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}


@pytest.fixture(scope="module")
def api(settings, clickhouse, events_table, store) -> Iterator[dict]:
    insert_events(clickhouse, events_table, [
        [PROJECT, uuid.UUID(int=i + 1), "signed_up", T0 + timedelta(seconds=i), f"u{i}", uuid.UUID(int=99), "{}"]
        for i in range(3)])
    add_member(store.engine, PROJECT, "mona", Role.MAINTAINER)
    token = create_token(store.engine, "mona")[0]
    deps = build_deps(settings)
    done = deps.store.create(parse_spec(project_id=PROJECT, requested_by="mona", format="ndjson",
                                        compression="zstd"), source="test")
    run_export(done.id, deps, run_id="openapi-fixture", run_is_active=lambda _: False, log=logging.getLogger())
    app = create_app(settings.model_copy(update={"api_max_in_flight_exports": 1}))
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as http:
        yield {"http": http, "deps": deps, "done": deps.store.require(done.id), "app": app}


@pytest.fixture()
def document(api) -> dict:
    return api["http"].get("/openapi.json").json()


def operations(document: dict) -> Iterator[tuple[str, str, dict]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_the_document_is_valid_openapi_3_1(document):
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_every_operation_describes_its_success(document):
    for path, method, operation in operations(document):
        successes = {status: r for status, r in operation["responses"].items() if status[0] in "23"}
        assert successes, (method, path)
        for status, response in successes.items():
            content = response.get("content", {})
            if status in ("204", "302"):
                continue
            if "text/html" in content or "application/octet-stream" in content:
                continue
            schema = content["application/json"]["schema"]
            # A model (a $ref), never FastAPI's untyped `object` of a handler returning dict, nor a bare array:
            # lists are objects (`{"data": [...]}`) that can grow fields without breaking clients.
            assert list(schema) == ["$ref"], (method, path, status, schema)


def test_api_errors_have_the_one_error_shape_and_a_bearer_scheme(document):
    schemes = document["components"]["securitySchemes"]
    assert schemes == {"PersonalAccessToken": {
        "type": "http", "scheme": "bearer",
        "description": "A personal access token: `export-pipeline tokens create --user <you>`."}}
    assert "HTTPValidationError" not in document["components"]["schemas"]
    error = document["components"]["schemas"]["ErrorDetail"]
    assert sorted(error["properties"]) == ["code", "details", "hint", "message"]
    assert sorted(error["required"]) == ["code", "details", "hint", "message"]
    for path, method, operation in operations(document):
        if not path.startswith("/api/"):
            continue
        assert operation["security"] == [{"PersonalAccessToken": []}], (method, path)
        errors = {status: r for status, r in operation["responses"].items() if status[0] in "45"}
        assert {"401", "422"} <= set(errors) or path == "/api/v1/user" or "service_ping" in path, (method, path)
        for status, response in errors.items():
            assert response["content"]["application/json"]["schema"] == ERROR_REF, (method, path, status)
        if "requestBody" in operation:
            assert "413" in errors, (method, path)
    create = document["paths"]["/api/v1/projects/{project_id}/exports"]["post"]["responses"]
    assert set(create) == {"200", "202", "401", "403", "404", "413", "422", "429", "503"}
    assert create["429"]["headers"]["Retry-After"]["schema"] == {"type": "integer"}
    download = document["paths"]["/api/v1/projects/{project_id}/exports/{export_id}/files/{name}"]["get"]
    assert {"302", "409", "410"} <= set(download["responses"])


def test_the_export_request_body_is_the_request_model_with_lowercase_names(document):
    schemas = document["components"]["schemas"]
    body = schemas["ExportCreate"]
    assert list(body["properties"]) == list(ExportFields.model_fields)  # the CLI and the Launchpad take them too
    assert [name for name, prop in body["properties"].items() if not prop.get("description")] == []
    assert "required" not in body and body["additionalProperties"] is False
    assert {name: schemas[name]["enum"] for name in ("Resource", "Format", "Compression")} == {
        "Resource": ["events", "persons", "groups", "cohort", "recordings", "insight", "dashboard"],
        "Format": ["ndjson", "json", "csv", "parquet", "xlsx", "png"],
        "Compression": ["gzip", "zstd", "none"]}


# Stable: generated clients name their methods by these, so a change here is a breaking change of the API.
OPERATION_IDS = {
    "backfill_batch_export", "create_batch_export", "create_cohort", "create_dashboard", "create_export",
    "create_insight", "create_share_link", "create_subscription", "delete_batch_export", "delete_cohort",
    "delete_dashboard", "delete_export", "delete_insight", "delete_subscription", "download_export_file",
    "download_export_file_by_link", "get_batch_export", "get_cohort", "get_current_user", "get_dashboard",
    "get_export", "get_insight", "get_insight_result", "get_person", "get_recording", "get_recording_snapshots",
    "get_service_ping", "get_subscription", "list_batch_export_runs", "list_batch_exports", "list_cohort_persons",
    "list_cohorts", "list_dashboards", "list_deliveries", "list_events", "list_exports", "list_groups",
    "list_insights", "list_persons", "list_recordings", "list_share_links", "list_subscriptions",
    "pause_batch_export", "resume_batch_export", "revoke_share_link", "revoke_unsubscribe_links",
    "show_member_dashboard", "show_member_insight", "show_shared_dashboard", "show_shared_insight", "unsubscribe",
    "update_cohort", "update_dashboard", "update_insight", "update_subscription", "upload_cohort_csv",
}


def test_every_operation_has_a_stable_id_a_summary_and_a_description(document):
    ids = [operation["operationId"] for _path, _method, operation in operations(document)]
    assert len(ids) == len(set(ids)) and set(ids) == OPERATION_IDS
    for path, method, operation in operations(document):
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", operation["operationId"]), (method, path)
        assert operation["summary"].strip() and operation["summary"][0].isupper(), (method, path)
        # A sentence or more, not FastAPI's title-cased function name.
        assert len(operation["description"]) >= 20 and operation["description"].rstrip().endswith((".", ")")), (
            method, path, operation["description"])


def media_examples(operation: dict) -> Iterator[tuple[str, dict]]:
    """(where, media type object) of every request body and success answer that has content."""
    for media_type, media in operation.get("requestBody", {}).get("content", {}).items():
        yield f"request {media_type}", media
    for status, response in operation["responses"].items():
        if status[0] in "23":
            for media_type, media in response.get("content", {}).items():
                yield f"{status} {media_type}", media


def test_every_operation_has_an_example_that_matches_its_schema(document):
    for path, method, operation in operations(document):
        found = list(media_examples(operation))
        if not found:  # takes and answers no body (a 204): its path parameters carry the example
            assert all(p["schema"].get("examples") for p in operation["parameters"] if p["in"] == "path"), (method, path)
            continue
        if "requestBody" in operation:
            assert all("example" in media for where, media in found if where.startswith("request")), (method, path)
        assert any("example" in media for where, media in found if not where.startswith("request")), (method, path)
        for where, media in found:
            if "example" in media and "schema" in media:
                validator = Draft202012Validator({**media["schema"], "components": document["components"]})
                errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                          for e in validator.iter_errors(media["example"])]
                assert errors == [], (method, path, where)


def test_the_docs_pages_load_only_what_the_api_serves(api):
    http = api["http"]
    for page, scripts in (("/docs", ["/api-docs/static/vendor/swagger-ui-bundle.js"]),
                          ("/redoc", ["/api-docs/static/vendor/redoc.standalone.js"])):
        html = http.get(page).text
        assert re.findall(r'<script src="([^"]+)"', html) == scripts, page
        assert not re.findall(r'(?:src|href)="(?:https?:)?//', html), page  # nothing from another site
        assert "url: '/openapi.json'" in html or 'spec-url="/openapi.json"' in html
        for asset in re.findall(r'(?:src|href)="(/[^"]+)"', html):
            assert http.get(asset).status_code == 200, asset
    for licence in ("swagger-ui-dist.LICENSE", "redoc.LICENSE"):
        assert http.get(f"/api-docs/static/vendor/{licence}").status_code == 200


def test_errors_answer_the_declared_shape(api):
    http = api["http"]
    missing = http.get(f"/api/v1/projects/{PROJECT}/exports/exp_nope")
    assert missing.status_code == 404
    assert missing.json() == {"error": {"code": "not_found", "message": f"Export 'exp_nope' not found in project "
                                        f"{PROJECT}.", "hint": None, "details": {}}}
    invalid = http.post(f"/api/v1/projects/{PROJECT}/exports", json={"format": "xml"})
    assert invalid.status_code == 422
    ErrorBody.model_validate(invalid.json())
    assert invalid.json()["error"]["details"] == {
        "format": "Input should be 'ndjson', 'json', 'csv', 'parquet', 'xlsx' or 'png'"}


def test_a_finished_export_links_its_manifest_and_files_under_unique_names(api):
    http, done, deps = api["http"], api["done"], api["deps"]
    response = http.get(f"/api/v1/projects/{PROJECT}/exports/{done.id}")
    assert response.status_code == 200
    manifest = deps.storage.read_bytes(done.manifest_key)
    files = json.loads(manifest)["files"]
    assert [f["name"] for f in files] == ["part-00000.ndjson.zst"]
    base = f"http://testserver/api/v1/projects/{PROJECT}/exports/{done.id}"
    assert response.json() == {
        "export_id": done.id, "id": done.id, "project_id": PROJECT, "resource": "events", "format": "ndjson",
        "compression": "zstd", "date_from": None, "date_to": None, "events": [], "target_id": None, "width": None,
        "properties": None, "cohort_id": None, "group_type": None, "distinct_id": None, "person_id": None,
        "min_duration": None, "requested_by": "mona", "status": "succeeded", "row_count": 3, "row_total": 3,
        "byte_count": files[0]["bytes"],
        "files": [{**files[0], "download_name": f"{PROJECT}-{done.id}-events-part-00000.ndjson.zst",
                   "url": f"{base}/files/part-00000.ndjson.zst"}],
        "manifest_url": f"{base}/files/manifest.json",
        "created_at": iso_utc(done.created_at), "started_at": iso_utc(done.started_at),
        "finished_at": iso_utc(done.finished_at), "expires_at": iso_utc(done.expires_at), "error": None,
        "notification": {"email": None, "sent_at": None, "error": None},
        "url": f"/api/v1/projects/{PROJECT}/exports/{done.id}", "hint": None,
    }
    part = http.get(f"{base}/files/part-00000.ndjson.zst")
    assert part.status_code == 200
    assert part.headers["content-disposition"] == (
        f'attachment; filename="{PROJECT}-{done.id}-events-part-00000.ndjson.zst"')
    listed = http.get(f"{base}/files/manifest.json")
    assert listed.content == manifest and listed.headers["content-type"] == "application/json"
    assert listed.headers["content-disposition"] == f'attachment; filename="{PROJECT}-{done.id}-events-manifest.json"'


def _age(api, export_id: str, seconds: int) -> None:
    with api["deps"].store.engine.begin() as conn:
        conn.execute(sa.update(export_requests).where(export_requests.c.id == export_id)
                     .values(created_at=now_utc() - timedelta(seconds=seconds)))


def test_without_a_daemon_a_queued_export_says_so_and_a_stale_one_does_not_count(api, monkeypatch):
    http = api["http"]
    monkeypatch.setattr(DaemonWatch, "_read", lambda self: False)
    api["app"].state.daemon = DaemonWatch(api["deps"].settings)
    first = http.post(f"/api/v1/projects/{PROJECT}/exports", json={"events": ["a"]})
    assert first.status_code == 202 and first.json()["hint"] == NO_DAEMON_HINT
    assert first.json()["status"] == "queued" and first.json()["files"] == [] and first.json()["manifest_url"] is None
    # Fresh: it counts (limit 1).
    refused = http.post(f"/api/v1/projects/{PROJECT}/exports", json={"events": ["b"]})
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "too_many_exports"
    assert refused.json()["error"]["hint"] == "Wait for one to finish, or cancel one (DELETE …/exports/{export_id})."
    # Queued longer than the heartbeat window with no daemon: stale, so it no longer holds the slot.
    _age(api, first.json()["export_id"], 61)
    second = http.post(f"/api/v1/projects/{PROJECT}/exports", json={"events": ["b"]})
    assert second.status_code == 202 and second.json()["hint"] == NO_DAEMON_HINT

    # With a daemon: no hint, and an old queued export counts (it waits for the engine's run slot).
    monkeypatch.setattr(DaemonWatch, "_read", lambda self: True)
    api["app"].state.daemon = DaemonWatch(api["deps"].settings)
    _age(api, second.json()["export_id"], 61)
    again = http.get(second.json()["url"])
    assert again.json()["hint"] is None
    assert http.post(f"/api/v1/projects/{PROJECT}/exports", json={"events": ["c"]}).status_code == 429
    for export_id in (first.json()["export_id"], second.json()["export_id"]):
        assert http.delete(f"/api/v1/projects/{PROJECT}/exports/{export_id}").json()["status"] == "canceled"


def test_the_daemon_watch_reads_the_sensor_heartbeat(settings):
    from dagster import DagsterInstance
    from dagster._daemon.types import DaemonHeartbeat

    watch = DaemonWatch(settings)
    watch._instance = DagsterInstance.ephemeral()
    assert watch.running() is False
    watch._instance.add_daemon_heartbeat(DaemonHeartbeat(now_utc().timestamp(), "SENSOR", None, None))
    watch._checked_at = float("-inf")  # past the cache
    assert watch.running() is True
