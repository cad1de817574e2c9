"""PNG rendering in Debian's Chromium (pyppeteer): pixels checked on pages served from loopback."""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from string import Template

import psutil
import pytest

from export_pipeline.errors import InvalidRequest
from export_pipeline.render.browser import PngRenderer
from export_pipeline.render.errors import RenderFailed, RenderTimeout

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    not shutil.which("chromium") and not os.environ.get("CI"),  # in CI a missing browser must fail, not skip
    reason="Debian's chromium is installed by `make test`",
)

BAR_COUNTS = (3, 6, 9, 12)
BAR_UNIT = 20  # CSS px per count
BAR_COLOR = (0x1F, 0x77, 0xB4)
TILES, TILE_HEIGHT, TILE_GAP = 20, 300, 10
TILE_COLOR, LAST_TILE_COLOR = (0x1F, 0x77, 0xB4), (0xE6, 0x19, 0x4B)
PAGE_ERROR = "query failed: insight 7 has no events in range"

# Bars drawn 50 ms after load (so an image taken before readiness has none), crisp at any devicePixelRatio.
BARS_PAGE = Template("""<!doctype html><html><head><style>html,body{margin:0;background:#fff}canvas{display:block}</style>
</head><body><canvas id="chart"></canvas><script>
const counts = $counts, unit = $unit, height = 300;
const width = document.documentElement.clientWidth, dpr = window.devicePixelRatio;
const canvas = document.getElementById("chart");
canvas.style.width = width + "px"; canvas.style.height = height + "px";
canvas.width = Math.round(width * dpr); canvas.height = Math.round(height * dpr);
setTimeout(() => {
  const ctx = canvas.getContext("2d");
  ctx.scale(dpr, dpr);
  ctx.fillStyle = "#1f77b4";
  const slot = width / counts.length;
  counts.forEach((count, i) => ctx.fillRect(Math.round(slot * i + slot / 4), height - count * unit,
                                            Math.round(slot / 2), count * unit));
  canvas.dataset.drawn = "yes";
  window.__chartsReady = true;
}, 50);
</script></body></html>""").substitute(counts=list(BAR_COUNTS), unit=BAR_UNIT)

# A dashboard of 20 tiles (6,200 CSS px), added 50 ms after load; each tile has a marker, the last one red.
TALL_PAGE = Template("""<!doctype html><html><head><style>
html,body{margin:0;background:#fff}
.tile{position:relative;height:${h}px;margin-bottom:${gap}px;background:#fff}
.marker{position:absolute;left:10px;top:10px;width:100px;height:20px;background:#1f77b4}
.tile:last-child .marker{top:${last}px;background:#e6194b}
</style></head><body><script>
setTimeout(() => {
  for (let i = 0; i < $tiles; i++) {
    const tile = document.createElement("div"); tile.className = "tile";
    const marker = document.createElement("div"); marker.className = "marker";
    tile.appendChild(marker); document.body.appendChild(tile);
  }
  requestAnimationFrame(() => { window.__chartsReady = true; });
}, 50);
</script></body></html>""").substitute(h=TILE_HEIGHT, gap=TILE_GAP, last=TILE_HEIGHT - 30, tiles=TILES)

NEVER_READY_PAGE = "<!doctype html><html><body><p>Loading forever…</p></body></html>"
BROKEN_PAGE = Template("""<!doctype html><html><body><script>
setTimeout(() => { window.__chartsError = $error; }, 50);
</script></body></html>""").substitute(error=json.dumps(PAGE_ERROR))
# Tells the server when it starts and finishes "drawing" (`hold` ms), so the test sees how many overlap.
SLOW_PAGE = Template("""<!doctype html><html><body style="margin:0"><div id="box" style="height:100px"></div><script>
fetch("/begin").then(() => setTimeout(() => fetch("/end").then(() => {
  document.getElementById("box").style.background = "#1f77b4";
  window.__chartsReady = true;
}), $hold));
</script></body></html>""")

PAGES = {
    "/bars.html": BARS_PAGE,
    "/tall.html": TALL_PAGE,
    "/never.html": NEVER_READY_PAGE,
    "/broken.html": BROKEN_PAGE,
    "/slow.html": SLOW_PAGE.substitute(hold=400),
    "/slower.html": SLOW_PAGE.substitute(hold=800),
}


