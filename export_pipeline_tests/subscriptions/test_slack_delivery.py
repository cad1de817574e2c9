"""Slack delivery of subscription reports, over real HTTP to the fake Slack Web API (`slackapi.FakeSlack`)."""

from __future__ import annotations

import json
import logging
import struct
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from export_pipeline.channels.slack import SlackOutcome
from export_pipeline.insights.period import Period
from export_pipeline.settings import Settings
from export_pipeline.subscriptions.report import Report as SlackReport
from export_pipeline.subscriptions.report import ReportImage
from export_pipeline.subscriptions.slack import SlackDeliverer, report_message
from export_pipeline_tests.fakes.slackapi import FakeSlack, Recorded

ACME = "xoxb-acme-0000-secret"
COMMUNITY = "xoxb-community-1111-secret"
ACME_CHANNELS = {"general": "C0GENERAL", "metrics": "C0METRICS"}
COMMUNITY_CHANNELS = {"general": "C1GENERAL"}
LINK = "https://analytics.example.com/shared/abc123?tab=1&x=2"
UPLOAD_STEP = ["files.getUploadURLExternal", "upload", "files.completeUploadExternal"]


def png(seed: int) -> bytes:
    """A tiny valid 1x1 PNG; `seed` makes each image's bytes different."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    pixel = zlib.compress(bytes([0, seed % 256, (seed * 7) % 256, (seed * 13) % 256]))
    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixel) + chunk(b"IEND", b"")


def report(images: int, *, message: str | None = "Weekly numbers <b> & more") -> SlackReport:
    return SlackReport(
        title="Weekly signups",
        message=message,
        link=LINK,
        images=[ReportImage(f"tile-{n:02d}-chart.png", f"Chart {n}", png(n)) for n in range(1, images + 1)],
    )


class Sleeps(list[float]):
    """Records the delays instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # slack-sdk routes through HTTP(S)_PROXY when set; the fake server is on loopback.
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture()
def slack() -> Iterator[FakeSlack]:
    with FakeSlack({ACME: ACME_CHANNELS, COMMUNITY: COMMUNITY_CHANNELS}) as fake:
        yield fake


@pytest.fixture()
def sleeps() -> Sleeps:
    return Sleeps()


def settings_for(slack: FakeSlack, home: Path, tokens: dict[str, str] | None = None) -> Settings:
    return Settings(
        EXPORT_PIPELINE_HOME=home,
        SLACK_BOT_TOKENS={"acme": ACME, "community": COMMUNITY} if tokens is None else tokens,
        SLACK_API_URL=slack.api_url,
    )


@pytest.fixture()
def deliverer(slack: FakeSlack, tmp_path: Path, sleeps: Sleeps) -> SlackDeliverer:
    return SlackDeliverer(settings_for(slack, tmp_path), sleep=sleeps, timeout_seconds=5)


def uploads_of(slack: FakeSlack) -> list[Recorded]:
    return [r for r in slack.requests_for("upload") if r.status == 200]


def completions_of(slack: FakeSlack) -> list[Recorded]:
    return [r for r in slack.requests_for("files.completeUploadExternal") if r.status == 200]


# --------------------------------------------------------------------------------------------- success


@pytest.mark.parametrize(("channel", "label"), [("#general", "#general"), ("general", "#general"),
                                                ("C0GENERAL", "C0GENERAL")])
