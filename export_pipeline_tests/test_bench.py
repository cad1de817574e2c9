"""The export benchmark: its markdown rendering (fast, always run) and a tiny end-to-end run (`-m bench`)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.exports.results import TABLE_HEADER, Measurement, render_table
from bench.report import update_markdown


def test_render_table_exact_text():
    measurements = [
        Measurement("fixed cost: imports + open chDB + SELECT 1", 0.25, None, None, 300 * 1024, 1.5),
        Measurement("ClickHouse native JSONEachRow (INTO OUTFILE)", 10.0, 5_000_000, 4_000_000_000, 400_000, 11.0,
                    native=True),
        Measurement("ours: ndjson", 20.0, 5_000_000, 3_500_000_000, 512_000, 22.25),
    ]
    assert render_table(measurements) == (
        "| what | seconds | rows/s | MB/s out | output | peak RSS MB | vs native | process s |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|\n"
        "| fixed cost: imports + open chDB + SELECT 1 | 0.25 | — | — | — | 315 | — | 1.50 |\n"
        "| ClickHouse native JSONEachRow (INTO OUTFILE) | 10.00 | 500,000 | 400.0 | 4,000.0 MB | 410 | 1.00× | 11.00 |\n"
        "| ours: ndjson | 20.00 | 250,000 | 175.0 | 3,500.0 MB | 524 | 0.50× | 22.25 |"
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
        [sys.executable, "-m", "bench.exports", "--events", "20000", "--formats", "ndjson",
         "--home", str(tmp_path / "home"), "--output", str(output)],
        env=env, cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    text = output.read_text()
    assert TABLE_HEADER in text
    assert "<!-- bench:exports:start -->" in text and "<!-- bench:exports:end -->" in text
    ours = next(line for line in text.splitlines() if line.startswith("| ours: ndjson |"))
    assert re.search(r"\| \d+\.\d\d× \|", ours), ours
    assert "| 1.00× |" in text  # the native row
    assert not list((tmp_path / "home" / "exports").rglob("*.ndjson"))  # outputs are deleted after measuring
