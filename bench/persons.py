"""Persons export benchmark: our persons export against ClickHouse writing the same rows itself, side by side
in one run, each job in a fresh process (bench/children.py). Run from the repository root:

    python -m bench.persons [--persons 100000,1000000] [--rounds 2] [--home .data/bench-persons]
                            [--output docs/benchmarks.md]

For each size, seeds one project's persons (seed_people: the events' users, none here, plus N imported
persons; ~3 distinct ids and 1-3 versions each, merges, deletions; never merged) in its own
EXPORT_PIPELINE_HOME. Then, per round, in this order: ClickHouse-native twice (the latest-version query
written with argMax and with FINAL, `INTO OUTFILE ... FORMAT JSONEachRow`: one row per existing person with
all of its distinct ids, the columns ours has), and ours (`run_export`) in four format/compression pairs.
Each figure is the best of the rounds; the ratio is also given per round, native and ours measured
seconds apart. The markdown section between the `bench:persons` markers is replaced.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from bench.children import bench_parser, child_main, machine_facts, run_child
from bench.report import log, package_version, update_markdown

PROJECT = 1
USER = "bench-maintainer"
MODULE = "bench.persons"
OURS = (("ndjson", "none"), ("ndjson", "gzip"), ("csv", "none"), ("parquet", "zstd"))
NATIVE_SETTINGS = {"date_time_output_format": "iso", "output_format_json_quote_64bit_integers": 0}


def native_sql(persons: str, distinct_ids: str, query: str) -> str:
    """One row per existing person (latest version not deleted) with all the distinct ids it owns now (each
    id's latest version, not deleted), in id order: the rows and columns of our persons export, written
    the way a ClickHouse user would, with argMax or with FINAL (ReplacingMergeTree(version) keeps the highest
    version). Both write the same bytes."""
    columns = ("toString(p.id) AS id, p.c AS created_at, toBool(p.i) AS is_identified, p.v AS version, "
               "d.ids AS distinct_ids, p.props AS properties")
    if query == "argmax":
        people = (f"SELECT id, argMax(created_at, version) AS c, argMax(properties, version) AS props, "
                  f"argMax(is_identified, version) AS i, max(version) AS v FROM {persons} "
                  f"WHERE project_id = {{project_id:UInt64}} GROUP BY id HAVING argMax(is_deleted, version) = 0")
        owned = (f"SELECT distinct_id, argMax(person_id, version) AS owner FROM {distinct_ids} "
                 f"WHERE project_id = {{project_id:UInt64}} GROUP BY distinct_id HAVING argMax(is_deleted, version) = 0")
    else:
        people = (f"SELECT id, created_at AS c, properties AS props, is_identified AS i, version AS v FROM {persons} "
                  f"FINAL WHERE project_id = {{project_id:UInt64}} AND is_deleted = 0")
        owned = (f"SELECT distinct_id, person_id AS owner FROM {distinct_ids} FINAL "
                 f"WHERE project_id = {{project_id:UInt64}} AND is_deleted = 0")
    ids = f"SELECT owner, arraySort(groupArray(distinct_id)) AS ids FROM ({owned}) GROUP BY owner"
    return f"SELECT {columns} FROM ({people}) AS p LEFT JOIN ({ids}) AS d ON d.owner = p.id ORDER BY p.id"


def _seed(persons: int) -> dict:
    from export_pipeline.clickhouse.connection import ClickHouse
    from export_pipeline.clickhouse.schema import EventsTable, init_schema
    from export_pipeline.clickhouse.seed_people import seed_people
    from export_pipeline.settings import Settings

    table = EventsTable()
    started = time.monotonic()
    with ClickHouse.from_settings(Settings()).session("bench seed", merges=True) as session:
        init_schema(session.client, table)
        seed_people(session.client, table, projects=1, extra_per_project=persons)
        ids = int(session.client.command(f"SELECT count() FROM {table.other('person_distinct_ids')}"))
        versions = int(session.client.command(f"SELECT count() FROM {table.other('persons')}"))
    return {"seconds": time.monotonic() - started, "distinct_id_rows": ids, "person_rows": versions}


def _engine() -> dict:
    # The imports of an export process, the engine opened, `SELECT 1`: what every process pays.
    from export_pipeline.exports.deps import build_deps
    from export_pipeline.exports.run import run_export  # noqa: F401
    from export_pipeline.settings import Settings

    started = time.monotonic()
    with build_deps(Settings()).clickhouse.session("bench engine") as session:
        session.client.command("SELECT 1")
    return {"seconds": time.monotonic() - started}


def _native(path: str, query: str) -> dict:
    from export_pipeline.clickhouse.connection import ClickHouse
    from export_pipeline.clickhouse.schema import EventsTable
    from export_pipeline.settings import Settings

    table = EventsTable()
    Path(path).unlink(missing_ok=True)
    sql = (f"{native_sql(table.other('persons'), table.other('person_distinct_ids'), query)} "
           f"INTO OUTFILE '{path}' FORMAT JSONEachRow")
    started = time.monotonic()
    with ClickHouse.from_settings(Settings()).session("bench native") as session:
        session.client.command(sql, parameters={"project_id": PROJECT}, settings=NATIVE_SETTINGS)
    seconds = time.monotonic() - started
    data = Path(path).read_bytes()
    Path(path).unlink()
    return {"seconds": seconds, "rows": data.count(b"\n"), "bytes": len(data)}


def _ours(fmt: str, compression: str) -> dict:
    import logging

    from export_pipeline.accounts.roles import Role, add_member
    from export_pipeline.engine.spec import parse_spec
    from export_pipeline.exports.deps import build_deps
    from export_pipeline.exports.run import run_export
    from export_pipeline.settings import Settings

    deps = build_deps(Settings())
    add_member(deps.engine, PROJECT, USER, Role.MAINTAINER)
    request = deps.store.create(parse_spec(project_id=PROJECT, requested_by=USER, resource="persons", format=fmt,
                                           compression=compression), source="bench")
    started = time.monotonic()
    result = run_export(request.id, deps, run_id=f"bench-{request.id}", run_is_active=lambda _: False,
                        log=logging.getLogger(MODULE))
    seconds = time.monotonic() - started
    deps.storage.delete_prefix(request.storage_prefix)
    return {"seconds": seconds, "rows": result.rows, "bytes": result.bytes_written}


def measure_size(persons: int, rounds: int, home: Path) -> dict:
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True, exist_ok=True)
    seeded = run_child(MODULE, home, {"kind": "seed", "persons": persons})
    log(f"seeded {persons:,} persons ({seeded['distinct_id_rows']:,} distinct-id rows) in {seeded['seconds']:.1f} s",
        bench="persons")
    engine = run_child(MODULE, home, {"kind": "engine"})
    jobs = {f"native {query}": {"kind": "native", "path": str(home / "native.ndjson"), "query": query}
            for query in ("argmax", "final")}
    jobs.update({f"ours {fmt}/{compression}": {"kind": "ours", "fmt": fmt, "compression": compression}
                 for fmt, compression in OURS})
    runs: dict[str, list[dict]] = {name: [] for name in jobs}
    for round_number in range(rounds):
        for name, job in jobs.items():
            result = run_child(MODULE, home, job)
            runs[name].append(result)
            log(f"{persons:,} persons, round {round_number + 1}: {name} {result['seconds']:.2f} s, "
                f"{result.get('rss_mb', 0):.0f} MB", bench="persons")
    rows = {result["rows"] for results in runs.values() for result in results}
    if len(rows) != 1:
        raise SystemExit(f"native and ours disagree on the rows: {sorted(rows)}")
    return {"persons": persons, "seeded": seeded, "engine": engine, "runs": runs, "rows": rows.pop()}


def _best(results: list[dict]) -> dict:
    return {"seconds": min(r["seconds"] for r in results), "rss_mb": max(r.get("rss_mb", 0) for r in results),
            "bytes": results[0]["bytes"], "rows": results[0]["rows"]}


def _native_seconds(runs: dict, round_index: int) -> float:
    return min(runs["native argmax"][round_index]["seconds"], runs["native final"][round_index]["seconds"])


def render(sizes: list[dict], rounds: int, command: str, facts: str) -> str:
    lines = [
        "## Persons export against ClickHouse-native",
        "",
        "_Generated by `python -m bench.persons`; do not edit by hand._",
        "",
        f"- Command: `{command}`",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {rounds} round(s), best of each shown",
        f"- Machine: {facts}",
        f"- Versions: chdb {package_version('chdb')}, clickhouse-connect {package_version('clickhouse-connect')}",
        "",
    ]
    summary = []
    for size in sizes:
        runs, seeded = size["runs"], size["seeded"]
        native = min(_best(runs["native argmax"])["seconds"], _best(runs["native final"])["seconds"])
        lines += [
            f"### {size['persons']:,} persons seeded: {size['rows']:,} exported",
            "",
            f"{seeded['person_rows']:,} person rows (versions) and {seeded['distinct_id_rows']:,} distinct-id rows, "
            f"never merged, seeded in {seeded['seconds']:.1f} s. The engine alone (imports, open, `SELECT 1`): "
            f"peak RSS {size['engine'].get('rss_mb', 0):,.0f} MB.",
            "",
            "| what | seconds | persons/s | native ÷ this | per round | MB written | peak RSS MB |",
            "|---|---:|---:|---:|---|---:|---:|",
        ]
        for name, results in runs.items():
            best = _best(results)
            per_round = ", ".join(f"{_native_seconds(runs, i) / r['seconds']:.2f}" for i, r in enumerate(results))
            lines.append(f"| {name} | {best['seconds']:.2f} | {best['rows'] / best['seconds']:,.0f} | "
                         f"{native / best['seconds']:.2f}× | {per_round} | {best['bytes'] / 1e6:,.1f} | "
                         f"{best['rss_mb']:,.0f} |")
        lines.append("")
        ours = _best(runs["ours ndjson/none"])["seconds"]
        verdict = "met" if native / ours >= 0.5 else "missed"
        summary.append(f"- {size['persons']:,} persons: ours ndjson/none {native / ours:.2f}× native "
                       f"(target ≥ 0.5×): **{verdict}**.")
    if len(sizes) >= 2:
        small, large = sizes[0], sizes[-1]
        for name in ("ours ndjson/none", "ours parquet/zstd", "native argmax"):
            low, high = _best(small["runs"][name])["rss_mb"], _best(large["runs"][name])["rss_mb"]
            summary.append(f"- Peak RSS of {name}: {low:,.0f} MB at {small['persons']:,} → {high:,.0f} MB at "
                           f"{large['persons']:,} persons ({high / low:.2f}×).")
    lines += ["### Against the targets", "", *summary, "", HOW_TO_READ]
    return "\n".join(lines)


HOW_TO_READ = """**How to read this.** Every job is a fresh process after the seeding process closed the embedded
engine. *native* is ClickHouse writing the rows itself (`INTO OUTFILE … FORMAT JSONEachRow`, no compression)
with the latest-version query written two ways (`native_sql` in bench/persons.py: argMax over the versions, or
FINAL); both write the same bytes, and the ratio uses the faster of the two in each round. *ours* is one
complete `run_export` (access check, claim, count, the streamed query with ClickHouse building the lines,
compression, SHA-256, writing the parts, progress, manifest). *seconds* includes opening the engine for both.
*native ÷ this* is the best native time over this row's best time (1.00× is native speed); *per round* the same
ratio within each round. *peak RSS* is the whole process's (GNU time). Output sizes differ for the same rows:
ours embeds `properties` as a JSON object where native writes an escaped string."""


def main() -> None:
    parser = bench_parser(MODULE, ".data/bench-persons")
    parser.add_argument("--persons", default="100000,1000000", help="comma-separated sizes")
    args = parser.parse_args()
    if args.child:
        child_main(args.child, {"seed": _seed, "engine": _engine, "native": _native, "ours": _ours})
        return
    facts = machine_facts()
    sizes = [measure_size(int(n), args.rounds, args.home.absolute()) for n in args.persons.split(",")]
    shutil.rmtree(args.home.absolute(), ignore_errors=True)
    command = f"python -m {MODULE} --persons {args.persons} --rounds {args.rounds}"
    body = render(sizes, args.rounds, command, facts)
    print(body)
    update_markdown(args.output, "persons", body)


if __name__ == "__main__":
    main()
