"""Full-page PNGs of insight and dashboard pages, drawn by Debian's Chromium through pyppeteer.

    with PngRenderer(executable_path="/usr/bin/chromium", max_concurrency=2) as renderer:
        png = renderer.render(url, width=INSIGHT_WIDTH, item="insight 42 'Weekly signups'")

One Chromium process serves every render of a `PngRenderer`. It is started on the first render and owned by
an asyncio event loop on a background thread (pyppeteer is asyncio-based), so `render` is a plain blocking call
that any thread may make: FastAPI worker threads, Dagster ops, the CLI. At most `max_concurrency` renders run
at once; further calls wait their turn.

Tabs are kept warm: each concurrent slot renders in its own tab, opened once (the other slots' tabs while the
first image renders) and reused. Opening a tab starts a renderer process, ~0.3 s of CPU: a new tab per image
measured ~1.5 PNG/s on 2 cores, against ~5.5 PNG/s with warm tabs that only navigate. Each tab lives in its
own incognito browser context, which in headless Chromium is its own window: tabs sharing a window are
hidden, and hidden pages run no requestAnimationFrame, so charts drawn in an animation frame would never
finish when two renders overlap. After every render the cookies and storage of the page's origin are
cleared; a tab is replaced after any failure and after `RECYCLE_AFTER` renders.

A render: the tab gets the chosen width, a small height and the device scale; it loads the URL and is polled
until `ready_expression` is true — by default `window.__chartsReady === true`, which the page sets once every
chart has drawn — or until the page sets `window.__chartsError` to a message. Then the document's full height
is measured and captured beyond the viewport (the layout is not resized, so nothing redraws): every tile of a
dashboard, however tall, at exactly `width * device_scale` pixels across (content overflowing to the right is
clipped rather than widening the image).

If Chromium dies (crash, OOM kill), the next render starts a new one, and the render that was under way when
it died is retried once on the new browser. pyppeteer is always given `executable_path`: it never downloads
a browser.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import logging
import math
import os
import shutil
import struct
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Awaitable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import urldefrag, urlsplit

from export_pipeline.errors import ExportPipelineError, InvalidRequest

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_EXECUTABLE = "/usr/bin/chromium"
# The flags of the project's browser tests, plus: keep every page painting and its timers at full rate, and no
# scrollbars (a scrollbar would narrow the layout while the page is taller than the viewport).
CHROMIUM_ARGS: tuple[str, ...] = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--disable-renderer-backgrounding", "--disable-backgrounding-occluded-windows", "--hide-scrollbars",
    "--mute-audio",
)
MIN_WIDTH, MAX_WIDTH = 400, 3000
INSIGHT_WIDTH, DASHBOARD_WIDTH = 800, 1920
DEFAULT_DEVICE_SCALE = 2.0
MAX_DEVICE_SCALE = 4.0
# The page is laid out at this height; the image is as tall as the document (and at least this tall).
INITIAL_HEIGHT = 300
READY_EXPRESSION = "window.__chartsReady === true"
READY_POLL_MS = 20
RECYCLE_AFTER = 100  # renders per tab before it is replaced by a fresh one
CLOSE_SECONDS = 5.0  # at least this long for Chromium to open or close a tab, answer a command, or exit
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Cleared for the page's origin after each render (not the HTTP cache: scripts and styles stay cached).
CLEARED_STORAGE = "cookies,local_storage,session_storage,indexeddb,websql,service_workers,cache_storage,file_systems"


class RenderTimeout(ExportPipelineError):
    """The page did not load, signal that its charts had drawn, or get captured within the timeout."""

    code = "render_timeout"


class RenderFailed(ExportPipelineError):
    """The page reported an error or could not be loaded, or Chromium failed."""

    code = "render_failed"


class _BrowserGone(Exception):
    """Chromium exited (or its DevTools connection dropped) under a render."""


class _PageCrashed(Exception):
    """The renderer process of a tab crashed (Chromium itself is fine)."""


# ---------------------------------------------------------------------------------------------- validation


def check_width(width: int) -> int:
    """`width` in CSS pixels, 400..3000; InvalidRequest naming the field otherwise."""
    if isinstance(width, bool) or not isinstance(width, int) or not MIN_WIDTH <= width <= MAX_WIDTH:
        raise InvalidRequest(
            f"Image width must be a whole number of pixels from {MIN_WIDTH} to {MAX_WIDTH}; got {width!r}.",
            hint=f"Use {INSIGHT_WIDTH} for an insight or {DASHBOARD_WIDTH} for a dashboard.",
            details={"width": f"must be an integer from {MIN_WIDTH} to {MAX_WIDTH}"},
        )
    return width


def check_device_scale(device_scale: float) -> float:
    """`device_scale` above 0 and at most 4; InvalidRequest naming the field otherwise."""
    if isinstance(device_scale, bool) or not isinstance(device_scale, int | float) or not (
        0 < device_scale <= MAX_DEVICE_SCALE
    ):
        raise InvalidRequest(
            f"Device scale must be above 0 and at most {MAX_DEVICE_SCALE:g}; got {device_scale!r}.",
            hint=f"Use {DEFAULT_DEVICE_SCALE:g} for sharp images on high-density screens.",
            details={"device_scale": f"must be a number above 0 and at most {MAX_DEVICE_SCALE:g}"},
        )
    return float(device_scale)


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) in pixels from a PNG's IHDR chunk."""
    if len(data) < 24 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


