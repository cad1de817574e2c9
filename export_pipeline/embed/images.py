"""PNG images of embed pages, drawn by a Chromium renderer that the caller owns (and closes)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from export_pipeline.embed.page import EmbedOptions, PageView, write_page_files
from export_pipeline.render.browser import DASHBOARD_WIDTH, INSIGHT_WIDTH, PngRenderer
from export_pipeline.settings import Settings


def default_width(resource: str) -> int:
    return INSIGHT_WIDTH if resource == "insight" else DASHBOARD_WIDTH


def render_view(view: PageView, renderer: PngRenderer, *, width: int | None = None, item: str,
                options: EmbedOptions | None = None) -> bytes:
    """The page of `view` as a full-page PNG at `width` CSS px (device scale 2): every tile, however many."""
    options = options or EmbedOptions(readonly=True)
    with tempfile.TemporaryDirectory(prefix="export-pipeline-page-") as folder:
        page = write_page_files(view, options, Path(folder))
        return renderer.render(page.as_uri(), width=width or default_width(view.resource), item=item)


def render_view_once(view: PageView, settings: Settings, *, width: int | None = None, item: str) -> bytes:
    """`render_view` by a Chromium started for this one page and stopped once it is drawn (a PNG export
    draws one page per run, so there is nothing to reuse it for)."""
    with PngRenderer(executable_path=settings.chromium_executable, max_concurrency=settings.render_concurrency,
                     timeout_seconds=settings.render_timeout_seconds) as renderer:
        return render_view(view, renderer, width=width, item=item)
