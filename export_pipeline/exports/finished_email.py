"""The email sent when an export finishes: its download links and their expiry, or why it failed.

Composed as a `channels.email.Email` and sent by `EmailSender` (SendGrid, or the outbox without a key;
retried); whatever happens, sending never raises: an email must not fail an export. The outcome is recorded on
the request (`notified_to`, `notified_at`, `notify_error`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

from export_pipeline.accounts.emails import recipient_for
from export_pipeline.channels.email import Email, EmailOutcome, EmailSender, Logger
from export_pipeline.channels.email_html import ALERT, MUTED, NOTICE, html_email, link, paragraph, table
from export_pipeline.exports.deps import ExportDeps
from export_pipeline.exports.download_links import links_expire_at, signed_file_link
from export_pipeline.exports.manifest import MANIFEST_NAME
from export_pipeline.exports.requests import ExportRequest, ExportState
from export_pipeline.settings import Settings

logger = logging.getLogger(__name__)

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


class ExportMailer:
    """Composes and sends the finished-export email. Plain Python; `run_export` calls it once per outcome."""

    def __init__(self, settings: Settings, *, sender: EmailSender | None = None):
        self.settings = settings
        self.sender = sender or EmailSender.from_settings(settings)

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
            sent = self.sender.send(self.compose(request, deps, recipient.email), request.id, log=log)
        except Exception as exc:  # composing failed, e.g. an unreadable manifest
            log.exception("Export %s: the email to %s could not be prepared.", request.id, recipient.email)
            sent = EmailOutcome(attempts=0, error=f"{type(exc).__name__}: {exc}"[:2000])
        if sent.sent_at:
            log.info("Export %s: email to %s (%s address) %s.", request.id, recipient.email, recipient.source,
                     sent.where)
        else:
            log.error(
                "Export %s: email to %s not sent after %s attempt(s): %s. The export itself is unaffected.",
                request.id, recipient.email, sent.attempts, sent.error,
            )
        try:
            deps.store.record_notification(
                request.id, to=recipient.email, sent_at=sent.sent_at, error=sent.error
            )
        except Exception:
            log.exception("Export %s: recording the email outcome failed.", request.id)

    # ---------------------------------------------------------------------------------------- compose

    def compose(self, request: ExportRequest, deps: ExportDeps, to: str) -> Email:
        if request.state is ExportState.SUCCEEDED:
            subject, text, html = self._ready(request, deps)
        else:
            subject, text, html = self._failed(request)
        return Email(to=to, subject=subject, text=text, html=html, keep_links=True,  # presigned links stay intact
                     custom_args=(("export_id", request.id), ("project_id", str(request.spec.project_id))))

    def download_link(self, request: ExportRequest, deps: ExportDeps, name: str) -> str:
        """A link a mail app opens as it is: presigned by S3, or signed by us for a local folder."""
        return signed_file_link(deps.storage, self.settings, request, name)

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
        contents = (f"{request.row_count:,} {spec.resource.noun} in "
                    f"{len(files)} file{'' if len(files) == 1 else 's'} ({kind}).")
        summary = f"Your export {request.id} of project {spec.project_id} is ready: {contents}"
        links_expire = email_time(links_expire_at(deps.storage, self.settings, request))
        expiry = (f"The links expire at {expires} (UTC); the files are deleted then." if links_expire == expires
                  else f"The links expire at {links_expire} (UTC); the files are deleted at {expires} (UTC).")
        filters = describe_filters(request)
        subject = f"Your export {request.id} of project {spec.project_id} is ready"

        lines = [f"Hello {spec.requested_by},", "", summary, "", "Files:"]
        for f in files:
            lines += [f"- {f.name}: {size_text(f.bytes)}, {f.rows:,} rows", f"  {f.url}"]
        lines += ["", "Manifest (every file's rows, size and SHA-256):", f"  {manifest_url}", "", expiry]
        lines += ["", f"Filters: {filters}.", "", "-- ", self.settings.email_from_name or "Export pipeline", ""]
        text = "\n".join(lines)

        rows = [[link(f.url, f.name), escape(size_text(f.bytes)), f"{f.rows:,}"] for f in files]
        html = html_email(subject, (
            paragraph(f"Hello {escape(spec.requested_by)},")
            + paragraph(escape(contents))  # the heading already says which export is ready
            + table(["File", "Size", "Rows"], rows)
            + paragraph(f"{link(manifest_url, 'Manifest')} (every file's rows, size and SHA-256).")
            + paragraph(f"<strong>{escape(expiry)}</strong>", NOTICE)
            + paragraph(f"Filters: {escape(filters)}.", MUTED)
        ))
        return subject, text, html

    def _failed(self, request: ExportRequest) -> tuple[str, str, str]:
        spec = request.spec
        failed_at = email_time(request.finished_at)
        when = f"({spec.format.value}, {spec.compression.value}) failed at {failed_at} (UTC)."
        summary = f"Your export {request.id} of project {spec.project_id} {when}"
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
        html = html_email(subject, (
            paragraph(f"Hello {escape(spec.requested_by)},")
            + paragraph(escape(f"The export {when}"))
            + paragraph(f"<strong>Reason:</strong> {escape(reason)}", ALERT)
            + paragraph(f"{escape(no_files)} <strong>What to do:</strong> {escape(hint)}")
            + paragraph(f"Filters: {escape(filters)}.", MUTED)
        ))
        return subject, text, html


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
    """`all time, all events` or e.g. `2026-01-01T00:00:00Z to 2026-02-01T00:00:00Z (exclusive), events: a, b`;
    other resources list their filters after the period."""
    filters = request.spec.filters()
    start, end = filters.get("date_from"), filters.get("date_to")
    if start and end:
        period = f"{start} to {end} (exclusive)"
    elif start:
        period = f"from {start}"
    elif end:
        period = f"before {end}"
    else:
        period = "all time"
    if "events" not in request.spec.resource.takes:
        others = {k: v for k, v in filters.items() if k not in ("date_from", "date_to") and v not in (None, [])}
        return ", ".join([period, *(f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in others.items())])
    events = f"events: {', '.join(request.spec.events)}" if request.spec.events else "all events"
    return f"{period}, {events}"
