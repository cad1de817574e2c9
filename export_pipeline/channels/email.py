"""Sending an email: SendGrid's v3 `mail/send` when there is an API key, else the outbox.

Callers describe what they send as an `Email`; `EmailSender` alone knows SendGrid's wire format: it turns the
email into the `mail/send` JSON body and posts it. Without a key the very same body is written to
`<outbox>/<timestamp>-<key>.json` (`$EXPORT_PIPELINE_HOME/outbox`, the embedded default). Network errors, 429
and 5xx are retried with exponential backoff; other 4xx are final. Sending never raises: the outcome says how
it went, so that one email never fails the work that sends it.
"""

from __future__ import annotations

import base64
import http.client
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from python_http_client.exceptions import HTTPError

from export_pipeline.channels.outbox import Outbox, json_bytes, safe_name
from export_pipeline.channels.retry import Backoff, Failure, GaveUp
from export_pipeline.clock import now_utc
from export_pipeline.settings import Settings

logger = logging.getLogger(__name__)

Logger = logging.Logger | logging.LoggerAdapter

ATTEMPTS = 3
TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class InlineImage:
    """A picture the HTML part shows as `<img src="cid:{content_id}">`."""

    content_id: str
    filename: str
    content: bytes
    media_type: str = "image/png"

    @property
    def encoded_bytes(self) -> int:
        """Its size inside the message: base64, 4 characters for every 3 bytes (started)."""
        return 4 * -(-len(self.content) // 3)


@dataclass(frozen=True)
class Email:
    """What one email says, to one recipient; how it travels is the sender's business.

    `keep_links`: links stay as written (SendGrid's click tracking would wrap them, presigned ones included, in a
    redirect). `unsubscribe_url`: the recipient's own one-click unsubscribe link (RFC 2369 + RFC 8058 headers;
    SendGrid's footer, which would unsubscribe from all our mail, is then off). `categories` feed SendGrid's
    statistics and must not be unique ids; ids go in `custom_args`, which come back in SendGrid's events.
    """

    to: str
    subject: str
    text: str
    html: str | None = None
    images: tuple[InlineImage, ...] = ()
    keep_links: bool = False
    unsubscribe_url: str | None = None
    categories: tuple[str, ...] = ()
    custom_args: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class EmailOutcome:
    """How sending went: `sent_at` when delivered (or written to the outbox), else the last `error`."""

    attempts: int
    sent_at: datetime | None = None
    error: str | None = None
    where: str | None = None


class EmailSender:
    """Sends `Email`s through SendGrid, or to the outbox without an API key. Plain Python."""

    def __init__(self, *, from_address: str, from_name: str = "", outbox: Path, api_key: str | None = None,
                 host: str = "https://api.sendgrid.com", retry_base_seconds: float = 0.5, attempts: int = ATTEMPTS,
                 timeout_seconds: float = TIMEOUT_SECONDS, sleep: Callable[[float], None] = time.sleep):
        """`retry_base_seconds`: the first wait, doubled at each retry. A blank `api_key` means the outbox."""
        self._from = {"email": from_address, **({"name": from_name} if from_name else {})}
        self.outbox = Outbox(outbox)
        self._api_key = (api_key or "").strip()
        self.host = host.rstrip("/")
        self.backoff = Backoff(attempts=max(attempts, 1), base_seconds=retry_base_seconds, sleep=sleep)
        self.timeout_seconds = timeout_seconds

    @classmethod
    def from_settings(cls, settings: Settings, *, retry_base_seconds: float | None = None,
                      sleep: Callable[[float], None] = time.sleep) -> EmailSender:
        """`retry_base_seconds` defaults to EXPORT_EMAIL_RETRY_BASE_SECONDS."""
        secret = settings.sendgrid_api_key
        return cls(
            from_address=settings.email_from, from_name=settings.email_from_name, outbox=settings.outbox_dir,
            api_key=secret.get_secret_value() if secret else None, host=settings.sendgrid_api_host,
            retry_base_seconds=settings.email_retry_base_seconds if retry_base_seconds is None else retry_base_seconds,
            sleep=sleep,
        )

    def send(self, email: Email, key: str, *, log: Logger = logger) -> EmailOutcome:
        """Deliver `email`; `key` names it in logs and in the outbox file name. Never raises for SendGrid,
        network or outbox problems: they are in the outcome."""
        payload = self.body(email)

        def retrying(attempt: int, failure: Failure, delay: float) -> None:
            log.warning("Email %s: attempt %s of %s failed (%s); retrying in %.1f s.",
                        key, attempt, self.backoff.attempts, failure, delay)

        try:
            where, attempts = self.backoff.run(lambda: self._send_once(payload, key), on_retry=retrying)
        except GaveUp as gave_up:
            return EmailOutcome(attempts=gave_up.attempts, error=str(gave_up.failure))
        return EmailOutcome(attempts=attempts, sent_at=now_utc(), where=where)

    def body(self, email: Email) -> dict:
        """The SendGrid v3 `mail/send` JSON body of `email` (also what the outbox holds)."""
        content = [{"type": "text/plain", "value": email.text}]
        if email.html is not None:
            content.append({"type": "text/html", "value": email.html})
        payload: dict = {
            "personalizations": [{"to": [{"email": email.to}]}],
            "from": dict(self._from),
            "subject": email.subject,
            "content": content,
        }
        if email.unsubscribe_url:  # mail apps show an unsubscribe button that POSTs to the link, no login
            payload["headers"] = {"List-Unsubscribe": f"<{email.unsubscribe_url}>",
                                  "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
        if email.categories:
            payload["categories"] = list(email.categories)
        if email.custom_args:
            payload["custom_args"] = dict(email.custom_args)
        tracking: dict = {}
        if email.keep_links:
            tracking["click_tracking"] = {"enable": False, "enable_text": False}
        if email.unsubscribe_url:
            tracking["subscription_tracking"] = {"enable": False}
        if tracking:
            payload["tracking_settings"] = tracking
        if email.images:  # SendGrid refuses an empty attachments list
            payload["attachments"] = [
                {"content": base64.b64encode(image.content).decode("ascii"), "type": image.media_type,
                 "filename": image.filename, "disposition": "inline", "content_id": image.content_id}
                for image in email.images
            ]
        return payload

    def _send_once(self, payload: dict, key: str) -> str:
        if not self._api_key:
            return f"written to {self._write_outbox(payload, key)}"
        import sendgrid  # 8 MB that every process importing this module (every Dagster run) would pay

        client = sendgrid.SendGridAPIClient(api_key=self._api_key, host=self.host)
        try:
            response = client.client.mail.send.post(request_body=payload, timeout=self.timeout_seconds)
        except HTTPError as answered:
            status = int(answered.status_code)
            body = answered.body.decode("utf-8", "replace") if isinstance(answered.body, bytes) else str(answered.body)
            raise Failure(
                f"SendGrid ({self.host}) answered {status} {answered.reason}: {body.strip()[:500]}",
                retryable=status == 429 or status >= 500,
            ) from None
        except (OSError, http.client.HTTPException) as unreachable:  # URLError, timeouts, dropped connections
            raise Failure(f"SendGrid ({self.host}) unreachable: {unreachable}", retryable=True) from None
        return f"sent through SendGrid ({self.host}, status {response.status_code})"

    def _write_outbox(self, payload: dict, key: str) -> Path:
        """The payload as `<outbox>/<timestamp>-<key>.json`."""
        try:
            return self.outbox.write_file(f"{now_utc():%Y%m%dT%H%M%S%fZ}-{safe_name(key)}.json", json_bytes(payload))
        except OSError as failed:
            raise Failure(f"writing to the outbox {self.outbox.root} failed: {failed}", retryable=True) from None
