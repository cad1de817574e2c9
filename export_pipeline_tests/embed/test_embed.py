"""Embed pages and share links, end to end: the API serves the page, Debian's Chromium draws it with the
vendored Chart.js, and the PNG has the chart's pixels where the data puts them. Share tokens (valid, revoked,
expired, another page's, another project's), member access, frame-ancestors, options, error tiles, and PNG
exports through the pipeline."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from export_pipeline.accounts.roles import Role, add_member
from export_pipeline.accounts.tokens import create_token
from export_pipeline.api.app import create_app
from export_pipeline.db import insights as insights_table
from export_pipeline.db import share_links
from export_pipeline.engine.spec import parse_spec
from export_pipeline.exports.manifest import read_manifest
from export_pipeline.exports.run import run_export
from export_pipeline.insights.store import InsightStore
from export_pipeline.render.browser import PngRenderer
from export_pipeline.render.capture import png_size
from export_pipeline_tests.api.test_export_page import browser_page, needs_chromium
from export_pipeline_tests.conftest import serving
from export_pipeline_tests.fakes.exportdata import insert_events
from export_pipeline_tests.render.test_render import decode_png, near, runs

PROJECT, OTHER = 9950, 9951
COUNTS = {"alpha": 40, "beta": 20, "gamma": 10}
RANGE = {"date_from": "2026-03-01", "date_to": "2026-03-04"}
BLUE = (31, 111, 235)  # --series[0] of the light theme
ERROR_BG = (255, 241, 240)
ORIGIN = "https://app.example.com"


@pytest.fixture(scope="module")
def data(clickhouse, events_table, store):
    person = uuid.uuid5(uuid.NAMESPACE_DNS, "embed-person")
    insert_events(clickhouse, events_table, [
        [PROJECT, uuid.uuid4(), event, datetime(2026, 3, 2, 10, tzinfo=UTC) + timedelta(seconds=i), "d", person, "{}"]
        for event, count in COUNTS.items() for i in range(count)
    ])
    add_member(store.engine, PROJECT, "mae", Role.MAINTAINER)
    add_member(store.engine, PROJECT, "gus", Role.GUEST)
    add_member(store.engine, OTHER, "otto", Role.OWNER)
    book = InsightStore(store.engine)
    top = book.create_insight(PROJECT, name="Top events <script>alert(1)</script>", created_by="mae",
                              query={"kind": "table", "by": "event", **RANGE})
    other = book.create_insight(OTHER, name="Elsewhere", created_by="otto",
                                query={"kind": "number", **RANGE})
    # An insight stored by an older version whose definition no longer validates: its tile must show an error.
    with store.engine.begin() as conn:
        conn.execute(insights_table.insert().values(
            id="0ld0ld0ld0ld0ld0", project_id=PROJECT, name="Retention (old)", description="",
            query={"kind": "retention", **RANGE}, created_by="mae",
            created_at=datetime(2026, 1, 1, tzinfo=UTC), updated_at=datetime(2026, 1, 1, tzinfo=UTC)))
    broken = book.create_dashboard(PROJECT, name="With a broken tile", created_by="mae",
                                   tiles=[{"insight_id": top.id, "width": 6, "height": 4}])
    # (the store refuses invalid insights as tiles now; an old dashboard may still hold one)
    with store.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO dashboard_tiles (dashboard_id, position, insight_id, width, height) "
                             "VALUES (:d, 1, '0ld0ld0ld0ld0ld0', 6, 4)"), {"d": broken.id})
    big = book.create_dashboard(PROJECT, name="Twenty tiles", created_by="mae",
                                tiles=[{"insight_id": top.id, "width": 6, "height": 3}] * 20)
    tokens = {name: create_token(store.engine, name)[0] for name in ("mae", "gus", "otto")}
    return {"top": top, "other": other, "broken": broken, "big": big, "tokens": tokens}


@pytest.fixture(scope="module")
def client(settings, data) -> Iterator[TestClient]:
    with TestClient(create_app(settings.model_copy(update={"embed_allowed_origins_setting": ORIGIN}))) as client:
        yield client


@pytest.fixture(scope="module")
def site(settings, data) -> Iterator[str]:
    with serving(create_app(settings)) as base:
        yield base


@pytest.fixture(scope="module")
def renderer() -> Iterator[PngRenderer]:
    with PngRenderer(max_concurrency=2, timeout_seconds=30) as renderer:
        yield renderer


def as_(data, who: str) -> dict:
    return {"Authorization": f"Bearer {data['tokens'][who]}"}


def share(client, data, resource: str, target_id: str, who: str = "mae", project: int = PROJECT, **body):
    return client.post(f"/api/v1/projects/{project}/{resource}s/{target_id}/share_links", headers=as_(data, who),
                       json=body or None)


def bar_heights(image, left: int, right: int) -> list[int]:
    """Heights of the BLUE bars between columns left and right, left to right."""
    columns = [x for x in range(left, right) if any(near(image.rgb(x, y), BLUE, 4) for y in range(0, image.height, 2))]
    bars, start = [], None
    for x in range(left, right + 1):
        inside = x in columns
        if inside and start is None:
            start = x
        elif not inside and start is not None:
            bars.append((start + x) // 2)
            start = None
    return [sum(n for _, n in runs(image, x, BLUE)) for x in bars]


# ------------------------------------------------------------------------------------------ share links


def test_a_share_link_opens_the_page_for_anyone_until_revoked(client, data):
    created = share(client, data, "insight", data["top"].id)
    assert created.status_code == 201
    body = created.json()
    assert body["url"] == f"http://testserver/embed/insights/{body['token']}"
    assert len(body["token"]) >= 43 and body["active"] is True and body["expires_at"] is None

    page = client.get(f"/embed/insights/{body['token']}")  # no credentials at all
    assert page.status_code == 200
    assert page.headers["content-security-policy"].endswith(f"frame-ancestors 'self' {ORIGIN}")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"
    assert "x-frame-options" not in page.headers  # frame-ancestors decides; X-Frame-Options cannot list origins
    # The user's text is escaped in the markup and inert in the data.
    assert "<script>alert(1)" not in page.text
    assert "Top events &lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    data_json = re.search(r'<script type="application/json" id="embed-data">(.*?)</script>', page.text, re.S).group(1)
    assert "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e" in data_json
    assert '"rows":[["alpha",40],["beta",20],["gamma",10]]' in data_json

    listed = client.get(f"/api/v1/projects/{PROJECT}/insights/{data['top'].id}/share_links", headers=as_(data, "gus"))
    assert [link["id"] for link in listed.json()["data"]][0] == body["id"]
    assert "token" not in listed.json()["data"][0]  # shown once, at creation

    revoked = client.delete(f"/api/v1/projects/{PROJECT}/share_links/{body['id']}", headers=as_(data, "mae"))
    assert revoked.status_code == 200 and revoked.json()["active"] is False
    gone = client.get(f"/embed/insights/{body['token']}")
    assert gone.status_code == 410
    assert "revoked" in gone.text and gone.headers["content-security-policy"].endswith(f"frame-ancestors 'self' {ORIGIN}")


def test_an_expired_link_is_gone(client, data, store):
    body = share(client, data, "insight", data["top"].id,
                 expires_at=(datetime.now(UTC) + timedelta(hours=1)).isoformat()).json()
    assert client.get(f"/embed/insights/{body['token']}").status_code == 200
    with store.engine.begin() as conn:
        conn.execute(share_links.update().where(share_links.c.id == body["id"])
                     .values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    expired = client.get(f"/embed/insights/{body['token']}")
    assert expired.status_code == 410 and "expired" in expired.text
    past = share(client, data, "insight", data["top"].id, expires_at="2020-01-01T00:00:00Z")
    assert past.status_code == 422 and past.json()["error"]["details"] == {"expires_at": "must be in the future"}


def test_tokens_only_open_their_own_page_and_project(client, data):
    dashboard_token = share(client, data, "dashboard", data["big"].id).json()["token"]
    assert client.get(f"/embed/dashboards/{dashboard_token}").status_code == 200
    assert client.get(f"/embed/insights/{dashboard_token}").status_code == 404  # a dashboard's token, not an insight's
    assert client.get("/embed/insights/not-a-token").status_code == 404
    # Another project's insight cannot be shared from this project, nor this one's by its non-members.
    assert share(client, data, "insight", data["other"].id).status_code == 404
    assert share(client, data, "insight", data["top"].id, who="otto").status_code == 404
    assert share(client, data, "insight", data["top"].id, who="gus").status_code == 403  # Guests may not share
    assert client.post(f"/api/v1/projects/{PROJECT}/insights/{data['top'].id}/share_links").status_code == 401
    # A link to a deleted insight stops working.
    doomed = client.post(f"/api/v1/projects/{PROJECT}/insights", headers=as_(data, "mae"),
                         json={"name": "Doomed", "query": {"kind": "number", **RANGE}}).json()
    token = share(client, data, "insight", doomed["id"]).json()["token"]
    assert client.get(f"/embed/insights/{token}").status_code == 200
    assert client.delete(f"/api/v1/projects/{PROJECT}/insights/{doomed['id']}", headers=as_(data, "mae")).status_code == 204
    assert client.get(f"/embed/insights/{token}").status_code == 404


def test_members_open_pages_with_their_token_or_cookie(client, data):
    path = f"/projects/{PROJECT}/embed/insights/{data['top'].id}"
    assert client.get(path, headers=as_(data, "gus")).status_code == 200
    assert client.get(path, cookies={"export_pipeline_token": data["tokens"]["gus"]}).status_code == 200
    client.cookies.clear()
    anonymous = client.get(path)
    assert anonymous.status_code == 401 and "share link" in anonymous.text
    assert client.get(path, headers=as_(data, "otto")).status_code == 404  # not a member: the project is not revealed


def test_options_are_validated_and_applied(client, data):
    token = share(client, data, "insight", data["top"].id).json()["token"]
    page = client.get(f"/embed/insights/{token}?theme=dark&width=1200&whitelabel=1&readonly=true")
    assert page.status_code == 200
    assert '<html lang="en" class="theme-dark insight whitelabel readonly">' in page.text
    assert '"width":1200,"readonly":true' in page.text
    assert "Shared with export-pipeline" not in page.text
    assert "Shared with export-pipeline" in client.get(f"/embed/insights/{token}").text
    bad = client.get(f"/embed/insights/{token}?theme=pink&width=99")
    assert bad.status_code == 422
    assert "theme: must be light or dark" in bad.text and "width: must be a whole number of pixels from 400 to 3000" in bad.text


def test_sharing_can_be_turned_off(settings, data):
    off = settings.model_copy(update={"sharing_enabled": False})
    with TestClient(create_app(settings)) as on_client:
        token = share(on_client, data, "insight", data["top"].id).json()["token"]
    with TestClient(create_app(off)) as client:
        page = client.get(f"/embed/insights/{token}")
        assert page.status_code == 403 and "Sharing is turned off" in page.text
        assert share(client, data, "insight", data["top"].id).status_code == 403


def test_the_charting_library_is_served_locally(client):
    script = client.get("/embed/static/vendor/chart.umd.min.js")
    assert script.status_code == 200 and script.text.startswith("/*!\n * Chart.js v4.6.1")
    assert client.get("/embed/static/embed.js").status_code == 200


def test_unknown_allowed_origins_stop_the_app_at_start(settings):
    with pytest.raises(ValueError, match="EXPORT_EMBED_ALLOWED_ORIGINS holds 'javascript:alert"):
        create_app(settings.model_copy(update={"embed_allowed_origins_setting": "javascript:alert(1)"}))


# ------------------------------------------------------------------------------------------ in Chromium


def test_the_insight_png_has_bars_in_proportion_to_the_counts(site, renderer, client, data):
    token = share(client, data, "insight", data["top"].id).json()["token"]
    png = renderer.render(f"{site}/embed/insights/{token}?readonly=1", width=800, item="insight top events")
    image = decode_png(png)

    assert (image.width, image.height) == png_size(png) and image.width == 1600
    heights = bar_heights(image, 0, image.width)
    assert len(heights) == 3, heights
    alpha, beta, gamma = heights
    assert alpha > 300  # not blank: the tallest bar spans most of the chart
    assert abs(beta / alpha - 0.5) < 0.02 and abs(gamma / alpha - 0.25) < 0.02, heights


def test_the_dark_theme_and_width_option_are_drawn(site, renderer, client, data):
    token = share(client, data, "insight", data["top"].id).json()["token"]
    image = decode_png(renderer.render(f"{site}/embed/insights/{token}?theme=dark", width=1000, item="dark"))
    assert image.width == 2000
    assert near(image.rgb(4, 4), (13, 17, 23))  # --bg of the dark theme
    assert len(bar_heights(image, 0, image.width)) == 0  # the dark theme's bars are another blue
    assert any(near(image.rgb(x, y), (68, 147, 248), 4) for x in range(0, 2000, 7) for y in range(300, 900, 7))


def test_a_tile_that_cannot_be_computed_shows_an_error_and_the_rest_draws(site, renderer, client, data):
    token = share(client, data, "dashboard", data["broken"].id).json()["token"]
    page = client.get(f"/embed/dashboards/{token}").text
    assert 'role="alert"><strong>Could not show this insight.</strong> This insight cannot be shown: its ' \
           "definition is no longer valid (query: Input tag &#x27;retention&#x27; found" in page
    image = decode_png(renderer.render(f"{site}/embed/dashboards/{token}", width=1200, item="broken dashboard"))
    left, right = bar_heights(image, 0, 1200), bar_heights(image, 1200, 2400)
    assert len(left) == 3 and right == []
    assert any(near(image.rgb(x, y), ERROR_BG, 3) for x in range(1300, 2300, 20) for y in range(200, 700, 10))


def test_a_20_tile_dashboard_renders_whole(site, renderer, client, data):
    token = share(client, data, "dashboard", data["big"].id).json()["token"]
    png = renderer.render(f"{site}/embed/dashboards/{token}", width=1920, item="dashboard of 20 tiles")
    width, height = png_size(png)
    image = decode_png(png, columns=1900)
    first_bar = next(x for x in range(1900) if sum(n for _, n in runs(image, x, BLUE)) > 40)
    column = runs(image, first_bar + 6, BLUE)
    # Ten rows of two tiles: one alpha bar per row in the left column, all the same height, the last near the end.
    assert width == 3840 and len(column) == 10, column
    assert max(n for _, n in column) - min(n for _, n in column) <= 2
    assert height - column[-1][0] < 2 * (3 * 72 + 2 * 16 + 16 + 60)


def saturated_pixels(image) -> list[tuple[int, int]]:
    """Where the image has clearly saturated colour: text, borders, a missing-glyph box are grey or black."""
    return [(x, y) for y in range(image.height) for x in range(image.width)
            if max(pixel := image.rgb(x, y)) - min(pixel) > 100]


def test_an_emoji_in_a_title_is_drawn_in_colour(site, renderer, client, data, store):
    # A number insight: its page has no coloured chart, so the emoji is the only colour on it.
    launch = InsightStore(store.engine).create_insight(PROJECT, name="\N{PARTY POPPER} Launch", created_by="mae",
                                                       query={"kind": "number", **RANGE})
    token = share(client, data, "insight", launch.id).json()["token"]
    image = decode_png(renderer.render(f"{site}/embed/insights/{token}", width=800, item="insight with an emoji"))
    coloured = saturated_pixels(image)
    assert len(coloured) > 200, "the emoji is not drawn in colour: is fonts-noto-color-emoji installed (make system-deps)?"
    columns, rows = [x for x, _ in coloured], [y for _, y in coloured]
    # All of it in one glyph-sized square at the start of the title (at device scale 2).
    assert max(columns) - min(columns) < 64 and max(rows) - min(rows) < 64 and max(rows) < 200, (columns, rows)
    warm = [red for red, _, blue in (image.rgb(x, y) for x, y in coloured) if red > blue + 100]
    assert len(warm) > 100  # the popper's yellow and orange, not only some tint


# --------------------------------------------------------------------------------------------- exports


def export_png(deps, **fields):
    request = deps.store.create(parse_spec(project_id=PROJECT, requested_by="mae", format="png", **fields), source="test")
    result = run_export(request.id, deps, run_id=f"r-{request.id}", run_is_active=lambda _: False,
                        log=logging.getLogger("test"))
    return request, read_manifest(deps.storage, result.manifest_key)


def test_png_exports_of_an_insight_and_a_dashboard(deps, data):
    request, manifest = export_png(deps, resource="insight", target_id=data["top"].id)
    assert [(f["name"], f["rows"]) for f in manifest["files"]] == [("insight.png", 3)]
    png = deps.storage.read_bytes(f"{request.storage_prefix}/insight.png")
    assert png_size(png)[0] == 1600  # 800 CSS px at device scale 2
    assert bar_heights(decode_png(png), 0, 1600)[0] > 300

    request, manifest = export_png(deps, resource="dashboard", target_id=data["big"].id, width=1000)
    assert manifest["filters"] == {"target_id": data["big"].id, "width": 1000}
    png = deps.storage.read_bytes(f"{request.storage_prefix}/dashboard.png")
    assert png_size(png)[0] == 2000 and png_size(png)[1] > 2 * 10 * (3 * 72)


def test_a_png_of_an_insight_that_cannot_be_computed_fails_the_export(deps, data):
    request = deps.store.create(parse_spec(project_id=PROJECT, requested_by="mae", format="png", resource="insight",
                                           target_id="0ld0ld0ld0ld0ld0"), source="test")
    with pytest.raises(Exception, match="definition is no longer valid"):
        run_export(request.id, deps, run_id="r-broken", run_is_active=lambda _: False, log=logging.getLogger("test"))
    failed = deps.store.require(request.id)
    assert failed.state.value == "failed" and failed.error_code == "insight_failed"
    assert failed.error.startswith("Insight 0ld0ld0ld0ld0ld0 ('Insight 0ld0ld0ld0ld0ld0'): This insight cannot be shown: "
                                   "its definition is no longer valid")


def test_png_width_is_validated(data):
    with pytest.raises(Exception, match="width: must be a whole number of pixels from 400 to 3000"):
        parse_spec(project_id=PROJECT, requested_by="mae", format="png", resource="insight", target_id="x", width=3001)
    with pytest.raises(Exception, match="width: only PNG exports take a width"):
        parse_spec(project_id=PROJECT, requested_by="mae", format="csv", resource="insight", target_id="x", width=900)


def test_share_links_from_the_cli(settings, client, data, monkeypatch):
    from click.testing import CliRunner

    from export_pipeline.cli import main as cli

    monkeypatch.setenv("EXPORT_PIPELINE_HOME", str(settings.home))
    runner = CliRunner()
    created = runner.invoke(cli, ["share-links", "create", "--project-id", str(PROJECT), "--user", "mae",
                                  "--resource", "dashboard", "--target-id", data["big"].id, "--expires-in-days", "7"])
    assert created.exit_code == 0, created.output
    link = json.loads(created.output)
    token = link["url"].rsplit("/", 1)[1]
    assert link["url"] == f"{settings.api_base_url}/embed/dashboards/{token}" and link["expires_at"]
    assert client.get(f"/embed/dashboards/{token}").status_code == 200
    refused = runner.invoke(cli, ["share-links", "create", "--project-id", str(PROJECT), "--user", "gus",
                                  "--resource", "insight", "--target-id", data["top"].id])
    assert refused.exit_code != 0 and "Maintainer" in refused.output
    revoked = runner.invoke(cli, ["share-links", "revoke", "--project-id", str(PROJECT), link["id"]])
    assert revoked.exit_code == 0 and json.loads(revoked.output)["active"] is False
    assert client.get(f"/embed/dashboards/{token}").status_code == 410


def test_png_exports_are_requested_through_the_api(client, data):
    url = f"/api/v1/projects/{PROJECT}/exports"
    accepted = client.post(url, headers=as_(data, "mae"), json={
        "resource": "dashboard", "target_id": data["big"].id, "format": "png", "width": 2400})
    assert accepted.status_code == 202
    assert (accepted.json()["format"], accepted.json()["width"]) == ("png", 2400)
    refused = client.post(url, headers=as_(data, "mae"), json={
        "resource": "insight", "target_id": data["top"].id, "format": "csv", "width": 900})
    assert refused.status_code == 422 and refused.json()["error"]["details"] == {"width": "only PNG exports take a width"}
    too_wide = client.post(url, headers=as_(data, "mae"), json={
        "resource": "insight", "target_id": data["top"].id, "format": "png", "width": 3001})
    assert too_wide.status_code == 422 and "width" in too_wide.json()["error"]["details"]
    client.delete(f"{url}/{accepted.json()['id']}", headers=as_(data, "mae"))


@needs_chromium
def test_the_funnel_labels_each_step_with_its_conversion(site, client, data, store):
    import asyncio

    funnel = InsightStore(store.engine).create_insight(PROJECT, name="Alpha to delta", created_by="mae", query={
        "kind": "funnel", "steps": ["alpha", "delta"], "window_seconds": 3600, **RANGE})
    token = share(client, data, "insight", funnel.id).json()["token"]

    async def labels() -> list[str]:
        async with browser_page(f"{site}/embed/insights/{token}") as page:
            await page.waitForFunction("window.__chartsReady === true", timeout=30_000)
            return await page.evaluate("Chart.getChart(document.querySelector('[data-tile] canvas')).data.labels")

    assert asyncio.run(labels()) == ["1. alpha · 100%", "2. delta · 0%"]
