"""Small computed tables (an insight's, a dashboard's tiles') written whole as files: each table format names
its writer here (formats.py). A writer yields (file name, bytes, rows) for each file it makes.

CSV is a file per table, its text cells that a spreadsheet would evaluate neutralised unless asked not to;
XLSX is one workbook, a sheet per table, text always a string cell and never a formula; JSON is one document
listing the tables with what each one is."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import polars as pl
import xlsxwriter

from export_pipeline.engine.frames import neutralise_formulas

WrittenTable = tuple[str, bytes, int]  # file name, bytes, rows


@dataclass(frozen=True)
class Table:
    name: str  # its sheet's name in a workbook
    file_stem: str  # its own file's name without the extension, where each table is a file (CSV)
    about: dict  # what it is: the fields leading its entry in a JSON document
    columns: tuple[str, ...]
    rows: list[list]

    @property
    def frame(self) -> pl.DataFrame:
        return pl.DataFrame(self.rows, schema=list(self.columns), orient="row")


@dataclass(frozen=True)
class Document:
    """Tables written together: `stem` names the one file of a workbook or JSON document, `head` leads the
    JSON document and `items` is its key listing the tables."""

    stem: str
    head: dict
    items: str
    tables: list[Table]

    @property
    def rows(self) -> int:
        return sum(len(table.rows) for table in self.tables)


TableWriter = Callable[..., Iterator[WrittenTable]]  # (document, *, escape_formulas)


def csv_tables(document: Document, *, escape_formulas: bool) -> Iterator[WrittenTable]:
    for table in document.tables:
        frame = neutralise_formulas(table.frame) if escape_formulas else table.frame
        yield f"{table.file_stem}.csv", frame.write_csv().encode(), len(table.rows)


def xlsx_tables(document: Document, *, escape_formulas: bool) -> Iterator[WrittenTable]:
    buffer = io.BytesIO()
    with xlsxwriter.Workbook(buffer, {"strings_to_formulas": False}) as workbook:
        used: set[str] = set()
        for index, table in enumerate(document.tables):
            table.frame.write_excel(workbook, worksheet=_sheet_name(index, table.name, used), autofit=True)
    yield f"{document.stem}.xlsx", buffer.getvalue(), document.rows


def json_tables(document: Document, *, escape_formulas: bool) -> Iterator[WrittenTable]:
    body = {**document.head, document.items: [
        {**table.about, "columns": list(table.columns), "rows": table.rows} for table in document.tables]}
    yield f"{document.stem}.json", json.dumps(body, indent=2, ensure_ascii=False, default=str).encode(), document.rows


def _sheet_name(index: int, name: str, used: set[str]) -> str:
    """Excel sheet names: at most 31 characters, none of []:*?/\\, unique."""
    base = re.sub(r"[\[\]:*?/\\]", " ", name).strip()[:26] or "Insight"
    candidate = base if base not in used else f"{base[:22]} ({index + 1})"
    used.add(candidate)
    return candidate
