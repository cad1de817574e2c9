"""One measurement: a fresh process doing one kind of work, timed inside and watched from outside (GNU
`/usr/bin/time -f '%e %M'`: wall seconds and peak RSS of the whole process).

Kinds: `fixed` (imports, open the engine, `SELECT 1`), `native` (ClickHouse writing the rows itself with
`INTO OUTFILE`), `export` (one `run_export`, as a Dagster run does it) and `cli` (the whole
`export-pipeline export --wait` process a user runs). The Python children import the package lazily, inside
each kind, so a child holds only what its work needs."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.exports.data import PROJECT
from bench.exports.results import Measurement
from bench.report import log

BENCH_USER = "bench"
TIME_BIN = "/usr/bin/time"
REPO_ROOT = Path(__file__).resolve().parents[2]  # where `bench` is importable from

# ClickHouse's own output of the same rows and columns, in the format closest to ours.
NATIVE_FORMATS = {
    "ndjson": ("JSONEachRow", {}),
    "json": ("JSONEachRow", {"output_format_json_array_of_rows": 1}),
    "csv": ("CSVWithNames", {}),
    "parquet": ("Parquet", {}),
}
NATIVE_SETTINGS = {
    "prefer_column_name_to_alias": 1,  # ORDER BY the UUID column, not its toString alias (as ours does)
    "date_time_output_format": "iso",  # 2026-05-01T00:00:00.123456Z, like ours
    "output_format_json_quote_64bit_integers": 0,
}


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


def native_sql(table, path: str, fmt: str, compression: str) -> tuple[str, dict]:
    """The rows and columns of our export of PROJECT, written by ClickHouse itself; and its settings."""
    from export_pipeline.models.events import events_model

    model = events_model(table)
    quoted = path.replace("\\", "\\\\").replace("'", "\\'")
    name, settings = NATIVE_FORMATS[fmt]
    if fmt == "parquet":
        settings = {**settings, "output_format_parquet_compression_method": "zstd" if compression == "zstd" else "none"}
    compressed = f" COMPRESSION '{compression}'" if compression != "none" and fmt != "parquet" else ""
    sql = (
        f"SELECT {model.select_list(output_only=True)} FROM {model.source} "
        f"WHERE {table.col('project_id')} = {{project_id:UInt64}} "
        f"ORDER BY {model.order_by()} INTO OUTFILE '{quoted}'{compressed} FORMAT {name}"
    )
    return sql, {**NATIVE_SETTINGS, **settings}


def _child_native(spec: dict) -> dict:
    from export_pipeline.clickhouse.connection import ClickHouse
    from export_pipeline.clickhouse.schema import EventsTable
    from export_pipeline.settings import Settings

    settings = Settings()
    table = EventsTable.from_settings(settings)
    path = Path(spec["path"])
    path.unlink(missing_ok=True)
    sql, query_settings = native_sql(table, str(path), spec["format"], spec["compression"])
    started = time.monotonic()
    with ClickHouse.from_settings(settings).session("bench native") as session:
        session.client.command(sql, parameters={"project_id": PROJECT}, settings=query_settings)
        seconds = time.monotonic() - started
        rows = int(session.client.command(
            f"SELECT count() FROM {table.qualified_name} WHERE {table.col('project_id')} = {{p:UInt64}}",
            parameters={"p": PROJECT}))
    size = path.stat().st_size
    path.unlink()
    return {"seconds": seconds, "rows": rows, "bytes": size}


def _child_export(spec: dict) -> dict:
    import logging

    from export_pipeline.engine.spec import parse_spec
    from export_pipeline.exports.deps import build_deps
    from export_pipeline.exports.run import run_export
    from export_pipeline.settings import Settings

    deps = build_deps(Settings())
    request = deps.store.create(
        parse_spec(project_id=PROJECT, requested_by=BENCH_USER, format=spec["format"], compression=spec["compression"]),
        source="bench",
    )
    started = time.monotonic()
    result = run_export(
        request.id, deps, run_id=f"bench-{request.id}", run_is_active=lambda _: False,
        log=logging.getLogger("bench.exports"),
    )
    seconds = time.monotonic() - started
    deps.storage.delete_prefix(request.storage_prefix)
    return {"seconds": seconds, "rows": result.rows, "bytes": result.bytes_written}


CHILDREN = {"fixed": _child_fixed, "native": _child_native, "export": _child_export}


def child_main(spec: dict) -> None:
    import resource

    result = CHILDREN[spec["kind"]](spec)
    result["self_maxrss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    Path(spec["result"]).write_text(json.dumps(result))


def _timed(command: list[str], env: dict[str, str], workdir: Path) -> tuple[subprocess.CompletedProcess, float, int | None]:
    """Run a command; its wall seconds and peak RSS (KiB) as GNU time saw them (None without GNU time)."""
    fd, time_path = tempfile.mkstemp(prefix="time-", suffix=".txt", dir=workdir)
    os.close(fd)
    use_time = os.access(TIME_BIN, os.X_OK)
    if use_time:
        command = [TIME_BIN, "-f", "%e %M", "-o", time_path, *command]
    started = time.monotonic()
    try:
        done = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True)
        wall, rss = time.monotonic() - started, None
        if done.returncode == 0 and use_time:
            fields = Path(time_path).read_text().split()
            wall, rss = float(fields[-2]), int(fields[-1])
        return done, wall, rss
    finally:
        Path(time_path).unlink(missing_ok=True)


def _failed(kind: str, done: subprocess.CompletedProcess) -> RuntimeError:
    tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-30:])
    return RuntimeError(f"bench child {kind} failed (exit {done.returncode}):\n{tail}")


def run_child(spec: dict, env: dict[str, str], workdir: Path) -> dict:
    """One measurement in a fresh process; its result plus `rss_kb` and `process_seconds`."""
    if spec["kind"] == "cli":
        return _run_cli(spec, env, workdir)
    fd, result_path = tempfile.mkstemp(prefix="result-", suffix=".json", dir=workdir)
    os.close(fd)
    try:
        command = [sys.executable, "-m", "bench.exports", "--child", json.dumps({**spec, "result": result_path})]
        done, wall, rss = _timed(command, env, workdir)
        if done.returncode != 0:
            raise _failed(spec["kind"], done)
        result = json.loads(Path(result_path).read_text())
        return {**result, "process_seconds": wall, "rss_kb": rss or result["self_maxrss_kb"]}
    finally:
        Path(result_path).unlink(missing_ok=True)


def _run_cli(spec: dict, env: dict[str, str], workdir: Path) -> dict:
    """`export-pipeline export --wait`, exactly as a user runs it; the process's wall time is the figure."""
    command = [
        sys.executable, "-m", "export_pipeline.cli", "export", "--project-id", str(PROJECT), "--requested-by",
        BENCH_USER, "--format", spec["format"], "--compression", spec["compression"], "--wait",
    ]
    done, wall, rss = _timed(command, env, workdir)
    if done.returncode != 0:
        raise _failed("cli", done)
    result = json.loads(done.stdout)
    if result["status"] != "succeeded":
        raise RuntimeError(f"bench cli export ended {result['status']}: {result}")
    shutil.rmtree(Path(env["EXPORT_PIPELINE_HOME"]) / "exports" / str(PROJECT) / result["export_id"], ignore_errors=True)
    return {"seconds": wall, "process_seconds": wall, "rows": result["row_count"], "bytes": result["byte_count"],
            "rss_kb": rss or 0, "self_maxrss_kb": rss or 0}


def measure(what: str, spec: dict, env: dict[str, str], workdir: Path, repeat: int, *,
            expect_rows: int | None = None) -> Measurement:
    runs = []
    for attempt in range(repeat):
        # Start every measurement with no dirty pages from earlier work (seeding, other outputs).
        os.sync()
        result = run_child(spec, env, workdir)
        log(
            f"{what} [{attempt + 1}/{repeat}]: {result['seconds']:.2f} s, rows {result['rows']}, "
            f"bytes {result['bytes']}, peak RSS {result['rss_kb'] / 1024:.0f} MiB, "
            f"process {result['process_seconds']:.2f} s"
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
    )
