"""What a subscription delivers, whatever the channel (email, Slack): a titled report and its tile images.

Kept in its own module, free of channel code, so every channel imports it without importing the others.
"""

from __future__ import annotations

from dataclasses import dataclass

from export_pipeline.insights.period import Period, covering


@dataclass(frozen=True)
class ReportImage:
    """One rendered tile: `name` is its file name (e.g. `tile-01-signups.png`), `title` the tile's title (drawn
    in the image too), `period` the time its chart covers (None for a tile that could not be computed), `link`
    its insight's page (None when the insight is gone)."""

    name: str
    title: str
    png: bytes
    period: Period | None = None
    link: str | None = None


@dataclass(frozen=True)
class Report:
    """An insight or dashboard as delivered: `link` is its shared page, `images` one per tile, in order."""

    title: str
    message: str | None
    link: str
    images: list[ReportImage]

    @property
    def period(self) -> Period | None:
        """The time the charts cover together: from the earliest start to the latest end."""
        return covering(image.period for image in self.images)

    @property
    def periods_differ(self) -> bool:
        """Whether the charts cover different times, so each one's period is named beside it."""
        return len({image.period for image in self.images if image.period is not None}) > 1

    @property
    def period_line(self) -> str | None:
        """"These charts cover 1 May 2026 – 27 Oct 2026 (UTC).", said above the charts; None without periods."""
        if self.period is None:
            return None
        if self.periods_differ:
            return f"These charts cover {self.period}; each chart's own period is named with it."
        return f"These charts cover {self.period}."

    def own_period(self, image: ReportImage) -> str | None:
        """The image's period, when the charts cover different times (else the period line says it for all)."""
        return str(image.period) if self.periods_differ and image.period is not None else None
