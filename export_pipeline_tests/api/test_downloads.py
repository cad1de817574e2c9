"""Downloads of a local folder's export files over a real server on loopback: the signed link the finished-export
email carries opens with no token and no cookie (in Debian's Chromium, clicked on a page of another site), and
both download routes answer `Content-Length`, one `Range` and `HEAD`; a changed or expired link answers 403, a
deleted export 410, an unknown one 404."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import http.server
import json
import logging
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from export_pipeline.accounts.roles import Role, add_member
from export_pipeline.accounts.tokens import create_token
from export_pipeline.api.app import create_app
from export_pipeline.clock import iso_utc, now_utc
from export_pipeline.db import export_requests
from export_pipeline.engine.spec import parse_spec
from export_pipeline.exports.deps import ExportDeps, build_deps
from export_pipeline.exports.download_links import links_expire_at
from export_pipeline.exports.manifest import read_manifest
from export_pipeline.exports.requests import ExportRequest
from export_pipeline.exports.run import run_export
from export_pipeline.settings import Settings
from export_pipeline.storage.signed_links import signed_download_url, verified_expiry
from export_pipeline_tests.api.test_export_page import CHROMIUM, CHROMIUM_ARGS, needs_chromium
from export_pipeline_tests.conftest import serving
from export_pipeline_tests.fakes.exportdata import insert_events, known_events
from export_pipeline_tests.fakes.net import free_port

PROJECT = 9651
PART = "part-00000.csv.zst"


@pytest.fixture(scope="module")
def site(settings, clickhouse, events_table, store) -> Iterator[dict]:
    insert_events(clickhouse, events_table, known_events(PROJECT))
    add_member(store.engine, PROJECT, "dana", Role.MAINTAINER)
    token, _ = create_token(store.engine, "dana")
    app = create_app(settings)
    with serving(app) as url:
        # The API's public address (EXPORT_API_BASE_URL), known once it is served: emails link there.
        public = settings.model_copy(update={"api_base_url": url})
        app.state.deps = replace(app.state.deps, settings=public)
        deps = build_deps(public)
        yield {"url": url, "token": token, "deps": deps, "done": finished_export(deps)}


def finished_export(deps: ExportDeps, **spec) -> ExportRequest:
    """A CSV export (zstd: not text, so a byte off anywhere shows) emailed to ops@example.com (the outbox)."""
    request = deps.store.create(parse_spec(project_id=PROJECT, requested_by="dana", format="csv",
                                           compression="zstd", **spec), source="test", notify_email="ops@example.com")
    run_export(request.id, deps, run_id=f"downloads-{request.id}", run_is_active=lambda _: False,
               log=logging.getLogger("test"))
    return deps.store.require(request.id)


def emailed_links(deps: ExportDeps, export: ExportRequest) -> list[str]:
    """The links in the text part of the export's email, as written to the outbox (no SendGrid key here)."""
    [mail] = deps.settings.outbox_dir.glob(f"*-{export.id}.json")
    text = json.loads(mail.read_text())["content"][0]["value"]
    return [line.strip() for line in text.splitlines() if line.startswith("  http")]


def stored(deps: ExportDeps, export: ExportRequest, name: str = PART) -> bytes:
    return deps.storage.read_bytes(f"{export.storage_prefix}/{name}")


