"""What the commands share: exit codes for our errors, common options, output, the app's connections."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import click
from sqlalchemy.engine import Engine

from export_pipeline.db import get_engine
from export_pipeline.deps import AppDeps
from export_pipeline.errors import AccessDenied, ExportPipelineError, InvalidRequest, NotFound
from export_pipeline.settings import Settings

if TYPE_CHECKING:
    import dagster as dg

project_option = click.option("--project-id", type=click.IntRange(min=1), required=True)


def target_options(command: Callable) -> Callable:
    """--resource and --target-id: the insight or dashboard that a share link or a subscription is about."""
    command = click.option("--target-id", required=True, help="The insight or dashboard id")(command)
    return click.option("--resource", type=click.Choice(["insight", "dashboard"]), required=True)(command)


class HiddenAliases(click.Option):
    """An option shown, in --help and in errors, under its first spelling only; the others still parse, so
    scripts written before a rename keep working."""

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        aliases, self.opts = self.opts, self.opts[:1]
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts = aliases

    def get_error_hint(self, ctx: click.Context) -> str:
        return f"'{self.opts[0]}'"


class ExplainedErrors(click.Group):
    """Print errors we can explain as one clear message (and the hint), never as a traceback.

    An unknown id is the user's input, so not found exits 2 like any invalid input."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except ExportPipelineError as error:
            click.secho(f"error: {error.message}", fg="red", err=True)
            if error.hint:
                click.echo(f"hint: {error.hint}", err=True)
            ctx.exit(2 if isinstance(error, (InvalidRequest, AccessDenied, NotFound)) else 1)


def emit(payload: dict) -> None:
    click.echo(json.dumps(payload, indent=2, ensure_ascii=False))


def echo_rows(rows: Iterable[Iterable[object]]) -> None:
    """One line a row, its values separated by tabs (for cut and awk)."""
    for row in rows:
        click.echo("\t".join(str(value) for value in row))


def say(line: str) -> None:
    """Progress and notes go to stderr, so stdout stays the JSON result."""
    click.echo(line, err=True)


def json_option(text: str, field: str) -> object:
    try:
        return json.loads(text)
    except ValueError as error:
        raise InvalidRequest(f"--{field} is not valid JSON: {error}.", details={field: "invalid JSON"}) from None


def app_deps() -> AppDeps:
    """For commands that check roles or reach ClickHouse or the export storage."""
    return AppDeps.from_settings(Settings())


def app_database() -> Engine:
    """For commands that only read and write the app database: storage and role settings need not be valid."""
    return get_engine(Settings().database_url)


def job_loader(name: str) -> Callable[[], dg.JobDefinition]:
    """Builds job `name` when called: the definitions read settings and every job, which only a run in this
    process needs."""

    def load() -> dg.JobDefinition:
        from export_pipeline.definitions import defs

        return defs.resolve_job_def(name)

    return load
