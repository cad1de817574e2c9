"""What a new batch export destination may hold: its stored columns from raw fields (the API's body, the CLI's
options), every bad field reported at once; the URL is checked by its kind (`targets.validate_url`)."""

from __future__ import annotations

import re
import string
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from export_pipeline.batch_exports.intervals import Interval, IntervalUnit
from export_pipeline.batch_exports.targets import validate_url
from export_pipeline.clickhouse.schema import EventsTable
from export_pipeline.clock import as_utc
from export_pipeline.engine.compression import Compression
from export_pipeline.engine.formats import Format
from export_pipeline.models import BATCH_MODELS
from export_pipeline.storage.base import key_parts

PLACEHOLDERS = ("project_id", "model", "year", "month", "day", "hour", "data_interval_start", "data_interval_end")
DEFAULT_KEY_TEMPLATE = "{project_id}/{model}/{year}/{month}/{day}"
DEFAULT_FILE_SIZE_BYTES = 256 * 1024 * 1024
MIN_FILE_SIZE_BYTES = 1024 * 1024
DEFAULT_SETTLE_SECONDS = 15 * 60
DEFAULT_MAX_FAILURES = 3
# The Dagster asset's time dimension starts here (defs/batch_exports.py); no interval can start earlier.
EARLIEST_START = datetime(2020, 1, 1, tzinfo=UTC)
BATCH_FORMATS = (Format.NDJSON, Format.CSV, Format.PARQUET)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")


def validate_template(template: str, errors: dict[str, str]) -> str:
    text = template.strip().strip("/")
    try:
        fields = [(literal, name, spec, conv) for literal, name, spec, conv in string.Formatter().parse(text)]
    except ValueError as bad:
        errors["key_template"] = f"is not a valid template ({bad})"
        return text
    for _literal, name, spec, conv in fields:
        if name is None:
            continue
        if name not in PLACEHOLDERS:
            errors["key_template"] = (f"unknown placeholder {{{name}}}; use "
                                      + " ".join(f"{{{p}}}" for p in PLACEHOLDERS))
            return text
        if spec or conv:
            errors["key_template"] = f"placeholders take no format spec or conversion ({{{name}}})"
            return text
    sample = text.format(**{name: "x" for name in PLACEHOLDERS})
    try:
        key_parts(sample)
    except Exception:
        errors["key_template"] = "must be a relative path without empty, '.' or '..' segments"
    return text


def validate_timezone(name: str, errors: dict[str, str]) -> str:
    try:
        zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        errors["timezone"] = f"unknown time zone {name!r} (use an IANA name such as Europe/Paris)"
        return name
    # Interval starts are partition keys of an hourly UTC dimension, so every offset must be whole hours.
    probe = datetime(2020, 1, 1, tzinfo=UTC)
    for days in range(0, 366 * 3, 15):
        offset = (probe + timedelta(days=days)).astimezone(zone).utcoffset() or timedelta()
        if offset.total_seconds() % 3600:
            errors["timezone"] = f"{name} is offset from UTC by a fraction of an hour; use a whole-hour zone"
            break
    return name


def batch_model_names() -> list[str]:
    """The models a batch export can copy: those declaring an ingestion-time column (table names do not
    change that, so the default table is asked)."""
    return [name for name, build in BATCH_MODELS.items() if build(EventsTable()).ingested_at is not None]


