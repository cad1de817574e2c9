"""Insights and dashboards over HTTP: members read, Maintainer+ change, results equal direct computation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from export_pipeline.accounts.roles import Role, add_member
from export_pipeline.accounts.tokens import create_token
from export_pipeline.api.app import create_app
from export_pipeline_tests.fakes.exportdata import insert_events
from export_pipeline_tests.insights.test_insights import HISTORY, RANGE, P

PROJECT, OTHER = 9801, 9802
TRENDS = {"kind": "trends", "events": ["$pageview", "purchase"], **RANGE}


@pytest.fixture(scope="module")
def api(settings, clickhouse, events_table, store):
    insert_events(clickhouse, events_table, [
        [PROJECT, uuid.uuid4(), event, datetime(2026, 3, day, hour, tzinfo=UTC), person, P[person], props]
        for day, hour, person, event, props in HISTORY
    ])
    for name, role in {"guest": Role.GUEST, "reporter": Role.REPORTER, "maintainer": Role.MAINTAINER}.items():
        add_member(store.engine, PROJECT, name, role)
    add_member(store.engine, OTHER, "other", Role.OWNER)
    tokens = {name: create_token(store.engine, name)[0] for name in ("guest", "reporter", "maintainer", "other", "stranger")}
    with TestClient(create_app(settings)) as client:
        yield client, tokens


def as_(api, who: str) -> dict:
    return {"Authorization": f"Bearer {api[1][who]}"}


def test_members_read_maintainers_change(api):
    client, _ = api
    created = client.post(f"/api/v1/projects/{PROJECT}/insights", headers=as_(api, "maintainer"),
                          json={"name": "Pageviews and purchases", "query": TRENDS})
    assert created.status_code == 201
    insight_id = created.json()["id"]
    for who, read, change in [("guest", 200, 403), ("reporter", 200, 403), ("maintainer", 200, 200),
                              ("other", 404, 404), ("stranger", 404, 404)]:
        assert client.get(f"/api/v1/projects/{PROJECT}/insights/{insight_id}", headers=as_(api, who)).status_code == read, who
        patched = client.patch(f"/api/v1/projects/{PROJECT}/insights/{insight_id}", headers=as_(api, who),
                               json={"description": f"edited by {who}"})
        assert patched.status_code == change, who
    assert client.get(f"/api/v1/projects/{PROJECT}/insights/{insight_id}").status_code == 401


def test_insight_round_trip_and_result(api):
    client, _ = api
    headers = as_(api, "maintainer")
    insight = client.post(f"/api/v1/projects/{PROJECT}/insights", headers=headers,
                          json={"name": "Funnel", "query": {"kind": "funnel", "steps": ["signed_up", "purchase"],
                                                            "window_seconds": 172800, **RANGE}}).json()
    assert insight["query"] == {"kind": "funnel", "steps": ["signed_up", "purchase"], "window_seconds": 172800,
                                "date_from": "2026-03-01T00:00:00Z", "date_to": "2026-03-04T00:00:00Z"}
    result = client.get(f"/api/v1/projects/{PROJECT}/insights/{insight['id']}/result", headers=as_(api, "guest")).json()
    assert result == {"insight_id": insight["id"], "kind": "funnel", "columns": ["step", "event", "users", "conversion"],
                      "rows": [[1, "signed_up", 3, 1.0], [2, "purchase", 2, 0.6667]]}
    assert client.delete(f"/api/v1/projects/{PROJECT}/insights/{insight['id']}", headers=headers).status_code == 204
    assert client.get(f"/api/v1/projects/{PROJECT}/insights/{insight['id']}", headers=headers).status_code == 404


def test_invalid_queries_get_field_messages(api):
    client, _ = api
    response = client.post(f"/api/v1/projects/{PROJECT}/insights", headers=as_(api, "maintainer"),
                           json={"name": "Bad", "query": {"kind": "table", "by": "property", **RANGE}})
    assert response.status_code == 422
    assert "a table by property needs a key" in response.json()["error"]["message"]


def test_dashboards_keep_tile_order_and_only_take_this_projects_insights(api):
    client, _ = api
    headers = as_(api, "maintainer")
    ids = [client.post(f"/api/v1/projects/{PROJECT}/insights", headers=headers,
                       json={"name": f"Tile {i}", "query": TRENDS}).json()["id"] for i in range(3)]
    dashboard = client.post(f"/api/v1/projects/{PROJECT}/dashboards", headers=headers, json={
        "name": "Weekly", "tiles": [{"insight_id": ids[2], "width": 12, "height": 6}, {"insight_id": ids[0]}],
    })
    assert dashboard.status_code == 201
    assert dashboard.json()["tiles"] == [{"insight_id": ids[2], "width": 12, "height": 6},
                                         {"insight_id": ids[0], "width": 6, "height": 4}]
    foreign = client.post(f"/api/v1/projects/{OTHER}/insights", headers=as_(api, "other"),
                          json={"name": "Theirs", "query": TRENDS}).json()["id"]
    refused = client.patch(f"/api/v1/projects/{PROJECT}/dashboards/{dashboard.json()['id']}", headers=headers,
                           json={"tiles": [{"insight_id": foreign}]})
    assert refused.status_code == 404
    reordered = client.patch(f"/api/v1/projects/{PROJECT}/dashboards/{dashboard.json()['id']}", headers=headers,
                             json={"tiles": [{"insight_id": i} for i in ids]}).json()
    assert [t["insight_id"] for t in reordered["tiles"]] == ids
    listed = client.get(f"/api/v1/projects/{PROJECT}/dashboards", headers=as_(api, "guest")).json()["data"]
    assert [d["name"] for d in listed] == ["Weekly"]


def test_relative_ranges_and_time_zones_are_taken_and_checked(api):
    client, _ = api
    headers = as_(api, "maintainer")
    query = {"kind": "trends", "events": ["signed_up"], "date_range": "-4w", "timezone": "America/New_York"}
    created = client.post(f"/api/v1/projects/{PROJECT}/insights", headers=headers, json={"name": "Moving", "query": query})
    assert created.status_code == 201
    assert created.json()["query"] == {**query, "math": "total", "interval": "day", "breakdown": None}
    url = f"/api/v1/projects/{PROJECT}/insights/{created.json()['id']}"
    # Computed as of now: the range runs up to now, so today's bucket is flagged (no events that recent here).
    assert client.get(f"{url}/result", headers=headers).json()["columns"] == ["bucket", "series", "value", "incomplete"]
    refused = client.patch(url, headers=headers, json={"query": {**query, "date_range": "last month"}})
    assert refused.status_code == 422
    assert refused.json()["error"]["details"] == {"query.trends.date_range": (
        "date_range must be -N followed by h, d, w or m (e.g. -7d, -4w, -3m), wtd, mtd, previous_week or "
        "previous_month; got 'last month'")}
    moved = client.patch(url, headers=headers, json={"query": {**RANGE, "kind": "number"}}).json()
    assert moved["query"] == {"kind": "number", "event": None, "math": "total",
                              "date_from": "2026-03-01T00:00:00Z", "date_to": "2026-03-04T00:00:00Z"}
