"""The export-request model: every field a new export takes, with its type, default and description, declared
once. The HTTP API's request body is `ExportFields`; the CLI's options (cli/exports.py) and the Launchpad's
config (defs/export_config.py) are generated from `ExportParameters` through `REQUEST_FIELDS`.

Values are validated by `parse_spec`, which reports every bad field at once; the model declares only what an
interface can check by itself (types, lengths, the lowercase names of resources, formats and compressions)."""

from __future__ import annotations

import types
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field
from pydantic.fields import FieldInfo

from export_pipeline.accounts.emails import OptionalEmail
from export_pipeline.engine.compression import Compression
from export_pipeline.engine.filters import OPERATORS
from export_pipeline.engine.formats import Format
from export_pipeline.engine.resources import Resource
from export_pipeline.engine.spec import MAX_EVENT_NAMES, PNG_WIDTHS


class MomentText:
    """Marks a field holding a moment as ISO 8601 text: a date or a datetime, UTC unless it names a zone."""


Moment = Annotated[str | None, MomentText()]


def _by_formats() -> str:
    groups: dict[tuple[Format, ...], list[str]] = {}
    for resource in Resource:
        groups.setdefault(resource.formats, []).append(resource.value)
    return "; ".join(f"{', '.join(names)}: {', '.join(f.value for f in formats)}" for formats, names in groups.items())


def _default_compressions() -> str:
    rows: dict[Compression, list[str]] = {}
    for fmt in Format:
        if fmt.is_row:
            rows.setdefault(fmt.default_compression, []).append(fmt.value)
    files = " and ".join(resource.value for resource in Resource if not resource.rows)
    by_format = "; ".join(f"{comp.value} for {', '.join(names)}" for comp, names in rows.items())
    return f"{by_format}; none for {files} exports"


class ExportFields(BaseModel):
    """What to export and how: everything a request names besides its project and who asks."""

    model_config = ConfigDict(extra="forbid")

    resource: Resource = Field(Resource.EVENTS, description="What to export: " + "; ".join(
        f"{resource.value} ({resource.description})" for resource in Resource))
    target_id: str | None = Field(None, max_length=32, description="Insight and dashboard exports: the id of the "
                                  "insight or dashboard to export")
    format: Format = Field(Format.NDJSON, description=f"The files' format, by resource: {_by_formats()}")
    width: int | None = Field(None, ge=PNG_WIDTHS[0], le=PNG_WIDTHS[1], description=(
        f"PNG exports: the image's width in pixels, {PNG_WIDTHS[0]}-{PNG_WIDTHS[1]} (default 800 for an insight, "
        "1920 for a dashboard)"))
    compression: Compression | None = Field(None, description=(
        f"How each file is compressed: {', '.join(c.value for c in Compression)} (default "
        f"{_default_compressions()})"))
    date_from: Moment = Field(None, description=(
        "Inclusive start, an ISO 8601 date or datetime (UTC unless it names a zone): events by time, persons "
        "and groups by creation, recordings by start"))
    date_to: Moment = Field(None, description="Exclusive end, an ISO 8601 date or datetime; a bare date includes "
                            "that whole day")
    events: list[str] = Field(default_factory=list, max_length=MAX_EVENT_NAMES, description=(
        "Events exports: only these event names (case-sensitive)"))
    properties: list[dict] = Field(default_factory=list, max_length=50, description=(
        'Persons and groups exports: property filters that must all match, each {"key": …, "operator": …, '
        f'"value": …}}, the operator one of {", ".join(OPERATORS)}'))
    cohort_id: int | None = Field(None, description="Persons exports: only this cohort's persons; cohort "
                                  "exports: the cohort to export")
    group_type: str | None = Field(None, max_length=64, description=(
        "Groups exports: the group type, by name (e.g. organization) or index (0-4)"))
    distinct_id: str | None = Field(None, max_length=400, description="Recordings exports: only this distinct "
                                    "id's sessions")
    person_id: str | None = Field(None, max_length=64, description="Recordings exports: only this person's "
                                  "sessions (the person's UUID)")
    min_duration: int | None = Field(None, ge=0, description="Recordings exports: only sessions lasting at least "
                                     "this many seconds")
    notify_email: OptionalEmail = Field(None, max_length=254, description=(
        "Email the result here (default: the requester's stored address)"))


class ExportParameters(ExportFields):
    """A new export's whole request: its project and who asks, and what to export."""

    project_id: int = Field(description="The project to export from")
    requested_by: str = Field(description="Who asks: a user who is Maintainer or higher on the project; the "
                              "export is theirs")


@dataclass(frozen=True)
class RequestField:
    """One field of `ExportParameters` as an interface that is not pydantic builds it: `kind` is one of `enum`
    (`choices`), `text`, `integer`, `moment` (MomentText), `texts` (a list of text) or `objects` (a list of
    JSON objects)."""

    name: str
    kind: str
    required: bool
    default: Any
    description: str
    choices: type[StrEnum] | None = None


def _request_field(name: str, info: FieldInfo) -> RequestField:
    annotation = info.annotation
    if get_origin(annotation) in (Union, types.UnionType):
        annotation = next(arg for arg in get_args(annotation) if arg is not type(None))
    default = None if info.is_required() else info.get_default(call_default_factory=True)
    choices = annotation if isinstance(annotation, type) and issubclass(annotation, StrEnum) else None
    if any(isinstance(mark, MomentText) for mark in info.metadata):
        kind = "moment"
    elif choices is not None:
        kind, default = "enum", default.value if default is not None else None
    elif get_origin(annotation) is list:
        kind = "objects" if get_args(annotation)[0] is dict else "texts"
    else:
        kind = {int: "integer", str: "text"}[annotation]
    return RequestField(name, kind, info.is_required(), default, info.description or "", choices)


# Who asks and where first, then what, in the model's order.
REQUEST_FIELDS = tuple(sorted(
    (_request_field(name, info) for name, info in ExportParameters.model_fields.items()),
    key=lambda field: not field.required))
