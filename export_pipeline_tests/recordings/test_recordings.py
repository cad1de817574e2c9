"""Recordings: exported as PostHog's recording files whose snapshots are exactly the stored rrweb events in
order (across blocks and windows), with an index of the sessions in the chosen format; filters; the API's
streamed snapshots; memory stays bounded however long the recording."""

from __future__ import annotations

import gzip
import json
import logging
import subprocess
import sys
import textwrap
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from export_pipeline.accounts.roles import Role, add_member
from export_pipeline.engine.spec import parse_spec
from export_pipeline.exports.manifest import read_manifest
from export_pipeline.exports.run import run_export
from export_pipeline.recordings import seed as recording_seed
from export_pipeline.recordings.blobs import RecordingBlobs
from export_pipeline.recordings.document import snapshot
from export_pipeline.recordings.seed import store_recording
from export_pipeline.storage import storage_from_url
from export_pipeline_tests.fakes.peopledata import (
    T0,
    insert_distinct_ids,
    insert_persons,
    person_uuid,
    plain_rows,
)

PROJECT = 7105
ANN = person_uuid(PROJECT, 1)
START = datetime(2026, 6, 1, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def stored(clickhouse, events_table, store, settings) -> dict:
    add_member(store.engine, PROJECT, "maria", Role.MAINTAINER)
    insert_persons(clickhouse, events_table, [(PROJECT, ANN, T0, json.dumps({"name": "Ann \"A\"\n"}), 1, 0, 1, T0)])
    insert_distinct_ids(clickhouse, events_table, [(PROJECT, "ann", ANN, 0, 1, T0)])
    blobs = RecordingBlobs(storage_from_url(settings.recordings_storage_url))
    original = recording_seed.BLOCK_EVENTS
    recording_seed.BLOCK_EVENTS = 7  # many blocks per recording
    try:
        with clickhouse.session("test recordings") as session:
            events = {
                "s-long": store_recording(session.client, events_table, blobs, project_id=PROJECT, session_id="s-long",
                                          distinct_id="ann", url="https://app.example.com/ü", start=START,
                                          end=START + timedelta(minutes=30), seed=1),
                "s-short": store_recording(session.client, events_table, blobs, project_id=PROJECT, session_id="s-short",
                                           distinct_id="nobody", url="https://app.example.com/", start=START,
                                           end=START, seed=2),
            }
    finally:
        recording_seed.BLOCK_EVENTS = original
    return {"events": events, "blobs": blobs}


def export(deps, **filters) -> tuple[dict, dict]:
    request = deps.store.create(parse_spec(project_id=PROJECT, requested_by="maria", resource="recordings", **filters),
                                source="test")
    result = run_export(request.id, deps, run_id=str(uuid.uuid4()), run_is_active=lambda _: False,
                        log=logging.getLogger("test"))
    manifest = read_manifest(deps.storage, result.manifest_key)
    files = {f["name"]: deps.storage.read_bytes(f"{request.storage_prefix}/{f['name']}") for f in manifest["files"]}
    return manifest, files


def test_each_recording_file_holds_exactly_the_stored_events_in_order(deps, stored):
    manifest, files = export(deps, format="csv")
    assert sorted(files) == ["part-00000.csv.gz", "recording-s-long.json.gz", "recording-s-short.json.gz"]
    index = plain_rows("part-00000.csv.gz", files["part-00000.csv.gz"])
    assert [row["session_id"] for row in index] == ["s-long", "s-short"]
    assert index[0]["person_id"] == ANN and index[1]["person_id"] == ""
    for name, events in stored["events"].items():
        document = json.loads(gzip.decompress(files[f"recording-{name}.json.gz"]))
        assert document["version"] == "2023-04-28" and document["data"]["id"] == name
        assert document["data"]["snapshots"] == [{**event, "windowId": window} for window, event in events]
        entry = next(f for f in manifest["files"] if f["name"] == f"recording-{name}.json.gz")
        assert entry["rows"] == len(events) and entry["bytes"] == len(files[entry["name"]])
    long_doc = json.loads(gzip.decompress(files["recording-s-long.json.gz"]))
    assert long_doc["data"]["person"] == {"uuid": ANN, "distinct_ids": ["ann"], "properties": {"name": "Ann \"A\"\n"}}
    assert json.loads(gzip.decompress(files["recording-s-short.json.gz"]))["data"]["person"] is None
    assert len(stored["blobs"].block_keys(PROJECT, "s-long")) > 3


def test_recordings_filters(deps, stored):
    _, by_person = export(deps, person_id=ANN, format="ndjson", compression="none")
    assert sorted(by_person) == ["part-00000.ndjson", "recording-s-long.json"]
    _, by_duration = export(deps, min_duration=600, format="parquet")
    assert sorted(by_duration) == ["part-00000.parquet", "recording-s-long.json.zst"]
    _, by_id = export(deps, distinct_id="nobody", format="json", compression="none")
    assert [row["session_id"] for row in json.loads(by_id["part-00000.json"])] == ["s-short"]


def _streamed_peak(blobs: RecordingBlobs, url: str, session_id: str, megabytes: int) -> tuple[int, int]:
    """Store ~`megabytes` MB of events as 1 MB blocks; stream the document back in a fresh process, where no
    other test's threads allocate meanwhile: (bytes, peak of Python's traced memory)."""
    big = {"type": 3, "data": {"source": 0, "texts": [{"id": 1, "value": "x" * 100_000}]}, "timestamp": 1}
    for block in range(megabytes):
        blobs.write_block(PROJECT, session_id, block, [("w", {**big, "timestamp": block * 10 + n}) for n in range(10)])
    code = textwrap.dedent(f"""
        import json, tracemalloc
        from export_pipeline.recordings.blobs import RecordingBlobs
        from export_pipeline.recordings.document import recording_document
        from export_pipeline.storage import storage_from_url
        blobs = RecordingBlobs(storage_from_url({url!r}))
        tracemalloc.start()
        total = sum(len(piece) for piece in recording_document(blobs, {PROJECT}, {session_id!r}, None))
        print(json.dumps([total, tracemalloc.get_traced_memory()[1]]))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    total, peak = json.loads(done.stdout)
    return total, peak


def test_a_long_recording_streams_in_bounded_memory(stored, settings):
    total, peak = _streamed_peak(stored["blobs"], settings.recordings_storage_url, "s-huge", 40)
    assert total > 40_000_000
    assert peak < 8_000_000, peak


@pytest.mark.bench
def test_a_recording_of_hundreds_of_megabytes_streams_in_the_same_memory(stored, settings):
    total, peak = _streamed_peak(stored["blobs"], settings.recordings_storage_url, "s-giant", 400)
    assert total > 400_000_000
    assert peak < 8_000_000, peak


@pytest.fixture(scope="module")
def http(settings, store, stored):
    from fastapi.testclient import TestClient

    from export_pipeline.accounts.tokens import create_token
    from export_pipeline.api.app import create_app

    add_member(store.engine, PROJECT, "dev", Role.DEVELOPER)
    tokens = {user: create_token(store.engine, user)[0] for user in ("maria", "dev", "outsider")}
    with TestClient(create_app(settings)) as client:
        yield lambda who, path, **kw: client.get(f"/api/v1/projects/{PROJECT}/recordings{path}",
                                                 headers={"Authorization": f"Bearer {tokens[who]}"}, **kw)


@pytest.mark.parametrize("path", ["", "/s-long", "/s-long/snapshots"])
def test_recordings_api_is_for_maintainers(http, path):
    assert http("outsider", path).status_code == 404
    assert http("dev", path).status_code == 403
    assert http("maria", path).status_code == 200


def test_recordings_api_lists_pages_and_streams_the_stored_events(http, stored):
    pages, cursor = [], None
    while True:
        page = http("maria", "", params={"limit": 1, **({"cursor": cursor} if cursor else {})}).json()
        pages += [r["session_id"] for r in page["data"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert pages == ["s-long", "s-short"]
    meta = http("maria", "/s-long").json()
    events = stored["events"]["s-long"]
    assert (meta["person_id"], meta["event_count"], meta["start_time"]) == (
        ANN, len(events), "2026-06-01T12:00:00.000000Z")
    assert meta["person_properties"] == {"name": "Ann \"A\"\n"}
    document = http("maria", "/s-long/snapshots").json()
    assert document["data"]["snapshots"] == [{**event, "windowId": window} for window, event in events]
    assert http("maria", "/nope").status_code == 404
    assert http("maria", "/bad%20id/snapshots").status_code == 404


@pytest.mark.parametrize(("line", "expected"), [
    # The stored event's text is kept, the window id appended last.
    (b'["w1",{"type":3,"data":{"x":1}}]\n', b'{"type":3,"data":{"x":1},"windowId":"w1"}'),
    ('["日本",{"t":"say \\"hi\\"\\n","n":null}]'.encode(), '{"t":"say \\"hi\\"\\n","n":null,"windowId":"日本"}'.encode()),
    (b'[ "w" , { "x": [1, 2] } ]\r\n', b'{"x": [1, 2],"windowId":"w"}'),
    (b'["w",{}]', b'{"windowId":"w"}'),
    # An event that already has a windowId gets it replaced, not repeated (parsed and re-encoded).
    (b'["w",{"windowId":"old","b":1}]', b'{"windowId":"w","b":1}'),
])
def test_snapshot_appends_the_window_id_to_the_stored_event(line, expected):
    assert snapshot(line) == expected