def test_one_insight_image_to_a_channel(slack: FakeSlack, deliverer: SlackDeliverer, sleeps: Sleeps,
                                        channel: str, label: str) -> None:
    one = report(1)

    outcome = deliverer.deliver("acme", channel, one, key="sub-1")

    assert outcome.ok and not outcome.permanent and outcome.error is None and outcome.attempts == 1
    assert slack.calls() == ["chat.postMessage", *UPLOAD_STEP]
    post, get_url, upload, complete = slack.requests
    assert all(r.status == 200 for r in slack.requests)
    assert outcome.where == f"slack acme {label} ts={slack.messages[0].ts}"

    assert post.headers["authorization"] == f"Bearer {ACME}"
    assert post.params["channel"] == channel
    assert post.params["unfurl_links"] is False
    header, section, actions = post.params["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text", "text": "Weekly signups", "emoji": True}}
    assert section["text"] == {"type": "mrkdwn", "text": "Weekly numbers &lt;b&gt; &amp; more"}
    button = actions["elements"][0]
    assert (button["url"], button["text"]["text"]) == (LINK, "Open in browser")
    assert "Weekly signups" in post.params["text"] and LINK.replace("&", "&amp;") in post.params["text"]

    assert (get_url.params["filename"], get_url.params["length"]) == ("tile-01-chart.png", str(len(png(1))))
    assert upload.body == png(1)
    assert "authorization" not in upload.headers  # the upload URL is pre-signed
    assert complete.params["channel_id"] == "C0GENERAL"  # the ID, whatever form the channel was given in
    assert "thread_ts" not in complete.params  # a small report goes right under the message
    assert json.loads(complete.params["files"]) == [{"id": get_url_file_id(slack), "title": "Chart 1"}]
    [shared] = slack.shared_files()
    assert (shared.channel_id, shared.thread_ts, shared.data) == ("C0GENERAL", None, png(1))
    assert sleeps == []


def get_url_file_id(slack: FakeSlack) -> str:
    return slack.shared_files()[0].id


def test_three_images_go_to_the_channel_in_one_upload(slack: FakeSlack, deliverer: SlackDeliverer) -> None:
    outcome = deliverer.deliver("acme", "#metrics", report(3, message=None), key="sub-3")

    assert outcome.ok
    assert slack.calls() == ["chat.postMessage", *["files.getUploadURLExternal"] * 3, *["upload"] * 3,
                             "files.completeUploadExternal"]
    [post] = slack.requests_for("chat.postMessage")
    assert [block["type"] for block in post.params["blocks"]] == ["header", "actions"]  # no empty message
    [complete] = slack.requests_for("files.completeUploadExternal")
    assert complete.params["channel_id"] == "C0METRICS" and "thread_ts" not in complete.params
    assert [f.data for f in slack.shared_files()] == [png(1), png(2), png(3)]


def test_twenty_image_dashboard_goes_to_the_thread_in_batches_of_ten(
    slack: FakeSlack, deliverer: SlackDeliverer
) -> None:
    dashboard = report(20)

    outcome = deliverer.deliver("acme", "#general", dashboard, key="dash-7")

    assert outcome.ok and outcome.attempts == 1
    batch = [*["files.getUploadURLExternal"] * 10, *["upload"] * 10, "files.completeUploadExternal"]
    assert slack.calls() == ["chat.postMessage", *batch, *batch]
    [message] = slack.messages
    names = [r.params["filename"] for r in slack.requests_for("files.getUploadURLExternal")]
    assert names == [image.name for image in dashboard.images]
    assert [r.body for r in uploads_of(slack)] == [image.png for image in dashboard.images]
    completions = completions_of(slack)
    assert [len(json.loads(c.params["files"])) for c in completions] == [10, 10]
    assert all(c.params["thread_ts"] == message.ts and c.params["channel_id"] == "C0GENERAL" for c in completions)
    titles = [entry["title"] for c in completions for entry in json.loads(c.params["files"])]
    assert titles == [image.title for image in dashboard.images]
    shared = slack.shared_files()
    assert [f.data for f in shared] == [image.png for image in dashboard.images]
    assert {(f.channel_id, f.thread_ts) for f in shared} == {("C0GENERAL", message.ts)}


def test_two_workspaces_each_get_their_own_message(slack: FakeSlack, deliverer: SlackDeliverer) -> None:
    first = deliverer.deliver("acme", "#general", report(1), key="sub-2")
    second = deliverer.deliver("community", "#general", report(1), key="sub-2")

    assert first.ok and second.ok
    assert first.where.startswith("slack acme #general ts=")
    assert second.where.startswith("slack community #general ts=")
    assert [(m.token, m.channel_id) for m in slack.messages] == [(ACME, "C0GENERAL"), (COMMUNITY, "C1GENERAL")]
    tokens = [r.headers["authorization"] for r in slack.requests if r.api != "upload"]
    assert tokens == [f"Bearer {ACME}"] * 3 + [f"Bearer {COMMUNITY}"] * 3
    assert [(f.token, f.channel_id) for f in slack.shared_files()] == [(ACME, "C0GENERAL"),
                                                                       (COMMUNITY, "C1GENERAL")]


