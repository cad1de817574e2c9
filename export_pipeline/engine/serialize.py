"""Serialize chunks of a model's rows into compressed, size-bounded part files.

An export's text rows arrive already encoded: ClickHouse builds each NDJSON, JSON or CSV line in the query
(encode_sql.py), so a chunk's column of lines *is* the output. Its Arrow data buffer goes to the compressor
as a memoryview, without joining or copying strings in Python. Parquet chunks hold the output columns.

`json_lines` and `neutralise_formulas` encode a Polars frame the same way, for outputs that are not a
streamed export (the events API's pages, insight tables): NDJSON and JSON lines are built with vectorized
Polars expressions, the scalar columns encoded by `struct.json_encode()` and a column of JSON text (events'
`properties`) embedded as is when it is a JSON object (ClickHouse's `isValidJSON` told us), so it appears as
an object, not a string holding JSON. Raw newlines in such text can only be insignificant whitespace (JSON
escapes them inside strings), so they become spaces to keep one row per line. Text that is not a JSON
object is kept, as a string, under `$unparsed`: nothing is lost and the output stays valid.
"""

from __future__ import annotations

import functools
import hashlib
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import zstandard

from export_pipeline.engine.encode_sql import LINE
from export_pipeline.engine.model import ExportModel
from export_pipeline.engine.spec import Compression, ExportFormat
from export_pipeline.storage import ExportStorage, ObjectWriter

# In a chunk whose `line` values are whole ClickHouse blocks of CSV (csv_blocks.py): each block's row count.
ROWS = "_rows"

ISO_8601_UTC = "%Y-%m-%dT%H:%M:%S%.6fZ"

EXTENSIONS = {
    ExportFormat.NDJSON: "ndjson",
    ExportFormat.JSON: "json",
    ExportFormat.CSV: "csv",
    ExportFormat.PARQUET: "parquet",
}
CONTENT_TYPES = {
    ExportFormat.NDJSON: "application/x-ndjson",
    ExportFormat.JSON: "application/json",
    ExportFormat.CSV: "text/csv; charset=utf-8",
    ExportFormat.PARQUET: "application/vnd.apache.parquet",
    ExportFormat.PNG: "image/png",
    ExportFormat.XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
COMPRESSION_SUFFIX = {Compression.GZIP: ".gz", Compression.ZSTD: ".zst", Compression.NONE: ""}


def file_name(index: int, fmt: ExportFormat, compression: Compression) -> str:
    # Parquet compresses its columns internally, so the file itself is never wrapped.
    suffix = "" if fmt is ExportFormat.PARQUET else COMPRESSION_SUFFIX[compression]
    return f"part-{index:05d}.{EXTENSIONS[fmt]}{suffix}"


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
    def begin(self, sink: PartSink) -> None: ...
    def write(self, table: pa.Table, sink: PartSink) -> None: ...
    def end(self, sink: PartSink) -> None: ...


class LinesEncoder:
    """Writes the lines ClickHouse built (encode_sql.py) after an optional header: NDJSON, and CSV with its
    header in every part (formula-like text already neutralised unless `EXPORT_CSV_ESCAPE_FORMULAS` is off)."""

    def __init__(self, header: bytes = b"") -> None:
        self._header = header

    def begin(self, sink: PartSink) -> None:
        if self._header:
            sink.write(self._header)  # every part starts with it, even an empty one

    def write(self, table: pa.Table, sink: PartSink) -> None:
        for lines in _line_arrays(table):
            sink.write(concatenated(lines))

    def end(self, sink: PartSink) -> None:
        pass


class JsonArrayEncoder:
    """`[`, objects separated by `,\\n`, `]`. Each line ends with `,\\n`, and the last one of each array is
    held back until we know whether another object follows."""

    def __init__(self) -> None:
        self._first = True

    def begin(self, sink: PartSink) -> None:
        sink.write(b"[\n")
        self._first = True

    def write(self, table: pa.Table, sink: PartSink) -> None:
        for lines in _line_arrays(table):
            body = concatenated(lines)  # "{..},\n{..},\n"
            if not body:
                continue
            if not self._first:
                sink.write(b",\n")
            sink.write(body[:-2])
            self._first = False

    def end(self, sink: PartSink) -> None:
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
        self._codec = {Compression.GZIP: "gzip", Compression.ZSTD: "zstd", Compression.NONE: "none"}[compression]
        self._level = {Compression.GZIP: gzip_level, Compression.ZSTD: zstd_level}.get(compression)
        self._writer: pq.ParquetWriter | None = None
        self._stream: pa.BufferedOutputStream | None = None

    def begin(self, sink: PartSink) -> None:
        self._stream = pa.BufferedOutputStream(pa.PythonFile(sink, mode="w"), buffer_size=PARQUET_BUFFER_BYTES)
        self._writer = pq.ParquetWriter(
            self._stream, self._schema, compression=self._codec, compression_level=self._level,
            use_dictionary=self._dictionary,
        )

    def write(self, table: pa.Table, sink: PartSink) -> None:
        assert self._writer is not None and self._stream is not None
        table = parquet_table(table, self._schema)
        self._writer.write_table(table, row_group_size=max(1, table.num_rows))
        self._stream.flush()  # the row group reaches the sink now: the part's size is counted after each chunk

    def end(self, sink: PartSink) -> None:
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


class _Compressor(Protocol):
    def compress(self, data: bytes | memoryview) -> bytes | memoryview: ...
    def flush(self) -> bytes: ...


class _Identity:
    def compress(self, data: bytes | memoryview) -> bytes | memoryview:
        return data

    def flush(self) -> bytes:
        return b""


def _compressor(compression: Compression, *, gzip_level: int, zstd_level: int) -> _Compressor:
    if compression is Compression.GZIP:
        return zlib.compressobj(gzip_level, zlib.DEFLATED, 31)  # wbits 31: gzip container
    if compression is Compression.ZSTD:
        return zstandard.ZstdCompressor(level=zstd_level, write_content_size=False).compressobj()
    return _Identity()


_OVERLAP_BYTES = 1 << 18


@functools.cache
def _hasher() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="export-sha256")


