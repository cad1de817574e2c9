"""Shared fixtures. Everything is real: chDB on disk, SQLite, a local folder or a moto S3 server.

chDB allows one data path per process, so the whole test session shares one embedded ClickHouse under a
session temp folder; tests isolate themselves by project id (and by database for schema tests).
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

_SESSION_HOME = Path(tempfile.mkdtemp(prefix="export-pipeline-tests-"))
# Set before any project module reads the environment.
os.environ["EXPORT_PIPELINE_HOME"] = str(_SESSION_HOME)
os.environ["DAGSTER_HOME"] = str(_SESSION_HOME / "dagster")
for _name in ("CLICKHOUSE_URL", "EXPORT_STORAGE_URL", "EXPORT_PIPELINE_DATABASE_URL", "SENDGRID_API_KEY", "SENDGRID_API_HOST"):
    os.environ.pop(_name, None)

from export_pipeline.accounts.roles import MemberTable  # noqa: E402
from export_pipeline.clickhouse.connection import ClickHouse  # noqa: E402
from export_pipeline.clickhouse.schema import EventsTable, init_schema  # noqa: E402
from export_pipeline.db import get_engine  # noqa: E402
from export_pipeline.exports.deps import ExportDeps  # noqa: E402
from export_pipeline.exports.store import ExportStore  # noqa: E402
from export_pipeline.settings import Settings  # noqa: E402
from export_pipeline.storage import storage_from_url  # noqa: E402
from export_pipeline_tests.fakes.clickhouse_http import clickhouse_http  # noqa: E402, F401
from export_pipeline_tests.fakes.dagster_services import dagster_services  # noqa: E402
from export_pipeline_tests.fakes.net import free_port  # noqa: E402
from export_pipeline_tests.fakes.postgres import app_engine, postgres_app_url, postgres_server  # noqa: E402, F401


@pytest.fixture(scope="session")
def session_home() -> Path:
    return _SESSION_HOME


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def clickhouse(settings: Settings) -> ClickHouse:
    return ClickHouse.from_settings(settings)


@pytest.fixture(scope="session")
def events_table(clickhouse: ClickHouse) -> EventsTable:
    table = EventsTable()
    with clickhouse.session("test schema") as session:
        init_schema(session.client, table)
    return table


@pytest.fixture(scope="session")
def store(settings: Settings) -> ExportStore:
    return ExportStore(get_engine(settings.database_url))


@pytest.fixture()
def deps(settings: Settings, clickhouse: ClickHouse, events_table: EventsTable, store: ExportStore, tmp_path: Path) -> ExportDeps:
    """Export dependencies with a fresh local export folder per test."""
    return ExportDeps(
        settings=settings,
        clickhouse=clickhouse,
        storage=storage_from_url(f"file://{tmp_path / 'exports'}"),
        store=store,
        table=events_table,
        roles=MemberTable(store.engine),
    )


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A real S3 API (moto server) on loopback for the whole session."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    yield f"http://127.0.0.1:{port}"
    server.stop()


@contextmanager
def serving(app) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a loopback port for the block; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws="none"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API server did not start (see the log above)")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def dagster_stack(tmp_path_factory, session_home) -> Iterator[dict]:
    """One real deployment (dagster_services.py: webserver + daemon) for the session's Dagster tests, with its
    own instance and app database, so other tests' requests never reach its sensors; started on first use."""
    base = tmp_path_factory.mktemp("deployment")
    with dagster_services(base, "SENSOR", "BACKFILL", "QUEUED_RUN_COORDINATOR") as (deployment, home, url):
        yield {"deployment": deployment, "port": deployment.port, "dagster_home": home, "database_url": url,
               "store": ExportStore(get_engine(url))}
