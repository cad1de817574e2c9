"""The results of an export benchmark and their markdown: the throughput table, the peak-RSS check."""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.report import cpu_model, package_version

RSS_CHECK_SMALL_EVENTS = 1_000_000
RSS_TARGET_MB = 400.0
RSS_TARGET_EVENTS = 10_000_000
RSS_TOLERANCE = 0.20
MB = 1_000_000

TABLE_HEADER = (
    "| what | seconds | rows/s | MB/s out | output | peak RSS MB | vs native | process s |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|"
)


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
        "_Generated by `python -m bench.exports`; do not edit by hand._",
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
    return {
        "Machine": f"{cores} CPUs (nproc), {ram} RAM, {cpu}, {platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "Versions": (
            f"chdb {package_version('chdb')} (ClickHouse {clickhouse_version}), "
            f"clickhouse-connect {package_version('clickhouse-connect')}, polars {package_version('polars')}, "
            f"pyarrow {package_version('pyarrow')}"
        ),
    }


def render_http_section(report: Report, measured: Measurement) -> str:
    """The export read over http://: the process's RSS without the engine, which another process serves."""
    facts = "\n".join(f"- {key}: {value}" for key, value in report.machine.items())
    return "\n".join([
        f"## Export over http://: {report.events:,} events",
        "",
        "_Generated by `python -m bench.exports --http`; do not edit by hand._",
        "",
        f"- Command: `{report.command}`",
        f"- Date: {report.date}",
        f"- Data: {report.seed}",
        facts,
        "",
        render_table([measured]),
        "",
        "The export process reads ClickHouse over `CLICKHOUSE_URL=http://…` as it does against a server in "
        "production (clickhouse-connect, Arrow chunks, compressed responses). The server is the bench process "
        "itself serving ClickHouse's HTTP interface from its embedded engine "
        "(`export_pipeline_tests/clickhouse_http.py`), so the engine's memory is not in the export's *peak RSS*, "
        "and *seconds* include the loopback transfer and that server's work (it shares the machine).",
    ]) + "\n"
