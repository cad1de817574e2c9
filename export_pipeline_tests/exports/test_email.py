"""The finished-export email against a real HTTP server on loopback that speaks SendGrid's v3 `mail/send`:
exact payloads for a succeeded and a failed export, the outbox without a key, retries on 429/5xx/network
errors, no retry on other 4xx, the recipient rules, and `notify_email` through the API and the CLI."""

from __future__ import annotations

import json
import logging
import re
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from pydantic import SecretStr

from export_pipeline.accounts.emails import get_user_email, set_user_email
from export_pipeline.accounts.roles import Role, add_member
from export_pipeline.accounts.tokens import create_token
from export_pipeline.api.app import create_app
from export_pipeline.cli import main as cli
from export_pipeline.clickhouse.connection import ClickHouse
from export_pipeline.engine.spec import parse_spec
from export_pipeline.errors import ClickHouseUnavailable, InvalidRequest
from export_pipeline.exports.deps import ExportDeps, build_deps
from export_pipeline.exports.manifest import read_manifest
from export_pipeline.exports.requests import ExportRequest, ExportState
from export_pipeline.exports.run import run_export
from export_pipeline.storage import storage_from_url
from export_pipeline.storage.signed_links import download_signature
from export_pipeline_tests.fakes.exportdata import insert_events, known_events
from export_pipeline_tests.fakes.net import free_port
from export_pipeline_tests.fakes.sendgridapi import FakeSendGrid, fake_sendgrid

LOG = logging.getLogger("test")
PROJECT = 9401
MAINTAINER = "mira"  # no stored address, not an email address
STORED = "sam"  # has an address stored with `users set-email`
EMAIL_USER = "lee@example.com"  # a user name that is itself an address
KEY = "SG.test-key-9401"
API_BASE = "https://exports.example.com"
SIGNATURE = "\n\n-- \nExport pipeline\n"
NO_CLICK_TRACKING = {"click_tracking": {"enable": False, "enable_text": False}}


@pytest.fixture()
def sendgrid() -> Iterator[FakeSendGrid]:
    with fake_sendgrid(KEY) as fake:
        yield fake


@pytest.fixture(scope="module", autouse=True)
def known_data(clickhouse, events_table, store):
    insert_events(clickhouse, events_table, known_events(PROJECT))
    for user in (MAINTAINER, STORED, EMAIL_USER):
        add_member(store.engine, PROJECT, user, Role.MAINTAINER)
    set_user_email(store.engine, STORED, "sam.stored@example.com")


def mailing(deps: ExportDeps, host: str | None, **overrides) -> ExportDeps:
    """Deps whose emails go to `host` (a SendGrid API), or to the outbox when `host` is None."""
    update = {
        "sendgrid_api_key": SecretStr(KEY) if host else None,
        "sendgrid_api_host": host or "https://api.sendgrid.invalid",
        "email_retry_base_seconds": 0.001,
        "api_base_url": API_BASE + "/",  # a trailing slash must not double up in links
        **overrides,
    }
    return replace(deps, settings=deps.settings.model_copy(update=update))


def export(deps: ExportDeps, *, user: str = MAINTAINER, notify_email: str | None = None, **fields) -> ExportRequest:
    spec = parse_spec(project_id=PROJECT, requested_by=user, **fields)
    request = deps.store.create(spec, source="test", notify_email=notify_email)
    run_export(request.id, deps, run_id=str(uuid.uuid4()), run_is_active=lambda _: False, log=LOG)
    return deps.store.require(request.id)


