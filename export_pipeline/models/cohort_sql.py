"""A cohort's membership as a SQL condition on persons rows (those of `models/person_sql.persons_sql`),
evaluated in ClickHouse as of the request: every value a bound parameter named `cohort_…`.

A behavioural filter counts the events of every distinct id that belongs to the person now (ids moved by a
merge count for their new person), with `timestamp` in [as_of - days, as_of] and ingested by then."""

from __future__ import annotations

from export_pipeline.clickhouse.schema import EventsTable
from export_pipeline.cohorts.definition import Behavioral, CohortDefinition, parse_definition
from export_pipeline.engine.filters import PropertyFilter
from export_pipeline.models.person_sql import AS_OF, distinct_ids_sql, property_condition


def membership_condition(snapshot: dict, table: EventsTable, *, person_id: str = "id",
                         properties: str = "p_properties") -> tuple[str, dict]:
    """`snapshot` is what the request stored (models/resolve.py): {"kind": "static", "person_ids": [...]} or
    {"kind": "dynamic", "definition": {...}}."""
    if snapshot["kind"] == "static":
        return f"{person_id} IN {{cohort_people:Array(UUID)}}", {"cohort_people": list(snapshot["person_ids"])}
    return definition_condition(parse_definition(snapshot["definition"]), table, person_id=person_id,
                                properties=properties)


def definition_condition(definition: CohortDefinition, table: EventsTable, *, person_id: str,
                         properties: str) -> tuple[str, dict]:
    parts: list[str] = []
    params: dict = {}
    for index, rule in enumerate(definition.filters):
        name = f"cohort_{index}"
        if isinstance(rule, PropertyFilter):
            sql, more = property_condition(rule, properties, name)
        else:
            sql, more = _performed(rule, table, person_id, name)
        parts.append(f"({sql})")
        params.update(more)
    joiner = " AND " if definition.match == "all" else " OR "
    return f"({joiner.join(parts)})", params


def _performed(rule: Behavioral, table: EventsTable, person_id: str, name: str) -> tuple[str, dict]:
    c = table.col
    counts = (
        f"SELECT {c('distinct_id')} AS distinct_id, count() AS n FROM {table.qualified_name} "
        f"WHERE {c('project_id')} = {{project_id:UInt64}} AND {c('event')} = {{{name}_event:String}} "
        f"AND {c('timestamp')} >= {AS_OF} - toIntervalDay({{{name}_days:UInt32}}) AND {c('timestamp')} <= {AS_OF} "
        f"AND {c('created_at')} <= {AS_OF} GROUP BY distinct_id"
    )
    performers = (
        f"SELECT ids.owner FROM ({counts}) AS e INNER JOIN ({distinct_ids_sql(table)}) AS ids "
        f"ON ids.distinct_id = e.distinct_id GROUP BY ids.owner HAVING sum(e.n) >= {{{name}_min:UInt64}}"
    )
    return f"{person_id} IN ({performers})", {
        f"{name}_event": rule.event, f"{name}_days": rule.days, f"{name}_min": rule.min_count,
    }
