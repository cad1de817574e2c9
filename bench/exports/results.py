"""The results of an export benchmark and their markdown: per size, each format's export against ClickHouse
writing the same rows itself, and the issue's targets checked against what was measured."""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.report import cpu_model, package_version

MB = 1_000_000
RSS_OVER_ENGINE_MB = 300.0  # target: an export's peak RSS at most the engine's own (open + SELECT 1) plus this
RSS_TOLERANCE = 0.20  # target: peak RSS within ±20% from the smallest size to the largest
MERGED_TOLERANCE = 0.15  # target: throughput on the table as seeded within 15% of the same table merged
PROCESS_TARGETS = {"ndjson": 0.7, "json": 0.7, "csv": 0.7, "parquet": 0.8}  # process vs native, largest size

TABLE_HEADER = (
    "| format | native s | export work s | work vs native | native process s | `export --wait` process s "
    "| process vs native | peak RSS MB: native / work / `export --wait` | output MB: native / ours |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
)


@dataclass(frozen=True)
class Measurement:
    """One measured process. `rows`/`output_bytes` are None for the fixed-cost one."""

    what: str
    seconds: float  # the measured work inside the process (the whole process for the CLI)
    rows: int | None
    output_bytes: int | None
    peak_rss_kb: int  # KiB, as GNU time and getrusage report it
    process_seconds: float  # wall time of the whole process, interpreter start included

    @property
    def peak_rss_mb(self) -> float:
        return self.peak_rss_kb * 1024 / MB


@dataclass(frozen=True)
class FormatRun:
    fmt: str
    native: Measurement  # ClickHouse's own INTO OUTFILE of the same rows
    work: Measurement  # one run_export in a fresh process
    cli: Measurement  # the whole `export-pipeline export --wait` process

    @property
    def work_ratio(self) -> float:
        return self.native.seconds / self.work.seconds

    @property
    def process_ratio(self) -> float:
        return self.native.process_seconds / self.cli.process_seconds


@dataclass(frozen=True)
class SizeRun:
    events: int
    parts: int  # active parts of the table while measured
    seed: str
    fixed: Measurement
    formats: list[FormatRun]
    merged: Merged | None = None  # with --merged: the same table after OPTIMIZE FINAL
    http: Measurement | None = None  # with --http: ndjson run_export reading ClickHouse over http://


@dataclass(frozen=True)
class Merged:
    """The same rows after merging every part: native and our export work again, per format."""

    parts: int
    seconds: float  # what OPTIMIZE FINAL took
    native: dict[str, Measurement]
    work: dict[str, Measurement]


@dataclass(frozen=True)
class Report:
    command: str
    date: str
    machine: dict[str, str]
    compression: str
    repeat: int
    sizes: list[SizeRun]


def render_table(formats: Sequence[FormatRun]) -> str:
    lines = [TABLE_HEADER]
    for run in formats:
        n, w, c = run.native, run.work, run.cli
        lines.append(
            f"| {run.fmt} | {n.seconds:.2f} | {w.seconds:.2f} | {run.work_ratio:.2f}× | {n.process_seconds:.2f} "
            f"| {c.process_seconds:.2f} | {run.process_ratio:.2f}× "
            f"| {n.peak_rss_mb:,.0f} / {w.peak_rss_mb:,.0f} / {c.peak_rss_mb:,.0f} "
            f"| {(n.output_bytes or 0) / MB:,.1f} / {(c.output_bytes or 0) / MB:,.1f} |"
        )
    return "\n".join(lines)


def render_merged(size: SizeRun) -> str:
    """Our export work on the table as seeded against the same table merged: the parts' cost."""
    merged = size.merged
    assert merged is not None
    lines = [
        f"The same {size.events:,} events merged by `OPTIMIZE FINAL` ({merged.seconds:.1f} s) from {size.parts} into "
        f"{merged.parts} active parts (target: throughput as seeded within {MERGED_TOLERANCE:.0%} of merged):",
        "",
        "| format | native s: seeded / merged | export work s: seeded / merged | seeded vs merged | target |",
        "|---|---:|---:|---:|---|",
    ]
    for run in size.formats:
        if run.fmt not in merged.work:
            continue
        native, work = merged.native[run.fmt], merged.work[run.fmt]
        ratio = work.seconds / run.work.seconds  # throughput as seeded over throughput merged
        lines.append(
            f"| {run.fmt} | {run.native.seconds:.2f} / {native.seconds:.2f} | {run.work.seconds:.2f} / "
            f"{work.seconds:.2f} | {ratio:.2f}× | {_verdict(ratio >= 1 - MERGED_TOLERANCE)} |"
        )
    return "\n".join(lines)


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def render_targets(sizes: Sequence[SizeRun]) -> str:
    """The issue's targets, each checked against this run's figures."""
    largest = max(sizes, key=lambda size: size.events)
    lines = [f"Against the targets (at {largest.events:,} events, {largest.parts} active parts, unless stated):", ""]
    for run in largest.formats:
        target = PROCESS_TARGETS[run.fmt]
        lines.append(
            f"- {run.fmt}: whole `export --wait` process {run.process_ratio:.2f}× native (target ≥ {target}×): "
            f"{_verdict(run.process_ratio >= target)}; export work alone {run.work_ratio:.2f}×."
        )
    for size in sizes:
        worst = max(size.formats, key=lambda run: run.cli.peak_rss_kb)
        budget = size.fixed.peak_rss_mb + RSS_OVER_ENGINE_MB
        lines.append(
            f"- Peak RSS at {size.events:,} events: at most {worst.cli.peak_rss_mb:,.0f} MB ({worst.fmt}, whole "
            f"process); the engine alone (open + `SELECT 1`) {size.fixed.peak_rss_mb:,.0f} MB, so the target is "
            f"≤ {budget:,.0f} MB: {_verdict(worst.cli.peak_rss_mb <= budget)}."
        )
    smallest = min(sizes, key=lambda size: size.events)
    if smallest is not largest:
        small_runs = {run.fmt: run for run in smallest.formats}
        for run in largest.formats:
            if (small := small_runs.get(run.fmt)) is None:
                continue
            change = run.cli.peak_rss_mb / small.cli.peak_rss_mb - 1
            lines.append(
                f"- {run.fmt}: peak RSS {small.cli.peak_rss_mb:,.0f} MB at {smallest.events:,} → "
                f"{run.cli.peak_rss_mb:,.0f} MB at {largest.events:,} events ({change:+.0%}; target within "
                f"±{RSS_TOLERANCE:.0%}): {_verdict(abs(change) <= RSS_TOLERANCE)}."
            )
    return "\n".join(lines)