def utc_seconds(moment: datetime | None) -> str:
    assert moment is not None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ready_payload(request: ExportRequest, to: str, files: list[tuple[str, int, int, str]], manifest_url: str,
                  *, local: bool, filters: str) -> dict:
    """The exact email for a succeeded export; `files` are (name, bytes, rows, url)."""
    expires = utc_seconds(request.expires_at)
    links_expire = utc_seconds(request.finished_at + timedelta(hours=24))  # EXPORT_DOWNLOAD_LINK_HOURS
    rows = sum(f[2] for f in files)
    contents = (f"{rows:,} events in {len(files)} file{'' if len(files) == 1 else 's'} "
                f"({request.spec.format.value}, {request.spec.compression.value}).")
    summary = f"Your export {request.id} of project {PROJECT} is ready: {contents}"
    expiry = (f"The links expire at {links_expire} (UTC); the files are deleted at {expires} (UTC)." if local
              else f"The links expire at {expires} (UTC); the files are deleted then.")
    listing = "".join(f"- {name}: {size(size_bytes)}, {n:,} rows\n  {url}\n" for name, size_bytes, n, url in files)
    text = (
        f"Hello {request.spec.requested_by},\n\n{summary}\n\nFiles:\n{listing}\n"
        f"Manifest (every file's rows, size and SHA-256):\n  {manifest_url}\n\n{expiry}\n"
        f"\nFilters: {filters}.{SIGNATURE}"
    )
    subject = f"Your export {request.id} of project {PROJECT} is ready"
    listed = " ".join(f"{name} [{url}] {size(size_bytes)} {n:,}" for name, size_bytes, n, url in files)
    html = (f"{subject} Hello {request.spec.requested_by}, {contents} File Size Rows {listed} "
            f"Manifest [{manifest_url}] (every file's rows, size and SHA-256). {expiry} Filters: {filters}.")
    return envelope(request, to, subject, text, html)


def seen(html: str) -> str:
    """What a reader sees of an HTML part (after the title in <head>), each link's target in brackets."""
    body = html.split("<body", 1)[1].split(">", 1)[1]
    body = re.sub(r'<a href="([^"]*)"[^>]*>(.*?)</a>', lambda m: f"{m.group(2)} [{m.group(1)}]", body)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", body).replace(" ,", ","))).strip()


def as_seen(mail: dict) -> dict:
    return {**mail, "content": [{**c, "value": seen(c["value"])} if c["type"] == "text/html" else c
                                for c in mail["content"]]}


def envelope(request: ExportRequest, to: str, subject: str, text: str, html: str) -> dict:
    return {
        "personalizations": [{"to": [{"email": to}]}],
        "from": {"email": "exports@localhost", "name": "Export pipeline"},
        "subject": subject,
        "content": [{"type": "text/plain", "value": text}, {"type": "text/html", "value": html}],
        "custom_args": {"export_id": request.id, "project_id": str(PROJECT)},
        "tracking_settings": NO_CLICK_TRACKING,
    }


def size(size_bytes: int) -> str:
    assert 1_000_000 <= size_bytes < 1_000_000_000  # every file of these tests is megabytes
    return f"{size_bytes / 1e6:.1f} MB ({size_bytes:,} bytes)"


def signed_link(deps: ExportDeps, request: ExportRequest, name: str) -> str:
    """A local folder's link in the email: signed, opening for 24 hours after the export finished."""
    expires = int((request.finished_at + timedelta(hours=24)).timestamp())
    signature = download_signature(deps.settings.secret_key, export_id=request.id, name=name, expires=expires)
    return f"{API_BASE}/downloads/{request.id}/{name}?expires={expires}&signature={signature}"


def test_a_succeeded_export_emails_each_file_with_its_link_and_the_expiry(deps, sendgrid):
    deps = mailing(deps, sendgrid.url)
    done = export(deps, notify_email=" ops@example.com ", format="ndjson",
                  compression="none", events=["signed_up"], date_from="2025-12-01", date_to="2026-02-28")

    assert done.state is ExportState.SUCCEEDED and done.row_count == 750
    [part] = read_manifest(deps.storage, done.manifest_key)["files"]
    assert [as_seen(mail) for mail in sendgrid.received] == [
        ready_payload(
            done, "ops@example.com", [(part["name"], part["bytes"], 750, signed_link(deps, done, "part-00000.ndjson"))],
            signed_link(deps, done, "manifest.json"), local=True,
            filters="2025-12-01T00:00:00Z to 2026-03-01T00:00:00Z (exclusive), events: signed_up",
        )
    ]
    assert (done.notify_email, done.notified_to, done.notify_error) == ("ops@example.com", "ops@example.com", None)
    # A whole document styled inline (mail clients drop <style>), the title once as its heading.
    html = sendgrid.received[0]["content"][1]["value"]
    subject = sendgrid.received[0]["subject"]
    assert html.startswith("<!doctype html>") and "<style" not in html
    assert html.count(subject) == 2 and f"<title>{subject}</title>" in html and re.search(f"<h1[^>]*>{subject}</h1>", html)
    assert all('style="' in tag for tag in re.findall(r"<(?:p|td|th|a|table|h1)\b[^>]*>", html))
    assert re.search(r'<p style="[^"]*background:#fff8c5[^"]*"><strong>The links expire at', html)
    assert done.notified_at is not None and done.notified_at >= done.finished_at


