"""One export, end to end: check access, claim the request, stream ClickHouse -> Polars -> storage,
write the manifest last. Plain Python; the Dagster asset is a thin wrapper around `run_export`."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyarrow as pa

import export_pipeline.models  # noqa: F401  (registers every model with its Resource)
from export_pipeline.accounts.roles import require_role
from export_pipeline.clock import iso_utc, now_utc
from export_pipeline.engine.extract import ExportQuery, iter_chunks, plan, prefetched
from export_pipeline.engine.model import ExportModel
from export_pipeline.engine.resources import Resource, register_file_writers
from export_pipeline.engine.serialize import PartWriter, WrittenFile
from export_pipeline.errors import ExportConflict, ExportPipelineError
from export_pipeline.exports.deps import ExportDeps
from export_pipeline.exports.finished_email import ExportMailer
from export_pipeline.exports.insight_files import write_insight_files
from export_pipeline.exports.manifest import (
    MANIFEST_NAME,
    build_manifest,
    download_name,
    file_link,
    read_manifest,
)
from export_pipeline.exports.parts import PartLog
from export_pipeline.exports.reconcile import Heartbeat
from export_pipeline.exports.recordings import write_recordings
from export_pipeline.exports.requests import ExportRequest, ExportState

# At most one progress record (app database, Dagster log event, callback) per this many seconds.
PROGRESS_RECORD_SECONDS = 0.5

# The resources whose files are more than their model's rows (`_write_rows`), or no rows at all.
register_file_writers({Resource.RECORDINGS: write_recordings, Resource.INSIGHT: write_insight_files,
                       Resource.DASHBOARD: write_insight_files})


@dataclass(frozen=True)
class Progress:
    rows: int
    total_rows: int
    bytes_written: int
    files: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class ExportResult:
    request: ExportRequest
    files: list[WrittenFile]
    manifest_key: str
    seconds: float
    already_done: bool = False

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    @property
    def bytes_written(self) -> int:
        return sum(f.bytes for f in self.files)


def run_export(
    export_id: str,
    deps: ExportDeps,
    *,
    run_id: str,
    run_is_active: Callable[[str], bool],
    log: logging.Logger | logging.LoggerAdapter,
    on_progress: Callable[[Progress], None] | None = None,
) -> ExportResult:
    store = deps.store
    request = store.require(export_id)
    if request.state is ExportState.SUCCEEDED:
        log.info("Export %s already succeeded in run %s; reporting it again.", export_id, request.run_id)
        return _existing_result(request, deps)

    spec = request.spec
    try:
        require_role(
            deps.roles, store.engine, spec.project_id, spec.requested_by, action=f"exporting {spec.resource}",
            export_id=export_id,
        )
    except ExportPipelineError as denied:
        store.fail(export_id, request.run_id, code=denied.code, message=str(denied), expires_at=_expiry(deps))
        _notify(export_id, deps, log)
        raise

    request = store.claim(export_id, run_id, run_is_active)
    started = time.monotonic()
    parts = PartLog(store.engine)
    with Heartbeat(store, export_id, run_id, every=deps.settings.export_heartbeat_seconds, log=log):
        try:
            deps.storage.ensure_lifecycle(deps.settings.ttl_hours)
            write_files = spec.resource.file_writer
            if write_files is None:
                files = _write_rows(request, spec.resource.model(deps.table), deps, parts, run_id=run_id, log=log,
                                    on_progress=on_progress, started=started)
            else:
                deps.storage.delete_prefix(request.storage_prefix)  # leftovers of an earlier attempt
                files = write_files(request, deps, log=log)
            finished = now_utc()
            expires = finished + timedelta(hours=deps.settings.ttl_hours)
            manifest_key = f"{request.storage_prefix}/{MANIFEST_NAME}"
            manifest = build_manifest(request, files, finished_at=finished, expires_at=expires)
            # The manifest goes last: its presence means every file listed is complete.
            deps.storage.put_bytes(
                manifest_key, json.dumps(manifest, indent=2).encode(), content_type="application/json",
                tags={"export-pipeline-export-id": export_id},
            )
            store.succeed(
                export_id, run_id, rows=sum(f.rows for f in files), bytes_written=sum(f.bytes for f in files),
                files=len(files), manifest_key=manifest_key, finished_at=finished, expires_at=expires,
            )
        except ExportConflict:
            # Canceled: our files go. Taken over by another run: its files are not ours to delete.
            if store.require(export_id).state is ExportState.CANCELED:
                _discard(request, deps, parts, log)
            raise
        except BaseException as exc:
            code = exc.code if isinstance(exc, ExportPipelineError) else "export_failed"
            message = str(exc) if isinstance(exc, ExportPipelineError) else f"{type(exc).__name__}: {exc}"
            # The cause is recorded before anything is cleaned up: a cleanup that fails (the same storage
            # fault, often) is logged beside it and can neither replace it nor leave the request running.
            try:
                store.fail(export_id, run_id, code=code, message=message, expires_at=_expiry(deps))
            except Exception:
                log.exception("Export %s: recording its failure (%s) failed; the reconciler fails it once its "
                              "heartbeat stops.", export_id, message)
            _discard(request, deps, parts, log)
            _notify(export_id, deps, log)
            raise
    parts.forget(export_id)  # the manifest lists them now
    _notify(export_id, deps, log)  # outside the try: nothing about the email can undo the success
    return ExportResult(store.require(export_id), files, manifest_key, time.monotonic() - started)


def _discard(request: ExportRequest, deps: ExportDeps, parts: PartLog, log: logging.Logger | logging.LoggerAdapter) -> None:
    """Delete every file of a failed or canceled attempt; never raises (the failure is already recorded)."""
    try:
        parts.forget(request.id)
        deps.storage.delete_prefix(request.storage_prefix)
    except Exception as exc:
        log.exception("Export %s: deleting its files failed; the reconciler tries again.", request.id)
        try:
            deps.store.record_cleanup(request.id, f"{type(exc).__name__}: {exc}")
        except Exception:
            log.exception("Export %s: recording the failed cleanup failed too.", request.id)


def _write_rows(
    request: ExportRequest,
    model: ExportModel,
    deps: ExportDeps,
    parts: PartLog,
    *,
    run_id: str,
    log: logging.Logger | logging.LoggerAdapter,
    on_progress: Callable[[Progress], None] | None,
    started: float,
) -> list[WrittenFile]:
    """Stream the request's rows of `model` from ClickHouse into part files, recording each part as it is
    finished; parts recorded by an earlier attempt are kept and the rows continue after their last key. A
    partial part is discarded on failure."""
    spec, store = request.spec, deps.store
    query = ExportQuery(model, spec, request.as_of, escape_formulas=deps.settings.csv_escape_formulas)
    recorded = parts.resumable(request.id, request.storage_prefix)
    parts.forget(request.id, from_part=len(recorded))
    # Leftovers of an earlier attempt: everything but the parts it recorded.
    deps.storage.delete_prefix(request.storage_prefix, keep=[part.file.key for part in recorded])
    writer = PartWriter(
        deps.storage,
        request.storage_prefix,
        model,
        spec.format,
        spec.compression,
        part_size=deps.settings.part_size_bytes,
        gzip_level=deps.settings.gzip_level,
        zstd_level=deps.settings.zstd_level,
        tags={"export-pipeline-export-id": request.id, "export-pipeline-project-id": str(spec.project_id)},
    )
    # The writer numbers new parts after the files it holds, and the manifest lists them all.
    writer.files = [part.file for part in recorded]
    resumed_rows = sum(part.file.rows for part in recorded)
    after = recorded[-1].last_key if recorded else None
    if recorded:
        log.info("Resuming export %s after %s recorded part(s) (%s rows).", request.id, len(recorded),
                 f"{resumed_rows:,}")
    try:
        with deps.clickhouse.session(f"export {request.id}") as session:
            planned = plan(session, query)
            total = planned.total
            store.record_total(request.id, run_id, total)
            log.info(
                "Exporting %s rows of project %s from %s as %s/%s (as of %s).",
                f"{total:,}", spec.project_id, deps.clickhouse.display_url,
                spec.format.value, spec.compression.value, request.as_of.isoformat(),
            )
            chunks = iter_chunks(session, query, chunk_bytes=deps.settings.chunk_bytes, after=after,
                                 windows=planned.windows)
            recorded_at = 0.0
            for chunk in prefetched(chunks):
                closed = len(writer.files)
                writer.write(chunk)
                _record_parts(request.id, run_id, parts, query, chunk, writer.files, closed)
                rows = resumed_rows + writer.rows
                progress = Progress(rows, total, writer.bytes_written, len(writer.files), time.monotonic() - started)
                # A chunk takes milliseconds: an app-database write and a log event per chunk cost 1.5 s at 10M rows.
                if time.monotonic() - recorded_at >= PROGRESS_RECORD_SECONDS:
                    recorded_at = time.monotonic()
                    store.record_progress(request.id, run_id, rows=progress.rows, bytes_written=progress.bytes_written)
                    log.info(
                        "%s / %s rows (%.0f%%), %.1f MB written, %s rows/s",
                        f"{progress.rows:,}", f"{total:,}", 100 * progress.rows / max(total, 1),
                        progress.bytes_written / 1e6, f"{progress.rows_per_second:,.0f}",
                    )
                if on_progress:
                    on_progress(progress)
        return writer.finish()
    except BaseException:
        writer.abort()
        raise


def _record_parts(export_id: str, run_id: str, parts: PartLog, query: ExportQuery, chunk: pa.Table,
                  files: list[WrittenFile], closed: int) -> None:
    """Record the part the last chunk finished, if any, with the chunk's last key: a part ends where a chunk
    does (serialize.PartWriter), at a key boundary, so a retry resumes strictly after that key."""
    for index in range(closed, len(files)):
        parts.record(export_id, run_id, index, files[index], query.last_key(chunk))


def _expiry(deps: ExportDeps) -> datetime:
    return now_utc() + timedelta(hours=deps.settings.ttl_hours)


def _notify(export_id: str, deps: ExportDeps, log: logging.Logger | logging.LoggerAdapter) -> None:
    """Email the requester how the export ended. Never raises: a failed email must not fail the export."""
    try:
        ExportMailer(deps.settings).send_export_finished(deps.store.require(export_id), deps, log=log)
    except Exception:
        log.exception("Export %s: emailing the requester failed; the export itself is unaffected.", export_id)


def _existing_result(request: ExportRequest, deps: ExportDeps) -> ExportResult:
    assert request.manifest_key is not None
    manifest = read_manifest(deps.storage, request.manifest_key)
    prefix = request.storage_prefix
    files = [WrittenFile(f["name"], f"{prefix}/{f['name']}", f["rows"], f["bytes"], f["sha256"]) for f in manifest["files"]]
    return ExportResult(request, files, request.manifest_key, 0.0, already_done=True)


def describe(request: ExportRequest, deps: ExportDeps) -> dict:
    """The JSON the CLI prints (and later the API returns) for an export."""
    out: dict = {
        "export_id": request.id,
        "status": request.state.value,
        "project_id": request.spec.project_id,
        "format": request.spec.format.value,
        "compression": request.spec.compression.value,
        "row_count": request.row_count,
        "byte_count": request.byte_count,
        "manifest": None,
    }
    if request.state is ExportState.SUCCEEDED and request.manifest_key and request.expires_at:
        out["manifest"] = file_link(deps.storage, request, MANIFEST_NAME)
        manifest = read_manifest(deps.storage, request.manifest_key)
        out["files"] = [
            {**f, "url": file_link(deps.storage, request, f["name"]), "download_name": download_name(request, f["name"])}
            for f in manifest["files"]
        ]
        out["expires_at"] = iso_utc(request.expires_at)
    if request.state is ExportState.FAILED:
        out["error"] = {"code": request.error_code, "message": request.error}
    return out
