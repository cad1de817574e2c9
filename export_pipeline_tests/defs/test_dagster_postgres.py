"""Dagster on Postgres: the webserver and a real dagster-daemon on an instance whose run, event-log and
schedule storages are dagster-postgres on the session's throwaway server, with the app database on Postgres
too. The daemon's sensor launches a queued export exactly once (the same test as on SQLite storage)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import dagster as dg
import pytest
import yaml

from export_pipeline.accounts.roles import Role, add_member
from export_pipeline.db import get_engine
from export_pipeline.exports.store import ExportStore
from export_pipeline_tests.defs.test_dagster import (  # noqa: F401
    PROJECT,
    test_daemon_sensor_launches_a_queued_export_exactly_once,
)
from export_pipeline_tests.fakes.dagster_services import ROOT, running_deployment


@pytest.fixture(scope="module")
def dagster_deployment(tmp_path_factory, postgres_server, events_table) -> Iterator[dict]:
    """The services with Postgres storages and app database, sharing the session's ClickHouse (its events table
    created first)."""
    base = tmp_path_factory.mktemp("deployment-postgres")
    dagster_home = base / "dagster"
    dagster_home.mkdir()
    # The production instance's storage section (deploy/dagster.yaml), its variables pointing at the server.
    instance_config = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    instance_config["storage"] = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text())["storage"]
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(instance_config))
    dagster_db = f"dagster_{uuid.uuid4().hex[:8]}"
    postgres_server.create_database(dagster_db)
    variables = {"DAGSTER_POSTGRES_HOST": "127.0.0.1", "DAGSTER_POSTGRES_PORT": str(postgres_server.port),
                 "DAGSTER_POSTGRES_USER": "postgres", "DAGSTER_POSTGRES_PASSWORD": "unused (trust)",
                 "DAGSTER_POSTGRES_DB": dagster_db}
    database_url = postgres_server.create_database(f"app_{uuid.uuid4().hex[:8]}")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in variables.items():
            patch.setenv(name, value)
        with running_deployment(base, dagster_home, database_url) as deployment:
            store = ExportStore(get_engine(database_url))
            add_member(store.engine, PROJECT, "maria", Role.MAINTAINER)
            yield {"deployment": deployment, "port": deployment.port, "dagster_home": dagster_home, "store": store}


def test_the_instance_stores_runs_events_and_schedules_in_postgres(dagster_deployment):
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    with dg.DagsterInstance.from_config(str(dagster_deployment["dagster_home"])) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        # the daemon's heartbeats reach the server, and no daemon reports an error (with psycopg 3 behind
        # dagster-postgres, every event the freshness daemon stores fails)
        heartbeats = instance.get_daemon_heartbeats()
        assert {"SENSOR", "QUEUED_RUN_COORDINATOR", "SCHEDULER"} <= set(heartbeats)
        assert {name: beat.errors for name, beat in heartbeats.items() if beat.errors} == {}