def test_a_failed_export_emails_the_reason_and_what_to_do(deps, sendgrid, tmp_path):
    unreachable = ClickHouse(f"http://127.0.0.1:{free_port()}/analytics", lock_dir=tmp_path, connect_timeout=1)
    deps = replace(mailing(deps, sendgrid.url), clickhouse=unreachable)
    spec = parse_spec(project_id=PROJECT, requested_by=MAINTAINER, format="csv")
    request = deps.store.create(spec, source="test", notify_email="ops@example.com")

    with pytest.raises(ClickHouseUnavailable):
        run_export(request.id, deps, run_id="r1", run_is_active=lambda _: False, log=LOG)

    failed = deps.store.require(request.id)
    assert failed.state is ExportState.FAILED and failed.error_code == "analytics_cluster_unavailable"
    summary = (f"Your export {request.id} of project {PROJECT} (csv, gzip) failed at "
               f"{utc_seconds(failed.finished_at)} (UTC).")
    reason = f"{failed.error} (analytics_cluster_unavailable)"
    hint = ("Request the export again: temporary problems (an unreachable cluster, a restarted worker) usually go "
            f"away. If it fails again, contact a maintainer of the export service and mention export {request.id}.")
    text = (f"Hello {MAINTAINER},\n\n{summary}\n\nReason: {reason}\n\nNo files were kept.\nWhat to do: {hint}\n\n"
            f"Filters: all time, all events.{SIGNATURE}")
    subject = f"Your export {request.id} of project {PROJECT} failed"
    failed_at = f"(csv, gzip) failed at {utc_seconds(failed.finished_at)} (UTC)."
    html = (f"{subject} Hello {MAINTAINER}, The export {failed_at} Reason: {reason} No files were kept. "
            f"What to do: {hint} "
            "Filters: all time, all events.")
    assert [as_seen(mail) for mail in sendgrid.received] == [
        envelope(request, "ops@example.com", subject, text, html)
    ]
    assert "unreachable" in failed.error.lower() or "connect" in failed.error.lower()
    assert failed.notified_at is not None and failed.notify_error is None


def test_a_refused_export_emails_how_to_get_access(deps, sendgrid, store):
    add_member(store.engine, PROJECT, "dev@example.com", Role.DEVELOPER)
    spec = parse_spec(project_id=PROJECT, requested_by="dev@example.com", format="csv")
    request = mailing(deps, sendgrid.url).store.create(spec, source="test")
    with pytest.raises(Exception, match="needs Maintainer"):
        run_export(request.id, mailing(deps, sendgrid.url), run_id="r1", run_is_active=lambda _: False, log=LOG)
    [mail] = sendgrid.received
    assert mail["personalizations"] == [{"to": [{"email": "dev@example.com"}]}]
    assert mail["subject"] == f"Your export {request.id} of project {PROJECT} failed"
    text = mail["content"][0]["value"]
    assert "exporting events needs Maintainer (40) or higher" in text
    assert f"What to do: Ask an Owner or Maintainer of project {PROJECT} for the Maintainer role" in text


def test_without_a_key_the_same_payload_goes_to_the_outbox(deps, sendgrid, tmp_path):
    home = tmp_path / "home"
    deps = mailing(deps, None, home=home)
    done = export(deps, notify_email="ops@example.com", format="ndjson", compression="none", events=["signed_up"])

    [written] = sorted((home / "outbox").iterdir())
    assert written.name.endswith(f"-{done.id}.json") and written.name[:8].isdigit()
    [part] = read_manifest(deps.storage, done.manifest_key)["files"]
    assert as_seen(json.loads(written.read_text())) == ready_payload(
        done, "ops@example.com", [(part["name"], part["bytes"], 750, signed_link(deps, done, "part-00000.ndjson"))],
        signed_link(deps, done, "manifest.json"), local=True, filters="all time, events: signed_up",
    )
    assert sendgrid.received == []
    assert done.notified_at is not None and done.notify_error is None


