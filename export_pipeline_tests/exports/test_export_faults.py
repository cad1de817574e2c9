"""Fault suite (`make faults`; marked `faults`, outside `make test`): real crashes and outages in the middle
of a multi-part export, then the reconciler's pass, then a retry.

- kill -9 of `export --wait` running the export in its own process, at random points (after 0-3 recorded
  parts): the request is failed with the cause, the run left STARTED is ended, no partial or unrecorded file
  stays, and the retry (the job run again for the same partition, as run retries do) resumes after the
  recorded parts with exactly the project's rows;
- kill -9 of the step process alone, of the run worker with it, or of the code server with both, in a real
  deployment (webserver + daemon, the project's dagster.yaml): the reconciler sensor fails the request, run retries
  relaunch the partition, and the retry resumes after the recorded parts with exactly the rows;
- the S3 server killed mid-upload: the upload's error is the recorded cause (not the cleanup's), the failed
  cleanup is stored beside it, and once S3 is back the reconciler's next pass leaves no object and no
  incomplete multipart upload; the retry exports exactly the rows.

Random points are drawn from a seed printed in the test id, so a failure can be replayed."""

from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import boto3
import dagster as dg
import pytest
import sqlalchemy as sa
from botocore.config import Config

from export_pipeline.accounts.roles import Role, add_member
from export_pipeline.clock import now_utc
from export_pipeline.db import export_requests, get_engine
from export_pipeline.defs.exports import export_reconcile_sensor
from export_pipeline.defs.resources import AppDatabaseResource, AppSettingsResource, ExportStorageResource
from export_pipeline.engine.spec import parse_spec
from export_pipeline.errors import StorageError
from export_pipeline.exports.manifest import read_manifest
from export_pipeline.exports.parts import PartLog
from export_pipeline.exports.reconcile import INTERRUPTED, Reconciler
from export_pipeline.exports.requests import ExportState
from export_pipeline.exports.run import run_export
from export_pipeline.exports.store import ExportStore
from export_pipeline.storage import S3Storage, storage_from_url
from export_pipeline.storage.s3 import MIN_PART_SIZE
from export_pipeline_tests.fakes.exportdata import T0, expected_rows, insert_events, read_export_rows
from export_pipeline_tests.fakes.net import free_port

pytestmark = pytest.mark.faults

LOG = logging.getLogger("faults")
PROJECT = 9371
ROWS = 40_000
USER = "fiona"
ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "export_pipeline.cli"]
STALE_AFTER = 2.0
# Small parts and chunks, a fast heartbeat: many part boundaries to die at, and a reconciler that can tell.
CLI_ENV = {"EXPORT_PART_SIZE_BYTES": str(64 * 1024), "EXPORT_CHUNK_BYTES": str(256 * 1024),
           "EXPORT_HEARTBEAT_SECONDS": "0.3"}


@pytest.fixture(scope="module", autouse=True)
def many_events(clickhouse, events_table, store):
    rng = uuid.UUID(int=PROJECT)
    padding = "x" * 200
    insert_events(clickhouse, events_table, [
        [PROJECT, uuid.uuid5(rng, str(i)), f"event {i % 7}", T0 + timedelta(milliseconds=i), f"user {i % 500}",
         uuid.uuid5(rng, f"p{i % 500}"), f'{{"i": {i}, "pad": "{padding}"}}']
        for i in range(ROWS)
    ])
    add_member(store.engine, PROJECT, USER, Role.MAINTAINER)


def _newest_cli_request(store):
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(export_requests.c.id).where(export_requests.c.project_id == PROJECT,
                                                                   export_requests.c.source == "cli")
                           .order_by(export_requests.c.created_at.desc()).limit(1)).first()
    return row[0] if row else None


def _sensor_pass(instance, settings, storage_url: str):
    resources = {
        "app_db": AppDatabaseResource(url=settings.database_url),
        "export_storage": ExportStorageResource(url=storage_url),
        "app_settings": AppSettingsResource(ttl_hours=1, delivery_stale_minutes=5,
                                            export_stale_after_seconds=STALE_AFTER),
    }
    return export_reconcile_sensor(dg.build_sensor_context(instance=instance, resources=resources))


