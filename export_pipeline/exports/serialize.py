"""Serialize chunks of a model's rows with Polars into compressed, size-bounded part files.

NDJSON and JSON lines are built with vectorized Polars expressions: the scalar columns are encoded by
`struct.json_encode()` and a column of JSON text (events' `properties`) is embedded as is when it is a JSON
object (ClickHouse's `isValidJSON` told us), so it appears as an object, not a string holding JSON. Raw
newlines in such text can only be insignificant whitespace (JSON escapes them inside strings), so they
become spaces to keep one row per line. Text that is not a JSON object is kept, as a string, under
`$unparsed`: nothing is lost and the output stays valid.

Each line already ends with its separator, so the Arrow data buffer of the column of lines *is* the
output: it goes to the compressor as a memoryview, without joining or copying strings in Python.
"""

from __future__ import annotations

import hashlib
import io
import zlib
from dataclasses import dataclass
from typing import Protocol

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

from export_pipeline.exports.spec import Compression, ExportFormat
from export_pipeline.models.base import ExportModel
from export_pipeline.storage import ExportStorage, ObjectWriter

ISO_8601_UTC = "%Y-%m-%dT%H:%M:%S%.6fZ"
MAX_SLICE_BYTES = 64 * 1024 * 1024

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


def concatenated(lines: pl.Series) -> memoryview:
    """All strings of a column, end to end: the (sliced) data buffer of its Arrow string array."""
    array = lines.to_arrow()
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if array.null_count:
        raise ValueError("a serialized line is null")
    if len(array) == 0:
        return memoryview(b"")  # an empty array may have no data buffer at all
    width = "q" if pa.types.is_large_string(array.type) else "i"
    offsets = memoryview(array.buffers()[1]).cast(width)  # type: ignore[arg-type]
    start, end = offsets[array.offset], offsets[array.offset + len(array)]
    return memoryview(array.buffers()[2])[start:end]  # type: ignore[arg-type]


class Encoder(Protocol):
    def begin(self, sink: PartSink) -> None: ...
    def write(self, frame: pl.DataFrame, sink: PartSink) -> None: ...
    def end(self, sink: PartSink) -> None: ...


class NdjsonEncoder:
    def __init__(self, model: ExportModel) -> None:
        self._model = model

    def begin(self, sink: PartSink) -> None:
        pass

    def write(self, frame: pl.DataFrame, sink: PartSink) -> None:
        sink.write(concatenated(json_lines(self._model, frame, terminator="\n")))

    def end(self, sink: PartSink) -> None:
        pass


class JsonArrayEncoder:
    """`[`, objects separated by `,\\n`, `]`. Each object is written with a trailing comma, and the last
    comma of each slice is held back until we know whether another object follows."""

    def __init__(self, model: ExportModel) -> None:
        self._model = model
        self._first = True

    def begin(self, sink: PartSink) -> None:
        sink.write(b"[\n")
        self._first = True

    def write(self, frame: pl.DataFrame, sink: PartSink) -> None:
        body = concatenated(json_lines(self._model, frame, terminator=",\n"))  # "{..},\n{..},\n"
        if not self._first:
            sink.write(b",\n")
        sink.write(body[:-2])
        self._first = False

    def end(self, sink: PartSink) -> None:
        sink.write(b"]\n" if self._first else b"\n]\n")


class CsvEncoder:
    """CSV for people's spreadsheets: formula-like text is neutralised unless `escape_formulas` is off (for
    machine consumers that need the exact values)."""

    def __init__(self, model: ExportModel, *, escape_formulas: bool = True) -> None:
        self._columns = model.output_names
        self._escape_formulas = escape_formulas
        self._header = True

    def begin(self, sink: PartSink) -> None:
        self._header = True

    def write(self, frame: pl.DataFrame, sink: PartSink) -> None:
        buffer = io.BytesIO()
        frame = frame.select(self._columns)
        if self._escape_formulas:
            frame = neutralise_formulas(frame)
        frame.write_csv(buffer, include_header=self._header, datetime_format=ISO_8601_UTC)
        self._header = False
        sink.write(buffer.getbuffer())

    def end(self, sink: PartSink) -> None:
        if self._header:  # no rows: still a valid CSV with its header
            sink.write(",".join(self._columns).encode() + b"\n")


