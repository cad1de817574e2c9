"""Subscription report emails against a real HTTP server on loopback that speaks SendGrid's v3 `mail/send`:
the exact payload (inline PNGs, escaped HTML, one-click unsubscribe headers), any number of tiles, retries,
the outbox without a key, the size limit; and the signed unsubscribe tokens."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from html import escape
from pathlib import Path

import pytest

from export_pipeline.channels.email import EmailSender
from export_pipeline.errors import InvalidRequest
from export_pipeline.insights.period import Period
from export_pipeline.settings import MIB, Settings
from export_pipeline.subscriptions.mail import ReportMailer, ReportTooLarge
from export_pipeline.subscriptions.report import Report, ReportImage
from export_pipeline.subscriptions.unsubscribe import (
    InvalidUnsubscribeToken,
    UnsubscribeClaim,
    issue_unsubscribe,
    resolve_unsubscribe,
    unsubscribe_url,
)
from export_pipeline_tests.fakes.sendgridapi import FakeSendGrid, fake_sendgrid

KEY = "SG.test-key-report"
BASE = "https://analytics.example.com"
SUBSCRIPTION = "sub-42"
PNG = b"\x89PNG\r\n\x1a\n"  # the PNG signature; the mailer never looks inside the bytes
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
SIX_MONTHS = Period(datetime(2026, 5, 1, tzinfo=UTC), datetime(2026, 10, 28, tzinfo=UTC))
FONT = "font-family:-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif"
P = f'<p style="margin:0 0 14px;{FONT};font-size:15px;line-height:1.5;color:#1f2328">'
MUTED_P = f'<p style="margin:0 0 14px;{FONT};font-size:13px;line-height:1.5;color:#59636e">'
A = 'style="color:#0969da;text-decoration:underline"'
IMG = 'width="544" style="display:block;width:100%;max-width:544px;height:auto;border:0;margin:0 0 14px"'


@pytest.fixture()
def sendgrid() -> Iterator[FakeSendGrid]:
    with fake_sendgrid(KEY) as fake:
        yield fake


def make_settings(home: Path, host: str | None) -> Settings:
    """Settings whose email goes to `host` (a SendGrid API), or to the outbox under `home` when None."""
    return Settings(
        EXPORT_PIPELINE_HOME=home,
        SENDGRID_API_KEY=KEY if host else None,
        SENDGRID_API_HOST=host or "https://api.sendgrid.invalid",
        EXPORT_EMAIL_FROM="reports@example.com",
        EXPORT_EMAIL_FROM_NAME="Product analytics",
        EXPORT_API_BASE_URL=BASE + "/",  # a trailing slash must not double up in links
    )


def mailer(settings: Settings, sleeps: list[float] | None = None) -> ReportMailer:
    sleeps = [] if sleeps is None else sleeps
    return ReportMailer(EmailSender.from_settings(settings, sleep=sleeps.append, retry_base_seconds=0.25))


def composed(reports: ReportMailer, report: Report, **args) -> dict:
    """The SendGrid `mail/send` body of the report's email, exactly as the sender posts it."""
    return reports.sender.body(reports.compose(report, **args))


def report(count: int = 2, periods: list[Period | None] | None = None) -> Report:
    titles = ['Sign-ups <by week>', 'Revenue "net" & \'gross\'']
    periods = periods or [SIX_MONTHS] * count
    images = [  # distinct bytes per tile, so order mix-ups show
        ReportImage(name=f"tile-{n:02d}.png", title=titles[n - 1] if n <= 2 else f"Tile {n}",
                    png=PNG + bytes([n % 256]) * n, period=periods[n - 1])
        for n in range(1, count + 1)
    ]
    return Report(title="<b>Q&A</b> weekly", message="Numbers for the team\n<script>x()</script> & co",
                  link=f"{BASE}/shared/AbC123", images=images)


