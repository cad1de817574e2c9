"""What an operator sees in Dagster's UI, in Debian's Chromium with no network but the session's webserver
(conftest `dagster_stack`): the Launchpad of `export_job` and the partitions view of `batch_export`. Each
screenshot is kept in the test's folder, and copied to docs/screenshots/ when EXPORT_PIPELINE_SCREENSHOTS=1."""

from __future__ import annotations

import asyncio
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from export_pipeline.batch_exports.store import DestinationStore
from export_pipeline.db import get_engine
from export_pipeline.definitions import defs
from export_pipeline.defs.batch_exports import BATCH_JOB, DESTINATIONS
from export_pipeline.defs.names import CODE_LOCATION, EXPORT_JOB
from export_pipeline.defs.resources import AppDatabaseResource
from export_pipeline_tests.api.test_api_docs import offline_page
from export_pipeline_tests.api.test_export_page import needs_chromium

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PROJECT = 9777
DAY0 = datetime(2026, 10, 5, tzinfo=UTC)  # no events of PROJECT: each interval run is a skipped export
TIMEOUT_MS = 150_000  # the UI's first load on a busy 2-core machine


@pytest.fixture(scope="module")
def ui(dagster_stack, events_table) -> dict:
    # Dagster's one-time "Join the Dagster community" dialog would cover the pages: mark it seen, as Skip does.
    assert dagster_stack["deployment"].graphql("mutation { setNuxSeen }") == {"setNuxSeen": True}
    return dagster_stack


def shoot(port: int, path: str, name: str, folder: Path, script: str, *args: object) -> dict:
    """Open the UI's `path`, wait until `script` (called with `args`) returns something true, save the page
    as `name`.png in `folder` (and in docs/screenshots/ when asked to); returns what `offline_page` reports."""
    shot = folder / f"{name}.png"
    outcome = asyncio.run(offline_page(f"http://127.0.0.1:{port}{path}", script, *args, screenshot=shot,
                                       timeout=TIMEOUT_MS))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000  # drawn, not blank
    if os.environ.get("EXPORT_PIPELINE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOTS / shot.name)
    return outcome


@needs_chromium
def test_the_launchpad_of_export_job_names_the_required_request_fields(ui, tmp_path):
    # The operator starts the request under ops.event_export.config (here with only a format) and the
    # Launchpad's check names what is missing; the cursor in the request shows its fields' help alongside.
    started = """() => {
        const editor = document.querySelector('.CodeMirror')?.CodeMirror;
        if (!editor) return false;
        if (!editor.getValue().includes('event_export:')) {
            editor.replaceRange('ops:\\n  event_export:\\n    config:\\n      format: csv\\n', {line: editor.lineCount()});
            editor.focus();
            editor.setCursor({line: editor.lineCount() - 2, ch: 14});
            return false;
        }
        const text = document.body.innerText;
        return text.includes('Missing required config entries') && text.includes('requested_by:') ? text : false;
    }"""
    outcome = shoot(ui["port"], f"/locations/{CODE_LOCATION}/jobs/{EXPORT_JOB}/playground", "launchpad", tmp_path,
                    started)
    assert outcome["errors"] == [] and outcome["refused"] == []
    assert ("Missing required config entries ['project_id', 'requested_by'] at path root:ops:event_export:config"
            in outcome["seen"]), outcome["seen"]


@needs_chromium
def test_the_partitions_view_of_batch_export_shows_a_destinations_intervals(ui, tmp_path):
    engine = get_engine(ui["database_url"])
    # Paused: the deployment's sensor registers it but launches nothing; the intervals are run below.
    destination = DestinationStore(engine).create(PROJECT, "sam", {
        "name": "Hourly archive", "url": f"file://{tmp_path / 'out'}", "interval": "hour",
        "start_at": DAY0.isoformat(), "settle_seconds": 0}, paused_reason="screenshot only")
    with dg.DagsterInstance.from_config(str(ui["dagster_home"])) as instance:
        instance.add_dynamic_partitions(DESTINATIONS.name, [destination.id])
        for hour in ("2026-10-05-00:00", "2026-10-05-01:00", "2026-10-05-03:00"):  # 02:00 and later: not run
            key = dg.MultiPartitionKey({"destination": destination.id, "interval": hour})
            result = defs.resolve_job_def(BATCH_JOB).execute_in_process(
                instance=instance, partition_key=key, resources={"app_db": AppDatabaseResource(url=str(engine.url))})
            assert result.success
    # The selected interval's details load after the grid: wait for its materialization's metadata.
    shown = """(destination) => {
        const text = document.body.innerText;
        return text.includes(destination) && text.includes('historical events (1)') && text.includes('Hourly archive')
            ? text : false;
    }"""
    outcome = shoot(ui["port"], f"/assets/batch_export?view=partitions&partition={destination.id}|2026-10-05-03:00",
                    "batch-partitions", tmp_path, shown, destination.id)
    assert outcome["errors"] == [] and outcome["refused"] == []
    seen = outcome["seen"]
    assert f"{destination.id}|2026-10-05-03:00" in seen and "2026-10-05-02:00" in seen, seen[:2000]
