"""Hostile input to the HTTP API: forged page cursors answer 422 `invalid_request` (never 500), and request
bodies over the limit answer 413, whether their length is declared or they arrive chunked."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from export_pipeline.accounts.roles import Role, add_member
from export_pipeline.accounts.tokens import create_token
from export_pipeline.api.app import create_app
from export_pipeline.api.cursors import encode_cursor
from export_pipeline_tests.conftest import serving
from export_pipeline_tests.fakes.exportdata import insert_events

PROJECT = 9831
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def http(settings, clickhouse, events_table, store) -> Iterator[httpx.Client]:
    moment = datetime(2026, 3, 2, 10, tzinfo=UTC)
    insert_events(clickhouse, events_table,
                  [[PROJECT, uuid.uuid4(), "signed_up", moment, "u", uuid.uuid4(), "{}"] for _ in range(3)])
    add_member(store.engine, PROJECT, "maria", Role.MAINTAINER)
    token, _ = create_token(store.engine, "maria")
    with serving(create_app(settings)) as url, \
            httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
        yield client


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


GOOD_TIME, GOOD_UUID = "2026-03-02T10:00:00+00:00", str(uuid.uuid4())
EVENT_CURSORS = {
    "not base64": "!!!$$$%%%",
    "base64 of bytes that are not UTF-8": b64(b"\xff\xfe\xfd"),
    "base64 of text that is not JSON": b64(b"hello"),
    "a JSON list": b64(b"[1, 2, 3]"),
    "missing keys": encode_cursor({"as_of": GOOD_TIME}),
    "extra keys": encode_cursor({"as_of": GOOD_TIME, "ts": GOOD_TIME, "uuid": GOOD_UUID, "x": "1"}),
    "a number for a time": encode_cursor({"as_of": 1, "ts": GOOD_TIME, "uuid": GOOD_UUID}),
    "null for a uuid": encode_cursor({"as_of": GOOD_TIME, "ts": GOOD_TIME, "uuid": None}),
    "a uuid that does not parse": encode_cursor({"as_of": GOOD_TIME, "ts": GOOD_TIME, "uuid": "' OR 1=1 --"}),
    "a time that does not parse": encode_cursor({"as_of": GOOD_TIME, "ts": "yesterday", "uuid": GOOD_UUID}),
    "a huge year": encode_cursor({"as_of": GOOD_TIME, "ts": "9999-12-31T23:59:59+00:00", "uuid": GOOD_UUID}),
    "before 1970": encode_cursor({"as_of": "1969-12-31T23:59:59+00:00", "ts": GOOD_TIME, "uuid": GOOD_UUID}),
    "a naive time": encode_cursor({"as_of": "2026-03-02T10:00:00", "ts": GOOD_TIME, "uuid": GOOD_UUID}),
}
EXPORT_CURSORS = {
    "not base64": "@@@@",
    "a JSON string": b64(json.dumps("created_at").encode()),
    "a number for the time": encode_cursor({"created_at": 1700000000, "id": "exp_1"}),
    "a time that does not parse": encode_cursor({"created_at": "not a time", "id": "exp_1"}),
    "a huge year": encode_cursor({"created_at": "9999-01-01T00:00:00+00:00", "id": "exp_1"}),
    "a naive time": encode_cursor({"created_at": "2026-03-02T10:00:00", "id": "exp_1"}),
    "an id with quotes": encode_cursor({"created_at": GOOD_TIME, "id": "x' OR '1'='1"}),
    "a list for the id": encode_cursor({"created_at": GOOD_TIME, "id": ["exp_1"]}),
}


def assert_invalid_cursor(response: httpx.Response) -> None:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and "cursor" in error["details"]


@pytest.mark.parametrize("cursor", EVENT_CURSORS.values(), ids=EVENT_CURSORS.keys())
def test_forged_event_cursors_are_refused(http, cursor):
    assert_invalid_cursor(http.get(f"/api/v1/projects/{PROJECT}/events", params={"cursor": cursor}))


@pytest.mark.parametrize("cursor", EXPORT_CURSORS.values(), ids=EXPORT_CURSORS.keys())
def test_forged_export_list_cursors_are_refused(http, cursor):
    assert_invalid_cursor(http.get(f"/api/v1/projects/{PROJECT}/exports", params={"cursor": cursor}))


def test_a_well_formed_cursor_still_pages(http):
    cursor = encode_cursor({"as_of": datetime.now(UTC).isoformat(), "ts": "1970-01-01T00:00:00+00:00",
                            "uuid": GOOD_UUID})
    response = http.get(f"/api/v1/projects/{PROJECT}/events", params={"cursor": cursor})
    assert response.status_code == 200 and len(response.json()["data"]) == 3


def assert_too_large(response: httpx.Response) -> None:
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert error["code"] == "payload_too_large" and error["details"] == {"limit_bytes": MIB}
    assert "EXPORT_API_MAX_BODY_BYTES" in error["message"]


def big_body() -> bytes:
    return json.dumps({"format": "csv", "events": ["x" * 1000] * (2 * MIB // 1000)}).encode()


def test_a_body_over_the_limit_is_413_before_it_is_read(http):
    body = big_body()
    assert len(body) > 2 * MIB
    assert_too_large(http.post(f"/api/v1/projects/{PROJECT}/exports", content=body,
                               headers={"Content-Type": "application/json"}))


def test_a_chunked_body_over_the_limit_is_413(http):
    body = big_body()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 64 * 1024):
            yield body[start:start + 64 * 1024]

    response = http.post(f"/api/v1/projects/{PROJECT}/exports", content=chunks(),
                         headers={"Content-Type": "application/json"})
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert_too_large(response)


def test_a_body_under_the_limit_is_read_as_usual(http):
    response = http.post(f"/api/v1/projects/{PROJECT}/exports", json={"format": "nope"})
    assert response.status_code == 422 and "format" in response.json()["error"]["details"]
