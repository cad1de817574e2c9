"""Deterministic, realistic product-analytics events generated inside ClickHouse.

Every row is computed by ClickHouse itself (`INSERT ... SELECT ... FROM numbers(offset, batch)`), so seeding
10M+ events never materialises them in Python and memory stays bounded by `batch_rows`. Every value is a
pure function of hashes of (seed, row number): the same (events, projects, seed, start, days) always yields
the same rows (all columns but `created_at`, which the table's DEFAULT fills with the ingestion time).

What the data exercises on purpose:
- a skewed event-name mix (mostly `$pageview`), including a unicode custom event name;
- a few thousand users per project with a skew towards power users, some distinct_ids with quotes, tabs
  and CJK; person_id is a deterministic UUID per (project, distinct_id);
- microsecond timestamps over `days` days, with ~5% of rows reusing a timestamp from a small per-project
  pool (many events sharing the exact same timestamp: chunk-boundary bugs show);
- properties JSON objects with nested objects, arrays, numbers, booleans, nulls and string values holding
  unicode, quotes, backslashes, newlines and tabs (escaped by `toJSONString`, so the JSON stays valid);
  ~1% carry a 2-20 KB string, ~0.5% are `{}`.

All values reach ClickHouse as bound server-side parameters (`{name:Type}`); only identifiers from
`EventsTable` (validated and quoted there) are formatted into the SQL.
"""

from __future__ import annotations

from datetime import UTC, datetime

from clickhouse_connect.driver.client import Client

from export_pipeline.clickhouse.schema import EventsTable
from export_pipeline.errors import InvalidRequest

__all__ = ["seed_events"]

_MICROS_PER_DAY = 86_400 * 1_000_000
_MAX_UINT64 = 2**64 - 1
# Everything but created_at (ingestion time, filled by the table's DEFAULT), in the order _SELECT yields them.
_SEEDED_COLUMNS = ("project_id", "uuid", "event", "timestamp", "distinct_id", "person_id", "properties")

# The row generator. `h(k)` below means cityHash64(seed, n, k): one independent 64-bit hash per purpose.
# Aliases are evaluated once per row by ClickHouse (common subexpressions), so the cost is a handful of
# hashes plus string building.
USERS = "1000 + cityHash64(s, project_id, 5) % 4000"  # per project; `s` is the seed


def user_distinct_id(u: str) -> str:
    """The distinct id of user number `u` of `project_id` (SQL over the aliases s, project_id)."""
    return f"""multiIf(
            {u} % 97 = 0, concat('user"quote', toString({u}), '@example.com'),
            {u} % 89 = 0, concat('tab\\tuser', toString({u})),
            {u} % 83 = 0, concat('ユーザー', toString({u})),
            {u} % 79 = 0, concat('back\\\\slash\\\\', toString({u})),
            {u} % 7 = 0, concat('anon-', lower(hex(cityHash64(s, project_id, {u}, 8)))),
            concat('user', toString({u}), '@example.com'))"""


def person_id(distinct_id: str) -> str:
    """The person an event of `distinct_id` names: a UUID v4 hashed from (seed, project, distinct id)."""
    return f"""reinterpretAsUUID(concat(
            reinterpretAsFixedString(bitOr(
                bitAnd(cityHash64(s, project_id, {distinct_id}, 9), 0xFFFFFFFFFFFF0FFF), 0x4000)),
            reinterpretAsFixedString(bitOr(
                bitAnd(cityHash64(s, project_id, {distinct_id}, 10), 0x3FFFFFFFFFFFFFFF), 0x8000000000000000))
        ))"""


def organization_key(u: str) -> str:
    """The organization (group type 0) of user `u`: one per 25 users of the project."""
    return f"concat('org-', toString({u} % (intDiv({USERS}, 25) + 1)))"