def validate_new(fields: dict, errors: dict[str, str]) -> dict:
    """The stored columns of a new destination from raw fields; bad fields are added to `errors`."""
    model = str(fields.get("model") or "events")
    batchable = batch_model_names()
    if model not in BATCH_MODELS:
        errors["model"] = f"must be one of {', '.join(batchable)}, got {model!r}"
    elif model not in batchable:
        errors["model"] = (f"{model} has no ingestion-time column, so it cannot be cut into intervals that never "
                           f"overlap; batch exports take {', '.join(batchable)}")
    url = validate_url(str(fields.get("url") or ""), fields.get("endpoint_url") or None, errors)
    ref = fields.get("credentials_ref") or None
    if ref is not None and not _ENV_NAME.match(str(ref)):
        errors["credentials_ref"] = "must be the NAME of an environment variable holding the credentials (A-Z, 0-9, _)"
    template = validate_template(str(fields.get("key_template") or DEFAULT_KEY_TEMPLATE), errors)
    fmt = _choice(Format, fields.get("format") or "ndjson", "format", errors, BATCH_FORMATS)
    raw_compression = fields.get("compression")
    compression = (_choice(Compression, raw_compression, "compression", errors, tuple(Compression))
                   if raw_compression else (fmt.default_compression if fmt else Compression.GZIP))
    unit = _choice(IntervalUnit, fields.get("interval") or "hour", "interval", errors, tuple(IntervalUnit))
    timezone = validate_timezone(str(fields.get("timezone") or "UTC"), errors)
    size = _integer(fields.get("file_size_bytes"), DEFAULT_FILE_SIZE_BYTES, "file_size_bytes", errors,
                    low=MIN_FILE_SIZE_BYTES)
    settle = _integer(fields.get("settle_seconds"), DEFAULT_SETTLE_SECONDS, "settle_seconds", errors, low=0)
    max_failures = _integer(fields.get("max_failures"), DEFAULT_MAX_FAILURES, "max_failures", errors, low=1)
    split = bool(fields.get("split_by_event") or False)
    if split and model != "events":
        errors["split_by_event"] = "only events have event names to split by"
    start = _start(fields.get("start_at"), unit, timezone, errors)
    name = str(fields.get("name") or "").strip() or f"{model} to {url}"
    slack_workspace, slack_channel = fields.get("slack_workspace") or None, fields.get("slack_channel") or None
    if bool(slack_workspace) != bool(slack_channel):
        errors["slack_channel"] = "give both slack_workspace and slack_channel, or neither"
    return {
        "name": name[:255], "model": model, "url": url, "endpoint_url": fields.get("endpoint_url") or None,
        "credentials_ref": ref, "key_template": template, "format": fmt.value if fmt else "",
        "compression": compression.value if compression else "", "file_size_bytes": size,
        "split_by_event": split, "interval": unit.value if unit else "", "timezone": timezone, "start_at": start,
        "settle_seconds": settle, "max_failures": max_failures, "notify_email": fields.get("notify_email") or None,
        "slack_workspace": slack_workspace, "slack_channel": slack_channel,
    }


def _choice(kind, value, field: str, errors: dict[str, str], allowed: tuple):
    try:
        member = kind(str(value).strip().lower())
    except ValueError:
        member = None
    if member not in allowed:
        errors[field] = f"must be one of {', '.join(m.value for m in allowed)}, got {value!r}"
        return None
    return member


def _integer(value, default: int, field: str, errors: dict[str, str], *, low: int) -> int:
    if value in (None, ""):
        return default
    try:
        number = int(str(value))
        if number < low:
            raise ValueError
        return number
    except ValueError:
        errors[field] = f"must be a whole number of at least {low}, got {value!r}"
        return default


def _start(value, unit: IntervalUnit | None, timezone: str, errors: dict[str, str]) -> datetime:
    if value in (None, ""):
        errors["start_at"] = "required: the first interval's start (ISO 8601 date or datetime)"
        return EARLIEST_START
    try:
        parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        errors["start_at"] = f"must be an ISO 8601 date or datetime, got {value!r}"
        return EARLIEST_START
    if "timezone" in errors or unit is None:
        return EARLIEST_START
    zone = ZoneInfo(timezone)
    parsed = parsed.replace(tzinfo=zone) if parsed.tzinfo is None else parsed  # naive: the destination's zone
    interval = Interval.containing(unit, as_utc(parsed), zone)
    if interval.start != as_utc(parsed):
        errors["start_at"] = f"must be the start of a{'n' if unit is IntervalUnit.HOUR else ''} {unit.value} in {timezone}"
    elif interval.start < EARLIEST_START:
        errors["start_at"] = f"must be on or after {EARLIEST_START.date().isoformat()}"
    return interval.start
