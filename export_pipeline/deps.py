"""The app's shared connections, built once per process from settings: what every domain talks to.

Domain stores (exports, insights, subscriptions) are built from `engine` by the code that needs them."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from export_pipeline.accounts.roles import RoleSource, role_source
from export_pipeline.clickhouse.connection import ClickHouse
from export_pipeline.db import get_engine
from export_pipeline.settings import Settings
from export_pipeline.storage import ExportStorage, storage_from_url


@dataclass(frozen=True)
class AppDeps:
    settings: Settings
    engine: Engine  # the app database
    clickhouse: ClickHouse
    storage: ExportStorage  # where export files go
    roles: RoleSource

    @classmethod
    def from_settings(
        cls, settings: Settings, *, clickhouse_url: str | None = None, storage_url: str | None = None,
        database_url: str | None = None,
    ) -> AppDeps:
        """URL overrides come from Dagster resources; the rest from settings."""
        engine = get_engine(database_url or settings.database_url)
        return cls(
            settings=settings,
            engine=engine,
            clickhouse=ClickHouse.from_settings(settings, url=clickhouse_url),
            storage=storage_from_url(storage_url or settings.storage_url),
            roles=role_source(settings, engine),
        )
