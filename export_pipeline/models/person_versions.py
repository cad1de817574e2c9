"""Person versions: every row of the persons table as ingested, for batch exports (one row per version, cut
into intervals by `_timestamp`, the ingestion time).

Not the persons model (persons.py): that one aggregates each person's latest version at run time, a state
that has no ingestion time (a person's latest version changes whenever a newer one arrives), so it cannot be
cut into intervals that never overlap. Versions can: each row has one `_timestamp`, so it belongs to exactly
one interval. A consumer rebuilds the latest state from the files (per id, the highest `version`; gone when
that version `is_deleted`), as ClickHouse's ReplacingMergeTree does. Paged by (id, version), the table's own
order within a project."""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa

from export_pipeline.clickhouse.schema import EventsTable
from export_pipeline.engine.model import UTC_MICROSECONDS, Column, Conditions, ExportModel, KeyColumn
from export_pipeline.engine.spec import ExportSpec


def version_filters(spec: ExportSpec, _as_of: datetime) -> Conditions:
    return ["project_id = {project_id:UInt64}"], {"project_id": spec.project_id}


def person_versions_model(table: EventsTable) -> ExportModel:
    # Every column of the persons table is non-Nullable in ClickHouse, so Parquet declares them required.
    return ExportModel(
        name="persons",
        source=table.other("persons"),
        columns=(
            Column("project_id", "project_id", pa.uint64(), nullable=False),
            Column("id", "toString(id)", pa.uuid(), nullable=False, distinct=True),
            Column("version", "version", pa.uint64(), nullable=False),
            Column("created_at", "created_at", UTC_MICROSECONDS, nullable=False, distinct=True),
            Column("is_identified", "toBool(is_identified)", pa.bool_(), nullable=False),
            Column("is_deleted", "toBool(is_deleted)", pa.bool_(), nullable=False),
            Column("properties", "properties", pa.string(), json_object=True, nullable=False, distinct=True),
            Column("_timestamp", "_timestamp", UTC_MICROSECONDS, nullable=False, distinct=True),
        ),
        key=(KeyColumn("id", "id", "UUID"), KeyColumn("version", "version", "UInt64")),
        filters=version_filters,
        ingested_at="_timestamp",
    )
