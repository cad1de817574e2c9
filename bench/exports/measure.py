"""One measurement: a fresh Python process doing one kind of work, timed inside and watched from outside.

The child side imports the package lazily, inside each kind, so a child holds only what its work needs."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.exports.data import MAIN_PROJECT
from bench.exports.results import MB, Measurement
from bench.report import log

BENCH_USER = "bench"
TIME_BIN = "/usr/bin/time"
REPO_ROOT = Path(__file__).resolve().parents[2]  # where `bench` is importable from

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


def native_sql(table, path: str) -> str:
    """The rows and columns of our export of MAIN_PROJECT, written by ClickHouse itself."""
    from export_pipeline.models.events import events_model

    model = events_model(table)
    quoted = path.replace("\\", "\\\\").replace("'", "\\'")
    return (
        f"SELECT {model.select_list(output_only=True)} FROM {model.source} "
        f"WHERE {table.col('project_id')} = {{project_id:UInt64}} "
        f"ORDER BY {model.order_by()} INTO OUTFILE '{quoted}' FORMAT JSONEachRow"
    )


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
        session.client.command(
            native_sql(table, str(path)), parameters={"project_id": MAIN_PROJECT}, settings=NATIVE_SETTINGS
        )
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
    add_member(deps.engine, project, BENCH_USER, Role.MAINTAINER)
    request = deps.store.create(
        parse_spec(project_id=project, requested_by=BENCH_USER, format=spec["format"], compression=spec["compression"]),
        source="bench",
    )
    started = time.monotonic()
    result = run_export(
        request.id, deps, run_id=f"bench-{request.id}", run_is_active=lambda _: False,
        log=logging.getLogger("bench.exports"),
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
    command = [sys.executable, "-m", "bench.exports", "--child", json.dumps({**spec, "result": result_path})]
    use_time = os.access(TIME_BIN, os.X_OK)
    if use_time:
        command = [TIME_BIN, "-f", "%e %M", "-o", time_path, *command]
    started = time.monotonic()
    done = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True)
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
        log(
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

