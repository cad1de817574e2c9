"""Alembic migrations of the app database, on SQLite and on Postgres: a new database and one created before
migrations existed (with rows in it, and missing a column added since) both end at head with exactly the
schema of export_pipeline/db/, keeping every row; concurrent starts migrate once."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from export_pipeline.db import access_tokens, metadata, project_members, upgrade_schema

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'app.db'}"
    return request.getfixturevalue("postgres_server").create_database(f"mig_{uuid.uuid4().hex[:12]}")


def head() -> str:
    config = Config()
    config.set_main_option("script_location", "export_pipeline_migrations:.")
    return ScriptDirectory.from_config(config).get_current_head()


def state(engine: sa.Engine) -> tuple[str | None, list]:
    """The database's revision and how its schema differs from db/'s tables (empty when equal)."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn)
        return context.get_current_revision(), compare_metadata(context, metadata)


def test_a_new_database_is_migrated_to_exactly_the_declared_schema(empty_url):
    engine = sa.create_engine(empty_url)
    try:
        upgrade_schema(engine)
        assert state(engine) == (head(), [])
        upgrade_schema(engine)  # at head: nothing to do
        assert state(engine) == (head(), [])
    finally:
        engine.dispose()


def test_a_database_from_before_migrations_keeps_its_rows_and_gains_what_is_missing(empty_url):
    engine = sa.create_engine(empty_url)
    try:
        # What the code before migrations made (`metadata.create_all` of the baseline's tables) before
        # last_used_at existed, with rows: the baseline's schema, unstamped, one column short.
        upgrade_schema(engine, "0001")
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE alembic_version"))
            conn.execute(sa.text("ALTER TABLE access_tokens DROP COLUMN last_used_at"))
            conn.execute(sa.insert(project_members),
                         [{"project_id": 7, "user_name": "ana", "access_level": 40, "added_at": AT},
                          {"project_id": 7, "user_name": "bo", "access_level": 30, "added_at": AT}])
            conn.execute(sa.text("INSERT INTO access_tokens (id, user_name, name, token_sha256, created_at) "
                                 "VALUES ('t1', 'ana', 'ci', :sha, :at)"), {"sha": "a" * 64, "at": AT})
        assert state(engine)[0] is None

        upgrade_schema(engine)

        assert state(engine) == (head(), [])
        with engine.connect() as conn:
            assert conn.execute(sa.select(project_members.c.user_name, project_members.c.access_level)
                                .order_by(project_members.c.user_name)).all() == [("ana", 40), ("bo", 30)]
            assert conn.execute(sa.select(access_tokens.c.id, access_tokens.c.last_used_at)).all() == [("t1", None)]
    finally:
        engine.dispose()


def test_services_starting_together_migrate_once(postgres_server):
    url = postgres_server.create_database(f"mig_{uuid.uuid4().hex[:12]}")
    engines = [sa.create_engine(url) for _ in range(6)]
    start, errors = threading.Barrier(len(engines)), []

    def boot(engine: sa.Engine) -> None:
        start.wait()
        try:
            upgrade_schema(engine)
        except Exception as exc:  # collected: the assertion names every failure
            errors.append(repr(exc))

    threads = [threading.Thread(target=boot, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        assert state(engines[0]) == (head(), [])
    finally:
        for engine in engines:
            engine.dispose()