@pytest.mark.parametrize("seed", [11, 22, 33])
def test_kill_9_of_the_in_process_cli_export_is_reconciled_and_resumed(seed, deps, settings, clickhouse,
                                                                        events_table, tmp_path):
    kill_after_parts = random.Random(seed).randint(0, 3)
    storage_url = f"file://{tmp_path / 'exports'}"
    before = _newest_cli_request(deps.store)
    cli = subprocess.Popen(
        [*CLI, "export", "--project-id", str(PROJECT), "--requested-by", USER, "--format", "ndjson",
         "--compression", "none", "--wait"],
        cwd=ROOT, env={**os.environ, **CLI_ENV, "EXPORT_STORAGE_URL": storage_url},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    parts = PartLog(deps.engine)
    deadline = time.monotonic() + 120
    export_id = None
    while True:
        assert cli.poll() is None, f"the export ended before it could be killed:\n{cli.stderr.read()[-2000:]}"
        assert time.monotonic() < deadline, "the export never reached the kill point"
        export_id = export_id or (None if (newest := _newest_cli_request(deps.store)) == before else newest)
        if export_id:
            request = deps.store.require(export_id)
            if (request.state is ExportState.RUNNING and request.row_count > 0
                    and len(parts.resumable(export_id, request.storage_prefix)) >= kill_after_parts):
                break
        time.sleep(0.005)
    os.kill(cli.pid, signal.SIGKILL)
    cli.wait(timeout=30)
    cli.stderr.close()

    instance = dg.DagsterInstance.get()
    [run] = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": export_id}))
    assert run.status is dg.DagsterRunStatus.STARTED  # what kill -9 leaves: only the reconciler ends it
    assert deps.store.require(export_id).state is ExportState.RUNNING

    time.sleep(STALE_AFTER + 0.5)  # the heartbeat goes stale
    _sensor_pass(instance, settings, storage_url)

    failed = deps.store.require(export_id)
    assert (failed.state, failed.error_code, failed.cleanup_error) == (ExportState.FAILED, INTERRUPTED, None)
    assert instance.get_run_by_id(run.run_id).status is dg.DagsterRunStatus.FAILURE
    assert not instance.get_runs(filters=dg.RunsFilter(job_name="export_job", statuses=[dg.DagsterRunStatus.STARTED]))
    kept = parts.resumable(export_id, failed.storage_prefix)
    assert len(kept) >= kill_after_parts
    left = sorted(p.name for p in (tmp_path / "exports").rglob("*") if p.is_file())
    assert left == [part.file.name for part in kept]  # no partial file, nothing unrecorded

    # The retry: the same partition again, as Dagster's run retries launch it.
    storage = storage_from_url(storage_url)
    retry_deps = replace(deps, storage=storage)
    result = run_export(export_id, retry_deps, run_id=f"retry-{seed}", run_is_active=lambda _: False, log=LOG)
    manifest = read_manifest(storage, result.manifest_key)
    assert manifest["files"][: len(kept)] == [
        {"name": p.file.name, "rows": p.file.rows, "bytes": p.file.bytes, "sha256": p.file.sha256} for p in kept]
    names = [f["name"] for f in manifest["files"]]
    assert len(names) == len(set(names))
    assert manifest["row_count"] == ROWS
    assert read_export_rows(storage, failed.storage_prefix, manifest) == expected_rows(
        clickhouse, events_table, PROJECT, json_properties=True)


class _S3Server:
    """A moto S3 server on a fixed loopback port that can be killed and brought back (its data lives in this
    process, so it survives the restart like a real server's disk)."""

    def __init__(self):
        from moto.server import ThreadedMotoServer

        self._factory = ThreadedMotoServer
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.server = None

    def start(self) -> None:
        self.server = self._factory(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()

    def kill(self) -> None:
        self.server.stop()


def test_s3_killed_mid_upload_records_the_upload_error_and_the_next_pass_cleans_up(deps, clickhouse, events_table):
    server = _S3Server()
    server.start()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    client = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1", config=Config(
        signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 1}, connect_timeout=1))
    bucket = f"faults-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    storage = S3Storage(bucket, "exports", client=client, part_size=MIN_PART_SIZE)
    s3_deps = replace(deps, storage=storage)
    request = deps.store.create(parse_spec(project_id=PROJECT, requested_by=USER, format="ndjson",
                                           compression="none"), source="test")

    def kill_once_an_upload_is_open(_progress) -> None:
        if server.server is not None and client.list_multipart_uploads(Bucket=bucket).get("Uploads"):
            server.kill()
            server.server = None

    try:
        with pytest.raises(StorageError) as raised:
            run_export(request.id, s3_deps, run_id="s3-killed", run_is_active=lambda _: False, log=LOG,
                       on_progress=kill_once_an_upload_is_open)
        failed = deps.store.require(request.id)
        assert (failed.state, failed.error) == (ExportState.FAILED, str(raised.value))
        assert "delete" not in failed.error.lower()  # the upload's error, not the cleanup's
        assert failed.cleanup_error and failed.cleanup_error.startswith("StorageError: ")

        server.start()  # S3 is back
        assert client.list_multipart_uploads(Bucket=bucket).get("Uploads")  # what the dead upload left
        Reconciler(deps.store, storage, stale_after=timedelta(seconds=STALE_AFTER), expires_after=timedelta(hours=1),
                   log=LOG).run(lambda _: None, now=now_utc())
        assert deps.store.require(request.id).cleanup_error is None
        assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")
        assert client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0

        result = run_export(request.id, s3_deps, run_id="s3-retry", run_is_active=lambda _: False, log=LOG)
        manifest = read_manifest(storage, result.manifest_key)
        assert read_export_rows(storage, request.storage_prefix, manifest) == expected_rows(
            clickhouse, events_table, PROJECT, json_properties=True)
    finally:
        if server.server is not None:
            server.kill()


