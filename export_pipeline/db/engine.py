"""Opening the app database (SQLite by default, Postgres in production) and migrating it to the newest schema."""

from functools import cache
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine


@cache
def get_engine(database_url: str) -> Engine:
    """One engine per URL per process; upgrades the schema to the newest migration on first use."""
    if database_url.startswith("sqlite:///"):
        Path(database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        # The Dagster daemon, runs, CLI and API write concurrently: wait on locks rather than fail.
        engine = sa.create_engine(database_url, connect_args={"timeout": 30})
        sa.event.listen(engine, "connect", _sqlite_wal)
    else:
        engine = sa.create_engine(database_url, pool_pre_ping=True)
    upgrade_schema(engine)
    return engine


# Any constant: Postgres advisory locks are keyed by a number; this one is the app-database migration's.
_MIGRATION_LOCK = 0x6578706F7274


def upgrade_schema(engine: Engine, revision: str = "head") -> None:
    """Run the Alembic migrations (export_pipeline_migrations/) up to `revision`, in one transaction.

    API workers, the daemon and runs start together: on Postgres they queue on an advisory lock, and the
    first one migrates while the others then find the database at head.
    """
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "export_pipeline_migrations:.")
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def _sqlite_wal(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
