"""Export benchmark: our export path against ClickHouse writing the same rows itself.

    python -m export_pipeline.bench [--events 5000000] [--formats ndjson,json,csv,parquet]
                                    [--compression none] [--home .data/bench] [--output docs/benchmarks.md]
                                    [--reuse] [--repeat 1] [--rss-check]

Everything runs in its own EXPORT_PIPELINE_HOME (default `.data/bench`: its own chDB folder, SQLite database
and export folder), so the demo data is never touched. The parent seeds the events, closes every chDB session
and then runs each measurement in a fresh Python process, so that the peak RSS reported is that of one
measurement alone (GNU `/usr/bin/time -f '%e %M'` when present, else the child's own
`getrusage(RUSAGE_SELF).ru_maxrss`). Measurements:

- fixed cost: import the export modules, open the embedded engine, `SELECT 1`;
- ClickHouse native: `SELECT ... ORDER BY timestamp, uuid INTO OUTFILE ... FORMAT JSONEachRow` through the same
  engine, uncompressed;
- ours: a full `run_export` per format (request, access check, count, chunked extract, serialize, checksums,
  manifest) into a local folder.

The markdown is generated: `docs/benchmarks.md` only gets the section between the `bench:exports` markers
(`bench:exports-rss` for `--rss-check`) replaced; other sections are left alone.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path

DEFAULT_EVENTS = 5_000_000
RSS_CHECK_SMALL_EVENTS = 1_000_000
MAIN_PROJECT = 1  # N events
SMALL_PROJECT = 2  # 1M events, for --rss-check
BENCH_USER = "bench"
FORMATS = ("ndjson", "json", "csv", "parquet")
COMPRESSIONS = ("none", "gzip", "zstd")
TIME_BIN = "/usr/bin/time"
RSS_TARGET_MB = 400.0
RSS_TARGET_EVENTS = 10_000_000
RSS_TOLERANCE = 0.20
MB = 1_000_000

EXPORTS_SECTION = "exports"
RSS_SECTION = "exports-rss"

TABLE_HEADER = (
    "| what | seconds | rows/s | MB/s out | output | peak RSS MB | vs native | process s |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|"
)


# ---------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Measurement:
    """One measured child process. `rows`/`output_bytes` are None for the fixed-cost row."""

    what: str
    seconds: float  # the measured work inside the child (see "How to read this")
    rows: int | None
    output_bytes: int | None
    peak_rss_kb: int  # KiB, as getrusage and GNU time report it
    process_seconds: float | None = None  # wall time of the whole child process, interpreter start included
    native: bool = False

    @property
    def rows_per_second(self) -> float | None:
        return self.rows / self.seconds if self.rows is not None and self.seconds > 0 else None

    @property
    def output_mb_per_second(self) -> float | None:
        return self.output_bytes / MB / self.seconds if self.output_bytes is not None and self.seconds > 0 else None

    @property
    def peak_rss_mb(self) -> float:
        return self.peak_rss_kb * 1024 / MB


@dataclass(frozen=True)
class RssCheck:
    small: Measurement  # ndjson export of SMALL_PROJECT (1M rows)
    large: Measurement  # ndjson export of MAIN_PROJECT (N rows)


@dataclass(frozen=True)
class Report:
    events: int
    command: str
    date: str
    machine: dict[str, str]
    seed: str  # how the data came to be, e.g. "seeded in 31.2 s (+ OPTIMIZE FINAL 4.0 s)"
    compression: str
    repeat: int
    measurements: list[Measurement]
    rss_check: RssCheck | None = None


# -------------------------------------------------------------------------------------------- rendering


def _num(value: float | None, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def render_table(measurements: Sequence[Measurement]) -> str:
    """The results table; the ratio is rows/s of each row over rows/s of the native row."""
    native = next((m for m in measurements if m.native), None)
    native_rate = native.rows_per_second if native else None
    lines = [TABLE_HEADER]
    for m in measurements:
        rate = m.rows_per_second
        ratio = f"{rate / native_rate:.2f}×" if rate is not None and native_rate else "—"
        size = "—" if m.output_bytes is None else f"{m.output_bytes / MB:,.1f} MB"
        lines.append(
            f"| {m.what} | {m.seconds:.2f} | {_num(rate, ',.0f')} | {_num(m.output_mb_per_second, ',.1f')} "
            f"| {size} | {m.peak_rss_mb:,.0f} | {ratio} | {_num(m.process_seconds, '.2f')} |"
        )
    return "\n".join(lines)


def render_rss_table(check: RssCheck) -> str:
    small, large = check.small, check.large
    lines = [
        "| rows | seconds | rows/s | peak RSS MB |",
        "|---:|---:|---:|---:|",
    ]
    for m in (small, large):
        lines.append(f"| {m.rows or 0:,} | {m.seconds:.2f} | {_num(m.rows_per_second, ',.0f')} | {m.peak_rss_mb:,.0f} |")
    change = large.peak_rss_mb / small.peak_rss_mb - 1 if small.peak_rss_kb else 0.0
    within = abs(change) <= RSS_TOLERANCE
    under = large.peak_rss_mb <= RSS_TARGET_MB
    scale = "" if (large.rows or 0) >= RSS_TARGET_EVENTS else f" (target stated for {RSS_TARGET_EVENTS:,} rows)"
    lines += [
        "",
        f"- Peak RSS at {large.rows or 0:,} rows: {large.peak_rss_mb:,.0f} MB — target ≤ {RSS_TARGET_MB:.0f} MB"
        f"{scale}: **{'met' if under else 'missed'}**.",
        f"- Change from {small.rows or 0:,} rows: {change:+.1%} — target within ±{RSS_TOLERANCE:.0%}: "
        f"**{'met' if within else 'missed'}**.",
    ]
    return "\n".join(lines)


HOW_TO_READ = """\
**How to read this.** Every row is a fresh Python process started after the seeding process closed the
embedded engine, so *peak RSS* is that process alone (interpreter, imports, the chDB engine and the work).
*seconds* is the timed work inside that process: for the native row, opening the chDB engine and running
`SELECT … INTO OUTFILE … FORMAT JSONEachRow` (ClickHouse's own serializer writing an uncompressed file);
for *ours*, one complete `run_export` — access check, claiming the request, the count query, every chunked
keyset query (Arrow over clickhouse-connect), Polars serialization, compression if any, SHA-256 of every
byte, writing and fsyncing the part files, the manifest and the SQLite progress updates. For the fixed-cost
row it is opening the engine and `SELECT 1`, after importing the same modules as an export process; subtract
its RSS from an export's to see what the export itself holds. *process s* is the wall time of the whole
child process including interpreter start-up and imports. *rows/s* and *MB/s out* divide by *seconds*;
*vs native* is our rows/s over ClickHouse's. Sizes are in MB of 10^6 bytes; output excludes our 1-KB
manifest. Native JSON keeps `properties` as an escaped string, ours embeds it as an object, so byte counts
differ for the same rows. Rows are the seeded synthetic events (`seed_events`), merged into one part per
month (`OPTIMIZE … FINAL`) so no background merge runs during a measurement."""


def render_section(report: Report) -> str:
    """The full generated markdown section (without the markers)."""
    facts = "\n".join(f"- {key}: {value}" for key, value in report.machine.items())
    parts = [
        f"## Export throughput: {report.events:,} events"
        if report.measurements or report.rss_check is None
        else f"## Export peak RSS: {RSS_CHECK_SMALL_EVENTS:,} vs {report.events:,} events",
        "",
        "_Generated by `python -m export_pipeline.bench`; do not edit by hand._",
        "",
        f"- Command: `{report.command}`",
        f"- Date: {report.date}",
        f"- Events: {report.events:,} in one project; output compression: {report.compression}; "
        f"{'median of ' + str(report.repeat) + ' runs (peak RSS: highest)' if report.repeat > 1 else 'one run each'}",
        f"- Data: {report.seed}",
        facts,
        "",
    ]
    if report.measurements:
        parts += [render_table(report.measurements), ""]
    if report.rss_check is not None:
        parts += ["Our ndjson export of each project, one fresh process each.", "", render_rss_table(report.rss_check), ""]
    parts.append(HOW_TO_READ)
    return "\n".join(parts) + "\n"


def update_markdown(path: Path, name: str, body: str) -> None:
    """Replace the section between `<!-- bench:{name}:start -->` and `...:end -->`; append it if absent."""
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if start in text and end in text and text.index(start) < text.index(end):
        before, rest = text.split(start, 1)
        after = rest.split(end, 1)[1]
        text = before + block + after
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# ------------------------------------------------------------------------------------------ environment


def bench_env(home: Path) -> dict[str, str]:
    """Variables that pin every process of the bench to its own home (embedded chDB, SQLite, a folder)."""
    return {
        "EXPORT_PIPELINE_HOME": str(home),
        "CLICKHOUSE_URL": f"chdb://{home / 'clickhouse'}",
        "EXPORT_STORAGE_URL": f"file://{home / 'exports'}",
        "EXPORT_PIPELINE_DATABASE_URL": f"sqlite:///{home / 'app.db'}",
    }


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, for the machine facts of a benchmark."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_facts(clickhouse_version: str) -> dict[str, str]:
    def version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "not installed"

    cpu = cpu_model()
    ram = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024**2:.1f} GiB"
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "Machine": f"{cores} CPUs (nproc), {ram} RAM, {cpu}, {platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "Versions": (
            f"chdb {version('chdb')} (ClickHouse {clickhouse_version}), clickhouse-connect "
            f"{version('clickhouse-connect')}, polars {version('polars')}, pyarrow {version('pyarrow')}"
        ),
    }


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------- seeding


def _count(client, table, project: int) -> int:
    sql = f"SELECT count() FROM {table.qualified_name} WHERE {table.col('project_id')} = {{p:UInt64}}"
    return int(client.command(sql, parameters={"p": project}))


def _seed_project(client, table, project: int, events: int) -> None:
    """`events` rows in `project`. seed_events numbers projects from 1, so other projects go via a staging
    table whose rows are copied over with the project id replaced."""
    from export_pipeline.clickhouse.schema import EVENT_COLUMNS, EventsTable, init_schema
    from export_pipeline.clickhouse.seed import seed_events

    if project == 1:
        seed_events(client, table, events=events, projects=1, seed=0)
        return
    staging = EventsTable(table.database, f"{table.table}_bench_staging", table.columns)
    client.command(f"DROP TABLE IF EXISTS {staging.qualified_name}")
    init_schema(client, staging)
    try:
        seed_events(client, staging, events=events, projects=1, seed=project)
        columns = ", ".join(table.col(name) for name in EVENT_COLUMNS)
        rest = ", ".join(staging.col(name) for name in EVENT_COLUMNS[1:])
        client.command(
            f"INSERT INTO {table.qualified_name} ({columns}) "
            f"SELECT toUInt64({{p:UInt64}}), {rest} FROM {staging.qualified_name}",
            parameters={"p": project},
        )
    finally:
        client.command(f"DROP TABLE IF EXISTS {staging.qualified_name}")


def prepare_data(settings, wanted: dict[int, int], *, reuse: bool) -> tuple[str, str]:
    """Make each project hold exactly its wanted rows; returns (description for the report, CH version)."""
    from export_pipeline.clickhouse.connection import ClickHouse
    from export_pipeline.clickhouse.schema import EventsTable, init_schema

    clickhouse = ClickHouse.from_settings(settings)
    table = EventsTable.from_settings(settings)
    notes: list[str] = []
    with clickhouse.session("bench seed") as session:
        client = session.client
        version = str(client.command("SELECT version()"))
        if not reuse:
            client.command(f"DROP TABLE IF EXISTS {table.qualified_name} SYNC")
        init_schema(client, table)
        seeded = False
        for project, events in wanted.items():
            have = _count(client, table, project)
            if reuse and have == events:
                _log(f"project {project}: reusing {have:,} events")
                notes.append(f"project {project}: {events:,} events reused")
                continue
            if have:
                _log(f"project {project}: has {have:,} events, wanted {events:,}: deleting them")
                client.command(
                    f"ALTER TABLE {table.qualified_name} DELETE WHERE {table.col('project_id')} = {{p:UInt64}}",
                    parameters={"p": project},
                    settings={"mutations_sync": 2},
                )
            _log(f"project {project}: seeding {events:,} events")
            started = time.monotonic()
            _seed_project(client, table, project, events)
            elapsed = time.monotonic() - started
            _log(f"project {project}: seeded in {elapsed:.1f} s")
            notes.append(f"project {project}: {events:,} events seeded in {elapsed:.1f} s")
            seeded = True
        if seeded or _unmerged(client, table):
            started = time.monotonic()
            # One part per partition: no background merge competes with a measurement later.
            client.command(
                f"OPTIMIZE TABLE {table.qualified_name} FINAL",
                settings={"optimize_skip_merged_partitions": 1, "alter_sync": 2},
            )
            elapsed = time.monotonic() - started
            _log(f"OPTIMIZE FINAL in {elapsed:.1f} s")
            notes.append(f"OPTIMIZE FINAL {elapsed:.1f} s")
    return "; ".join(notes), version


def _unmerged(client, table) -> bool:
    sql = (
        "SELECT count() > 0 FROM (SELECT partition FROM system.parts WHERE active AND database = {d:String} "
        "AND table = {t:String} GROUP BY partition HAVING count() > 1)"
    )
    return bool(int(client.command(sql, parameters={"d": table.database, "t": table.table})))


# ------------------------------------------------------------------------------------- child processes


def _child_fixed(_spec: dict) -> dict:
    # The same imports as an export process, so the difference in RSS is the export's own memory.
    from export_pipeline.exports.deps import build_deps
    from export_pipeline.exports.run import run_export  # noqa: F401
    from export_pipeline.settings import Settings

    deps = build_deps(Settings())
    started = time.monotonic()
    with deps.clickhouse.session("bench fixed cost") as session:
        session.client.command("SELECT 1")
    return {"seconds": time.monotonic() - started, "rows": None, "bytes": None}


def native_sql(table, path: str) -> str:
    c = table.col
    columns = ", ".join(
        [
            f"{c('project_id')} AS project_id",
            f"toString({c('uuid')}) AS uuid",
            f"toString({c('event')}) AS event",
            f"{c('timestamp')} AS timestamp",
            f"{c('distinct_id')} AS distinct_id",
            f"toString({c('person_id')}) AS person_id",
            f"{c('created_at')} AS created_at",
            f"{c('properties')} AS properties",
        ]
    )
    quoted = path.replace("\\", "\\\\").replace("'", "\\'")
    return (
        f"SELECT {columns} FROM {table.qualified_name} WHERE {c('project_id')} = {MAIN_PROJECT} "
        f"ORDER BY {c('timestamp')}, {c('uuid')} INTO OUTFILE '{quoted}' FORMAT JSONEachRow"
    )


NATIVE_SETTINGS = {
    "prefer_column_name_to_alias": 1,  # ORDER BY the UUID column, not its toString alias (as ours does)
    "date_time_output_format": "iso",  # 2026-05-01T00:00:00.123456Z, like ours
    "output_format_json_quote_64bit_integers": 0,
}


def _child_native(spec: dict) -> dict:
    from export_pipeline.clickhouse.connection import ClickHouse
    from export_pipeline.clickhouse.schema import EventsTable
    from export_pipeline.settings import Settings

    settings = Settings()
    table = EventsTable.from_settings(settings)
    path = Path(spec["path"])
    path.unlink(missing_ok=True)
    started = time.monotonic()
    with ClickHouse.from_settings(settings).session("bench native") as session:
        session.client.command(native_sql(table, str(path)), settings=NATIVE_SETTINGS)
    seconds = time.monotonic() - started
    size = path.stat().st_size
    rows = 0
    with path.open("rb") as data:
        while block := data.read(16 * MB):
            rows += block.count(b"\n")
    path.unlink()
    return {"seconds": seconds, "rows": rows, "bytes": size}


def _child_export(spec: dict) -> dict:
    import logging

    from export_pipeline.accounts.roles import Role, add_member
    from export_pipeline.exports.deps import build_deps
    from export_pipeline.exports.run import run_export
    from export_pipeline.exports.spec import parse_spec
    from export_pipeline.settings import Settings

    deps = build_deps(Settings())
    project = int(spec["project"])
    add_member(deps.store.engine, project, BENCH_USER, Role.MAINTAINER)
    request = deps.store.create(
        parse_spec(project_id=project, requested_by=BENCH_USER, format=spec["format"], compression=spec["compression"]),
        source="bench",
    )
    started = time.monotonic()
    result = run_export(
        request.id, deps, run_id=f"bench-{request.id}", run_is_active=lambda _: False,
        log=logging.getLogger("export_pipeline.bench"),
    )
    seconds = time.monotonic() - started
    deps.storage.delete_prefix(request.storage_prefix)
    return {"seconds": seconds, "rows": result.rows, "bytes": result.bytes_written, "files": len(result.files)}


CHILDREN = {"fixed": _child_fixed, "native": _child_native, "export": _child_export}


def child_main(spec: dict) -> None:
    import resource

    result = CHILDREN[spec["kind"]](spec)
    result["self_maxrss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    Path(spec["result"]).write_text(json.dumps(result))


def run_child(spec: dict, env: dict[str, str], workdir: Path) -> dict:
    """Run one measurement in a fresh interpreter; returns its result plus `rss_kb` and `process_seconds`."""
    fd, result_path = tempfile.mkstemp(prefix="result-", suffix=".json", dir=workdir)
    os.close(fd)
    fd, time_path = tempfile.mkstemp(prefix="time-", suffix=".txt", dir=workdir)
    os.close(fd)
    command = [sys.executable, "-m", "export_pipeline.bench", "--child", json.dumps({**spec, "result": result_path})]
    use_time = os.access(TIME_BIN, os.X_OK)
    if use_time:
        command = [TIME_BIN, "-f", "%e %M", "-o", time_path, *command]
    started = time.monotonic()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.monotonic() - started
    try:
        if done.returncode != 0:
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-30:])
            raise RuntimeError(f"bench child {spec['kind']} failed (exit {done.returncode}):\n{tail}")
        result = json.loads(Path(result_path).read_text())
        result["rss_kb"] = result["self_maxrss_kb"]
        result["process_seconds"] = wall
        if use_time:
            fields = Path(time_path).read_text().split()
            result["process_seconds"], result["rss_kb"] = float(fields[-2]), int(fields[-1])
        return result
    finally:
        Path(result_path).unlink(missing_ok=True)
        Path(time_path).unlink(missing_ok=True)


def measure(what: str, spec: dict, env: dict[str, str], workdir: Path, repeat: int, *, native: bool = False,
            expect_rows: int | None = None) -> Measurement:
    runs = []
    for attempt in range(repeat):
        # Start every measurement with no dirty pages from earlier work (seeding, merges, other outputs).
        os.sync()
        result = run_child(spec, env, workdir)
        _log(
            f"{what} [{attempt + 1}/{repeat}]: {result['seconds']:.2f} s, rows {result['rows']}, "
            f"bytes {result['bytes']}, peak RSS {result['rss_kb'] / 1024:.0f} MiB "
            f"(self-reported {result['self_maxrss_kb'] / 1024:.0f} MiB), process {result['process_seconds']:.2f} s"
        )
        if expect_rows is not None and result["rows"] != expect_rows:
            raise RuntimeError(f"{what}: {result['rows']} rows, expected {expect_rows}")
        runs.append(result)
    runs.sort(key=lambda r: r["seconds"])
    middle = runs[(len(runs) - 1) // 2]
    return Measurement(
        what=what,
        seconds=statistics.median(r["seconds"] for r in runs),
        rows=middle["rows"],
        output_bytes=middle["bytes"],
        peak_rss_kb=max(r["rss_kb"] for r in runs),
        process_seconds=statistics.median(r["process_seconds"] for r in runs),
        native=native,
    )


# -------------------------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m export_pipeline.bench", description="Benchmark exports against ClickHouse's own JSONEachRow."
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
    command = shlex.join(["python", "-m", "export_pipeline.bench", *argv])
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

    if args.rss_check:
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
    _log(f"wrote section bench:{section} of {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
