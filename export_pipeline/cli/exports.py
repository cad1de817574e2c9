"""Requesting an export and following it: export, status, preview."""

from __future__ import annotations

import gzip
import io
import json
import logging
import sys
from collections.abc import Callable

import click
import zstandard

from export_pipeline.accounts.emails import optional_email
from export_pipeline.accounts.roles import require_role
from export_pipeline.cli.common import HiddenAliases, app_deps, echo_rows, emit, job_loader, say
from export_pipeline.cli.progress import ProgressDisplay
from export_pipeline.clock import iso_utc
from export_pipeline.defs.instance import add_partition, run_unless_daemon, terminate_run
from export_pipeline.defs.names import EXPORT_JOB
from export_pipeline.engine.request import REQUEST_FIELDS, RequestField
from export_pipeline.engine.spec import parse_spec
from export_pipeline.errors import AccessDenied, ExportPipelineError, InvalidRequest, NotFound
from export_pipeline.exports.deps import ExportDeps
from export_pipeline.exports.lifecycle import withdraw
from export_pipeline.exports.reconcile import reconciled
from export_pipeline.exports.requests import ExportRequest, ExportState
from export_pipeline.exports.run import describe
from export_pipeline.models.events import unknown_events

PREVIEW_LINE_CHARS = 400
PREVIEW_UUID_CHARS = 36
METAVARS = {"integer": "INTEGER", "moment": "DATE", "objects": "JSON"}
# `--user` names who acts in every command; `--requested-by`, export's spelling before, is still accepted.
RENAMED_FLAGS = {"requested_by": ("--user", "--requested-by")}