# ------------------------------------------------------------------------------------------ PNG decoding


@dataclass(frozen=True)
class Image:
    width: int
    height: int
    channels: int
    rows: list[bytes]  # decoded pixels, possibly only the leftmost columns (see decode_png)

    def rgb(self, x: int, y: int) -> tuple[int, int, int]:
        row, at = self.rows[y], x * self.channels
        return row[at], row[at + 1], row[at + 2]


def decode_png(data: bytes, columns: int | None = None) -> Image:
    """8-bit RGB/RGBA, non-interlaced. Sub and Up rows are undone with byte-wise big-integer arithmetic
    (SWAR: each byte a lane, no carries between lanes), Average and Paeth rows byte by byte. PNG filters only
    look left and up, so `columns` decodes just that many columns from the left (much faster on huge images)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", data[pos + 8:pos + 21])
        elif kind == b"IDAT":
            chunks.append(data[pos + 8:pos + 8 + length])
        pos += 12 + length
    assert header is not None
    width, height, depth, color, _, _, interlace = header
    assert depth == 8 and color in (2, 6) and interlace == 0, header
    bpp = 3 if color == 2 else 4
    full_stride = width * bpp
    stride = min(width, columns or width) * bpp
    raw = zlib.decompress(b"".join(chunks))
    low = int.from_bytes(b"\x7f" * stride, "little")
    high = int.from_bytes(b"\x80" * stride, "little")
    full = (1 << (8 * stride)) - 1

    def add(a: int, b: int) -> int:  # every byte of a plus the same byte of b, modulo 256
        return ((a & low) + (b & low)) ^ ((a ^ b) & high)

    rows: list[bytes] = []
    prev = bytes(stride)
    for y in range(height):
        start = y * (full_stride + 1)
        kind, line = raw[start], raw[start + 1:start + 1 + stride]
        if kind == 0:
            row = line
        elif kind == 1:  # Sub: a running sum along the row, pixel by pixel (log-step scan)
            value, shift = int.from_bytes(line, "little"), 8 * bpp
            while shift < 8 * stride:
                value, shift = add(value, (value << shift) & full), shift * 2
            row = value.to_bytes(stride, "little")
        elif kind == 2:  # Up
            row = add(int.from_bytes(line, "little"), int.from_bytes(prev, "little")).to_bytes(stride, "little")
        else:  # Average (3), Paeth (4)
            out = bytearray(line)
            for i in range(stride):
                a = out[i - bpp] if i >= bpp else 0
                b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
                if kind == 3:
                    out[i] = (out[i] + ((a + b) >> 1)) & 255
                else:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    out[i] = (out[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
            row = bytes(out)
        rows.append(row)
        prev = row
    return Image(width, height, bpp, rows)


def near(pixel: tuple[int, int, int], color: tuple[int, int, int], tolerance: int = 12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, color, strict=True))


def runs(image: Image, x: int, color: tuple[int, int, int]) -> list[tuple[int, int]]:
    """(first row, row count) of every vertical run of `color` in column x."""
    found: list[tuple[int, int]] = []
    start = None
    for y in range(image.height + 1):
        hit = y < image.height and near(image.rgb(x, y), color)
        if hit and start is None:
            start = y
        elif not hit and start is not None:
            found.append((start, y - start))
            start = None
    return found


# ---------------------------------------------------------------------------------------------- fixtures


class _Site:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0
        self.begun = threading.Event()
        self.release = threading.Event()  # ends the responses of /hang.html


@pytest.fixture(scope="module")
def site() -> Iterator[tuple[str, _Site]]:
    state = _Site()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            path = self.path.split("?", 1)[0]
            if path in ("/begin", "/end"):
                with state.lock:
                    state.active += 1 if path == "/begin" else -1
                    state.max_active = max(state.max_active, state.active)
                state.begun.set()
                body, kind = b"ok", "text/plain"
            elif path == "/hang.html":
                state.release.wait(20)
                body, kind = NEVER_READY_PAGE.encode(), "text/html; charset=utf-8"
            elif path in PAGES:
                body, kind = PAGES[path].encode(), "text/html; charset=utf-8"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def base(site) -> str:
    return site[0]


@pytest.fixture(scope="module")
def renderer() -> Iterator[PngRenderer]:
    with PngRenderer(executable_path=CHROMIUM, max_concurrency=2, timeout_seconds=15) as shared:
        yield shared


def chromium_children(excluding: int | None = None) -> list[psutil.Process]:
    """Chromium processes among this process's descendants, except the tree of the browser `excluding`."""
    skip: set[int] = set()
    if excluding is not None:
        with_tree = psutil.Process(excluding)
        skip = {excluding, *(child.pid for child in with_tree.children(recursive=True))}
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.pid not in skip and child.name().startswith("chrom") and child.status() != psutil.STATUS_ZOMBIE:
                found.append(child)
        except psutil.Error:
            continue
    return found


