"""The reconciler as a Dagster sensor, on a real (temporary) instance and its own app database: it fails the
running requests whose run ended or whose heartbeat stopped, ends the runs left STARTED by a dead process
(freeing their run slot), and leaves a live export alone."""

from __future__ import annotations

import re
import time
import uuid
from datetime import timedelta

import dagster as dg
import sqlalchemy as sa

from export_pipeline.clock import now_utc
from export_pipeline.db import export_requests, get_engine
from export_pipeline.defs.exports import export_reconcile_sensor
from export_pipeline.defs.resources import AppDatabaseResource, AppSettingsResource, ExportStorageResource
from export_pipeline.engine.spec import parse_spec
from export_pipeline.exports.reconcile import INTERRUPTED
from export_pipeline.exports.requests import ExportState
from export_pipeline.exports.store import ExportStore

STALE_AFTER = 3.0


def _run(instance: dg.DagsterInstance, export_id: str, status: dg.DagsterRunStatus) -> str:
    run_id = str(uuid.uuid4())
    instance.add_run(dg.DagsterRun(job_name="export_job", run_id=run_id, status=status,
                                   tags={"dagster/partition": export_id}))
    return run_id


def _beat_at(store: ExportStore, export_id: str, seconds_ago: float) -> None:
    with store.engine.begin() as conn:
        conn.execute(sa.update(export_requests).where(export_requests.c.id == export_id)
                     .values(heartbeat_at=now_utc() - timedelta(seconds=seconds_ago)))


def test_sensor_fails_dead_and_silent_exports_and_ends_orphaned_runs(tmp_path):
    db_url = f"sqlite:///{tmp_path / 'app.db'}"
    store = ExportStore(get_engine(db_url))
    spec = parse_spec(project_id=1, requested_by="maria")
    silent, dead, done, live = (store.create(spec, source="test") for _ in range(4))
    (tmp_path / "exports" / "1" / silent.id).mkdir(parents=True)
    partial = tmp_path / "exports" / "1" / silent.id / ".part-00000.ndjson.gz.partial-0123456789abcdef"
    partial.write_bytes(b"half a part")
    resources = {
        "app_db": AppDatabaseResource(url=db_url),
        "export_storage": ExportStorageResource(url=f"file://{tmp_path / 'exports'}"),
        "app_settings": AppSettingsResource(ttl_hours=1, delivery_stale_minutes=5,
                                            export_stale_after_seconds=STALE_AFTER),
    }
    with dg.instance_for_test() as instance:
        started = dg.DagsterRunStatus.STARTED
        runs = {
            "silent": _run(instance, silent.id, started),  # its process was killed: STARTED forever
            "dead": _run(instance, dead.id, dg.DagsterRunStatus.FAILURE),
            "done": _run(instance, done.id, started),  # its request ended, the run's end was never recorded
            "live": _run(instance, live.id, started),
        }
        for name, request in (("silent", silent), ("dead", dead), ("done", done), ("live", live)):
            store.claim(request.id, runs[name], lambda _: False)
        store.fail(done.id, runs["done"], code="x", message="ended", expires_at=now_utc())
        _beat_at(store, silent.id, 60)
        time.sleep(STALE_AFTER + 0.2)  # the "done" run's request ended longer ago than the limit
        store.heartbeat(live.id, runs["live"])

        result = export_reconcile_sensor(dg.build_sensor_context(instance=instance, resources=resources))

        assert result.skip_message == "Failed 2 interrupted export(s); ended 2 orphaned run(s)."
        states = {name: store.require(r.id) for name, r in (("silent", silent), ("dead", dead), ("live", live))}
        assert {name: (r.state, r.error_code) for name, r in states.items()} == {
            "silent": (ExportState.FAILED, INTERRUPTED), "dead": (ExportState.FAILED, INTERRUPTED),
            "live": (ExportState.RUNNING, None)}
        assert states["dead"].error == f"Run {runs['dead']} ended (FAILURE) before the export finished"
        assert re.fullmatch(f"Run {runs['silent']} sent no heartbeat for 6[0-9] s \\(limit 3 s\\): the process "
                            "writing the export is presumed dead.", states["silent"].error)
        run_states = {name: instance.get_run_by_id(run_id).status for name, run_id in runs.items()}
        assert run_states == {"silent": dg.DagsterRunStatus.FAILURE, "dead": dg.DagsterRunStatus.FAILURE,
                              "done": dg.DagsterRunStatus.FAILURE, "live": started}
        assert not partial.exists()

        store.heartbeat(live.id, runs["live"])  # still alive at the next tick
        again = export_reconcile_sensor(dg.build_sensor_context(instance=instance, resources=resources))
        assert again.skip_message == "Failed 0 interrupted export(s); ended 0 orphaned run(s)."