# --------------------------------------------------------------------------------------------- internals


@dataclass(frozen=True)
class _Job:
    url: str
    width: int
    item: str
    ready_expression: str
    device_scale: float

    def failure(self, message: str, *, hint: str, **details: object) -> RenderFailed:
        return RenderFailed(message, hint=hint, details={"item": self.item, "url": self.url, **details})


@dataclass(eq=False)
class _Chromium:
    """One launched browser: pyppeteer's Browser, its process and its own profile folder."""

    browser: Any  # pyppeteer.browser.Browser
    process: subprocess.Popen
    profile: str
    # Resolved with a _BrowserGone when the DevTools connection drops (so it can be raced against).
    disconnected: asyncio.Future = field(repr=False)
    stopped: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return not self.stopped and not self.disconnected.done() and self.process.poll() is None


@dataclass(eq=False)
class _Tab:
    """A warm tab, alone in its incognito context (its own window), with our DevTools session to it."""

    chromium: _Chromium
    context: Any  # pyppeteer.browser.BrowserContext
    page: Any  # pyppeteer.page.Page
    session: Any  # pyppeteer.connection.CDPSession: device metrics and screenshots go through this one
    crashed: asyncio.Future = field(repr=False)  # resolved with a _PageCrashed if the page's renderer crashes
    metrics: tuple[int, float] | None = None  # (width, device scale) currently emulated
    renders: int = 0


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


def _drop_outcome(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log it as never retrieved


async def _first(work: Awaitable[T], stops: Sequence[asyncio.Future], seconds: float) -> T:
    """`work`'s result; or raise what a resolved stop future holds (an exception instance); or TimeoutError.

    When a stop or the timeout comes first, the work is left to end on its own and its outcome dropped; it is
    not cancelled: that could cancel a DevTools reply pyppeteer is waiting for, and pyppeteer resolving a
    cancelled reply later raises inside its receive loop, which would silently end the connection. Callers
    then close the tab or the browser the work runs in, which ends it promptly."""
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task, *stops}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        return task.result()
    task.add_done_callback(_drop_outcome)
    for stop in stops:
        if stop in done:
            raise stop.result()
    raise TimeoutError


async def _settle(work: Awaitable[object], seconds: float) -> None:
    """Housekeeping (closing a tab or the browser): wait up to `seconds`; its failure is not the render's."""
    with suppress(Exception):
        await _first(work, (), seconds)


