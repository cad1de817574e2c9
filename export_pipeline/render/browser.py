"""Full-page PNGs of insight and dashboard pages, drawn by Debian's Chromium through pyppeteer.

    with PngRenderer(executable_path="/usr/bin/chromium", max_concurrency=2) as renderer:
        png = renderer.render(url, width=INSIGHT_WIDTH, item="insight 42 'Weekly signups'")

One Chromium process serves every render of a `PngRenderer`. It is started on the first render and owned by
an asyncio event loop on a background thread (pyppeteer is asyncio-based), so `render` is a plain blocking call
that any thread may make: FastAPI worker threads, Dagster ops, the CLI. At most `max_concurrency` renders run
at once; further calls wait their turn. How the browser and its tabs are reused: `pool`; what one render does:
`capture`; starting and stopping Chromium: `chromium`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import weakref
from collections.abc import Sequence
from contextlib import suppress
from types import TracebackType
from typing import Self

from export_pipeline.errors import InvalidRequest
from export_pipeline.render.capture import READY_EXPRESSION, Job
from export_pipeline.render.chromium import DEFAULT_EXECUTABLE, Processes, kill_all
from export_pipeline.render.devtools import CLOSE_SECONDS, quiet_pyppeteer
from export_pipeline.render.pool import BrowserPool

log = logging.getLogger(__name__)

MIN_WIDTH, MAX_WIDTH = 400, 3000
INSIGHT_WIDTH, DASHBOARD_WIDTH = 800, 1920
DEFAULT_DEVICE_SCALE = 2.0
MAX_DEVICE_SCALE = 4.0


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
        self._lock = threading.Lock()
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._finalizer: weakref.finalize | None = None
        # Shared with the finalizer, which must not hold the renderer (or the pool) alive.
        self._processes: Processes = {}
        self._pool = BrowserPool(executable_path=executable_path, extra_args=self.extra_args,
                                 max_concurrency=max_concurrency, timeout_seconds=self.timeout_seconds,
                                 processes=self._processes)

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
        job = Job(url, check_width(width), item, ready_expression, check_device_scale(device_scale))
        loop = self._ensure_loop()
        if threading.current_thread() is self._thread:
            raise RuntimeError("PngRenderer.render blocks; it cannot be called from the renderer's own loop")
        future = asyncio.run_coroutine_threadsafe(self._pool.render(job), loop)
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            raise job.failure(f"Rendering {item} was cancelled: the renderer was closed.",
                              hint="Render again with an open renderer.") from None
        # If this thread is interrupted instead, the render ends on its own (within its timeout), unheeded.

    @property
    def launches(self) -> int:
        """Browsers started so far, the first one included."""
        return self._pool.launches

    @property
    def browser_pid(self) -> int | None:
        """The pid of the running Chromium, if one is running."""
        current = self._pool.current
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
            asyncio.run_coroutine_threadsafe(self._pool.shutdown(), loop).result(timeout=4 * CLOSE_SECONDS)
        except Exception:
            log.warning("the renderer did not shut down cleanly; killing Chromium", exc_info=True)
        finally:
            kill_all(self._processes)
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

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                raise RuntimeError("this PngRenderer is closed")
            if self._loop is None:
                loop = asyncio.new_event_loop()
                loop.set_exception_handler(quiet_pyppeteer)
                thread = threading.Thread(target=loop.run_forever, name="png-renderer", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
                self._finalizer = weakref.finalize(self, _abandon, loop, self._processes)
            return self._loop


def _abandon(loop: asyncio.AbstractEventLoop, processes: Processes) -> None:
    """Finalizer of a renderer garbage-collected, or still open at interpreter exit."""
    kill_all(processes)
    with suppress(RuntimeError):
        loop.call_soon_threadsafe(loop.stop)
