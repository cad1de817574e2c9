"""What to export: the validated request parameters (`parse_spec`), for every resource and format."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import TypeVar

from export_pipeline.clock import FIRST_YEAR, LAST_YEAR, as_utc, iso_utc
from export_pipeline.engine.compression import Compression
from export_pipeline.engine.filters import PropertyFilter, parse_property_filters
from export_pipeline.engine.formats import Format
from export_pipeline.engine.resources import Resource, takers
from export_pipeline.errors import InvalidRequest

E = TypeVar("E", bound=StrEnum)

MAX_EVENT_NAMES = 100
MAX_EVENT_NAME_LENGTH = 400
PNG_WIDTHS = (400, 3000)
# The filters a persons, groups, cohort or recordings request stores beside its columns (`model_filters`).
MODEL_FILTERS = ("properties", "cohort_id", "group_type", "distinct_id", "person_id", "min_duration")
# A field given to a resource that does not take it: the field the refusal is reported on, and its message
# ({} lists the resources that take it).
NOT_TAKEN = {
    "target_id": ("target_id", "only {} exports take a target_id"),
    "events": ("events", "only {} exports filter by event name"),
    "properties": ("properties", "only {} exports take property filters"),
    "cohort_id": ("cohort_id", "only {} exports take a cohort_id"),
    "group_type": ("group_type", "only {} exports take a group_type"),
    **dict.fromkeys(("distinct_id", "person_id", "min_duration"),
                    ("resource", "only {} exports take distinct_id, person_id and min_duration")),
}
REQUIRED = {  # {} is the resource
    "target_id": "required: the id of the {} to export",
    "cohort_id": "required: the id of the {} to export",
    "group_type": "required: the group type to export, by name (e.g. organization) or index",
}


@dataclass(frozen=True)
class ExportSpec:
    """What to export. `date_from` is inclusive, `date_to` exclusive; both UTC."""

    project_id: int
    requested_by: str
    format: Format
    compression: Compression
    date_from: datetime | None = None
    date_to: datetime | None = None
    events: tuple[str, ...] = ()
    resource: Resource = Resource.EVENTS
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
        """Every field the resource takes, as the manifest, the API and the email show them (a width only when
        one was asked for)."""
        shown: dict = {}
        for name in self.resource.takes:
            value = getattr(self, name)
            if name in ("date_from", "date_to"):
                value = iso_utc(value)
            elif name == "events":
                value = list(value)
            elif name == "properties":
                value = [f.as_json() for f in value]
            elif name == "width" and value is None:
                continue
            shown[name] = value
        return shown

    def model_filters(self) -> dict | None:
        """The model filters as stored with the request (`export_requests.model_filters`), if the resource
        takes any."""
        if not set(MODEL_FILTERS) & set(self.resource.takes):
            return None
        return {
            "properties": [f.as_json() for f in self.properties], "cohort_id": self.cohort_id,
            "group_type": self.group_type, "resolved": self.resolved, "distinct_id": self.distinct_id,
            "person_id": self.person_id, "min_duration": self.min_duration,
        }


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

    fmt = _enum(Format, format, "format", errors)
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

    kind = _enum(Resource, resource or "events", "resource", errors)
    target = str(target_id).strip() if target_id not in (None, "") else None
    filters = parse_property_filters(properties, "properties", errors)
    cohort = _positive(cohort_id, "cohort_id", errors)
    group = str(group_type).strip() if group_type not in (None, "") else None
    if group is not None and not 1 <= len(group) <= 64:
        errors["group_type"] = "must be a group type name or index of 1 to 64 characters"
    recording_fields = _recording_fields(distinct_id, person_id, min_duration, errors)
    if kind is not None:
        if fmt is not None and fmt not in kind.formats:
            allowed = ", ".join(f.value for f in kind.formats)
            errors["format"] = f"{kind.value} exports come as {allowed}, not {fmt.value}"
        given = {"target_id": bool(target), "events": bool(names), "properties": bool(filters),
                 "cohort_id": cohort is not None, "group_type": group is not None,
                 **{name: value is not None for name, value in recording_fields.items()}}
        _check_resource_fields(kind, given, errors, dated=bool(start or end),
                               compressed=comp not in (None, Compression.NONE))

    png_width: int | None = None
    if width not in (None, ""):
        low, high = PNG_WIDTHS
        try:
            png_width = int(str(width))
            if not low <= png_width <= high:
                raise ValueError
        except ValueError:
            errors["width"] = f"must be a whole number of pixels from {low} to {high}, got {width!r}"
        if fmt is None or not fmt.image:
            errors["width"] = f"only {' and '.join(f.name for f in Format if f.image)} exports take a width"

    if errors or fmt is None or kind is None:
        fields = "; ".join(f"{field}: {message}" for field, message in errors.items())
        raise InvalidRequest(f"Invalid export request: {fields}.", details=errors)
    return ExportSpec(
        project_id=parsed_project,
        requested_by=user,
        format=fmt,
        compression=comp or (fmt.default_compression if kind.rows else Compression.NONE),
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


def _check_resource_fields(resource: Resource, given: dict[str, bool], errors: dict[str, str], *, dated: bool,
                           compressed: bool) -> None:
    """The fields `resource` refuses, and those it needs, given which fields the request has."""
    if dated and "date_from" not in resource.takes and resource.no_dates:
        key, message = resource.no_dates
        errors[key] = message
    for name, has in given.items():
        if has and name not in resource.takes:
            key, message = NOT_TAKEN[name]
            errors[key] = message.format(takers(name))
    for name in resource.requires:
        if not given[name]:
            errors[name] = REQUIRED[name].format(resource.value)
    if compressed and not resource.rows:
        errors["compression"] = f"{resource.value} exports are small files and are not compressed"


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
