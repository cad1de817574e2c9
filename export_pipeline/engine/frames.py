"""Polars encoders for outputs that are not a streamed export (the events API's pages, insight tables), writing
the same text as the lines ClickHouse builds for an export (encode_sql.py).

`json_lines` builds NDJSON and JSON lines with vectorized Polars expressions: the scalar columns encoded by
`struct.json_encode()` and a column of JSON text (events' `properties`) embedded as is when it is a JSON
object (ClickHouse's `isValidJSON` told us), so it appears as an object, not a string holding JSON. Raw
newlines in such text can only be insignificant whitespace (JSON escapes them inside strings), so they become
spaces to keep one row per line. Text that is not a JSON object is kept, as a string, under `$unparsed`:
nothing is lost and the output stays valid. `neutralise_formulas` does to CSV cells what encode_sql.py's CSV
lines do."""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from export_pipeline.engine.model import ExportModel

ISO_8601_UTC = "%Y-%m-%dT%H:%M:%S%.6fZ"


def json_lines(model: ExportModel, frame: pl.DataFrame, *, terminator: str) -> pl.Series:
    """Each row as a JSON object followed by `terminator`: the scalar columns in output order, then the
    JSON-text columns, embedded."""
    scalars = [
        pl.col(column.name).dt.strftime(ISO_8601_UTC) if pa.types.is_timestamp(column.arrow) else pl.col(column.name)
        for column in model.columns
        if not column.json_object
    ]
    # The key columns are scalars, so there always is an object to open: `{"a":1,"b":2` without its `}`.
    parts = [pl.struct(scalars).struct.json_encode().str.head(-1)]
    for column in model.columns:
        if column.json_object:
            parts += [pl.lit(f',"{column.name}":'), _embedded_object(frame, column.name, column.is_object_name)]
    line = pl.concat_str([*parts, pl.lit("}" + terminator)])
    return frame.select(line.alias("line")).get_column("line")


def _embedded_object(frame: pl.DataFrame, name: str, is_object: str) -> pl.Expr:
    raw = pl.col(name)
    if frame.select(raw.str.contains("[\r\n]").any()).item():
        raw = raw.str.replace_all("[\r\n]", " ")
    return (
        pl.when(pl.col(is_object))
        .then(raw)
        .when(pl.col(name) == "")
        .then(pl.lit("{}"))
        .otherwise(pl.struct(pl.col(name).alias("$unparsed")).struct.json_encode())
    )


# OWASP "CSV injection": a spreadsheet evaluates a cell starting with one of these; a leading ' makes it text.
_FORMULA_START = r"^([=+\-@\t\r])"


def neutralise_formulas(frame: pl.DataFrame) -> pl.DataFrame:
    """Every text cell a spreadsheet would evaluate, prefixed with `'`; numbers and other text unchanged.
    Only text columns holding such a cell are rewritten: the anchored test is cheap, rewriting a column of
    long JSON texts is not (it doubled the CSV encoding time)."""
    texts = frame.select(pl.col(pl.String))
    if texts.width == 0:
        return frame
    flagged = texts.select(pl.all().str.contains(_FORMULA_START).any()).row(0)
    risky = [name for name, found in zip(texts.columns, flagged, strict=True) if found]
    return frame.with_columns(pl.col(risky).str.replace(_FORMULA_START, "'$1")) if risky else frame