def our_signature(key: bytes, export_id: str, name: str, expires: int) -> str:
    """The documented signature (storage/signed_links.py), computed here independently."""
    message = b"export-pipeline/download/v1\n" + json.dumps([export_id, name, expires], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(hmac.new(key, message, hashlib.sha256).digest()).rstrip(b"=").decode()


def test_the_email_links_each_file_by_a_signed_link_that_opens_for_24_hours(site):
    deps, done = site["deps"], site["done"]
    part_link, manifest_link = emailed_links(deps, done)
    expires = int((done.finished_at + timedelta(hours=24)).timestamp())
    for link, name in ((part_link, PART), (manifest_link, "manifest.json")):
        parts = urlsplit(link)
        assert f"{parts.scheme}://{parts.netloc}" == site["url"] and parts.path == f"/downloads/{done.id}/{name}"
        assert parse_qs(parts.query) == {"expires": [str(expires)],
                                         "signature": [our_signature(deps.settings.secret_key, done.id, name, expires)]}


def test_a_signed_link_downloads_the_file_with_no_token_and_no_cookie(site):
    deps, done = site["deps"], site["done"]
    part_link, manifest_link = emailed_links(deps, done)
    body = stored(deps, done)
    with httpx.Client(timeout=60) as anyone:
        whole = anyone.get(part_link)
        manifest = anyone.get(manifest_link)
    assert whole.status_code == 200 and whole.content == body
    assert whole.headers["content-length"] == str(len(body)) and whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-type"] == "application/octet-stream"
    assert whole.headers["content-disposition"] == f'attachment; filename="{PROJECT}-{done.id}-events-{PART}"'
    assert manifest.status_code == 200 and manifest.json() == read_manifest(deps.storage, done.manifest_key)
    assert manifest.headers["content-type"] == "application/json"


def test_one_range_answers_206_and_a_range_past_the_end_416(site):
    deps, done = site["deps"], site["done"]
    [part_link, _] = emailed_links(deps, done)
    body = stored(deps, done)
    size = len(body)
    with httpx.Client(timeout=60) as anyone:
        def ranged(header: str) -> httpx.Response:
            return anyone.get(part_link, headers={"Range": header})

        middle = ranged("bytes=10-19")
        assert (middle.status_code, middle.content) == (206, body[10:20])
        assert middle.headers["content-range"] == f"bytes 10-19/{size}" and middle.headers["content-length"] == "10"
        tail = ranged("bytes=-7")
        assert (tail.status_code, tail.content, tail.headers["content-range"]) == (
            206, body[-7:], f"bytes {size - 7}-{size - 1}/{size}")
        resumed = ranged(f"bytes={size - 100}-")
        assert (resumed.status_code, resumed.content) == (206, body[-100:])
        clipped = ranged(f"bytes=5-{size + 1000}")
        assert (clipped.status_code, clipped.content) == (206, body[5:])
        assert clipped.headers["content-range"] == f"bytes 5-{size - 1}/{size}"
        for whole_file in ("bytes=0-1,5-6", "items=0-1", "bytes=9-3"):  # several, another unit, garbled: ignored
            answer = ranged(whole_file)
            assert (answer.status_code, answer.content) == (200, body), whole_file
        for past_the_end in (f"bytes={size}-", f"bytes={size}-{size + 5}", "bytes=-0"):
            refused = ranged(past_the_end)
            assert refused.status_code == 416, past_the_end
            assert refused.headers["content-range"] == f"bytes */{size}"
            assert refused.json()["error"]["code"] == "range_not_satisfiable"
            assert refused.json()["error"]["details"] == {"size": size}
        with_validator = anyone.get(part_link, headers={"Range": "bytes=0-9", "If-Range": '"abc"'})
        assert (with_validator.status_code, with_validator.content) == (200, body)


def test_head_answers_the_headers_alone_on_both_routes(site):
    deps, done = site["deps"], site["done"]
    [part_link, _] = emailed_links(deps, done)
    size = len(stored(deps, done))
    api_file = f"{site['url']}/api/v1/projects/{PROJECT}/exports/{done.id}/files/{PART}"
    with httpx.Client(timeout=60) as anyone:
        by_link = anyone.head(part_link)
        by_token = anyone.head(api_file, headers={"Authorization": f"Bearer {site['token']}"})
        ranged_head = anyone.head(part_link, headers={"Range": "bytes=0-99"})
        without_token = anyone.head(api_file)
    for answer in (by_link, by_token):
        assert answer.status_code == 200 and answer.content == b""
        assert answer.headers["content-length"] == str(size) and answer.headers["accept-ranges"] == "bytes"
        assert answer.headers["content-disposition"] == f'attachment; filename="{PROJECT}-{done.id}-events-{PART}"'
    assert ranged_head.status_code == 206 and ranged_head.headers["content-range"] == f"bytes 0-99/{size}"
    assert without_token.status_code == 401


def test_the_token_route_answers_ranges_too(site):
    deps, done = site["deps"], site["done"]
    body = stored(deps, done)
    api_file = f"{site['url']}/api/v1/projects/{PROJECT}/exports/{done.id}/files/{PART}"
    with httpx.Client(timeout=60, headers={"Authorization": f"Bearer {site['token']}"}) as member:
        whole = member.get(api_file)
        first = member.get(api_file, headers={"Range": "bytes=0-3"})
    assert whole.content == body and whole.headers["content-length"] == str(len(body))
    assert (first.status_code, first.content, first.headers["content-range"]) == (
        206, body[:4], f"bytes 0-3/{len(body)}")


def link(deps: ExportDeps, export_id: str, name: str = PART, *, expires_at: datetime) -> str:
    return signed_download_url(deps.settings.api_base_url, deps.settings.secret_key, export_id=export_id, name=name,
                               expires_at=expires_at)


def test_a_changed_or_cut_link_answers_403_saying_to_ask_for_a_new_one(site):
    deps, done = site["deps"], site["done"]
    [part_link, _] = emailed_links(deps, done)
    signature = parse_qs(urlsplit(part_link).query)["signature"][0]
    other = "A" if signature[0] != "A" else "B"
    expires = parse_qs(urlsplit(part_link).query)["expires"][0]
    changed = [
        part_link.replace(signature, other + signature[1:]),  # the signature
        part_link.replace(f"expires={expires}", f"expires={int(expires) + 3600}"),  # a longer life
        part_link.replace(f"/{PART}?", "/manifest.json?"),  # another file of the export
        part_link.split("&signature=")[0],  # cut short by a mail app
        part_link.replace(f"expires={expires}", f"expires=0{expires}"),  # the same number, written otherwise
    ]
    with httpx.Client(timeout=60) as anyone:
        for url in changed:
            refused = anyone.get(url)
            assert refused.status_code == 403, url
            assert refused.json()["error"] == {
                "code": "invalid_download_link",
                "message": "This download link is not valid: it was changed or cut short.",
                "hint": "Open the link exactly as it was sent (some mail apps cut long links). Ask whoever sent it "
                        "for a new link, or download the file from the export page of its project while the export "
                        "lasts.",
                "details": {}}
        page = anyone.get(changed[0], headers={"Accept": "text/html,application/xhtml+xml"})
    assert page.status_code == 403 and page.headers["content-type"] == "text/html; charset=utf-8"
    assert "<h1>This download link does not work</h1>" in page.text and "Ask whoever sent it for a new link" in page.text


def test_an_expired_link_answers_403_and_says_where_to_get_the_file(site):
    deps, done = site["deps"], site["done"]
    expired_at = now_utc().replace(microsecond=0) - timedelta(minutes=1)
    with httpx.Client(timeout=60) as anyone:
        refused = anyone.get(link(deps, done.id, expires_at=expired_at))
    assert refused.status_code == 403
    assert refused.json()["error"] == {
        "code": "download_link_expired",
        "message": f"This download link expired at {iso_utc(expired_at)}.",
        "hint": "Ask whoever sent it for a new link, or download the file from the export page of its project "
                f"while the export lasts. Members of project {PROJECT} with the Maintainer role can download export "
                f"{done.id} until {iso_utc(done.expires_at)} on the export page, {site['url']}/projects/{PROJECT}/export.",
        "details": {}}


def test_a_deleted_export_answers_410_and_an_unknown_one_404(site):
    deps = site["deps"]
    deleted = finished_export(deps, events=["signed_up"])
    [part_link, _] = emailed_links(deps, deleted)
    with httpx.Client(timeout=60) as anyone:
        assert anyone.get(part_link).status_code == 200
        assert httpx.delete(f"{site['url']}/api/v1/projects/{PROJECT}/exports/{deleted.id}",
                            headers={"Authorization": f"Bearer {site['token']}"}).status_code == 200
        gone = anyone.get(part_link)
        gone_page = anyone.get(part_link, headers={"Accept": "text/html"})
        unknown = anyone.get(link(deps, "exp_20260101000000_0123456789", expires_at=now_utc() + timedelta(hours=1)))
    assert gone.status_code == 410 and gone.json()["error"] == {
        "code": "export_expired", "message": f"Export {deleted.id} has expired and its files were deleted.",
        "hint": "Request the export again.", "details": {}}
    assert gone_page.status_code == 410 and "<h1>This export has expired</h1>" in gone_page.text
    assert unknown.status_code == 404 and unknown.json()["error"] == {
        "code": "not_found", "message": "Export exp_20260101000000_0123456789 does not exist any more: it was deleted.",
        "hint": "Request the export again.", "details": {}}


def test_a_link_never_outlives_its_export(site):
    deps, done = site["deps"], site["done"]
    short_lived = replace(done, expires_at=done.finished_at + timedelta(hours=2))
    assert links_expire_at(deps.storage, deps.settings, short_lived) == short_lived.expires_at
    assert links_expire_at(deps.storage, deps.settings, done) == done.finished_at + timedelta(hours=24)
    week = deps.settings.model_copy(update={"download_link_hours": 24 * 7})
    assert links_expire_at(deps.storage, week, done) == done.expires_at  # the default TTL is 168 hours too

    # Past the export's own expiry (the hourly sweep not run yet) a link with time left is refused all the same.
    with deps.store.engine.begin() as conn:
        conn.execute(sa.update(export_requests).where(export_requests.c.id == done.id)
                     .values(expires_at=now_utc() - timedelta(seconds=1)))
    try:
        with httpx.Client(timeout=60) as anyone:
            assert anyone.get(link(deps, done.id, expires_at=now_utc() + timedelta(hours=1))).status_code == 410
    finally:
        with deps.store.engine.begin() as conn:
            conn.execute(sa.update(export_requests).where(export_requests.c.id == done.id)
                         .values(expires_at=done.expires_at))


def test_the_signing_key_is_made_once_in_the_data_folder_or_read_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("EXPORT_SECRET_KEY", raising=False)
    home = tmp_path / "home"
    first = Settings(EXPORT_PIPELINE_HOME=str(home)).secret_key
    assert len(first) == 64 and Settings(EXPORT_PIPELINE_HOME=str(home)).secret_key == first  # kept, not remade
    assert stat.S_IMODE((home / "secret.key").stat().st_mode) == 0o600
    assert [p.name for p in home.iterdir()] == ["secret.key"]  # no draft left behind
    assert Settings(EXPORT_PIPELINE_HOME=str(tmp_path / "other")).secret_key != first

    monkeypatch.setenv("EXPORT_SECRET_KEY", " " + "k" * 40 + "\n")
    assert Settings(EXPORT_PIPELINE_HOME=str(home)).secret_key == b"k" * 40
    monkeypatch.setenv("EXPORT_SECRET_KEY", "too-short")
    with pytest.raises(ValidationError, match="EXPORT_SECRET_KEY must be at least 32 characters"):
        Settings(EXPORT_PIPELINE_HOME=str(home))


def test_a_new_key_revokes_every_link(site):
    deps, done = site["deps"], site["done"]
    [part_link, _] = emailed_links(deps, done)
    query = parse_qs(urlsplit(part_link).query)
    claims = {"export_id": done.id, "name": PART, "expires": query["expires"][0], "signature": query["signature"][0]}
    assert verified_expiry(deps.settings.secret_key, **claims) == int(query["expires"][0])
    assert verified_expiry(b"another key of at least thirty-two bytes", **claims) is None


# ------------------------------------------------------------------------------------------ in Chromium


@contextmanager
def mail_page(html: str) -> Iterator[str]:
    """A page of another site (`localhost`, another port: not the API's `127.0.0.1`) standing in for a webmail."""
    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{port}/inbox"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


async def click_and_download(page_url: str, folder: Path) -> tuple[str, int]:
    """Click `#link` on `page_url` in Debian's Chromium, saving downloads in `folder`; the download's final
    state and the status the API answered the click with."""
    from pyppeteer import launch

    browser = await launch(executablePath=CHROMIUM, args=CHROMIUM_ARGS, headless=False,
                           handleSIGINT=False, handleSIGTERM=False, handleSIGHUP=False)
    try:
        finished: asyncio.Future = asyncio.get_running_loop().create_future()

        def progress(event: dict) -> None:
            if event["state"] in ("completed", "canceled") and not finished.done():
                finished.set_result(event["state"])

        browser._connection.on("Browser.downloadProgress", progress)
        await browser._connection.send("Browser.setDownloadBehavior", {
            "behavior": "allow", "downloadPath": str(folder), "eventsEnabled": True})
        page = await browser.newPage()
        statuses: list[int] = []
        page.on("response", lambda response: statuses.append(response.status) if "/downloads/" in response.url
                else None)
        await page.goto(page_url)
        await page.click("#link")
        state = await asyncio.wait_for(finished, timeout=60)
        return state, statuses[0]
    finally:
        await browser.close()


@needs_chromium
def test_the_emailed_link_downloads_in_chromium_from_another_site(site, tmp_path):
    deps, done = site["deps"], site["done"]
    [part_link, _] = emailed_links(deps, done)
    folder = tmp_path / "downloads"
    folder.mkdir()
    with mail_page(f'<!doctype html><title>Inbox</title><p>Your export is ready: <a id="link" href="{part_link}">'
                   f"{PART}</a></p>") as inbox:
        assert urlsplit(inbox).hostname != urlsplit(site["url"]).hostname  # another site, not only another port
        state, status = asyncio.run(click_and_download(inbox, folder))
    assert (state, status) == ("completed", 200)
    [saved] = folder.iterdir()
    assert saved.name == f"{PROJECT}-{done.id}-events-{PART}"
    assert saved.read_bytes() == stored(deps, done)
