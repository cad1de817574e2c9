"""Files of an insight or dashboard export: a PNG of its page, or its computed table(s) as CSV, XLSX (a
sheet per tile) or JSON.

These are small (aggregates, not raw events), so each file is built in memory and stored in one atomic put;
the manifest and retry rules are those of every export. A PNG is the embed page drawn by a Chromium started
for it and stopped once it is drawn; a dashboard tile that cannot be computed is drawn as an error tile, an
insight that cannot be computed fails the export.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime

from export_pipeline.clock import iso_utc, now_utc
from export_pipeline.embed.images import default_width, render_view_once
from export_pipeline.embed.page import compute_view
from export_pipeline.engine.resources import Resource
from export_pipeline.engine.serialize import WrittenFile
from export_pipeline.engine.tables import Document, Table
from export_pipeline.errors import ExportPipelineError
from export_pipeline.exports.requests import ExportRequest
from export_pipeline.insights.queries import InsightResult, compute
from export_pipeline.insights.store import Insight, InsightStore, file_slug


def write_insight_files(request: ExportRequest, deps, *, log: logging.Logger | logging.LoggerAdapter) -> list[WrittenFile]:
    spec = request.spec
    store = InsightStore(deps.store.engine)
    if spec.format.image:
        return [_store(request, deps, *_png(request, deps, store, log))]
    if spec.resource is Resource.INSIGHT:
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

    assert spec.format.table_writer is not None  # parse_spec allows these resources only image and table formats
    files = spec.format.table_writer(_document(spec.resource, title, tables, as_of),
                                     escape_formulas=deps.settings.csv_escape_formulas)
    return [_store(request, deps, name, data, rows) for name, data, rows in files]


def _document(resource: Resource, title: str, tables: list[tuple[Insight, InsightResult]], as_of: datetime) -> Document:
    """The computed tables as files: an insight's table is `insight.<ext>`; a dashboard's tiles are one
    workbook or JSON document, or a CSV file per tile. JSON names the range each insight was computed for (a
    relative one as resolved as of `as_of`)."""
    def file_stem(index: int, insight: Insight) -> str:
        return resource.value if resource is Resource.INSIGHT else f"tile-{index + 1:02d}-{file_slug(insight.name)}"

    return Document(
        stem=resource.value,
        head={"resource": resource.value, "name": title,
              "computed_at": iso_utc(as_of)},
        items="insights",
        tables=[Table(name=insight.name, file_stem=file_stem(index, insight), about=_about(insight, as_of),
                      columns=tuple(result.columns), rows=[list(row) for row in result.rows])
                for index, (insight, result) in enumerate(tables)],
    )


def _about(insight: Insight, as_of: datetime) -> dict:
    period = insight.query.period(as_of)
    return {"insight": insight.to_json(), "date_from": iso_utc(period.start), "date_to": iso_utc(period.end)}


def _store(request: ExportRequest, deps, name: str, data: bytes, rows: int) -> WrittenFile:
    key = f"{request.storage_prefix}/{name}"
    deps.storage.put_bytes(key, data, content_type=request.spec.format.content_type,
                           tags={"export-pipeline-export-id": request.id})
    return WrittenFile(name, key, rows, len(data), hashlib.sha256(data).hexdigest())


def _png(request: ExportRequest, deps, store: InsightStore, log) -> tuple[str, bytes, int]:
    spec = request.spec
    with deps.clickhouse.session(f"export {request.id}") as session:
        view = compute_view(session, deps.table, store, spec.project_id, spec.resource, spec.target_id)  # type: ignore[arg-type]
    failed = [tile for tile in view.tiles if tile.error]
    if spec.resource is Resource.INSIGHT and failed:
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
