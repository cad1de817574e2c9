"""The embed page of an insight or dashboard: computed server-side, drawn in the browser by Chart.js.

The page carries its computed tables as JSON (`<script type="application/json">`), so it needs no further
request; `static/embed.js` draws every tile with the vendored Chart.js (served by us, never from a CDN), then
sets `window.__chartsReady = true` — what the PNG renderer waits for. A tile whose insight could not be
computed shows a readable error instead of a chart; only a page that cannot draw at all (the charting library
failed to load, a script error) sets `window.__chartsError`.

The same HTML is served to browsers (`/embed/...`, assets under `/embed/static/`) and rendered to PNG by
runs, which load it from a temporary file with the assets as `file://` URLs: a run needs no web server.
"""

from __future__ import annotations

import html
import json
import logging
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import ValidationError as PydanticValidationError

from export_pipeline.clickhouse.connection import Session
from export_pipeline.clickhouse.schema import EventsTable
from export_pipeline.clock import as_utc, now_utc
from export_pipeline.errors import ExportPipelineError, InvalidRequest, NotFound
from export_pipeline.insights.period import Period
from export_pipeline.insights.queries import InsightResult, compute
from export_pipeline.insights.store import Insight, InsightStore

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
CHARTJS_VERSION = "4.6.1"  # static/vendor/chart.umd.min.js; `make vendor-charts` fetches it from npm
THEMES = ("light", "dark")
MIN_WIDTH, MAX_WIDTH = 400, 3000
INSIGHT_TILE = (12, 6)  # an insight page is one tile this size (grid columns of 12, rows)


@dataclass(frozen=True)
class EmbedOptions:
    """The page's query options: `?theme=dark&width=1200&whitelabel=1&readonly=1`."""

    theme: Literal["light", "dark"] = "light"
    width: int | None = None  # CSS px; default: as wide as the window (or iframe)
    whitelabel: bool = False  # hide our name and the "shared from" footer
    readonly: bool = False  # no tooltips, legend toggles or other interaction

    @classmethod
    def parse(cls, *, theme: str | None = None, width: str | None = None, whitelabel: str | None = None,
              readonly: str | None = None) -> EmbedOptions:
        errors: dict[str, str] = {}
        chosen_theme = (theme or "light").strip().lower()
        if chosen_theme not in THEMES:
            errors["theme"] = f"must be light or dark, got {theme!r}"
        chosen_width = None
        if width not in (None, ""):
            try:
                chosen_width = int(width)  # type: ignore[arg-type]
                if not MIN_WIDTH <= chosen_width <= MAX_WIDTH:
                    raise ValueError
            except ValueError:
                errors["width"] = f"must be a whole number of pixels from {MIN_WIDTH} to {MAX_WIDTH}, got {width!r}"
        flags = {}
        for name, raw in (("whitelabel", whitelabel), ("readonly", readonly)):
            value = (raw or "").strip().lower()
            if value not in ("", "0", "1", "true", "false", "yes", "no"):
                errors[name] = f"must be true or false (1 or 0), got {raw!r}"
            flags[name] = value in ("1", "true", "yes") or (raw is not None and value == "")  # `?readonly` alone
        if errors:
            raise InvalidRequest("Invalid page options: " + "; ".join(f"{k}: {v}" for k, v in errors.items()) + ".",
                                 details=errors)
        return cls(chosen_theme, chosen_width, flags["whitelabel"], flags["readonly"])  # type: ignore[arg-type]


@dataclass(frozen=True)
class TileView:
    """One tile as drawn: an insight's computed table, or the reason it could not be computed. A trends table
    may end with an `incomplete` column: embed.js draws that bucket dashed and lighter."""

    title: str
    description: str
    kind: str
    columns: list[str] = field(default_factory=list)
    rows: list[list] = field(default_factory=list)
    error: str | None = None
    width: int = INSIGHT_TILE[0]
    height: int = INSIGHT_TILE[1]
    period: Period | None = None  # the insight's date range as computed; None when it has no valid definition
    insight_id: str | None = None  # None when the insight is gone


