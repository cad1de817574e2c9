"""Recordings export benchmark: our recordings export against copying the same snapshot blobs, side by side in
one run, each job in a fresh process (bench/children.py). Run from the repository root:

    python -m bench.recordings [--sessions 500] [--rounds 2] [--home .data/bench-recordings]
                               [--output docs/benchmarks.md]

Seeds events (for their sessions) and a recording for `--sessions` of them (recordings/seed.py: realistic
rrweb streams stored as zstd JSON-lines blocks), then per round: a plain copy of the blob folder
(`shutil.copytree`, no fsync), a storage copy (every blob read and written through the export storage, which
fsyncs each file as our export does), and our `run_export --resource recordings` with no compression, gzip and
zstd. Throughput is the stored blob bytes each job got through per second; the copies are the floor any
export of those blobs pays. The markdown section between the `bench:recordings` markers is replaced.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from bench.children import bench_parser, child_main, machine_facts, run_child
from bench.report import log, update_markdown

PROJECT = 1
USER = "bench-maintainer"
MODULE = "bench.recordings"
OURS = ("none", "gzip", "zstd")
EVENTS_PER_SESSION_GUESS = 20  # seeded events per session, to seed enough of them


def _blob_folder() -> Path:
    from export_pipeline.settings import Settings

    return Path(Settings().recordings_storage_url.removeprefix("file://")) / str(PROJECT)


def _seed(sessions: int) -> dict:
    from export_pipeline.clickhouse.connection import ClickHouse
    from export_pipeline.clickhouse.schema import EventsTable, init_schema
    from export_pipeline.clickhouse.seed import seed_events
    from export_pipeline.recordings.blobs import RecordingBlobs
    from export_pipeline.recordings.seed import seed_recordings
    from export_pipeline.settings import Settings
    from export_pipeline.storage import storage_from_url

    settings, table = Settings(), EventsTable()
    started = time.monotonic()
    with ClickHouse.from_settings(settings).session("bench seed", merges=True) as session:
        init_schema(session.client, table)
        seed_events(session.client, table, events=sessions * EVENTS_PER_SESSION_GUESS, projects=1)
        blobs = RecordingBlobs(storage_from_url(settings.recordings_storage_url))
        seeded = seed_recordings(session.client, table, blobs, project_id=PROJECT, sessions=sessions)
        uncompressed = int(session.client.command(
            f"SELECT sum(size) FROM {table.other('session_replay_events')} WHERE project_id = {PROJECT}"))
    files = [path for path in _blob_folder().rglob("*") if path.is_file()]
    return {"seconds": time.monotonic() - started, "sessions": seeded, "blobs": len(files),
            "blob_bytes": sum(path.stat().st_size for path in files), "uncompressed_bytes": uncompressed}


def _plain_copy(target: str) -> dict:
    shutil.rmtree(target, ignore_errors=True)
    started = time.monotonic()
    shutil.copytree(_blob_folder(), target)
    seconds = time.monotonic() - started
    written = sum(path.stat().st_size for path in Path(target).rglob("*") if path.is_file())
    shutil.rmtree(target)
    return {"seconds": seconds, "bytes": written}


def _storage_copy(target: str) -> dict:
    from export_pipeline.settings import Settings
    from export_pipeline.storage import storage_from_url

    source = storage_from_url(Settings().recordings_storage_url)
    destination = storage_from_url(f"file://{target}")
    started = time.monotonic()
    written = 0
    for key in source.list_keys(str(PROJECT)):
        writer = destination.open_writer(key, content_type="application/zstd", tags={})
        with source.open_reader(key) as reader:
            while piece := reader.read(1 << 20):
                writer.write(piece)
                written += len(piece)
        writer.commit()
    seconds = time.monotonic() - started
    shutil.rmtree(target)
    return {"seconds": seconds, "bytes": written}


def _ours(compression: str) -> dict:
    import logging

    from export_pipeline.accounts.roles import Role, add_member
    from export_pipeline.engine.spec import parse_spec
    from export_pipeline.exports.deps import build_deps
    from export_pipeline.exports.run import run_export
    from export_pipeline.settings import Settings

    deps = build_deps(Settings())
    add_member(deps.engine, PROJECT, USER, Role.MAINTAINER)
    request = deps.store.create(parse_spec(project_id=PROJECT, requested_by=USER, resource="recordings",
                                           format="ndjson", compression=compression), source="bench")
    started = time.monotonic()
    result = run_export(request.id, deps, run_id=f"bench-{request.id}", run_is_active=lambda _: False,
                        log=logging.getLogger(MODULE))
    seconds = time.monotonic() - started
    deps.storage.delete_prefix(request.storage_prefix)
    recordings = sum(1 for f in result.files if f.name.startswith("recording-"))
    return {"seconds": seconds, "bytes": result.bytes_written, "recordings": recordings}


def measure(sessions: int, rounds: int, home: Path) -> dict:
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True, exist_ok=True)
    seeded = run_child(MODULE, home, {"kind": "seed", "sessions": sessions})
    log(f"seeded {seeded['sessions']:,} recordings ({seeded['blob_bytes'] / 1e6:.1f} MB in {seeded['blobs']:,} "
        f"blobs) in {seeded['seconds']:.1f} s", bench="recordings")
    target = str(home / "copy")
    jobs = {"plain copy of the blobs (copytree, no fsync)": {"kind": "plain_copy", "target": target},
            "storage copy of the blobs (fsync per file)": {"kind": "storage_copy", "target": target}}
    jobs.update({f"ours, recording files {compression}": {"kind": "ours", "compression": compression}
                 for compression in OURS})
    runs: dict[str, list[dict]] = {name: [] for name in jobs}
    for round_number in range(rounds):
        for name, job in jobs.items():
            result = run_child(MODULE, home, job)
            runs[name].append(result)
            log(f"round {round_number + 1}: {name} {result['seconds']:.2f} s", bench="recordings")
    for results in runs.values():
        if results[0].get("recordings", seeded["sessions"]) != seeded["sessions"]:
            raise SystemExit(f"exported {results[0]['recordings']} recordings of {seeded['sessions']}")
    shutil.rmtree(home, ignore_errors=True)
    return {"seeded": seeded, "runs": runs}


def render(measured: dict, rounds: int, command: str, facts: str) -> str:
    seeded, runs = measured["seeded"], measured["runs"]
    stored = seeded["blob_bytes"] / 1e6
    plain = min(r["seconds"] for r in runs["plain copy of the blobs (copytree, no fsync)"])
    copy = min(r["seconds"] for r in runs["storage copy of the blobs (fsync per file)"])
    lines = [
        "## Recordings export against copying the snapshot blobs",
        "",
        "_Generated by `python -m bench.recordings`; do not edit by hand._",
        "",
        f"- Command: `{command}`",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {rounds} round(s), best of each shown",
        f"- Machine: {facts}",
        f"- Data: {seeded['sessions']:,} recordings, {seeded['blobs']:,} blobs, {stored:,.1f} MB stored "
        f"(zstd JSON lines; {seeded['uncompressed_bytes'] / 1e6:,.1f} MB of rrweb JSON), seeded in {seeded['seconds']:.1f} s",
        "",
        "| what | seconds | stored MB/s | storage copy ÷ this | per round | MB written | peak RSS MB |",
        "|---|---:|---:|---:|---|---:|---:|",
    ]
    for name, results in runs.items():
        best = min(results, key=lambda r: r["seconds"])
        per_round = ", ".join(f"{runs['storage copy of the blobs (fsync per file)'][i]['seconds'] / r['seconds']:.2f}"
                              for i, r in enumerate(results))
        lines.append(f"| {name} | {best['seconds']:.2f} | {stored / best['seconds']:,.1f} | {copy / best['seconds']:.2f}× | "
                     f"{per_round} | {best['bytes'] / 1e6:,.1f} | {max(r.get('rss_mb', 0) for r in results):,.0f} |")
    ours = min(r["seconds"] for r in runs["ours, recording files gzip"])
    lines += [
        "",
        f"- Our export (gzip, the default) gets {stored / ours:,.1f} MB/s of stored blobs through "
        f"({seeded['uncompressed_bytes'] / 1e6 / ours:,.1f} MB/s of rrweb JSON), {copy / ours:.2f}× the storage copy's "
        f"{stored / copy:,.1f} MB/s and {plain / ours:.2f}× the plain copy's {stored / plain:,.1f} MB/s.",
        "",
        HOW_TO_READ,
    ]
    return "\n".join(lines)


HOW_TO_READ = """**How to read this.** Every job is a fresh process over the same blobs (local storage, in the page
cache after seeding). The copies move the stored bytes as they are; our export (`run_export`, as a Dagster run
does it: the index query, then per session its blocks read and decompressed, each `[windowId, event]` line turned
into PostHog's snapshot object, the file compressed, hashed, written and fsynced, then the manifest) turns them
into PostHog's recording files, which are larger than the zstd blobs uncompressed. *stored MB/s* is the blobs'
stored size over the job's seconds, the same input for every row; *storage copy ÷ this* is the best storage-copy
time over this row's best time, and *per round* the same within each round."""


def main() -> None:
    parser = bench_parser(MODULE, ".data/bench-recordings")
    parser.add_argument("--sessions", type=int, default=500)
    args = parser.parse_args()
    if args.child:
        child_main(args.child, {"seed": _seed, "plain_copy": _plain_copy, "storage_copy": _storage_copy, "ours": _ours})
        return
    facts = machine_facts()
    measured = measure(args.sessions, args.rounds, args.home.absolute())
    body = render(measured, args.rounds, f"python -m {MODULE} --sessions {args.sessions} --rounds {args.rounds}", facts)
    print(body)
    update_markdown(args.output, "recordings", body)


if __name__ == "__main__":
    main()
