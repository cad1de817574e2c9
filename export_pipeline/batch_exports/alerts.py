"""Telling a paused destination's creator why it stopped and how to resume it, by email and by Slack."""

from __future__ import annotations

import logging

from sqlalchemy.engine import Engine

from export_pipeline.accounts.emails import recipient_for
from export_pipeline.batch_exports.destinations import Destination
from export_pipeline.channels.email import Email, EmailSender
from export_pipeline.channels.slack import SlackSender, mrkdwn_escape
from export_pipeline.settings import Settings

Logger = logging.Logger | logging.LoggerAdapter


class PauseAlerts:
    def __init__(self, settings: Settings, engine: Engine, email: EmailSender, slack: SlackSender):
        self.settings, self.engine, self.email, self.slack = settings, engine, email, slack

    def paused(self, destination: Destination, error: str, *, log: Logger) -> None:
        """Send both; never raises (the interval's own failure is what the run reports)."""
        resume = (f"export-pipeline batch-exports resume --project-id {destination.project_id} {destination.id} "
                  f"(or POST {self.settings.api_base_url.rstrip('/')}/api/v1/projects/{destination.project_id}"
                  f"/batch_exports/{destination.id}/resume)")
        summary = (f"Batch export '{destination.name}' ({destination.id}, project {destination.project_id}) to "
                   f"{destination.url} was paused after {destination.max_failures} failed intervals in a row.")
        try:
            self._email(destination, summary, error, resume, log)
        except Exception:
            log.exception("Emailing the creator of batch export %s failed.", destination.id)
        try:
            self._slack(destination, summary, error, resume, log)
        except Exception:
            log.exception("Telling Slack about batch export %s failed.", destination.id)

    def _email(self, destination: Destination, summary: str, error: str, resume: str, log: Logger) -> None:
        recipient = recipient_for(self.engine, destination.created_by, destination.notify_email)
        if recipient is None:
            log.warning("Batch export %s paused; %r has no email address to be told at.", destination.id,
                        destination.created_by)
            return
        text = (f"{summary}\n\nLast error:\n{error}\n\nOnce the cause is fixed, resume it; the failed intervals "
                f"are exported again first, then the ones that closed meanwhile:\n\n    {resume}\n")
        email = Email(to=recipient.email, subject=f"Batch export '{destination.name}' was paused", text=text)
        sent = self.email.send(email, f"batch-export-paused-{destination.id}", log=log)
        if sent.error:
            log.error("Telling %s that batch export %s paused failed: %s", recipient.email, destination.id, sent.error)

    def _slack(self, destination: Destination, summary: str, error: str, resume: str, log: Logger) -> None:
        if not (destination.slack_workspace and destination.slack_channel):
            log.warning("Batch export %s paused; it names no Slack channel to tell.", destination.id)
            return
        text = (f":warning: {mrkdwn_escape(summary)}\n*Last error:* {mrkdwn_escape(error)}\n"
                f"*To resume:* `{mrkdwn_escape(resume)}`")
        sent = self.slack.send(destination.slack_workspace, destination.slack_channel, {"text": text}, [],
                               in_thread=False, key=f"batch-export-paused-{destination.id}", log=log)
        if not sent.ok:
            log.error("Telling Slack that batch export %s paused failed: %s", destination.id, sent.error)
