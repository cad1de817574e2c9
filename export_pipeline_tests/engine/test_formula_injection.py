"""OWASP CSV injection: text a spreadsheet would evaluate is neutralised in CSV (with an opt-out for machine
consumers) and is never a formula in XLSX; machine formats keep the exact values."""

from __future__ import annotations

import csv
import io
import json
import logging
import uuid
from dataclasses import replace
from datetime import UTC, datetime

import openpyxl
import pytest

from export_pipeline.accounts.roles import Role, add_member
from export_pipeline.engine.spec import parse_spec
from export_pipeline.exports.manifest import read_manifest
from export_pipeline.exports.run import run_export
from export_pipeline.insights.store import InsightStore
from export_pipeline_tests.fakes.exportdata import insert_events

EVENTS_PROJECT = 9821
INSIGHT_PROJECT = 9822
HYPERLINK = '=HYPERLINK("http://x","click")'
# Each of the six leading characters a spreadsheet evaluates, and what a CSV cell must hold instead.
DANGEROUS = {
    "=1+1": "'=1+1",
    "+1+1": "'+1+1",
    "-1+1": "'-1+1",
    "@SUM(A1:A2)": "'@SUM(A1:A2)",
    "\tcmd": "'\tcmd",
    "\rcmd": "'\rcmd",
    HYPERLINK: "'" + HYPERLINK,
}
HARMLESS = ["signed_up", "a=b", "x-1", "mail@example.com"]
MOMENT = datetime(2026, 3, 2, 10, tzinfo=UTC)


@pytest.fixture(scope="module", autouse=True)
def events(clickhouse, events_table, store):
    names = [*DANGEROUS, *HARMLESS]
    insert_events(clickhouse, events_table, [
        [project, uuid.uuid4(), name, MOMENT, name, uuid.uuid4(), "{}"]
        for project in (EVENTS_PROJECT, INSIGHT_PROJECT) for name in names
    ])
    for project in (EVENTS_PROJECT, INSIGHT_PROJECT):
        add_member(store.engine, project, "maria", Role.MAINTAINER)


def export(deps, project_id: int, **fields) -> dict[str, bytes]:
    request = deps.store.create(parse_spec(project_id=project_id, requested_by="maria", **fields), source="test")
    result = run_export(request.id, deps, run_id=f"r-{request.id}", run_is_active=lambda _: False,
                        log=logging.getLogger("test"))
    manifest = read_manifest(deps.storage, result.manifest_key)
    return {f["name"]: deps.storage.read_bytes(f"{request.storage_prefix}/{f['name']}") for f in manifest["files"]}


def csv_rows(data: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(data.decode(), newline="")))


def opted_out(deps):
    return replace(deps, settings=deps.settings.model_copy(update={"csv_escape_formulas": False}))


def test_event_csv_cells_are_neutralised_and_numbers_kept(deps):
    (data,) = export(deps, EVENTS_PROJECT, format="csv", compression="none").values()
    rows = csv_rows(data)
    assert sorted(row["event"] for row in rows) == sorted([*DANGEROUS.values(), *HARMLESS])
    for row in rows:  # every text column is neutralised, not only `event`
        assert row["distinct_id"] == row["event"]
    assert {row["project_id"] for row in rows} == {str(EVENTS_PROJECT)}
    assert {row["timestamp"] for row in rows} == {"2026-03-02T10:00:00.000000Z"}


def test_event_csv_opt_out_keeps_exact_values(deps):
    (data,) = export(opted_out(deps), EVENTS_PROJECT, format="csv", compression="none").values()
    assert sorted(row["event"] for row in csv_rows(data)) == sorted([*DANGEROUS, *HARMLESS])


def test_machine_formats_keep_exact_values(deps):
    (data,) = export(deps, EVENTS_PROJECT, format="ndjson", compression="none").values()
    assert sorted(json.loads(line)["event"] for line in data.splitlines()) == sorted([*DANGEROUS, *HARMLESS])


@pytest.fixture(scope="module")
def trends(store):
    return InsightStore(store.engine).create_insight(
        INSIGHT_PROJECT, name="Dangerous series", created_by="maria",
        query={"kind": "trends", "events": [*DANGEROUS, *HARMLESS], "date_from": "2026-03-01", "date_to": "2026-03-04"},
    )


def test_insight_csv_cells_are_neutralised_and_numbers_kept(deps, trends):
    files = export(deps, INSIGHT_PROJECT, resource="insight", target_id=trends.id, format="csv")
    rows = csv_rows(files["insight.csv"])
    assert sorted(row["series"] for row in rows if row["value"] != "0") == sorted([*DANGEROUS.values(), *HARMLESS])
    assert {row["value"] for row in rows} <= {"0", "1"}


def test_insight_csv_opt_out_keeps_exact_values(deps, trends):
    files = export(opted_out(deps), INSIGHT_PROJECT, resource="insight", target_id=trends.id, format="csv")
    rows = csv_rows(files["insight.csv"])
    assert sorted(row["series"] for row in rows if row["value"] != "0") == sorted([*DANGEROUS, *HARMLESS])


def test_insight_xlsx_writes_text_as_strings_never_formulas(deps, trends):
    files = export(deps, INSIGHT_PROJECT, resource="insight", target_id=trends.id, format="xlsx")
    sheet = openpyxl.load_workbook(io.BytesIO(files["insight.xlsx"])).worksheets[0]
    header, *rows = list(sheet.iter_rows())
    assert [cell.value for cell in header] == ["bucket", "series", "value"]
    # OOXML stores a CR as `_x000D_`, which Excel decodes and openpyxl leaves as is.
    series = {row[1].value.replace("_x000D_", "\r"): row for row in rows if row[2].value}
    assert sorted(series) == sorted([*DANGEROUS, *HARMLESS])
    for _bucket, cell, value in series.values():
        assert cell.data_type == "s"  # openpyxl reads a formula as data_type "f"
        assert (value.data_type, value.value) == ("n", 1)
