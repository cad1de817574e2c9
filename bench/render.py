"""Render benchmark: PNG/s of one reused Chromium (`PngRenderer`) against a fresh browser per image.

    python -m bench.render [--images 40] [--warmup 10] [--fresh-images 5] [--width 800]
                           [--concurrency 2] [--executable /usr/bin/chromium] [--output docs/benchmarks.md]

Run from the repository root (the benchmarks are not part of the installed package).

The embed page of a trends insight (`export_pipeline.embed.page`: Chart.js 4 draws two weekly series, then the
page sets `window.__chartsReady = true`) is served with its assets from loopback. Measured in one run:

- the first image of a new renderer, which starts Chromium;
- `--warmup` more images from that renderer (Chromium's caches and the new tabs warming up), then `--images`
  more, the sustained rate; both submitted from 2 × `--concurrency` threads at once, so the renderer's queue
  never runs dry;
- `--fresh-images` images one after another with `render_once_fresh`, a new browser each time.

Every PNG is checked to be `2 × width` pixels wide. Only the section between the `bench:render` markers of
the output file is replaced (appended if absent).
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import shlex
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench.report import cpu_count, cpu_model, package_version, update_markdown
from export_pipeline.embed.page import STATIC_DIR, EmbedOptions, PageView, TileView, page_html
from export_pipeline.render.browser import DEFAULT_DEVICE_SCALE, INSIGHT_WIDTH, PngRenderer
from export_pipeline.render.capture import png_size
from export_pipeline.render.chromium import DEFAULT_EXECUTABLE

SECTION = "render"
TARGET_PNG_PER_SECOND = 4.0

# The real embed page of a trends insight (two weekly series), drawn by the vendored Chart.js.
INSIGHT_VIEW = PageView("insight", "Weekly signups", "", [TileView(
    "Weekly signups", "", "trends", ["bucket", "series", "value"],
    [[f"2026-{1 + week // 4:02d}-{1 + 7 * (week % 4):02d}", series, value]
     for series, values in (("signups", [120, 135, 128, 160, 172, 190, 185, 210, 230, 225, 260, 280]),
                            ("activated", [60, 70, 66, 80, 95, 101, 99, 120, 131, 128, 150, 166]))
     for week, value in enumerate(values)],
)], "2026-11-23T00:00:00Z")


@dataclass(frozen=True)
class Row:
    what: str
    images: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0

    @property
    def ms_per_image(self) -> float:
        return 1000 * self.seconds / self.images if self.images else 0.0


@contextmanager
def serving_insight() -> Iterator[str]:
    """The insight's embed page (`/insight.html`) and its assets on 127.0.0.1; yields the base URL."""
    pages = {"/insight.html": (page_html(INSIGHT_VIEW, EmbedOptions(readonly=True)).encode(), "text/html; charset=utf-8")}
    kinds = {".js": "text/javascript", ".css": "text/css"}
    for path in STATIC_DIR.rglob("*.*"):
        if path.suffix in kinds:
            pages[f"/embed/static/{path.relative_to(STATIC_DIR).as_posix()}"] = (path.read_bytes(), kinds[path.suffix])

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            found = pages.get(self.path.split("?", 1)[0])
            if found is None:
                self.send_error(404)
                return
            body, kind = found
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "max-age=3600")  # as the API's static files are cached
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="bench-pages", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def render_once_fresh(url: str, *, width: int, item: str, executable: str) -> bytes:
    """One image from a browser started for it and stopped after: the cost `PngRenderer` avoids."""
    with PngRenderer(executable_path=executable, max_concurrency=1) as renderer:
        return renderer.render(url, width=width, item=item)


def _checked(png: bytes, width: int) -> bytes:
    got = png_size(png)[0]
    if got != round(width * DEFAULT_DEVICE_SCALE):
        raise RuntimeError(f"a {got}-pixel-wide image at width {width}")
    return png


def measure(base: str, *, images: int, warmup: int, fresh_images: int, width: int, concurrency: int,
            executable: str) -> list[Row]:
    url = f"{base}/insight.html"
    rows: list[Row] = []
    with PngRenderer(executable_path=executable, max_concurrency=concurrency) as renderer:
        started = time.monotonic()
        _checked(renderer.render(url, width=width, item="bench insight (first)"), width)
        rows.append(Row("first image of a new renderer (starts Chromium)", 1, time.monotonic() - started))
        _log(f"first image: {rows[-1].seconds:.2f} s")

        def one(i: int) -> bytes:
            return _checked(renderer.render(f"{url}?i={i}", width=width, item=f"bench insight {i}"), width)

        threads, done = 2 * concurrency, 0
        for label, count in ((f"the next {warmup} images, warming up", warmup), (f"then {images}, sustained", images)):
            if not count:
                continue
            with ThreadPoolExecutor(threads) as pool:
                started = time.monotonic()
                list(pool.map(one, range(done, done + count)))  # every URL a new one
                seconds = time.monotonic() - started
            rows.append(Row(f"reused Chromium, max_concurrency {concurrency} ({threads} caller threads): {label}",
                            count, seconds))
            _log(f"reused, {label}: {seconds:.2f} s")
            done += count
        if renderer.launches != 1:
            raise RuntimeError(f"the renderer started Chromium {renderer.launches} times")
    started = time.monotonic()
    for i in range(fresh_images):
        _checked(render_once_fresh(f"{url}?fresh={i}", width=width, item=f"bench insight fresh {i}",
                                   executable=executable), width)
    seconds = time.monotonic() - started
    rows.append(Row("fresh Chromium per image (`render_once_fresh`), one after another", fresh_images, seconds))
    _log(f"fresh: {fresh_images} images in {seconds:.2f} s")
    return rows


