"""`export --wait --timeout`: the wait ends with exit 3 and says why; an export running in the CLI's own
process is canceled first, so neither the request nor its Dagster run is left going."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

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
