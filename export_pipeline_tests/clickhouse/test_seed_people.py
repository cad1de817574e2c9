"""Seeded persons, distinct ids and organizations are consistent with the seeded events, follow merges,
keep several versions, and are the same for the same seed."""

from __future__ import annotations

import pytest

from export_pipeline.clickhouse.schema import EventsTable, init_schema
from export_pipeline.clickhouse.seed import seed_events
from export_pipeline.clickhouse.seed_people import seed_people
from export_pipeline.engine.extract import QUERY_SETTINGS
from export_pipeline.models.person_sql import distinct_ids_sql, persons_sql

PROJECTS = 2


def _seeded(client, database: str) -> EventsTable:
    table = EventsTable(database=database)
    client.command(f"DROP DATABASE IF EXISTS `{database}`")
    init_schema(client, table)
    seed_events(client, table, events=20_000, projects=PROJECTS, seed=3)
    seed_people(client, table, projects=PROJECTS, seed=3, extra_per_project=500)
    return table


@pytest.fixture(scope="module")
def seeded(clickhouse):
    with clickhouse.session("test seed people") as session:
        yield session.client, _seeded(session.client, "seed_people_a")


def _one(client, sql: str, project: int = 1):
    return client.query(sql, parameters={"project_id": project}, settings=QUERY_SETTINGS).result_rows[0]


def test_every_events_user_is_a_person_with_its_distinct_id(seeded):
    client, t = seeded
    events = t.qualified_name
    for project in range(1, PROJECTS + 1):
        # Every person and distinct id the events name was written (deleted people's ids too).
        assert _one(client, f"SELECT count() FROM (SELECT DISTINCT person_id FROM {events} WHERE project_id = {{project_id:UInt64}}) "
                            f"WHERE person_id NOT IN (SELECT id FROM {t.other('persons')} WHERE project_id = {{project_id:UInt64}})",
                    project) == (0,)
        assert _one(client, f"SELECT count() FROM (SELECT DISTINCT distinct_id FROM {events} WHERE project_id = {{project_id:UInt64}}) "
                            f"WHERE distinct_id NOT IN (SELECT distinct_id FROM {t.other('person_distinct_ids')} "
                            f"WHERE project_id = {{project_id:UInt64}})", project) == (0,)
        orgs = (f"SELECT DISTINCT JSONExtractString(properties, '$groups', 'organization') AS k FROM {events} "
                f"WHERE project_id = {{project_id:UInt64}} AND k != ''")
        assert _one(client, f"SELECT count(), countIf(k NOT IN (SELECT group_key FROM {t.other('groups')} "
                            f"WHERE project_id = {{project_id:UInt64}})) FROM ({orgs})", project)[1] == 0


def test_versions_merges_and_deletions(seeded):
    client, t = seeded
    rows, persons = _one(client, f"SELECT count(), uniqExact(id) FROM {t.other('persons')} WHERE project_id = 1")
    existing = _one(client, f"SELECT count() FROM ({persons_sql(t, with_distinct_ids=False)})")[0]
    assert rows > 1.5 * persons and 0.9 * persons < existing < persons  # merged and deleted people are gone
    # Every 20th user (u % 20 = 1) was merged into the previous one: its events' distinct id now belongs to
    # the person the previous user's events name.
    moved = _one(client, f"""
        SELECT count(), countIf(owner != (SELECT any(person_id) FROM {t.qualified_name}
                                          WHERE project_id = 1 AND distinct_id = 'user40@example.com'))
        FROM ({distinct_ids_sql(t)}) WHERE distinct_id LIKE 'user41@example.com%'""")
    assert moved[0] >= 1 and moved[1] == 0
    per_person = _one(client, f"SELECT avg(length(p_distinct_ids)), max(length(p_distinct_ids)) FROM ({persons_sql(t)})")
    assert 2 < per_person[0] < 4.5 and per_person[1] >= 5


def test_the_same_seed_gives_the_same_people(seeded, clickhouse):
    client, first = seeded
    second = _seeded(client, "seed_people_b")
    for name in ("persons", "person_distinct_ids", "groups"):
        checksum = "SELECT count(), sum(cityHash64(*)) FROM {}"
        assert _one(client, checksum.format(first.other(name))) == _one(client, checksum.format(second.other(name)))
    client.command("DROP DATABASE IF EXISTS `seed_people_b`")