def chromium_version(executable: str) -> str:
    try:
        done = subprocess.run([executable, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    return done.stdout.strip() or "unknown"


def machine_facts(executable: str) -> dict[str, str]:
    return {
        "Machine": f"{cpu_count()} CPUs (nproc), {cpu_model()}, {platform.system()} {platform.release()}",
        "Browser": f"{chromium_version(executable)} ({executable})",
        "Python": f"{platform.python_version()}, pyppeteer {package_version('pyppeteer')}",
    }


def render_table(rows: Sequence[Row]) -> str:
    lines = ["| what | images | seconds | PNG/s | ms/image |", "|---|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row.what} | {row.images} | {row.seconds:.2f} | {row.per_second:.2f} "
                     f"| {row.ms_per_image:,.0f} |")
    return "\n".join(lines)


def render_section(rows: Sequence[Row], *, command: str, date: str, machine: dict[str, str], width: int) -> str:
    reused, fresh = rows[-2], rows[-1]
    met = reused.per_second >= TARGET_PNG_PER_SECOND
    parts = [
        f"## Images: insight PNGs at width {width} (device scale {DEFAULT_DEVICE_SCALE:g})",
        "",
        "_Generated by `python -m bench.render`; do not edit by hand._",
        "",
        f"- Command: `{command}`",
        f"- Date: {date}",
        *(f"- {key}: {value}" for key, value in machine.items()),
        "",
        render_table(rows),
        "",
        f"- Reused renderer, sustained: {reused.per_second:.2f} PNG/s — target ≥ {TARGET_PNG_PER_SECOND:g} PNG/s: "
        f"**{'met' if met else 'missed'}**; {reused.per_second / fresh.per_second:.1f}× a fresh browser per image.",
        "",
        textwrap.fill(
            "**How to read this.** Each image is a full-page PNG of the same insight's real embed page (Chart.js "
            f"draws a two-series weekly trend, {round(width * DEFAULT_DEVICE_SCALE)} pixels wide), served with "
            "its assets from loopback by the bench process itself and rendered in Debian's Chromium through pyppeteer. *seconds* "
            "is wall time from submitting the first image of a row to receiving its last PNG bytes in Python. "
            "The reused rows are one `PngRenderer`, in order, after its first image: warm tabs, one per "
            "concurrent slot, each only navigating to the next URL. Its first couple of dozen images are "
            "slower while the new Chromium warms up, which the warming-up row shows. The fresh row starts and "
            "stops Chromium (and an event-loop thread) for every image: what one `launch()` per image costs.",
            width=110,
        ),
    ]
    return "\n".join(parts) + "\n"


def _log(message: str) -> None:
    print(f"[render bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.render",
                                     description="PNG/s of the reused renderer against a fresh browser per image.")
    parser.add_argument("--images", type=int, default=40, help="images from the reused renderer (default 40)")
    parser.add_argument("--warmup", type=int, default=10, help="images before the sustained ones (default 10)")
    parser.add_argument("--fresh-images", type=int, default=5, help="images with a fresh browser each (default 5)")
    parser.add_argument("--width", type=int, default=INSIGHT_WIDTH, help=f"CSS px (default {INSIGHT_WIDTH})")
    parser.add_argument("--concurrency", type=int, default=2, help="max_concurrency of the renderer (default 2)")
    parser.add_argument("--executable", default=DEFAULT_EXECUTABLE, help=f"Chromium (default {DEFAULT_EXECUTABLE})")
    parser.add_argument("--output", default="docs/benchmarks.md", help="markdown file to update")
    args = parser.parse_args(argv)
    if args.images < 1 or args.fresh_images < 1 or args.concurrency < 1 or args.warmup < 0:
        parser.error("--images, --fresh-images and --concurrency must be at least 1, --warmup at least 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    command = shlex.join(["python", "-m", "bench.render", *argv])
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    with serving_insight() as base:
        rows = measure(base, images=args.images, warmup=args.warmup, fresh_images=args.fresh_images,
                       width=args.width, concurrency=args.concurrency, executable=args.executable)
    body = render_section(rows, command=command, date=date, machine=machine_facts(args.executable),
                          width=args.width)
    output = Path(args.output)
    update_markdown(output, SECTION, body)
    print(render_table(rows))
    _log(f"wrote section bench:{SECTION} of {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