def _json_objects(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> list[object]:
    parsed = []
    for text in values:
        try:
            parsed.append(json.loads(text))
        except ValueError:
            raise click.BadParameter(f"not JSON: {text[:80]!r}") from None
    return parsed


def _request_option(field: RequestField) -> Callable[[Callable], Callable]:
    """The option of one field of the export-request model: `--date-from` for `date_from`; a list repeated
    under its singular name (`--event`, `--property` as JSON); a resource, format or compression a choice
    in any case. Other values reach parse_spec as typed, so every bad one is reported at once."""
    listed = field.kind in ("texts", "objects")
    name = field.name.removesuffix("ies") + "y" if field.name.endswith("ies") else field.name.removesuffix("s")
    flags = RENAMED_FLAGS.get(field.name, ("--" + (name if listed else field.name).replace("_", "-"),))
    help_text = field.description + ("; one per option, repeatable" if listed else "")
    if field.kind == "enum":
        assert field.choices is not None
        return click.option(*flags, field.name, type=click.Choice([c.value for c in field.choices], case_sensitive=False),
                            default=field.default, show_default=field.default is not None, help=help_text)
    return click.option(*flags, field.name, cls=HiddenAliases, required=field.required, multiple=listed, help=help_text,
                        metavar=METAVARS.get(field.kind, "TEXT"),
                        callback=_json_objects if field.kind == "objects" else None)


def request_options(command: Callable) -> Callable:
    """An option for every field of the export-request model, in its order."""
    for field in reversed(REQUEST_FIELDS):
        command = _request_option(field)(command)
    return command


# The options that describe the export are named as parse_spec's keywords and reach it as **spec_fields.
@click.command()
@request_options
@click.option("--wait", is_flag=True, help="Wait for the export and print its result")
@click.option("--timeout", type=click.FloatRange(min=0), default=None,
              help="With --wait: stop waiting after this many seconds (exit 3; the export goes on)")
def export(notify_email: str | None, wait: bool, timeout: float | None, **spec_fields: object) -> None:
    """Request an export of events, people or recordings.

    People are persons, groups or a cohort's persons; insights and dashboards export too. An event name the
    project never saw is warned about.

    It runs as a partition of Dagster's export_job: started by the daemon's sensor, or here with --wait when
    no daemon runs."""
    deps = ExportDeps.of(app_deps())
    notify = optional_email(notify_email, field="notify_email")
    spec = parse_spec(**spec_fields)  # type: ignore[arg-type]
    try:
        require_role(deps.roles, deps.engine, spec.project_id, spec.requested_by, action=f"exporting {spec.resource}")
    except AccessDenied as denied:
        emit({"export_id": None, "status": "refused", "error": {"code": denied.code, "message": str(denied)}})
        raise
    if spec.events:
        _warn_about_unknown_events(deps, spec.project_id, spec.events)
    request = deps.store.create(spec, source="cli", notify_email=notify)
    from export_pipeline.defs.exports import EXPORT_PARTITIONS  # imports Dagster: only here

    instance = add_partition(deps.settings, EXPORT_PARTITIONS, request.id)
    if not wait:
        emit({**describe(request, deps), "note": "Queued: the Dagster daemon's sensor will run it (make dev)."})
        return
    from export_pipeline.cli.follow import follow_export, reconcile_now

    reconcile_now(deps, instance)  # exports and runs a killed process left behind
    display = ProgressDisplay()
    with display.sharing_stderr():  # the run's warnings, written while the bar is drawn, go above it
        runner = run_unless_daemon(instance, job_loader(EXPORT_JOB), request.id, label=f"Export {request.id}",
                                   doing="exporting", say=say, in_background=True)
        final, gave_up = follow_export(deps, instance, request, runner=runner, timeout=timeout, display=display)
        if runner is not None:
            if gave_up is not None:
                deps.store.cancel(request.id)  # it runs in this process, which is about to exit: stop it cleanly
            runner.join()  # the request ends before the run does: let Dagster record the run's end
            final = deps.store.require(request.id)
    emit({**describe(final, deps), **({"note": gave_up.message} if gave_up else {})})
    if gave_up is not None:
        sys.exit(gave_up.exit_code)
    if final.state is not ExportState.SUCCEEDED:
        sys.exit(1)


def _warn_about_unknown_events(deps: ExportDeps, project_id: int, names: tuple[str, ...]) -> None:
    """A mistyped name would otherwise export 0 rows as a silent success; the export still runs, since the
    event may be about to arrive."""
    try:
        with deps.clickhouse.session("event names") as session:
            unknown = unknown_events(session, deps.table, project_id, names)
    except ExportPipelineError as error:  # the export itself reports an unreachable ClickHouse
        say(f"note: event names not checked ({error.message})")
        return
    if unknown:
        listed = ", ".join(repr(name) for name in unknown)
        say(f"warning: project {project_id} has no events named {listed}; the export matches none of them"
            " (names are case-sensitive).")


def _require(deps: ExportDeps, export_id: str) -> ExportRequest:
    """The export, or not found with a hint at where its ids come from."""
    try:
        return deps.store.require(export_id)
    except NotFound as missing:
        raise NotFound(missing.message, hint="Use an export_id printed by `export-pipeline export`.") from None


@click.command()
@click.argument("export_id")
def status(export_id: str) -> None:
    """Print an export's state, files and download links as JSON.

    A running export whose heartbeat stopped (its process was killed) is reported, and recorded, as failed."""
    deps = ExportDeps.of(app_deps())
    emit(describe(reconciled(deps, _require(deps, export_id), log=logging.getLogger(__name__)), deps))


@click.command()
@click.argument("export_id")
@click.option("--lines", type=click.IntRange(min=1), default=3, show_default=True)
def preview(export_id: str, lines: int) -> None:
    """Print the first lines of an export's first file.

    Compressed files are decompressed; a Parquet file is shown as a table."""
    deps = ExportDeps.of(app_deps())
    request = _require(deps, export_id)
    if request.state is not ExportState.SUCCEEDED or not request.manifest_key:
        raise InvalidRequest(f"Export {export_id} is {request.state.value}, not succeeded: nothing to preview.")
    manifest = json.loads(deps.storage.read_bytes(request.manifest_key))
    first = manifest["files"][0]["name"]
    if first.endswith(".parquet"):
        click.echo(_parquet_head(deps.storage.read_bytes(f"{request.storage_prefix}/{first}"), lines))
        return
    raw = deps.storage.open_reader(f"{request.storage_prefix}/{first}")
    if first.endswith(".gz"):
        raw = gzip.GzipFile(fileobj=raw)
    elif first.endswith(".zst"):
        raw = zstandard.ZstdDecompressor().stream_reader(raw)
    text = io.TextIOWrapper(raw, encoding="utf-8")
    for _ in range(lines):
        line = text.readline()
        if not line:
            break
        cut = len(line) > PREVIEW_LINE_CHARS
        click.echo(line[:PREVIEW_LINE_CHARS] + (" …" if cut else ""), nl=not line.endswith("\n") or cut)


def _parquet_head(data: bytes, lines: int) -> str:
    """The first rows as a table, every column and whole UUIDs: a UUID column (16 bytes in Parquet) shows as
    its 8-4-4-4-12 text."""
    import polars as pl
    import pyarrow as pa
    import pyarrow.parquet as pq

    head = pq.read_table(io.BytesIO(data)).slice(0, lines)
    for index, field in enumerate(head.schema):
        if field.type == pa.uuid():
            texts = [None if value is None else str(value) for value in head.column(index).to_pylist()]  # UUIDs
            head = head.set_column(index, pa.field(field.name, pa.string(), field.nullable), pa.array(texts, pa.string()))
    with pl.Config(tbl_cols=-1, tbl_width_chars=-1, fmt_str_lengths=PREVIEW_UUID_CHARS):
        return str(pl.from_arrow(head))


@click.group("exports")
def exports_group() -> None:
    """List a project's exports, cancel one."""


@exports_group.command("list")
@click.option("--project-id", type=click.IntRange(min=1), required=True)
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
def list_exports(project_id: int, limit: int) -> None:
    """A project's exports, newest first.

    One a line: id, status, resource, format, rows, created (UTC)."""
    deps = ExportDeps.of(app_deps())
    echo_rows((request.id, request.state.value, request.spec.resource.value, request.spec.format.value,
               request.row_count, iso_utc(request.created_at))
              for request in deps.store.project_page(project_id, after=None, limit=limit))


@exports_group.command("cancel")
@click.argument("export_id")
def cancel_export(export_id: str) -> None:
    """Cancel an export, or delete its files now.

    A queued or running export is canceled, a finished one's files are deleted; prints it as JSON."""
    deps = ExportDeps.of(app_deps())
    if run_id := withdraw(deps.store, deps.storage, _require(deps, export_id)):
        terminate_run(run_id, logging.getLogger(__name__))
    emit(describe(deps.store.require(export_id), deps))


COMMANDS = [export, status, preview, exports_group]
