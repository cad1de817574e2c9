"""Insights and dashboards of a project, stored in the app database."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy.engine import Engine

from export_pipeline.clock import as_utc, iso_utc, now_utc
from export_pipeline.db import dashboard_tiles, dashboards, delete_rows, insights, project_row
from export_pipeline.errors import InvalidRequest, invalid_fields
from export_pipeline.insights.queries import InsightQuery

QUERY_ADAPTER: TypeAdapter = TypeAdapter(InsightQuery)


def parse_query(raw: object):
    """A validated insight query, or InvalidRequest with one message per field."""
    try:
        return QUERY_ADAPTER.validate_python(raw)
    except PydanticValidationError as error:
        raise invalid_fields(error, "insight query", default="query", details_prefix="query.") from None


@dataclass(frozen=True)
class Insight:
    id: str
    project_id: int
    name: str
    description: str
    query: object
    created_by: str
    created_at: datetime
    updated_at: datetime

    def to_json(self) -> dict:
        return _saved_json(self, query=QUERY_ADAPTER.dump_python(self.query, mode="json"))


class Tile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    insight_id: str = Field(min_length=1, max_length=32)
    width: int = Field(6, ge=1, le=12)
    height: int = Field(4, ge=1, le=12)


@dataclass(frozen=True)
class Dashboard:
    id: str
    project_id: int
    name: str
    description: str
    tiles: list[Tile]
    created_by: str
    created_at: datetime
    updated_at: datetime

    def to_json(self) -> dict:
        return _saved_json(self, tiles=[tile.model_dump() for tile in self.tiles])




def _saved_json(item: Insight | Dashboard, **content: object) -> dict:
    """The JSON of a saved insight or dashboard: its own content between the fields they share."""
    return {
        "id": item.id, "project_id": item.project_id, "name": item.name, "description": item.description,
        **content, "created_by": item.created_by, "created_at": iso_utc(item.created_at),
        "updated_at": iso_utc(item.updated_at),
    }


def file_slug(name: str) -> str:
    """An insight's name as part of a file name: `Weekly sign-ups` -> `weekly-sign-ups`."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "insight"


def _name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 255:
        raise InvalidRequest("A name must be 1 to 255 characters.", details={"name": "must be 1 to 255 characters"})
    return name


def _edited(name: str | None, description: str | None) -> dict:
    """The columns an update of an insight or dashboard sets (None = unchanged)."""
    values: dict = {"updated_at": now_utc()}
    if name is not None:
        values["name"] = _name(name)
    if description is not None:
        values["description"] = description
    return values


class InsightStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    # --- insights -------------------------------------------------------------------------------------

    def create_insight(self, project_id: int, *, name: str, query: object, created_by: str,
                       description: str = "") -> Insight:
        parsed = parse_query(query)
        now = now_utc()
        insight = Insight(secrets.token_hex(8), project_id, _name(name), description, parsed, created_by, now, now)
        with self.engine.begin() as conn:
            conn.execute(sa.insert(insights).values(
                id=insight.id, project_id=project_id, name=insight.name, description=description,
                query=QUERY_ADAPTER.dump_python(parsed, mode="json"), created_by=created_by,
                created_at=now, updated_at=now,
            ))
        return insight

    def insight(self, project_id: int, insight_id: str) -> Insight:
        with self.engine.connect() as conn:
            return _insight(project_row(conn, insights, insight_id, project_id, "Insight"))

    def list_insights(self, project_id: int) -> list[Insight]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(insights).where(insights.c.project_id == project_id)
                                .order_by(insights.c.created_at, insights.c.id)).all()
        return [_insight(row) for row in rows]

    def update_insight(self, project_id: int, insight_id: str, *, name: str | None = None,
                       description: str | None = None, query: object | None = None) -> Insight:
        current = self.insight(project_id, insight_id)
        values = _edited(name, description)
        if query is not None:
            values["query"] = QUERY_ADAPTER.dump_python(parse_query(query), mode="json")
        with self.engine.begin() as conn:
            conn.execute(sa.update(insights).where(insights.c.id == current.id).values(**values))
        return self.insight(project_id, insight_id)

    def delete_insight(self, project_id: int, insight_id: str) -> None:
        self.insight(project_id, insight_id)
        delete_rows(self.engine, insight_id, dashboard_tiles.c.insight_id, insights.c.id)

    # --- dashboards -----------------------------------------------------------------------------------

    def create_dashboard(self, project_id: int, *, name: str, tiles: list[dict | Tile], created_by: str,
                         description: str = "") -> Dashboard:
        checked = self._tiles(project_id, tiles)
        now = now_utc()
        dashboard_id = secrets.token_hex(8)
        with self.engine.begin() as conn:
            conn.execute(sa.insert(dashboards).values(
                id=dashboard_id, project_id=project_id, name=_name(name), description=description,
                created_by=created_by, created_at=now, updated_at=now,
            ))
            self._write_tiles(conn, dashboard_id, checked)
        return self.dashboard(project_id, dashboard_id)

    def dashboard(self, project_id: int, dashboard_id: str) -> Dashboard:
        with self.engine.connect() as conn:
            row = project_row(conn, dashboards, dashboard_id, project_id, "Dashboard")
            tiles = conn.execute(sa.select(dashboard_tiles).where(dashboard_tiles.c.dashboard_id == dashboard_id)
                                 .order_by(dashboard_tiles.c.position)).all()
        return Dashboard(row.id, row.project_id, row.name, row.description,
                         [Tile(insight_id=t.insight_id, width=t.width, height=t.height) for t in tiles],
                         row.created_by, as_utc(row.created_at), as_utc(row.updated_at))  # type: ignore[arg-type]

    def list_dashboards(self, project_id: int) -> list[Dashboard]:
        with self.engine.connect() as conn:
            ids = conn.execute(sa.select(dashboards.c.id).where(dashboards.c.project_id == project_id)
                               .order_by(dashboards.c.created_at, dashboards.c.id)).scalars().all()
        return [self.dashboard(project_id, dashboard_id) for dashboard_id in ids]

    def update_dashboard(self, project_id: int, dashboard_id: str, *, name: str | None = None,
                         description: str | None = None, tiles: list[dict | Tile] | None = None) -> Dashboard:
        self.dashboard(project_id, dashboard_id)
        values = _edited(name, description)
        checked = self._tiles(project_id, tiles) if tiles is not None else None
        with self.engine.begin() as conn:
            conn.execute(sa.update(dashboards).where(dashboards.c.id == dashboard_id).values(**values))
            if checked is not None:
                conn.execute(sa.delete(dashboard_tiles).where(dashboard_tiles.c.dashboard_id == dashboard_id))
                self._write_tiles(conn, dashboard_id, checked)
        return self.dashboard(project_id, dashboard_id)

    def delete_dashboard(self, project_id: int, dashboard_id: str) -> None:
        self.dashboard(project_id, dashboard_id)
        delete_rows(self.engine, dashboard_id, dashboard_tiles.c.dashboard_id, dashboards.c.id)

    def _tiles(self, project_id: int, tiles: list[dict | Tile]) -> list[Tile]:
        checked = []
        for index, tile in enumerate(tiles):
            try:
                checked.append(tile if isinstance(tile, Tile) else Tile.model_validate(tile))
            except PydanticValidationError as error:
                raise InvalidRequest(f"Invalid tile {index}: {error.errors()[0]['msg']}.",
                                     details={f"tiles.{index}": error.errors()[0]["msg"]}) from None
            self.insight(project_id, checked[-1].insight_id)  # tiles only show this project's insights
        return checked

    @staticmethod
    def _write_tiles(conn: sa.Connection, dashboard_id: str, tiles: list[Tile]) -> None:
        if tiles:
            conn.execute(sa.insert(dashboard_tiles), [
                {"dashboard_id": dashboard_id, "position": i, **tile.model_dump()} for i, tile in enumerate(tiles)
            ])


def _insight(row: sa.Row) -> Insight:
    return Insight(row.id, row.project_id, row.name, row.description, QUERY_ADAPTER.validate_python(row.query),
                   row.created_by, as_utc(row.created_at), as_utc(row.updated_at))  # type: ignore[arg-type]
