"""Posting to Slack: one message and its images, to one channel of one workspace per call.

* One bot token per workspace (`SLACK_BOT_TOKENS`). A workspace without a token delivers to
  `$EXPORT_PIPELINE_HOME/outbox/slack/<key>-<workspace>-<channel>/` instead (the embedded default): the
  `message.json` that would have been posted and the PNGs.
* The message is posted first (`chat.postMessage`); the images follow with `files_upload_v2`, at most
  `BATCH_SIZE` per call, under the message or in its thread.
* Each API step is retried on its own (429 after `Retry-After`, network errors, 5xx, Slack's transient error
  codes), so a failed image upload never posts the message twice.
* Errors that retrying cannot fix on our side (revoked token, unknown channel, app not in the channel, …) are
  `permanent`: the caller disables the destination and shows the error, which says what to do.
* `send` never raises for Slack or network problems, and the bot token never appears in errors or logs.
"""

from __future__ import annotations

import http.client
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar, cast
from urllib.error import HTTPError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError

from export_pipeline.channels.outbox import Outbox, json_bytes, safe_name
from export_pipeline.channels.retry import Backoff, Failure, GaveUp
from export_pipeline.settings import Settings

logger = logging.getLogger(__name__)

Logger = logging.Logger | logging.LoggerAdapter
T = TypeVar("T")

BATCH_SIZE = 10  # files per files_upload_v2 call (one files.completeUploadExternal)

# Slack error codes worth retrying: Slack says so itself, or they are rate limits in JSON form.
TRANSIENT_ERRORS = frozenset({"internal_error", "fatal_error", "service_unavailable", "request_timeout",
                              "ratelimited"})

# Errors no retry can fix: the destination must be disabled until someone acts. Each message says what to do.
_REINSTALL = "reinstall the Slack app in workspace '{workspace}' and update its token in SLACK_BOT_TOKENS"
_REENABLE = "then re-enable the destination."
PERMANENT_ERRORS: dict[str, str] = {
    "invalid_auth": "The Slack bot token of workspace '{workspace}' is not valid (invalid_auth): "
    f"{_REINSTALL}, {_REENABLE}",
    "not_authed": "No valid Slack bot token was sent for workspace '{workspace}' (not_authed): "
    f"{_REINSTALL}, {_REENABLE}",
    "token_revoked": "The Slack bot token of workspace '{workspace}' was revoked (token_revoked): "
    f"{_REINSTALL}, {_REENABLE}",
    "token_expired": "The Slack bot token of workspace '{workspace}' has expired (token_expired): "
    f"{_REINSTALL} (or turn token rotation off for the app), {_REENABLE}",
    "account_inactive": "The Slack app's bot user in workspace '{workspace}' is deactivated (account_inactive): "
    f"{_REINSTALL}, {_REENABLE}",
    "channel_not_found": "Channel {channel} does not exist in Slack workspace '{workspace}', or the app cannot "
    "see it (channel_not_found): check the channel name; for a private channel, invite the app there first "
    f"(/invite @<app name>), {_REENABLE}",
    "not_in_channel": "The Slack app is not a member of channel {channel} in workspace '{workspace}' "
    f"(not_in_channel): invite it in the channel with /invite @<app name>, {_REENABLE}",
    "is_archived": "Channel {channel} in Slack workspace '{workspace}' is archived (is_archived): unarchive it "
    f"or point the subscription at another channel, {_REENABLE}",
    "missing_scope": "The Slack app of workspace '{workspace}' lacks a permission (missing_scope{needed}): add "
    "the bot scopes chat:write and files:write to the app, reinstall it in the workspace, update "
    f"SLACK_BOT_TOKENS if the token changed, {_REENABLE}",
    "no_permission": "The Slack app of workspace '{workspace}' may not post to channel {channel} "
    "(no_permission): ask a workspace admin to allow the app to post there, or choose another channel, "
    f"{_REENABLE}",
}


