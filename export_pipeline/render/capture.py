"""One render on a warm tab: set the viewport, load the page, wait until its charts have drawn, capture it whole.

The tab gets the chosen width, a small height and the device scale; it loads the URL and is polled until
`ready_expression` is true — by default `window.__chartsReady === true`, which the page sets once every chart
has drawn — or until the page sets `window.__chartsError` to a message. Then the document's full height is
measured and captured beyond the viewport (the layout is not resized, so nothing redraws): every tile of a
dashboard, however tall, at exactly `width * device_scale` pixels across (content overflowing to the right is
clipped rather than widening the image). Afterwards the cookies and storage of the page's origin are cleared.
"""

from __future__ import annotations

import asyncio
import base64
import math
import struct
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urldefrag, urlsplit

from export_pipeline.render.chromium import Chromium
from export_pipeline.render.devtools import first, settle
from export_pipeline.render.errors import RenderFailed, RenderTimeout

# The page is laid out at this height; the image is as tall as the document (and at least this tall).
INITIAL_HEIGHT = 300
READY_EXPRESSION = "window.__chartsReady === true"
READY_POLL_MS = 20
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Cleared for the page's origin after each render (not the HTTP cache: scripts and styles stay cached).
CLEARED_STORAGE = "cookies,local_storage,session_storage,indexeddb,websql,service_workers,cache_storage,file_systems"


class PageCrashed(Exception):
    """The renderer process of a tab crashed (Chromium itself is fine)."""


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) in pixels from a PNG's IHDR chunk."""
    if len(data) < 24 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@dataclass(frozen=True)
class Job:
    """One image to draw; `item` names it in errors ("insight 42 'Weekly signups'")."""

    url: str
    width: int
    item: str
    ready_expression: str
    device_scale: float

    def failure(self, message: str, *, hint: str, **details: object) -> RenderFailed:
        return RenderFailed(message, hint=hint, details={"item": self.item, "url": self.url, **details})

    def timeout(self, message: str, *, hint: str, **details: object) -> RenderTimeout:
        return RenderTimeout(message, hint=hint, details={"item": self.item, "url": self.url, **details})


@dataclass(eq=False)
class Tab:
    """A warm tab, alone in its incognito context (its own window), with our DevTools session to it."""

    chromium: Chromium
    context: Any  # pyppeteer.browser.BrowserContext
    page: Any  # pyppeteer.page.Page
    session: Any  # pyppeteer.connection.CDPSession: device metrics and screenshots go through this one
    crashed: asyncio.Future = field(repr=False)  # resolved with a PageCrashed if the page's renderer crashes
    metrics: tuple[int, float] | None = None  # (width, device scale) currently emulated
    renders: int = 0


async def open_tab(chromium: Chromium, command_seconds: float) -> Tab:
    stops = [chromium.disconnected]
    context = await first(chromium.browser.createIncognitoBrowserContext(), stops, command_seconds)
    try:
        page = await first(context.newPage(), stops, command_seconds)
        session = await first(page.target.createCDPSession(), stops, command_seconds)
    except BaseException:
        await settle(context.close())
        raise
    crashed: asyncio.Future = asyncio.get_running_loop().create_future()

    def on_crash(error: object) -> None:
        if not crashed.done():
            crashed.set_result(PageCrashed(str(error)))

    page.on("error", on_crash)
    return Tab(chromium, context, page, session, crashed)


async def close_tab(tab: Tab) -> None:
    if tab.chromium.alive():
        await settle(tab.context.close())