_SELECT = r"""
SELECT project_id, uuid, event, timestamp, distinct_id, person_id, properties
FROM
(
    SELECT
        number AS n,
        {seed:UInt64} AS s,

        -- project: the first `projects` rows cover every project once, the rest are hashed (uniform).
        toUInt64(if(n < {projects:UInt64}, n + 1, 1 + cityHash64(s, n, 1) % {projects:UInt64})) AS project_id,

        -- event uuid: 128 hash bits with RFC 4122 version 4 / variant 10 bits set.
        reinterpretAsUUID(concat(
            reinterpretAsFixedString(bitOr(bitAnd(cityHash64(s, n, 2), 0xFFFFFFFFFFFF0FFF), 0x4000)),
            reinterpretAsFixedString(bitOr(bitAnd(cityHash64(s, n, 3), 0x3FFFFFFFFFFFFFFF),
                                           0x8000000000000000)))) AS uuid,

        -- skewed event-name mix (per mille).
        cityHash64(s, n, 4) % 1000 AS ev,
        multiIf(
            ev < 450, '$pageview',
            ev < 680, '$autocapture',
            ev < 780, '$pageleave',
            ev < 850, 'feature_flag_called',
            ev < 890, '$identify',
            ev < 920, 'report exported',
            ev < 940, 'dashboard viewed',
            ev < 955, 'signed_up',
            ev < 965, 'subscription_started',
            ev < 985, 'ünïcödé event 🎉',
            'Checkout Completed "v2"') AS event,

        -- users: 1000-4999 per project, skewed towards low user numbers (power users).
        """ + USERS + r""" AS users,
        least(cityHash64(s, n, 6) % users, cityHash64(s, n, 7) % users) AS u,
        """ + user_distinct_id("u") + r""" AS distinct_id,
        """ + person_id("distinct_id") + r""" AS person_id,

        -- timestamp: uniform over the span in microseconds; ~5% reuse one of 10 pooled instants per project.
        {days:UInt64} * 86400000000 AS span,
        cityHash64(s, n, 11) AS th,
        fromUnixTimestamp64Micro(toInt64({start_us:Int64} + toInt64(if(
            th % 100 < 5,
            cityHash64(s, project_id, intDiv(th, 100) % 10, 12) % span,
            cityHash64(s, n, 13) % span))), 'UTC') AS timestamp,

        -- properties
        cityHash64(s, n, 14) AS ph,
        cityHash64(s, n, 15) AS qh,
        ['/', '/pricing', '/docs/getting-started', '/blog/ünïcödé-post', '/search?q=a%20b&lang=日本語',
         '/settings/billing', '/app/dashboards/42', '/signup'] AS paths,
        ['Chrome', 'Firefox', 'Safari', 'Edge', 'Samsung Internet', 'Opera'] AS browsers,
        ['Mac OS X', 'Windows', 'iOS', 'Android', 'Linux'] AS oses,
        ['free', 'startup', 'scale', 'enterprise'] AS plans,
        ['google', 'newsletter', 'twitter', 'linkedin', 'ünïcödé-source'] AS sources,
        ['He said "hello" and left', 'C:\\Users\\admin\\file.txt', 'line one\nline two\nline three',
         'col1\tcol2\tcol3', '日本語のテキストです', '中文 한국어 العربية', 'emoji 😀🎉🚀👍🏽',
         'àccénts çà et là — “curly” ‘quotes’', 'mixed "q" \\ \n\t 🎉 end', '', 'plain note',
         'control \r\n carriage return', 'slash / and <html> & ampersand'] AS notes,
        arrayElement(paths, 1 + ph % length(paths)) AS path,
        arrayElement(notes, 1 + intDiv(ph, 8) % length(notes)) AS note,
        concat(
            '"$current_url":', toJSONString(concat('https://app.example.com', path)),
            ',"$pathname":', toJSONString(path),
            ',"$browser":', toJSONString(arrayElement(browsers, 1 + intDiv(ph, 128) % length(browsers))),
            ',"$os":', toJSONString(arrayElement(oses, 1 + intDiv(ph, 1024) % length(oses))),
            ',"$lib":"web","$screen_width":', toString(320 + intDiv(ph, 8192) % 3520),
            ',"$session_id":', toJSONString(lower(hex(cityHash64(s, project_id, u, toDate(timestamp), 16)))),
            ',"utm":{"source":', if(qh % 3 = 0, 'null',
                toJSONString(arrayElement(sources, 1 + intDiv(qh, 4) % length(sources)))),
            ',"campaign":', if(qh % 5 = 0, toJSONString(concat('spring-', toString(qh % 7))), 'null'), '}',
            ',"plan":', toJSONString(arrayElement(plans, 1 + intDiv(qh, 32) % length(plans))),
            ',"items":[', toString(qh % 10), ',', toString(intDiv(qh, 10) % 100),
                ',', toString(intDiv(qh, 1000) % 1000), ']',
            ',"price":', toString(intDiv(qh, 1000000) % 100000 / 100),
            ',"is_first_visit":', if(bitAnd(qh, 0x10000) = 0, 'false', 'true'),
            ',"note":', toJSONString(note),
            if(u % 10 = 0, '', concat(',"$groups":{"organization":', toJSONString(""" + organization_key("u") + r"""), '}')),
            multiIf(
                event = '$autocapture', concat(',"$event_type":"click","$el_text":', toJSONString(note),
                    ',"$elements":[{"tag_name":"button","nth_child":', toString(qh % 9), '}]'),
                event = '$identify', concat(',"$set":{"email":', toJSONString(distinct_id),
                    ',"name":', toJSONString(concat('Ünïcödé Üser ', toString(u))), ',"age":null}'),
                event = 'feature_flag_called', concat(',"$feature_flag":"new-onboarding"',
                    ',"$feature_flag_response":', if(qh % 2 = 0, 'true', 'false')),
                event = 'subscription_started', concat(',"amount":', toString(intDiv(qh, 7) % 10000 / 100),
                    ',"currency":"EUR"'),
                ''),
            -- ~1%: one long string value of 2-20 KB of escaped-heavy text.
            if(intDiv(qh, 100000) % 100 = 0,
                concat(',"long_text":', toJSONString(leftUTF8(
                    repeat('Lorem ipsum "dolor" sit amet\\ 日本語 🎉\n\tconsectetur. ', 450),
                    2000 + cityHash64(s, n, 17) % 18000))),
                '')) AS body,
        -- ~0.5%: empty properties.
        if(intDiv(ph, 1000000) % 1000 < 5, '{}', concat('{', body, '}')) AS properties
    FROM numbers({offset:UInt64}, {batch:UInt64})
)
"""


