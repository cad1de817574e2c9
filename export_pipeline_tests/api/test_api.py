"""The HTTP API over a real server on loopback: authentication, the role matrix with exact status codes,
the export lifecycle through HTTP, and event paging that stays exact while events are inserted."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from fastapi.testclient import TestClient

from export_pipeline.accounts.roles import Role, add_member
from export_pipeline.accounts.tokens import create_token, revoke_token
from export_pipeline.api.app import create_app
from export_pipeline.engine.spec import parse_spec
from export_pipeline.exports.deps import build_deps
from export_pipeline.exports.requests import ExportState
from export_pipeline.exports.run import run_export
from export_pipeline_tests.conftest import serving
from export_pipeline_tests.fakes.exportdata import T0, expected_rows, insert_events, known_events
from export_pipeline_tests.fakes.net import free_port

PROJECT, OTHER_PROJECT = 9301, 9302
ROLES = {"guest": Role.GUEST, "planner": Role.PLANNER, "reporter": Role.REPORTER, "developer": Role.DEVELOPER,
         "maintainer": Role.MAINTAINER, "owner": Role.OWNER}


@pytest.fixture(scope="module")
def server(settings, clickhouse, events_table, store, tmp_path_factory) -> Iterator[dict]:
    insert_events(clickhouse, events_table, known_events(PROJECT))
    for name, role in ROLES.items():
        add_member(store.engine, PROJECT, name, role)
    add_member(store.engine, OTHER_PROJECT, "other-maintainer", Role.MAINTAINER)
    tokens = {name: create_token(store.engine, name)[0] for name in [*ROLES, "other-maintainer", "stranger"]}
    revoked, revoked_info = create_token(store.engine, "maintainer", name="old")
    revoke_token(store.engine, revoked_info.id)
    tokens["revoked"] = revoked

    api_settings = settings.model_copy(update={"api_max_in_flight_exports": 50})
    # One finished export to read and download.
    deps = build_deps(api_settings)
    done = deps.store.create(parse_spec(project_id=PROJECT, requested_by="maintainer", format="ndjson",
                                        compression="none", events=["signed_up"]), source="test")
    run_export(done.id, deps, run_id="api-fixture", run_is_active=lambda _: False, log=logging.getLogger())
    with serving(create_app(api_settings)) as url:
        yield {"url": url, "tokens": tokens, "done": done.id, "deps": deps}


def client(server: dict, who: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {server['tokens'][who]}"} if who else {}
    return httpx.Client(base_url=server["url"], headers=headers, timeout=60)


def queued_export(server: dict) -> str:
    spec = parse_spec(project_id=PROJECT, requested_by="maintainer", format="csv")
    return server["deps"].store.create(spec, source="test").id


ENDPOINTS = ["create", "list", "get", "file", "delete", "events"]


def call(server: dict, who: str | None, endpoint: str, project: int = PROJECT) -> httpx.Response:
    http = client(server, who)
    base = f"/api/v1/projects/{project}"
    if endpoint == "create":
        # a unique filter per call, so no call is deduplicated into another
        return http.post(f"{base}/exports", json={"format": "csv", "events": [f"e-{uuid.uuid4()}"]})
    if endpoint == "list":
        return http.get(f"{base}/exports")
    if endpoint == "get":
        return http.get(f"{base}/exports/{server['done']}")
    if endpoint == "file":
        return http.get(f"{base}/exports/{server['done']}/files/part-00000.ndjson")
    if endpoint == "delete":
        return http.delete(f"{base}/exports/{queued_export(server)}")
    return http.get(f"{base}/events", params={"limit": 5})


EXPECTED_OK = {"create": 202, "list": 200, "get": 200, "file": 200, "delete": 200, "events": 200}
CALLERS = [None, "revoked", "stranger", "guest", "planner", "reporter", "developer", "maintainer", "owner",
           "other-maintainer"]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("who", CALLERS)
def test_authorization_matrix(server, who, endpoint):
    response = call(server, who, endpoint)
    expected = {
        None: 401, "revoked": 401,
        "stranger": 404, "other-maintainer": 404,  # never reveal that the project exists
        "guest": 403, "planner": 403, "reporter": 403, "developer": 403,
    }.get(who, EXPECTED_OK[endpoint])
    assert response.status_code == expected, response.text
    if expected >= 400:
        error = response.json()["error"]
        assert set(error) == {"code", "message", "hint", "details"}
        if expected == 403:
            assert "needs Maintainer (40) or higher" in error["message"]
        if expected == 401:
            assert response.headers["www-authenticate"] == "Bearer"


def test_exports_of_another_project_are_not_found_even_for_its_maintainer(server):
    response = client(server, "other-maintainer").get(f"/api/v1/projects/{OTHER_PROJECT}/exports/{server['done']}")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_create_dedups_in_flight_requests_and_limits_them(server, settings):
    http = client(server, "owner")
    body = {"format": "json", "date_from": "2026-01-01", "date_to": "2026-01-31", "events": ["$pageview"]}
    first = http.post(f"/api/v1/projects/{PROJECT}/exports", json=body)
    again = http.post(f"/api/v1/projects/{PROJECT}/exports", json=body)
    assert (first.status_code, again.status_code) == (202, 200)
    assert first.json()["id"] == again.json()["id"]
    assert first.headers["location"] == f"/api/v1/projects/{PROJECT}/exports/{first.json()['id']}"
    assert first.json()["status"] == "queued" and first.json()["date_to"] == "2026-02-01T00:00:00Z"

    limited = settings.model_copy(update={"api_max_in_flight_exports": 1})
    with TestClient(create_app(limited), headers=dict(http.headers)) as tight:
        refused = tight.post(f"/api/v1/projects/{PROJECT}/exports", json={"format": "parquet"})
    assert refused.status_code == 429 and refused.headers["retry-after"] == "30"
    assert refused.json()["error"]["code"] == "too_many_exports"


def test_invalid_bodies_get_field_level_422(server):
    response = client(server, "maintainer").post(
        f"/api/v1/projects/{PROJECT}/exports", json={"format": "xml", "date_from": "soon", "sql": "DROP TABLE x"}
    )
    assert response.status_code == 422
    details = response.json()["error"]["details"]
    assert set(details) == {"format", "sql"}  # pydantic field checks first; no SQL is ever accepted
    bad_date = client(server, "maintainer").post(f"/api/v1/projects/{PROJECT}/exports", json={"date_from": "soon"})
    assert bad_date.status_code == 422 and "date_from" in bad_date.json()["error"]["details"]


def test_export_resource_lists_files_and_downloads_them(server):
    http = client(server, "maintainer")
    resource = http.get(f"/api/v1/projects/{PROJECT}/exports/{server['done']}").json()
    assert resource["status"] == "succeeded" and resource["row_count"] == 750
    [entry] = resource["files"]
    assert entry["url"] == f"{server['url']}/api/v1/projects/{PROJECT}/exports/{server['done']}/files/part-00000.ndjson"
    body = http.get(entry["url"]).content
    assert len(body) == entry["bytes"] and len(body.splitlines()) == 750
    assert resource["row_total"] == 750  # what the run counted before writing


def test_a_download_link_takes_the_token_cookie_and_nothing_else_does(server):
    file_url = f"/api/v1/projects/{PROJECT}/exports/{server['done']}/files/part-00000.ndjson"
    resource_url = f"/api/v1/projects/{PROJECT}/exports/{server['done']}"
    with httpx.Client(base_url=server["url"], timeout=60) as browser:
        by_cookie = browser.get(file_url, cookies={"export_pipeline_token": server["tokens"]["maintainer"]})
        assert by_cookie.status_code == 200 and len(by_cookie.content.splitlines()) == 750
        assert browser.get(resource_url, cookies={"export_pipeline_token": server["tokens"]["maintainer"]}
                           ).status_code == 401  # the JSON API wants the header
        below = browser.get(file_url, cookies={"export_pipeline_token": server["tokens"]["developer"]})
        assert below.status_code == 403
        assert browser.get(file_url).status_code == 401


def test_file_of_an_unfinished_export_is_409_with_retry_after(server):
    export_id = queued_export(server)
    response = client(server, "maintainer").get(f"/api/v1/projects/{PROJECT}/exports/{export_id}/files/part-00000.csv")
    assert response.status_code == 409 and response.headers["retry-after"] == "5"


def test_deleting_a_finished_export_removes_its_files_and_then_410(server):
    deps = server["deps"]
    request = deps.store.create(parse_spec(project_id=PROJECT, requested_by="maintainer", format="csv",
                                           events=["signed_up"]), source="test")
    run_export(request.id, deps, run_id="to-delete", run_is_active=lambda _: False, log=logging.getLogger())
    http = client(server, "owner")
    deleted = http.delete(f"/api/v1/projects/{PROJECT}/exports/{request.id}")
    assert deleted.status_code == 200 and deleted.json()["status"] == "expired"
    assert deps.storage.list_keys(request.storage_prefix) == []
    gone = http.get(f"/api/v1/projects/{PROJECT}/exports/{request.id}/files/part-00000.csv.gz")
    assert gone.status_code == 410 and gone.json()["error"]["code"] == "export_expired"


def test_canceling_a_queued_export(server):
    export_id = queued_export(server)
    response = client(server, "maintainer").delete(f"/api/v1/projects/{PROJECT}/exports/{export_id}")
    assert response.json()["status"] == "canceled"
    assert server["deps"].store.require(export_id).state is ExportState.CANCELED


def test_list_pages_through_exports_newest_first(server):
    http = client(server, "maintainer")
    seen, cursor = [], None
    while True:
        page = http.get(f"/api/v1/projects/{PROJECT}/exports", params={"limit": 3, **({"cursor": cursor} if cursor else {})}).json()
        seen += [e["id"] for e in page["data"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) > 3
    created = [server["deps"].store.require(i).created_at for i in seen]
    assert created == sorted(created, reverse=True)


def test_event_pages_are_exact_while_events_are_inserted(server, clickhouse, events_table):
    expected = expected_rows(clickhouse, events_table, PROJECT, json_properties=True)
    http = client(server, "maintainer")
    stop = threading.Event()

    def insert_while_paging() -> None:
        while not stop.is_set():
            insert_events(clickhouse, events_table,
                          [[PROJECT, uuid.uuid4(), "$pageview", T0 - timedelta(days=1), "late", uuid.uuid4(), "{}"]])
            time.sleep(0.05)

    # The inserts start once the first page has pinned the listing's moment: a row inserted before it is
    # rightly part of the listing, which `expected` (read before) would not know.
    inserter = threading.Thread(target=insert_while_paging, daemon=True)
    rows: Counter = Counter()
    cursor, pages = None, 0
    try:
        while True:
            response = http.get(f"/api/v1/projects/{PROJECT}/events",
                                params={"limit": 400, **({"cursor": cursor} if cursor else {})})
            assert response.status_code == 200, response.text
            page = response.json()
            rows.update(json.dumps(event, sort_keys=True, ensure_ascii=False) for event in page["data"])
            pages += 1
            if pages == 1:
                inserter.start()
            cursor = page["next_cursor"]
            if not cursor:
                break
    finally:
        stop.set()
        if inserter.is_alive():
            inserter.join()
    assert pages >= 8
    assert rows == expected


def test_events_reject_bad_parameters_with_422(server):
    http = client(server, "maintainer")
    for params in ({"limit": 0}, {"limit": 1001}, {"cursor": "not-a-cursor"}, {"date_from": "June"}):
        response = http.get(f"/api/v1/projects/{PROJECT}/events", params=params)
        assert response.status_code == 422, (params, response.text)
        assert response.json()["error"]["code"] == "invalid_request"


def test_unreachable_clickhouse_is_503(settings, store):
    add_member(store.engine, PROJECT, "maintainer", Role.MAINTAINER)
    token, _ = create_token(store.engine, "maintainer")
    broken = settings.model_copy(update={"clickhouse_url_setting": f"http://u:pw@127.0.0.1:{free_port()}/db"})
    broken.__dict__.pop("clickhouse_url", None)  # drop the cached default
    with TestClient(create_app(broken), headers={"Authorization": f"Bearer {token}"}) as http:
        response = http.get(f"/api/v1/projects/{PROJECT}/events")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "analytics_cluster_unavailable"
    assert "pw" not in response.text.replace("u:***", "")


def test_openapi_is_served(server):
    spec = httpx.get(f"{server['url']}/openapi.json").json()
    assert "/api/v1/projects/{project_id}/exports" in spec["paths"]


def test_out_of_range_project_ids_are_422_not_500(server):
    # Found by the fuzz test: the role check used to run on the unvalidated id and overflow SQLite.
    response = client(server, "maintainer").get("/api/v1/projects/99999999999999999999999/exports")
    assert response.status_code == 422 and "project_id" in response.json()["error"]["details"]


def test_s3_downloads_redirect_to_a_presigned_url(server, settings, store, moto_endpoint, monkeypatch):
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket="api-downloads")
    s3_settings = settings.model_copy(update={"storage_url_setting": "s3://api-downloads/exports"})
    s3_settings.__dict__.pop("storage_url", None)
    deps = build_deps(s3_settings)
    request = deps.store.create(parse_spec(project_id=PROJECT, requested_by="maintainer", format="ndjson",
                                           events=["signed_up"]), source="test")
    run_export(request.id, deps, run_id="s3-download", run_is_active=lambda _: False, log=logging.getLogger())
    token, _ = create_token(store.engine, "maintainer")
    with TestClient(create_app(s3_settings), headers={"Authorization": f"Bearer {token}"}) as http:
        response = http.get(f"/api/v1/projects/{PROJECT}/exports/{request.id}/files/part-00000.ndjson.gz",
                            follow_redirects=False)
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(f"{moto_endpoint}/api-downloads/exports/{PROJECT}/{request.id}/part-00000.ndjson.gz?")
    assert "X-Amz-Signature=" in location
    downloaded = httpx.get(location).content
    manifest = json.loads(deps.storage.read_bytes(f"{request.storage_prefix}/manifest.json"))
    import hashlib

    assert hashlib.sha256(downloaded).hexdigest() == manifest["files"][0]["sha256"]
