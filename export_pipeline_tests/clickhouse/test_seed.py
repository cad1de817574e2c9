"""seed_events against a real embedded ClickHouse (chDB)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from export_pipeline.clickhouse.schema import EventsTable, init_schema
from export_pipeline.clickhouse.seed import seed_events
from export_pipeline.errors import InvalidRequest

EVENTS = 20_000
PROJECTS = 7
START = datetime(2026, 5, 1, tzinfo=UTC)
DAYS = 180
DATA_COLUMNS = ("project_id", "uuid", "event", "timestamp", "distinct_id", "person_id", "properties")


@pytest.fixture(scope="module")
def ch_client(clickhouse):
    """The session's embedded ClickHouse (chDB allows one data path per process); the module's own databases."""
    with clickhouse.session("test seed") as session:
        yield session.client


def _fresh_table(client, database: str) -> EventsTable:
    table = EventsTable(database=database)
    client.command(f"DROP DATABASE IF EXISTS `{database}`")
    init_schema(client, table)
    return table


def _scalar(client, sql: str, **parameters):
    return client.query(sql, parameters=parameters or None).result_rows[0][0]


def _data_columns(table: EventsTable) -> str:
    return ", ".join(table.col(name) for name in DATA_COLUMNS)


def _checksum(client, table: EventsTable) -> tuple[int, int]:
    row = client.query(
        f"SELECT groupBitXor(cityHash64({_data_columns(table)})), count() FROM {table.qualified_name}"
    ).result_rows[0]
    return row[0], row[1]


def _rows_only_in(client, left: EventsTable, right: EventsTable) -> int:
    cols = _data_columns(left)
    return _scalar(
        client,
        f"SELECT count() FROM (SELECT {cols} FROM {left.qualified_name} "
        f"EXCEPT SELECT {cols} FROM {right.qualified_name})",
    )


@pytest.fixture(scope="module")
def seeded(ch_client) -> EventsTable:
    """The reference table: EVENTS events over PROJECTS projects, in batches that don't divide EVENTS."""
    table = _fresh_table(ch_client, "seed_test_a")
    assert seed_events(ch_client, table, events=EVENTS, projects=PROJECTS, seed=0, batch_rows=7_000) == EVENTS
    return table


def test_exact_count_and_projects(ch_client, seeded):
    t = seeded
    assert _scalar(ch_client, f"SELECT count() FROM {t.qualified_name}") == EVENTS
    rows = ch_client.query(f"SELECT DISTINCT {t.col('project_id')} FROM {t.qualified_name}").result_rows
    projects = {r[0] for r in rows}
    assert projects == set(range(1, PROJECTS + 1))
    assert _scalar(ch_client, f"SELECT uniqExact({t.col('uuid')}) FROM {t.qualified_name}") == EVENTS


def test_deterministic_across_runs_and_batch_sizes(ch_client, seeded):
    same = _fresh_table(ch_client, "seed_test_b")
    assert seed_events(ch_client, same, events=EVENTS, projects=PROJECTS, seed=0) == EVENTS  # one batch
    assert _checksum(ch_client, same) == _checksum(ch_client, seeded)
    assert _rows_only_in(ch_client, same, seeded) == 0
    assert _rows_only_in(ch_client, seeded, same) == 0

    other = _fresh_table(ch_client, "seed_test_c")
    assert seed_events(ch_client, other, events=EVENTS, projects=PROJECTS, seed=1, batch_rows=5_000) == EVENTS
    assert _checksum(ch_client, other) != _checksum(ch_client, seeded)
    assert _rows_only_in(ch_client, other, seeded) == EVENTS


def test_uuids_and_person_ids(ch_client, seeded):
    t = seeded
    rows = ch_client.query(
        f"SELECT toString({t.col('uuid')}), toString({t.col('person_id')}) FROM {t.qualified_name} LIMIT 200"
    ).result_rows
    for event_uuid, person_uuid in rows:
        for text in (event_uuid, person_uuid):
            parsed = uuid.UUID(text)
            assert str(parsed) == text
            assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
    # person_id is a function of (project, distinct_id); users repeat, so persons have many events.
    pid, did, person = t.col("project_id"), t.col("distinct_id"), t.col("person_id")
    users = _scalar(ch_client, f"SELECT uniqExact({pid}, {did}) FROM {t.qualified_name}")
    assert users == _scalar(ch_client, f"SELECT uniqExact({pid}, {did}, {person}) FROM {t.qualified_name}")
    assert users == _scalar(ch_client, f"SELECT uniqExact({pid}, {person}) FROM {t.qualified_name}")
    assert 1_000 < users < EVENTS


