"""Alembic's entry point: `export_pipeline.db.upgrade_schema` passes its connection; the `alembic` command line
(alembic.ini at the repository root) connects to EXPORT_PIPELINE_DATABASE_URL."""

import sqlalchemy as sa
from alembic import context

from export_pipeline.db import metadata
from export_pipeline.settings import Settings


def run(connection: sa.Connection) -> None:
    # SQLite alters tables by copying them (batch mode); Postgres alters in place.
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


if (given := context.config.attributes.get("connection")) is not None:
    run(given)
else:
    engine = sa.create_engine(Settings().database_url)
    try:
        with engine.begin() as connection:
            run(connection)
    finally:
        engine.dispose()
