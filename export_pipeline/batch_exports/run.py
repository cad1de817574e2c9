"""Export one interval of one destination, replacing whatever an earlier run of it wrote.

The destination (`Target.replace_interval`) writes the interval's files (deterministic keys:
`<template>/<start>-<end>/[event=<name>/]part-NNNNN`), then its `manifest.json`, then deletes every key under the
interval's folder that the new manifest does not list (parts of an earlier run that split differently). A run
that fails for good clears the interval's folder, so a failed interval holds no files at all and its record says
`failed` until a later run exports it: whatever was re-run, the union of all intervals' files never holds a row
twice. Whether a failed attempt is tried again is the error's own `retryable` flag.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from urllib.parse import quote

from sqlalchemy.engine import Engine

from export_pipeline.batch_exports.alerts import PauseAlerts
from export_pipeline.batch_exports.destinations import Destination, RunState
from export_pipeline.batch_exports.intervals import Interval
from export_pipeline.batch_exports.query import event_names, interval_query
from export_pipeline.batch_exports.records import IntervalRun, RunStore
from export_pipeline.batch_exports.store import DestinationStore
from export_pipeline.batch_exports.target import Target
from export_pipeline.batch_exports.targets import open_target
from export_pipeline.channels.email import EmailSender
from export_pipeline.channels.retry import Backoff, Failure, GaveUp
from export_pipeline.channels.slack import SlackSender
from export_pipeline.clickhouse.connection import ClickHouse
from export_pipeline.clickhouse.schema import EventsTable
from export_pipeline.clock import iso_utc, now_utc
from export_pipeline.engine.extract import iter_chunks, prefetched
from export_pipeline.engine.model import ExportModel
from export_pipeline.engine.serialize import PartWriter, WrittenFile
from export_pipeline.errors import ExportPipelineError, IntervalFailed, InvalidRequest, is_retryable
from export_pipeline.models import BATCH_MODELS
from export_pipeline.settings import Settings
from export_pipeline.storage import ExportStorage

logger = logging.getLogger(__name__)
Logger = logging.Logger | logging.LoggerAdapter


@dataclass(frozen=True)
class BatchDeps:
    settings: Settings
    engine: Engine
    clickhouse: ClickHouse
    table: EventsTable
    destinations: DestinationStore
    runs: RunStore
    alerts: PauseAlerts
    open_target: Callable[[Destination], Target]
    backoff: Backoff  # transient failures of one interval: tries and waits


@dataclass(frozen=True)
class IntervalResult:
    destination: Destination
    interval: Interval
    record: IntervalRun
    skipped: bool
    seconds: float


def export_interval(destination_id: str, interval_start: datetime, deps: BatchDeps, *, run_id: str,
                    run_is_active: Callable[[str], bool] = lambda _: False,
                    log: Logger = logger) -> IntervalResult:
    """Export the interval starting at `interval_start` (UTC). Raises IntervalFailed when it failed for good
    (after the backoff's tries), NotFound/InvalidRequest for a wrong destination or interval."""
    destination = deps.destinations.require(destination_id)
    interval = destination.interval_at(interval_start)
    if not destination.closed_by(interval, now_utc()):
        raise InvalidRequest(
            f"Interval {interval.label} of batch export {destination.id} has not closed yet "
            f"(it ends at {iso_utc(interval.end)}, plus a settle delay of {destination.settle_seconds} s).",
            hint="Intervals are exported once closed; the batch_export_sensor requests them then.")
    model = BATCH_MODELS[destination.model](deps.table)
    previous = deps.runs.get(destination.id, interval.start)
    # A failed run may have left files it could not delete: the next run then replaces, never skips.
    had_files = previous is not None and (previous.files > 0 or previous.state is RunState.FAILED)
    deps.runs.claim(destination.id, interval, run_id, run_is_active)
    started = time.monotonic()
    target = None

    def attempt() -> tuple[list[WrittenFile], str | None, int]:
        nonlocal target
        try:
            target = deps.open_target(destination)
            return _write_interval(destination, interval, model, target, deps, had_files=had_files, log=log)
        except Exception as exc:
            raise Failure(_describe(exc), retryable=is_retryable(exc)) from exc

    def retrying(attempt_no: int, failure: Failure, delay: float) -> None:
        log.warning("Batch export %s interval %s: attempt %s failed (%s); retrying in %.1f s.",
                    destination.id, interval.label, attempt_no, failure, delay)

    try:
        (files, manifest_key, counted), _ = deps.backoff.run(attempt, on_retry=retrying)
    except GaveUp as gave_up:
        error = f"{gave_up.failure} (after {gave_up.attempts} attempt{'s' if gave_up.attempts > 1 else ''})"
        _clear(target, destination, interval, log)
        deps.runs.finish(destination.id, interval, run_id, RunState.FAILED, error=error)
        if deps.destinations.record_failure(destination.id, error):
            log.error("Batch export %s paused after %s failed intervals in a row.", destination.id,
                      destination.max_failures)
            deps.alerts.paused(deps.destinations.require(destination.id), error, log=log)
        raise IntervalFailed(f"Batch export {destination.id} interval {interval.label} failed: {error}",
                             hint="It is retried when the destination runs again; see `batch-exports runs`.") from None
    except BaseException:
        # Canceled (or a bug): leave no half-written interval behind.
        _clear(target, destination, interval, log)
        deps.runs.finish(destination.id, interval, run_id, RunState.FAILED, error="The run stopped before it finished.")
        raise
    skipped = counted == 0 and manifest_key is None
    deps.runs.finish(destination.id, interval, run_id, RunState.SKIPPED if skipped else RunState.SUCCEEDED,
                     rows=sum(f.rows for f in files), bytes_written=sum(f.bytes for f in files), files=len(files),
                     manifest_key=manifest_key)
    deps.destinations.record_success(destination.id)
    record = deps.runs.get(destination.id, interval.start)
    assert record is not None
    return IntervalResult(destination, interval, record, skipped, time.monotonic() - started)


def _write_interval(destination: Destination, interval: Interval, model: ExportModel, target: Target,
                    deps: BatchDeps, *, had_files: bool, log: Logger) -> tuple[list[WrittenFile], str | None, int]:
    """The interval's files and manifest; (files, manifest key or None when skipped, rows counted)."""
    prefix = destination.prefix_for(interval)
    with deps.clickhouse.session(f"batch export {destination.id} {interval.label}") as session:
        counted, whole = interval_query(model, destination, interval).bounded(session)
        if counted == 0 and not had_files:
            log.info("Batch export %s interval %s: no rows; skipped.", destination.id, interval.label)
            return [], None, 0
        log.info("Batch export %s interval %s: %s rows to %s in %s.", destination.id, interval.label,
                 f"{counted:,}", prefix, target.describe())

        def write_files(storage: ExportStorage) -> list[WrittenFile]:
            if not counted:  # no rows now, but files of an earlier run: the empty set replaces them
                return []
            groups: list[tuple[str, str | None]] = [(prefix, None)]
            if destination.split_by_event:
                column = next(c.sql for c in model.columns if c.name == "event")
                groups = [(f"{prefix}/event={_segment(name)}", name) for name in event_names(session, whole, column)]
            files: list[WrittenFile] = []
            for folder, event in groups:
                query = replace(interval_query(model, destination, interval, event,
                                             escape_formulas=deps.settings.csv_escape_formulas),
                                key_range=whole.key_range)
                files += _write_group(storage, folder, model, destination, deps,
                                      iter_chunks(session, query, chunk_bytes=deps.settings.chunk_bytes))
            return files

        replaced = target.replace_interval(prefix, write_files,
                                           lambda files: _manifest(destination, model, interval, prefix, files))
    if replaced.stale_removed:
        log.info("Batch export %s interval %s: removed %s file(s) of an earlier run.", destination.id,
                 interval.label, replaced.stale_removed)
    return replaced.files, replaced.manifest_key, counted


def _write_group(storage: ExportStorage, folder: str, model: ExportModel, destination: Destination,
                 deps: BatchDeps, chunks: Iterator) -> list[WrittenFile]:
    settings = deps.settings
    writer = PartWriter(storage, folder, model, destination.format, destination.compression,
                        part_size=destination.file_size_bytes, gzip_level=settings.gzip_level,
                        zstd_level=settings.zstd_level)
    try:
        for chunk in prefetched(chunks):
            writer.write(chunk)
        return writer.finish()
    except BaseException:
        writer.abort()
        raise


def _manifest(destination: Destination, model: ExportModel, interval: Interval, prefix: str,
              files: list[WrittenFile]) -> dict:
    return {
        "batch_export_id": destination.id,
        "project_id": destination.project_id,
        "model": destination.model,
        "data_interval_start": iso_utc(interval.start),
        "data_interval_end": iso_utc(interval.end),
        "ingestion_column": (model.ingested_at or "").strip("`"),
        "format": destination.format.value,
        "compression": destination.compression.value,
        "row_count": sum(f.rows for f in files),
        "byte_count": sum(f.bytes for f in files),
        "files": [{"name": f.key[len(prefix) + 1:], "rows": f.rows, "bytes": f.bytes, "sha256": f.sha256}
                  for f in files],
        "completed_at": iso_utc(now_utc()),
    }


def _segment(name: str) -> str:
    """An event name as part of one key segment (`$pageview` -> `%24pageview`); `event=` keeps it from being
empty, '.' or '..'."""
    return quote(name, safe="")


def _describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, ExportPipelineError) else f"{type(exc).__name__}: {exc}"


def _clear(target: Target | None, destination: Destination, interval: Interval, log: Logger) -> None:
    if target is None:
        return
    try:
        target.clear_interval(destination.prefix_for(interval))
    except Exception as exc:
        log.warning("Batch export %s interval %s: could not remove partial files (%s); the next run replaces them.",
                    destination.id, interval.label, exc)


def build_batch_deps(settings: Settings, engine: Engine, clickhouse: ClickHouse, *,
                     sleep: Callable[[float], None] = time.sleep, attempts: int = 3,
                     backoff_seconds: float = 5.0) -> BatchDeps:
    email, slack = EmailSender.from_settings(settings, sleep=sleep), SlackSender(settings, sleep=sleep)
    return BatchDeps(
        settings=settings, engine=engine, clickhouse=clickhouse, table=EventsTable.from_settings(settings),
        destinations=DestinationStore(engine), runs=RunStore(engine),
        alerts=PauseAlerts(settings, engine, email, slack), open_target=open_target,
        backoff=Backoff(attempts=attempts, base_seconds=backoff_seconds, sleep=sleep),
    )