@dataclass(frozen=True)
class PageView:
    resource: str  # insight | dashboard
    title: str
    description: str
    tiles: list[TileView]
    computed_at: str

    def tile(self, index: int) -> PageView:
        """A page of one tile of this view, drawn like an insight page (subscriptions send one image per tile)."""
        chosen = self.tiles[index]
        return PageView("insight", chosen.title, chosen.description,
                        [replace(chosen, width=INSIGHT_TILE[0], height=INSIGHT_TILE[1])],
                        self.computed_at)


def tile_of(insight: Insight, result: InsightResult | None, period: Period, *, error: str | None = None,
            size: tuple[int, int] = INSIGHT_TILE) -> TileView:
    kind = getattr(insight.query, "kind", "unknown")
    if result is None:
        return TileView(insight.name, insight.description, kind, error=error, width=size[0], height=size[1],
                        period=period, insight_id=insight.id)
    return TileView(insight.name, insight.description, result.kind, list(result.columns),
                    [list(row) for row in result.rows], None, size[0], size[1], period, insight.id)


def compute_view(session: Session, table: EventsTable, store: InsightStore, project_id: int, resource: str,
                 target_id: str, *, as_of: datetime | None = None) -> PageView:
    """The page of an insight or dashboard, every tile computed now, its date range resolved as of `as_of`
    (default: now; a subscription's slot for its deliveries). One tile failing (a definition no longer valid,
    a failing query) becomes an error tile; the others are drawn. A missing target raises NotFound."""
    moment = now_utc() if as_of is None else as_utc(as_of)
    if resource == "insight":
        tile = _tile(session, table, store, project_id, target_id, INSIGHT_TILE, moment, missing_is_error=False)
        return PageView("insight", tile.title, tile.description, [tile], _now())
    dashboard = store.dashboard(project_id, target_id)
    tiles = [_tile(session, table, store, project_id, tile.insight_id, (tile.width, tile.height), moment)
             for tile in dashboard.tiles]
    return PageView("dashboard", dashboard.name, dashboard.description, tiles, _now())


def _tile(session: Session, table: EventsTable, store: InsightStore, project_id: int, insight_id: str,
          size: tuple[int, int], as_of: datetime, *, missing_is_error: bool = True) -> TileView:
    try:
        insight = store.insight(project_id, insight_id)
    except NotFound:
        if not missing_is_error:
            raise
        return TileView(f"Insight {insight_id}", "", "unknown", width=size[0], height=size[1],
                        error="This insight was deleted.")
    except PydanticValidationError as error:  # stored by an older version, no longer a valid definition
        return TileView(f"Insight {insight_id}", "", "unknown", width=size[0], height=size[1],
                        error=f"This insight cannot be shown: {_reason(error)}")
    return _computed_tile(session, table, project_id, insight, size, as_of)


def _computed_tile(session: Session, table: EventsTable, project_id: int, insight: Insight,
                   size: tuple[int, int], as_of: datetime) -> TileView:
    period = insight.query.period(as_of)
    try:
        return tile_of(insight, compute(session, table, project_id, insight.query, as_of=as_of), period, size=size)
    except ExportPipelineError:
        raise  # the cluster is unreachable or busy: the whole page fails with that error, not every tile
    except Exception as error:  # a failing query: this tile shows it, the rest of the page is drawn
        log.exception("Insight %s of project %s could not be computed.", insight.id, project_id)
        return tile_of(insight, None, period, size=size,
                       error=f"This insight could not be computed: {_reason(error)} "
                       "Check its definition, or try again later.")


def _reason(error: BaseException) -> str:
    if isinstance(error, ExportPipelineError):
        return error.message
    if isinstance(error, PydanticValidationError):
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "query"
        return f"its definition is no longer valid ({where}: {first['msg']})."
    # Driver messages can be long and hold the SQL; the first line names the problem.
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return re.sub(r"\s+", " ", text)[:300].rstrip(".") + "."


def _now() -> str:
    return now_utc().isoformat(timespec="seconds").replace("+00:00", "Z")