def test_the_period_and_each_charts_link_are_in_the_message(slack: FakeSlack, deliverer: SlackDeliverer) -> None:
    week = Period(datetime(2026, 11, 9, tzinfo=UTC), datetime(2026, 11, 16, tzinfo=UTC))
    links = ["https://analytics.example.com/projects/7/embed/insights/a1", None]
    titled = [ReportImage(f"tile-0{n}.png", title, png(n), week, link)
              for n, (title, link) in enumerate(zip(["Sign-ups <new>", "Gone"], links, strict=True), start=1)]
    outcome = deliverer.deliver("acme", "#general", SlackReport("Weekly", None, LINK, titled), key="sub-links")

    assert outcome.ok
    [post] = slack.requests_for("chat.postMessage")
    assert [block["type"] for block in post.params["blocks"]] == ["header", "context", "actions", "section"]
    assert post.params["blocks"][1] == {"type": "context", "elements": [
        {"type": "plain_text", "text": "These charts cover 9 Nov 2026 – 15 Nov 2026 (UTC)."}]}
    assert post.params["blocks"][3] == {"type": "section", "text": {
        "type": "mrkdwn", "text": f"1. <{links[0]}|Sign-ups &lt;new&gt;>\n2. Gone"}}
    assert "These charts cover 9 Nov 2026 – 15 Nov 2026 (UTC)." in post.params["text"]


def test_chart_links_beyond_slacks_block_limit_point_to_the_report() -> None:
    many = [ReportImage(f"tile-{n}.png", "x" * 200, b"", link=f"https://a.example/insights/{n:04d}")
            for n in range(1, 2001)]
    blocks = report_message(SlackReport("Huge", None, LINK, many))["blocks"]
    sections = blocks[2:]
    assert len(blocks) == 50 and all(len(block["text"]["text"]) <= 3000 for block in sections)
    listed = sum(block["text"]["text"].count("\n") + 1 for block in sections[:-1])
    assert sections[-1]["text"]["text"] == f"…and {2000 - listed} more charts: open the report in the browser."
    assert sections[-2]["text"]["text"].endswith(f"{listed}. <https://a.example/insights/{listed:04d}|{'x' * 200}>")


# ---------------------------------------------------------------------------------------------- retries


def test_rate_limit_honours_retry_after(slack: FakeSlack, deliverer: SlackDeliverer, sleeps: Sleeps) -> None:
    slack.rate_limit("chat.postMessage", retry_after=2)

    outcome = deliverer.deliver("acme", "#general", report(1), key="sub-1")

    assert outcome.ok and outcome.attempts == 2
    assert sleeps == [2]
    assert [r.status for r in slack.requests_for("chat.postMessage")] == [429, 200]
    assert len(slack.messages) == 1  # posted exactly once
    assert slack.calls() == ["chat.postMessage", "chat.postMessage", *UPLOAD_STEP]


def test_retry_after_is_capped(slack: FakeSlack, tmp_path: Path, sleeps: Sleeps) -> None:
    slack.rate_limit("files.getUploadURLExternal", retry_after=600)
    deliverer = SlackDeliverer(settings_for(slack, tmp_path), sleep=sleeps, max_retry_after_seconds=60)

    assert deliverer.deliver("acme", "#general", report(1), key="sub-1").ok
    assert sleeps == [60]


def test_server_errors_are_retried_with_backoff(slack: FakeSlack, deliverer: SlackDeliverer,
                                                sleeps: Sleeps) -> None:
    slack.server_error("chat.postMessage", times=2)

    outcome = deliverer.deliver("acme", "#general", report(1), key="sub-1")

    assert outcome.ok and outcome.attempts == 3
    assert sleeps == [1.0, 2.0]
    assert [r.status for r in slack.requests_for("chat.postMessage")] == [500, 500, 200]
    assert len(slack.messages) == 1


def test_transient_slack_error_codes_are_retried(slack: FakeSlack, deliverer: SlackDeliverer,
                                                 sleeps: Sleeps) -> None:
    slack.slack_error("files.completeUploadExternal", "internal_error")

    outcome = deliverer.deliver("acme", "#general", report(1), key="sub-1")

    assert outcome.ok and sleeps == [1.0]
    # The whole batch is uploaded again (new file IDs); only the second one is shared.
    assert slack.calls() == ["chat.postMessage", *UPLOAD_STEP, *UPLOAD_STEP]
    assert [f.data for f in slack.shared_files()] == [png(1)]


