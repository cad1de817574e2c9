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
    from export_pipeline.exports.spec import parse_spec

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
