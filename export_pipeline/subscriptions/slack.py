"""The Slack message of a subscription: the report's title, the period its charts cover, its message, the
"Open in browser" link and a link to each chart's insight, then its tile images. Up to `THREAD_ABOVE` images go
to the channel right under the message; a larger dashboard goes into the message's thread, so 20+ charts do not
flood the channel. Posting, retries and the outbox are `channels.slack`'s.
"""

from __future__ import annotations

import logging
from typing import Any

from export_pipeline.channels.slack import Logger, SlackOutcome, SlackSender, mrkdwn_escape
from export_pipeline.subscriptions.report import Report

logger = logging.getLogger(__name__)

THREAD_ABOVE = 3  # more images than this go into the message's thread
NO_TITLE = "Your subscribed report"
HEADER_MAX = 150  # Slack's limit for a header block's text
SECTION_MAX = 3000  # Slack's limit for a section block's text
BLOCKS_MAX = 50  # Slack's limit for the blocks of one message


class SlackDeliverer(SlackSender):
    """Posts subscription reports to Slack. Plain Python; the delivery job calls `deliver` per destination."""

    def deliver(self, workspace: str, channel: str, report: Report, *, key: str,
                log: Logger = logger) -> SlackOutcome:
        """Deliver `report` to `channel` ("#name", "name" or an ID like "C0123") of `workspace`.

        `key` names this delivery in logs and in the outbox folder name. Never raises for Slack or network
        problems: they are in the outcome.
        """
        return self.send(workspace, channel, report_message(report), report.images,
                         in_thread=len(report.images) > THREAD_ABOVE, key=key, log=log)


def report_message(report: Report) -> dict[str, Any]:
    """The chat.postMessage arguments but the channel: header, the period (when known), optional message,
    "Open in browser" button, the charts' links (when known), text fallback."""
    title = " ".join(report.title.split()) or NO_TITLE
    message = (report.message or "").strip()
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(title, HEADER_MAX), "emoji": True}},
    ]
    if report.period_line:
        blocks.append({"type": "context", "elements": [{"type": "plain_text", "text": report.period_line}]})
    if message:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut(mrkdwn_escape(message),
                                                                                  SECTION_MAX)}})
    blocks.append({
        "type": "actions",
        # A link button opens the URL itself; it needs no interactivity endpoint on our side.
        "elements": [{"type": "button", "action_id": "open_in_browser", "url": report.link,
                      "text": {"type": "plain_text", "text": "Open in browser"}}],
    })
    blocks += _chart_links(report, BLOCKS_MAX - len(blocks))
    # `text` is what notifications and clients without blocks show.
    text = "\n".join(part for part in (title, report.period_line, message, f"Open in browser: {report.link}")
                     if part)
    return {
        "text": mrkdwn_escape(text),
        "blocks": blocks,
        # The images follow; an unfurled preview of the shared page would only repeat them.
        "unfurl_links": False,
        "unfurl_media": False,
    }


def _chart_links(report: Report, room: int) -> list[dict[str, Any]]:
    """Sections listing the charts in order, each title linking to its insight's page (the uploaded images
    cannot carry a link); at most `room` blocks, the last one saying how many charts it could not list."""
    if not any(image.link for image in report.images):
        return []
    lines = []
    for number, image in enumerate(report.images, start=1):
        title = mrkdwn_escape(" ".join(image.title.split()) or image.name)
        lines.append(f"{number}. <{image.link}|{title}>" if image.link else f"{number}. {title}")
    sections = [""]
    for line in lines:
        if sections[-1] and len(sections[-1]) + 1 + len(line) > SECTION_MAX:
            sections.append("")
        sections[-1] = f"{sections[-1]}\n{line}" if sections[-1] else line
    if len(sections) > room:
        listed = sum(text.count("\n") + 1 for text in sections[:room - 1])
        sections = [*sections[:room - 1], f"…and {len(lines) - listed} more charts: open the report in the browser."]
    return [{"type": "section", "text": {"type": "mrkdwn", "text": text}} for text in sections]


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