def seed_events(
    client: Client,
    table: EventsTable,
    *,
    events: int,
    projects: int,
    seed: int = 0,
    start: datetime = datetime(2026, 5, 1, tzinfo=UTC),
    days: int = 180,
    batch_rows: int = 1_000_000,
) -> int:
    """Insert `events` deterministic synthetic events into `table`; returns the number of rows inserted.

    `start` without a timezone is taken as UTC. Rows are generated by ClickHouse in batches of `batch_rows`.
    """
    problems: dict[str, str] = {}
    if not isinstance(events, int) or events < 0:
        problems["events"] = "must be an integer >= 0"
    if not isinstance(projects, int) or projects < 1:
        problems["projects"] = "must be an integer >= 1"
    if not isinstance(seed, int) or not 0 <= seed <= _MAX_UINT64:
        problems["seed"] = "must be an integer between 0 and 2**64-1"
    if not isinstance(days, int) or days < 1:
        problems["days"] = "must be an integer >= 1"
    if not isinstance(batch_rows, int) or batch_rows < 1:
        problems["batch_rows"] = "must be an integer >= 1"
    if not isinstance(start, datetime):
        problems["start"] = "must be a datetime"
    if problems:
        raise InvalidRequest(
            "Invalid arguments for seeding events: "
            + "; ".join(f"{k} {v}" for k, v in problems.items())
            + ".",
            hint="Pass a positive number of projects and days, and a non-negative number of events.",
            details=problems,
        )

    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    delta = start - datetime(1970, 1, 1, tzinfo=UTC)
    start_us = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds

    columns = ", ".join(table.col(name) for name in _SEEDED_COLUMNS)
    sql = f"INSERT INTO {table.qualified_name} ({columns})" + _SELECT
    settings = {"output_format_json_escape_forward_slashes": 0}

    inserted = 0
    while inserted < events:
        batch = min(batch_rows, events - inserted)
        client.command(
            sql,
            parameters={
                "seed": seed,
                "projects": projects,
                "days": days,
                "start_us": start_us,
                "offset": inserted,
                "batch": batch,
            },
            settings=settings,
        )
        inserted += batch
    return inserted