class PartSink:
    """A file-like for one part: compresses, hashes and counts the bytes it hands to storage."""

    def __init__(self, writer: ObjectWriter, compressor: _Compressor):
        self._writer = writer
        self._compressor = compressor
        self._sha256 = hashlib.sha256()
        self.bytes_written = 0
        self.closed = False

    def write(self, data: bytes | memoryview) -> int:
        self._emit(self._compressor.compress(data))
        return len(data)

    def _emit(self, data: bytes | memoryview) -> None:
        if not data:
            return
        if len(data) >= _OVERLAP_BYTES:
            # Both release the GIL: hashing alongside the write makes SHA-256 free (measured at 1M events:
            # 1.4 s of hashing and 3.8 s of writing new file pages, one after the other).
            hashed = _hasher().submit(self._sha256.update, data)
            self._writer.write(data)
            hashed.result()
        else:
            self._sha256.update(data)
            self._writer.write(data)
        self.bytes_written += len(data)

    # pyarrow's ParquetWriter treats the sink as a Python file object.
    def flush(self) -> None:
        pass

    def tell(self) -> int:
        return self.bytes_written

    def writable(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True  # ParquetWriter closes its sink; the part is finished by `finish`.

    def finish(self) -> str:
        self._emit(self._compressor.flush())
        self._writer.commit()
        return self._sha256.hexdigest()


@dataclass(frozen=True)
class WrittenFile:
    name: str
    key: str
    rows: int
    bytes: int
    sha256: str


class PartWriter:
    """Writes chunks of a model's rows into `part-NNNNN` files under `prefix`, starting a new part once one reaches
    `part_size` stored bytes. That is checked after each chunk (a part may run over by up to one chunk), so
    a part always ends where a chunk does, at a key boundary (extract.py): the last key of a part is an exact
    place to resume an export after."""

    def __init__(
        self,
        storage: ExportStorage,
        prefix: str,
        model: ExportModel,
        fmt: ExportFormat,
        compression: Compression,
        *,
        part_size: int,
        gzip_level: int = 6,
        zstd_level: int = 3,
        tags: dict[str, str] | None = None,
    ):
        self._storage = storage
        self._prefix = prefix
        self._format = fmt
        self._compression = compression
        self._part_size = part_size
        self._levels = {"gzip_level": gzip_level, "zstd_level": zstd_level}
        self._tags = tags or {}
        self._encoder = self._new_encoder(model)
        self._sink: PartSink | None = None
        self._part_rows = 0
        self.files: list[WrittenFile] = []
        self.rows = 0

    def _new_encoder(self, model: ExportModel) -> Encoder:
        if self._format is ExportFormat.NDJSON:
            return LinesEncoder()
        if self._format is ExportFormat.JSON:
            return JsonArrayEncoder()
        if self._format is ExportFormat.CSV:
            return LinesEncoder((",".join(model.output_names) + "\n").encode())
        return ParquetEncoder(model, self._compression, self._levels["zstd_level"], self._levels["gzip_level"])

    @property
    def bytes_written(self) -> int:
        return sum(f.bytes for f in self.files) + (self._sink.bytes_written if self._sink else 0)

    def write(self, chunk: pa.Table) -> None:
        """Write a chunk as extracted for this format (extract.py): the lines ClickHouse built for the text
        formats (one per row, or whole blocks of CSV with their row counts), the output columns for Parquet."""
        if chunk.num_rows == 0:
            return
        sink = self._sink or self._open_part()
        self._encoder.write(chunk, sink)
        rows = pc.sum(chunk.column(ROWS)).as_py() if ROWS in chunk.column_names else chunk.num_rows
        self._part_rows += rows
        self.rows += rows
        if sink.bytes_written >= self._part_size:
            self._close_part()

    def finish(self) -> list[WrittenFile]:
        """Close the last part. An export with no rows still gets one (empty, valid) file."""
        if self._sink is not None or not self.files:
            self._close_part()
        return self.files

    def abort(self) -> None:
        if self._sink is not None:
            self._sink._writer.abort()
            self._sink = None

    def _open_part(self) -> PartSink:
        name = file_name(len(self.files), self._format, self._compression)
        writer = self._storage.open_writer(
            f"{self._prefix}/{name}", content_type=CONTENT_TYPES[self._format], tags=self._tags
        )
        compression = Compression.NONE if self._format is ExportFormat.PARQUET else self._compression
        self._sink = PartSink(writer, _compressor(compression, **self._levels))
        self._part_rows = 0
        self._encoder.begin(self._sink)
        return self._sink

    def _close_part(self) -> None:
        sink = self._sink or self._open_part()
        self._encoder.end(sink)
        sha256 = sink.finish()
        name = file_name(len(self.files), self._format, self._compression)
        self.files.append(WrittenFile(name, f"{self._prefix}/{name}", self._part_rows, sink.bytes_written, sha256))
        self._sink = None
