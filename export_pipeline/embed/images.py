"""PNG images of embed pages, drawn by one Chromium per process (reused by every render of the process)."""

from __future__ import annotations

import atexit
import tempfile
import threading
from pathlib import Path

from export_pipeline.embed.page import EmbedOptions, PageView, write_page_files
from export_pipeline.render.browser import DASHBOARD_WIDTH, INSIGHT_WIDTH, PngRenderer
from export_pipeline.settings import Settings

_lock = threading.Lock()
_renderers: dict[tuple, PngRenderer] = {}


def shared_renderer(settings: Settings) -> PngRenderer:
    """This process's renderer for these settings: Chromium starts on the first render and is reused (and
    restarted if it dies) until the process exits."""
    key = (settings.chromium_executable, settings.render_concurrency, settings.render_timeout_seconds)
    with _lock:
        renderer = _renderers.get(key)
        if renderer is None:
            renderer = PngRenderer(executable_path=settings.chromium_executable,
                                   max_concurrency=settings.render_concurrency,
                                   timeout_seconds=settings.render_timeout_seconds)
            _renderers[key] = renderer
            atexit.register(renderer.close)
        return renderer


def close_shared_renderers() -> None:
    """Stop this process's Chromium now rather than at exit (a long-lived process that is done rendering)."""
    with _lock:
        renderers = list(_renderers.values())
        _renderers.clear()
    for renderer in renderers:
        renderer.close()


def default_width(resource: str) -> int:
    return INSIGHT_WIDTH if resource == "insight" else DASHBOARD_WIDTH


def render_view(view: PageView, renderer: PngRenderer, *, width: int | None = None, item: str,
                options: EmbedOptions | None = None) -> bytes:
    """The page of `view` as a full-page PNG at `width` CSS px (device scale 2): every tile, however many."""
    options = options or EmbedOptions(readonly=True)
    with tempfile.TemporaryDirectory(prefix="export-pipeline-page-") as folder:
        page = write_page_files(view, options, Path(folder))
        return renderer.render(page.as_uri(), width=width or default_width(view.resource), item=item)
