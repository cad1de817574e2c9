"""The loop side of a `PngRenderer`: one reused Chromium, warm tabs, at most `max_concurrency` renders at once.

Tabs are kept warm: each concurrent slot renders in its own tab, opened once (the other slots' tabs while the
first image renders) and reused. Opening a tab starts a renderer process, ~0.3 s of CPU: a new tab per image
measured ~1.5 PNG/s on 2 cores, against ~5.5 PNG/s with warm tabs that only navigate. Each tab lives in its
own incognito browser context, which in headless Chromium is its own window: tabs sharing a window are
hidden, and hidden pages run no requestAnimationFrame, so charts drawn in an animation frame would never
finish when two renders overlap. A tab is replaced after any failure and after `RECYCLE_AFTER` renders.

If Chromium dies (crash, OOM kill), the next render starts a new one, and the render that was under way when
it died is retried once on the new browser.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from contextlib import suppress

from export_pipeline.errors import ExportPipelineError, InvalidRequest
from export_pipeline.render.capture import Job, PageCrashed, Tab, close_tab, open_tab, shoot
from export_pipeline.render.chromium import BrowserGone, Chromium, Processes, launch, stop
from export_pipeline.render.devtools import CLOSE_SECONDS
from export_pipeline.render.errors import RenderFailed

log = logging.getLogger(__name__)

RECYCLE_AFTER = 100  # renders per tab before it is replaced by a fresh one


class BrowserPool:
    """Renders jobs on one Chromium, launched on demand and replaced when it dies. Used on one event loop only."""

    def __init__(self, *, executable_path: str, extra_args: Sequence[str], max_concurrency: int,
                 timeout_seconds: float, processes: Processes) -> None:
        self.executable_path = executable_path
        self.extra_args = tuple(extra_args)
        self.max_concurrency = max_concurrency
        self.timeout_seconds = timeout_seconds
        # For a single DevTools step of a render (open a tab, set the viewport...), however short the timeout.
        self.command_seconds = max(CLOSE_SECONDS, timeout_seconds)
        self.processes = processes
        self.launches = 0  # browsers started so far, the first one included
        self.current: Chromium | None = None
        self.closing = False
        self._idle: list[Tab] = []
        self._slots = asyncio.Semaphore(max_concurrency)
        self._launching = asyncio.Lock()
        self._renders: set[asyncio.Task] = set()
        self._prewarming: asyncio.Future | None = None

    async def render(self, job: Job) -> bytes:
        me = asyncio.current_task()
        if me is not None:
            self._renders.add(me)
        try:
            async with self._slots:
                for attempt in (1, 2):
                    chromium = await self._chromium()
                    try:
                        return await self._render_on(chromium, job)
                    except BrowserGone as exc:
                        log.warning("Chromium (pid %s) died while rendering %s (attempt %s): %s",
                                    chromium.pid, job.item, attempt, exc)
                        await self._discard(chromium)
                        if attempt == 2 or self.closing:
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

    async def shutdown(self) -> None:
        """Stop Chromium, let the renders under way fail, then cancel every other task of the loop."""
        self.closing = True
        async with self._launching:
            if self.current is not None:
                await self._discard(self.current)
        # Renders under way fail fast now that the browser is gone; give them a moment, then cancel the rest.
        if self._renders:
            await asyncio.wait(set(self._renders), timeout=CLOSE_SECONDS)
        me = asyncio.current_task()
        leftovers = [task for task in asyncio.all_tasks() if task is not me]
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)

    # ------------------------------------------------------------------------------------------- browser

    async def _chromium(self) -> Chromium:
        """The running browser, launched now if there is none or it died."""
        async with self._launching:
            current = self.current
            if current is not None and current.alive():
                return current
            if current is not None:
                log.warning("Chromium (pid %s) has exited; starting a new one", current.pid)
                await self._discard(current)
            if self.closing:
                raise RenderFailed("The renderer was closed.", hint="Render again with an open renderer.")
            self.current = await launch(self.executable_path, self.extra_args, self.processes)
            self.launches += 1
            if self.max_concurrency > 1:  # the other slots' tabs open while the first render runs
                self._prewarming = asyncio.ensure_future(self._prewarm(self.current))
            return self.current

    async def _discard(self, chromium: Chromium) -> None:
        """Forget one browser and its tabs, and stop it; idempotent."""
        if self.current is chromium:
            self.current = None
        self._idle = [tab for tab in self._idle if tab.chromium is not chromium]
        await stop(chromium, self.processes)

    # ---------------------------------------------------------------------------------------------- tabs

    async def _prewarm(self, chromium: Chromium) -> None:
        """Open warm tabs for the other slots, so that a burst of renders does not wait for them."""
        with suppress(Exception):
            while len(self._idle) < self.max_concurrency - 1 and chromium.alive() and not self.closing:
                tab = await open_tab(chromium, self.command_seconds)
                if chromium.alive() and not self.closing and len(self._idle) < self.max_concurrency:
                    self._idle.append(tab)
                else:
                    await close_tab(tab)
                    return

    async def _tab(self, chromium: Chromium) -> Tab:
        while self._idle:
            tab = self._idle.pop()
            if tab.chromium is chromium and not tab.crashed.done():
                return tab
            await close_tab(tab)
        return await open_tab(chromium, self.command_seconds)

    async def _render_on(self, chromium: Chromium, job: Job) -> bytes:
        """`job` on a warm tab of `chromium`; BrowserGone if the browser died under it."""
        tab: Tab | None = None
        healthy = False
        try:
            tab = await self._tab(chromium)
            png = await shoot(tab, job, timeout_seconds=self.timeout_seconds, command_seconds=self.command_seconds)
            healthy = True
            return png
        except (BrowserGone, InvalidRequest):
            raise
        except Exception as exc:
            if not chromium.alive():
                raise BrowserGone(str(exc)) from exc
            if isinstance(exc, ExportPipelineError):
                raise
            if isinstance(exc, PageCrashed):
                raise job.failure(
                    f"The page of {job.item} crashed while rendering ({job.url}): {exc}",
                    hint="The page may need too much memory; try a smaller width or fewer tiles.",
                ) from exc
            if isinstance(exc, TimeoutError):
                raise job.timeout(
                    f"Chromium did not answer within {self.command_seconds:g} s while rendering {job.item} "
                    f"({job.url}).",
                    hint="The machine may be overloaded; render again.",
                ) from exc
            raise job.failure(f"Rendering {job.item} ({job.url}) failed: {exc}",
                              hint="Open the page in a browser to see whether it loads.") from exc
        finally:
            if tab is not None:
                if (healthy and tab.renders < RECYCLE_AFTER and chromium.alive() and not self.closing
                        and len(self._idle) < self.max_concurrency):
                    self._idle.append(tab)
                else:  # after any failure the page's state is unknown: start the next render on a fresh tab
                    await close_tab(tab)