class ParquetEncoder:
    """One Parquet row group per slice, column-compressed with the export's codec."""

    def __init__(self, model: ExportModel, compression: Compression, zstd_level: int, gzip_level: int):
        self._schema = model.arrow_schema
        self._codec = {Compression.GZIP: "gzip", Compression.ZSTD: "zstd", Compression.NONE: "none"}[compression]
        self._level = {Compression.GZIP: gzip_level, Compression.ZSTD: zstd_level}.get(compression)
        self._writer: pq.ParquetWriter | None = None

    def begin(self, sink: PartSink) -> None:
        self._writer = pq.ParquetWriter(
            sink, self._schema, compression=self._codec, compression_level=self._level
        )

    def write(self, frame: pl.DataFrame, sink: PartSink) -> None:
        assert self._writer is not None
        table = parquet_table(frame, self._schema)
        self._writer.write_table(table, row_group_size=max(1, table.num_rows))

    def end(self, sink: PartSink) -> None:
        assert self._writer is not None
        self._writer.close()
        self._writer = None


def parquet_table(frame: pl.DataFrame, schema: pa.Schema) -> pa.Table:
    """`frame` in `schema`'s types; a UUID column arrives as its text and is stored as its 16 bytes (Parquet's
    UUID logical type), decoded vectorised: 8-4-4-4-12 hex without its dashes."""
    uuids = [field.name for field in schema if field.type == pa.uuid()]
    frame = frame.select(schema.names).with_columns(
        pl.col(name).str.replace_all("-", "", literal=True).str.decode("hex") for name in uuids)
    table = frame.to_arrow()
    columns = [
        pa.ExtensionArray.from_storage(field.type, table.column(field.name).combine_chunks().cast(pa.binary(16)))
        if field.name in uuids else table.column(field.name).cast(field.type)
        for field in schema
    ]
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
        if data:
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
    `part_size` stored bytes (checked between slices, so a part may run over by up to one slice)."""

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
        escape_formulas: bool = True,
    ):
        self._storage = storage
        self._prefix = prefix
        self._format = fmt
        self._compression = compression
        self._part_size = part_size
        self._levels = {"gzip_level": gzip_level, "zstd_level": zstd_level}
        self._tags = tags or {}
        self._escape_formulas = escape_formulas
        self._encoder = self._new_encoder(model)
        self._sink: PartSink | None = None
        self._part_rows = 0
        self.files: list[WrittenFile] = []
        self.rows = 0

    def _new_encoder(self, model: ExportModel) -> Encoder:
        if self._format is ExportFormat.NDJSON:
            return NdjsonEncoder(model)
        if self._format is ExportFormat.JSON:
            return JsonArrayEncoder(model)
        if self._format is ExportFormat.CSV:
            return CsvEncoder(model, escape_formulas=self._escape_formulas)
        return ParquetEncoder(model, self._compression, self._levels["zstd_level"], self._levels["gzip_level"])

    @property
    def bytes_written(self) -> int:
        return sum(f.bytes for f in self.files) + (self._sink.bytes_written if self._sink else 0)

    def write(self, frame: pl.DataFrame) -> None:
        if frame.height == 0:
            return
        bytes_per_row = max(1, frame.estimated_size() // frame.height)
        slice_rows = max(1, min(MAX_SLICE_BYTES, self._part_size // 4) // bytes_per_row)
        for offset in range(0, frame.height, slice_rows):
            piece = frame.slice(offset, slice_rows)
            sink = self._sink or self._open_part()
            self._encoder.write(piece, sink)
            self._part_rows += piece.height
            self.rows += piece.height
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