class SlackImage(Protocol):
    """A PNG to upload: its file `name`, the `title` Slack shows above it, and its bytes."""

    @property
    def name(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def png(self) -> bytes: ...


@dataclass(frozen=True)
class SlackOutcome:
    """How one delivery went.

    `where`: `slack <workspace> <channel> ts=<message ts>`, or `outbox <folder>` without a token.
    `permanent`: retrying cannot help (revoked token, unknown channel, …): disable the destination.
    `attempts`: tries of the step that decided the outcome (on success, the most any step needed).
    """

    ok: bool
    where: str
    attempts: int
    error: str | None = None
    permanent: bool = False


class _Problem(Failure):
    """A failed Slack call, as it matters for retrying; `detail` never holds the token."""

    def __init__(self, kind: Literal["retry", "permanent", "final"], detail: str, code: str | None = None, *,
                 retry_after: float | None = None, needed: str | None = None):
        super().__init__(detail, retryable=kind == "retry", retry_after=retry_after)
        self.kind = kind
        self.detail = detail
        self.code = code  # Slack's error code, when it sent one
        self.needed = needed  # the scopes Slack named for missing_scope


class SlackSender:
    """Posts messages with images to Slack. Plain Python."""

    def __init__(
        self,
        settings: Settings,
        *,
        attempts: int = 4,
        backoff_seconds: float = 1.0,
        max_retry_after_seconds: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        timeout_seconds: float = 30,
    ):
        self.settings = settings
        self.backoff = Backoff(attempts=max(attempts, 1), base_seconds=backoff_seconds,
                               max_retry_after_seconds=max_retry_after_seconds, sleep=sleep)
        self.timeout_seconds = timeout_seconds

    def send(self, workspace: str, channel: str, message: dict[str, Any], images: Sequence[SlackImage], *,
             in_thread: bool, key: str, log: Logger = logger) -> SlackOutcome:
        """Post `message` (chat.postMessage arguments but the channel) to `channel` ("#name", "name" or an ID
        like "C0123") of `workspace`, then `images` under it, or in its thread when `in_thread`.

        `key` names this delivery in logs and in the outbox folder name. Never raises for Slack or network
        problems: they are in the outcome.
        """
        channel = channel.strip()
        label = channel_label(channel)
        payload = {"channel": channel, **message}
        secret = self.settings.slack_bot_tokens.get(workspace)
        token = secret.get_secret_value().strip() if secret is not None else ""
        try:
            if not token:
                return self._to_outbox(workspace, channel, payload, images, in_thread=in_thread, key=key, log=log)
            return self._to_slack(token, workspace, channel, payload, images, in_thread=in_thread, key=key, log=log)
        except Exception as exc:  # a bug or an unexpected library error: report it, never break the caller
            log.exception("Slack delivery %s to workspace %r channel %s failed unexpectedly.", key, workspace, label)
            error = f"Delivering to Slack workspace '{workspace}' channel {label} failed unexpectedly: " \
                    f"{type(exc).__name__}: {exc}"
            return SlackOutcome(ok=False, where=f"slack {workspace} {label}", attempts=1,
                                error=_scrub(error, token)[:2000])

    # ------------------------------------------------------------------------------------------ slack

    def _to_slack(self, token: str, workspace: str, channel: str, payload: dict[str, Any],
                  images: Sequence[SlackImage], *, in_thread: bool, key: str, log: Logger) -> SlackOutcome:
        label = channel_label(channel)
        where = f"slack {workspace} {label}"
        # Our own retry loop, not slack-sdk's handlers: those sleep with time.sleep (and add jitter to
        # Retry-After), and they never see the POST to the upload URL, which files_upload_v2 sends with plain
        # urllib. One loop around each step covers every request with one budget and our injectable sleep.
        client = WebClient(token=token, base_url=self.settings.slack_api_url, timeout=self.timeout_seconds,
                           retry_handlers=[])
        most_tries = 0

        def failed(step: str, gave_up: GaveUp, posted_ts: str | None, delivered: int) -> SlackOutcome:
            outcome = self._failure(workspace, label, step, gave_up, posted_ts, delivered, len(images), where)
            log_failure = log.error if outcome.permanent else log.warning
            log_failure("Slack delivery %s: %s", key, outcome.error)
            return SlackOutcome(ok=False, where=outcome.where, attempts=outcome.attempts,
                                error=_scrub(outcome.error or "", token), permanent=outcome.permanent)

        step = "posting the message (chat.postMessage)"
        try:
            posted, tries = self._retrying(lambda: client.chat_postMessage(**payload), step, key, log)
        except GaveUp as gave_up:
            return failed(step, gave_up, None, 0)
        most_tries = max(most_tries, tries)
        # files.completeUploadExternal needs the channel ID; chat.postMessage resolved the name for us.
        channel_id = str(posted["channel"])
        ts = str(posted["ts"])
        where = f"{where} ts={ts}"
        thread_ts = ts if in_thread else None

        delivered = 0
        for start in range(0, len(images), BATCH_SIZE):
            batch = images[start:start + BATCH_SIZE]
            step = f"uploading images {start + 1}-{start + len(batch)} of {len(images)} (files_upload_v2)"
            uploads = [{"content": image.png, "filename": image.name, "title": image.title.strip() or image.name}
                       for image in batch]
            try:
                _, tries = self._retrying(
                    # A retry starts the batch over: files are only shared by files.completeUploadExternal,
                    # so the uploads of a failed try stay invisible and nothing is posted twice.
                    lambda uploads=uploads: client.files_upload_v2(file_uploads=uploads, channel=channel_id,
                                                                   thread_ts=thread_ts),
                    step, key, log,
                )
            except GaveUp as gave_up:
                return failed(step, gave_up, ts, delivered)
            most_tries = max(most_tries, tries)
            delivered += len(batch)

        log.info("Slack delivery %s: posted to workspace %r channel %s (ts %s) with %s image(s)%s.",
                 key, workspace, label, ts, len(images), " in its thread" if thread_ts else "")
        return SlackOutcome(ok=True, where=where, attempts=most_tries)

    def _retrying(self, call: Callable[[], T], step: str, key: str, log: Logger) -> tuple[T, int]:
        """`call()` and the number of tries it took; retries transient problems, else raises GaveUp."""

        def attempt() -> T:
            try:
                return call()
            except (SlackApiError, SlackRequestError, OSError, http.client.HTTPException) as exc:
                raise classify(exc) from None

        def retrying(attempt: int, failure: Failure, delay: float) -> None:
            log.warning("Slack delivery %s: %s failed (try %s of %s: %s); retrying in %.1f s.",
                        key, step, attempt, self.backoff.attempts, failure, delay)

        return self.backoff.run(attempt, on_retry=retrying)

    def _failure(self, workspace: str, label: str, step: str, gave_up: GaveUp, posted_ts: str | None,
                 delivered: int, total: int, where: str) -> SlackOutcome:
        problem = cast(_Problem, gave_up.failure)
        # What already reached the channel, so nobody re-sends it by hand.
        progress = ""
        if posted_ts is not None:
            progress = f" The message was posted (ts {posted_ts}) but only {delivered} of {total} images."
        if problem.kind == "permanent" and problem.code in PERMANENT_ERRORS:
            needed = f"; needed: {problem.needed}" if problem.needed else ""
            error = PERMANENT_ERRORS[problem.code].format(workspace=workspace, channel=label, needed=needed)
            return SlackOutcome(ok=False, where=where, attempts=gave_up.attempts, error=error + progress,
                                permanent=True)
        head = f"Delivering to Slack workspace '{workspace}' channel {label} failed while {step}"
        if problem.kind == "retry":
            error = (f"{head}, {gave_up.attempts} time(s), last with {problem.detail}.{progress} This is usually "
                     "temporary (Slack or the network); the next scheduled delivery will try again. If it keeps "
                     "failing, check https://slack-status.com and the network path to the Slack API.")
        else:
            method = "chat.postMessage" if "chat.postMessage" in step else "files.completeUploadExternal"
            error = (f"{head}: {problem.detail}.{progress} See https://api.slack.com/methods/{method}#errors for "
                     "what the error means; fix the destination or the report, then deliver again.")
        return SlackOutcome(ok=False, where=where, attempts=gave_up.attempts, error=error)

    # ----------------------------------------------------------------------------------------- outbox

    def _to_outbox(self, workspace: str, channel: str, payload: dict[str, Any], images: Sequence[SlackImage], *,
                   in_thread: bool, key: str, log: Logger) -> SlackOutcome:
        """The message and images in `<outbox>/slack/<key>-<workspace>-<channel>/`."""
        label = channel_label(channel)
        outbox = Outbox(self.settings.outbox_dir / "slack")
        name = f"{safe_name(key)}-{safe_name(workspace)}-{safe_name(channel.lstrip('#'))}"
        names = _file_names(images)
        message = {
            "note": f"Written to the outbox because SLACK_BOT_TOKENS has no token for workspace '{workspace}'. "
            "Add one to deliver to Slack.",
            "workspace": workspace,
            "channel": channel,
            "chat.postMessage": payload,
            "images": [
                {"file": file_name, "filename": image.name, "title": image.title, "bytes": len(image.png)}
                for file_name, image in zip(names, images, strict=True)
            ],
            "images_in_thread": in_thread,
        }
        files = {"message.json": json_bytes(message)}
        files.update((file_name, image.png) for file_name, image in zip(names, images, strict=True))
        try:
            folder, written = outbox.write_folder(name, files)
        except OSError as failed:
            error = (f"Writing the Slack message for workspace '{workspace}' channel {label} to the outbox "
                     f"{outbox.root} failed: {failed}. Check that the folder is writable and the disk not full.")
            log.error("Slack delivery %s: %s", key, error)
            return SlackOutcome(ok=False, where=f"outbox {outbox.root / name}", attempts=1, error=error)
        if written:
            log.info("Slack delivery %s: no token for workspace %r; written to the outbox %s.", key, workspace,
                     folder)
        else:
            log.info("Slack delivery %s: already in the outbox at %s.", key, folder)
        return SlackOutcome(ok=True, where=f"outbox {folder}", attempts=1)


# -------------------------------------------------------------------------------------------- helpers


def classify(exc: BaseException) -> _Problem:
    """What a failed Slack call means for retrying."""
    if isinstance(exc, SlackApiError):
        response = exc.response
        status = int(response.status_code)
        data = response.data if isinstance(response.data, dict) else {}
        raw = str(data.get("error") or "")
        # slack-sdk puts "Received a response in a non-JSON format: …" here for e.g. an HTML 502 page.
        code = raw if re.fullmatch(r"[a-z0-9_.]+", raw) else None
        detail = f"HTTP {status} {code}" if code else f"HTTP {status}"
        if code in PERMANENT_ERRORS:
            needed = data.get("needed")
            return _Problem("permanent", detail, code, needed=str(needed) if needed else None)
        if status == 429 or code == "ratelimited":
            return _Problem("retry", detail, code, retry_after=retry_after(response.headers))
        if status >= 500 or code in TRANSIENT_ERRORS:
            return _Problem("retry", detail, code)
        return _Problem("final", f"Slack answered {detail}" if code else f"Slack answered {detail}: {raw[:300]}",
                        code)
    if isinstance(exc, HTTPError):  # the POST to an upload URL (plain urllib inside files_upload_v2)
        detail = f"HTTP {exc.code} from the file upload URL"
        if exc.code == 429:
            return _Problem("retry", detail, retry_after=retry_after(dict(exc.headers.items())))
        if exc.code >= 500 or exc.code == 408:
            return _Problem("retry", detail)
        return _Problem("final", detail)
    if isinstance(exc, SlackRequestError):  # e.g. the upload URL answered an unexpected non-error status
        return _Problem("retry" if "Failed to upload" in str(exc) else "final", str(exc)[:500])
    # URLError, timeouts, refused or dropped connections
    reason = getattr(exc, "reason", None) or exc
    return _Problem("retry", f"a network error ({type(reason).__name__}: {reason})")


def retry_after(headers: Any) -> float | None:
    """Retry-After in seconds (Slack sends whole seconds), or None when missing or unreadable."""
    for name, value in dict(headers or {}).items():
        if str(name).lower() == "retry-after":
            value = value[0] if isinstance(value, list) and value else value
            try:
                return max(float(str(value).strip()), 0.0)
            except ValueError:
                return None
    return None


def channel_label(channel: str) -> str:
    """`#general` for a name (with or without `#`), the ID as it is (`C0123ABC`)."""
    if channel.startswith("#") or not re.fullmatch(r"[CGD][A-Z0-9]{4,}", channel):
        return "#" + channel.lstrip("#")
    return channel


def mrkdwn_escape(text: str) -> str:
    """Slack mrkdwn treats &, < and > as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _file_names(images: Sequence[SlackImage]) -> list[str]:
    """Safe, distinct outbox file names: the image's own name where possible."""
    names: list[str] = []
    for number, image in enumerate(images, start=1):
        name = safe_name(Path(image.name).name)
        if name in names or name == "message.json":
            name = f"{number:02d}-{name}"
        names.append(name)
    return names


def _scrub(text: str, token: str) -> str:
    """Belt and braces: no message we build contains the token, but library text might echo it."""
    return text.replace(token, "xoxb-***") if token else text
