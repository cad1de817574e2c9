"""The export job's run config, generated from the export-request model (engine/request.py), so the Launchpad
and Dagster's GraphQL API check what a run needs before it is launched.

`ops.event_export.config` is optional: a partition whose request is already stored (CLI, API, the sensor's
runs, backfills) runs without it. Given, it is a whole new request: `project_id` and `requested_by` are
required, a resource, format or compression is one of its lowercase names, every field is described, and a
date is `{year, month, day}` with an optional `hour`, `minute` and `second` in UTC. Dagster checks config
by its structure alone, so a date as text could only be refused after launch; as numbers, `yesterday` is
refused before, and a day that does not exist is refused at launch by the run queue (run_queue.py).

Dagster gives a partitioned job no presets (a job's one preset is its `config`, which a partitioned job
turns into per-partition config), so the starting config of each resource (`PRESETS`) is in the config's
description, which the Launchpad shows beside the editor."""

from __future__ import annotations

import json
from datetime import date, datetime

import dagster as dg

from export_pipeline.accounts.emails import optional_email
from export_pipeline.clock import as_utc
from export_pipeline.engine.request import REQUEST_FIELDS, RequestField
from export_pipeline.engine.resources import Resource
from export_pipeline.engine.spec import ExportSpec, parse_spec

DATE_PARTS = ("year", "month", "day")
TIME_PARTS = ("hour", "minute", "second")
# What a starting config puts in a field its resource requires.
EXAMPLES = {"target_id": "ID", "cohort_id": 1, "group_type": "organization"}


def _moment_type() -> dg.Shape:
    return dg.Shape(
        {**{part: dg.Field(int, description=f"The UTC {part}") for part in DATE_PARTS},
         **{part: dg.Field(int, is_required=False, description=f"The UTC {part} (a date without a time is the whole "
                           "day: from its start, or through its end as date_to)") for part in TIME_PARTS}},
        description="A moment in UTC, e.g. {year: 2026, month: 1, day: 31} or {year: 2026, month: 1, day: 31, "
                    "hour: 12}",
    )


def _config_type(field: RequestField) -> object:
    if field.kind == "enum":
        assert field.choices is not None
        kind: object = dg.Enum(field.choices.__name__, [
            dg.EnumValue(choice.value, description=getattr(choice, "description", None)) for choice in field.choices])
    elif field.kind == "moment":
        kind = _moment_type()
    else:
        kind = {"text": str, "integer": int, "texts": [str], "objects": [dg.Permissive()]}[field.kind]
    return kind if field.required or field.default is not None else dg.Noneable(kind)


def _config_field(field: RequestField) -> dg.Field:
    if field.required:
        return dg.Field(_config_type(field), description=field.description)
    return dg.Field(_config_type(field), is_required=False, default_value=field.default,
                    description=field.description)


def preset(resource: Resource) -> dict:
    """The least config exporting `resource`: placeholders for who asks and what it requires."""
    config: dict = {"project_id": 1, "requested_by": "your-user-name", "resource": resource.value,
                    "format": resource.formats[0].value}
    return {**config, **{name: EXAMPLES[name] for name in resource.requires}}


PRESETS = {resource: preset(resource) for resource in Resource}


def export_config_schema() -> dg.Field:
    presets = "\n".join(f"- {resource.value}: {json.dumps(config)}" for resource, config in PRESETS.items())
    return dg.Field(
        dg.Noneable(dg.Shape({field.name: _config_field(field) for field in REQUEST_FIELDS})),
        is_required=False,
        description="A new export request, for a partition that has none stored yet (a stored one ignores "
                    f"this). To start, one per resource:\n{presets}",
    )


def new_request(config: dict | None) -> tuple[ExportSpec, str | None]:
    """The request an op config describes (None: none given), and where its email goes; InvalidRequest
    names every bad field."""
    fields = {"project_id": None, "requested_by": None, **(config or {})}
    for field in REQUEST_FIELDS:
        if field.kind == "moment" and isinstance(fields.get(field.name), dict):
            fields[field.name] = _moment_text(fields[field.name])
    notify = fields.pop("notify_email", None)
    return parse_spec(**fields), optional_email(notify)


def _moment_text(parts: dict) -> str:
    day = f"{parts['year']:04d}-{parts['month']:02d}-{parts['day']:02d}"
    if not any(name in parts for name in TIME_PARTS):
        return day
    return day + "T" + ":".join(f"{parts.get(name, 0):02d}" for name in TIME_PARTS) + "Z"


def moment_config(moment: date | datetime) -> dict:
    """A date, or a datetime (UTC if naive) to the second, as the config's parts."""
    if isinstance(moment, datetime):
        utc = as_utc(moment)
        return {name: getattr(utc, name) for name in (*DATE_PARTS, *TIME_PARTS)}
    return {name: getattr(moment, name) for name in DATE_PARTS}