def _json_for_script(data: object) -> str:
    """JSON that cannot end its <script> element early or open a comment, whatever the user text holds."""
    text = json.dumps(data, ensure_ascii=False, default=str, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def page_html(view: PageView, options: EmbedOptions, *, static_base: str = "/embed/static") -> str:
    """The standalone page. Every user-supplied text is escaped; the data travels as inert JSON."""
    classes = [f"theme-{options.theme}", view.resource]
    if options.whitelabel:
        classes.append("whitelabel")
    if options.readonly:
        classes.append("readonly")
    data = {"resource": view.resource, "width": options.width, "readonly": options.readonly,
            "tiles": [asdict(tile) for tile in view.tiles]}
    tiles = "\n".join(_tile_html(index, tile) for index, tile in enumerate(view.tiles))
    if not view.tiles:
        tiles = '<p class="empty">This dashboard has no tiles yet.</p>'
    esc = html.escape
    description = f'<p class="description">{esc(view.description)}</p>' if view.description else ""
    # An insight's one tile carries its title already.
    header = (f"<header>{description}</header>" if description else "") if view.resource == "insight" \
        else f"<header><h1>{esc(view.title)}</h1>{description}</header>"
    footer = "" if options.whitelabel else (
        f'<footer>Shared with export-pipeline · computed {esc(view.computed_at)}</footer>')
    return f"""<!doctype html>
<html lang="en" class="{' '.join(classes)}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{esc(view.title)}</title>
<link rel="stylesheet" href="{esc(static_base)}/embed.css">
<script src="{esc(static_base)}/vendor/chart.umd.min.js?v={CHARTJS_VERSION}" defer></script>
<script src="{esc(static_base)}/embed.js" defer></script>
</head>
<body>
{header}
<main class="grid">
{tiles}
</main>
{footer}
<script type="application/json" id="embed-data">{_json_for_script(data)}</script>
</body>
</html>
"""


def _tile_html(index: int, tile: TileView) -> str:
    esc = html.escape
    if tile.error:
        body = f'<div class="tile-error" role="alert"><strong>Could not show this insight.</strong> {esc(tile.error)}</div>'
    elif tile.kind == "number":
        body = '<div class="number"></div>'
    else:
        body = f'<div class="chart"><canvas aria-label="{esc(tile.title)}" role="img"></canvas></div>'
    return (f'<section class="tile span-{tile.width} rows-{tile.height}" data-tile="{index}" data-kind="{esc(tile.kind)}">'
            f'<h2>{esc(tile.title)}</h2>{body}</section>')


def write_page_files(view: PageView, options: EmbedOptions, folder: Path, name: str = "page") -> Path:
    """The page as a file whose assets load from this package (`file://`): what runs render to PNG."""
    path = folder / f"{name}.html"
    path.write_text(page_html(view, options, static_base=STATIC_DIR.as_uri()), encoding="utf-8")
    return path


def frame_ancestors(origins: Iterable[str]) -> str:
    """The `frame-ancestors` sources: this site, plus the configured origins (or `*` for any site)."""
    allowed = ["'self'"]
    for origin in origins:
        if origin == "*":
            return "*"
        if not re.fullmatch(r"https?://[A-Za-z0-9.\-\[\]:]+(:\d+)?|https?://\*\.[A-Za-z0-9.\-]+", origin):
            raise ValueError(
                f"EXPORT_EMBED_ALLOWED_ORIGINS holds {origin!r}, which is not an origin: give scheme://host[:port] "
                "entries separated by commas (https://app.example.com, https://*.example.com), or *."
            )
        allowed.append(origin)
    return " ".join(allowed)


def page_headers(origins: Iterable[str]) -> dict[str, str]:
    """Headers of every embed page, error pages included."""
    return {
        "Content-Security-Policy": (
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
            f"base-uri 'none'; form-action 'none'; frame-ancestors {frame_ancestors(origins)}"
        ),
        # The share token is in the URL: never send it to another site.
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
        "X-Robots-Tag": "noindex",
    }


def error_page_html(title: str, message: str) -> str:
    esc = html.escape
    return f"""<!doctype html>
<html lang="en" class="theme-light">
<head><meta charset="utf-8"><title>{esc(title)}</title><meta name="robots" content="noindex">
<link rel="stylesheet" href="/embed/static/embed.css"></head>
<body><main class="page-error" role="alert"><h1>{esc(title)}</h1><p>{esc(message)}</p></main></body>
</html>
"""