def test_event_names_and_distinct_ids(ch_client, seeded):
    t = seeded
    counts = dict(
        ch_client.query(
            f"SELECT {t.col('event')}, count() FROM {t.qualified_name} GROUP BY 1 ORDER BY 2 DESC"
        ).result_rows
    )
    assert max(counts, key=counts.get) == "$pageview"
    for name in ("$autocapture", "$identify", "signed_up", "subscription_started", "feature_flag_called",
                 "$pageleave", "report exported", "ünïcödé event 🎉"):
        assert counts.get(name, 0) > 0, name
    assert counts["$pageview"] > 3 * counts["$identify"]

    did = t.col("distinct_id")
    ids = {
        r[0]
        for r in ch_client.query(
            f"SELECT DISTINCT {did} FROM {t.qualified_name} "
            f"WHERE position({did}, '\"') > 0 OR position({did}, '\t') > 0 OR {did} LIKE 'ユーザー%'"
        ).result_rows
    }
    assert any('"' in i for i in ids)
    assert any("\t" in i for i in ids)
    assert any(i.startswith("ユーザー") for i in ids)


def test_timestamps(ch_client, seeded):
    t = seeded
    ts, pid = t.col("timestamp"), t.col("project_id")
    lo, hi = ch_client.query(f"SELECT min({ts}), max({ts}) FROM {t.qualified_name}").result_rows[0]
    assert START <= lo.replace(tzinfo=UTC) and hi.replace(tzinfo=UTC) < START + timedelta(days=DAYS)
    assert _scalar(ch_client, f"SELECT uniqExact(toYYYYMM({ts})) FROM {t.qualified_name}") >= 6
    # microsecond precision
    sub_ms = f"SELECT countIf(toUnixTimestamp64Micro({ts}) % 1000 != 0) FROM {t.qualified_name}"
    assert _scalar(ch_client, sub_ms) > 0
    # many events share exactly the same timestamp within a project
    biggest = _scalar(
        ch_client, f"SELECT max(c) FROM (SELECT count() AS c FROM {t.qualified_name} GROUP BY {pid}, {ts})"
    )
    assert biggest >= 10
    # created_at is left to the table default (ingestion time)
    created = _scalar(ch_client, f"SELECT min({t.col('created_at')}) FROM {t.qualified_name}")
    assert created.replace(tzinfo=UTC) > datetime.now(UTC) - timedelta(hours=1)


def test_properties_are_valid_json_objects(ch_client, seeded):
    t = seeded
    p = t.col("properties")
    valid, objects, empty = ch_client.query(
        f"SELECT countIf(isValidJSON({p})), countIf(JSONType({p}) = 'Object'), countIf({p} = '{{}}') "
        f"FROM {t.qualified_name}"
    ).result_rows[0]
    assert valid == EVENTS and objects == EVENTS
    assert 0 < empty < EVENTS * 0.02


@pytest.mark.parametrize(
    "needle",
    [
        '\\"',  # an escaped double quote inside a string value
        "\\n",  # an escaped newline
        "\\t",  # an escaped tab
        "\\\\",  # an escaped backslash
        "日本語",
        "🎉",
        "àccénts",
        ":null",
    ],
)
def test_properties_contain_tricky_values(ch_client, seeded, needle):
    t = seeded
    p = t.col("properties")
    hits = _scalar(ch_client, f"SELECT countIf(position({p}, {{needle:String}}) > 0) FROM {t.qualified_name}",
                   needle=needle)
    assert hits > 0