# --- A real deployment: the daemon's sensors launch the run, run retries relaunch it ------------------------


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    """Webserver and daemon (the project's dagster.yaml: run retries on) with their own instance, app database
    and export folder; a fast heartbeat and a short silence limit so the reconciler acts within the test."""
    from export_pipeline_tests.fakes.dagster_services import dagster_services

    base = tmp_path_factory.mktemp("faults-deployment")
    storage_url = f"file://{base / 'exports'}"
    env = {**CLI_ENV, "EXPORT_STORAGE_URL": storage_url, "EXPORT_STALE_AFTER_SECONDS": "5"}
    with dagster_services(base, env=env) as (services, dagster_home, database_url):
        store = ExportStore(get_engine(database_url))
        add_member(store.engine, PROJECT, USER, Role.MAINTAINER)
        yield {"services": services, "dagster_home": dagster_home, "store": store,
               "storage": storage_from_url(storage_url), "root": base / "exports"}


def _export_processes(settings, export_id: str) -> dict[str, list]:
    """The processes to kill for each victim: the step process writing `export_id` (it names itself in the
    engine lease's lock file), with the run worker that started it, with the code server that launched that."""
    import psutil

    holder = (settings.lock_dir / "clickhouse.engine.lock").read_text()
    pid_text, _, purpose = holder.partition(": ")
    assert purpose == f"export {export_id}", holder
    step = psutil.Process(int(pid_text.removeprefix("pid ")))
    chain = [step]
    # Up to the daemon (or webserver) that runs it all: its run worker, and the code server above that.
    while (parent := chain[-1].parent()) is not None and "python" in parent.name() \
            and not any(service in " ".join(parent.cmdline()) for service in ("dagster-daemon", "dagster-webserver")):
        chain.append(parent)
    servers = [p for p in chain if "grpc" in " ".join(p.cmdline())]
    workers = [p for p in chain if p not in servers]
    return {"step process": [step], "run worker": workers, "code server": [*workers, *servers]}


@pytest.mark.parametrize("victim", ["run worker", "step process", "code server"])
def test_killing_the_run_worker_or_step_is_reconciled_and_the_retry_resumes(deployment, victim, settings, clickhouse,
                                                                           events_table):
    store, services = deployment["store"], deployment["services"]
    instance = dg.DagsterInstance.from_config(str(deployment["dagster_home"]))
    request = store.create(parse_spec(project_id=PROJECT, requested_by=USER, format="ndjson", compression="none"),
                           source="test")
    parts = PartLog(store.engine)
    kill_after_parts = random.Random(victim).randint(1, 3)

    def at_kill_point():
        current = store.require(request.id)
        assert not current.is_terminal, f"the export ended before it could be killed: {current.state}"
        recorded = parts.resumable(request.id, request.storage_prefix)
        return current.state is ExportState.RUNNING and len(recorded) >= kill_after_parts and current

    services.wait_until(at_kill_point, timeout=240, what="the kill point", interval=0.005)
    victims = _export_processes(settings, request.id)[victim]
    assert victim != "code server" or any("grpc" in " ".join(p.cmdline()) for p in victims), victims
    for process in victims:
        process.kill()
    kept = parts.resumable(request.id, request.storage_prefix)

    # Failed by the reconciler (or taken over by the retry first), then finished by the retry.
    done = services.wait_until(lambda: (r := store.require(request.id)).state is ExportState.SUCCEEDED and r,
                               timeout=240, what="the retry to finish", interval=0.5)
    # The killed run ended (not left STARTED) and the retry's run ends too: no run holds the run slot.
    def runs_ended():
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": request.id}))
        return all(run.is_finished for run in runs) and runs

    assert len(services.wait_until(runs_ended, timeout=120, what="the runs to end")) >= 2
    manifest = read_manifest(deployment["storage"], done.manifest_key)
    assert manifest["files"][: len(kept)] == [
        {"name": p.file.name, "rows": p.file.rows, "bytes": p.file.bytes, "sha256": p.file.sha256} for p in kept]
    assert read_export_rows(deployment["storage"], request.storage_prefix, manifest) == expected_rows(
        clickhouse, events_table, PROJECT, json_properties=True)
    names = sorted(p.name for p in deployment["root"].rglob("*") if p.is_file() and request.id in str(p))
    assert names == sorted([f["name"] for f in manifest["files"]] + ["manifest.json"])  # no partial file
