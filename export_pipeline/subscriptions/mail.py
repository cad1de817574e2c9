"""The email of a subscription: a report's tiles as inline PNG images, a link to its shared page, and an
unsubscribe link (also as RFC 8058 one-click `List-Unsubscribe` headers).

The HTML is `channels.email_html`'s column, styled inline like the export emails. The subject is its one
heading: each image draws its tile's title, so the email does not repeat it (the alt text carries it for
clients that block images). The period the charts cover is said at the top, from the insights' date ranges,
so a message such as "last week in numbers" is read against what the charts show. Each chart links to its
insight's page (the picture, and an "Open this chart" line under it for clients that block images).

One email per recipient, because each recipient has their own unsubscribe link; the caller loops over
recipients, and one failing address never blocks the others (`send` never raises). This module composes the
`channels.email.Email`; its wire format, the outbox (no `SENDGRID_API_KEY`) and retries are `EmailSender`'s.
"""

from __future__ import annotations

import logging
from html import escape
from urllib.parse import urlsplit

from export_pipeline.accounts.emails import valid_email
from export_pipeline.channels.email import Email, EmailOutcome, EmailSender, InlineImage, Logger
from export_pipeline.channels.email_html import MUTED, html_email, image, link, paragraph, rule
from export_pipeline.errors import ExportPipelineError, InvalidRequest
from export_pipeline.settings import MIB
from export_pipeline.subscriptions.report import Report, ReportImage

logger = logging.getLogger(__name__)

# SendGrid refuses messages over 30 MB in total; attachments travel base64-encoded (4/3 of their size).
# Stopping the encoded images at 20 MiB leaves room for the text, the HTML and the JSON around them.
MAX_ATTACHMENT_BYTES = 20 * MIB
CATEGORY = "subscription-report"
NO_TITLE = "Your subscribed report"


class ReportTooLarge(ExportPipelineError):
    """The report's images do not fit in one email; nothing is dropped silently."""

    code = "report_too_large_for_email"


