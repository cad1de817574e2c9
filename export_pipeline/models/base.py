"""What the generic export path needs to know about one exportable model.

A model is declared, not programmed: its columns (select list, output order, Arrow type and JSON shape in one
list), the key its rows are paged by, and how an export's parameters filter it. Extraction
(`exports/extract.py`) and serialization (`exports/serialize.py`) derive everything else from this.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa

from export_pipeline.clock import ch_time
from export_pipeline.exports.spec import ExportSpec

# SQL conditions (joined with AND) and the bound parameters they name.
Conditions = tuple[list[str], dict]


@dataclass(frozen=True)
class Column:
    """One output column: its name (the SQL alias), its expression over the table's quoted columns, its
    Arrow type in Parquet (`pa.uuid()` for a UUID selected as its text), and whether Parquet declares it
    nullable. A `json_object` column holds JSON text that JSON outputs embed as an object."""

    name: str
    sql: str
    arrow: pa.DataType
    json_object: bool = False
    nullable: bool = True

    @property
    def is_object_name(self) -> str:
        return f"{self.name}_is_object"

    def is_object_sql(self) -> str:
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
    filters: Callable[[ExportSpec, datetime], Conditions]  # the spec's filters, as of the request

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
        """The rows strictly after the key values `last`."""
        names = [f"after_{key.name}" for key in self.key]
        params = {name: ch_time(value) if isinstance(value, datetime) else value for name, value in zip(names, last, strict=True)}
        bound = [f"{{{name}:{key.type}}}" for name, key in zip(names, self.key, strict=True)]
        first = self.key[0]
        return [
            # The plain range lets the primary key prune; the tuple comparison is the exact keyset step.
            f"{first.sql} >= {bound[0]}",
            f"({self.order_by()}) > ({', '.join(bound)})",
        ], params