def link_for(email: str, version: int = 1) -> str:
    """A link of the shape deliveries send (the mailer only places it)."""
    return unsubscribe_url(BASE + "/", hashlib.sha256(f"{email}/{version}".encode()).hexdigest()[:32])


def test_the_payload_of_a_two_image_report_is_exact(tmp_path):
    settings = make_settings(tmp_path, None)
    unsubscribe = link_for("ana@example.com")
    payload = composed(mailer(settings), report(), to=" ana@example.com ", unsubscribe_url=unsubscribe,
                       subscription_id=SUBSCRIPTION)

    assert unsubscribe.startswith(f"{BASE}/unsubscribe/") and "//unsubscribe" not in unsubscribe
    text = (
        "<b>Q&A</b> weekly\n\n"
        "These charts cover 1 May 2026 – 27 Oct 2026 (UTC).\n\n"
        "Numbers for the team\n<script>x()</script> & co\n\n"
        f"See the report online: {BASE}/shared/AbC123\n\n"
        "Charts (shown as images in the HTML version of this email):\n"
        "1. Sign-ups <by week>\n"
        "2. Revenue \"net\" & 'gross'\n\n"
        "-- \n"
        "You receive this report because ana@example.com is subscribed to it.\n"
        f"Unsubscribe: {unsubscribe}\n"
    )
    title = "&lt;b&gt;Q&amp;A&lt;/b&gt; weekly"
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{title}</title></head>"
        '<body style="margin:0;padding:0;background:#f4f5f7">'
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="background:#f4f5f7">'
        '<tr><td align="center" style="padding:24px 12px">'
        '<table role="presentation" width="600" cellpadding="0" cellspacing="0" style="width:100%;max-width:600px;'
        'background:#ffffff;border:1px solid #e1e4e8;border-radius:8px">'
        f'<tr><td style="padding:24px 28px;{FONT};font-size:15px;line-height:1.5;color:#1f2328">'
        f'<h1 style="{FONT};font-size:20px;line-height:1.3;margin:0 0 16px;color:#1f2328">{title}</h1>'
        f"{MUTED_P}These charts cover 1 May 2026 – 27 Oct 2026 (UTC).</p>"
        f"{P}Numbers for the team<br>&lt;script&gt;x()&lt;/script&gt; &amp; co</p>"
        f'{P}<a href="{BASE}/shared/AbC123" {A}>See the report online</a></p>'
        f'<img src="cid:tile-01" alt="Sign-ups &lt;by week&gt;" {IMG}>'
        f'<img src="cid:tile-02" alt="Revenue &quot;net&quot; &amp; &#x27;gross&#x27;" {IMG}>'
        '<hr style="border:0;border-top:1px solid #e1e4e8;margin:20px 0">'
        f"{MUTED_P}You receive this report because ana@example.com is subscribed to it. "
        f'<a href="{unsubscribe}" {A}>Unsubscribe</a></p>'
        "</td></tr></table></td></tr></table></body></html>"
    )
    assert payload == {
        "personalizations": [{"to": [{"email": "ana@example.com"}]}],
        "from": {"email": "reports@example.com", "name": "Product analytics"},
        "subject": "<b>Q&A</b> weekly",
        "content": [{"type": "text/plain", "value": text}, {"type": "text/html", "value": html}],
        "headers": {"List-Unsubscribe": f"<{unsubscribe}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
        "categories": ["subscription-report"],
        "custom_args": {"subscription_id": SUBSCRIPTION},
        "tracking_settings": {"click_tracking": {"enable": False, "enable_text": False},
                              "subscription_tracking": {"enable": False}},
        "attachments": [
            {"content": base64.b64encode(b"\x89PNG\r\n\x1a\n\x01").decode(), "type": "image/png",
             "filename": "tile-01.png", "disposition": "inline", "content_id": "tile-01"},
            {"content": base64.b64encode(b"\x89PNG\r\n\x1a\n\x02\x02").decode(), "type": "image/png",
             "filename": "tile-02.png", "disposition": "inline", "content_id": "tile-02"},
        ],
    }


def test_the_title_is_the_one_heading_and_tile_titles_are_only_alt_text(tmp_path):
    """Each image draws its tile's title: the email names the report once and repeats no tile title."""
    html = composed(
        mailer(make_settings(tmp_path, None)),
        report(3), to="ana@example.com", unsubscribe_url=link_for("ana@example.com"),
        subscription_id=SUBSCRIPTION)["content"][1]["value"]
    body = html.split("<body", 1)[1]
    assert re.findall(r"<h\d\b", body) == ["<h1"]
    assert body.count("weekly") == 1  # the report's title: the heading only (<title> is in <head>)
    for tile in ("Sign-ups &lt;by week&gt;", "Revenue &quot;net&quot; &amp; &#x27;gross&#x27;", "Tile 3"):
        assert body.count(tile) == 1 and f'alt="{tile}"' in body
    assert "<style" not in html and all('style="' in tag for tag in re.findall(r"<(?:p|td|a|table|h1|img|hr)\b[^>]*>",
                                                                              body))


def test_charts_of_different_periods_name_the_whole_span_and_each_ones_own(tmp_path):
    year = Period(datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    morning = Period(datetime(2027, 1, 5, 6, tzinfo=UTC), datetime(2027, 1, 5, 12, 30, tzinfo=UTC))
    payload = composed(
        mailer(make_settings(tmp_path, None)),
        report(3, [year, None, morning]), to="ana@example.com", unsubscribe_url=link_for("ana@example.com"),
        subscription_id=SUBSCRIPTION)
    text, html = (c["value"] for c in payload["content"])
    span = "These charts cover 1 Jan 2026 00:00 – 5 Jan 2027 12:30 (UTC); each chart's own period is named with it."
    assert text.splitlines()[2] == span
    assert [line for line in text.splitlines() if line[:3] in ("1. ", "2. ", "3. ")] == [
        "1. Sign-ups <by week> — 1 Jan 2026 – 31 Dec 2026 (UTC)",
        "2. Revenue \"net\" & 'gross'",  # could not be computed: no period
        "3. Tile 3 — 5 Jan 2027 06:00 – 5 Jan 2027 12:30 (UTC)",
    ]
    assert f"{MUTED_P}{span.replace(chr(39), '&#x27;')}</p>" in html
    assert re.findall(r'<img src="cid:(tile-\d+)"[^>]*>(?:' + re.escape(MUTED_P) + r"([^<]*)</p>)?", html) == [
        ("tile-01", "1 Jan 2026 – 31 Dec 2026 (UTC)"), ("tile-02", ""),
        ("tile-03", "5 Jan 2027 06:00 – 5 Jan 2027 12:30 (UTC)")]


def test_a_report_without_periods_says_none(tmp_path):
    payload = composed(
        mailer(make_settings(tmp_path, None)),
        report(1, [None]), to="ana@example.com", unsubscribe_url=link_for("ana@example.com"),
        subscription_id=SUBSCRIPTION)
    assert all("cover" not in c["value"] for c in payload["content"])


def test_a_period_of_whole_days_names_its_last_day():
    assert str(SIX_MONTHS) == "1 May 2026 – 27 Oct 2026 (UTC)"
    assert str(Period(datetime(2026, 5, 1, tzinfo=UTC), datetime(2026, 5, 2, tzinfo=UTC))) == "1 May 2026 (UTC)"


def test_each_chart_links_to_its_insight(tmp_path):
    linked = report(2)
    first = f"{BASE}/projects/7/embed/insights/abc"
    linked = Report(linked.title, None, linked.link,
                    [replace(linked.images[0], link=first), replace(linked.images[1], period=None)])
    text, html = (c["value"] for c in composed(
        mailer(make_settings(tmp_path, None)), linked, to="ana@example.com",
        unsubscribe_url=link_for("ana@example.com"), subscription_id=SUBSCRIPTION)["content"])
    assert text.split("Charts (shown as images in the HTML version of this email):\n")[1].split("\n\n")[0] == (
        f"1. Sign-ups <by week>\n   {first}\n2. Revenue \"net\" & 'gross'")
    assert (f'<a href="{first}" style="display:block;border:0"><img src="cid:tile-01" alt="Sign-ups &lt;by week&gt;" '
            f'{IMG}></a>{MUTED_P}<a href="{first}" {A}>Open this chart</a></p>'
            f'<img src="cid:tile-02" alt="Revenue &quot;net&quot; &amp; &#x27;gross&#x27;" {IMG}><hr') in html
    with pytest.raises(InvalidRequest, match="Cannot email the link of chart 'Sign-ups <by week>'"):
        mailer(make_settings(tmp_path, None)).compose(
            Report("t", None, linked.link, [replace(linked.images[0], link="javascript:alert(1)")]),
            to="ana@example.com", unsubscribe_url=link_for("ana@example.com"), subscription_id=SUBSCRIPTION)


@pytest.mark.parametrize("count", [20, 101])
def test_every_tile_is_inline_in_order_without_a_cap(tmp_path, count):
    big = report(count)
    payload = composed(mailer(make_settings(tmp_path, None)), big, to="ana@example.com",
                       unsubscribe_url=link_for("ana@example.com"), subscription_id=SUBSCRIPTION)
    ids = [f"tile-{n:02d}" for n in range(1, count + 1)]
    attachments = payload["attachments"]
    assert [a["content_id"] for a in attachments] == ids and ids[-1] == f"tile-{count}"
    assert all(a["disposition"] == "inline" and a["type"] == "image/png" for a in attachments)
    assert [base64.b64decode(a["content"]) for a in attachments] == [image.png for image in big.images]
    html = payload["content"][1]["value"]
    assert re.findall(r'<img src="cid:([^"]+)" alt="([^"]*)"', html) == [
        (cid, escape(image.title)) for cid, image in zip(ids, big.images, strict=True)
    ]
    assert [line for line in payload["content"][0]["value"].splitlines() if line.startswith(f"{count}. ")] == [
        f"{count}. Tile {count}"
    ]


def test_sending_posts_exactly_the_composed_json_with_the_api_key(tmp_path, sendgrid):
    settings = make_settings(tmp_path, sendgrid.url)
    reports = mailer(settings)
    unsubscribe = link_for("ana@example.com")
    delivery = reports.send(report(), to="ana@example.com", unsubscribe_url=unsubscribe,
                            subscription_id=SUBSCRIPTION, key="sub-42-d1-ana")

    expected = composed(reports, report(), to="ana@example.com", unsubscribe_url=unsubscribe,
                        subscription_id=SUBSCRIPTION)
    assert sendgrid.received == [expected]
    assert sendgrid.authorizations == [f"Bearer {KEY}"]
    assert (delivery.attempts, delivery.error) == (1, None)
    assert delivery.sent_at is not None and delivery.where == f"sent through SendGrid ({sendgrid.url}, status 202)"
    assert not (tmp_path / "outbox").exists()


def test_a_429_is_retried_and_sent_on_the_second_attempt(tmp_path, sendgrid):
    sendgrid.script = [429]
    sleeps: list[float] = []
    delivery = mailer(make_settings(tmp_path, sendgrid.url), sleeps).send(
        report(), to="ana@example.com", unsubscribe_url=link_for("ana@example.com"),
        subscription_id=SUBSCRIPTION, key="sub-42-d1-ana",
    )
    assert delivery.attempts == 2 and delivery.sent_at is not None and delivery.error is None
    assert len(sendgrid.received) == 2 and sendgrid.received[0] == sendgrid.received[1]
    assert sleeps == [0.25]


def test_without_a_key_the_same_payload_goes_to_the_outbox(tmp_path, sendgrid):
    reports = mailer(make_settings(tmp_path, None))
    args = {"to": "ana@example.com", "unsubscribe_url": link_for("ana@example.com"), "subscription_id": SUBSCRIPTION}
    delivery = reports.send(report(), key="sub-42/d1 ana", **args)

    [written] = sorted((tmp_path / "outbox").iterdir())
    assert written.name.endswith("-sub-42_d1_ana.json") and written.name[:8].isdigit()
    assert json.loads(written.read_text()) == composed(reports, report(), **args)
    assert delivery.attempts == 1 and delivery.sent_at is not None and delivery.where == f"written to {written}"
    assert sendgrid.received == []


def test_one_refused_address_does_not_block_the_others(tmp_path, sendgrid):
    sendgrid.script = [202, 400, 202]
    reports = mailer(make_settings(tmp_path, sendgrid.url))
    people = ["ana@example.com", "bad@example.com", "bo@example.com"]
    deliveries = [
        reports.send(report(), to=to, unsubscribe_url=link_for(to), subscription_id=SUBSCRIPTION, key=f"d1-{n}")
        for n, to in enumerate(people)
    ]
    assert [d.sent_at is not None for d in deliveries] == [True, False, True]
    assert deliveries[1].attempts == 1 and "answered 400" in deliveries[1].error
    # Each recipient gets their own unsubscribe link, in the body and in the one-click header.
    assert [m["personalizations"][0]["to"][0]["email"] for m in sendgrid.received] == people
    assert [m["headers"]["List-Unsubscribe"] for m in sendgrid.received] == [f"<{link_for(to)}>" for to in people]


def test_a_report_too_large_for_email_fails_clearly_and_sends_nothing(tmp_path, sendgrid):
    reports = mailer(make_settings(tmp_path, sendgrid.url))
    args = {"to": "ana@example.com", "unsubscribe_url": link_for("ana@example.com"), "subscription_id": SUBSCRIPTION}
    too_big = Report(title="Everything", message=None, link=f"{BASE}/shared/x", images=[
        ReportImage(name=f"tile-{n}.png", title=f"Tile {n}", png=bytes(4 * MIB)) for n in range(4)
    ])  # 16 MiB of PNG is 21.3 MiB once base64-encoded

    with pytest.raises(ReportTooLarge, match=r"too large to email: its 4 images are 16\.0 MiB of PNG, 21\.3 MiB"):
        reports.compose(too_big, **args)
    delivery = reports.send(too_big, key="d1", **args)
    assert delivery.attempts == 0 and delivery.sent_at is None
    assert "No image was left out and nothing was sent" in delivery.error
    assert sendgrid.received == []

    just_fits = Report(title="Fits", message=None, link=f"{BASE}/shared/x",
                       images=[ReportImage(name="big.png", title="Big", png=bytes(15 * MIB))])  # 20 MiB encoded
    assert len(composed(reports, just_fits, **args)["attachments"]) == 1


def test_bad_addresses_and_urls_are_refused_before_sending(tmp_path):
    reports = mailer(make_settings(tmp_path, None))
    with pytest.raises(InvalidRequest, match="must be an email address"):
        reports.compose(report(), to="ana@example.com\nBcc: x@example.com", unsubscribe_url=link_for("a@b.co"),
                        subscription_id=SUBSCRIPTION)
    for bad in ("/unsubscribe/v1.a.b", "javascript:alert(1)", f"{BASE}/unsubscribe/a>b", f"{BASE}/u b"):
        with pytest.raises(InvalidRequest, match="EXPORT_API_BASE_URL"):
            reports.compose(report(), to="ana@example.com", unsubscribe_url=bad, subscription_id=SUBSCRIPTION)


def test_a_title_with_line_breaks_makes_a_one_line_subject(tmp_path):
    titled = Report(title="  Weekly\r\nBcc: x@example.com ", message=None, link=f"{BASE}/s", images=[])
    payload = composed(
        mailer(make_settings(tmp_path, None)),
        titled, to="ana@example.com", unsubscribe_url=link_for("ana@example.com"), subscription_id=SUBSCRIPTION
    )
    assert payload["subject"] == "Weekly Bcc: x@example.com"
    assert "attachments" not in payload  # SendGrid refuses an empty list


# ------------------------------------------------------------------------------------------------- tokens


@pytest.fixture()
def engine(store):
    return store.engine


def test_a_token_is_random_url_safe_and_resolves_to_its_claim(engine):
    tokens = [issue_unsubscribe(engine, subscription_id=SUBSCRIPTION, email="ana@example.com", version=3)
              for _ in range(2)]
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{32}", token) for token in tokens) and tokens[0] != tokens[1]
    for token in tokens:
        assert resolve_unsubscribe(engine, token) == UnsubscribeClaim(SUBSCRIPTION, "ana@example.com", 3)
    assert unsubscribe_url(BASE + "/", tokens[0]) == f"{BASE}/unsubscribe/{tokens[0]}"
    assert unsubscribe_url(BASE, tokens[0]) == f"{BASE}/unsubscribe/{tokens[0]}"


def test_a_token_reveals_nothing_and_the_database_keeps_only_its_hash(engine):
    import sqlalchemy as sa

    from export_pipeline.db import unsubscribe_tokens

    token = issue_unsubscribe(engine, subscription_id=SUBSCRIPTION, email="reveal.me@example.com", version=1)
    decoded = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    for secret in (b"reveal", b"example", SUBSCRIPTION.encode()):
        assert secret not in decoded and secret.decode() not in token
    with engine.connect() as conn:
        [row] = conn.execute(sa.select(unsubscribe_tokens).where(
            unsubscribe_tokens.c.email == "reveal.me@example.com")).all()
    assert row.token_sha256 == hashlib.sha256(token.encode()).hexdigest() and token not in tuple(map(str, row))


def test_the_version_is_carried_so_the_caller_can_revoke_old_links(engine):
    claims = [resolve_unsubscribe(engine, issue_unsubscribe(engine, subscription_id=SUBSCRIPTION,
                                                            email="ana@example.com", version=version))
              for version in (0, 1, 7)]
    assert [claim.version for claim in claims] == [0, 1, 7]
    for bad in (-1, True, "2"):
        with pytest.raises(ValueError, match="version must be an integer >= 0"):
            issue_unsubscribe(engine, subscription_id=SUBSCRIPTION, email="ana@example.com", version=bad)


def test_the_address_is_normalized(engine):
    token = issue_unsubscribe(engine, subscription_id=SUBSCRIPTION, email="  Ana.Lee@Example.COM\n", version=1)
    assert resolve_unsubscribe(engine, token).email == "ana.lee@example.com"


def flipped(text: str, position: int) -> str:
    other = ALPHABET[(ALPHABET.index(text[position]) + 1) % len(ALPHABET)]
    return text[:position] + other + text[position + 1:]


def test_any_changed_character_is_refused_with_an_actionable_message(engine):
    token = issue_unsubscribe(engine, subscription_id=SUBSCRIPTION, email="ana@example.com", version=1)
    for bad in [flipped(token, i) for i in range(len(token))]:
        with pytest.raises(InvalidUnsubscribeToken) as refused:
            resolve_unsubscribe(engine, bad)
    error = refused.value
    assert isinstance(error, InvalidRequest) and error.code == "invalid_unsubscribe_link"
    assert error.message == "This unsubscribe link is invalid."
    assert "use the unsubscribe link in the latest report email" in error.hint
    assert error.details == {"token": "no such token"}


@pytest.mark.parametrize("garbled", [
    "", "v1", "v1.abc.def", "A" * 31, "A" * 33, "A" * 31 + "+", "A" * 31 + "é", "A" * 32 + "\n", "a" * 3000,
    None,
])
def test_garbled_tokens_are_refused(garbled, engine):
    with pytest.raises(InvalidUnsubscribeToken, match="invalid"):
        resolve_unsubscribe(engine, garbled)
