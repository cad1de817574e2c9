"""What an export's files are: each `Format` carries everything that differs by format, so no other module
branches on one. A row format (a model's rows, streamed into part files) names the SQL expression ClickHouse
builds each row's line with (text formats, encode_sql.py) and its encoder (encoders.py); a table format (an
insight's or dashboard's computed tables) names its writer (tables.py); PNG is an image of the page.

Adding a format is its behaviour in the module of its kind (a line builder, an encoder or a table writer) and
its member here (docs/architecture.md)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Self

from export_pipeline.engine import encode_sql, encoders, tables
from export_pipeline.engine.compression import Compression

LineBuilder = Callable[..., str]  # (model, *, escape_formulas) -> the SQL of each row's line, aliased `line`


@dataclass(frozen=True)
class FormatTraits:
    description: str
    extension: str
    content_type: str
    # Text formats are gzip for universal readability; Parquet compresses its columns (zstd) and XLSX its parts
    # itself, a PNG is compressed already.
    default_compression: Compression = Compression.GZIP
    compresses_inside: bool = False  # the codec goes inside the file (Parquet), never around it
    line: LineBuilder | None = None  # text row formats: ClickHouse builds each row's line
    encoder: encoders.EncoderFactory | None = None  # row formats: (model, compression, *, levels) -> Encoder
    # The ClickHouse output format writing exactly this format's bytes from `encode_sql.csv_cells`, which the
    # embedded engine can hand over block by block (csv_blocks.py).
    native: str | None = None
    json_objects: bool = False  # each row a JSON object (extract.py sizes blocks by it)
    table_writer: tables.TableWriter | None = None  # computed tables written whole
    image: bool = False  # a drawing of the page (takes a width)


class WithTraits(StrEnum):
    """A lowercase name whose member carries a frozen traits object, read as the member's own attributes
    (`Format.CSV.extension`)."""

    _traits: Any

    def __new__(cls, value: str, traits: object) -> Self:
        member = str.__new__(cls, value)
        member._value_ = value
        member._traits = traits
        return member

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # never the traits' own lookup (copying, pickling)
            raise AttributeError(name)
        return getattr(self._traits, name)


class Format(WithTraits):
    """An export's file format; its value is how every interface spells it (lowercase)."""

    NDJSON = "ndjson", FormatTraits(
        "one JSON object per line", "ndjson", "application/x-ndjson", line=encode_sql.ndjson_line,
        encoder=encoders.ndjson_encoder, json_objects=True)
    JSON = "json", FormatTraits(
        "a JSON array of objects (insights: a JSON document of their tables)", "json", "application/json",
        line=encode_sql.json_array_line, encoder=encoders.json_array_encoder, json_objects=True,
        table_writer=tables.json_tables)
    CSV = "csv", FormatTraits(
        "RFC 4180 with a header row in every file", "csv", "text/csv; charset=utf-8", line=encode_sql.csv_line,
        encoder=encoders.csv_encoder, native="CSV", table_writer=tables.csv_tables)
    PARQUET = "parquet", FormatTraits(
        "Parquet, one row group per chunk", "parquet", "application/vnd.apache.parquet",
        default_compression=Compression.ZSTD, compresses_inside=True, encoder=encoders.parquet_encoder)
    XLSX = "xlsx", FormatTraits(
        "an Excel workbook, a sheet per table", "xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", default_compression=Compression.NONE,
        table_writer=tables.xlsx_tables)
    PNG = "png", FormatTraits("an image of the insight or dashboard", "png", "image/png",
                        default_compression=Compression.NONE, image=True)

    @property
    def is_row(self) -> bool:
        """Whether a model's rows can be streamed in it."""
        return self.encoder is not None


ROW_FORMATS = tuple(fmt for fmt in Format if fmt.is_row)  # what a model's rows come in
TABLE_FORMATS = (Format.PNG, Format.CSV, Format.XLSX, Format.JSON)  # what an insight or a dashboard comes in
