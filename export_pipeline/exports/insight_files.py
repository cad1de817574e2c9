"""Files of an insight or dashboard export: a PNG of its page, or its computed table(s) as CSV, XLSX (a
sheet per tile) or JSON.

These are small (aggregates, not raw events), so each file is built in memory and stored in one atomic put;
the manifest and retry rules are those of every export. A PNG is the embed page drawn by a Chromium started
for it and stopped once it is drawn; a dashboard tile that cannot be computed is drawn as an error tile, an
insight that cannot be computed fails the export.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
from datetime import datetime

import polars as pl
import xlsxwriter

from export_pipeline.clock import iso_utc, now_utc
from export_pipeline.embed.images import default_width, render_view_once
from export_pipeline.embed.page import compute_view
from export_pipeline.engine.serialize import CONTENT_TYPES, WrittenFile, neutralise_formulas
from export_pipeline.engine.spec import ExportFormat
from export_pipeline.errors import ExportPipelineError
from export_pipeline.exports.requests import ExportRequest
from export_pipeline.insights.queries import InsightResult, compute
from export_pipeline.insights.store import Insight, InsightStore, file_slug


def write_insight_files(request: ExportRequest, deps, *, log: logging.Logger | logging.LoggerAdapter) -> list[WrittenFile]:
    spec = request.spec
    store = InsightStore(deps.store.engine)
    if spec.format is ExportFormat.PNG:
        return [_store(request, deps, *_png(request, deps, store, log))]
    if spec.resource == "insight":
        insights = [store.insight(spec.project_id, spec.target_id)]  # type: ignore[arg-type]
        title = insights[0].name
    else:
        dashboard = store.dashboard(spec.project_id, spec.target_id)  # type: ignore[arg-type]
        insights = [store.insight(spec.project_id, tile.insight_id) for tile in dashboard.tiles]
        title = dashboard.name
    as_of = now_utc()  # one moment for every tile: relative date ranges resolve alike
    with deps.clickhouse.session(f"export {request.id}") as session:
        tables = [(insight, compute(session, deps.table, spec.project_id, insight.query, as_of=as_of))
                  for insight in insights]
    log.info("Computed %s insight(s) of %s %s %r.", len(tables), spec.resource, spec.target_id, title)

    files = _render(spec.resource, title, tables, spec.format, as_of,
                    escape_formulas=deps.settings.csv_escape_formulas)
    return [_store(request, deps, name, data, rows) for name, data, rows in files]


def _store(request: ExportRequest, deps, name: str, data: bytes, rows: int) -> WrittenFile:
    key = f"{request.storage_prefix}/{name}"
    deps.storage.put_bytes(key, data, content_type=CONTENT_TYPES[request.spec.format],
                           tags={"export-pipeline-export-id": request.id})
    return WrittenFile(name, key, rows, len(data), hashlib.sha256(data).hexdigest())


def _png(request: ExportRequest, deps, store: InsightStore, log) -> tuple[str, bytes, int]:
    spec = request.spec
    with deps.clickhouse.session(f"export {request.id}") as session:
        view = compute_view(session, deps.table, store, spec.project_id, spec.resource, spec.target_id)  # type: ignore[arg-type]
    failed = [tile for tile in view.tiles if tile.error]
    if spec.resource == "insight" and failed:
        raise InsightNotComputed(f"Insight {spec.target_id} ({view.title!r}): {failed[0].error}",
                                 hint="Fix the insight's definition or retry later, then export again.")
    for tile in failed:
        log.warning("Tile %r is drawn as an error: %s", tile.title, tile.error)
    width = spec.width or default_width(spec.resource)
    item = f"{spec.resource} {spec.target_id} {view.title!r}"
    png = render_view_once(view, deps.settings, width=width, item=item)
    log.info("Rendered %s at %s px wide: %s tile(s), %s bytes.", item, width, len(view.tiles), len(png))
    return f"{spec.resource}.png", png, sum(len(tile.rows) for tile in view.tiles)


class InsightNotComputed(ExportPipelineError):
    code = "insight_failed"


def _frame(result: InsightResult) -> pl.DataFrame:
    return pl.DataFrame([list(row) for row in result.rows], schema=list(result.columns), orient="row")


def _render(resource: str, title: str, tables: list[tuple[Insight, InsightResult]], fmt: ExportFormat,
            as_of: datetime, *, escape_formulas: bool):
    """(file name, bytes, rows) for each file of the export. CSV text that a spreadsheet would evaluate is
    neutralised unless `escape_formulas` is off; XLSX text is always a string cell, never a formula. JSON names
    the range each insight was computed for (a relative one as resolved as of `as_of`)."""
    if fmt is ExportFormat.JSON:
        document = {
            "resource": resource,
            "name": title,
            "computed_at": iso_utc(as_of),
            "insights": [_insight_json(insight, result, as_of) for insight, result in tables],
        }
        yield f"{resource}.json", json.dumps(document, indent=2, ensure_ascii=False, default=str).encode(), \
            sum(len(result.rows) for _, result in tables)
    elif fmt is ExportFormat.CSV:
        for index, (insight, result) in enumerate(tables):
            name = f"{resource}.csv" if resource == "insight" else f"tile-{index + 1:02d}-{file_slug(insight.name)}.csv"
            frame = neutralise_formulas(_frame(result)) if escape_formulas else _frame(result)
            yield name, frame.write_csv().encode(), len(result.rows)
    else:
        buffer = io.BytesIO()
        with xlsxwriter.Workbook(buffer, {"strings_to_formulas": False}) as workbook:
            used: set[str] = set()
            for index, (insight, result) in enumerate(tables):
                _frame(result).write_excel(workbook, worksheet=_sheet_name(index, insight.name, used), autofit=True)
        yield f"{resource}.xlsx", buffer.getvalue(), sum(len(result.rows) for _, result in tables)


def _insight_json(insight: Insight, result: InsightResult, as_of: datetime) -> dict:
    period = insight.query.period(as_of)
    return {"insight": insight.to_json(), "date_from": iso_utc(period.start), "date_to": iso_utc(period.end),
            "columns": list(result.columns), "rows": [list(row) for row in result.rows]}


def _sheet_name(index: int, name: str, used: set[str]) -> str:
    """Excel sheet names: at most 31 characters, none of []:*?/\\, unique."""
    base = re.sub(r"[\[\]:*?/\\]", " ", name).strip()[:26] or "Insight"
    candidate = base if base not in used else f"{base[:22]} ({index + 1})"
    used.add(candidate)
    return candidate
