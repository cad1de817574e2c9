"""Relative date ranges and insight time zones: exact resolution (month lengths, weeks from Monday, DST gaps
and repeats, midnights that do not exist), validation, the incomplete bucket in chDB's trends, on the page (and
as Chromium draws it) and in a CSV export."""

from __future__ import annotations

import csv
import io
import json
import logging
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from export_pipeline.accounts.roles import Role, add_member
from export_pipeline.embed.page import EmbedOptions, compute_view, write_page_files
from export_pipeline.engine.spec import parse_spec
from export_pipeline.errors import InvalidRequest
from export_pipeline.exports.manifest import read_manifest
from export_pipeline.exports.run import run_export
from export_pipeline.insights.period import Period
from export_pipeline.insights.queries import compute
from export_pipeline.insights.store import QUERY_ADAPTER, InsightStore, parse_query
from export_pipeline_tests.api.test_export_page import browser_page, needs_chromium
from export_pipeline_tests.fakes.exportdata import insert_events

PROJECT, NOW_PROJECT = 9712, 9713
PERSON = uuid.uuid5(uuid.NAMESPACE_DNS, "date-ranges")
AS_OF = datetime(2026, 3, 3, 11, tzinfo=UTC)  # Tuesday, 12:00 in Berlin
SIGN_UPS = [  # UTC; the comments say the day in Berlin
    datetime(2026, 2, 28, 12, tzinfo=UTC),  # Sat 28 Feb
    datetime(2026, 3, 1, 23, 30, tzinfo=UTC),  # Mon 2 Mar 00:30
    datetime(2026, 3, 2, 10, tzinfo=UTC),  # Mon 2 Mar
    datetime(2026, 3, 2, 22, 59, tzinfo=UTC),  # Mon 2 Mar 23:59
    datetime(2026, 3, 3, 8, tzinfo=UTC),  # Tue 3 Mar, before "as of"
    datetime(2026, 3, 3, 12, tzinfo=UTC),  # Tue 3 Mar, after "as of"
]


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def resolved(date_range: str, as_of: datetime, timezone: str = "UTC") -> tuple[datetime, datetime]:
    period = parse_query({"kind": "number", "date_range": date_range, "timezone": timezone}).period(as_of)
    return period.start, period.end


@pytest.mark.parametrize(("date_range", "as_of", "start", "end"), [
    # The N whole units before the current one, and the current one up to "as of" (Wednesday 18 Nov 09:30).
    ("-7d", at(2026, 11, 18, 9, 30), at(2026, 11, 11), at(2026, 11, 18, 9, 30)),
    ("-24h", at(2026, 11, 18, 10, 15), at(2026, 11, 17, 10), at(2026, 11, 18, 10, 15)),
    ("-4w", at(2026, 11, 18, 9, 30), at(2026, 10, 19), at(2026, 11, 18, 9, 30)),  # weeks start on Monday
    ("-3m", at(2026, 5, 31, 12), at(2026, 2, 1), at(2026, 5, 31, 12)),
    ("-1m", at(2026, 3, 31, 23, 59), at(2026, 2, 1), at(2026, 3, 31, 23, 59)),
    ("-12m", at(2026, 1, 15), at(2025, 1, 1), at(2026, 1, 15)),
    ("mtd", at(2026, 2, 28, 18), at(2026, 2, 1), at(2026, 2, 28, 18)),
    ("wtd", at(2026, 11, 22, 20), at(2026, 11, 16), at(2026, 11, 22, 20)),  # Sunday: the week began Monday
    ("previous_week", at(2026, 11, 18, 9, 30), at(2026, 11, 9), at(2026, 11, 16)),
    ("previous_month", at(2026, 1, 10), at(2025, 12, 1), at(2026, 1, 1)),  # across the new year
    ("previous_month", at(2028, 3, 1), at(2028, 2, 1), at(2028, 3, 1)),  # a leap February, as of midnight
    ("previous_month", at(2026, 3, 1), at(2026, 2, 1), at(2026, 3, 1)),  # 28 days
])
def test_relative_ranges_resolve_exactly_in_utc(date_range, as_of, start, end):
    assert resolved(date_range, as_of) == (start, end)


