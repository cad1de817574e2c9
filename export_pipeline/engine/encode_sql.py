"""Text outputs encoded by ClickHouse itself: one SQL expression per row builds the row's exact output line.

NDJSON, JSON and CSV rows are built in the query (`formatRowNoNewline`), so what crosses into Python is one
string column whose Arrow data buffer is the file's bytes: no per-row work in Python or Polars (measured at
1M events: Polars encoding and its Arrow round trip took 5.5 s of the 12 s export; ClickHouse's own
serializer builds the same lines inside the streamed query). The lines are the same as the Polars encoders
in frames.py produce for the API's pages (`json_lines`, `neutralise_formulas`). Each text format names its
line builder (formats.py):

- JSON: the scalar columns in output order (timestamps ISO 8601 with microseconds and `Z`, 64-bit integers
  unquoted, `/` not escaped), then each JSON-text column embedded as is when it is a JSON object, its raw
  newlines (only ever insignificant whitespace) made spaces; an empty text is `{}`, any other text is kept as
  a string under `$unparsed`; a column ClickHouse built with toJSONString (`built_json`) is embedded as is.
- CSV: RFC 4180 (text fields quoted), with formula-like text cells prefixed by `'` unless disabled.
"""

from __future__ import annotations

import pyarrow as pa

from export_pipeline.engine.model import Column, ExportModel

LINE = "line"

# The format settings the line expressions rely on (formatRow follows the query's settings).
ENCODE_SETTINGS = {
    "date_time_output_format": "iso",
    "output_format_json_quote_64bit_integers": 0,
    "output_format_json_escape_forward_slashes": 0,
    "output_format_json_quote_denormals": 0,
    # A missing value is an empty CSV cell, as the Polars encoder writes it (not ClickHouse's \\N).
    "format_csv_null_representation": "",
}

# OWASP "CSV injection": a spreadsheet evaluates a cell starting with one of these; a leading ' makes it text.
_FORMULA_START = "^[=+\\\\-@\\\\t\\\\r]"


def ndjson_line(model: ExportModel, *, escape_formulas: bool = True) -> str:
    """The expression building each row's NDJSON line, newline included, aliased `line`."""
    return _json_line(model, "\\n")


def json_array_line(model: ExportModel, *, escape_formulas: bool = True) -> str:
    """Each row's object in a JSON array, followed by `,\\n` (encoders.JsonArrayEncoder drops the last)."""
    return _json_line(model, ",\\n")


def csv_line(model: ExportModel, *, escape_formulas: bool = True) -> str:
    """Each row's CSV record, newline included, aliased `line`."""
    return f"formatRow('CSV', {csv_cells(model, escape_formulas=escape_formulas)}) AS {LINE}"


def _json_line(model: ExportModel, terminator: str) -> str:
    scalars = ", ".join(f"{_value(column)} AS {column.name}" for column in model.columns if not column.json_object)
    # The key columns are scalars, so there always is an object to open: `{"a":1,"b":2` without its `}`.
    parts = [f"substring(formatRowNoNewline('JSONEachRow', {scalars}) AS _scalars, 1, length(_scalars) - 1)"]
    for column in model.columns:
        if column.json_object:
            parts += [f"',\"{column.name}\":'", _embedded_object(column)]
    return f"concat({', '.join(parts)}, '}}{terminator}') AS {LINE}"


def csv_cells(model: ExportModel, *, escape_formulas: bool = True) -> str:
    """The select list whose CSV rows (ClickHouse's CSV output, or formatRow) are the export's CSV lines."""
    return ", ".join(_csv_cell(column, escape_formulas) for column in model.columns)


def _value(column: Column) -> str:
    # Every timestamp with microseconds, as the Parquet and Polars outputs have them.
    return f"toDateTime64({column.sql}, 6, 'UTC')" if pa.types.is_timestamp(column.arrow) else column.sql


def _embedded_object(column: Column) -> str:
    text = column.sql
    if column.built_json:  # toJSONString's own output: valid JSON on one line (an object or an array)
        return text
    is_object = f"(startsWith(trimLeft({text}, ' \\t\\n\\r'), '{{') AND isValidJSON({text}))"
    return (
        f"multiIf({is_object}, replaceRegexpAll({text}, '[\\r\\n]', ' '), {text} = '', '{{}}', "
        f"toJSONString(map('$unparsed', {text})))"
    )


def _csv_cell(column: Column, escape_formulas: bool) -> str:
    value = _value(column)
    if escape_formulas and pa.types.is_string(column.arrow):
        value = f"if(match({value}, '{_FORMULA_START}'), concat('''', {value}), {value})"
    return f"{value} AS {column.name}"
