"""Dagster resources: one per external system, plus the knobs the ops read.

Each shows its configuration in the UI. Secrets are only ever `EnvVar`s (resolved when a run starts, shown as
the variable's name, never as its value); a secret left unset here is read from the environment or `.env` by
`Settings`, as outside Dagster. An op turns the resources it takes into one `Settings` (`run_settings`) and
builds the plain objects from that, so the domain code never learns about Dagster.
"""

from __future__ import annotations

import json
import os
from typing import ClassVar, Protocol

import dagster as dg
from pydantic import PrivateAttr
from sqlalchemy.engine import Engine

from export_pipeline.db import get_engine
from export_pipeline.exports.store import ExportStore
from export_pipeline.render.browser import PngRenderer
from export_pipeline.settings import Settings
from export_pipeline.storage import ExportStorage, storage_from_url


def env_or_default(name: str, default: str) -> str | dg.EnvVar:
    """`EnvVar(name)` when the variable is set (resolved at run time, hidden in the UI), else the default."""
    return dg.EnvVar(name) if os.environ.get(name) else default


def env_if_set(name: str) -> dg.EnvVar | None:
    """`EnvVar(name)` when the variable is set, else None (the setting's own default then applies)."""
    return dg.EnvVar(name) if os.environ.get(name) else None


class SettingsPart(Protocol):
    def settings_fields(self) -> dict[str, object]:
        """The `Settings` fields this resource decides, by field name."""
        ...


class _UrlResource(dg.ConfigurableResource):
    """A system reached by one URL, which decides the `Settings` field named by `setting`."""

    url: str
    setting: ClassVar[str]

    def settings_fields(self) -> dict[str, object]:
        return {self.setting: self.url}


class ClickHouseResource(_UrlResource):
    """ClickHouse: `chdb:///path` (embedded) or `http(s)://user:pass@host:port/db`."""

    setting = "clickhouse_url_setting"


class ExportStorageResource(_UrlResource):
    """Where export files go: `file:///path` or `s3://bucket/prefix`."""

    setting = "storage_url_setting"

    def get(self) -> ExportStorage:
        return storage_from_url(self.url)


class AppDatabaseResource(_UrlResource):
    """The application database (members, export requests, subscriptions): SQLite or Postgres URL."""

    setting = "database_url_setting"

    def engine(self) -> Engine:
        return get_engine(self.url)

    def export_store(self) -> ExportStore:
        return ExportStore(self.engine())


class SendGridResource(dg.ConfigurableResource):
    """Email through SendGrid's v3 API. Without a key (here or in the environment), emails are written to the
    outbox folder instead."""

    api_key: str | None = None
    api_host: str

    def settings_fields(self) -> dict[str, object]:
        return {"sendgrid_api_host": self.api_host, **({"sendgrid_api_key": self.api_key} if self.api_key else {})}


class SlackResource(dg.ConfigurableResource):
    """Slack's Web API. `bot_tokens` is a JSON object, one bot token per workspace; a workspace without one
    delivers to the outbox folder."""

    bot_tokens: str | None = None
    api_url: str

    def settings_fields(self) -> dict[str, object]:
        return {"slack_api_url": self.api_url, **({"slack_bot_tokens": json.loads(self.bot_tokens)} if self.bot_tokens else {})}


class ChromiumResource(dg.ConfigurableResource):
    """Debian's Chromium, which draws PNGs of insights and dashboards. One renderer per run: Chromium starts
    on the first render and stops when the run's resources are torn down."""

    executable: str
    concurrency: int
    timeout_seconds: float
    _renderer: PngRenderer | None = PrivateAttr(default=None)

    def renderer(self) -> PngRenderer:
        if self._renderer is None:
            self._renderer = PngRenderer(executable_path=self.executable, max_concurrency=self.concurrency,
                                         timeout_seconds=self.timeout_seconds)
        return self._renderer

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def settings_fields(self) -> dict[str, object]:
        return {"chromium_executable": self.executable, "render_concurrency": self.concurrency,
                "render_timeout_seconds": self.timeout_seconds}


class ServicePingCollectorResource(dg.ConfigurableResource):
    """Where the weekly usage payload is posted; unset, it is only stored."""

    url: str | None = None


class AppSettingsResource(dg.ConfigurableResource):
    """What the ops read besides the external systems."""

    ttl_hours: int
    delivery_stale_minutes: int
    export_stale_after_seconds: float = 120.0

    def settings_fields(self) -> dict[str, object]:
        return {"ttl_hours": self.ttl_hours, "delivery_stale_minutes": self.delivery_stale_minutes}


def run_settings(*parts: SettingsPart) -> Settings:
    """The settings of this run: the environment's, with what each resource decides in their place."""
    fields: dict[str, object] = {}
    for part in parts:
        fields |= part.settings_fields()
    return Settings(**{Settings.model_fields[name].alias: value for name, value in fields.items()})


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    return {
        "clickhouse": ClickHouseResource(url=env_or_default("CLICKHOUSE_URL", settings.clickhouse_url)),
        "export_storage": ExportStorageResource(url=env_or_default("EXPORT_STORAGE_URL", settings.storage_url)),
        "app_db": AppDatabaseResource(url=env_or_default("EXPORT_PIPELINE_DATABASE_URL", settings.database_url)),
        "sendgrid": SendGridResource(api_key=env_if_set("SENDGRID_API_KEY"), api_host=settings.sendgrid_api_host),
        "slack": SlackResource(bot_tokens=env_if_set("SLACK_BOT_TOKENS"), api_url=settings.slack_api_url),
        "chromium": ChromiumResource(executable=settings.chromium_executable, concurrency=settings.render_concurrency,
                                     timeout_seconds=settings.render_timeout_seconds),
        "service_ping_collector": ServicePingCollectorResource(url=env_if_set("SERVICE_PING_URL") or settings.service_ping_url),
        "app_settings": AppSettingsResource(ttl_hours=settings.ttl_hours,
                                            delivery_stale_minutes=settings.delivery_stale_minutes,
                                            export_stale_after_seconds=settings.export_stale_after_seconds),
    }
