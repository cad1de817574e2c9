"""A model's rows a page at a time, for callers that serve one page per request (the HTTP API): the export's
own query (its filters, keyset step and as-of moment) cut by a LIMIT, one query per page."""

from __future__ import annotations

import json

import pyarrow as pa

from export_pipeline.clickhouse.connection import Session
from export_pipeline.clock import as_utc
from export_pipeline.engine.extract import QUERY_SETTINGS, ExportQuery
from export_pipeline.engine.model import object_value


def arrow_page(session: Session, query: ExportQuery, *, after: tuple | None, limit: int) -> pa.Table:
    """The next `limit` rows (and their key ties) after the key values `after`, or from the first, as
    ClickHouse returns them."""
    sql, params = query.chunk_sql(after=after, limit=limit)
    return session.client.query_arrow(sql, parameters=params, settings=QUERY_SETTINGS)


def page_rows(session: Session, query: ExportQuery, *, after: tuple | None, limit: int) -> list[dict]:
    """`arrow_page`'s rows as the JSON exports write them."""
    return _json_rows(query, arrow_page(session, query, after=after, limit=limit))


def row_by_key(session: Session, query: ExportQuery, key: object) -> dict | None:
    """The row whose key is `key` (a model paged by one key column), if the query's filters keep it; as the
    JSON exports write it."""
    if len(query.model.key) != 1:
        raise ValueError(f"model {query.model.name!r} is paged by {len(query.model.key)} key columns, not one")
    column = query.model.key[0]
    where, params = query.where(after=None)
    sql = (f"SELECT {query.model.select_list(output_only=True)} FROM {query.model.source} "
           f"WHERE {where} AND {column.sql} = {{row_key:{column.type}}} LIMIT 1")
    table = session.client.query_arrow(sql, parameters={**params, "row_key": key}, settings=QUERY_SETTINGS)
    rows = _json_rows(query, table)
    return rows[0] if rows else None


def row_count(session: Session, query: ExportQuery) -> int:
    """How many rows the query reads."""
    sql, params = query.count_sql()
    return int(session.client.command(sql, parameters=params, settings=QUERY_SETTINGS))


def _json_rows(query: ExportQuery, table: pa.Table) -> list[dict]:
    """Rows as the JSON exports write them: JSON texts as values, times as UTC ISO 8601 with microseconds."""
    rows = table.to_pylist()
    for column in query.model.columns:
        for row in rows:
            value = row[column.name]
            if column.built_json:
                row[column.name] = json.loads(value)
            elif column.json_object:
                row[column.name] = object_value(value)
            elif pa.types.is_timestamp(column.arrow):
                row[column.name] = as_utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return rows
