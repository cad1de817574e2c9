"""The reconciler and resume on real chDB, SQLite and a folder: a kill -9 mid-export leaves the request
running with a partial file; the reconciler fails it with the cause, removes what was not recorded, and a
retry resumes after the recorded parts with exactly the project's rows. Also: a silent export is failed, a
live one is left alone, and a storage fault during cleanup never hides the export's own failure."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import uuid
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from export_pipeline.accounts.roles import Role, add_member
from export_pipeline.clock import now_utc
from export_pipeline.db import export_requests
from export_pipeline.engine.spec import parse_spec
from export_pipeline.errors import StorageError
from export_pipeline.exports.deps import ExportDeps
from export_pipeline.exports.manifest import read_manifest
from export_pipeline.exports.parts import PartLog
from export_pipeline.exports.reconcile import INTERRUPTED, Reconciler, RunView
from export_pipeline.exports.requests import ExportState
from export_pipeline.exports.run import run_export
from export_pipeline_tests.fakes.exportdata import (
    expected_rows,
    insert_events,
    known_events,
    read_export_rows,
)

LOG = logging.getLogger("test")
PROJECT = 9351
MAINTAINER = "rita"
ROOT = Path(__file__).resolve().parents[2]
# Parts close only after a whole chunk: several chunks per part, so a crash can leave a part half written.
SMALL = {"EXPORT_PART_SIZE_BYTES": "150000", "EXPORT_CHUNK_BYTES": "65536"}


@pytest.fixture(scope="module", autouse=True)
def known_data(clickhouse, events_table, store):
    insert_events(clickhouse, events_table, known_events(PROJECT))
    add_member(store.engine, PROJECT, MAINTAINER, Role.MAINTAINER)


def small_parts(deps: ExportDeps) -> ExportDeps:
    return replace(deps, settings=deps.settings.model_copy(update={"part_size_bytes": 150000, "chunk_bytes": 65536}))


def reconciler(deps: ExportDeps, *, stale_after: float = 120) -> Reconciler:
    return Reconciler(deps.store, deps.storage, stale_after=timedelta(seconds=stale_after),
                      expires_after=timedelta(hours=1), log=LOG)


def crash_export(deps: ExportDeps, export_id: str, storage_url: str, *, after_parts: int) -> str:
    run_id = f"crashed-{uuid.uuid4()}"
    done = subprocess.run(
        [sys.executable, "-m", "export_pipeline_tests.fakes.crashing_export", export_id, storage_url, run_id, str(after_parts)],
        cwd=ROOT, env={**os.environ, **SMALL}, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == -9, done.stderr[-2000:]
    return run_id


def files_on_disk(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*") if p.is_file())


def test_a_killed_export_is_failed_cleaned_and_resumed_with_exact_rows(deps, clickhouse, events_table, tmp_path):
    storage_url = f"file://{tmp_path / 'exports'}"
    deps = small_parts(deps)
    request = deps.store.create(parse_spec(project_id=PROJECT, requested_by=MAINTAINER, format="ndjson",
                                           compression="none"), source="test")
    dead_run = crash_export(deps, request.id, storage_url, after_parts=3)

    stuck = deps.store.require(request.id)
    assert (stuck.state, stuck.run_id) == (ExportState.RUNNING, dead_run)
    recorded = PartLog(deps.engine).resumable(request.id, request.storage_prefix)
    assert len(recorded) >= 3
    left = files_on_disk(tmp_path / "exports")
    assert any(".partial-" in name for name in left), left  # the part being written when it died

    done = reconciler(deps).run(lambda run_id: RunView(False, "FAILURE", "step process killed by signal 9"),
                                now=now_utc())
    assert [(r.request.id, r.run_ended, r.cleanup_error) for r in done] == [(request.id, True, None)]
    failed = deps.store.require(request.id)
    assert failed.state is ExportState.FAILED
    assert (failed.error_code, failed.error) == (
        INTERRUPTED, f"Run {dead_run} ended (FAILURE) before the export finished: step process killed by signal 9")
    kept = PartLog(deps.engine).resumable(request.id, request.storage_prefix)
    assert files_on_disk(tmp_path / "exports") == [part.file.name for part in kept]  # no partial, nothing unrecorded

    result = run_export(request.id, deps, run_id="retry", run_is_active=lambda _: False, log=LOG)
    manifest = read_manifest(deps.storage, result.manifest_key)
    names = [f["name"] for f in manifest["files"]]
    assert names == sorted(set(names)) and len(names) > len(kept)
    # The kept parts are listed as recorded, not rewritten.
    assert manifest["files"][: len(kept)] == [
        {"name": p.file.name, "rows": p.file.rows, "bytes": p.file.bytes, "sha256": p.file.sha256} for p in kept]
    assert read_export_rows(deps.storage, request.storage_prefix, manifest) == expected_rows(
        clickhouse, events_table, PROJECT, json_properties=True)
    assert manifest["row_count"] == 3_002
    assert PartLog(deps.engine).resumable(request.id, request.storage_prefix) == []  # the manifest holds them now


def test_a_silent_export_is_failed_and_a_live_one_left_alone(deps):
    store = deps.store
    spec = parse_spec(project_id=PROJECT, requested_by=MAINTAINER)
    silent, live = store.create(spec, source="test"), store.create(spec, source="test")
    store.claim(silent.id, "run-silent", lambda _: False)
    store.claim(live.id, "run-live", lambda _: False)
    with store.engine.begin() as conn:  # its process last beat a minute ago
        conn.execute(sa.update(export_requests).where(export_requests.c.id == silent.id)
                     .values(heartbeat_at=now_utc() - timedelta(seconds=60)))
    store.heartbeat(live.id, "run-live")

    still_going = RunView(True, "STARTED")
    assert reconciler(deps, stale_after=90).run(lambda _: still_going, now=now_utc()) == []
    done = reconciler(deps, stale_after=45).run(lambda _: still_going, now=now_utc())
    assert [(r.request.id, r.run_ended) for r in done] == [(silent.id, False)]
    failed = store.require(silent.id)
    assert failed.state is ExportState.FAILED
    assert re.match(r"Run run-silent sent no heartbeat for 6\d s \(limit 45 s\)", failed.error)
    assert store.require(live.id).state is ExportState.RUNNING
    assert store.heartbeat(silent.id, "run-silent") is False  # a dead run that wakes up owns nothing


def test_a_run_that_finished_meanwhile_wins_over_the_reconciler(deps):
    request = deps.store.create(parse_spec(project_id=PROJECT, requested_by=MAINTAINER), source="test")
    found = deps.store.claim(request.id, "run-a", lambda _: False)
    deps.store.claim(request.id, "run-b", lambda _: False)  # a retry took it over after `found` was read
    assert reconciler(deps).check(found, lambda _: RunView(False, "FAILURE"), now=now_utc()) is None
    assert deps.store.require(request.id).run_id == "run-b"


class _BrokenDeletes:
    """A folder whose deletes fail, like S3 gone away during cleanup."""

    def __init__(self, storage):
        self._storage = storage

    def __getattr__(self, name):
        return getattr(self._storage, name)

    def delete_prefix(self, prefix, **_):
        raise StorageError("Could not delete: the storage is down.")


def test_a_cleanup_fault_never_hides_the_failure(deps, tmp_path, caplog):
    request = deps.store.create(parse_spec(project_id=PROJECT, requested_by=MAINTAINER), source="test")
    found = deps.store.claim(request.id, "run-x", lambda _: False)
    broken = Reconciler(deps.store, _BrokenDeletes(deps.storage), stale_after=timedelta(seconds=60),
                        expires_after=timedelta(hours=1), log=LOG)
    outcome = broken.check(found, lambda _: RunView(False, "CANCELED"), now=now_utc())
    assert outcome is not None and outcome.cleanup_error == "StorageError: Could not delete: the storage is down."
    failed = deps.store.require(request.id)
    assert (failed.state, failed.error, failed.cleanup_error) == (
        ExportState.FAILED, "Run run-x ended (CANCELED) before the export finished",
        "StorageError: Could not delete: the storage is down.")

    # The storage is back: the next pass removes the files and clears the pending cleanup.
    leftover = deps.storage.open_writer(f"{request.storage_prefix}/part-00000.ndjson.gz", content_type="x")
    leftover.write(b"half")
    assert reconciler(deps).run(lambda _: None, now=now_utc()) == []
    assert deps.store.require(request.id).cleanup_error is None
    assert files_on_disk(tmp_path / "exports") == []


def test_run_export_records_the_cause_when_its_cleanup_fails_too(deps):
    """The storage fails the write and then the cleanup: the request says why the export failed."""
    request = deps.store.create(parse_spec(project_id=PROJECT, requested_by=MAINTAINER), source="test")
    deps = replace(deps, storage=_DownAfterStart(deps.storage))
    with pytest.raises(StorageError, match="Could not write part-00000"):
        run_export(request.id, deps, run_id="run-down", run_is_active=lambda _: False, log=LOG)
    failed = deps.store.require(request.id)
    assert (failed.state, failed.error_code, failed.error, failed.cleanup_error) == (
        ExportState.FAILED, "storage_error", "Could not write part-00000: the storage is down.",
        "StorageError: Could not delete: the storage is down.")


class _DownAfterStart:
    """Deletes work until the first write; then the storage is gone for writes and deletes alike."""

    def __init__(self, storage):
        self._storage, self._down = storage, False

    def __getattr__(self, name):
        return getattr(self._storage, name)

    def open_writer(self, key, **kwargs):
        self._down = True
        raise StorageError("Could not write part-00000: the storage is down.")

    def delete_prefix(self, prefix, **kwargs):
        if self._down:
            raise StorageError("Could not delete: the storage is down.")
        return self._storage.delete_prefix(prefix, **kwargs)


def test_the_api_reports_a_silent_export_failed_and_does_not_hand_it_back_as_a_duplicate(settings, store):
    from fastapi.testclient import TestClient

    from export_pipeline.accounts.tokens import create_token
    from export_pipeline.api.app import create_app

    project = 9361
    add_member(store.engine, project, "maintainer", Role.MAINTAINER)
    token = create_token(store.engine, "maintainer")[0]
    spec = parse_spec(project_id=project, requested_by="maintainer", format="csv")
    stuck = store.create(spec, source="api")
    store.claim(stuck.id, "run-killed", lambda _: False)
    with store.engine.begin() as conn:
        conn.execute(sa.update(export_requests).where(export_requests.c.id == stuck.id)
                     .values(heartbeat_at=now_utc() - timedelta(seconds=600)))

    with TestClient(create_app(settings)) as api:
        api.headers["Authorization"] = f"Bearer {token}"
        again = api.post(f"/api/v1/projects/{project}/exports", json={"format": "csv"})
        seen = api.get(f"/api/v1/projects/{project}/exports/{stuck.id}").json()

    assert again.status_code == 202 and again.json()["id"] != stuck.id
    assert (seen["status"], seen["error"]["code"]) == ("failed", INTERRUPTED)
    assert re.match(r"Run run-killed sent no heartbeat for 60\d s \(limit 120 s\)", seen["error"]["message"])