def test_a_429_is_retried_and_delivered_on_the_second_attempt(deps, sendgrid):
    sendgrid.script = [429]
    done = export(mailing(deps, sendgrid.url), notify_email="ops@example.com", format="csv", events=["signed_up"])

    assert len(sendgrid.received) == 2 and sendgrid.received[0] == sendgrid.received[1]
    assert sendgrid.received[0]["subject"] == f"Your export {done.id} of project {PROJECT} is ready"
    assert done.notified_at is not None and done.notify_error is None


def test_a_failing_sendgrid_never_fails_the_export_and_the_error_is_recorded(deps, sendgrid):
    sendgrid.always = 500
    done = export(mailing(deps, sendgrid.url), notify_email="ops@example.com", format="csv", events=["signed_up"])

    assert done.state is ExportState.SUCCEEDED and done.row_count == 750
    assert len(sendgrid.received) == 3
    assert done.notified_at is None and done.notified_to == "ops@example.com"
    assert done.notify_error.startswith(f"SendGrid ({sendgrid.url}) answered 500 Internal Server Error: ")
    assert "internal error" in done.notify_error and KEY not in done.notify_error


def test_a_rejected_email_is_not_retried(deps, sendgrid):
    sendgrid.always = 400
    done = export(mailing(deps, sendgrid.url), notify_email="ops@example.com", format="csv", events=["signed_up"])

    assert done.state is ExportState.SUCCEEDED
    assert len(sendgrid.received) == 1
    assert "answered 400" in done.notify_error and "The from address is not verified" in done.notify_error


def test_an_unreachable_sendgrid_is_retried_then_given_up(deps):
    host = f"http://127.0.0.1:{free_port()}"  # nothing listens here
    done = export(mailing(deps, host), notify_email="ops@example.com", format="csv", events=["signed_up"])

    assert done.state is ExportState.SUCCEEDED
    assert done.notify_error.startswith(f"SendGrid ({host}) unreachable: ")


def test_the_requesters_stored_address_is_used_when_the_request_names_none(deps, sendgrid):
    done = export(mailing(deps, sendgrid.url), user=STORED, format="csv", events=["signed_up"])
    [mail] = sendgrid.received
    assert mail["personalizations"] == [{"to": [{"email": "sam.stored@example.com"}]}]
    assert mail["content"][0]["value"].startswith(f"Hello {STORED},\n")
    assert (done.notify_email, done.notified_to) == (None, "sam.stored@example.com")


def test_a_user_name_that_is_an_address_is_used_and_otherwise_no_email_is_sent(deps, sendgrid, caplog):
    by_address = export(mailing(deps, sendgrid.url), user=EMAIL_USER, format="csv", events=["signed_up"])
    assert [m["personalizations"] for m in sendgrid.received] == [[{"to": [{"email": EMAIL_USER}]}]]
    assert by_address.notified_to == EMAIL_USER

    with caplog.at_level(logging.WARNING, logger="test"):
        nobody = export(mailing(deps, sendgrid.url), user=MAINTAINER, format="csv", events=["signed_up"])
    assert len(sendgrid.received) == 1
    assert (nobody.notified_to, nobody.notified_at, nobody.notify_error) == (None, None, None)
    assert f"Export {nobody.id} succeeded; no email sent" in caplog.text
    assert f"users set-email --user {MAINTAINER}" in caplog.text


def test_a_canceled_export_sends_no_email(deps, sendgrid):
    deps = mailing(deps, sendgrid.url, chunk_bytes=64 * 1024)
    spec = parse_spec(project_id=PROJECT, requested_by=MAINTAINER, format="csv")
    request = deps.store.create(spec, source="test", notify_email="ops@example.com")
    with pytest.raises(Exception, match="no longer owned"):
        run_export(request.id, deps, run_id="r1", run_is_active=lambda _: False, log=LOG,
                   on_progress=lambda _: deps.store.cancel(request.id))
    assert deps.store.require(request.id).state is ExportState.CANCELED
    assert sendgrid.received == []


