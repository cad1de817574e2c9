"""Waiting on pyppeteer's DevTools calls without ever cancelling one, and keeping its dropped replies quiet."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from contextlib import suppress
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

CLOSE_SECONDS = 5.0  # at least this long for Chromium to open or close a tab, answer a command, or exit


def _drop_outcome(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log it as never retrieved


async def first(work: Awaitable[T], stops: Sequence[asyncio.Future], seconds: float) -> T:
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


async def settle(work: Awaitable[object], seconds: float = CLOSE_SECONDS) -> None:
    """Housekeeping (closing a tab or the browser): wait up to `seconds`; its failure is not the render's."""
    with suppress(Exception):
        await first(work, (), seconds)


def quiet_pyppeteer(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The loop's exception handler. When Chromium dies, pyppeteer fails the replies it was waiting for, some
    of which nobody awaits (it sends to a tab without waiting for the browser's acknowledgement); asyncio would
    log each as "exception was never retrieved". Those go to debug; anything else is logged as usual."""
    error = context.get("exception")
    if error is not None and type(error).__module__.startswith("pyppeteer"):
        log.debug("pyppeteer: %s: %s", context.get("message"), error)
        return
    loop.default_exception_handler(context)
