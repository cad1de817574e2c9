"""The API tests again with the app database on Postgres (the session's throwaway server), as in production:
the fixtures below override conftest's `settings`, `store` and `events_table` for this module, so the
imported tests and the API they start use Postgres; their events live in a ClickHouse database of their own.
Event paging and S3 downloads do not touch the app database beyond what these cover; they are not repeated."""

from __future__ import annotations

import pytest

from export_pipeline.clickhouse.schema import EventsTable, init_schema
from export_pipeline.db import get_engine
from export_pipeline.exports.store import ExportStore
from export_pipeline.settings import Settings
from export_pipeline_tests.api.test_api import (  # noqa: F401 - collected here with this module's fixtures
    server,
    test_authorization_matrix,
    test_canceling_a_queued_export,
    test_create_dedups_in_flight_requests_and_limits_them,
    test_deleting_a_finished_export_removes_its_files_and_then_410,
    test_events_reject_bad_parameters_with_422,
    test_export_resource_lists_files_and_downloads_them,
    test_exports_of_another_project_are_not_found_even_for_its_maintainer,
    test_file_of_an_unfinished_export_is_409_with_retry_after,
    test_invalid_bodies_get_field_level_422,
    test_list_pages_through_exports_newest_first,
    test_openapi_is_served,
    test_out_of_range_project_ids_are_422_not_500,
    test_unreachable_clickhouse_is_503,
)

DATABASE = "api_on_postgres"


@pytest.fixture(scope="session")  # session-scoped like the ones it overrides
def settings(postgres_server) -> Settings:
    url = postgres_server.create_database("api_on_postgres")
    return Settings(EXPORT_PIPELINE_DATABASE_URL=url, CLICKHOUSE_DATABASE=DATABASE)


@pytest.fixture(scope="session")
def store(settings: Settings) -> ExportStore:
    assert settings.database_url.startswith("postgresql://")
    return ExportStore(get_engine(settings.database_url))


@pytest.fixture(scope="session")
def events_table(clickhouse, settings: Settings) -> EventsTable:
    table = EventsTable.from_settings(settings)
    with clickhouse.session("test schema for the API on postgres") as session:
        init_schema(session.client, table)
    return table
