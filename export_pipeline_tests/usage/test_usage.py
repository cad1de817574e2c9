"""Service Ping: GitLab-format definitions, the exact payload, API usage recording, the admin endpoint and
the Dagster asset posting to a collector."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml
from fastapi.testclient import TestClient

from export_pipeline.accounts.roles import Role, add_member
from export_pipeline.accounts.tokens import create_token
from export_pipeline.api.app import create_app
from export_pipeline.db import api_requests, export_requests, get_engine
from export_pipeline.errors import InvalidRequest
from export_pipeline.usage.service_ping import (
    METRICS_DIR,
    REQUIRED_FIELDS,
    build_payload,
    latest_payload,
    load_definitions,
    save_payload,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_every_definition_has_gitlabs_required_fields():
    files = sorted(METRICS_DIR.glob("*.yml"))
    assert len(files) == len(load_definitions()) == 18
    for path in files:
        raw = yaml.safe_load(path.read_text())
        assert set(REQUIRED_FIELDS) <= set(raw), path.name
        assert raw["time_frame"] in ("7d", "28d", "all") and raw["status"] == "active"
        assert path.name == raw["key_path"].replace(".", "_") + ".yml"


def test_broken_definitions_are_all_reported(tmp_path: Path):
    (tmp_path / "a.yml").write_text("key_path: counts.a\ndescription: x\n")
    (tmp_path / "b.yml").write_text(yaml.safe_dump({f: "x" for f in REQUIRED_FIELDS}))
    with pytest.raises(InvalidRequest) as problems:
        load_definitions(tmp_path)
    assert "a.yml: missing value_type, status" in problems.value.message
    assert "b.yml: time_frame or data_source not allowed" in problems.value.message


def _export(id_: str, *, fmt: str, state: str, days_ago: float, user: str, rows: int = 0, error: str | None = None):
    created = NOW - timedelta(days=days_ago)
    return dict(id=id_, project_id=1, requested_by=user, resource="events", format=fmt, compression="gzip",
                events=[], as_of=created, source="test", state=state, row_count=rows, byte_count=rows * 10,
                file_count=1, error_code=error, created_at=created,
                finished_at=created if state in ("succeeded", "failed", "expired") else None)


def test_payload_counts_exactly_what_happened(tmp_path: Path):
    engine = get_engine(f"sqlite:///{tmp_path / 'usage.db'}")
    with engine.begin() as conn:
        conn.execute(sa.insert(export_requests), [
            _export("a", fmt="ndjson", state="succeeded", days_ago=1, user="ann", rows=100),
            _export("b", fmt="ndjson", state="expired", days_ago=10, user="bob", rows=50),  # succeeded, then expired
            _export("c", fmt="csv", state="failed", days_ago=2, user="ann", error="access_denied"),
            _export("d", fmt="parquet", state="queued", days_ago=3, user="cid"),
            _export("e", fmt="json", state="succeeded", days_ago=40, user="dan", rows=7),  # outside 28 days
        ])
        conn.execute(sa.insert(api_requests), [
            dict(occurred_at=NOW - timedelta(days=1), endpoint="GET /api/v1/projects/{project_id}/events", status=200, user_name="ann"),
            dict(occurred_at=NOW - timedelta(days=2), endpoint="GET /api/v1/projects/{project_id}/events", status=403, user_name="bob"),
            dict(occurred_at=NOW - timedelta(days=3), endpoint="POST /api/v1/projects/{project_id}/exports", status=500, user_name="ann"),
            dict(occurred_at=NOW - timedelta(days=30), endpoint="POST /api/v1/projects/{project_id}/exports", status=202, user_name="old"),
        ])
    payload = build_payload(engine, NOW)
    assert payload == {
        "recorded_at": "2026-11-23T12:00:00Z",
        "version": "0.1.0",
        "counts": {"exports_requested": 5},
        "counts_weekly": {"exports_requested": 3},
        "counts_monthly": {
            "exports_requested": 4, "exports_succeeded": 2, "exports_failed": 1,
            "exports_requested_ndjson": 2, "exports_requested_csv": 1, "exports_requested_json": 0,
            "exports_requested_parquet": 1, "rows_exported": 150, "bytes_exported": 1500,
            "unique_export_requesters": 3,
            "api_requests": 3, "api_requests_success": 1, "api_requests_client_error": 1,
            "api_requests_server_error": 1, "api_unique_users": 2,
            "api_requests_by_endpoint": {"GET /api/v1/projects/{project_id}/events": 2,
                                         "POST /api/v1/projects/{project_id}/exports": 1},
        },
    }


@pytest.fixture()
def isolated_api(settings, tmp_path: Path):
    """An API on its own app database, with alice an admin and bob not."""
    api_settings = settings.model_copy(update={"database_url_setting": f"sqlite:///{tmp_path / 'api.db'}",
                                               "admin_users_setting": "alice"})
    api_settings.__dict__.pop("database_url", None)
    engine = get_engine(api_settings.database_url)
    add_member(engine, 5, "bob", Role.REPORTER)
    tokens = {name: create_token(engine, name)[0] for name in ("alice", "bob")}
    return api_settings, engine, tokens


def test_api_requests_are_recorded_by_endpoint_outcome_and_user(isolated_api):
    api_settings, engine, tokens = isolated_api
    with TestClient(create_app(api_settings)) as http:
        assert http.get("/api/v1/projects/5/exports").status_code == 401
        assert http.get("/api/v1/projects/5/exports", headers={"Authorization": f"Bearer {tokens['bob']}"}).status_code == 403
        assert http.get("/openapi.json").status_code == 200  # not an API call: not recorded
    with engine.connect() as conn:
        rows = conn.execute(sa.select(api_requests.c.endpoint, api_requests.c.status, api_requests.c.user_name)
                            .order_by(api_requests.c.id)).all()
    assert [tuple(r) for r in rows] == [
        ("GET /api/v1/projects/{project_id}/exports", 401, None),
        ("GET /api/v1/projects/{project_id}/exports", 403, "bob"),
    ]


def test_service_ping_endpoint_serves_admins_only(isolated_api):
    api_settings, engine, tokens = isolated_api
    with TestClient(create_app(api_settings)) as http:
        as_alice = {"Authorization": f"Bearer {tokens['alice']}"}
        none_yet = http.get("/api/v1/usage/service_ping", headers=as_alice)
        assert none_yet.status_code == 404 and "No Service Ping has been computed yet" in none_yet.json()["error"]["message"]
        payload = build_payload(engine, NOW)
        save_payload(engine, payload, NOW)
        assert http.get("/api/v1/usage/service_ping", headers=as_alice).json() == payload
        refused = http.get("/api/v1/usage/service_ping", headers={"Authorization": f"Bearer {tokens['bob']}"})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
        assert http.get("/api/v1/usage/service_ping").status_code == 401


def test_weekly_asset_stores_and_posts_the_payload(settings, monkeypatch, tmp_path: Path):
    from export_pipeline.defs.resources import AppDatabaseResource, ServicePingCollectorResource
    from export_pipeline.defs.usage import service_ping

    received: list[dict] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(201)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    collector = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=collector.serve_forever, daemon=True).start()
    monkeypatch.setenv("SERVICE_PING_URL", f"http://127.0.0.1:{collector.server_address[1]}/usage")
    database_url = f"sqlite:///{tmp_path / 'ping.db'}"
    try:
        result = dg.materialize([service_ping], resources={"app_db": AppDatabaseResource(url=database_url),
                                                         "service_ping_collector": ServicePingCollectorResource(
                                                             url=dg.EnvVar("SERVICE_PING_URL"))})
    finally:
        collector.shutdown()
    assert result.success
    stored = latest_payload(get_engine(database_url))
    assert received == [stored]
    assert stored["counts"] == {"exports_requested": 0}