@pytest.mark.parametrize(("date_range", "timezone", "as_of", "start", "end"), [
    # 09:00 on Monday 16 Nov in Berlin (CET, +01:00): the days begin at 23:00Z.
    ("-7d", "Europe/Berlin", at(2026, 11, 16, 8), at(2026, 11, 8, 23), at(2026, 11, 16, 8)),
    # Spring forward on Sunday 29 Mar 2026 (02:00 CET -> 03:00 CEST): that day has 23 hours, that week 167.
    ("-1d", "Europe/Berlin", at(2026, 3, 30, 10), at(2026, 3, 28, 23), at(2026, 3, 30, 10)),
    ("previous_week", "Europe/Berlin", at(2026, 3, 30, 10), at(2026, 3, 22, 23), at(2026, 3, 29, 22)),
    # Fall back on Sunday 1 Nov 2026 (02:00 EDT -> 01:00 EST): October began and ended in EDT.
    ("previous_month", "America/New_York", at(2026, 11, 10, 15), at(2026, 10, 1, 4), at(2026, 11, 1, 4)),
    ("mtd", "America/New_York", at(2026, 11, 10, 15), at(2026, 11, 1, 4), at(2026, 11, 10, 15)),
    ("-2w", "America/New_York", at(2026, 11, 10, 15), at(2026, 10, 26, 4), at(2026, 11, 10, 15)),
    # Berlin's repeated hour on 25 Oct 2026: 02:30 CEST (00:30Z), then 02:30 CET (01:30Z); each its own hour.
    ("-2h", "Europe/Berlin", at(2026, 10, 25, 0, 30), at(2026, 10, 24, 22), at(2026, 10, 25, 0, 30)),
    ("-2h", "Europe/Berlin", at(2026, 10, 25, 1, 30), at(2026, 10, 24, 23), at(2026, 10, 25, 1, 30)),
    # Hours in a half-hour zone start at :30 UTC.
    ("-1h", "Asia/Kolkata", at(2026, 3, 1, 10, 10), at(2026, 3, 1, 8, 30), at(2026, 3, 1, 10, 10)),
    # Santiago skips midnight on 6 Sep 2026 (00:00 -04 -> 01:00 -03): that day begins at 01:00, 04:00Z.
    ("-1d", "America/Santiago", at(2026, 9, 7, 12), at(2026, 9, 6, 4), at(2026, 9, 7, 12)),
])
def test_relative_ranges_follow_the_insights_time_zone(date_range, timezone, as_of, start, end):
    assert resolved(date_range, as_of, timezone) == (start, end)


def test_periods_are_read_in_the_insights_time_zone():
    berlin = parse_query({"kind": "number", "date_range": "-7d", "timezone": "Europe/Berlin"})
    assert str(berlin.period(at(2026, 11, 16, 8))) == "9 Nov 2026 00:00 – 16 Nov 2026 09:00 (Europe/Berlin)"
    october = parse_query({"kind": "number", "date_range": "previous_month", "timezone": "America/New_York"})
    assert str(october.period(at(2026, 11, 10, 15))) == "1 Oct 2026 – 31 Oct 2026 (America/New_York)"
    assert str(Period(at(2026, 3, 1), at(2026, 3, 4))) == "1 Mar 2026 – 3 Mar 2026 (UTC)"


def test_stored_json_keeps_absolute_insights_as_they_were_and_names_relative_ranges():
    absolute = parse_query({"kind": "number", "date_from": "2026-03-01", "date_to": "2026-03-04"})
    assert QUERY_ADAPTER.dump_python(absolute, mode="json") == {
        "kind": "number", "event": None, "math": "total",
        "date_from": "2026-03-01T00:00:00Z", "date_to": "2026-03-04T00:00:00Z"}
    relative = parse_query({"kind": "number", "date_range": " -7D ", "timezone": "Europe/Berlin"})
    stored = QUERY_ADAPTER.dump_python(relative, mode="json")
    assert stored == {"kind": "number", "event": None, "math": "total", "date_range": "-7d",
                      "timezone": "Europe/Berlin"}
    assert QUERY_ADAPTER.validate_python(stored) == relative
    # Dates without a time zone are wall times in the insight's zone: Berlin's 2 March begins at 23:00Z.
    local = parse_query({"kind": "number", "date_from": "2026-03-02", "date_to": "2026-03-03",
                         "timezone": "Europe/Berlin"})
    assert (local.date_from, local.date_to) == (at(2026, 3, 1, 23), at(2026, 3, 2, 23))
    assert str(local.period(AS_OF)) == "2 Mar 2026 (Europe/Berlin)"


FORMS = "-N followed by h, d, w or m (e.g. -7d, -4w, -3m), wtd, mtd, previous_week or previous_month"


