"""Service Ping: usage metrics defined in GitLab's metric-definition YAML format, computed from app state.

Definitions live in `usage/metrics/*.yml` with GitLab's required fields (key_path, description, value_type,
status, product_group, time_frame, data_source, data_category, milestone, introduced_by_url, tiers). How a
metric is computed is declared beside them: `data_source: database` metrics name
`instrumentation_class: ExportRequestsMetric` (export requests), `data_source: internal_events` metrics list
`events: [{name: api_request}]` (HTTP API requests recorded by the API); `options` filter and measure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib.metadata import version
from pathlib import Path

import sqlalchemy as sa
import yaml
from sqlalchemy.engine import Engine

from export_pipeline.db import api_requests, export_requests, service_pings
from export_pipeline.errors import InvalidRequest

METRICS_DIR = Path(__file__).parent / "metrics"
REQUIRED_FIELDS = (
    "key_path", "description", "value_type", "status", "product_group", "time_frame", "data_source",
    "data_category", "milestone", "introduced_by_url", "tiers",
)
TIME_FRAMES = {"7d": timedelta(days=7), "28d": timedelta(days=28), "all": None, "none": None}
DATA_SOURCES = {"database", "redis", "redis_hll", "prometheus", "system", "license", "internal_events"}
SUCCEEDED_STATES = ("succeeded", "expired")  # an expired export had succeeded


@dataclass(frozen=True)
class MetricDefinition:
    key_path: str
    value_type: str
    time_frame: str
    data_source: str
    options: dict = field(default_factory=dict)
    events: tuple[str, ...] = ()


def load_definitions(folder: Path = METRICS_DIR) -> list[MetricDefinition]:
    """Read and validate every definition; all problems are reported together."""
    definitions, problems = [], []
    for path in sorted(folder.glob("*.yml")):
        raw = yaml.safe_load(path.read_text()) or {}
        missing = [name for name in REQUIRED_FIELDS if name not in raw]
        if missing:
            problems.append(f"{path.name}: missing {', '.join(missing)}")
            continue
        if raw["time_frame"] not in TIME_FRAMES or raw["data_source"] not in DATA_SOURCES:
            problems.append(f"{path.name}: time_frame or data_source not allowed by the schema")
            continue
        if raw["data_source"] == "database" and raw.get("instrumentation_class") != "ExportRequestsMetric":
            problems.append(f"{path.name}: database metrics need instrumentation_class: ExportRequestsMetric")
            continue
        events = tuple(event["name"] for event in raw.get("events", []))
        if raw["data_source"] == "internal_events" and events != ("api_request",):
            problems.append(f"{path.name}: internal_events metrics count the api_request event")
            continue
        definitions.append(
            MetricDefinition(raw["key_path"], raw["value_type"], raw["time_frame"], raw["data_source"],
                             raw.get("options", {}), events)
        )
    if problems:
        raise InvalidRequest("Invalid Service Ping metric definitions: " + "; ".join(problems) + ".")
    return definitions


def compute_metric(definition: MetricDefinition, engine: Engine, now: datetime) -> object:
    window = TIME_FRAMES[definition.time_frame]
    since = now - window if window else None
    options = definition.options
    with engine.connect() as conn:
        if definition.data_source == "database":
            return conn.execute(_export_query(options, since)).scalar_one() or 0
        return _api_metric(conn, options, since)


def _export_query(options: dict, since: datetime | None) -> sa.Select:
    t = export_requests
    measure = options.get("measure", "count")
    column = {
        "count": sa.func.count(),
        "rows": sa.func.sum(t.c.row_count),
        "bytes": sa.func.sum(t.c.byte_count),
        "unique_users": sa.func.count(sa.distinct(t.c.requested_by)),
    }[measure]
    query = sa.select(column).select_from(t)
    if since is not None:
        query = query.where(t.c.created_at >= since)
    if options.get("format"):
        query = query.where(t.c.format == options["format"])
    if options.get("state") == "succeeded":
        query = query.where(t.c.state.in_(SUCCEEDED_STATES), t.c.error_code.is_(None), t.c.finished_at.is_not(None))
    elif options.get("state") == "failed":
        query = query.where(t.c.error_code.is_not(None), t.c.error_code != "canceled")
    return query


def _api_metric(conn: sa.Connection, options: dict, since: datetime | None) -> object:
    t = api_requests
    conditions = [t.c.occurred_at >= since] if since is not None else []
    outcome = options.get("outcome")
    if outcome == "success":
        conditions.append(t.c.status < 400)
    elif outcome == "client_error":
        conditions.append(sa.and_(t.c.status >= 400, t.c.status < 500))
    elif outcome == "server_error":
        conditions.append(t.c.status >= 500)
    measure = options.get("measure", "count")
    if measure == "count_by_endpoint":
        rows = conn.execute(
            sa.select(t.c.endpoint, sa.func.count()).select_from(t).where(*conditions).group_by(t.c.endpoint)
        )
        return dict(sorted(rows.tuples()))
    column = sa.func.count(sa.distinct(t.c.user_name)) if measure == "unique_users" else sa.func.count()
    return conn.execute(sa.select(column).select_from(t).where(*conditions)).scalar_one()


def build_payload(engine: Engine, now: datetime, definitions: list[MetricDefinition] | None = None) -> dict:
    """The Service Ping payload: metrics nested by their key_path."""
    payload: dict = {"recorded_at": now.isoformat().replace("+00:00", "Z"), "version": version("export_pipeline")}
    for definition in definitions or load_definitions():
        node = payload
        *parents, leaf = definition.key_path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = compute_metric(definition, engine, now)
    return payload


def save_payload(engine: Engine, payload: dict, recorded_at: datetime) -> int:
    with engine.begin() as conn:
        return conn.execute(sa.insert(service_pings).values(recorded_at=recorded_at, payload=payload)).inserted_primary_key[0]


def send_payload(engine: Engine, ping_id: int, payload: dict, url: str) -> None:
    """POST the payload; the outcome is stored with it. Raises on failure so the run shows it."""
    import httpx  # 4 MB of memory that every Dagster run (which imports this module) would pay

    try:
        response = httpx.post(url, json=payload, timeout=30)
        response.raise_for_status()
        error = None
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"
    with engine.begin() as conn:
        conn.execute(sa.update(service_pings).where(service_pings.c.id == ping_id).values(sent_to=url, send_error=error))
    if error:
        raise RuntimeError(f"Service Ping could not be sent to {url}: {error}")


def latest_payload(engine: Engine) -> dict | None:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(service_pings.c.payload).order_by(service_pings.c.recorded_at.desc(), service_pings.c.id.desc()).limit(1)
        ).scalar_one_or_none()


def record_api_request(engine: Engine, *, endpoint: str, status: int, user: str | None, at: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(sa.insert(api_requests).values(occurred_at=at, endpoint=endpoint, status=status, user_name=user))
