"""Starting and stopping Debian's Chromium for the renderer: one process, its own profile folder, its flags.

pyppeteer is always given `executable_path`: it never downloads a browser.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from export_pipeline.render.devtools import CLOSE_SECONDS, settle
from export_pipeline.render.errors import RenderFailed

log = logging.getLogger(__name__)

DEFAULT_EXECUTABLE = "/usr/bin/chromium"
# The flags of the project's browser tests, plus: keep every page painting and its timers at full rate, and no
# scrollbars (a scrollbar would narrow the layout while the page is taller than the viewport).
CHROMIUM_ARGS: tuple[str, ...] = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--disable-renderer-backgrounding", "--disable-backgrounding-occluded-windows", "--hide-scrollbars",
    "--mute-audio",
)

# pid -> (process, profile folder) of every Chromium not yet stopped: what `kill_all` reaps when closing fails.
Processes = dict[int, tuple[subprocess.Popen, str]]


class BrowserGone(Exception):
    """Chromium exited (or its DevTools connection dropped) under a render."""


@dataclass(eq=False)
class Chromium:
    """One launched browser: pyppeteer's Browser, its process and its own profile folder."""

    browser: Any  # pyppeteer.browser.Browser
    process: subprocess.Popen
    profile: str
    # Resolved with a BrowserGone when the DevTools connection drops (so it can be raced against).
    disconnected: asyncio.Future = field(repr=False)
    stopped: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return not self.stopped and not self.disconnected.done() and self.process.poll() is None


async def launch(executable_path: str, extra_args: Sequence[str], processes: Processes) -> Chromium:
    """A new Chromium in a fresh profile, registered in `processes` until `stop`; RenderFailed if it won't start."""
    if not os.access(executable_path, os.X_OK):
        raise RenderFailed(
            f"Chromium is not installed at {executable_path}.",
            hint="Install Debian's chromium (apt-get install chromium) or pass executable_path.",
            details={"executable_path": executable_path},
        )
    from pyppeteer.launcher import Launcher

    loop = asyncio.get_running_loop()
    profile = tempfile.mkdtemp(prefix="export-pipeline-chromium-")
    launcher = Launcher(
        executablePath=executable_path,
        args=[*CHROMIUM_ARGS, *extra_args],
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
            f"Chromium ({executable_path}) could not be started: {exc}",
            hint="Check that the binary runs: `chromium --headless=new --no-sandbox --version`.",
            details={"executable_path": executable_path},
        ) from exc
    disconnected: asyncio.Future = loop.create_future()

    def on_disconnect() -> None:
        if not disconnected.done():
            disconnected.set_result(BrowserGone("the DevTools connection to Chromium closed"))

    browser.on("disconnected", on_disconnect)
    chromium = Chromium(browser, launcher.proc, profile, disconnected)
    processes[chromium.pid] = (chromium.process, profile)
    log.info("Chromium started (pid %s)", chromium.pid)
    return chromium


async def stop(chromium: Chromium, processes: Processes) -> None:
    """Stop one browser (dead or alive), reap its process, remove its profile; idempotent."""
    if chromium.stopped:
        return
    chromium.stopped = True
    if not chromium.disconnected.done() and chromium.process.poll() is None:
        await settle(chromium.browser.close())  # Browser.close over DevTools
    else:
        await settle(chromium.browser.disconnect())
    # Polled rather than waited for in an executor thread: closing may happen at interpreter exit (atexit),
    # when executors no longer take work.
    if not await _exited(chromium.process, CLOSE_SECONDS):
        with suppress(OSError):
            chromium.process.kill()
        await _exited(chromium.process, CLOSE_SECONDS)
    processes.pop(chromium.pid, None)
    try:
        await asyncio.get_running_loop().run_in_executor(None, _remove_profile, chromium.profile)
    except RuntimeError:  # interpreter exit: no executor any more
        _remove_profile(chromium.profile)


def kill_all(processes: Processes) -> None:
    """Last resort (stopping failed, or a renderer never closed): kill and reap every Chromium left."""
    for process, profile in list(processes.values()):
        with suppress(OSError):
            process.kill()
        with suppress(Exception):
            process.wait(CLOSE_SECONDS)
        _remove_profile(profile)
    processes.clear()


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
