"""`python -m bench.batch_exports`: a daily batch export backfilled over 90 days of ingestion time.

Seeds `--events` rows in project 1 of its own home, spreads their ingestion time (`created_at`) evenly but
deterministically over `--days` days, creates a daily destination to a local folder and runs every interval
the backfill planner picks, each in a fresh process (as a Dagster run would be), then has ClickHouse write the
same rows itself (`INTO OUTFILE ... JSONEachRow`, gzip) in one query. Reports wall time, the planner's time,
peak RSS per interval run and the native time, in docs/benchmarks.md (section `batch-exports`).

`make bench` runs it at 10M events (BENCH_BATCH_EVENTS); never run that on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.exports.data import PROJECT as MAIN_PROJECT
from bench.exports.data import bench_env, prepare_data
from bench.exports.results import machine_facts
from bench.report import log, update_markdown

START = datetime(2026, 1, 1, tzinfo=UTC)
SECTION = "batch-exports"
REPO_ROOT = Path(__file__).resolve().parents[1]


def _spread_ingestion(settings, days: int) -> None:
    """created_at follows the event time, mapped onto `days` days from START, plus up to 5 minutes of
    ingestion delay (a hash of the uuid): deterministic, so --reuse measures the same rows."""
    from export_pipeline.clickhouse.connection import ClickHouse
    from export_pipeline.clickhouse.schema import EventsTable

    table = EventsTable.from_settings(settings)
    ts, project = f"toUnixTimestamp64Micro({table.col('timestamp')})", table.col("project_id")
    with ClickHouse.from_settings(settings).session("bench ingestion spread", merges=True) as session:  # a mutation
        low, high = session.client.query(f"SELECT min({ts}), max({ts}) FROM {table.qualified_name} "
                                         f"WHERE {project} = {{p:UInt64}}", parameters={"p": MAIN_PROJECT}).result_rows[0]
        delay = 300_000_000
        session.client.command(
            f"ALTER TABLE {table.qualified_name} UPDATE {table.col('created_at')} = "
            f"toDateTime64({{start:String}}, 6, 'UTC') + toIntervalMicrosecond(toUInt64(({ts} - {{low:Int64}}) / "
            f"{{width:Float64}} * {{span:Float64}}) + cityHash64({table.col('uuid')}) % {{delay:UInt64}}) "
            f"WHERE {project} = {{p:UInt64}}",
            parameters={"start": START.strftime("%Y-%m-%d %H:%M:%S"), "low": low, "width": float(high - low + 1),
                        "span": float(days * 86_400_000_000 - delay), "delay": delay, "p": MAIN_PROJECT},
            settings={"mutations_sync": 2},
        )


def _child(spec: dict) -> None:
    """One interval, as a Dagster run does it; prints its record as JSON."""
    from export_pipeline.batch_exports.run import build_batch_deps, export_interval
    from export_pipeline.deps import AppDeps
    from export_pipeline.settings import Settings

    app = AppDeps.from_settings(Settings())
    deps = build_batch_deps(app.settings, app.engine, app.clickhouse)
    started = time.monotonic()
    result = export_interval(spec["destination"], datetime.fromisoformat(spec["start"]), deps,
                             run_id=f"bench-{spec['start']}")
    print(json.dumps({"seconds": time.monotonic() - started, "rows": result.record.rows,
                      "bytes": result.record.bytes, "files": result.record.files, "rss_kb": _own_peak_rss_kb()}))


def _own_peak_rss_kb() -> int:
    """This process's own peak RSS (VmHWM of its address space). Not the parent's wait4 ru_maxrss: Linux carries
    the forking parent's peak into the child across exec, so every child reported the seeding parent's 2.4 GB."""
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))


def _native(settings, days: int, out: Path) -> dict:
    from export_pipeline.clickhouse.connection import ClickHouse
    from export_pipeline.clickhouse.schema import EventsTable
    from export_pipeline.models.events import events_model

    table = EventsTable.from_settings(settings)
    model = events_model(table)
    out.unlink(missing_ok=True)
    quoted = str(out).replace("\\", "\\\\").replace("'", "\\'")
    where = (f"{table.col('project_id')} = {{p:UInt64}} AND {table.col('created_at')} >= {{a:DateTime64(6, 'UTC')}} "
             f"AND {table.col('created_at')} < {{b:DateTime64(6, 'UTC')}}")
    sql = (f"SELECT {model.select_list(output_only=True)} FROM {model.source} WHERE {where} "
           f"ORDER BY {model.order_by()} INTO OUTFILE '{quoted}' COMPRESSION 'gzip' FORMAT JSONEachRow")
    end = START + timedelta(days=days)
    parameters = {"p": MAIN_PROJECT, "a": START.strftime("%Y-%m-%d %H:%M:%S"), "b": end.strftime("%Y-%m-%d %H:%M:%S")}
    with ClickHouse.from_settings(settings).session("bench native") as session:
        started = time.monotonic()
        session.client.command(sql, parameters=parameters,
                               settings={"prefer_column_name_to_alias": 1, "date_time_output_format": "iso"})
        seconds = time.monotonic() - started
        # The same rows as the backfill's: checked, not assumed (outside the timing).
        rows = int(session.client.command(f"SELECT count() FROM {model.source} WHERE {where}", parameters=parameters))
    size = out.stat().st_size
    out.unlink()
    return {"seconds": seconds, "bytes": size, "rows": rows}


def _run_interval(destination_id: str, start: datetime, env: dict[str, str], workdir: Path) -> dict:
    spec = json.dumps({"destination": destination_id, "start": start.isoformat()})
    out, err = workdir / "child.out", workdir / "child.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "bench.batch_exports", "--child", spec], env=env,
                                   cwd=REPO_ROOT, stdout=stdout, stderr=stderr)
        process.wait()
    if process.returncode != 0:
        raise RuntimeError(f"interval {start.isoformat()} failed:\n{err.read_text()[-3000:]}")
    return json.loads(out.read_text().strip().splitlines()[-1])


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.batch_exports", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--home", default=".data/bench-batch")
    parser.add_argument("--output", default="docs/benchmarks.md")
    parser.add_argument("--reuse", action="store_true", help="keep the seeded rows if the count matches")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(json.loads(args.child))
        return

    home = Path(args.home).resolve()
    env = {**os.environ, **bench_env(home)}
    os.environ.update(bench_env(home))
    from export_pipeline.batch_exports.plan import backfill_intervals
    from export_pipeline.batch_exports.run import build_batch_deps
    from export_pipeline.deps import AppDeps
    from export_pipeline.settings import Settings

    settings = Settings()
    described, version = prepare_data(settings, args.events, reuse=args.reuse)
    log(f"spreading ingestion times over {args.days} days", bench=SECTION)
    _spread_ingestion(settings, args.days)
    out = home / "batch-out"
    shutil.rmtree(out, ignore_errors=True)
    app = AppDeps.from_settings(settings)
    deps = build_batch_deps(settings, app.engine, app.clickhouse)
    destination = deps.destinations.create(MAIN_PROJECT, "bench", {
        "url": str(out), "interval": "day", "start_at": START.isoformat(), "settle_seconds": 0})
    started = time.monotonic()
    intervals, skipped = backfill_intervals(destination, START, START + timedelta(days=args.days), deps,
                                            datetime.now(UTC))
    planned = time.monotonic() - started
    runs = []
    for interval in intervals:
        runs.append(_run_interval(destination.id, interval.start, env, home))
        log(f"{interval.label}: {runs[-1]['rows']:,} rows, {runs[-1]['seconds']:.2f} s, "
            f"peak RSS {runs[-1]['rss_kb'] / 1024:.0f} MiB", bench=SECTION)
    wall = time.monotonic() - started
    rows = sum(r["rows"] for r in runs)
    if rows != args.events:
        raise RuntimeError(f"the backfill exported {rows:,} rows of {args.events:,}")
    native = _native(settings, args.days, home / "native.ndjson.gz")
    if native["rows"] != rows:
        raise RuntimeError(f"the native query read {native['rows']:,} rows, the backfill {rows:,}")
    exported_seconds = sum(r["seconds"] for r in runs)
    rss = [r["rss_kb"] / 1024 for r in runs]
    facts = machine_facts(version)
    body = "\n".join([
        f"## Batch export backfill: {args.days} daily intervals, {args.events:,} events",
        "",
        f"`python -m bench.batch_exports --events {args.events} --days {args.days}`, {time.strftime('%Y-%m-%d')}. "
        f"Data: {described}. Each interval ran in its own process, like a Dagster run.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| wall time, plan + {len(intervals)} interval runs | {wall:.1f} s |",
        f"| planning (one grouped count), intervals skipped empty | {planned:.2f} s, {skipped} |",
        f"| export time inside the runs (sum) | {exported_seconds:.1f} s |",
        f"| rows, files, bytes (ndjson.gz) | {rows:,}, {sum(r['files'] for r in runs)}, "
        f"{sum(r['bytes'] for r in runs) / 1e6:.1f} MB |",
        f"| peak RSS per run: max / median | {max(rss, default=0):.0f} / {sorted(rss)[len(rss) // 2] if rss else 0:.0f} MiB |",
        f"| ClickHouse native, same rows (one INTO OUTFILE, JSONEachRow gzip) | {native['seconds']:.1f} s, "
        f"{native['bytes'] / 1e6:.1f} MB |",
        f"| native time / export time inside the runs, / wall time | "
        f"{native['seconds'] / exported_seconds if exported_seconds else 0:.2f}×, "
        f"{native['seconds'] / wall if wall else 0:.2f}× |",
        "",
        *(f"- {key}: {value}" for key, value in facts.items()),
    ])
    update_markdown(Path(args.output), SECTION, body)
    print(body)


if __name__ == "__main__":
    main(sys.argv[1:])
