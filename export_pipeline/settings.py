"""Configuration from the environment (and `.env`), with embedded defaults under one data folder."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

GIB = 1024**3
MIB = 1024**2
MIN_SECRET_KEY_LENGTH = 32


class Settings(BaseSettings):
    """Every knob of the service. Unset URLs resolve to embedded defaults under `home`."""

    # Only the environment names below are read, never the field names: pydantic-settings matches names
    # case-insensitively, so reading by field name made `$HOME` decide `home` (the data folder).
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    home: Path = Field(Path(".data"), alias="EXPORT_PIPELINE_HOME")
    clickhouse_url_setting: str | None = Field(None, alias="CLICKHOUSE_URL")
    clickhouse_database: str = Field("analytics", alias="CLICKHOUSE_DATABASE")
    clickhouse_events_table: str = Field("events", alias="CLICKHOUSE_EVENTS_TABLE")
    # Maps our column names to the columns of an existing table, e.g. {"created_at": "inserted_at"}.
    clickhouse_events_columns: dict[str, str] = Field(default_factory=dict, alias="CLICKHOUSE_EVENTS_COLUMNS")
    # Renames the other analytics tables (clickhouse/schema.py OTHER_TABLES), e.g. {"persons": "person"}.
    clickhouse_tables: dict[str, str] = Field(default_factory=dict, alias="CLICKHOUSE_TABLES")
    clickhouse_connect_timeout_seconds: float = Field(3.0, alias="CLICKHOUSE_CONNECT_TIMEOUT_SECONDS")
    clickhouse_busy_timeout_seconds: float = Field(60.0, alias="CLICKHOUSE_BUSY_TIMEOUT_SECONDS")
    storage_url_setting: str | None = Field(None, alias="EXPORT_STORAGE_URL")
    database_url_setting: str | None = Field(None, alias="EXPORT_PIPELINE_DATABASE_URL")
    # Session recordings' snapshot blobs (recordings/blobs.py): a local folder or s3://bucket/prefix.
    recordings_storage_url_setting: str | None = Field(None, alias="RECORDINGS_STORAGE_URL")
    ttl_hours: int = Field(168, alias="EXPORT_TTL_HOURS", ge=1, le=24 * 365)
    # S3 allows 10,000 parts per object; at 8 MiB per uploaded part that is ~78 GiB.
    part_size_bytes: int = Field(GIB, alias="EXPORT_PART_SIZE_BYTES", ge=1024, le=64 * GIB)
    # Measured (docs/benchmarks.md): 8 MiB is as fast as 16-64 MiB for the text formats and holds less (1M
    # events, CSV: 599 MB peak against 645 MB with 16 MiB; Parquet 632 against 666 MB, ~5% slower).
    chunk_bytes: int = Field(8 * MIB, alias="EXPORT_CHUNK_BYTES", ge=64 * 1024)
    gzip_level: int = Field(6, alias="EXPORT_GZIP_LEVEL", ge=1, le=9)
    zstd_level: int = Field(3, alias="EXPORT_ZSTD_LEVEL", ge=1, le=19)
    # CSV text cells starting with = + - @ tab or CR get a leading ' (OWASP); off for machine consumers.
    csv_escape_formulas: bool = Field(True, alias="EXPORT_CSV_ESCAPE_FORMULAS")
    # A running export writes a heartbeat this often; the reconciler fails one silent for `stale_after`.
    export_heartbeat_seconds: float = Field(10.0, alias="EXPORT_HEARTBEAT_SECONDS", gt=0)
    export_stale_after_seconds: float = Field(120.0, alias="EXPORT_STALE_AFTER_SECONDS", gt=0)
    api_max_body_bytes: int = Field(MIB, alias="EXPORT_API_MAX_BODY_BYTES", ge=1024)
    api_max_in_flight_exports: int = Field(2, alias="EXPORT_API_MAX_IN_FLIGHT", ge=1)
    # Instance admins (comma-separated user names) may read the Service Ping payload.
    admin_users_setting: str = Field("", alias="EXPORT_ADMIN_USERS")
    service_ping_url: str | None = Field(None, alias="SERVICE_PING_URL")
    role_source: Literal["members", "gitlab"] = Field("members", alias="EXPORT_ROLE_SOURCE")
    gitlab_url: str | None = Field(None, alias="GITLAB_URL")
    gitlab_token: str | None = Field(None, alias="GITLAB_TOKEN")
    gitlab_cache_seconds: float = Field(60.0, alias="GITLAB_ROLE_CACHE_SECONDS", ge=0)
    # Email when an export finishes: SendGrid with a key, else JSON files in $EXPORT_PIPELINE_HOME/outbox.
    sendgrid_api_key: SecretStr | None = Field(None, alias="SENDGRID_API_KEY")
    sendgrid_api_host: str = Field("https://api.sendgrid.com", alias="SENDGRID_API_HOST")
    email_from: str = Field("exports@localhost", alias="EXPORT_EMAIL_FROM")
    email_from_name: str = Field("Export pipeline", alias="EXPORT_EMAIL_FROM_NAME")
    email_retry_base_seconds: float = Field(0.5, alias="EXPORT_EMAIL_RETRY_BASE_SECONDS", ge=0)
    # Where people reach the HTTP API: download links in emails when exports are in a local folder.
    api_base_url: str = Field("http://127.0.0.1:8000", alias="EXPORT_API_BASE_URL")
    # The Dagster webserver whose GraphQL API launches batch export backfills (`launchPartitionBackfill`).
    dagster_url: str = Field("http://127.0.0.1:3000", alias="DAGSTER_WEBSERVER_URL")

    # Images: Debian's Chromium driven by pyppeteer (never downloaded).
    chromium_executable: str = Field("/usr/bin/chromium", alias="CHROMIUM_EXECUTABLE")
    render_concurrency: int = Field(2, alias="EXPORT_RENDER_CONCURRENCY", ge=1, le=16)
    render_timeout_seconds: float = Field(60.0, alias="EXPORT_RENDER_TIMEOUT_SECONDS", gt=0)
    # Embed/share pages: share links work only while sharing is enabled; pages may be framed by these origins.
    sharing_enabled: bool = Field(True, alias="EXPORT_SHARING_ENABLED")
    embed_allowed_origins_setting: str = Field("", alias="EXPORT_EMBED_ALLOWED_ORIGINS")
    # Signs download links of exports in a local folder (storage/signed_links.py). Unset: a random key is created
    # once in the data folder (embedded default); the API and the runs must share it.
    secret_key_setting: SecretStr | None = Field(None, alias="EXPORT_SECRET_KEY")
    # How long a signed download link opens, at most: never past its export's expiry.
    download_link_hours: int = Field(24, alias="EXPORT_DOWNLOAD_LINK_HOURS", ge=1, le=24 * 365)
    # Subscriptions to Slack: one bot token per workspace, e.g. {"acme": "xoxb-…", "community": "xoxb-…"}.
    # A workspace without a token delivers to the outbox folder.
    slack_bot_tokens: dict[str, SecretStr] = Field(default_factory=dict, alias="SLACK_BOT_TOKENS")
    slack_api_url: str = Field("https://slack.com/api/", alias="SLACK_API_URL")
    # A delivery still rendering/delivering after this long belongs to a dead run: it is failed.
    delivery_stale_minutes: int = Field(60, alias="SUBSCRIPTION_DELIVERY_STALE_MINUTES", ge=1)

    @model_validator(mode="before")
    @classmethod
    def _environment_names_only(cls, given: object) -> object:
        """Refuse a field name where its environment name is meant (it would be ignored silently)."""
        if isinstance(given, dict):
            misnamed = sorted(name for name in given if name in cls.model_fields and cls.model_fields[name].alias)
            if misnamed:
                wanted = ", ".join(f"{name} -> {cls.model_fields[name].alias}" for name in misnamed)
                raise ValueError(f"Settings takes environment names, not field names: {wanted}")
        return given

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, home: Path) -> Path:
        return home.expanduser().resolve()

    @field_validator("secret_key_setting")
    @classmethod
    def _long_secret_key(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None and len(key.get_secret_value().strip()) < MIN_SECRET_KEY_LENGTH:
            raise ValueError(f"EXPORT_SECRET_KEY must be at least {MIN_SECRET_KEY_LENGTH} characters: "
                             "generate one with `openssl rand -hex 32`, or unset it to keep a key in the data folder")
        return key

    @cached_property
    def clickhouse_url(self) -> str:
        return self.clickhouse_url_setting or f"chdb://{self.home / 'clickhouse'}"

    @cached_property
    def storage_url(self) -> str:
        return self.storage_url_setting or f"file://{self.home / 'exports'}"

    @property
    def recordings_storage_url(self) -> str:
        return self.recordings_storage_url_setting or f"file://{self.home / 'recordings'}"

    @cached_property
    def database_url(self) -> str:
        return self.database_url_setting or f"sqlite:///{self.home / 'app.db'}"

    @property
    def admin_users(self) -> frozenset[str]:
        return frozenset(name.strip() for name in self.admin_users_setting.split(",") if name.strip())

    @property
    def clickhouse_is_embedded(self) -> bool:
        return self.clickhouse_url.startswith("chdb:")

    @property
    def lock_dir(self) -> Path:
        return self.home / "locks"

    @property
    def outbox_dir(self) -> Path:
        return self.home / "outbox"

    @property
    def embed_allowed_origins(self) -> tuple[str, ...]:
        return tuple(origin.strip() for origin in self.embed_allowed_origins_setting.split(",") if origin.strip())

    @cached_property
    def secret_key(self) -> bytes:
        """The signing key: EXPORT_SECRET_KEY, else one created once under `home` (readable by its owner only)."""
        if self.secret_key_setting is not None:
            return self.secret_key_setting.get_secret_value().strip().encode()
        path = self.home / "secret.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            draft = path.with_name(f".secret.key.{os.getpid()}.{secrets.token_hex(4)}")  # one per caller
            with os.fdopen(os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as file:
                file.write(secrets.token_hex(32))
            with contextlib.suppress(FileExistsError):  # another process linked its key first: use theirs
                os.link(draft, path)  # atomic: nobody ever reads a half-written key
            draft.unlink()
        return path.read_text().strip().encode()


def redact_url(url: str) -> str:
    """The URL with any password replaced, safe to show in logs, errors and the UI."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def scrub_secret(text: str, url: str) -> str:
    """Remove the URL's password from arbitrary text (driver messages sometimes echo the DSN)."""
    password = urlsplit(url).password
    return re.sub(re.escape(password), "***", text) if password else text