def exited(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE and psutil.Process(pid).ppid() != os.getpid()
    except psutil.NoSuchProcess:
        return True


# ------------------------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("width", [400, 800, 1920])
def test_bars_are_drawn_to_scale_at_twice_the_width(renderer, base, width):
    image = decode_png(renderer.render(f"{base}/bars.html", width=width, item=f"insight 1 'Bars' at {width}"))

    assert (image.width, image.height) == (2 * width, 2 * 300)
    slot = width / len(BAR_COUNTS)
    heights = [sum(n for _, n in runs(image, round(2 * (slot * i + slot / 2)), BAR_COLOR)) for i in range(4)]
    assert all(h > 0 for h in heights), f"blank chart: {heights}"
    for count, measured in zip(BAR_COUNTS, heights, strict=True):
        assert abs(measured - 2 * BAR_UNIT * count) <= 2, (heights, BAR_COUNTS)
        assert abs(measured / heights[0] - count / BAR_COUNTS[0]) < 0.05
    # Bars stand on the bottom edge; the left margin of the chart is white.
    assert near(image.rgb(round(2 * slot / 2), image.height - 1), BAR_COLOR)
    assert near(image.rgb(2, 2), (255, 255, 255))


def test_a_custom_ready_expression_is_waited_for(renderer, base):
    ready = "Array.from(document.querySelectorAll('canvas')).every((c) => c.dataset.drawn === 'yes')"
    image = decode_png(renderer.render(f"{base}/bars.html", width=800, item="insight 2", ready_expression=ready))

    slot = 800 / len(BAR_COUNTS)
    assert near(image.rgb(round(2 * (3 * slot + slot / 2)), image.height - 1), BAR_COLOR)


def test_a_tall_dashboard_is_captured_whole(renderer, base):
    column = 2 * 60  # through every marker
    png = renderer.render(f"{base}/tall.html", width=1920, item="dashboard 3 'Everything'")
    image = decode_png(png, columns=column + 1)

    document_height = TILES * (TILE_HEIGHT + TILE_GAP)
    assert document_height > 5000
    assert image.width == 2 * 1920
    assert image.height >= 2 * document_height
    blue, red = runs(image, column, TILE_COLOR), runs(image, column, LAST_TILE_COLOR)
    assert [start for start, _ in blue] == [2 * (i * (TILE_HEIGHT + TILE_GAP) + 10) for i in range(TILES - 1)]
    assert all(abs(n - 40) <= 1 for _, n in blue)
    last_top = 2 * ((TILES - 1) * (TILE_HEIGHT + TILE_GAP) + TILE_HEIGHT - 30)
    assert len(red) == 1 and abs(red[0][0] - last_top) <= 1 and abs(red[0][1] - 40) <= 1
    assert image.height - red[0][0] < 2 * (TILE_HEIGHT + TILE_GAP)  # near the bottom of the image


def test_a_page_that_never_gets_ready_times_out_naming_the_item(base):
    with PngRenderer(executable_path=CHROMIUM, timeout_seconds=2) as quick:
        quick.render(f"{base}/bars.html", width=800, item="warm-up")  # the browser's start is not timed
        started = time.monotonic()
        with pytest.raises(RenderTimeout) as caught:
            quick.render(f"{base}/never.html", width=800, item="insight 42 'Weekly signups'")
        elapsed = time.monotonic() - started
        # A page whose server never answers: the navigation itself times out.
        with pytest.raises(RenderTimeout, match="did not finish loading") as stalled:
            quick.render(f"{base}/hang.html", width=800, item="dashboard 5 'Stalled'")
        # The renderer is still usable after timeouts, on the same browser.
        assert decode_png(quick.render(f"{base}/bars.html", width=800, item="after")).width == 1600
        assert quick.launches == 1

    assert 2 <= elapsed < 4
    error = caught.value
    assert error.code == "render_timeout"
    assert "insight 42 'Weekly signups'" in error.message and f"{base}/never.html" in error.message
    assert "2 s" in error.message and error.hint
    assert error.details["item"] == "insight 42 'Weekly signups'"
    assert "never signalled that its charts had drawn" in error.message
    assert "dashboard 5 'Stalled'" in stalled.value.message


def test_a_page_that_reports_an_error_fails_with_its_message(renderer, base):
    with pytest.raises(RenderFailed) as caught:
        renderer.render(f"{base}/broken.html", width=800, item="insight 7 'Broken'")

    assert caught.value.code == "render_failed"
    assert PAGE_ERROR in caught.value.message and "insight 7 'Broken'" in caught.value.message
    assert caught.value.details["page_error"] == PAGE_ERROR


def test_a_missing_page_fails_fast(renderer, base):
    started = time.monotonic()
    with pytest.raises(RenderFailed, match="HTTP 404"):
        renderer.render(f"{base}/gone.html", width=800, item="insight 9")
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("width", [399, 3001, 0, 800.0])
def test_widths_outside_400_to_3000_are_rejected(renderer, base, width):
    with pytest.raises(InvalidRequest) as caught:
        renderer.render(f"{base}/bars.html", width=width, item="insight 1")
    assert caught.value.code == "invalid_request" and "width" in caught.value.details


def test_eight_threads_share_two_tabs(renderer, site):
    base, state = site
    with state.lock:
        state.active = state.max_active = 0

    def one(i: int) -> bytes:
        return renderer.render(f"{base}/slow.html?i={i}", width=800, item=f"insight {i}")

    with ThreadPoolExecutor(8) as pool:
        images = [decode_png(png) for png in pool.map(one, range(8))]

    assert all((image.width, image.height) == (1600, 600) for image in images)
    assert all(near(image.rgb(10, 10), BAR_COLOR) for image in images)
    assert state.max_active == 2  # bounded by max_concurrency, and both slots used


def test_a_new_browser_replaces_one_that_died(base, site):
    state = site[1]
    with PngRenderer(executable_path=CHROMIUM) as fresh:
        fresh.render(f"{base}/bars.html", width=800, item="before")
        first = fresh.browser_pid
        assert first is not None and psutil.Process(first).name().startswith("chrom")

        os.kill(first, signal.SIGKILL)  # between renders
        png = fresh.render(f"{base}/bars.html", width=800, item="after a crash")
        second = fresh.browser_pid
        assert decode_png(png).width == 1600
        assert second is not None and second != first and fresh.launches == 2
        assert not psutil.pid_exists(first)  # reaped, not a zombie

        # Killed in the middle of a render: that render is retried once on a new browser.
        state.begun.clear()
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(fresh.render, f"{base}/slower.html", width=800, item="during a crash")
            assert state.begun.wait(10)
            os.kill(second, signal.SIGKILL)
            assert decode_png(pending.result(timeout=30)).width == 1600
        assert fresh.launches == 3 and fresh.browser_pid not in (None, first, second)


def test_close_leaves_no_chromium_behind(renderer, base):
    renderer.render(f"{base}/bars.html", width=800, item="the shared renderer, kept open")
    shared = renderer.browser_pid
    closing = PngRenderer(executable_path=CHROMIUM)
    closing.render(f"{base}/bars.html", width=800, item="one")
    pid = closing.browser_pid
    assert pid is not None
    tree = [pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))]
    assert len(tree) > 2 and chromium_children(excluding=shared)

    closing.close()
    closing.close()  # idempotent

    deadline = time.monotonic() + 5
    while chromium_children(excluding=shared) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert chromium_children(excluding=shared) == []
    assert not psutil.pid_exists(pid)  # the browser itself is reaped by us
    while not all(exited(p) for p in tree) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(exited(p) for p in tree)  # its helpers (zygote, renderers, GPU) have exited too
    assert closing.browser_pid is None
    with pytest.raises(RuntimeError, match="closed"):
        closing.render(f"{base}/bars.html", width=800, item="after close")
