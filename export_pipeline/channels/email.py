"""Sending an email: SendGrid's v3 `mail/send` when `SENDGRID_API_KEY` is set, else the outbox.

The caller composes the `mail/send` JSON body; this module only moves it. Without a key the very same body is
written to `$EXPORT_PIPELINE_HOME/outbox/<timestamp>-<key>.json` (the embedded default). Network errors, 429 and
5xx are retried with exponential backoff; other 4xx are final. Sending never raises: the outcome says how it
went, so that one email never fails the work that sends it.
"""

from __future__ import annotations

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
class EmailOutcome:
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


class EmailSender:
    """Sends `mail/send` bodies through SendGrid, or to the outbox without a key. Plain Python."""

    def __init__(self, settings: Settings, *, attempts: int = ATTEMPTS, backoff_seconds: float | None = None,
                 timeout_seconds: float = TIMEOUT_SECONDS, sleep: Callable[[float], None] = time.sleep):
        """`backoff_seconds`: the first wait, doubled at each retry (default EXPORT_EMAIL_RETRY_BASE_SECONDS)."""
        self.settings = settings
        base = settings.email_retry_base_seconds if backoff_seconds is None else backoff_seconds
        self.backoff = Backoff(attempts=max(attempts, 1), base_seconds=base, sleep=sleep)
        self.timeout_seconds = timeout_seconds

    def send(self, payload: dict, key: str, *, log: Logger = logger) -> EmailOutcome:
        """Deliver `payload`; `key` names it in logs and in the outbox file name. Never raises for SendGrid,
        network or outbox problems: they are in the outcome."""

        def retrying(attempt: int, failure: Failure, delay: float) -> None:
            log.warning("Email %s: attempt %s of %s failed (%s); retrying in %.1f s.",
                        key, attempt, self.backoff.attempts, failure, delay)

        try:
            where, attempts = self.backoff.run(lambda: self._send_once(payload, key), on_retry=retrying)
        except GaveUp as gave_up:
            return EmailOutcome(attempts=gave_up.attempts, error=str(gave_up.failure))
        return EmailOutcome(attempts=attempts, sent_at=now_utc(), where=where)

    def _send_once(self, payload: dict, key: str) -> str:
        secret = self.settings.sendgrid_api_key
        api_key = secret.get_secret_value().strip() if secret else ""
        if not api_key:
            return f"written to {self._write_outbox(payload, key)}"
        host = self.settings.sendgrid_api_host.rstrip("/")
        import sendgrid  # 8 MB that every process importing this module (every Dagster run) would pay

        client = sendgrid.SendGridAPIClient(api_key=api_key, host=host)
        try:
            response = client.client.mail.send.post(request_body=payload, timeout=self.timeout_seconds)
        except HTTPError as answered:
            status = int(answered.status_code)
            body = answered.body.decode("utf-8", "replace") if isinstance(answered.body, bytes) else str(answered.body)
            raise Failure(
                f"SendGrid ({host}) answered {status} {answered.reason}: {body.strip()[:500]}",
                retryable=status == 429 or status >= 500,
            ) from None
        except (OSError, http.client.HTTPException) as unreachable:  # URLError, timeouts, dropped connections
            raise Failure(f"SendGrid ({host}) unreachable: {unreachable}", retryable=True) from None
        return f"sent through SendGrid ({host}, status {response.status_code})"

    def _write_outbox(self, payload: dict, key: str) -> Path:
        """The payload as `<outbox>/<timestamp>-<key>.json`."""
        outbox = Outbox(self.settings.outbox_dir)
        try:
            return outbox.write_file(f"{now_utc():%Y%m%dT%H%M%S%fZ}-{safe_name(key)}.json", json_bytes(payload))
        except OSError as failed:
            raise Failure(f"writing to the outbox {outbox.root} failed: {failed}", retryable=True) from None
