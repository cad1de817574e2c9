"""The export page in headless Debian Chromium (pyppeteer), against the API served on loopback."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import asynccontextmanager

import pytest
import sqlalchemy as sa

from export_pipeline.accounts.roles import Role, add_member
from export_pipeline.accounts.tokens import create_token
from export_pipeline.api.app import create_app
from export_pipeline.clock import now_utc
from export_pipeline.db import user_emails
from export_pipeline.exports.deps import build_deps
from export_pipeline.exports.requests import ExportState
from export_pipeline.exports.run import run_export
from export_pipeline_tests.conftest import serving
from export_pipeline_tests.fakes.exportdata import insert_events, known_events

PROJECT = 9601
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


@pytest.fixture(scope="module")
def site(settings, clickhouse, events_table, store) -> Iterator[dict]:
    insert_events(clickhouse, events_table, known_events(PROJECT))
    add_member(store.engine, PROJECT, "maria", Role.MAINTAINER)
    with store.engine.begin() as conn:
        conn.execute(sa.delete(user_emails).where(user_emails.c.user_name == "maria"))
        conn.execute(sa.insert(user_emails).values(user_name="maria", email="maria@example.com", updated_at=now_utc()))
    token, _ = create_token(store.engine, "maria")
    with serving(create_app(settings)) as url:
        yield {"url": url, "token": token, "deps": build_deps(settings)}


@asynccontextmanager
async def browser_page(url: str):
    """A page of Debian's Chromium at `url` (pyppeteer is given the binary: it never downloads one)."""
    from pyppeteer import launch

    browser = await launch(executablePath=CHROMIUM, args=CHROMIUM_ARGS, headless=False,
                           handleSIGINT=False, handleSIGTERM=False, handleSIGHUP=False)
    try:
        page = await browser.newPage()
        await page.goto(url)
        yield page
    finally:
        await browser.close()


def run_queued_export(deps, project_id: int) -> str:
    """What the Dagster run does once the sensor picks the request up."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        queued = [r for r in deps.store.in_state(ExportState.QUEUED) if r.spec.project_id == project_id]
        if queued:
            run_export(queued[-1].id, deps, run_id="page-test", run_is_active=lambda _: False, log=logging.getLogger())
            return queued[-1].id
        time.sleep(0.2)
    raise AssertionError("the page never created an export")


needs_chromium = pytest.mark.skipif(
    not shutil.which("chromium") and not os.environ.get("CI"),  # in CI a missing browser must fail, not skip
    reason="Debian's chromium is installed by `make test`",
)


@needs_chromium
def test_export_page_requests_an_export_and_shows_the_download_link(site, tmp_path):
    async def scenario() -> dict:
        async with browser_page(f"{site['url']}/projects/{PROJECT}/export") as page:
            await page.waitForSelector("#token-form:not([hidden])")
            await page.type("#token", site["token"])
            await page.click("#token-form button")
            await page.waitForSelector("#open-export:not([hidden])")
            prefilled = await page.evaluate("document.getElementById('email').value")
            await page.click("#open-export")
            await page.select("#format", "csv")
            await page.select("#compression", "zstd")
            await page.evaluate("document.getElementById('date-from').value = '2026-01-15'")
            await page.evaluate("document.getElementById('date-to').value = '2026-01-15'")
            await page.click("#submit-export")
            await page.waitForFunction("document.getElementById('status').textContent.includes('is queued')")
            queued_bar = await page.evaluate("!document.getElementById('progress').hidden")
            export_id = await asyncio.get_running_loop().run_in_executor(None, run_queued_export, site["deps"], PROJECT)
            await page.waitForSelector("a.download", timeout=30_000)
            status = await page.evaluate("document.getElementById('status').textContent")
            link = await page.evaluate("document.querySelector('a.download').href")
            saved_as = await page.evaluate("document.querySelector('a.download').download")
            # What the browser does with a plain link: no Authorization header, the page's cookie only.
            by_link = await page.evaluate("""async (href) => {
                const answer = await fetch(href);
                return [answer.status, (await answer.arrayBuffer()).byteLength];
            }""", link)
            await page.waitForFunction(f"document.querySelector('[data-export-id=\"{export_id}\"] .state')"
                                       ".textContent === 'succeeded'")
            recent = await page.evaluate(f"document.querySelector('[data-export-id=\"{export_id}\"]').textContent")
            done_bar = await page.evaluate("!document.getElementById('progress').hidden")
            await page.screenshot(path=str(tmp_path / "export-page.png"))
            return {"prefilled": prefilled, "status": status, "link": link, "export_id": export_id,
                    "saved_as": saved_as, "by_link": by_link,
                    "bars": (queued_bar, done_bar), "recent": recent}

    seen = asyncio.run(scenario())
    export = site["deps"].store.require(seen["export_id"])
    assert seen["prefilled"] == "maria@example.com"
    assert (export.spec.format.value, export.spec.compression.value, export.notify_email) == (
        "csv", "zstd", "maria@example.com")
    assert seen["bars"] == (True, False)  # a progress bar while queued or running, gone once ready
    assert seen["recent"] == (f"{export.id} · csv · succeeded · 2,510 events · "
                              f"{export.created_at:%a, %d %b %Y %H:%M:%S} GMT")
    assert export.spec.date_to is not None and export.spec.date_to.isoformat() == "2026-01-16T00:00:00+00:00"
    assert seen["status"].startswith(f"Export {export.id} is ready: {export.row_count:,} events.")
    assert f"Links expire {export.expires_at:%a, %d %b %Y %H:%M:%S} GMT." in seen["status"]
    assert export.row_count == 2_510
    assert seen["link"] == f"{site['url']}/api/v1/projects/{PROJECT}/exports/{export.id}/files/part-00000.csv.zst"
    assert seen["saved_as"] == f"{PROJECT}-{export.id}-events-part-00000.csv.zst"
    stored = site["deps"].storage.open_reader(f"{export.storage_prefix}/part-00000.csv.zst").read()
    assert seen["by_link"] == [200, len(stored)]


@needs_chromium
def test_export_page_labels_each_export_by_its_resource(site):
    """The page's label of an export, as the recent list and the status line show it, from the API's JSON."""
    exports = [{"resource": resource, "row_count": 1234} for resource in
               ("events", "persons", "groups", "cohort", "recordings", "insight", "dashboard")]

    async def scenario() -> list[str]:
        async with browser_page(f"{site['url']}/projects/{PROJECT}/export") as page:
            return await page.evaluate("(exports) => exports.map(holds)", exports)

    assert asyncio.run(scenario()) == [
        "1,234 events", "1,234 persons", "1,234 groups", "cohort: 1,234 persons",
        "recordings: 1,234 rows (sessions and snapshots)", "insight", "dashboard"]


@needs_chromium
def test_export_page_says_when_the_token_is_refused(site):
    async def scenario() -> str:
        async with browser_page(f"{site['url']}/projects/{PROJECT}/export") as page:
            await page.waitForSelector("#token-form:not([hidden])")
            await page.type("#token", "epat_not-a-real-token")
            await page.click("#token-form button")
            await page.waitForFunction("document.getElementById('status').textContent.length > 0")
            return await page.evaluate("document.getElementById('status').textContent")

    assert asyncio.run(scenario()) == "That token was not accepted."