@pytest.mark.parametrize(("fields", "details"), [
    ({"date_range": "last week"}, {"query.number.date_range": f"date_range must be {FORMS}; got 'last week'"}),
    ({"date_range": "-7y"}, {"query.number.date_range": f"date_range must be {FORMS}; got '-7y'"}),
    ({"date_range": "-0d"}, {"query.number.date_range": "date_range '-0d' must go back 1 to 3660 days"}),
    ({"date_range": "-121m"}, {"query.number.date_range": "date_range '-121m' must go back 1 to 120 months"}),
    ({"date_range": "-7d", "date_from": "2026-01-01"}, {
        "query.number": "give either date_range (relative, e.g. -7d) or date_from and date_to (absolute), not both"}),
    ({"date_from": "2026-01-01"}, {
        "query.number": "give date_from and date_to (an absolute range), or date_range (relative to the moment it "
                        "is drawn: e.g. -7d, -4w, mtd, previous_month)"}),
    ({"date_range": "mtd", "timezone": "Europe/Berln"}, {
        "query.number.timezone": "unknown time zone 'Europe/Berln'; use an IANA name such as 'Europe/Berlin' or 'UTC'"}),
])
def test_invalid_ranges_say_what_to_give(fields, details):
    with pytest.raises(InvalidRequest) as invalid:
        parse_query({"kind": "number", **fields})
    assert invalid.value.details == details


# ---------------------------------------------------------------------------------------------- in chDB


@pytest.fixture(scope="module")
def sign_ups(clickhouse, events_table):
    insert_events(clickhouse, events_table, [[PROJECT, uuid.uuid4(), "signed_up", moment, "d", PERSON, "{}"]
                                             for moment in SIGN_UPS])


def run(clickhouse, events_table, definition: dict, as_of: datetime = AS_OF):
    with clickhouse.session("date range test") as session:
        return compute(session, events_table, PROJECT, parse_query(definition), as_of=as_of)


def test_the_bucket_holding_as_of_is_flagged_incomplete(clickhouse, events_table, sign_ups):
    result = run(clickhouse, events_table, {"kind": "trends", "events": ["signed_up"], "date_range": "-2d"})
    assert result.columns == ("bucket", "series", "value", "incomplete")
    assert result.rows == [  # 12:00 on the 3rd is after "as of"; 28 Feb is before the range
        ("2026-03-01T00:00:00Z", "signed_up", 1, False),
        ("2026-03-02T00:00:00Z", "signed_up", 2, False),
        ("2026-03-03T00:00:00Z", "signed_up", 1, True),
    ]
    # An absolute range that runs past "as of" has its current bucket flagged too.
    ongoing = run(clickhouse, events_table, {"kind": "trends", "events": ["signed_up"],
                                             "date_from": "2026-03-01", "date_to": "2026-03-05"})
    assert ongoing.rows[-1] == ("2026-03-03T00:00:00Z", "signed_up", 2, True)
    # One that ended before "as of" is complete: no column.
    assert run(clickhouse, events_table, {"kind": "trends", "events": ["signed_up"], "date_from": "2026-03-01",
                                          "date_to": "2026-03-03"}).columns == ("bucket", "series", "value")


def test_trends_buckets_follow_the_insights_time_zone(clickhouse, events_table, sign_ups):
    daily = run(clickhouse, events_table, {"kind": "trends", "events": ["signed_up"], "date_range": "-2d",
                                           "timezone": "Europe/Berlin"})
    assert daily.rows == [  # from Berlin's 1 March (23:00Z on the 28th): 28 Feb's noon is out, the 23:30Z is the 2nd
        ("2026-03-02T00:00:00+01:00", "signed_up", 3, False),
        ("2026-03-03T00:00:00+01:00", "signed_up", 1, True),
    ]
    weekly = run(clickhouse, events_table, {"kind": "trends", "events": ["signed_up"], "interval": "week",
                                            "date_range": "-1w", "timezone": "Europe/Berlin"})
    assert weekly.rows == [("2026-02-23", "signed_up", 1, False), ("2026-03-02", "signed_up", 4, True)]
    hourly = run(clickhouse, events_table, {"kind": "trends", "events": ["signed_up"], "interval": "hour",
                                            "date_range": "-3h", "timezone": "Asia/Kolkata"})
    assert hourly.rows == [("2026-03-03T13:00:00+05:30", "signed_up", 1, False)]  # 08:00Z is 13:30 IST


def test_other_kinds_take_relative_ranges(clickhouse, events_table, sign_ups):
    # Yesterday and today until 11:00 (35 hours: 3 sign-ups) against the 35 hours before (1).
    assert run(clickhouse, events_table, {"kind": "number", "date_range": "-1d"}).rows == [(3, 1, 2.0)]
    assert run(clickhouse, events_table, {"kind": "table", "date_range": "previous_week"}).rows == [("signed_up", 2)]
    assert run(clickhouse, events_table, {"kind": "table", "date_from": "2026-03-02", "date_to": "2026-03-03",
                                          "timezone": "Europe/Berlin"}).rows == [("signed_up", 3)]


# ------------------------------------------------------------------------------------ page and exports


@pytest.fixture(scope="module")
def daily(store, sign_ups):
    return InsightStore(store.engine).create_insight(PROJECT, name="Daily sign-ups", created_by="rita", query={
        "kind": "trends", "events": ["signed_up"], "date_range": "-2d"})