def test_upload_failure_after_the_message_retries_only_the_upload(
    slack: FakeSlack, deliverer: SlackDeliverer, sleeps: Sleeps
) -> None:
    slack.drop_connection("upload")

    outcome = deliverer.deliver("acme", "#general", report(1), key="sub-1")

    assert outcome.ok and outcome.attempts == 2
    assert slack.calls() == ["chat.postMessage", *UPLOAD_STEP[:2], *UPLOAD_STEP]
    assert slack.requests_for("upload")[0].status is None  # dropped
    assert len(slack.messages) == 1  # not re-posted
    assert [f.data for f in slack.shared_files()] == [png(1)]
    assert sleeps == [1.0]


def test_second_batch_failing_once_keeps_the_first_batch(slack: FakeSlack, deliverer: SlackDeliverer) -> None:
    slack.server_error("files.completeUploadExternal", after=1)  # the second batch's completion fails once

    outcome = deliverer.deliver("acme", "#general", report(12), key="dash-1")

    assert outcome.ok
    batch1 = [*["files.getUploadURLExternal"] * 10, *["upload"] * 10, "files.completeUploadExternal"]
    batch2 = [*["files.getUploadURLExternal"] * 2, *["upload"] * 2, "files.completeUploadExternal"]
    assert slack.calls() == ["chat.postMessage", *batch1, *batch2, *batch2]
    assert len(slack.messages) == 1
    assert [f.data for f in slack.shared_files()] == [png(n) for n in range(1, 13)]


def test_transient_failure_exhausting_attempts(slack: FakeSlack, deliverer: SlackDeliverer,
                                               sleeps: Sleeps) -> None:
    slack.server_error("chat.postMessage", times=10, status=503)

    outcome = deliverer.deliver("acme", "#general", report(1), key="sub-1")

    assert outcome == SlackOutcome(ok=False, where="slack acme #general", attempts=4, error=outcome.error,
                                   permanent=False)
    assert slack.calls() == ["chat.postMessage"] * 4
    assert sleeps == [1.0, 2.0, 4.0]
    assert outcome.error is not None
    assert "workspace 'acme' channel #general" in outcome.error and "HTTP 503" in outcome.error
    assert "4 time(s)" in outcome.error and "next scheduled delivery" in outcome.error
    assert slack.messages == []


def test_upload_exhausting_attempts_reports_what_was_posted(slack: FakeSlack, deliverer: SlackDeliverer) -> None:
    slack.drop_connection("upload", times=10)

    outcome = deliverer.deliver("acme", "#general", report(1), key="sub-1")

    assert not outcome.ok and not outcome.permanent and outcome.attempts == 4
    [message] = slack.messages
    assert outcome.where == f"slack acme #general ts={message.ts}"
    assert outcome.error is not None and f"The message was posted (ts {message.ts})" in outcome.error
    assert "0 of 1 images" in outcome.error
    assert slack.calls().count("chat.postMessage") == 1
    assert slack.shared_files() == []


# ------------------------------------------------------------------------------------- permanent errors


