"""Persons export benchmark: our persons export against ClickHouse writing the same latest-version query
itself (`INTO OUTFILE ... FORMAT JSONEachRow`), each in a fresh process (wall time and peak RSS from GNU time).
Run from the repository root:

    python -m bench.persons [--persons 100000] [--home .data/bench-persons] [--output docs/benchmarks.md]

Seeds the persons of one project (seed_people: ~3 distinct ids and 1-3 versions per person) in its own
EXPORT_PIPELINE_HOME, then measures. The markdown section between the `bench:persons` markers is replaced.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.report import log, update_markdown

PROJECT = 1
USER = "bench-maintainer"


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "EXPORT_PIPELINE_HOME": str(home), "CLICKHOUSE_URL": f"chdb://{home / 'clickhouse'}",
            "EXPORT_STORAGE_URL": f"file://{home / 'exports'}", "EXPORT_PIPELINE_DATABASE_URL": f"sqlite:///{home / 'app.db'}"}


def _seed(persons: int) -> dict:
    from export_pipeline.clickhouse.connection import ClickHouse
    from export_pipeline.clickhouse.schema import EventsTable, init_schema
    from export_pipeline.clickhouse.seed_people import seed_people
    from export_pipeline.settings import Settings

    table = EventsTable()
    started = time.monotonic()
    with ClickHouse.from_settings(Settings()).session("bench seed") as session:
        init_schema(session.client, table)
        seed_people(session.client, table, projects=1, extra_per_project=persons)
        ids = int(session.client.command(f"SELECT count() FROM {table.other('person_distinct_ids')}"))
    return {"seconds": time.monotonic() - started, "rows": None, "distinct_id_rows": ids}


def _native(path: str) -> dict:
    from export_pipeline.clickhouse.connection import ClickHouse
    from export_pipeline.clickhouse.schema import EventsTable
    from export_pipeline.clock import ch_time, now_utc
    from export_pipeline.exports.extract import QUERY_SETTINGS
    from export_pipeline.exports.spec import parse_spec
    from export_pipeline.models.persons import persons_model
    from export_pipeline.settings import Settings

    model = persons_model(EventsTable())
    clauses, params = model.filters(parse_spec(project_id=PROJECT, requested_by=USER, resource="persons"), now_utc())
    params["as_of"] = ch_time(now_utc())
    Path(path).unlink(missing_ok=True)
    sql = (f"SELECT {model.select_list(output_only=True)} FROM {model.source} WHERE {' AND '.join(clauses)} "
           f"ORDER BY {model.order_by()} INTO OUTFILE '{path}' FORMAT JSONEachRow")
    started = time.monotonic()
    with ClickHouse.from_settings(Settings()).session("bench native") as session:
        session.client.command(sql, parameters=params, settings=QUERY_SETTINGS)
    seconds = time.monotonic() - started
    rows = Path(path).read_bytes().count(b"\n")
    size = Path(path).stat().st_size
    Path(path).unlink()
    return {"seconds": seconds, "rows": rows, "bytes": size}


def _ours(fmt: str, compression: str) -> dict:
    import logging

    from export_pipeline.accounts.roles import Role, add_member
    from export_pipeline.exports.deps import build_deps
    from export_pipeline.exports.run import run_export
    from export_pipeline.exports.spec import parse_spec
    from export_pipeline.settings import Settings

    deps = build_deps(Settings())
    add_member(deps.engine, PROJECT, USER, Role.MAINTAINER)
    request = deps.store.create(parse_spec(project_id=PROJECT, requested_by=USER, resource="persons", format=fmt,
                                           compression=compression), source="bench")
    started = time.monotonic()
    result = run_export(request.id, deps, run_id=f"bench-{request.id}", run_is_active=lambda _: False,
                        log=logging.getLogger("bench.persons"))
    seconds = time.monotonic() - started
    deps.storage.delete_prefix(request.storage_prefix)
    return {"seconds": seconds, "rows": result.rows, "bytes": result.bytes_written}


def _measure(home: Path, job: dict) -> dict:
    """One job in a fresh process; its peak RSS from GNU time."""
    command = [sys.executable, "-m", "bench.persons", "--child", json.dumps(job)]
    timed = ["/usr/bin/time", "-f", "%e %M", *command] if Path("/usr/bin/time").exists() else command
    done = subprocess.run(timed, env=_env(home), capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if timed is not command:
        result["rss_mb"] = int(done.stderr.strip().splitlines()[-1].split()[1]) / 1024
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.persons")
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--home", type=Path, default=Path(".data/bench-persons"))
    parser.add_argument("--output", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        job = json.loads(args.child)
        kind = job.pop("kind")
        print(json.dumps({"seed": _seed, "native": _native, "ours": _ours}[kind](**job)))
        return
    home = args.home.absolute()
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    seeded = _measure(home, {"kind": "seed", "persons": args.persons})
    log(f"seeded {args.persons:,} persons + the events' users in {seeded['seconds']:.1f} s", bench="persons")
    native = _measure(home, {"kind": "native", "path": str(home / "native.ndjson")})
    rows = [("ClickHouse INTO OUTFILE (JSONEachRow, none)", native)]
    for fmt, compression in (("ndjson", "none"), ("ndjson", "gzip"), ("csv", "none"), ("parquet", "zstd")):
        rows.append((f"ours {fmt}/{compression}", _measure(home, {"kind": "ours", "fmt": fmt, "compression": compression})))
    lines = [
        f"Persons export, {native['rows']:,} persons ({seeded['distinct_id_rows']:,} distinct-id rows, 1-3 versions "
        f"each); seeding took {seeded['seconds']:.1f} s. `python -m bench.persons --persons {args.persons}`.", "",
        "| what | rows | seconds | persons/s | × native | MB written | peak RSS MB |", "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, result in rows:
        lines.append(f"| {name} | {result['rows']:,} | {result['seconds']:.2f} | {result['rows'] / result['seconds']:,.0f} | "
                     f"{native['seconds'] / result['seconds']:.2f} | {result['bytes'] / 1e6:.1f} | "
                     f"{result.get('rss_mb', 0):.0f} |")
    body = "\n".join(lines)
    print(body)
    update_markdown(args.output, "persons", body)


if __name__ == "__main__":
    main()
