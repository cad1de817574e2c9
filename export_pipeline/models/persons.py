"""Persons: one row per existing person (highest version, not deleted) with all of its distinct ids (no
cap), paged by id. Filters: created_at range (date_from/date_to), property filters, a cohort. The `cohort`
resource is the same rows restricted to one cohort.

The latest versions at run time, not as of the request: ReplacingMergeTree merges away older versions, so
the state at an earlier moment cannot be rebuilt once merged (see docs/people.md). Keyset paging on the
unique id still exports each person exactly once."""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa

from export_pipeline.clickhouse.schema import EventsTable
from export_pipeline.clock import ch_time
from export_pipeline.engine.model import UTC_MICROSECONDS, Column, Conditions, ExportModel, KeyColumn
from export_pipeline.engine.spec import ExportSpec
from export_pipeline.models.cohort_sql import membership_condition
from export_pipeline.models.person_sql import created_and_properties, persons_sql

LOWEST_UUID = "00000000-0000-0000-0000-000000000000"
ALL = 2**64 - 1  # as a LIMIT
# The chunk's persons: its `limit` from `after_id` on, plus the previous chunk's last one (`>=` keeps a nil
# first id), which the keyset step then drops; everything left when other filters apply.
CHUNK_WINDOW = f"if({{bounded:Bool}}, least({{limit:UInt64}}, {ALL - 1}) + 1, {ALL})"
# Persons per streamed window: the query reads the persons of one id range and the distinct ids they own, so
# the grouped ids held for the join are a window's, not the whole project's. Each window scans the distinct
# ids again (their table is ordered by distinct id, not by owner): about 0.2 s per window at 1M persons.
PERSONS_PER_WINDOW = 250_000
# Persons are read in key order through the join, so a window's rows need no sort: ClickHouse keeps the left
# side's read order only through a hash join that cannot spill; otherwise it sorts the whole window again,
# properties included. The window bounds what the join holds. Measured at 1M persons, one window of 250k, the
# query alone: 0.35 s and +155 MB, against 0.46 s and +260 MB sorted (docs/people.md). The persons stay the
# left side: left to choose, ClickHouse may build the join from them instead (seen with a persons table holding
# other projects too), which loses their order.
STREAM_SETTINGS = {"join_algorithm": "hash", "max_bytes_ratio_before_external_join": 0,
                   "query_plan_join_swap_table": "false"}


def person_filters(table: EventsTable, spec: ExportSpec, as_of: datetime) -> Conditions:
    """The conditions on `persons_sql` rows, and every parameter those rows' query needs."""
    clauses, params = created_and_properties(spec, created_at="p_created_at", properties="p_properties")
    clauses.insert(0, "p_project_id = {project_id:UInt64}")
    # The source narrows itself to the chunk (base.py `after`): from the previous chunk's last id (after_id,
    # the lowest id for the first chunk) and, when nothing else filters the persons, to the chunk's `limit`
    # first of them (a count leaves the default: all).
    if "cohort" in spec.resolved:
        sql, more = membership_condition(spec.resolved["cohort"], table)
        clauses.append(sql)
        params.update(more)
    params.update(project_id=spec.project_id, as_of=ch_time(as_of), after_id=LOWEST_UUID, limit=ALL,
                  bounded=len(clauses) == 1)
    return clauses, params


def persons_model(table: EventsTable, name: str = "persons") -> ExportModel:
    return ExportModel(
        name=name,
        source=f"({persons_sql(table, from_person='{after_id:UUID}', first=CHUNK_WINDOW)})",
        # A whole export aggregates every distinct id once (one GROUP BY pass, one join), not per window.
        stream_source=f"({persons_sql(table, final=True)})",
        count_source=f"({persons_sql(table, with_distinct_ids=False, final=True)})",
        stream_settings=STREAM_SETTINGS,
        window_rows=PERSONS_PER_WINDOW,
        columns=(
            Column("id", "toString(id)", pa.string(), distinct=True),
            Column("created_at", "p_created_at", UTC_MICROSECONDS, distinct=True),
            Column("is_identified", "toBool(p_is_identified)", pa.bool_()),
            Column("version", "p_version", pa.uint64()),
            Column("distinct_ids", "toJSONString(p_distinct_ids)", pa.string(), json_object=True, built_json=True, distinct=True),
            Column("properties", "p_properties", pa.string(), json_object=True, distinct=True),
        ),
        key=(KeyColumn("id", "id", "UUID"),),
        filters=lambda spec, as_of: person_filters(table, spec, as_of),
    )


def cohort_model(table: EventsTable) -> ExportModel:
    return persons_model(table, name="cohort")