class ReportMailer:
    """Composes and sends a subscription's report email. Plain Python; the delivery job calls it per recipient."""

    def __init__(self, sender: EmailSender, *, max_attachment_bytes: int = MAX_ATTACHMENT_BYTES):
        self.sender = sender
        self.max_attachment_bytes = max_attachment_bytes

    def send(
        self,
        report: Report,
        *,
        to: str,
        unsubscribe_url: str,
        subscription_id: str,
        key: str,
        log: Logger = logger,
    ) -> EmailOutcome:
        """Compose and deliver to one recipient. Never raises: failures are in `EmailOutcome.error`.

        `key` names this delivery in logs and outbox file names; make it unique per recipient.
        """
        try:
            email = self.compose(report, to=to, unsubscribe_url=unsubscribe_url, subscription_id=subscription_id)
        except Exception as exc:  # e.g. too large or a bad address: the same on every attempt, so no retry
            log.error("Subscription %s: the report email to %s could not be prepared: %s", subscription_id, to, exc)
            return EmailOutcome(attempts=0, error=f"{type(exc).__name__}: {exc}"[:2000])
        return self.sender.send(email, key, log=log)

    def compose(self, report: Report, *, to: str, unsubscribe_url: str, subscription_id: str) -> Email:
        """Raises ReportTooLarge, or InvalidRequest for a bad address or URL."""
        address = valid_email(to, field="to")
        link = _web_url(report.link, "the shared page link")
        unsubscribe = _web_url(unsubscribe_url, "the unsubscribe link")
        for picture in report.images:
            if picture.link:
                _web_url(picture.link, f"the link of chart {_alt(picture)!r}")
        images = self._images(report)
        cids = [image.content_id for image in images]
        subject = " ".join(report.title.split()) or NO_TITLE  # a line break in a subject header is refused
        return Email(
            to=address,
            subject=subject,
            text=self._text(report, subject, link, unsubscribe, address),
            html=self._html(report, subject, link, unsubscribe, address, cids),
            images=images,
            keep_links=True,
            unsubscribe_url=unsubscribe,
            categories=(CATEGORY,),
            custom_args=(("subscription_id", subscription_id),),
        )

    # ---------------------------------------------------------------------------------------------- parts

    def _images(self, report: Report) -> tuple[InlineImage, ...]:
        images = tuple(
            InlineImage(content_id=content_id(number), filename=image.name or f"{content_id(number)}.png",
                        content=image.png)
            for number, image in enumerate(report.images, start=1)
        )
        total = sum(image.encoded_bytes for image in images)
        if total > self.max_attachment_bytes:
            raw = sum(len(image.png) for image in report.images)
            raise ReportTooLarge(
                f"The report {report.title!r} is too large to email: its {len(report.images)} images are "
                f"{raw / MIB:.1f} MiB of PNG, {total / MIB:.1f} MiB once encoded for email, over the "
                f"{self.max_attachment_bytes / MIB:.0f} MiB limit (SendGrid refuses messages over 30 MB). "
                "No image was left out and nothing was sent.",
                hint="Split the dashboard into smaller subscriptions, or subscribe to the insights that matter "
                "most; the shared page always shows the whole report.",
                details={"images": len(report.images), "encoded_bytes": total,
                         "limit_bytes": self.max_attachment_bytes},
            )
        return images

    def _text(self, report: Report, subject: str, link: str, unsubscribe: str, to: str) -> str:
        lines = [subject, ""]
        if report.period_line:
            lines += [report.period_line, ""]
        if report.message and report.message.strip():
            lines += [report.message.strip(), ""]
        lines += [f"See the report online: {link}", ""]
        if report.images:
            lines.append("Charts (shown as images in the HTML version of this email):")
            for number, image in enumerate(report.images, start=1):
                own = report.own_period(image)
                lines.append(f"{number}. {_alt(image)}" + (f" — {own}" if own else ""))
                if image.link:
                    lines.append(f"   {image.link}")
            lines.append("")
        lines += [
            "-- ",
            f"You receive this report because {to} is subscribed to it.",
            f"Unsubscribe: {unsubscribe}",
            "",
        ]
        return "\n".join(lines)

    def _html(self, report: Report, subject: str, url: str, unsubscribe: str, to: str, cids: list[str]) -> str:
        # Everything user-controlled (titles, message, tile titles) is escaped; URLs too, inside attributes.
        period = paragraph(escape(report.period_line), MUTED) if report.period_line else ""
        message = ""
        if report.message and report.message.strip():
            message = paragraph("<br>".join(escape(line) for line in report.message.strip().splitlines()))
        tiles = ""
        for picture, cid in zip(report.images, cids, strict=True):
            own = report.own_period(picture)
            # The picture opens its insight; so does the line under it, for clients that block images.
            under = [escape(own)] if own else []
            if picture.link:
                under.append(link(picture.link, "Open this chart"))
            tiles += image(f"cid:{cid}", _alt(picture), href=picture.link) + (
                paragraph(" · ".join(under), MUTED) if under else "")
        footer = paragraph(f"You receive this report because {escape(to)} is subscribed to it. "
                           f"{link(unsubscribe, 'Unsubscribe')}", MUTED)
        return html_email(subject, period + message + paragraph(link(url, "See the report online")) + tiles
                          + rule() + footer)


def content_id(number: int) -> str:
    """The stable Content-ID of the `number`th image (from 1): `tile-01`, …, `tile-99`, `tile-100`."""
    return f"tile-{number:02d}"


def _alt(image: ReportImage) -> str:
    return " ".join(image.title.split()) or image.name


def _web_url(url: str, what: str) -> str:
    """`url` if it is an absolute http(s) URL without spaces or angle brackets (it goes into a header)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c in url for c in " \t\r\n<>\"'"):
        raise InvalidRequest(
            f"Cannot email {what} {url[:300]!r}: it must be an absolute http(s) URL without spaces.",
            hint="Set EXPORT_API_BASE_URL to the public address of the web app, e.g. https://analytics.example.com.",
            details={"url": url[:300]},
        )
    return url
