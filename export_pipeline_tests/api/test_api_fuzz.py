"""Fuzzing the HTTP API: whatever a client sends, the answer is never a 5xx (and always our error shape)."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from export_pipeline.accounts.roles import Role, add_member
from export_pipeline.accounts.tokens import create_token
from export_pipeline.api.app import create_app
from export_pipeline_tests.fakes.exportdata import insert_events, known_events

PROJECT = 9501
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=10,
)
field_names = st.sampled_from(["format", "compression", "date_from", "date_to", "events", "resource", "sql", ""])
bodies = st.dictionaries(field_names, json_values, max_size=5) | json_values
path_ids = st.sampled_from([str(PROJECT), "0", "-1", "99999999999999999999999", "abc", "1e3", "%00", "9501.5"])
query_values = st.text(max_size=40) | st.sampled_from(["0", "1001", "-5", "2026-13-45", "2026-01-01", "eyJhIjoxfQ"])
query_keys = st.sampled_from(["limit", "cursor", "date_from", "date_to", "event", "x"])


@pytest.fixture(scope="module")
def fuzz_client(settings, clickhouse, events_table, store):
    insert_events(clickhouse, events_table, known_events(PROJECT)[:200])
    add_member(store.engine, PROJECT, "fuzzer", Role.OWNER)
    token, _ = create_token(store.engine, "fuzzer")
    app = create_app(settings.model_copy(update={"api_max_in_flight_exports": 1_000_000}))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, token


def _check(response) -> None:
    assert response.status_code < 500, (response.request.method, response.request.url, response.text)
    if response.status_code >= 400:
        assert set(response.json()["error"]) == {"code", "message", "hint", "details"}


@hypothesis_settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method=st.sampled_from(["GET", "POST", "DELETE"]),
    project=path_ids,
    tail=st.sampled_from(["/exports", "/events", "/exports/{x}", "/exports/{x}/files/{x}", ""]),
    ident=st.text(min_size=1, max_size=20),
    params=st.lists(st.tuples(query_keys, query_values), max_size=4),
    body=bodies,
    auth=st.sampled_from(["valid", "none", "garbage"]),
)
def test_no_input_makes_the_api_fail(fuzz_client, method, project, tail, ident, params, body, auth):
    client, token = fuzz_client
    headers = {"valid": {"Authorization": f"Bearer {token}"}, "none": {}, "garbage": {"Authorization": "Bearer epat_x"}}[auth]
    url = f"/api/v1/projects/{project}{tail.replace('{x}', quote(ident, safe=''))}"
    response = client.request(method, url, params=params, json=body, headers=headers)
    _check(response)
