"""The email sent when an export finishes: its download links and their expiry, or why it failed.

Sent through SendGrid's v3 `mail/send` when `SENDGRID_API_KEY` is set; otherwise the very same JSON payload
is written to `$EXPORT_PIPELINE_HOME/outbox/<timestamp>-<export id>.json` (the embedded default). Network
errors, 429 and 5xx are retried with exponential backoff; whatever happens, sending never raises: an email
must not fail an export. The outcome is recorded on the request (`notified_to`, `notified_at`,
`notify_error`).
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from urllib.parse import quote

import sendgrid
from python_http_client.exceptions import HTTPError

from export_pipeline.accounts.emails import recipient_for
from export_pipeline.clock import now_utc
from export_pipeline.exports.deps import ExportDeps
from export_pipeline.exports.manifest import MANIFEST_NAME
from export_pipeline.exports.requests import ExportRequest, ExportState
from export_pipeline.settings import Settings

logger = logging.getLogger(__name__)

Logger = logging.Logger | logging.LoggerAdapter

ATTEMPTS = 3
TIMEOUT_SECONDS = 10.0
HINTS = {
    "access_denied": "Ask an Owner or Maintainer of project {project} for the Maintainer role, then request the "
    "export again.",
}
DEFAULT_HINT = (
    "Request the export again: temporary problems (an unreachable cluster, a restarted worker) usually go away. "
    "If it fails again, contact a maintainer of the export service and mention export {export_id}."
)


@dataclass(frozen=True)
class FileLink:
    name: str
    rows: int
    bytes: int
    url: str


@dataclass(frozen=True)
class Delivery:
    """How sending went: `sent_at` when delivered (or written to the outbox), else the last `error`."""

    attempts: int
    sent_at: datetime | None = None
    error: str | None = None
    where: str | None = None


def sender(settings: Settings) -> dict[str, str]:
    """The `from` of every email the service sends."""
    found = {"email": settings.email_from}
    if settings.email_from_name:
        found["name"] = settings.email_from_name
    return found


class SendFailed(Exception):
    def __init__(self, message: str, *, retryable: bool):
        super().__init__(message)
        self.retryable = retryable


class ExportMailer:
    """Composes and sends the finished-export email. Plain Python; `run_export` calls it once per outcome."""

    def __init__(
        self,
        settings: Settings,
        *,
        attempts: int = ATTEMPTS,
        backoff_seconds: float | None = None,
        timeout_seconds: float = TIMEOUT_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.settings = settings
        self.attempts = max(attempts, 1)
        self.backoff_seconds = settings.email_retry_base_seconds if backoff_seconds is None else backoff_seconds
        self.timeout_seconds = timeout_seconds
        self.sleep = sleep

    # ------------------------------------------------------------------------------------------ entry

    def send_export_finished(self, request: ExportRequest, deps: ExportDeps, *, log: Logger = logger) -> None:
        """Email the outcome of a succeeded or failed export (nothing for other states). Never raises."""
        if request.state not in (ExportState.SUCCEEDED, ExportState.FAILED):
            return
        try:
            recipient = recipient_for(deps.store.engine, request.spec.requested_by, request.notify_email)
        except Exception:
            log.exception("Export %s: looking up who to email failed; no email sent.", request.id)
            return
        if recipient is None:
            log.warning(
                "Export %s %s; no email sent: the request names no notify_email, user %r has no stored address "
                "(export-pipeline users set-email --user %s --email …) and the user name is not an email address.",
                request.id, request.state.value, request.spec.requested_by, request.spec.requested_by,
            )
            return
        try:
            delivery = self.deliver(self.compose(request, deps, recipient.email), request.id, log=log)
        except Exception as exc:  # composing failed, e.g. an unreadable manifest
            log.exception("Export %s: the email to %s could not be prepared.", request.id, recipient.email)
            delivery = Delivery(attempts=0, error=f"{type(exc).__name__}: {exc}"[:2000])
        if delivery.sent_at:
            log.info("Export %s: email to %s (%s address) %s.", request.id, recipient.email, recipient.source,
                     delivery.where)
        else:
            log.error(
                "Export %s: email to %s not sent after %s attempt(s): %s. The export itself is unaffected.",
                request.id, recipient.email, delivery.attempts, delivery.error,
            )
        try:
            deps.store.record_notification(
                request.id, to=recipient.email, sent_at=delivery.sent_at, error=delivery.error
            )
        except Exception:
            log.exception("Export %s: recording the email outcome failed.", request.id)

    # ---------------------------------------------------------------------------------------- compose

    def compose(self, request: ExportRequest, deps: ExportDeps, to: str) -> dict:
        """The SendGrid v3 `mail/send` body."""
        if request.state is ExportState.SUCCEEDED:
            subject, text, html = self._ready(request, deps)
        else:
            subject, text, html = self._failed(request)
        return {
            "personalizations": [{"to": [{"email": to}]}],
            "from": sender(self.settings),
            "subject": subject,
            "content": [{"type": "text/plain", "value": text}, {"type": "text/html", "value": html}],
            "custom_args": {"export_id": request.id, "project_id": str(request.spec.project_id)},
            # Click tracking would wrap presigned links in a redirect through SendGrid; keep them as they are.
            "tracking_settings": {"click_tracking": {"enable": False, "enable_text": False}},
        }

    def download_link(self, request: ExportRequest, deps: ExportDeps, name: str) -> str:
        """A presigned URL for S3; otherwise the API's download endpoint (local files are served by the API)."""
        if deps.storage.presigns_downloads:
            assert request.expires_at is not None
            return deps.storage.download_url(f"{request.storage_prefix}/{name}", expires_at=request.expires_at)
        base = self.settings.api_base_url.rstrip("/")
        return (
            f"{base}/api/v1/projects/{request.spec.project_id}/exports/{quote(request.id, safe='')}"
            f"/files/{quote(name, safe='')}"
        )

    def file_links(self, request: ExportRequest, deps: ExportDeps) -> list[FileLink]:
        assert request.manifest_key is not None
        manifest = json.loads(deps.storage.read_bytes(request.manifest_key))
        return [
            FileLink(f["name"], f["rows"], f["bytes"], self.download_link(request, deps, f["name"]))
            for f in manifest["files"]
        ]

    def _ready(self, request: ExportRequest, deps: ExportDeps) -> tuple[str, str, str]:
        spec = request.spec
        files = self.file_links(request, deps)
        manifest_url = self.download_link(request, deps, MANIFEST_NAME)
        expires = email_time(request.expires_at)
        kind = f"{spec.format.value}, {spec.compression.value}"
        summary = (
            f"Your export {request.id} of project {spec.project_id} is ready: {request.row_count:,} events in "
            f"{len(files)} file{'' if len(files) == 1 else 's'} ({kind})."
        )
        expiry = f"The links expire at {expires} (UTC); the files are deleted then."
        token_note = (
            None if deps.storage.presigns_downloads
            else "Downloading needs your API token: curl -fLOJ -H 'Authorization: Bearer <token>' <link>"
        )
        filters = describe_filters(request)
        subject = f"Your export {request.id} of project {spec.project_id} is ready"

        lines = [f"Hello {spec.requested_by},", "", summary, "", "Files:"]
        for f in files:
            lines += [f"- {f.name}: {size_text(f.bytes)}, {f.rows:,} rows", f"  {f.url}"]
        lines += ["", "Manifest (every file's rows, size and SHA-256):", f"  {manifest_url}", "", expiry]
        if token_note:
            lines.append(token_note)
        lines += ["", f"Filters: {filters}.", "", "-- ", self.settings.email_from_name or "Export pipeline", ""]
        text = "\n".join(lines)

        items = "".join(
            f'<li><a href="{escape(f.url)}">{escape(f.name)}</a>: {escape(size_text(f.bytes))}, {f.rows:,} rows</li>'
            for f in files
        )
        html = (
            f"<p>Hello {escape(spec.requested_by)},</p>"
            f"<p>{escape(summary)}</p>"
            f"<ul>{items}</ul>"
            f'<p><a href="{escape(manifest_url)}">Manifest</a> (every file\'s rows, size and SHA-256).</p>'
            f"<p><strong>{escape(expiry)}</strong></p>"
            + (f"<p>{escape(token_note)}</p>" if token_note else "")
            + f"<p>Filters: {escape(filters)}.</p>"
        )
        return subject, text, html

    def _failed(self, request: ExportRequest) -> tuple[str, str, str]:
        spec = request.spec
        failed_at = email_time(request.finished_at)
        summary = (
            f"Your export {request.id} of project {spec.project_id} "
            f"({spec.format.value}, {spec.compression.value}) failed at {failed_at} (UTC)."
        )
        reason = f"{request.error or 'Unknown error.'} ({request.error_code or 'export_failed'})"
        hint = HINTS.get(request.error_code or "", DEFAULT_HINT).format(project=spec.project_id, export_id=request.id)
        no_files = "No files were kept."
        filters = describe_filters(request)
        subject = f"Your export {request.id} of project {spec.project_id} failed"
        text = "\n".join([
            f"Hello {spec.requested_by},", "", summary, "", f"Reason: {reason}", "", no_files,
            f"What to do: {hint}", "", f"Filters: {filters}.", "", "-- ",
            self.settings.email_from_name or "Export pipeline", "",
        ])
        html = (
            f"<p>Hello {escape(spec.requested_by)},</p>"
            f"<p>{escape(summary)}</p>"
            f"<p><strong>Reason:</strong> {escape(reason)}</p>"
            f"<p>{escape(no_files)} <strong>What to do:</strong> {escape(hint)}</p>"
            f"<p>Filters: {escape(filters)}.</p>"
        )
        return subject, text, html

    # ---------------------------------------------------------------------------------------- deliver

    def deliver(self, payload: dict, export_id: str, *, log: Logger = logger) -> Delivery:
        """Send with retries (network errors, 429, 5xx); other 4xx are final. Never raises SendFailed."""
        error = ""
        for attempt in range(1, self.attempts + 1):
            try:
                where = self._send_once(payload, export_id)
                return Delivery(attempts=attempt, sent_at=now_utc(), where=where)
            except SendFailed as failed:
                error = str(failed)
                if not failed.retryable or attempt == self.attempts:
                    return Delivery(attempts=attempt, error=error)
            delay = self.backoff_seconds * 2 ** (attempt - 1)
            log.warning("Export %s: email attempt %s of %s failed (%s); retrying in %.1f s.",
                        export_id, attempt, self.attempts, error, delay)
            self.sleep(delay)
        return Delivery(attempts=self.attempts, error=error)  # not reached

    def _send_once(self, payload: dict, export_id: str) -> str:
        key = self.settings.sendgrid_api_key.get_secret_value().strip() if self.settings.sendgrid_api_key else ""
        if not key:
            return f"written to {self.write_outbox(payload, export_id)}"
        host = self.settings.sendgrid_api_host.rstrip("/")
        client = sendgrid.SendGridAPIClient(api_key=key, host=host)
        try:
            response = client.client.mail.send.post(request_body=payload, timeout=self.timeout_seconds)
        except HTTPError as answered:
            status = int(answered.status_code)
            body = answered.body.decode("utf-8", "replace") if isinstance(answered.body, bytes) else str(answered.body)
            raise SendFailed(
                f"SendGrid ({host}) answered {status} {answered.reason}: {body.strip()[:500]}",
                retryable=status == 429 or status >= 500,
            ) from None
        except (OSError, http.client.HTTPException) as unreachable:  # URLError, timeouts, dropped connections
            raise SendFailed(f"SendGrid ({host}) unreachable: {unreachable}", retryable=True) from None
        return f"sent through SendGrid ({host}, status {response.status_code})"

    def write_outbox(self, payload: dict, export_id: str) -> Path:
        """The payload as `<outbox>/<timestamp>-<export id>.json`, written atomically (temp file, rename)."""
        folder = self.settings.outbox_dir
        try:
            folder.mkdir(parents=True, exist_ok=True)
            safe_id = re.sub(r"[^A-Za-z0-9._-]", "_", export_id)
            path = folder / f"{now_utc():%Y%m%dT%H%M%S%fZ}-{safe_id}.json"
            descriptor, temp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".partial")
            try:
                with os.fdopen(descriptor, "w", encoding="utf-8") as out:
                    json.dump(payload, out, indent=2, ensure_ascii=False)
                    out.write("\n")
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(temp, path)
            except BaseException:
                Path(temp).unlink(missing_ok=True)
                raise
        except OSError as failed:
            raise SendFailed(f"writing to the outbox {folder} failed: {failed}", retryable=True) from None
        return path


def email_time(moment: datetime | None) -> str:
    """UTC ISO 8601 to the second, rounded down (a link never outlives the time we state)."""
    if moment is None:
        return "unknown"
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def size_text(size: int) -> str:
    """`512 bytes`, or `1.2 MB (1,234,567 bytes)`: readable, and exact for checking a download."""
    if size < 1000:
        return f"{size} bytes"
    value, unit = size / 1000, "kB"
    for larger in ("MB", "GB", "TB"):
        if value < 999.95:  # what would still print below 1000.0
            break
        value, unit = value / 1000, larger
    return f"{value:.1f} {unit} ({size:,} bytes)"


def describe_filters(request: ExportRequest) -> str:
    """`all time, all events` or e.g. `2026-01-01T00:00:00Z to 2026-02-01T00:00:00Z (exclusive), events: a, b`."""
    filters = request.spec.filters()
    start, end = filters["date_from"], filters["date_to"]
    if start and end:
        period = f"{start} to {end} (exclusive)"
    elif start:
        period = f"from {start}"
    elif end:
        period = f"before {end}"
    else:
        period = "all time"
    events = f"events: {', '.join(request.spec.events)}" if request.spec.events else "all events"
    return f"{period}, {events}"
