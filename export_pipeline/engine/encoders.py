"""Encoders: how one part file's bytes are laid out from chunks of a model's rows (serialize.py writes the parts).

An export's text rows arrive already encoded: ClickHouse builds each NDJSON, JSON or CSV line in the query
(encode_sql.py), so a chunk's column of lines *is* the output. Its Arrow data buffer goes to the compressor
as a memoryview, without joining or copying strings in Python. Parquet chunks hold the output columns.

Each row format names its encoder's factory (formats.py); a factory takes the model, the export's
compression and the compression levels, whatever its encoder uses of them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from export_pipeline.engine.compression import Compression
from export_pipeline.engine.encode_sql import LINE
from export_pipeline.engine.model import ExportModel


class Sink(Protocol):
    """Where an encoder writes one part's bytes (serialize.PartSink: compressed, hashed, counted)."""

    def write(self, data: bytes | memoryview) -> int: ...


def concatenated(lines: pl.Series | pa.Array) -> memoryview:
    """All strings of a column, end to end: the (sliced) data buffer of its Arrow string array."""
    array = lines.to_arrow() if isinstance(lines, pl.Series) else lines
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if array.null_count:
        raise ValueError("a serialized line is null")
    if len(array) == 0:
        return memoryview(b"")  # an empty array may have no data buffer at all
    width = "q" if pa.types.is_large_string(array.type) or pa.types.is_large_binary(array.type) else "i"
    offsets = memoryview(array.buffers()[1]).cast(width)  # type: ignore[arg-type]
    start, end = offsets[array.offset], offsets[array.offset + len(array)]
    return memoryview(array.buffers()[2])[start:end]  # type: ignore[arg-type]


def _line_arrays(table: pa.Table) -> Iterator[pa.Array]:
    yield from table.column(LINE).chunks


class Encoder(Protocol):
    def begin(self, sink: Sink) -> None: ...
    def write(self, table: pa.Table, sink: Sink) -> None: ...
    def end(self, sink: Sink) -> None: ...


class LinesEncoder:
    """Writes the lines ClickHouse built (encode_sql.py) after an optional header: NDJSON, and CSV with its
    header in every part (formula-like text already neutralised unless `EXPORT_CSV_ESCAPE_FORMULAS` is off)."""

    def __init__(self, header: bytes = b"") -> None:
        self._header = header

    def begin(self, sink: Sink) -> None:
        if self._header:
            sink.write(self._header)  # every part starts with it, even an empty one

    def write(self, table: pa.Table, sink: Sink) -> None:
        for lines in _line_arrays(table):
            sink.write(concatenated(lines))

    def end(self, sink: Sink) -> None:
        pass


class JsonArrayEncoder:
    """`[`, objects separated by `,\\n`, `]`. Each line ends with `,\\n`, and the last one of each array is
    held back until we know whether another object follows."""

    def __init__(self) -> None:
        self._first = True

    def begin(self, sink: Sink) -> None:
        sink.write(b"[\n")
        self._first = True

    def write(self, table: pa.Table, sink: Sink) -> None:
        for lines in _line_arrays(table):
            body = concatenated(lines)  # "{..},\n{..},\n"
            if not body:
                continue
            if not self._first:
                sink.write(b",\n")
            sink.write(body[:-2])
            self._first = False

    def end(self, sink: Sink) -> None:
        sink.write(b"]\n" if self._first else b"\n]\n")


# pyarrow hands a Python sink every page and page header as its own call, each needing the GIL, which the
# extraction thread holds between ClickHouse blocks: ~40 calls per row group unbuffered, ~10 through 1 MiB.
# Measured at 10M events in 60 parts: the writer's share 15-17 s unbuffered, 13-15 s buffered; a 4 MiB buffer
# was no faster and cost 9 MB more peak RSS.
PARQUET_BUFFER_BYTES = 1 << 20


class ParquetEncoder:
    """One Parquet row group per chunk, column-compressed with the export's codec, written to the sink through
    a buffer of pyarrow's own. Columns of mostly distinct values are stored plain: pyarrow would otherwise hash
    every value into a dictionary first. Measured at 10M events in one process, alternating: 60 parts 15.8-17.6 s
    against 15.3-15.8 s and 5-16 MB less peak, the same table merged unchanged (14.3-15.7 s); files 0.8% larger
    uncompressed."""

    def __init__(self, model: ExportModel, compression: Compression, zstd_level: int, gzip_level: int):
        self._schema = model.arrow_schema
        self._dictionary = [column.name for column in model.columns if not column.distinct]
        self._codec = compression.value  # pyarrow names its codecs as we do
        self._level = {Compression.GZIP: gzip_level, Compression.ZSTD: zstd_level}.get(compression)
        self._writer: pq.ParquetWriter | None = None
        self._stream: pa.BufferedOutputStream | None = None

    def begin(self, sink: Sink) -> None:
        self._stream = pa.BufferedOutputStream(pa.PythonFile(sink, mode="w"), buffer_size=PARQUET_BUFFER_BYTES)
        self._writer = pq.ParquetWriter(
            self._stream, self._schema, compression=self._codec, compression_level=self._level,
            use_dictionary=self._dictionary,
        )

    def write(self, table: pa.Table, sink: Sink) -> None:
        assert self._writer is not None and self._stream is not None
        table = parquet_table(table, self._schema)
        self._writer.write_table(table, row_group_size=max(1, table.num_rows))
        self._stream.flush()  # the row group reaches the sink now: the part's size is counted after each chunk

    def end(self, sink: Sink) -> None:
        assert self._writer is not None and self._stream is not None
        self._writer.close()
        self._stream.close()  # the footer is still in the buffer
        self._writer = self._stream = None


def parquet_table(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` in `schema`'s types; a UUID column arrives as its 16 bytes (extract.py) and is stored as such
    (Parquet's UUID logical type)."""
    columns = []
    for field in schema:
        column = table.column(field.name)
        if field.type == pa.uuid() and column.type != field.type:
            column = pa.chunked_array(
                [pa.ExtensionArray.from_storage(field.type, chunk) for chunk in column.chunks], type=field.type
            )
        columns.append(column.cast(field.type))
    return pa.Table.from_arrays(columns, schema=schema)


EncoderFactory = Callable[..., Encoder]  # (model, compression, *, gzip_level, zstd_level) -> Encoder


def ndjson_encoder(model: ExportModel, compression: Compression, **_levels: int) -> Encoder:
    return LinesEncoder()


def csv_encoder(model: ExportModel, compression: Compression, **_levels: int) -> Encoder:
    return LinesEncoder((",".join(model.output_names) + "\n").encode())


def json_array_encoder(model: ExportModel, compression: Compression, **_levels: int) -> Encoder:
    return JsonArrayEncoder()


def parquet_encoder(model: ExportModel, compression: Compression, *, gzip_level: int, zstd_level: int) -> Encoder:
    return ParquetEncoder(model, compression, zstd_level, gzip_level)
