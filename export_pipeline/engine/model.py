"""What the generic export path needs to know about one exportable model.

A model is declared, not programmed: its columns (select list, output order, Arrow type and JSON shape in one
list), the key its rows are paged by, and how an export's parameters filter it. Extraction
(`engine/extract.py`) and serialization (`engine/serialize.py`) derive everything else from this.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import pyarrow as pa

from export_pipeline.clock import ch_time

# SQL conditions (joined with AND) and the bound parameters they name.
Conditions = tuple[list[str], dict]
CH_TIME = "DateTime64(6, 'UTC')"
# How every model's ClickHouse DateTime64(6, 'UTC') column is typed in Arrow and Parquet.
UTC_MICROSECONDS = pa.timestamp("us", tz="UTC")


def object_value(text: str | None) -> dict:
    """A `json_object` column's text as JSON outputs show it: the object, `{}` for no text, or the text kept
    under `$unparsed` when it is not a JSON object (as the serializer writes it)."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {"$unparsed": text}
    return value if isinstance(value, dict) else {"$unparsed": text}


class Dated(Protocol):
    """What `date_range` reads of an export's spec (spec.ExportSpec). This module does not import the spec:
    a spec's format names the encoders that take a model."""

    @property
    def date_from(self) -> datetime | None: ...
    @property
    def date_to(self) -> datetime | None: ...


def date_range(spec: Dated, column: str) -> Conditions:
    """The spec's [date_from, date_to) over a time column."""
    clauses: list[str] = []
    params: dict = {}
    if spec.date_from:
        clauses.append(f"{column} >= {{date_from:{CH_TIME}}}")
        params["date_from"] = ch_time(spec.date_from)
    if spec.date_to:
        clauses.append(f"{column} < {{date_to:{CH_TIME}}}")
        params["date_to"] = ch_time(spec.date_to)
    return clauses, params


@dataclass(frozen=True)
class Column:
    """One output column: its name (the SQL alias), its expression over the table's quoted columns, its
    Arrow type in Parquet (`pa.uuid()` for a UUID selected as its text), and whether Parquet declares it
    nullable. A `json_object` column holds JSON text that JSON outputs embed as an object. `built_json` says
    ClickHouse wrote that text itself (toJSONString: always valid, an object or an array), so it is embedded
    without checking. `distinct` says most rows hold a value of their own (ids, event times, JSON texts):
    Parquet stores it plain, as a dictionary of it would cost the writer time and save nothing."""

    name: str
    sql: str
    arrow: pa.DataType
    json_object: bool = False
    built_json: bool = False
    nullable: bool = True
    distinct: bool = False

    @property
    def is_object_name(self) -> str:
        return f"{self.name}_is_object"

    def is_object_sql(self) -> str:
        if self.built_json:
            return f"true AS {self.is_object_name}"
        # The cheap prefix test short-circuits, so each text is parsed at most once.
        return (
            f"toBool(startsWith(trimLeft({self.sql}, ' \\t\\n\\r'), '{{') "
            f"AND isValidJSON({self.sql})) AS {self.is_object_name}"
        )


@dataclass(frozen=True)
class KeyColumn:
    """A column of the paging key: the output column its value is read back from, the table expression it
    is ordered and compared by, and the ClickHouse type its value is bound as."""

    name: str
    sql: str
    type: str


@dataclass(frozen=True)
class ExportModel:
    """An exportable model. Rows are read in `key` order; the key need not be unique (see extract.py)."""

    name: str
    source: str  # the qualified table the rows come from
    columns: tuple[Column, ...]  # in output order
    key: tuple[KeyColumn, ...]
    filters: Callable[[Any, datetime], Conditions]  # the spec's (spec.ExportSpec) filters, as of the request
    # Whole-export equivalents of `source` (same rows, same columns), when paging's narrowed source would cost
    # more read at once: what the one streamed query reads, and what the count reads (persons: the latest
    # versions alone, as the distinct ids never change how many persons there are).
    stream_source: str | None = None
    count_source: str | None = None
    # ClickHouse settings of the streamed query, over extract.py's own (persons: how its aggregations and its
    # final sort keep memory bounded).
    stream_settings: dict = field(default_factory=dict)
    # A function of the first key column that is constant within each of the source table's partitions and
    # grows with the key (events: `toStartOfMonth(timestamp)`, the table being partitioned by month). The
    # streamed read then runs one window (partition) at a time, so ClickHouse opens only that window's parts
    # instead of every part of the table at once (see extract.py).
    window: str | None = None
    # For a model without partitions whose streamed query holds something that grows with its rows (persons:
    # the distinct ids grouped by owner, the join's right side): the streamed read runs in windows of this
    # many rows, cut at every `window_rows`-th key value (extract.py `plan`).
    window_rows: int | None = None
    # The table expression of the row's ingestion time (events: `created_at`, persons: `_timestamp`): batch
    # exports cut their intervals on it, so a late row lands in a later interval instead of being missed.
    ingested_at: str | None = None

    def ingested_between(self, start: datetime, end: datetime) -> Conditions:
        """The rows ingested in [start, end)."""
        if self.ingested_at is None:
            raise ValueError(f"model {self.name!r} declares no ingestion-time column")
        bound = "DateTime64(6, 'UTC')"
        return [f"{self.ingested_at} >= {{ingested_from:{bound}}}", f"{self.ingested_at} < {{ingested_to:{bound}}}"], \
            {"ingested_from": ch_time(start), "ingested_to": ch_time(end)}

    @property
    def output_names(self) -> list[str]:
        return [column.name for column in self.columns]

    @property
    def arrow_schema(self) -> pa.Schema:
        return pa.schema([pa.field(column.name, column.arrow, nullable=column.nullable) for column in self.columns])

    def select_list(self, *, output_only: bool = False) -> str:
        """The output columns, then (unless `output_only`) whether each JSON text is an object, which
        JSON outputs need to embed it verbatim."""
        parts = [f"{column.sql} AS {column.name}" for column in self.columns]
        if not output_only:
            parts += [column.is_object_sql() for column in self.columns if column.json_object]
        return ", ".join(parts)

    def order_by(self) -> str:
        return ", ".join(key.sql for key in self.key)

    def after(self, last: Sequence[object]) -> Conditions:
        """The rows strictly after the key values `last`.

        Its `after_<key>` parameters, and the chunk's `limit`, override same-named ones of `filters`: a model
        whose source is a subquery may give them defaults there (its key's lowest value; no limit, which is
        what a count sees) and narrow the subquery by them, so a chunk aggregates only its own rows (persons);
        the conditions returned here stay the exact keyset step."""
        names = [f"after_{key.name}" for key in self.key]
        params = {name: ch_time(value) if isinstance(value, datetime) else value for name, value in zip(names, last, strict=True)}
        bound = [f"{{{name}:{key.type}}}" for name, key in zip(names, self.key, strict=True)]
        first = self.key[0]
        return [
            # The plain range lets the primary key prune; the tuple comparison is the exact keyset step.
            f"{first.sql} >= {bound[0]}",
            f"({self.order_by()}) > ({', '.join(bound)})",
        ], params
