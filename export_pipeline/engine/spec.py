"""What to export: formats, compressions, the validated request parameters (`parse_spec`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import TypeVar

from export_pipeline.clock import FIRST_YEAR, LAST_YEAR, as_utc, iso_utc
from export_pipeline.engine.filters import PropertyFilter, parse_property_filters
from export_pipeline.errors import InvalidRequest


class ExportFormat(StrEnum):
    NDJSON = "ndjson"
    JSON = "json"
    CSV = "csv"
    PARQUET = "parquet"
    XLSX = "xlsx"
    PNG = "png"


class Compression(StrEnum):
    GZIP = "gzip"
    ZSTD = "zstd"
    NONE = "none"


E = TypeVar("E", bound=StrEnum)

MAX_EVENT_NAMES = 100
MAX_EVENT_NAME_LENGTH = 400


@dataclass(frozen=True)
class ExportSpec:
    """What to export. `date_from` is inclusive, `date_to` exclusive; both UTC."""

    project_id: int
    requested_by: str
    format: ExportFormat
    compression: Compression
    date_from: datetime | None = None
    date_to: datetime | None = None
    events: tuple[str, ...] = ()
    resource: str = "events"
    target_id: str | None = None  # the insight or dashboard exported, for those resources
    width: int | None = None  # PNG width in CSS pixels (default: 800 for an insight, 1920 for a dashboard)
    # Persons and groups: the created_at range is date_from/date_to.
    properties: tuple[PropertyFilter, ...] = ()
    cohort_id: int | None = None  # persons (a filter) and cohort (the cohort exported)
    group_type: str | None = None  # groups: a type name or index, as requested
    # Recordings (date_from/date_to select by start time).
    distinct_id: str | None = None
    person_id: str | None = None
    min_duration: int | None = None  # seconds
    # What the request resolved in the app database when it was stored (models/resolve.py): the group type's
    # index and name, the cohort's definition. Part of the request, so a retried run exports the same rows.
    resolved: dict = field(default_factory=dict, compare=False, hash=False)

    def filters(self) -> dict:
        if self.resource in ("insight", "dashboard"):
            return {"target_id": self.target_id, **({"width": self.width} if self.width else {})}
        dates = {"date_from": iso_utc(self.date_from), "date_to": iso_utc(self.date_to)}
        if self.resource == "events":
            return {**dates, "events": list(self.events)}
        if self.resource == "cohort":
            return {"cohort_id": self.cohort_id}
        if self.resource == "recordings":
            return {**dates, "distinct_id": self.distinct_id, "person_id": self.person_id,
                    "min_duration": self.min_duration}
        extra = {"group_type": self.group_type} if self.resource == "groups" else {"cohort_id": self.cohort_id}
        return {**dates, "properties": [f.as_json() for f in self.properties], **extra}

    def model_filters(self) -> dict:
        """The model filters as stored with the request (`export_requests.model_filters`)."""
        return {
            "properties": [f.as_json() for f in self.properties], "cohort_id": self.cohort_id,
            "group_type": self.group_type, "resolved": self.resolved, "distinct_id": self.distinct_id,
            "person_id": self.person_id, "min_duration": self.min_duration,
        }


ROW_FORMATS = (ExportFormat.NDJSON, ExportFormat.JSON, ExportFormat.CSV, ExportFormat.PARQUET)
# Resources exported as rows of a model (models/), each in every row format.
ROW_RESOURCES = ("events", "persons", "groups", "cohort", "recordings")  # recordings: the sessions' index
RESOURCE_FORMATS = {
    **{resource: ROW_FORMATS for resource in ROW_RESOURCES},
    "insight": (ExportFormat.PNG, ExportFormat.CSV, ExportFormat.XLSX, ExportFormat.JSON),
    "dashboard": (ExportFormat.PNG, ExportFormat.CSV, ExportFormat.XLSX, ExportFormat.JSON),
}
PNG_WIDTHS = (400, 3000)


def default_compression(fmt: ExportFormat) -> Compression:
    # Parquet and XLSX compress inside the file; text formats are gzip for universal readability.
    if fmt is ExportFormat.XLSX:
        return Compression.NONE
    return Compression.ZSTD if fmt is ExportFormat.PARQUET else Compression.GZIP


def parse_spec(
    *,
    project_id: object,
    requested_by: object,
    format: object = "ndjson",
    compression: object = None,
    date_from: object = None,
    date_to: object = None,
    events: Iterable[object] | None = None,
    resource: object = "events",
    target_id: object = None,
    width: object = None,
    properties: object = None,
    cohort_id: object = None,
    group_type: object = None,
    distinct_id: object = None,
    person_id: object = None,
    min_duration: object = None,
) -> ExportSpec:
    """Validate raw request fields, reporting every bad field at once (InvalidRequest.details)."""
    errors: dict[str, str] = {}

    parsed_project: int = 0
    try:
        parsed_project = int(str(project_id))
        if parsed_project <= 0 or parsed_project >= 2**63:
            raise ValueError
    except ValueError:
        errors["project_id"] = f"must be a positive integer, got {project_id!r}"

    user = str(requested_by or "").strip()
    if not user or len(user) > 255:
        errors["requested_by"] = "must be a user name of 1 to 255 characters"

    fmt = _enum(ExportFormat, format, "format", errors)
    comp = _enum(Compression, compression, "compression", errors) if compression not in (None, "") else None

    start = _parse_time(date_from, "date_from", errors, end_of_day=False)
    end = _parse_time(date_to, "date_to", errors, end_of_day=True)
    if start and end and start >= end:
        errors["date_to"] = f"must be after date_from ({iso_utc(start)}), got {iso_utc(end)}"

    names: list[str] = []
    for raw in events or ():
        name = str(raw)
        if not name.strip() or len(name) > MAX_EVENT_NAME_LENGTH:
            errors["events"] = f"each event name must be 1 to {MAX_EVENT_NAME_LENGTH} characters"
        elif name not in names:
            names.append(name)
    if len(names) > MAX_EVENT_NAMES:
        errors["events"] = f"at most {MAX_EVENT_NAMES} event names, got {len(names)}"

    kind = str(resource or "events").strip().lower()
    target = str(target_id).strip() if target_id not in (None, "") else None
    filters = parse_property_filters(properties, "properties", errors)
    cohort = _positive(cohort_id, "cohort_id", errors)
    group = str(group_type).strip() if group_type not in (None, "") else None
    if group is not None and not 1 <= len(group) <= 64:
        errors["group_type"] = "must be a group type name or index of 1 to 64 characters"
    recording_fields = _recording_fields(distinct_id, person_id, min_duration, errors)
    if any(value is not None for value in recording_fields.values()) and kind != "recordings":
        errors["resource"] = "only recordings exports take distinct_id, person_id and min_duration"
    if kind not in RESOURCE_FORMATS:
        errors["resource"] = f"must be one of {', '.join(RESOURCE_FORMATS)}, got {resource!r}"
    else:
        if fmt is not None and fmt not in RESOURCE_FORMATS[kind]:
            allowed = ", ".join(f.value for f in RESOURCE_FORMATS[kind])
            errors["format"] = f"{kind} exports come as {allowed}, not {fmt.value}"
        _check_resource_fields(kind, errors, target=target, dated=bool(start or end), names=names,
                               filters=filters, cohort=cohort, group=group, compressed=comp not in (None, Compression.NONE))

    png_width: int | None = None
    if width not in (None, ""):
        low, high = PNG_WIDTHS
        try:
            png_width = int(str(width))
            if not low <= png_width <= high:
                raise ValueError
        except ValueError:
            errors["width"] = f"must be a whole number of pixels from {low} to {high}, got {width!r}"
        if fmt is not ExportFormat.PNG:
            errors["width"] = "only PNG exports take a width"

    if errors or fmt is None:
        fields = "; ".join(f"{field}: {message}" for field, message in errors.items())
        raise InvalidRequest(f"Invalid export request: {fields}.", details=errors)
    return ExportSpec(
        project_id=parsed_project,
        requested_by=user,
        format=fmt,
        compression=comp or (default_compression(fmt) if kind in ROW_RESOURCES else Compression.NONE),
        date_from=start,
        date_to=end,
        events=tuple(names),
        resource=kind,
        target_id=target,
        width=png_width,
        properties=filters,
        cohort_id=cohort,
        group_type=group,
        **recording_fields,
    )


def _recording_fields(distinct_id: object, person_id: object, min_duration: object, errors: dict[str, str]) -> dict:
    fields: dict = {"distinct_id": None, "person_id": None, "min_duration": None}
    if distinct_id not in (None, ""):
        fields["distinct_id"] = str(distinct_id)
        if len(fields["distinct_id"]) > 400:
            errors["distinct_id"] = "must be at most 400 characters"
    if person_id not in (None, ""):
        try:
            fields["person_id"] = str(uuid.UUID(str(person_id).strip()))
        except ValueError:
            errors["person_id"] = f"must be a person id (a UUID), got {str(person_id)[:80]!r}"
    if min_duration not in (None, ""):
        try:
            fields["min_duration"] = int(str(min_duration))
            if not 0 <= fields["min_duration"] <= 86_400 * 365:
                raise ValueError
        except ValueError:
            errors["min_duration"] = f"must be a whole number of seconds, got {min_duration!r}"
    return fields


def _check_resource_fields(kind: str, errors: dict[str, str], *, target: str | None, dated: bool, names: list[str],
                           filters: tuple, cohort: int | None, group: str | None, compressed: bool) -> None:
    """Which fields each resource takes."""
    if kind in ("insight", "dashboard"):
        if not target:
            errors["target_id"] = f"required: the id of the {kind} to export"
        if compressed:
            errors["compression"] = f"{kind} exports are small files and are not compressed"
        if dated or names:
            errors["resource"] = f"{kind} exports take their dates and events from the {kind} itself"
    elif target:
        errors["target_id"] = "only insight and dashboard exports take a target_id"
    if names and kind != "events":
        errors["events"] = "only events exports filter by event name"
    if filters and kind not in ("persons", "groups"):
        errors["properties"] = "only persons and groups exports take property filters"
    if kind == "cohort" and dated:
        errors["date_from"] = "a cohort export is the cohort's persons as of the request; it takes no dates"
    if kind == "cohort" and cohort is None:
        errors["cohort_id"] = "required: the id of the cohort to export"
    elif cohort is not None and kind not in ("persons", "cohort"):
        errors["cohort_id"] = "only persons and cohort exports take a cohort_id"
    if kind == "groups" and group is None:
        errors["group_type"] = "required: the group type to export, by name (e.g. organization) or index"
    elif group is not None and kind != "groups":
        errors["group_type"] = "only groups exports take a group_type"


def _positive(value: object, field: str, errors: dict[str, str]) -> int | None:
    if value in (None, ""):
        return None
    try:
        number = int(str(value))
        if not 0 < number < 2**63:
            raise ValueError
    except ValueError:
        errors[field] = f"must be a positive integer, got {value!r}"
        return None
    return number


def _enum(kind: type[E], value: object, field: str, errors: dict[str, str]) -> E | None:
    try:
        return kind(str(value).strip().lower())
    except ValueError:
        errors[field] = f"must be one of {', '.join(member.value for member in kind)}, got {value!r}"
        return None


def _parse_time(value: object, field: str, errors: dict[str, str], *, end_of_day: bool) -> datetime | None:
    """ISO 8601 date or datetime; naive means UTC. A bare date as `date_to` means through that whole day."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        parsed = value
    else:
        text = str(value).strip()
        try:
            if len(text) == 10:
                day = date.fromisoformat(text)
                parsed = datetime.combine(day + timedelta(days=1) if end_of_day else day, time(), UTC)
            else:
                parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            errors[field] = f"must be an ISO 8601 date or datetime (e.g. 2026-01-31 or 2026-01-31T12:00:00Z), got {text!r}"
            return None
    parsed = as_utc(parsed)
    if not FIRST_YEAR <= parsed.year <= LAST_YEAR:
        errors[field] = f"must be between {FIRST_YEAR} and {LAST_YEAR}"
        return None
    return parsed
