"""The export benchmark: its markdown rendering (fast, always run) and a tiny end-to-end run (`-m bench`)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.exports.results import (
    TABLE_HEADER,
    FormatRun,
    Measurement,
    Merged,
    SizeRun,
    render_merged,
    render_table,
    render_targets,
)
from bench.report import update_markdown


def _m(what: str, seconds: float, rss_mb: int, process: float, rows: int | None = 5_000_000,
       size: int | None = 4_000_000_000) -> Measurement:
    return Measurement(what, seconds, rows, size, rss_mb * 1024, process)


def test_render_table_and_targets_exact_text():
    small = SizeRun(1_000_000, 18, "seeded", _m("fixed", 0.3, 400, 2.0, None, None), [
        FormatRun("ndjson", _m("native", 2.0, 900, 3.0), _m("work", 4.0, 600, 6.0), _m("cli", 10.0, 650, 10.0))])
    large = SizeRun(10_000_000, 38, "seeded", _m("fixed", 0.3, 400, 2.0, None, None), [
        FormatRun("ndjson", _m("native", 16.0, 3400, 17.5), _m("work", 20.0, 640, 22.0), _m("cli", 25.0, 760, 25.0)),
        FormatRun("parquet", _m("native", 10.0, 2000, 11.0), _m("work", 10.0, 600, 12.0), _m("cli", 12.0, 700, 12.0))])

    assert render_table(large.formats) == TABLE_HEADER + (
        "\n| ndjson | 16.00 | 20.00 | 0.80× | 17.50 | 25.00 | 0.70× | 3,565 / 671 / 797 | 4,000.0 / 4,000.0 |"
        "\n| parquet | 10.00 | 10.00 | 1.00× | 11.00 | 12.00 | 0.92× | 2,097 / 629 / 734 | 4,000.0 / 4,000.0 |"
    )
    assert render_targets([small, large]) == (
        "Against the targets (at 10,000,000 events, 38 active parts, unless stated):\n\n"
        "- ndjson: whole `export --wait` process 0.70× native (target ≥ 0.7×): **met**; export work alone 0.80×.\n"
        "- parquet: whole `export --wait` process 0.92× native (target ≥ 0.8×): **met**; export work alone 1.00×.\n"
        "- Peak RSS at 1,000,000 events: at most 682 MB (ndjson, whole process); the engine alone (open + `SELECT 1`) "
        "419 MB, so the target is ≤ 719 MB: **met**.\n"
        "- Peak RSS at 10,000,000 events: at most 797 MB (ndjson, whole process); the engine alone (open + `SELECT 1`) "
        "419 MB, so the target is ≤ 719 MB: **missed**.\n"
        "- ndjson: peak RSS 682 MB at 1,000,000 → 797 MB at 10,000,000 events (+17%; target within ±20%): **met**."
    )


def test_update_markdown_replaces_only_its_section(tmp_path):
    doc = tmp_path / "benchmarks.md"
    update_markdown(doc, "exports", "first\n")
    assert doc.read_text() == "# Benchmarks\n\n<!-- bench:exports:start -->\nfirst\n<!-- bench:exports:end -->\n"
    doc.write_text("# Benchmarks\n\nintro\n\n" + doc.read_text().split("\n\n", 1)[1] + "\n## Other\n\nkept\n")
    update_markdown(doc, "exports", "second\n")
    assert doc.read_text() == (
        "# Benchmarks\n\nintro\n\n<!-- bench:exports:start -->\nsecond\n<!-- bench:exports:end -->\n\n## Other\n\nkept\n"
    )


@pytest.mark.bench
def test_bench_end_to_end_tiny(tmp_path):
    output = tmp_path / "benchmarks.md"
    env = {k: v for k, v in os.environ.items() if k not in ("CLICKHOUSE_URL", "EXPORT_STORAGE_URL")}
    done = subprocess.run(
        [sys.executable, "-m", "bench.exports", "--events", "20000", "--formats", "ndjson,csv",
         "--home", str(tmp_path / "home"), "--output", str(output)],
        env=env, cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    text = output.read_text()
    assert TABLE_HEADER in text
    assert "<!-- bench:exports:start -->" in text and "<!-- bench:exports:end -->" in text
    assert "### 20,000 events, " in text and "active parts" in text
    for fmt in ("ndjson", "csv"):
        row = next(line for line in text.splitlines() if line.startswith(f"| {fmt} |"))
        assert len(re.findall(r"\| \d+\.\d\d× \|", row)) == 2, row  # work and process, each vs native
    assert "Against the targets" in text
    assert not [p for p in (tmp_path / "home" / "exports").rglob("*") if p.is_file()]  # outputs deleted after measuring


def test_render_merged_exact_text():
    size = SizeRun(10_000_000, 38, "seeded", _m("fixed", 0.3, 400, 2.0, None, None), [
        FormatRun("ndjson", _m("native", 16.0, 3400, 17.5), _m("work", 20.0, 640, 22.0), _m("cli", 25.0, 760, 25.0)),
        FormatRun("csv", _m("native", 14.0, 3400, 15.5), _m("work", 20.0, 640, 22.0), _m("cli", 25.0, 760, 25.0))],
        Merged(6, 31.5, {"ndjson": _m("native", 15.0, 3000, 16.0), "csv": _m("native", 13.0, 3000, 14.0)},
               {"ndjson": _m("work", 18.0, 600, 20.0), "csv": _m("work", 16.0, 600, 18.0)}))

    assert render_merged(size) == (
        "The same 10,000,000 events merged by `OPTIMIZE FINAL` (31.5 s) from 38 into 6 active parts (target: "
        "throughput as seeded within 15% of merged):\n\n"
        "| format | native s: seeded / merged | export work s: seeded / merged | seeded vs merged | target |\n"
        "|---|---:|---:|---:|---|\n"
        "| ndjson | 16.00 / 15.00 | 20.00 / 18.00 | 0.90× | **met** |\n"
        "| csv | 14.00 / 13.00 | 20.00 / 16.00 | 0.80× | **missed** |"
    )
