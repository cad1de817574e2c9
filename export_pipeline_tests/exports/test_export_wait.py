"""`export --wait --timeout`: the wait ends with exit 3 and says why; an export running in the CLI's own
process is canceled first, so neither the request nor its Dagster run is left going."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import timedelta

import dagster as dg

from export_pipeline.accounts.roles import Role, add_member

PROJECT = 9381


def test_a_timeout_stops_the_wait_with_exit_3_and_cancels_an_in_process_export(store):
    add_member(store.engine, PROJECT, "maria", Role.MAINTAINER)
    done = subprocess.run(
        [sys.executable, "-m", "export_pipeline.cli", "export", "--project-id", str(PROJECT), "--requested-by",
         "maria", "--wait", "--timeout", "0"],
        capture_output=True, text=True, timeout=300, env=os.environ,
    )
    assert done.returncode == 3, done.stderr
    out = json.loads(done.stdout)
    assert out["status"] == "canceled"
    assert re.fullmatch(f"Stopped waiting after 0 s with export {out['export_id']} (queued|running): it ran in "
                        "this process, so it is canceled.", out["note"])
    request = store.require(out["export_id"])
    assert (request.state.value, request.error_code) == ("canceled", "canceled")
    runs = dg.DagsterInstance.get().get_runs(filters=dg.RunsFilter(tags={"dagster/partition": out["export_id"]}))
    assert [run.is_finished for run in runs] == [True]


def test_status_reports_an_export_whose_process_died_as_failed(store):
    import sqlalchemy as sa

    from export_pipeline.clock import now_utc
    from export_pipeline.db import export_requests
    from export_pipeline.engine.spec import parse_spec

    add_member(store.engine, PROJECT, "maria", Role.MAINTAINER)
    request = store.create(parse_spec(project_id=PROJECT, requested_by="maria"), source="cli")
    store.claim(request.id, "run-of-a-killed-cli", lambda _: False)
    with store.engine.begin() as conn:
        conn.execute(sa.update(export_requests).where(export_requests.c.id == request.id)
                     .values(heartbeat_at=now_utc() - timedelta(minutes=10)))

    shown = subprocess.run([sys.executable, "-m", "export_pipeline.cli", "status", request.id],
                           capture_output=True, text=True, timeout=120, env=os.environ)
    out = json.loads(shown.stdout)
    assert (shown.returncode, out["status"], out["error"]["code"]) == (0, "failed", "export_interrupted")
    assert re.match(r"Run run-of-a-killed-cli sent no heartbeat for 60\d s \(limit 120 s\)", out["error"]["message"])
    assert store.require(request.id).state.value == "failed"


def test_a_wait_on_a_queued_export_ends_when_the_daemon_is_gone(deps):
    """No daemon heartbeat and no run in this process: the export would stay queued forever, so the wait says
    so within a few seconds instead of hanging (the daemon's sensor runs it once it is back)."""
    import time

    from export_pipeline.cli.follow import GaveUp, follow_export
    from export_pipeline.engine.spec import parse_spec
    from export_pipeline.exports.requests import ExportState

    request = deps.store.create(parse_spec(project_id=PROJECT, requested_by="wes", format="ndjson"), source="test")
    started = time.monotonic()
    with dg.DagsterInstance.ephemeral() as instance:  # no daemon ever beat in it
        final, gave_up = follow_export(deps, instance, request, runner=None, timeout=60)

    assert time.monotonic() - started < 10
    assert final.state is ExportState.QUEUED and final.id == request.id
    assert gave_up == GaveUp(f"The Dagster daemon stopped before export {request.id} started; it stays queued and "
                             "runs when the daemon is back (make dev), or cancel it.", 1)
    deps.store.cancel(request.id)  # nothing left queued in the session's store