HOW_TO_READ = """\
**How to read this.** Each size is a freshly seeded table (`seed_events`, as `export-pipeline seed --events N
--projects 1 --seed 1` does), left as seeded: no `OPTIMIZE`, so every query reads the active parts shown, as
on a live table. Every figure is a fresh process started after the seeding process closed the embedded
engine, measured in this run; each process, native's too, opens the engine with background merges stopped,
as the product's short sessions do (`clickhouse/connection.py`), so every query reads the parts shown. *native* is ClickHouse writing the same rows and columns, ordered by the same
key, itself: `SELECT … ORDER BY timestamp, uuid INTO OUTFILE … FORMAT X` through the same engine (X:
JSONEachRow for ndjson, JSONEachRow as an array for json, CSVWithNames for csv, Parquet for parquet); *native
s* times opening the engine and that query. *export work s* is one complete `run_export` in a fresh process
(as a Dagster run does it: access check, claim, rows counted per monthly partition, the streamed queries (one per
partition; CSV as ClickHouse's CSV writer produces it), encoding, compression if any,
SHA-256 of every byte, writing and fsyncing the parts, progress updates, the manifest). *process s* is the
wall time of the whole process from start to exit (GNU time): for native a Python process that imports,
opens the engine and runs the query; for ours `export-pipeline export --format X --wait`, the command a user
runs (CLI start, request, Dagster's in-process run, the export, its result). Ratios are native seconds over
ours (1.00× is native speed). *peak RSS* is the whole process's (interpreter, imports, the chDB engine and
the work). Output sizes differ for the same rows: ours embeds `properties` as a JSON object where native
writes an escaped string, and ClickHouse quotes every CSV text field."""


def render_http(http: Measurement) -> str:
    return (
        f"Over `http://` (ndjson, the export work alone): {http.seconds:.2f} s, peak RSS {http.peak_rss_mb:,.0f} MB. "
        "The server is the bench process serving ClickHouse's HTTP interface from its embedded engine "
        "(`export_pipeline_tests/fakes/clickhouse_http.py`, Python on the same two cores), so the engine's memory is not "
        "in this process and the seconds are that server's, not a ClickHouse server's."
    )


def render_section(report: Report) -> str:
    """The full generated markdown section (without the markers)."""
    facts = "\n".join(f"- {key}: {value}" for key, value in report.machine.items())
    sizes = " and ".join(f"{size.events:,}" for size in report.sizes)
    parts = [
        f"## Export throughput against ClickHouse-native: {sizes} events",
        "",
        "_Generated by `python -m bench.exports`; do not edit by hand._",
        "",
        f"- Command: `{report.command}`",
        f"- Date: {report.date}",
        f"- Output compression: {report.compression}; "
        f"{'median of ' + str(report.repeat) + ' runs (peak RSS: highest)' if report.repeat > 1 else 'one run each'}",
        facts,
        "",
    ]
    for size in report.sizes:
        parts += [
            f"### {size.events:,} events, {size.parts} active parts",
            "",
            f"Data: {size.seed}. The engine alone (imports, open, `SELECT 1`): {size.fixed.seconds:.2f} s, "
            f"process {size.fixed.process_seconds:.2f} s, peak RSS {size.fixed.peak_rss_mb:,.0f} MB.",
            "",
            render_table(size.formats),
            "",
        ]
        if size.merged is not None:
            parts += [render_merged(size), ""]
        if size.http is not None:
            parts += [render_http(size.http), ""]
    parts += [render_targets(report.sizes), "", HOW_TO_READ]
    return "\n".join(parts) + "\n"


def machine_facts(clickhouse_version: str) -> dict[str, str]:
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
    load = " / ".join(f"{value:.2f}" for value in os.getloadavg())
    return {
        "Machine": f"{cores} CPUs (nproc), {ram} RAM, {cpu}, {platform.system()} {platform.release()}",
        "Load average when the bench started (1 / 5 / 15 min)": load,
        "Python": platform.python_version(),
        "Versions": (
            f"chdb {package_version('chdb')} (ClickHouse {clickhouse_version}), "
            f"clickhouse-connect {package_version('clickhouse-connect')}, polars {package_version('polars')}, "
            f"pyarrow {package_version('pyarrow')}"
        ),
    }
