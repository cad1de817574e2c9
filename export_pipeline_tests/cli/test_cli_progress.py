"""The lines `export --wait` draws: the terminal bar and the plain lines for logs."""

from __future__ import annotations

import io
import sys
from datetime import UTC, datetime

from export_pipeline.cli.progress import ProgressDisplay, bar_line, plain_line
from export_pipeline.engine.compression import Compression
from export_pipeline.engine.formats import Format
from export_pipeline.engine.spec import ExportSpec
from export_pipeline.exports.requests import ExportRequest, ExportState

WHEN = datetime(2026, 11, 30, tzinfo=UTC)


def test_the_bar_tells_done_total_size_rate_and_eta():
    assert bar_line("running", 2_500_000, 10_000_000, 301.25, 625_000.0, 200) == (
        "running [######..................]  25%  2,500,000/10,000,000 rows  301.2 MB  625,000 rows/s  ETA 0:00:12")


def test_the_bar_before_a_rate_or_a_total_and_at_the_end():
    assert bar_line("running", 0, 10, 0.0, None, 200) == "running [........................]   0%  0/10 rows  0.0 MB"
    assert bar_line("queued", 0, None, 0.0, None, 200) == "queued  0 rows  0.0 MB"
    assert bar_line("succeeded", 10, 10, 1.0, 5.0, 200) == (
        "succeeded [########################] 100%  10/10 rows  1.0 MB  5 rows/s")


def test_the_bar_is_cut_to_the_terminal_width():
    assert bar_line("running", 5, 10, 0.5, 1.0, 30) == "running [############........."


def _request(state: ExportState, rows: int, total: int | None) -> ExportRequest:
    spec = ExportSpec(project_id=1, requested_by="maria", format=Format.CSV, compression=Compression.NONE)
    return ExportRequest(id="e1", spec=spec, as_of=WHEN, source="cli", state=state, created_at=WHEN,
                         row_count=rows, row_total=total, byte_count=2_000_000)


def test_plain_lines_name_the_total_while_running():
    assert plain_line(_request(ExportState.RUNNING, 250, 1000)) == "running: 250 of 1,000 rows (25%), 2.0 MB"
    assert plain_line(_request(ExportState.RUNNING, 0, None)) == "running: 0 rows, 2.0 MB"
    assert plain_line(_request(ExportState.SUCCEEDED, 1000, 1000)) == "succeeded: 1,000 rows, 2.0 MB"


def test_plain_output_writes_a_line_per_change_and_the_terminal_redraws_one_line():
    plain = io.StringIO()
    display = ProgressDisplay(plain, terminal=False)
    for request in (_request(ExportState.RUNNING, 0, 1000), _request(ExportState.RUNNING, 0, 1000),
                    _request(ExportState.SUCCEEDED, 1000, 1000)):
        display.show(request)
    display.close()
    assert plain.getvalue() == "running: 0 of 1,000 rows (0%), 2.0 MB\nsucceeded: 1,000 rows, 2.0 MB\n"

    drawn = io.StringIO()
    display = ProgressDisplay(drawn, terminal=True)
    display.show(_request(ExportState.QUEUED, 0, None))
    display.show(_request(ExportState.SUCCEEDED, 1000, 1000))
    display.close()
    assert drawn.getvalue().split("\r\x1b[2K") == [
        "", "queued  0 rows  2.0 MB", "succeeded [########################] 100%  1,000/1,000 rows  2.0 MB\n"]


def test_other_writers_go_above_the_bar(monkeypatch):
    screen = io.StringIO()
    monkeypatch.setattr(sys, "stderr", screen)
    display = ProgressDisplay(terminal=True)
    with display.sharing_stderr():
        display.show(_request(ExportState.RUNNING, 0, 1000))
        print("warning: no email sent", file=sys.stderr)
        display.show(_request(ExportState.SUCCEEDED, 1000, 1000))
    assert sys.stderr is screen
    bar = "running [........................]   0%  0/1,000 rows  2.0 MB"
    assert screen.getvalue().split("\r\x1b[2K") == [
        "", bar, "warning: no email sent\n", bar,
        "succeeded [########################] 100%  1,000/1,000 rows  2.0 MB\n"]