def _quiet_pyppeteer(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The loop's exception handler. When Chromium dies, pyppeteer fails the replies it was waiting for, some
    of which nobody awaits (it sends to a tab without waiting for the browser's acknowledgement); asyncio would
    log each as "exception was never retrieved". Those go to debug; anything else is logged as usual."""
    error = context.get("exception")
    if error is not None and type(error).__module__.startswith("pyppeteer"):
        log.debug("pyppeteer: %s: %s", context.get("message"), error)
        return
    loop.default_exception_handler(context)


async def _exited(process: subprocess.Popen, seconds: float) -> bool:
    """Whether the process exited (and was reaped) within `seconds`."""
    deadline = time.monotonic() + seconds
    while process.poll() is None:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def _remove_profile(path: str, seconds: float = 3.0) -> None:
    """Remove a browser's profile folder until it stays removed: Chromium's helper processes can outlive the
    browser process by a moment and write into it (the network service saves its state as it exits)."""
    deadline = time.monotonic() + seconds
    while True:
        shutil.rmtree(path, ignore_errors=True)
        time.sleep(0.2)
        if not os.path.exists(path) or time.monotonic() > deadline:
            return


def _kill(processes: dict[int, tuple[subprocess.Popen, str]]) -> None:
    """Last resort (close() failing, or a renderer never closed): kill and reap every Chromium left."""
    for process, profile in list(processes.values()):
        with suppress(OSError):
            process.kill()
        with suppress(Exception):
            process.wait(CLOSE_SECONDS)
        _remove_profile(profile)
    processes.clear()


def _abandon(loop: asyncio.AbstractEventLoop, processes: dict[int, tuple[subprocess.Popen, str]]) -> None:
    """Finalizer of a renderer garbage-collected, or still open at interpreter exit."""
    _kill(processes)
    with suppress(RuntimeError):
        loop.call_soon_threadsafe(loop.stop)


# ---------------------------------------------------------------------------------------------- renderer


class PngRenderer:
    """Full-page PNGs from one reused Chromium; thread-safe, blocking `render`. Close it (or use `with`)."""

    def __init__(
        self,
        *,
        executable_path: str = DEFAULT_EXECUTABLE,
        max_concurrency: int = 2,
        timeout_seconds: float = 30.0,
        extra_args: Sequence[str] = (),
    ) -> None:
        if not executable_path:
            # pyppeteer downloads a Chromium when it is given no executable: never let that happen.
            raise ValueError("executable_path is required (pyppeteer must never download a browser)")
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if not timeout_seconds > 0:
            raise ValueError("timeout_seconds must be positive")
        self.executable_path = executable_path
        self.max_concurrency = max_concurrency
        self.timeout_seconds = float(timeout_seconds)
        self.extra_args = tuple(extra_args)
        # For a single DevTools step of a render (open a tab, set the viewport...), however short the timeout.
        self._command_seconds = max(CLOSE_SECONDS, self.timeout_seconds)
        self.launches = 0  # browsers started so far, the first one included
        self._lock = threading.Lock()
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._finalizer: weakref.finalize | None = None
        # pid -> (process, profile folder) of every Chromium not yet stopped; also read by the finalizer.
        self._processes: dict[int, tuple[subprocess.Popen, str]] = {}
        # Loop-side state, only touched on the loop's thread.
        self._current: _Chromium | None = None
        self._idle: list[_Tab] = []
        self._closing = False
        self._slots: asyncio.Semaphore | None = None
        self._launching: asyncio.Lock | None = None
        self._renders: set[asyncio.Task] = set()
        self._prewarming: asyncio.Future | None = None

    # ------------------------------------------------------------------------------------------- public

    def render(
        self,
        url: str,
        *,
        width: int,
        item: str,
        ready_expression: str = READY_EXPRESSION,
        device_scale: float = DEFAULT_DEVICE_SCALE,
    ) -> bytes:
        """The page at `url` as full-page PNG bytes, `width * device_scale` pixels wide.

        `item` names what is drawn ("insight 42 'Weekly signups'") in errors. Raises InvalidRequest (width or
        scale), RenderTimeout (not loaded and ready within `timeout_seconds`) or RenderFailed (the page set
        `window.__chartsError`, could not be loaded, crashed, or Chromium died twice)."""
        job = _Job(url, check_width(width), item, ready_expression, check_device_scale(device_scale))
        loop = self._ensure_loop()
        if threading.current_thread() is self._thread:
            raise RuntimeError("PngRenderer.render blocks; it cannot be called from the renderer's own loop")
        future = asyncio.run_coroutine_threadsafe(self._render(job), loop)
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            raise job.failure(f"Rendering {item} was cancelled: the renderer was closed.",
                              hint="Render again with an open renderer.") from None
        # If this thread is interrupted instead, the render ends on its own (within its timeout), unheeded.

    @property
    def browser_pid(self) -> int | None:
        """The pid of the running Chromium, if one is running."""
        current = self._current
        return current.pid if current is not None and current.alive() else None

    def close(self) -> None:
        """Stop Chromium (reaping its process) and the loop thread. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=4 * CLOSE_SECONDS)
        except Exception:
            log.warning("the renderer did not shut down cleanly; killing Chromium", exc_info=True)
        finally:
            _kill(self._processes)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=2 * CLOSE_SECONDS)
            if not thread.is_alive():
                loop.close()
            if self._finalizer is not None:
                self._finalizer.detach()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ------------------------------------------------------------------------------------ loop & browser

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                raise RuntimeError("this PngRenderer is closed")
            if self._loop is None:
                loop = asyncio.new_event_loop()
                loop.set_exception_handler(_quiet_pyppeteer)
                thread = threading.Thread(target=loop.run_forever, name="png-renderer", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
                self._finalizer = weakref.finalize(self, _abandon, loop, self._processes)
            return self._loop

    async def _chromium(self) -> _Chromium:
        """The running browser, launched now if there is none or it died."""
        if self._launching is None:
            self._launching = asyncio.Lock()
        async with self._launching:
            current = self._current
            if current is not None and current.alive():
                return current
            if current is not None:
                log.warning("Chromium (pid %s) has exited; starting a new one", current.pid)
                await self._discard(current)
            if self._closing:
                raise RenderFailed("The renderer was closed.", hint="Render again with an open renderer.")
            self._current = await self._launch()
            if self.max_concurrency > 1:  # the other slots' tabs open while the first render runs
                self._prewarming = asyncio.ensure_future(self._prewarm(self._current))
            return self._current

    async def _launch(self) -> _Chromium:
        if not os.access(self.executable_path, os.X_OK):
            raise RenderFailed(
                f"Chromium is not installed at {self.executable_path}.",
                hint="Install Debian's chromium (apt-get install chromium) or pass executable_path.",
                details={"executable_path": self.executable_path},
            )
        from pyppeteer.launcher import Launcher

        loop = asyncio.get_running_loop()
        profile = tempfile.mkdtemp(prefix="export-pipeline-chromium-")
        launcher = Launcher(
            executablePath=self.executable_path,
            args=[*CHROMIUM_ARGS, *self.extra_args],
            headless=False,  # `--headless=new` is in the args; pyppeteer's `headless` means the old mode
            userDataDir=profile,
            defaultViewport=None,  # every tab sets its own
            autoClose=False, handleSIGINT=False, handleSIGTERM=False, handleSIGHUP=False,  # we stop it ourselves
            loop=loop,
        )
        try:
            browser = await launcher.launch()
        except Exception as exc:
            process = getattr(launcher, "proc", None)
            if process is not None:
                with suppress(OSError):
                    process.kill()
                await loop.run_in_executor(None, process.wait)
            shutil.rmtree(profile, ignore_errors=True)
            raise RenderFailed(
                f"Chromium ({self.executable_path}) could not be started: {exc}",
                hint="Check that the binary runs: `chromium --headless=new --no-sandbox --version`.",
                details={"executable_path": self.executable_path},
            ) from exc
        disconnected: asyncio.Future = loop.create_future()

        def on_disconnect() -> None:
            if not disconnected.done():
                disconnected.set_result(_BrowserGone("the DevTools connection to Chromium closed"))

        browser.on("disconnected", on_disconnect)
        chromium = _Chromium(browser, launcher.proc, profile, disconnected)
        self._processes[chromium.pid] = (chromium.process, profile)
        self.launches += 1
        log.info("Chromium started (pid %s)", chromium.pid)
        return chromium

    async def _discard(self, chromium: _Chromium) -> None:
        """Stop one browser (dead or alive), reap its process, remove its profile; idempotent."""
        if self._current is chromium:
            self._current = None
        self._idle = [tab for tab in self._idle if tab.chromium is not chromium]
        if chromium.stopped:
            return
        chromium.stopped = True
        if not chromium.disconnected.done() and chromium.process.poll() is None:
            await _settle(chromium.browser.close(), CLOSE_SECONDS)  # Browser.close over DevTools
        else:
            await _settle(chromium.browser.disconnect(), CLOSE_SECONDS)
        # Polled rather than waited for in an executor thread: closing may happen at interpreter exit (atexit),
        # when executors no longer take work.
        if not await _exited(chromium.process, CLOSE_SECONDS):
            with suppress(OSError):
                chromium.process.kill()
            await _exited(chromium.process, CLOSE_SECONDS)
        self._processes.pop(chromium.pid, None)
        try:
            await asyncio.get_running_loop().run_in_executor(None, _remove_profile, chromium.profile)
        except RuntimeError:  # interpreter exit: no executor any more
            _remove_profile(chromium.profile)

    async def _shutdown(self) -> None:
        self._closing = True
        if self._launching is None:
            self._launching = asyncio.Lock()
        async with self._launching:
            if self._current is not None:
                await self._discard(self._current)
        # Renders under way fail fast now that the browser is gone; give them a moment, then cancel the rest.
        if self._renders:
            await asyncio.wait(set(self._renders), timeout=CLOSE_SECONDS)
        me = asyncio.current_task()
        leftovers = [task for task in asyncio.all_tasks() if task is not me]
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)

    # ----------------------------------------------------------------------------------------------- tabs

    async def _open_tab(self, chromium: _Chromium) -> _Tab:
        stops = [chromium.disconnected]
        seconds = self._command_seconds
        context = await _first(chromium.browser.createIncognitoBrowserContext(), stops, seconds)
        try:
            page = await _first(context.newPage(), stops, seconds)
            session = await _first(page.target.createCDPSession(), stops, seconds)
        except BaseException:
            await _settle(context.close(), CLOSE_SECONDS)
            raise
        crashed: asyncio.Future = asyncio.get_running_loop().create_future()

        def on_crash(error: object) -> None:
            if not crashed.done():
                crashed.set_result(_PageCrashed(str(error)))

        page.on("error", on_crash)
        return _Tab(chromium, context, page, session, crashed)

    async def _close_tab(self, tab: _Tab) -> None:
        if tab.chromium.alive():
            await _settle(tab.context.close(), CLOSE_SECONDS)

    async def _prewarm(self, chromium: _Chromium) -> None:
        """Open warm tabs for the other slots, so that a burst of renders does not wait for them."""
        with suppress(Exception):
            while len(self._idle) < self.max_concurrency - 1 and chromium.alive() and not self._closing:
                tab = await self._open_tab(chromium)
                if chromium.alive() and not self._closing and len(self._idle) < self.max_concurrency:
                    self._idle.append(tab)
                else:
                    await self._close_tab(tab)
                    return

    async def _tab(self, chromium: _Chromium) -> _Tab:
        while self._idle:
            tab = self._idle.pop()
            if tab.chromium is chromium and not tab.crashed.done():
                return tab
            await self._close_tab(tab)
        return await self._open_tab(chromium)

    # ------------------------------------------------------------------------------------------ rendering

    async def _render(self, job: _Job) -> bytes:
        me = asyncio.current_task()
        if me is not None:
            self._renders.add(me)
        try:
            if self._slots is None:
                self._slots = asyncio.Semaphore(self.max_concurrency)
            async with self._slots:
                for attempt in (1, 2):
                    chromium = await self._chromium()
                    try:
                        return await self._render_on(chromium, job)
                    except _BrowserGone as exc:
                        log.warning("Chromium (pid %s) died while rendering %s (attempt %s): %s",
                                    chromium.pid, job.item, attempt, exc)
                        await self._discard(chromium)
                        if attempt == 2 or self._closing:
                            raise job.failure(
                                f"Chromium exited while rendering {job.item} ({job.url})"
                                + (", twice." if attempt == 2 else ": the renderer was closed."),
                                hint="Check the machine's free memory and the Chromium install; the page may "
                                "also be too heavy to draw.",
                            ) from exc
                raise AssertionError("unreachable")
        finally:
            if me is not None:
                self._renders.discard(me)

    async def _render_on(self, chromium: _Chromium, job: _Job) -> bytes:
        """`job` on a warm tab of `chromium`; _BrowserGone if the browser died under it."""
        tab: _Tab | None = None
        healthy = False
        try:
            tab = await self._tab(chromium)
            png = await self._shoot(tab, job)
            healthy = True
            return png
        except (_BrowserGone, InvalidRequest):
            raise
        except Exception as exc:
            if not chromium.alive():
                raise _BrowserGone(str(exc)) from exc
            if isinstance(exc, ExportPipelineError):
                raise
            if isinstance(exc, _PageCrashed):
                raise job.failure(
                    f"The page of {job.item} crashed while rendering ({job.url}): {exc}",
                    hint="The page may need too much memory; try a smaller width or fewer tiles.",
                ) from exc
            if isinstance(exc, TimeoutError):
                raise RenderTimeout(
                    f"Chromium did not answer within {self._command_seconds:g} s while rendering {job.item} "
                    f"({job.url}).",
                    hint="The machine may be overloaded; render again.",
                    details={"item": job.item, "url": job.url},
                ) from exc
            raise job.failure(f"Rendering {job.item} ({job.url}) failed: {exc}",
                              hint="Open the page in a browser to see whether it loads.") from exc
        finally:
            if tab is not None:
                if (healthy and tab.renders < RECYCLE_AFTER and chromium.alive() and not self._closing
                        and len(self._idle) < self.max_concurrency):
                    self._idle.append(tab)
                else:  # after any failure the page's state is unknown: start the next render on a fresh tab
                    await self._close_tab(tab)

    async def _shoot(self, tab: _Tab, job: _Job) -> bytes:
        stops = [tab.chromium.disconnected, tab.crashed]
        page, session = tab.page, tab.session
        tab.renders += 1
        if tab.metrics != (job.width, job.device_scale):
            await _first(session.send("Emulation.setDeviceMetricsOverride", {
                "width": job.width, "height": INITIAL_HEIGHT, "deviceScaleFactor": job.device_scale, "mobile": False,
            }), stops, self._command_seconds)
            tab.metrics = (job.width, job.device_scale)
        phase = ["load"]
        try:
            outcome = await _first(self._load_and_wait(page, job, phase), stops, self.timeout_seconds)
        except TimeoutError:
            what = ("did not finish loading" if phase[0] == "load"
                    else f"never signalled that its charts had drawn ({job.ready_expression})")
            raise RenderTimeout(
                f"Rendering {job.item} timed out after {self.timeout_seconds:g} s: {job.url} {what}.",
                hint="Check that every chart of the page loads (its queries may be slow or failing), "
                "or allow a longer render timeout.",
                details={"item": job.item, "url": job.url, "timeout_seconds": self.timeout_seconds},
            ) from None
        if "error" in outcome:
            raise job.failure(
                f"The page of {job.item} reported an error: {outcome['error']}",
                hint="Fix the failing chart (open the URL in a browser to see it), then render again.",
                page_error=str(outcome["error"]),
            )
        height = max(INITIAL_HEIGHT, math.ceil(outcome.get("height") or 0))
        try:
            png = await _first(self._capture(session, job, height), stops, self.timeout_seconds)
        except TimeoutError:
            raise RenderTimeout(
                f"Capturing {job.item} took longer than {self.timeout_seconds:g} s ({job.url}).",
                hint="The page may be extremely tall; allow a longer render timeout.",
                details={"item": job.item, "url": job.url, "timeout_seconds": self.timeout_seconds},
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
            await _first(session.send("Storage.clearDataForOrigin", {"origin": origin, "storageTypes": CLEARED_STORAGE}),
                         stops, self._command_seconds)
        return png

    async def _load_and_wait(self, page: Any, job: _Job, phase: list[str]) -> dict:
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

    async def _capture(self, session: Any, job: _Job, height: int) -> bytes:
        """`height` CSS px of the page, exactly `width` across, captured beyond the viewport (no relayout)."""
        result = await session.send("Page.captureScreenshot", {
            "format": "png",
            "clip": {"x": 0, "y": 0, "width": job.width, "height": height, "scale": 1},
            "captureBeyondViewport": True,
        })
        return base64.b64decode(result.get("data", ""))


def render_once_fresh(
    url: str,
    *,
    width: int,
    item: str = "image",
    ready_expression: str = READY_EXPRESSION,
    device_scale: float = DEFAULT_DEVICE_SCALE,
    executable_path: str = DEFAULT_EXECUTABLE,
    timeout_seconds: float = 30.0,
    extra_args: Sequence[str] = (),
) -> bytes:
    """One image from a browser started for it and stopped after: the cost `PngRenderer` avoids (benchmark only)."""
    with PngRenderer(executable_path=executable_path, max_concurrency=1, timeout_seconds=timeout_seconds,
                     extra_args=extra_args) as renderer:
        return renderer.render(url, width=width, item=item, ready_expression=ready_expression,
                               device_scale=device_scale)


__all__ = [
    "CHROMIUM_ARGS", "DASHBOARD_WIDTH", "DEFAULT_DEVICE_SCALE", "DEFAULT_EXECUTABLE", "INSIGHT_WIDTH", "MAX_WIDTH",
    "MIN_WIDTH", "READY_EXPRESSION", "PngRenderer", "RenderFailed", "RenderTimeout", "check_device_scale",
    "check_width", "png_size", "render_once_fresh",
]
