"""Row helpers every store of the app database shares."""

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from export_pipeline.errors import NotFound


def project_row(conn: sa.Connection, table: sa.Table, row_id: object, project_id: int, what: str) -> sa.Row:
    """The row `row_id` of a per-project table, or NotFound naming `what` when the project has no such row."""
    row = conn.execute(sa.select(table).where(table.c.id == row_id, table.c.project_id == project_id)).first()
    if row is None:
        raise NotFound(f"{what} {row_id!r} not found in project {project_id}.")
    return row


def delete_rows(engine: Engine, key: object, *columns: sa.Column) -> None:
    """Delete, in one transaction and in the order given (children before their parent), the rows of each
    column's table whose column equals `key`."""
    with engine.begin() as conn:
        for column in columns:
            conn.execute(sa.delete(column.table).where(column == key))
