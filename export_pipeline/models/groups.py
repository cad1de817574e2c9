"""Groups of one type (organizations, companies, …): one row per group key, its latest `_timestamp` version,
paged by key. Filters: the group type (resolved to its index when the request was stored), created_at range,
property filters."""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa

from export_pipeline.clickhouse.schema import EventsTable
from export_pipeline.clock import ch_time
from export_pipeline.engine.model import UTC_MICROSECONDS, Column, Conditions, ExportModel, KeyColumn
from export_pipeline.engine.spec import ExportSpec
from export_pipeline.models.person_sql import created_and_properties


def groups_sql(table: EventsTable) -> str:
    """The latest version of each group of one type (at run time, as persons: models/persons.py). Columns: g_project_id, g_key,
    g_created_at, g_properties."""
    return (
        f"SELECT project_id AS g_project_id, group_key AS g_key, argMax(created_at, _timestamp) AS g_created_at, "
        f"argMax(properties, _timestamp) AS g_properties FROM {table.other('groups')} "
        f"WHERE project_id = {{project_id:UInt64}} AND group_type_index = {{group_type_index:UInt8}} "
        f"GROUP BY project_id, group_key"
    )


def group_filters(spec: ExportSpec, as_of: datetime) -> Conditions:
    clauses, params = created_and_properties(spec, created_at="g_created_at", properties="g_properties")
    clauses.insert(0, "g_project_id = {project_id:UInt64}")
    params.update(project_id=spec.project_id, as_of=ch_time(as_of), group_type_index=spec.resolved["group_type_index"],
                  group_type_name=spec.resolved.get("group_type_name") or "")
    return clauses, params


def groups_model(table: EventsTable) -> ExportModel:
    return ExportModel(
        name="groups",
        source=f"({groups_sql(table)})",
        columns=(
            Column("key", "g_key", pa.string(), distinct=True),
            Column("group_type", "{group_type_name:String}", pa.string()),
            Column("group_type_index", "{group_type_index:UInt8}", pa.uint8()),
            Column("created_at", "g_created_at", UTC_MICROSECONDS, distinct=True),
            Column("properties", "g_properties", pa.string(), json_object=True, distinct=True),
        ),
        key=(KeyColumn("key", "g_key", "String"),),
        filters=group_filters,
    )
