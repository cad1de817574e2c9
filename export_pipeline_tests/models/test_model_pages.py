"""A model's rows a page at a time (models/pages.py), on the embedded engine: pages by keyset, one row by its
key within the query's filters, the count, each row shaped as the JSON exports write it."""

from __future__ import annotations

import json

import pytest

from export_pipeline.engine.extract import ExportQuery
from export_pipeline.engine.spec import parse_spec
from export_pipeline.models.events import events_model
from export_pipeline.models.pages import page_rows, row_by_key, row_count
from export_pipeline.models.persons import persons_model
from export_pipeline_tests.fakes.peopledata import T0, insert_distinct_ids, insert_persons, person_uuid

PROJECT = 7106
PEOPLE = [person_uuid(PROJECT, n) for n in range(1, 6)]


@pytest.fixture(scope="module")
def people(clickhouse, events_table) -> list[str]:
    insert_persons(clickhouse, events_table, [
        (PROJECT, pid, T0, json.dumps({"n": n}), 1, 0, 1, T0) for n, pid in enumerate(PEOPLE)
    ])
    insert_distinct_ids(clickhouse, events_table, [(PROJECT, f"p-{n}", pid, 0, 1, T0) for n, pid in enumerate(PEOPLE)])
    return PEOPLE


def persons_query(events_table, **filters) -> ExportQuery:
    spec = parse_spec(project_id=PROJECT, requested_by="maria", resource="persons", **filters)
    return ExportQuery(persons_model(events_table), spec, T0)


def test_pages_follow_the_key_and_rows_read_as_the_json_exports_write_them(clickhouse, events_table, people):
    query = persons_query(events_table)
    with clickhouse.session("test pages") as session:
        first = page_rows(session, query, after=None, limit=2)
        rest = page_rows(session, query, after=(first[-1]["id"],), limit=10)
        total = row_count(session, query)
    assert [row["id"] for row in first] == people[:2] and [row["id"] for row in rest] == people[2:]
    assert total == 5
    assert {name: first[1][name] for name in ("id", "created_at", "is_identified", "version", "distinct_ids",
                                              "properties")} == {
        "id": people[1], "created_at": "2026-03-01T00:00:00.000000Z", "is_identified": True, "version": 1,
        "distinct_ids": ["p-1"], "properties": {"n": 1}}


def test_one_row_by_its_key_only_within_the_querys_filters(clickhouse, events_table, people):
    everyone = persons_query(events_table)
    above_two = persons_query(events_table, properties=[{"key": "n", "operator": "gt", "value": 2}])
    with clickhouse.session("test one row") as session:
        found = row_by_key(session, everyone, people[3])
        filtered_out = row_by_key(session, above_two, people[1])
        kept = row_by_key(session, above_two, people[4])
        unknown = row_by_key(session, everyone, person_uuid(PROJECT, 999))
        assert row_count(session, above_two) == 2
    assert found == {"id": people[3], "created_at": "2026-03-01T00:00:00.000000Z", "is_identified": True,
                     "version": 1, "distinct_ids": ["p-3"], "properties": {"n": 3}}
    assert filtered_out is None and unknown is None
    assert kept is not None and kept["id"] == people[4]


def test_a_row_by_key_needs_a_model_paged_by_one_key_column(clickhouse, events_table):
    query = ExportQuery(events_model(events_table), parse_spec(project_id=PROJECT, requested_by="maria"), T0)
    with clickhouse.session("test two keys") as session, pytest.raises(ValueError) as refused:
        row_by_key(session, query, "anything")
    assert str(refused.value) == "model 'events' is paged by 2 key columns, not one"
