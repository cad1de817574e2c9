"""The production client path over `http://`: a second pass of the export, event-paging and insight tests with
CLICKHOUSE_URL pointing at ClickHouse's HTTP interface (clickhouse_http.py) instead of the embedded engine.

The fixtures below override conftest's `settings`, `clickhouse` and `events_table` for this module only, so the
imported tests (and conftest's `deps`, built from them) talk HTTP. Their data lives in a database of its own,
so the two passes never see each other's rows.
"""

from __future__ import annotations

import pytest

from export_pipeline.clickhouse.connection import ClickHouse
from export_pipeline.clickhouse.schema import EventsTable, init_schema
from export_pipeline.settings import Settings
from export_pipeline_tests.api.test_api import (  # noqa: F401 - collected here with this module's fixtures
    server,
    test_event_pages_are_exact_while_events_are_inserted,
    test_events_reject_bad_parameters_with_422,
)
from export_pipeline_tests.exports import test_exports
from export_pipeline_tests.exports.test_exports import (  # noqa: F401
    known_data,
    test_filters_select_exactly_the_matching_rows,
    test_rows_ingested_after_the_request_are_not_exported,
)
from export_pipeline_tests.fakes.clickhouse_http import ClickHouseHTTPServer
from export_pipeline_tests.insights.test_insights import (  # noqa: F401
    history,
    test_funnel_counts_people_reaching_each_step_within_the_window,
    test_number_with_change_against_the_previous_period,
    test_property_keys_are_bound_parameters_not_sql,
    test_trends_unique_users_broken_down_by_a_property,
)

DATABASE = "over_http"


@pytest.fixture(scope="session")  # session-scoped like the one it overrides: `store` is built from it
def settings(clickhouse_http: ClickHouseHTTPServer) -> Settings:
    return Settings(CLICKHOUSE_URL=clickhouse_http.url(), CLICKHOUSE_DATABASE=DATABASE)


@pytest.fixture(scope="session")
def clickhouse(settings: Settings) -> ClickHouse:
    remote = ClickHouse.from_settings(settings)
    assert not remote.is_embedded
    return remote


@pytest.fixture(scope="session")
def events_table(clickhouse: ClickHouse, settings: Settings) -> EventsTable:
    table = EventsTable.from_settings(settings)
    with clickhouse.session("test schema over http") as session:
        init_schema(session.client, table)
    return table


def test_this_pass_really_goes_through_http(clickhouse_http, clickhouse, deps):
    before = clickhouse_http.requests
    with deps.clickhouse.session("probe") as session:
        assert session.client.command("SELECT currentDatabase()") == "default"
    assert deps.clickhouse is clickhouse and clickhouse_http.requests > before


# Two of the chDB pass's seven format/compression cases: the HTTP path does not depend on the output format.
@pytest.mark.parametrize(("fmt", "compression"), [("ndjson", "gzip"), ("parquet", "zstd")])
def test_exports_over_http_are_exact(deps, clickhouse, events_table, fmt, compression):
    test_exports.test_every_format_exports_exactly_the_project_rows(deps, clickhouse, events_table, fmt, compression)