def test_s3_exports_email_presigned_links_that_download(deps, sendgrid, moto_endpoint, monkeypatch):
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket="exports-email")
    deps = replace(mailing(deps, sendgrid.url), storage=storage_from_url("s3://exports-email/analytics"))
    done = export(deps, notify_email="ops@example.com", format="ndjson", compression="none", events=["signed_up"])

    [mail] = sendgrid.received
    [part] = read_manifest(deps.storage, done.manifest_key)["files"]
    text = mail["content"][0]["value"]
    urls = [line.strip() for line in text.splitlines() if line.startswith("  http")]
    assert len(urls) == 2
    prefix = f"{moto_endpoint}/exports-email/analytics/{PROJECT}/{done.id}/"
    assert urls[0].startswith(prefix + "part-00000.ndjson?") and urls[1].startswith(prefix + "manifest.json?")
    assert all("X-Amz-Signature=" in url for url in urls)
    assert len(urllib.request.urlopen(urls[0]).read()) == part["bytes"]
    assert as_seen(mail) == ready_payload(done, "ops@example.com", [(part["name"], part["bytes"], 750, urls[0])], urls[1],
                                 local=False, filters="all time, events: signed_up")


def test_invalid_addresses_are_refused_with_a_field_message(store):
    spec = parse_spec(project_id=PROJECT, requested_by=MAINTAINER, format="csv")
    for bad in ("not-an-address", "a@localhost", "two@@example.com", "x@example.com\nBcc: y@example.com"):
        with pytest.raises(InvalidRequest) as refused:
            store.create(spec, source="test", notify_email=bad)
        assert set(refused.value.details) == {"notify_email"}
        assert refused.value.details["notify_email"].startswith("must be an email address like name@example.com")


def test_api_stores_notify_email_and_rejects_an_invalid_one(settings, store, deps, sendgrid):
    token, _ = create_token(store.engine, MAINTAINER)
    api_settings = settings.model_copy(update={"api_max_in_flight_exports": 50})
    base = f"/api/v1/projects/{PROJECT}/exports"
    with TestClient(create_app(api_settings), headers={"Authorization": f"Bearer {token}"}) as http:
        created = http.post(base, json={"format": "json", "events": ["signed_up"], "notify_email": "ops@example.com"})
        bad = http.post(base, json={"format": "json", "notify_email": "not-an-address"})

        assert created.status_code == 202, created.text
        export_id = created.json()["id"]
        assert created.json()["notification"] == {"email": "ops@example.com", "sent_at": None, "error": None}
        assert store.require(export_id).notify_email == "ops@example.com"
        assert bad.status_code == 422
        assert bad.json()["error"]["details"] == {
            "notify_email": "must be an email address like name@example.com, got 'not-an-address'"
        }

        api_deps = mailing(build_deps(api_settings), sendgrid.url)
        run_export(export_id, api_deps, run_id="api-run", run_is_active=lambda _: False, log=LOG)
        notification = http.get(f"{base}/{export_id}").json()["notification"]
    assert [m["personalizations"] for m in sendgrid.received] == [[{"to": [{"email": "ops@example.com"}]}]]
    assert notification["email"] == "ops@example.com" and notification["error"] is None
    assert notification["sent_at"] == store.require(export_id).notified_at.isoformat().replace("+00:00", "Z")


def test_cli_sets_and_shows_a_users_address(store):
    runner = CliRunner()
    assert runner.invoke(cli, ["users", "set-email", "--user", "kim", "--email", "kim@example.com"]).exit_code == 0
    shown = runner.invoke(cli, ["users", "show", "--user", "kim"])
    assert shown.exit_code == 0 and shown.output.startswith("kim\tkim@example.com\tset ")
    assert get_user_email(store.engine, "kim").email == "kim@example.com"

    refused = runner.invoke(cli, ["users", "set-email", "--user", "kim", "--email", "kim at example"])
    assert refused.exit_code == 2 and "must be an email address" in refused.output
    missing = runner.invoke(cli, ["users", "show", "--user", "nobody-here"])
    assert missing.exit_code == 2 and "users set-email --user nobody-here" in missing.output
    assert runner.invoke(cli, ["users", "show", "--user", "x@example.com"]).output == (
        "x@example.com\tx@example.com\tthe user name (no address stored)\n"
    )
