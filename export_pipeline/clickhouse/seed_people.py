"""Deterministic persons, distinct ids and groups generated inside ClickHouse, consistent with the seeded
events (clickhouse/seed.py): every user of a project's events is a person whose first distinct id is the one
its events carry, and whose id is the events' person_id.

What the data exercises on purpose:
- 1-3 versions per person (properties change: plan, visits), the highest is the person;
- 1-5 distinct ids per person (the events' one plus devices), about three on average;
- merges: every 20th user was merged into the previous one, its distinct ids moved there (version 2) and
  its person deleted; ~2% of persons deleted outright (with their distinct ids);
- `extra_per_project` more persons per project that have no events (imported people), for volume;
- organizations (group type 0), one per 25 users, as the events' `$groups` name them, in two versions.
Same seed, same rows (`_timestamp` included).
"""

from __future__ import annotations

from datetime import UTC, datetime

from clickhouse_connect.driver.client import Client

from export_pipeline.clickhouse.schema import EventsTable
from export_pipeline.clickhouse.seed import USERS, organization_key, person_id, user_distinct_id

START = datetime(2026, 5, 1, tzinfo=UTC)

# One row per (project, user), with the aliases the person and distinct-id rows derive from.
_USERS = f"""
    SELECT {{seed:UInt64}} AS s, project_id, u,
        {user_distinct_id('u')} AS distinct_id,
        {person_id('distinct_id')} AS pid,
        {person_id(user_distinct_id('u - 1'))} AS merged_into,
        u % 20 = 1 AS merged,
        NOT merged AND cityHash64(s, project_id, u, 21) % 50 = 0 AS deleted,
        fromUnixTimestamp64Micro(toInt64({{start_us:Int64}} + cityHash64(s, project_id, u, 22) % (180 * 86400000000)),
                                 'UTC') AS created_at
    FROM (SELECT {{project_id:UInt64}} AS project_id, {{seed:UInt64}} AS s0, {USERS.replace('s,', 's0,')} AS users)
    ARRAY JOIN range(users + {{extra:UInt64}}) AS u
"""

_PERSONS = f"""
INSERT INTO {{persons}} (project_id, id, created_at, properties, is_identified, is_deleted, version, _timestamp)
SELECT project_id, pid, created_at,
    concat('{{"email":', toJSONString(distinct_id),
           ',"name":', toJSONString(concat('Ünïcödé "Üser" ', toString(u))),
           ',"plan":', toJSONString(['free', 'startup', 'scale', 'enterprise'][1 + (cityHash64(s, project_id, u, 24) + version) % 4]),
           ',"visits":', toString(version * (1 + cityHash64(s, project_id, u, 25) % 50)),
           ',"bio":', if(u % 13 = 0, 'null', toJSONString(concat('line one\\nline "two"\\t', toString(u)))),
           if(u % 10 = 0, '', concat(',"organization":', toJSONString({organization_key('u')}))), '}}'),
    version >= 2 OR u % 3 = 0, version > versions, version,
    created_at + toIntervalHour(version)
FROM (
    SELECT *, 1 + cityHash64(s, project_id, u, 20) % 3 AS versions,
        arrayJoin(range(1, versions + 1 + (merged OR deleted))) AS version
    FROM ({_USERS})
)
"""

_DISTINCT_IDS = f"""
INSERT INTO {{distinct_ids}} (project_id, distinct_id, person_id, is_deleted, version, _timestamp)
SELECT project_id, if(k = 0, distinct_id, concat(distinct_id, '#device-', toString(k))),
    if(version = 2 AND merged, merged_into, pid), version = 2 AND deleted, version,
    created_at + toIntervalHour(version * 24)
FROM (
    SELECT *, arrayJoin(range(1 + cityHash64(s, project_id, u, 23) % 5)) AS k,
        arrayJoin(if(merged OR deleted, [1, 2], [1])) AS version
    FROM ({_USERS})
)
"""

_GROUPS = f"""
INSERT INTO {{groups}} (project_id, group_type_index, group_key, created_at, properties, _timestamp)
SELECT project_id, 0, key, created_at,
    concat('{{"name":', toJSONString(concat('Organisation ', toString(o), if(o % 7 = 0, ' «ünïcödé» "ltd"', ''))),
           ',"employees":', toString(version * (1 + cityHash64(s, project_id, o, 31) % 500)),
           ',"industry":', toJSONString(['software', 'retail', 'health', 'finance'][1 + cityHash64(s, project_id, o, 32) % 4]),
           '}}'),
    created_at + toIntervalDay(version)
FROM (
    SELECT {{seed:UInt64}} AS s, project_id, o, {organization_key('o')} AS key, arrayJoin([1, 2]) AS version,
        fromUnixTimestamp64Micro(toInt64({{start_us:Int64}} + cityHash64(s, project_id, o, 30) % (90 * 86400000000)),
                                 'UTC') AS created_at
    FROM (SELECT {{project_id:UInt64}} AS project_id, {{seed:UInt64}} AS s0, {USERS.replace('s,', 's0,')} AS users)
    ARRAY JOIN range(intDiv(users, 25) + 1) AS o
)
"""


def seed_people(client: Client, table: EventsTable, *, projects: int, seed: int = 0, extra_per_project: int = 0) -> None:
    """Insert the persons, distinct ids and organizations of projects 1..`projects`."""
    start_us = int(START.timestamp()) * 1_000_000
    statements = {
        "persons": _PERSONS.replace("{persons}", table.other("persons")),
        "person_distinct_ids": _DISTINCT_IDS.replace("{distinct_ids}", table.other("person_distinct_ids")),
        "groups": _GROUPS.replace("{groups}", table.other("groups")),
    }
    for project_id in range(1, projects + 1):
        params = {"seed": seed, "project_id": project_id, "extra": extra_per_project, "start_us": start_us}
        for sql in statements.values():
            # Keep every version as written (ReplacingMergeTree would collapse them on insert), as a live
            # table holds them until its merges catch up: exports must pick the latest themselves.
            client.command(sql, parameters=params, settings={"optimize_on_insert": 0})
