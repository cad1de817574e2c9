"""`/docs` (Swagger UI) and `/redoc` in Debian's Chromium with the network off: the pages load only what the API
serves itself, list every operation of the document, and raise no script error. A screenshot of `/docs` is kept
in the test's folder, and copied to docs/screenshots/api-docs.png when EXPORT_PIPELINE_SCREENSHOTS=1."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from export_pipeline.api.app import create_app
from export_pipeline_tests.api.test_export_page import CHROMIUM, CHROMIUM_ARGS, needs_chromium
from export_pipeline_tests.api.test_openapi import OPERATION_IDS
from export_pipeline_tests.conftest import serving
from export_pipeline_tests.fakes.net import free_port

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "api-docs.png"


@pytest.fixture(scope="module")
def site(settings) -> Iterator[dict]:
    with serving(create_app(settings)) as url:
        document = httpx.get(f"{url}/openapi.json", timeout=60).json()
        yield {"url": url, "operations": sum(len(item) for item in document["paths"].values())}


async def offline_page(url: str, script: str, *args: object, screenshot: Path | None = None,
                       timeout: int = 60_000) -> dict:
    """Open `url` in Chromium with no network but the API's own address: every other request is refused
    (and listed), and a proxy that is not there stands behind the rest. What the function `script` returns
    (called with `args`) once it returns something true, within `timeout` ms, the requests refused, and the page's
    script errors."""
    from pyppeteer import launch

    api = urlsplit(url).netloc
    browser = await launch(executablePath=CHROMIUM, headless=False, handleSIGINT=False, handleSIGTERM=False,
                           handleSIGHUP=False, args=[*CHROMIUM_ARGS, f"--proxy-server=127.0.0.1:{free_port()}"])
    try:
        page = await browser.newPage()
        await page.setViewport({"width": 1280, "height": 900})
        refused: list[str] = []
        errors: list[str] = []

        # Chromium's Fetch domain pauses every request of the page until it is let through or failed.
        session = await page.target.createCDPSession()

        def answer(method: str, params: dict) -> None:
            # Not awaited (an event handler); a reply lost when the browser closes is no failure of the test.
            sent = asyncio.ensure_future(session.send(method, params))
            sent.add_done_callback(lambda done: done.cancelled() or done.exception())

        def route(paused: dict) -> None:
            request_url = paused["request"]["url"]
            if urlsplit(request_url).netloc == api:
                answer("Fetch.continueRequest", {"requestId": paused["requestId"]})
            else:
                refused.append(request_url)
                answer("Fetch.failRequest", {"requestId": paused["requestId"], "errorReason": "InternetDisconnected"})

        session.on("Fetch.requestPaused", route)
        await session.send("Fetch.enable", {"patterns": [{"urlPattern": "*"}]})
        page.on("pageerror", lambda error: errors.append(str(error)))
        await page.goto(url)
        drawn = await page.waitForFunction(script, {"timeout": timeout}, *args)
        seen = await drawn.jsonValue()
        if screenshot is not None:
            await page.screenshot(path=str(screenshot))
        return {"seen": seen, "refused": refused, "errors": errors}
    finally:
        await browser.close()


@needs_chromium
def test_swagger_ui_lists_every_operation_offline(site, tmp_path):
    shot = tmp_path / "api-docs.png"
    # Swagger UI draws one block per operation, each showing its id (displayOperationId).
    listed = """(count) => {
        const ids = [...document.querySelectorAll('.opblock .opblock-summary-operation-id')].map(e => e.textContent);
        return ids.length === count ? ids : false;
    }"""
    outcome = asyncio.run(offline_page(f"{site['url']}/docs", listed, site["operations"], screenshot=shot))
    assert outcome["refused"] == [] and outcome["errors"] == []
    assert sorted(outcome["seen"]) == sorted(OPERATION_IDS)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000  # drawn, not blank
    if os.environ.get("EXPORT_PIPELINE_SCREENSHOTS") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)


@needs_chromium
def test_redoc_lists_every_operation_offline(site):
    listed = """(count) => {
        const sections = document.querySelectorAll('[data-section-id^="operation/"]');
        return sections.length === count ? [...sections].map(s => s.dataset.sectionId) : false;
    }"""
    outcome = asyncio.run(offline_page(f"{site['url']}/redoc", listed, site["operations"]))
    assert outcome["refused"] == [] and outcome["errors"] == []
    assert sorted(section.removeprefix("operation/") for section in outcome["seen"]) == sorted(OPERATION_IDS)