def test_revoked_token_is_permanent_and_never_shown(slack: FakeSlack, deliverer: SlackDeliverer, sleeps: Sleeps,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    slack.revoke(ACME)

    with caplog.at_level(logging.DEBUG):
        outcome = deliverer.deliver("acme", "#general", report(2), key="sub-1")

    assert not outcome.ok and outcome.permanent and outcome.attempts == 1
    assert outcome.error is not None
    assert outcome.error.startswith("The Slack bot token of workspace 'acme' was revoked (token_revoked): ")
    assert "SLACK_BOT_TOKENS" in outcome.error and "re-enable the destination" in outcome.error
    assert slack.calls() == ["chat.postMessage"]  # no retry
    assert sleeps == []
    assert ACME not in outcome.error and ACME not in outcome.where and ACME not in caplog.text


def test_unknown_channel_is_permanent(slack: FakeSlack, deliverer: SlackDeliverer, sleeps: Sleeps) -> None:
    outcome = deliverer.deliver("acme", "#does-not-exist", report(1), key="sub-1")

    assert not outcome.ok and outcome.permanent
    assert outcome.error is not None
    assert "Channel #does-not-exist does not exist in Slack workspace 'acme'" in outcome.error
    assert "(channel_not_found)" in outcome.error and "/invite" in outcome.error
    assert slack.calls() == ["chat.postMessage"] and sleeps == []


@pytest.mark.parametrize("code", ["not_in_channel", "is_archived", "missing_scope", "invalid_auth"])
def test_other_permanent_errors(slack: FakeSlack, deliverer: SlackDeliverer, code: str) -> None:
    slack.slack_error("chat.postMessage", code)

    outcome = deliverer.deliver("acme", "general", report(1), key="sub-1")

    assert not outcome.ok and outcome.permanent and f"({code}" in (outcome.error or "")
    assert slack.calls() == ["chat.postMessage"]


def test_permanent_error_during_upload_says_the_message_was_posted(slack: FakeSlack,
                                                                    deliverer: SlackDeliverer) -> None:
    # e.g. the app was removed from the channel between posting and sharing the images
    slack.slack_error("files.completeUploadExternal", "not_in_channel")

    outcome = deliverer.deliver("acme", "#general", report(1), key="sub-1")

    assert not outcome.ok and outcome.permanent
    assert outcome.error is not None and "(not_in_channel)" in outcome.error
    assert "The message was posted" in outcome.error and "0 of 1 images" in outcome.error


def test_other_slack_errors_are_final_but_not_permanent(slack: FakeSlack, deliverer: SlackDeliverer) -> None:
    slack.slack_error("chat.postMessage", "invalid_blocks")

    outcome = deliverer.deliver("acme", "#general", report(1), key="sub-1")

    assert not outcome.ok and not outcome.permanent and outcome.attempts == 1
    assert outcome.error is not None and "invalid_blocks" in outcome.error and "chat.postMessage#errors" in outcome.error
    assert slack.calls() == ["chat.postMessage"]


def test_unreachable_slack_is_transient(tmp_path: Path, sleeps: Sleeps) -> None:
    with FakeSlack({ACME: ACME_CHANNELS}) as gone:
        settings = settings_for(gone, tmp_path)  # the port is closed once the block ends
    outcome = SlackDeliverer(settings, sleep=sleeps, attempts=2).deliver("acme", "#general", report(1), key="k")

    assert not outcome.ok and not outcome.permanent and outcome.attempts == 2
    assert outcome.error is not None and "network error" in outcome.error and ACME not in outcome.error
    assert sleeps == [1.0]


# ------------------------------------------------------------------------------------------------ outbox


def test_no_token_writes_the_outbox(slack: FakeSlack, tmp_path: Path, sleeps: Sleeps) -> None:
    settings = settings_for(slack, tmp_path, tokens={"community": COMMUNITY})  # none for acme
    dashboard = report(5)

    outcome = SlackDeliverer(settings, sleep=sleeps).deliver("acme", "#general", dashboard, key="sub-9")

    folder = settings.outbox_dir / "slack" / "sub-9-acme-general"
    assert outcome == SlackOutcome(ok=True, where=f"outbox {folder}", attempts=1)
    assert slack.requests == []  # no HTTP request at all
    assert sorted(p.name for p in folder.iterdir()) == sorted(["message.json", *(i.name for i in dashboard.images)])
    for image in dashboard.images:
        assert (folder / image.name).read_bytes() == image.png
    message = json.loads((folder / "message.json").read_text())
    assert "outbox" in message["note"] and "SLACK_BOT_TOKENS" in message["note"]
    assert (message["workspace"], message["channel"], message["images_in_thread"]) == ("acme", "#general", True)
    assert message["chat.postMessage"]["blocks"][0]["text"]["text"] == "Weekly signups"
    assert [i["file"] for i in message["images"]] == [i.name for i in dashboard.images]
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no temp folder left behind

    again = SlackDeliverer(settings, sleep=sleeps).deliver("acme", "#general", dashboard, key="sub-9")
    assert again == outcome  # the same delivery is not written twice
    assert sleeps == []
