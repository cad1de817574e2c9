"""Insight and dashboard exports through the export pipeline: CSV, XLSX (a sheet per tile) and JSON hold
exactly the numbers ClickHouse computes directly."""

from __future__ import annotations

import csv
import io
import json
import logging
import uuid
from datetime import UTC, datetime

import openpyxl
import pytest

from export_pipeline.accounts.roles import Role, add_member
from export_pipeline.engine.spec import parse_spec
from export_pipeline.errors import InvalidRequest
from export_pipeline.exports.manifest import read_manifest
from export_pipeline.exports.run import run_export
from export_pipeline.insights.store import InsightStore
from export_pipeline_tests.fakes.exportdata import insert_events
from export_pipeline_tests.insights.test_insights import HISTORY, RANGE, P

PROJECT = 9901


@pytest.fixture(scope="module")
def board(clickhouse, events_table, store):
    insert_events(clickhouse, events_table, [
        [PROJECT, uuid.uuid4(), event, datetime(2026, 3, day, hour, tzinfo=UTC), person, P[person], props]
        for day, hour, person, event, props in HISTORY
    ])
    add_member(store.engine, PROJECT, "maria", Role.MAINTAINER)
    insights = InsightStore(store.engine)
    trends = insights.create_insight(PROJECT, name="Daily events", created_by="maria",
                                     query={"kind": "trends", "events": ["$pageview", "purchase", "signed_up"], **RANGE})
    funnel = insights.create_insight(PROJECT, name="Sign-up: purchase [2d]", created_by="maria",
                                     query={"kind": "funnel", "steps": ["signed_up", "purchase"], "window_seconds": 172800, **RANGE})
    dashboard = insights.create_dashboard(PROJECT, name="Board", created_by="maria",
                                          tiles=[{"insight_id": trends.id}, {"insight_id": funnel.id}])
    return {"trends": trends, "funnel": funnel, "dashboard": dashboard}


def direct_daily_counts(clickhouse) -> list[list]:
    """The trends numbers straight from ClickHouse, independent of the insight code."""
    with clickhouse.session("direct") as session:
        rows = session.client.query(
            "SELECT formatDateTime(toStartOfDay(timestamp), '%Y-%m-%dT%H:%i:%SZ'), toString(event), count() "
            "FROM analytics.events WHERE project_id = {p:UInt64} AND timestamp >= '2026-03-01' AND timestamp < '2026-03-04' "
            "GROUP BY 1, 2 ORDER BY 1, 2", parameters={"p": PROJECT}).result_rows
    return [[bucket, event, count] for bucket, event, count in rows]


def export(deps, **fields):
    request = deps.store.create(parse_spec(project_id=PROJECT, requested_by="maria", **fields), source="test")
    result = run_export(request.id, deps, run_id=f"r-{request.id}", run_is_active=lambda _: False, log=logging.getLogger())
    return request, read_manifest(deps.storage, result.manifest_key)


def test_insight_csv_equals_clickhouse(deps, board, clickhouse):
    request, manifest = export(deps, resource="insight", target_id=board["trends"].id, format="csv")
    assert [f["name"] for f in manifest["files"]] == ["insight.csv"]
    assert (manifest["resource"], manifest["filters"]) == ("insight", {"target_id": board["trends"].id})
    rows = list(csv.reader(io.StringIO(deps.storage.read_bytes(f"{request.storage_prefix}/insight.csv").decode())))
    assert rows[0] == ["bucket", "series", "value"]
    assert [[b, s, int(v)] for b, s, v in rows[1:]] == direct_daily_counts(clickhouse)


def test_dashboard_xlsx_has_a_sheet_per_tile(deps, board, clickhouse):
    request, manifest = export(deps, resource="dashboard", target_id=board["dashboard"].id, format="xlsx")
    [entry] = manifest["files"]
    workbook = openpyxl.load_workbook(io.BytesIO(deps.storage.read_bytes(f"{request.storage_prefix}/{entry['name']}")))
    assert workbook.sheetnames == ["Daily events", "Sign-up  purchase  2d"]
    trends = [list(row) for row in workbook["Daily events"].iter_rows(values_only=True)]
    assert trends[0] == ["bucket", "series", "value"] and trends[1:] == direct_daily_counts(clickhouse)
    funnel = [list(row) for row in workbook["Sign-up  purchase  2d"].iter_rows(values_only=True)]
    assert funnel == [["step", "event", "users", "conversion"], [1, "signed_up", 3, 1], [2, "purchase", 2, 0.6667]]
    assert entry["rows"] == len(trends) - 1 + 2


def test_dashboard_json_and_csv_per_tile(deps, board, clickhouse):
    request, manifest = export(deps, resource="dashboard", target_id=board["dashboard"].id, format="json")
    document = json.loads(deps.storage.read_bytes(f"{request.storage_prefix}/dashboard.json"))
    assert document["name"] == "Board" and [i["insight"]["id"] for i in document["insights"]] == [
        board["trends"].id, board["funnel"].id]
    assert document["insights"][0]["rows"] == direct_daily_counts(clickhouse)
    request, manifest = export(deps, resource="dashboard", target_id=board["dashboard"].id, format="csv")
    assert [f["name"] for f in manifest["files"]] == ["tile-01-daily-events.csv", "tile-02-sign-up-purchase-2d.csv"]


def test_resource_and_format_must_fit():
    with pytest.raises(InvalidRequest) as invalid:
        parse_spec(project_id=PROJECT, requested_by="maria", resource="insight", format="parquet")
    assert invalid.value.details == {"format": "insight exports come as png, csv, xlsx, json, not parquet",
                                     "target_id": "required: the id of the insight to export"}
    with pytest.raises(InvalidRequest, match="only insight and dashboard exports take a target_id"):
        parse_spec(project_id=PROJECT, requested_by="maria", target_id="abc")
