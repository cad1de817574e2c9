"""Dagster resources. Each holds only a URL (from an environment variable when it is set, so secrets show
in the UI as `CLICKHOUSE_URL`, never as their value) and builds the plain client objects."""

from __future__ import annotations

import os

import dagster as dg
from sqlalchemy.engine import Engine

from export_pipeline.clickhouse.connection import ClickHouse
from export_pipeline.db import get_engine
from export_pipeline.exports.deps import ExportDeps, build_deps
from export_pipeline.exports.requests import ExportStore
from export_pipeline.settings import Settings
from export_pipeline.storage import ExportStorage, storage_from_url


def env_or_default(name: str, default: str) -> str | dg.EnvVar:
    """`EnvVar(name)` when the variable is set (resolved at run time, hidden in the UI), else the default."""
    return dg.EnvVar(name) if os.environ.get(name) else default


class ClickHouseResource(dg.ConfigurableResource):
    """ClickHouse: `chdb:///path` (embedded) or `http(s)://user:pass@host:port/db`."""

    url: str

    def get(self) -> ClickHouse:
        return ClickHouse.from_settings(Settings(), url=self.url)


class ExportStorageResource(dg.ConfigurableResource):
    """Where export files go: `file:///path` or `s3://bucket/prefix`."""

    url: str

    def get(self) -> ExportStorage:
        return storage_from_url(self.url)


class AppDatabaseResource(dg.ConfigurableResource):
    """The application database (members, export requests): SQLite or Postgres URL."""

    url: str

    def engine(self) -> Engine:
        return get_engine(self.url)

    def export_store(self) -> ExportStore:
        return ExportStore(self.engine())


def export_deps(clickhouse: ClickHouseResource, storage: ExportStorageResource, app_db: AppDatabaseResource) -> ExportDeps:
    return build_deps(Settings(), clickhouse_url=clickhouse.url, storage_url=storage.url, database_url=app_db.url)


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    return {
        "clickhouse": ClickHouseResource(url=env_or_default("CLICKHOUSE_URL", settings.clickhouse_url)),
        "export_storage": ExportStorageResource(url=env_or_default("EXPORT_STORAGE_URL", settings.storage_url)),
        "app_db": AppDatabaseResource(url=env_or_default("EXPORT_PIPELINE_DATABASE_URL", settings.database_url)),
    }
