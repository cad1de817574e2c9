"""One `EmailSender`, built from plain values, serves every domain the same way: a finished export's email and
a subscription's report go out as the same kind of SendGrid request (key, `from`, retries) or the same kind
of outbox file. And exactly how an `Email` becomes SendGrid's v3 `mail/send` body."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from export_pipeline.channels.email import Email, EmailSender, InlineImage
from export_pipeline.engine.spec import parse_spec
from export_pipeline.exports.deps import ExportDeps
from export_pipeline.exports.finished_email import ExportMailer
from export_pipeline.exports.requests import ExportRequest
from export_pipeline.settings import Settings
from export_pipeline.subscriptions.mail import ReportMailer
from export_pipeline.subscriptions.report import Report, ReportImage
from export_pipeline_tests.fakes.sendgridapi import FakeSendGrid, fake_sendgrid

LOG = logging.getLogger("test")
KEY = "SG.test-key-sender"
PROJECT = 9402
FROM = {"email": "team@example.com", "name": "Analytics team"}
UNSUBSCRIBE = "https://analytics.example.com/unsubscribe/AbC123"
REPORT = Report(title="Weekly", message=None, link="https://analytics.example.com/shared/x",
                images=[ReportImage(name="tile-01.png", title="Top events", png=b"\x89PNG\r\n\x1a\n\x01")])


@pytest.fixture()
def sendgrid() -> Iterator[FakeSendGrid]:
    with fake_sendgrid(KEY) as fake:
        yield fake


def one_sender(outbox: Path, host: str | None, sleeps: list[float]) -> EmailSender:
    """SendGrid at `host`, or the outbox folder when None."""
    return EmailSender(from_address=FROM["email"], from_name=FROM["name"], outbox=outbox,
                       api_key=KEY if host else None, host=host or "https://api.sendgrid.invalid",
                       retry_base_seconds=0.25, sleep=sleeps.append)


def failed_export(deps: ExportDeps) -> ExportRequest:
    spec = parse_spec(project_id=PROJECT, requested_by="mira", format="csv")
    request = deps.store.create(spec, source="test", notify_email="ops@example.com")
    deps.store.fail(request.id, None, code="analytics_cluster_unavailable", message="The cluster is unreachable.",
                    expires_at=datetime(2030, 1, 1, tzinfo=UTC))
    return deps.store.require(request.id)


def send_both(sender: EmailSender, deps: ExportDeps) -> tuple[ExportRequest, Email, Email]:
    """Each domain sends its email its own way, through the one sender; returns the emails they composed."""
    exports, reports = ExportMailer(deps.settings, sender=sender), ReportMailer(sender)
    request = failed_export(deps)
    exports.send_export_finished(request, deps, log=LOG)
    report_args = {"to": "ana@example.com", "unsubscribe_url": UNSUBSCRIBE, "subscription_id": "sub-1"}
    sent = reports.send(REPORT, key="sub-1-d1-ana", log=LOG, **report_args)
    assert sent.error is None and sent.sent_at is not None
    return request, exports.compose(request, deps, "ops@example.com"), reports.compose(REPORT, **report_args)


def test_the_export_email_and_a_report_go_through_one_sender_alike(deps, sendgrid, tmp_path):
    sendgrid.script = [429, 202, 429, 202]  # each is refused once, then accepted
    sleeps: list[float] = []
    sender = one_sender(tmp_path / "outbox", sendgrid.url, sleeps)

    request, export_email, report_email = send_both(sender, deps)

    export_body, report_body = sender.body(export_email), sender.body(report_email)
    assert sendgrid.received == [export_body, export_body, report_body, report_body]
    assert sendgrid.authorizations == [f"Bearer {KEY}"] * 4
    assert export_body["from"] == report_body["from"] == FROM
    assert sleeps == [0.25, 0.25]  # the same backoff for both
    stored = deps.store.require(request.id)
    assert (stored.notified_to, stored.notify_error) == ("ops@example.com", None) and stored.notified_at
    assert not (tmp_path / "outbox").exists()


def test_without_a_key_both_land_in_the_outbox_as_their_exact_bodies(deps, sendgrid, tmp_path):
    sender = one_sender(tmp_path / "outbox", None, [])

    request, export_email, report_email = send_both(sender, deps)

    written = sorted((tmp_path / "outbox").iterdir())  # timestamped names: in the order sent
    assert [path.name.split("-", 1)[1] for path in written] == [f"{request.id}.json", "sub-1-d1-ana.json"]
    assert all(path.name[:8].isdigit() for path in written)
    for path, email in zip(written, (export_email, report_email), strict=True):
        assert path.read_bytes() == (json.dumps(sender.body(email), indent=2, ensure_ascii=False) + "\n").encode()
    assert sendgrid.received == []


def test_a_plain_email_is_the_smallest_body(tmp_path):
    body = one_sender(tmp_path, None, []).body(Email(to="sam@example.com", subject="Paused", text="Why.\n"))
    assert body == {
        "personalizations": [{"to": [{"email": "sam@example.com"}]}],
        "from": FROM,
        "subject": "Paused",
        "content": [{"type": "text/plain", "value": "Why.\n"}],
    }


def test_every_part_of_an_email_has_its_place_in_the_body(tmp_path):
    png = b"\x89PNG\r\n\x1a\n\x07"
    email = Email(to="ana@example.com", subject="Weekly", text="Text", html="<p>HTML</p>",
                  images=(InlineImage(content_id="tile-01", filename="top.png", content=png),),
                  keep_links=True, unsubscribe_url=UNSUBSCRIBE, categories=("subscription-report",),
                  custom_args=(("subscription_id", "sub-1"), ("project_id", "9402")))
    body = one_sender(tmp_path, None, []).body(email)
    assert body == {
        "personalizations": [{"to": [{"email": "ana@example.com"}]}],
        "from": FROM,
        "subject": "Weekly",
        "content": [{"type": "text/plain", "value": "Text"}, {"type": "text/html", "value": "<p>HTML</p>"}],
        "headers": {"List-Unsubscribe": f"<{UNSUBSCRIBE}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
        "categories": ["subscription-report"],
        "custom_args": {"subscription_id": "sub-1", "project_id": "9402"},
        "tracking_settings": {"click_tracking": {"enable": False, "enable_text": False},
                              "subscription_tracking": {"enable": False}},
        "attachments": [{"content": base64.b64encode(png).decode(), "type": "image/png", "filename": "top.png",
                         "disposition": "inline", "content_id": "tile-01"}],
    }
    # The outbox file keeps SendGrid's field order.
    assert list(body) == ["personalizations", "from", "subject", "content", "headers", "categories", "custom_args",
                          "tracking_settings", "attachments"]


def test_an_images_size_in_the_message_is_its_base64_length():
    for size in range(8):
        content = bytes(size)
        assert InlineImage("x", "x.png", content).encoded_bytes == len(base64.b64encode(content))


def test_from_settings_takes_the_address_key_host_outbox_and_backoff(tmp_path):
    settings = Settings(EXPORT_PIPELINE_HOME=tmp_path, SENDGRID_API_KEY=" SG.k ", SENDGRID_API_HOST="https://h.test/",
                        EXPORT_EMAIL_FROM="a@example.com", EXPORT_EMAIL_FROM_NAME="",
                        EXPORT_EMAIL_RETRY_BASE_SECONDS=2)
    sender = EmailSender.from_settings(settings)
    assert sender.body(Email(to="b@example.com", subject="s", text="t"))["from"] == {"email": "a@example.com"}
    assert (sender.host, sender.outbox.root, sender.backoff.base_seconds) == ("https://h.test", tmp_path / "outbox", 2)
    assert EmailSender.from_settings(settings, retry_base_seconds=0.1).backoff.base_seconds == 0.1
