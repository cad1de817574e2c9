"""What an export talks to, built from the app's connections."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from export_pipeline.accounts.roles import RoleSource
from export_pipeline.clickhouse.connection import ClickHouse
from export_pipeline.clickhouse.schema import EventsTable
from export_pipeline.deps import AppDeps
from export_pipeline.exports.store import ExportStore
from export_pipeline.settings import Settings
from export_pipeline.storage import ExportStorage


@dataclass(frozen=True)
class ExportDeps:
    """What an export talks to: the app's connections plus the export requests and the events table."""

    settings: Settings
    clickhouse: ClickHouse
    storage: ExportStorage
    store: ExportStore
    table: EventsTable
    roles: RoleSource

    @classmethod
    def of(cls, app: AppDeps) -> ExportDeps:
        return cls(
            settings=app.settings, clickhouse=app.clickhouse, storage=app.storage, store=ExportStore(app.engine),
            table=EventsTable.from_settings(app.settings), roles=app.roles,
        )

    @property
    def engine(self) -> Engine:
        return self.store.engine


def build_deps(settings: Settings, *, clickhouse_url: str | None = None, storage_url: str | None = None,
               database_url: str | None = None) -> ExportDeps:
    return ExportDeps.of(AppDeps.from_settings(
        settings, clickhouse_url=clickhouse_url, storage_url=storage_url, database_url=database_url))
