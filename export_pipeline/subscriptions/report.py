"""What a subscription delivers, whatever the channel (email, Slack): a titled report and its tile images.

Kept in its own module, free of channel code, so every channel imports it without importing the others.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReportImage:
    """One rendered tile: `name` is its file name (e.g. `tile-01-signups.png`), `title` the tile's title."""

    name: str
    title: str
    png: bytes


@dataclass(frozen=True)
class Report:
    """An insight or dashboard as delivered: `link` is its shared page, `images` one per tile, in order."""

    title: str
    message: str | None
    link: str
    images: list[ReportImage]