def test_properties_structure_and_long_values(ch_client, seeded):
    t = seeded
    p = t.col("properties")
    nulls = _scalar(
        ch_client, f"SELECT countIf(JSONType({p}, 'utm', 'campaign') = 'Null') FROM {t.qualified_name}"
    )
    assert nulls > 0
    long_rows = _scalar(ch_client, f"SELECT countIf(length({p}) > 2000) FROM {t.qualified_name}")
    assert 0 < long_rows < EVENTS * 0.05
    longest = _scalar(
        ch_client, f"SELECT max(lengthUTF8(JSONExtractString({p}, 'long_text'))) FROM {t.qualified_name}"
    )
    assert 2_000 <= longest <= 20_000

    # Decode a sample in Python, long ones included: real newlines/quotes/tabs come back inside strings.
    samples = [
        json.loads(r[0])
        for r in ch_client.query(
            f"(SELECT {p} FROM {t.qualified_name} LIMIT 500) UNION ALL "
            f"(SELECT {p} FROM {t.qualified_name} WHERE length({p}) > 2000 LIMIT 20)"
        ).result_rows
    ]
    assert all(isinstance(s, dict) for s in samples)
    strings = [v for s in samples for v in s.values() if isinstance(v, str)]
    assert any("\n" in v for v in strings)
    assert any('"' in v for v in strings)
    assert any("\\" in v for v in strings)
    full = [s for s in samples if s]
    assert all(isinstance(s["utm"], dict) and isinstance(s["items"], list) for s in full)
    assert all(isinstance(s["is_first_visit"], bool) and isinstance(s["price"], (int, float)) for s in full)
    assert any(len(s.get("long_text", "")) >= 2_000 for s in samples)


class _RecordingClient:
    """Passes calls through to the real client and records the SQL and parameters of each command."""

    def __init__(self, client):
        self._client = client
        self.commands: list[tuple[str, dict]] = []

    def command(self, sql, parameters=None, **kwargs):
        self.commands.append((sql, dict(parameters or {})))
        return self._client.command(sql, parameters=parameters, **kwargs)


def test_values_are_bound_parameters_not_sql(ch_client):
    table = _fresh_table(ch_client, "seed_test_d")
    recorder = _RecordingClient(ch_client)
    start = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    assert seed_events(recorder, table, events=2_500, projects=3, seed=987_654_321, start=start, days=3,
                       batch_rows=1_000) == 2_500
    assert len(recorder.commands) == 3
    assert [c[1]["offset"] for c in recorder.commands] == [0, 1_000, 2_000]
    assert [c[1]["batch"] for c in recorder.commands] == [1_000, 1_000, 500]
    for sql, params in recorder.commands:
        assert params["seed"] == 987_654_321
        assert "987654321" not in sql and "2025" not in sql
    ts = table.col("timestamp")
    lo, hi = ch_client.query(f"SELECT min({ts}), max({ts}) FROM {table.qualified_name}").result_rows[0]
    assert start <= lo.replace(tzinfo=UTC) and hi.replace(tzinfo=UTC) < start + timedelta(days=3)


def test_zero_events_inserts_nothing(ch_client):
    table = _fresh_table(ch_client, "seed_test_e")
    assert seed_events(ch_client, table, events=0, projects=3) == 0
    assert _scalar(ch_client, f"SELECT count() FROM {table.qualified_name}") == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"events": -1, "projects": 1},
        {"events": 10, "projects": 0},
        {"events": 10, "projects": 1, "days": 0},
        {"events": 10, "projects": 1, "seed": -5},
        {"events": 10, "projects": 1, "batch_rows": 0},
    ],
)
def test_invalid_arguments(kwargs):
    with pytest.raises(InvalidRequest):
        seed_events(None, EventsTable(database="seed_test_unused"), **kwargs)


def test_granules_hold_at_most_a_mebibyte(ch_client, seeded):
    """Reading in key order holds one decompressed granule of `properties` per part; ClickHouse's default
    10 MiB granules held 4.4 MB each (schema.py GRANULES). Events, persons and groups are created with 1 MiB."""
    engines = dict(ch_client.query(
        "SELECT name, engine_full FROM system.tables WHERE database = 'seed_test_a'").result_rows)
    for name in ("events", "persons", "groups"):
        assert "index_granularity_bytes = 1048576" in engines[name], name
    largest = _scalar(ch_client, "SELECT max(rows_in_granule) FROM mergeTreeIndex('seed_test_a', 'events')")
    average_row = _scalar(ch_client, f"SELECT avg(length(properties)) FROM {seeded.qualified_name}")
    assert 0 < largest * average_row <= 1.1 * 1048576
