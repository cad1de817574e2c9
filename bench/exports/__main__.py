"""`python -m bench.exports`: seed, measure each row in a fresh process, write the markdown section."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import shutil
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from bench.exports.data import MAIN_PROJECT, SMALL_PROJECT, bench_env, prepare_data
from bench.exports.measure import child_main, measure
from bench.exports.results import (
    RSS_CHECK_SMALL_EVENTS,
    Report,
    RssCheck,
    machine_facts,
    render_http_section,
    render_rss_table,
    render_section,
    render_table,
)
from bench.report import log, update_markdown

DEFAULT_EVENTS = 5_000_000
FORMATS = ("ndjson", "json", "csv", "parquet")
COMPRESSIONS = ("none", "gzip", "zstd")
EXPORTS_SECTION = "exports"
RSS_SECTION = "exports-rss"
HTTP_SECTION = "exports-http"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.exports", description="Benchmark exports against ClickHouse's own JSONEachRow."
    )
    parser.add_argument("--events", type=int, default=DEFAULT_EVENTS, help="events in project 1 (default 5,000,000)")
    parser.add_argument("--formats", default=",".join(FORMATS), help="comma-separated: ndjson,json,csv,parquet")
    parser.add_argument("--compression", choices=COMPRESSIONS, default="none", help="of our outputs (default none)")
    parser.add_argument("--home", default=".data/bench", help="EXPORT_PIPELINE_HOME of the bench (default .data/bench)")
    parser.add_argument("--output", default="docs/benchmarks.md", help="markdown file to update")
    parser.add_argument("--reuse", action="store_true", help="skip seeding a project that already has its rows")
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement (median reported)")
    parser.add_argument(
        "--rss-check", action="store_true",
        help=f"only the ndjson export at {RSS_CHECK_SMALL_EVENTS:,} rows (project 2) and at --events (project 1)",
    )
    parser.add_argument(
        "--http", action="store_true",
        help="only the ndjson export of project 1, reading ClickHouse over http:// (served by this process)",
    )
    args = parser.parse_args(argv)
    formats = [f.strip().lower() for f in args.formats.split(",") if f.strip()]
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        parser.error(f"--formats: unknown {unknown}; choose from {','.join(FORMATS)}")
    if args.events < 1:
        parser.error("--events must be at least 1")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    args.formats = formats
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child"]:
        child_main(json.loads(argv[1]))
        return 0
    args = parse_args(argv)
    command = shlex.join(["python", "-m", "bench.exports", *argv])
    home = Path(args.home).expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **bench_env(home)}
    os.environ.update(bench_env(home))

    from export_pipeline.settings import Settings

    settings = Settings()
    wanted = {MAIN_PROJECT: args.events}
    if args.rss_check:
        wanted[SMALL_PROJECT] = RSS_CHECK_SMALL_EVENTS
    seed_note, ch_version = prepare_data(settings, wanted, reuse=args.reuse)
    # From here on the parent holds no chDB session: each child opens the engine alone.
    workdir = home / "bench-tmp"
    workdir.mkdir(exist_ok=True)
    report = Report(
        events=args.events,
        command=command,
        date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        machine={**machine_facts(ch_version), "Chunk": f"EXPORT_CHUNK_BYTES = {settings.chunk_bytes:,}"},
        seed=seed_note,
        compression=args.compression,
        repeat=args.repeat,
        measurements=[],
    )

    if args.http:
        measured = measure_over_http(settings, args, env, workdir)
        body, section = render_http_section(report, measured), HTTP_SECTION
        printed = render_table([measured])
    elif args.rss_check:
        spec = {"kind": "export", "format": "ndjson", "compression": args.compression}
        small = measure("ndjson 1M", {**spec, "project": SMALL_PROJECT}, env, workdir, args.repeat,
                        expect_rows=RSS_CHECK_SMALL_EVENTS)
        large = measure(f"ndjson {args.events:,}", {**spec, "project": MAIN_PROJECT}, env, workdir, args.repeat,
                        expect_rows=args.events)
        report = replace(report, rss_check=RssCheck(small, large))
        body, section = render_section(report), RSS_SECTION
        printed = render_rss_table(report.rss_check)
    else:
        measurements = [
            measure("fixed cost: imports + open chDB + SELECT 1", {"kind": "fixed"}, env, workdir, args.repeat),
            measure(
                "ClickHouse native JSONEachRow (INTO OUTFILE)",
                {"kind": "native", "path": str(workdir / "native.ndjson")},
                env, workdir, args.repeat, native=True, expect_rows=args.events,
            ),
        ]
        for fmt in args.formats:
            label = f"ours: {fmt}" + ("" if args.compression == "none" else f" + {args.compression}")
            spec = {"kind": "export", "format": fmt, "compression": args.compression, "project": MAIN_PROJECT}
            measurements.append(measure(label, spec, env, workdir, args.repeat, expect_rows=args.events))
        report = replace(report, measurements=measurements)
        body, section = render_section(report), EXPORTS_SECTION
        printed = render_table(measurements)
    shutil.rmtree(workdir, ignore_errors=True)

    output = Path(args.output)
    update_markdown(output, section, body)
    print(printed)
    log(f"wrote section bench:{section} of {output}")
    return 0


def measure_over_http(settings, args: argparse.Namespace, env: dict[str, str], workdir: Path):
    """The export in its own process against ClickHouse's HTTP interface, served here from the embedded engine."""
    from export_pipeline.clickhouse.connection import ClickHouse
    from export_pipeline_tests.clickhouse_http import ClickHouseHTTPServer, ServerCredentials

    server = ClickHouseHTTPServer(ClickHouse.from_settings(settings), ServerCredentials("bench", "bench")).start()
    try:
        spec = {"kind": "export", "format": "ndjson", "compression": args.compression, "project": MAIN_PROJECT}
        return measure("ours: ndjson over http://", spec, {**env, "CLICKHOUSE_URL": server.url()}, workdir,
                       args.repeat, expect_rows=args.events)
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
