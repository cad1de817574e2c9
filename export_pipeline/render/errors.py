"""What a failed render tells the user; `code` is stable and machine-readable."""

from __future__ import annotations

from export_pipeline.errors import ExportPipelineError


class RenderTimeout(ExportPipelineError):
    """The page did not load, signal that its charts had drawn, or get captured within the timeout."""

    code = "render_timeout"


class RenderFailed(ExportPipelineError):
    """The page reported an error or could not be loaded, or Chromium failed."""

    code = "render_failed"