async def shoot(tab: Tab, job: Job, *, timeout_seconds: float, command_seconds: float) -> bytes:
    """`job` as PNG bytes; page load, readiness and capture each get `timeout_seconds`, any other DevTools
    step `command_seconds`. Raises what the browser's disconnection or the tab's crash resolves to."""
    stops = [tab.chromium.disconnected, tab.crashed]
    page, session = tab.page, tab.session
    tab.renders += 1
    if tab.metrics != (job.width, job.device_scale):
        await first(session.send("Emulation.setDeviceMetricsOverride", {
            "width": job.width, "height": INITIAL_HEIGHT, "deviceScaleFactor": job.device_scale, "mobile": False,
        }), stops, command_seconds)
        tab.metrics = (job.width, job.device_scale)
    phase = ["load"]
    try:
        outcome = await first(_load_and_wait(page, job, phase), stops, timeout_seconds)
    except TimeoutError:
        what = ("did not finish loading" if phase[0] == "load"
                else f"never signalled that its charts had drawn ({job.ready_expression})")
        raise job.timeout(
            f"Rendering {job.item} timed out after {timeout_seconds:g} s: {job.url} {what}.",
            hint="Check that every chart of the page loads (its queries may be slow or failing), "
            "or allow a longer render timeout.",
            timeout_seconds=timeout_seconds,
        ) from None
    if "error" in outcome:
        raise job.failure(
            f"The page of {job.item} reported an error: {outcome['error']}",
            hint="Fix the failing chart (open the URL in a browser to see it), then render again.",
            page_error=str(outcome["error"]),
        )
    height = max(INITIAL_HEIGHT, math.ceil(outcome.get("height") or 0))
    try:
        png = await first(_capture(session, job, height), stops, timeout_seconds)
    except TimeoutError:
        raise job.timeout(
            f"Capturing {job.item} took longer than {timeout_seconds:g} s ({job.url}).",
            hint="The page may be extremely tall; allow a longer render timeout.",
            timeout_seconds=timeout_seconds,
        ) from None
    expected = (round(job.width * job.device_scale), round(height * job.device_scale))
    got = png_size(png)
    if abs(got[0] - expected[0]) > 1 or abs(got[1] - expected[1]) > 1:  # (rounding of fractional scales)
        raise job.failure(
            f"Chromium returned a {got[0]}x{got[1]} image of {job.item}; expected {expected[0]}x{expected[1]}.",
            hint="The page may be too tall for one image; render its tiles separately.",
        )
    origin = _origin(page.url)
    if origin is not None:  # the next render on this tab starts without this one's cookies and storage
        await first(session.send("Storage.clearDataForOrigin", {"origin": origin, "storageTypes": CLEARED_STORAGE}),
                    stops, command_seconds)
    return png


async def _load_and_wait(page: Any, job: Job, phase: list[str]) -> dict:
    previous = page.url
    if previous not in ("", "about:blank") and urldefrag(previous).url == urldefrag(job.url).url and (
        "#" in previous or "#" in job.url
    ):
        # Only the fragment differs: Chromium would not reload the document (and its old ready flag).
        await page.goto("about:blank", timeout=0)
    response = await page.goto(job.url, waitUntil="load", timeout=0)  # our own timeout covers it
    if response is not None and response.status >= 400:
        raise job.failure(
            f"The page of {job.item} answered HTTP {response.status} ({job.url}).",
            hint="Check the URL and that the page is served to the renderer.", status=response.status,
        )
    phase[0] = "ready"
    handle = await page.waitForFunction(_ready_predicate(job.ready_expression), polling=READY_POLL_MS, timeout=0)
    outcome = await handle.jsonValue()
    return outcome if isinstance(outcome, dict) else {}


async def _capture(session: Any, job: Job, height: int) -> bytes:
    """`height` CSS px of the page, exactly `width` across, captured beyond the viewport (no relayout)."""
    result = await session.send("Page.captureScreenshot", {
        "format": "png",
        "clip": {"x": 0, "y": 0, "width": job.width, "height": height, "scale": 1},
        "captureBeyondViewport": True,
    })
    return base64.b64decode(result.get("data", ""))


def _ready_predicate(ready_expression: str) -> str:
    """Polled in the page: false until ready; then {height} of the whole document (measured as it gets ready,
    which saves a round trip), or {error} once the page sets `window.__chartsError`. A function, so that
    pyppeteer never mistakes the expression (which may hold `=>`) for one."""
    return (
        "() => {\n"
        "  const error = window.__chartsError;\n"
        "  if (typeof error === 'string' && error !== '') return {error: error};\n"
        f"  if (!({ready_expression})) return false;\n"
        "  const root = document.documentElement, body = document.body;\n"
        "  return {height: Math.max(root.scrollHeight, body ? body.scrollHeight : 0,"
        " root.getBoundingClientRect().height)};\n"
        "}"
    )


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") and parts.netloc else None
