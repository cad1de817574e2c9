"""Persons, groups and cohorts over HTTP: the role matrix with exact statuses, typed payloads, keyset pages
that neither lose nor repeat a person, cohort CRUD with CSV upload."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from export_pipeline.accounts.roles import Role, add_member
from export_pipeline.accounts.tokens import create_token
from export_pipeline.api.app import create_app
from export_pipeline.models.group_types import set_group_type
from export_pipeline_tests.fakes.peopledata import (
    T0,
    insert_distinct_ids,
    insert_groups,
    insert_persons,
    person_uuid,
)

PROJECT = 7104
ROLES = {"guest": Role.GUEST, "reporter": Role.REPORTER, "developer": Role.DEVELOPER, "maintainer": Role.MAINTAINER,
         "owner": Role.OWNER}
PEOPLE = [person_uuid(PROJECT, n) for n in range(1, 26)]


@pytest.fixture(scope="module")
def api(settings, clickhouse, events_table, store) -> Iterator[dict]:
    for name, role in ROLES.items():
        add_member(store.engine, PROJECT, name, role)
    insert_persons(clickhouse, events_table, [
        (PROJECT, pid, T0, json.dumps({"n": n, "plan": "pro" if n % 2 else "free"}), 1, 0, 1, T0)
        for n, pid in enumerate(PEOPLE)
    ])
    insert_distinct_ids(clickhouse, events_table, [(PROJECT, f"d-{n}", pid, 0, 1, T0) for n, pid in enumerate(PEOPLE)])
    set_group_type(store.engine, PROJECT, 0, "organization")
    insert_groups(clickhouse, events_table, [(PROJECT, 0, f"org-{n}", T0, "{}", T0) for n in range(3)])
    tokens = {name: create_token(store.engine, name)[0] for name in [*ROLES, "stranger"]}
    with TestClient(create_app(settings.model_copy(update={"api_max_in_flight_exports": 50}))) as http:
        yield {"http": http, "tokens": tokens}


def call(api: dict, who: str, method: str, path: str, **kwargs):
    headers = {"Authorization": f"Bearer {api['tokens'][who]}"}
    return api["http"].request(method, f"/api/v1/projects/{PROJECT}{path}", headers=headers, **kwargs)


READS_PEOPLE = [("GET", "/persons"), ("GET", f"/persons/{PEOPLE[0]}"), ("GET", "/groups?group_type=organization")]


@pytest.mark.parametrize(("who", "expected"), [("stranger", 404), ("guest", 403), ("reporter", 403),
                                               ("developer", 403), ("maintainer", 200), ("owner", 200)])
def test_people_endpoints_need_maintainer(api, who, expected):
    for method, path in READS_PEOPLE:
        response = call(api, who, method, path)
        assert response.status_code == expected, (path, response.text)
        if expected == 403:
            assert response.json()["error"]["code"] == "access_denied"


def test_cohort_role_matrix_members_read_maintainers_write(api):
    created = call(api, "maintainer", "POST", "/cohorts", json={"name": "pro", "kind": "dynamic", "definition": {
        "match": "all", "filters": [{"type": "property", "key": "plan", "operator": "exact", "value": "pro"}]}})
    assert created.status_code == 201, created.text
    cohort_id = created.json()["id"]
    for who in ("guest", "reporter", "developer"):
        assert call(api, who, "GET", f"/cohorts/{cohort_id}").status_code == 200
        assert call(api, who, "GET", "/cohorts").status_code == 200
        assert call(api, who, "PATCH", f"/cohorts/{cohort_id}", json={"name": "x"}).status_code == 403
        assert call(api, who, "DELETE", f"/cohorts/{cohort_id}").status_code == 403
        assert call(api, who, "POST", "/cohorts", json={"name": "x", "kind": "static"}).status_code == 403
        assert call(api, who, "GET", f"/cohorts/{cohort_id}/persons").status_code == 403
    assert call(api, "stranger", "GET", f"/cohorts/{cohort_id}").status_code == 404
    assert call(api, "owner", "GET", f"/cohorts/{cohort_id}").json()["person_count"] == 12


def test_persons_page_by_keyset_without_loss_or_repeat_and_a_person_by_id(api):
    seen, cursor = [], None
    while True:
        page = call(api, "maintainer", "GET", "/persons", params={"limit": 7, **({"cursor": cursor} if cursor else {})}).json()
        seen += page["data"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(p["id"] for p in seen) == sorted(PEOPLE) and len(seen) == 25
    one = call(api, "maintainer", "GET", f"/persons/{PEOPLE[3]}").json()
    assert one == {"id": PEOPLE[3], "created_at": "2026-03-01T00:00:00.000000Z", "is_identified": True, "version": 1,
                   "distinct_ids": ["d-3"], "properties": {"n": 3, "plan": "pro"}}
    assert call(api, "maintainer", "GET", f"/persons/{person_uuid(PROJECT, 999)}").status_code == 404
    assert call(api, "maintainer", "GET", "/persons/not-a-uuid").status_code == 404
    filtered = call(api, "maintainer", "GET", "/persons", params={
        "properties": json.dumps([{"key": "n", "operator": "lt", "value": 2}])}).json()["data"]
    assert sorted(p["id"] for p in filtered) == sorted(PEOPLE[:2])
    bad = call(api, "maintainer", "GET", "/persons", params={"properties": json.dumps([{"key": "n", "operator": "near"}])})
    assert bad.status_code == 422 and "operator must be one of" in bad.json()["error"]["message"]


def test_groups_and_a_static_cohort_uploaded_as_csv(api):
    groups = call(api, "maintainer", "GET", "/groups", params={"group_type": "0", "limit": 2}).json()
    assert [g["key"] for g in groups["data"]] == ["org-0", "org-1"] and groups["next_cursor"]
    rest = call(api, "maintainer", "GET", "/groups", params={"group_type": "0", "cursor": groups["next_cursor"]}).json()
    assert [g["key"] for g in rest["data"]] == ["org-2"] and rest["next_cursor"] is None
    assert call(api, "maintainer", "GET", "/groups", params={"group_type": "teams"}).status_code == 422

    cohort = call(api, "maintainer", "POST", "/cohorts", json={"name": "picked", "kind": "static",
                                                                "person_ids": [PEOPLE[0]]}).json()
    assert cohort["person_count"] == 1
    uploaded = api["http"].put(f"/api/v1/projects/{PROJECT}/cohorts/{cohort['id']}/persons.csv",
                               content=f"person_id\n{PEOPLE[5]}\n{PEOPLE[6]}\n".encode(),
                               headers={"Authorization": f"Bearer {api['tokens']['maintainer']}", "Content-Type": "text/csv"})
    assert uploaded.status_code == 200, uploaded.text
    assert uploaded.json()["person_count"] == 2
    members = call(api, "maintainer", "GET", f"/cohorts/{cohort['id']}/persons").json()
    assert sorted(p["id"] for p in members["data"]) == sorted(PEOPLE[5:7])
    assert call(api, "maintainer", "DELETE", f"/cohorts/{cohort['id']}").status_code == 204
    assert call(api, "maintainer", "GET", f"/cohorts/{cohort['id']}").status_code == 404


def test_post_exports_takes_every_people_resource_with_its_filters(api):
    persons = call(api, "maintainer", "POST", "/exports", json={
        "resource": "persons", "format": "csv", "properties": [{"key": "plan", "operator": "exact", "value": "pro"}]})
    assert persons.status_code == 202, persons.text
    assert (persons.json()["resource"], persons.json()["properties"]) == (
        "persons", [{"key": "plan", "operator": "exact", "value": "pro"}])
    groups = call(api, "maintainer", "POST", "/exports", json={"resource": "groups", "group_type": "organization"})
    assert groups.status_code == 202 and groups.json()["group_type"] == "organization"
    unknown = call(api, "maintainer", "POST", "/exports", json={"resource": "groups", "group_type": "teams"})
    assert unknown.status_code == 422 and unknown.json()["error"]["details"] == {
        "group_type": "unknown group type 'teams'"}
    missing = call(api, "maintainer", "POST", "/exports", json={"resource": "cohort", "cohort_id": 999_999})
    assert missing.status_code == 404
    assert call(api, "developer", "POST", "/exports", json={"resource": "persons"}).status_code == 403
