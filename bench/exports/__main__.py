"""`python -m bench.exports`: per size, seed, measure each figure in a fresh process, write the markdown."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.exports.data import PROJECT, active_parts, bench_env, merge_parts, prepare_data
from bench.exports.measure import BENCH_USER, child_main, measure
from bench.exports.results import (
    FormatRun,
    Merged,
    Report,
    SizeRun,
    machine_facts,
    render_section,
    render_table,
    render_targets,
)
from bench.report import log, update_markdown

DEFAULT_EVENTS = "1000000,10000000"
FORMATS = ("ndjson", "json", "csv", "parquet")
COMPRESSIONS = ("none", "gzip", "zstd")
SECTION = "exports"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.exports", description="Benchmark exports against ClickHouse writing the same rows."
    )
    parser.add_argument("--events", default=DEFAULT_EVENTS,
                        help=f"comma-separated table sizes, each seeded and measured in turn (default {DEFAULT_EVENTS})")
    parser.add_argument("--formats", default=",".join(FORMATS), help="comma-separated: ndjson,json,csv,parquet")
    parser.add_argument("--compression", choices=COMPRESSIONS, default="none", help="of every output (default none)")
    parser.add_argument("--home", default=".data/bench", help="EXPORT_PIPELINE_HOME of the bench (default .data/bench)")
    parser.add_argument("--output", default="docs/benchmarks.md", help="markdown file to update")
    parser.add_argument("--reuse", action="store_true",
                        help="keep a table that already holds the wanted events, as it is (merged after --merged)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement (median reported)")
    parser.add_argument("--http", action="store_true",
                        help="also measure the ndjson export reading ClickHouse over http:// (served by this process)")
    parser.add_argument("--merged", action="store_true",
                        help="then merge every part (OPTIMIZE FINAL) and measure native and run_export again")
    args = parser.parse_args(argv)
    formats = [f.strip().lower() for f in args.formats.split(",") if f.strip()]
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        parser.error(f"--formats: unknown {unknown}; choose from {','.join(FORMATS)}")
    try:
        sizes = sorted({int(size.replace("_", "")) for size in args.events.split(",") if size.strip()})
    except ValueError:
        parser.error("--events: comma-separated whole numbers")
    if not sizes or sizes[0] < 1:
        parser.error("--events must be at least 1")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    args.formats, args.sizes = formats, sizes
    return args


def measure_size(events: int, args: argparse.Namespace, settings, env: dict[str, str], workdir: Path) -> tuple[SizeRun, str]:
    seed_note, version = prepare_data(settings, events, reuse=args.reuse)
    parts = active_parts(settings)
    log(f"{events:,} events in {parts} active parts")
    fixed = measure("fixed cost: imports + open chDB + SELECT 1", {"kind": "fixed"}, env, workdir, args.repeat)
    runs = []
    for fmt in args.formats:
        spec = {"format": fmt, "compression": args.compression}
        native = measure(f"{events:,} native {fmt}", {**spec, "kind": "native", "path": str(workdir / f"native.{fmt}")},
                         env, workdir, args.repeat, expect_rows=events)
        work = measure(f"{events:,} ours {fmt}: run_export", {**spec, "kind": "export"}, env, workdir, args.repeat,
                       expect_rows=events)
        cli = measure(f"{events:,} ours {fmt}: export --wait", {**spec, "kind": "cli"}, env, workdir, args.repeat,
                      expect_rows=events)
        runs.append(FormatRun(fmt, native, work, cli))
    if active_parts(settings) != parts:
        log(f"note: the table now has {active_parts(settings)} active parts (a background merge ran)")
    http = measure_over_http(events, args, settings, env, workdir) if args.http else None
    merged = None
    if args.merged:
        seconds = merge_parts(settings)
        merged_parts = active_parts(settings)
        log(f"merged into {merged_parts} active parts in {seconds:.1f} s")
        natives, works = {}, {}
        for fmt in args.formats:
            spec = {"format": fmt, "compression": args.compression}
            natives[fmt] = measure(f"{events:,} merged native {fmt}",
                                   {**spec, "kind": "native", "path": str(workdir / f"native.{fmt}")},
                                   env, workdir, args.repeat, expect_rows=events)
            works[fmt] = measure(f"{events:,} merged ours {fmt}: run_export", {**spec, "kind": "export"}, env, workdir,
                                 args.repeat, expect_rows=events)
        merged = Merged(merged_parts, seconds, natives, works)
    return SizeRun(events, parts, seed_note, fixed, runs, merged, http), version


def measure_over_http(events: int, args: argparse.Namespace, settings, env: dict[str, str], workdir: Path):
    """The export in its own process against ClickHouse's HTTP interface, served here from the embedded engine."""
    from export_pipeline.clickhouse.connection import ClickHouse
    from export_pipeline_tests.fakes.clickhouse_http import ClickHouseHTTPServer, ServerCredentials

    server = ClickHouseHTTPServer(ClickHouse.from_settings(settings), ServerCredentials("bench", "bench")).start()
    try:
        spec = {"kind": "export", "format": "ndjson", "compression": args.compression}
        return measure(f"{events:,} ours ndjson over http://: run_export", spec,
                       {**env, "CLICKHOUSE_URL": server.url()}, workdir, args.repeat, expect_rows=events)
    finally:
        server.stop()


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

    from export_pipeline.accounts.roles import Role, add_member
    from export_pipeline.exports.deps import build_deps
    from export_pipeline.settings import Settings

    settings = Settings()
    add_member(build_deps(settings).engine, PROJECT, BENCH_USER, Role.MAINTAINER)
    machine = machine_facts("?")
    workdir = home / "bench-tmp"
    workdir.mkdir(exist_ok=True)
    sizes = []
    for events in args.sizes:
        size, version = measure_size(events, args, settings, env, workdir)
        sizes.append(size)
        print(f"{events:,} events, {size.parts} active parts:\n{render_table(size.formats)}\n", flush=True)
    shutil.rmtree(workdir, ignore_errors=True)
    machine["Versions"] = machine["Versions"].replace("ClickHouse ?", f"ClickHouse {version}")
    report = Report(
        command=command, date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), machine=machine,
        compression=args.compression, repeat=args.repeat, sizes=sizes,
    )
    output = Path(args.output)
    update_markdown(output, SECTION, render_section(report))
    print(render_targets(sizes))
    log(f"wrote section bench:{SECTION} of {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