def page_view(clickhouse, events_table, store, insight_id: str):
    with clickhouse.session("page") as session:
        return compute_view(session, events_table, InsightStore(store.engine), PROJECT, "insight", insight_id,
                            as_of=AS_OF)


def test_the_page_carries_the_flag_and_the_period_as_of_its_moment(clickhouse, events_table, store, daily):
    [tile] = page_view(clickhouse, events_table, store, daily.id).tiles
    assert (tile.insight_id, tile.period) == (daily.id, Period(at(2026, 3, 1), AS_OF))
    assert tile.columns == ["bucket", "series", "value", "incomplete"]
    assert [row[3] for row in tile.rows] == [False, False, True]


@needs_chromium
def test_chromium_draws_the_incomplete_bucket_lighter(clickhouse, events_table, store, daily, tmp_path):
    import asyncio

    page = write_page_files(page_view(clickhouse, events_table, store, daily.id), EmbedOptions(readonly=True),
                            tmp_path)

    async def dataset() -> dict:
        async with browser_page(page.as_uri()) as browser:
            await browser.waitForFunction("window.__chartsReady === true", timeout=30_000)
            return await browser.evaluate(
                "() => { const d = Chart.getChart(document.querySelector('canvas')).data.datasets[0];"
                " return {colors: d.pointBackgroundColor, data: d.data,"
                " dashes: [1, 2].map(i => d.segment.borderDash({p1DataIndex: i}) || null)}; }")

    # The line into the last point is dashed, the point 40% opaque.
    assert asyncio.run(dataset()) == {"colors": ["#1f6feb", "#1f6feb", "#1f6feb66"], "data": [1, 2, 1],
                                      "dashes": [None, [6, 4]]}


def test_a_csv_export_of_a_relative_insight_marks_today(deps, store, clickhouse, events_table):
    add_member(store.engine, NOW_PROJECT, "rita", Role.MAINTAINER)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    insert_events(clickhouse, events_table, [
        [NOW_PROJECT, uuid.uuid4(), "signed_up", moment, "d", PERSON, "{}"]
        for moment in (today - timedelta(hours=12), today - timedelta(hours=11), today)])
    insight = InsightStore(store.engine).create_insight(NOW_PROJECT, name="Since yesterday", created_by="rita",
                                                        query={"kind": "trends", "events": ["signed_up"],
                                                               "date_range": "-1d"})
    request = deps.store.create(parse_spec(project_id=NOW_PROJECT, requested_by="rita", resource="insight",
                                           target_id=insight.id, format="csv"), source="test")
    result = run_export(request.id, deps, run_id=f"r-{request.id}", run_is_active=lambda _: False,
                        log=logging.getLogger("test"))
    assert [f["name"] for f in read_manifest(deps.storage, result.manifest_key)["files"]] == ["insight.csv"]
    rows = list(csv.reader(io.StringIO(deps.storage.read_bytes(f"{request.storage_prefix}/insight.csv").decode())))
    yesterday = today - timedelta(days=1)
    assert rows == [["bucket", "series", "value", "incomplete"],
                    [f"{yesterday:%Y-%m-%d}T00:00:00Z", "signed_up", "2", "false"],
                    [f"{today:%Y-%m-%d}T00:00:00Z", "signed_up", "1", "true"]]


def test_the_cli_creates_and_shows_relative_insights(settings, store, monkeypatch, sign_ups):
    from click.testing import CliRunner

    from export_pipeline.cli import main as cli

    monkeypatch.setenv("EXPORT_PIPELINE_HOME", str(settings.home))
    add_member(store.engine, PROJECT, "rita", Role.MAINTAINER)
    runner = CliRunner()
    query = '{"kind": "table", "date_range": "previous_month", "timezone": "Europe/Berlin"}'
    created = runner.invoke(cli, ["insights", "create", "--project-id", str(PROJECT), "--user", "rita",
                                  "--name", "Last month", "--query", query])
    assert created.exit_code == 0, created.output
    insight = json.loads(created.output)
    assert (insight["query"]["date_range"], insight["query"]["timezone"]) == ("previous_month", "Europe/Berlin")
    shown = runner.invoke(cli, ["insights", "show", "--project-id", str(PROJECT), insight["id"]])
    assert shown.exit_code == 0 and shown.output.splitlines()[0] == "value\tcount"
    refused = runner.invoke(cli, ["insights", "create", "--project-id", str(PROJECT), "--user", "rita",
                                  "--name", "Bad", "--query", '{"kind": "table", "date_range": "-3q"}'])
    assert refused.exit_code != 0 and "date_range must be -N followed by h, d, w or m" in refused.output
