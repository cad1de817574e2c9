"""What `export --wait` shows while it waits: a bar redrawn in place on a terminal (done, total, rate, ETA),
plain lines when stderr is a file or a pipe, so logs and CI output stay one line per change."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TextIO

from export_pipeline.exports.requests import ExportRequest, ExportState

BAR_WIDTH = 24


def bar_line(state: str, rows: int, total: int | None, megabytes: float, rate: float | None, width: int) -> str:
    """One line of the terminal bar, cut to `width` (the rate and ETA once there is a rate to tell)."""
    if total:
        done = min(rows / total, 1.0)
        filled = round(done * BAR_WIDTH)
        head = f"{state} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done:4.0%}  {rows:,}/{total:,} rows"
    else:
        head = f"{state}  {rows:,} rows"
    tail = f"  {megabytes:,.1f} MB"
    if rate:
        tail += f"  {rate:,.0f} rows/s"
        if total and rows < total:
            tail += f"  ETA {timedelta(seconds=round((total - rows) / rate))}"
    return (head + tail)[:width]


def plain_line(request: ExportRequest) -> str:
    rows = f"{request.row_count:,} rows"
    if request.row_total is not None and request.state is ExportState.RUNNING:
        rows = f"{request.row_count:,} of {request.row_total:,} rows ({request.row_count / max(request.row_total, 1):.0%})"
    return f"{request.state.value}: {rows}, {request.byte_count / 1e6:,.1f} MB"


class ProgressDisplay:
    def __init__(self, stream: TextIO | None = None, *, terminal: bool | None = None):
        self.stream = stream or sys.stderr
        self.terminal = self.stream.isatty() if terminal is None else terminal
        self._shown: str | None = None
        self._first: tuple[float, int] | None = None  # (when, rows) at the first running sight: the rate's base

    def show(self, request: ExportRequest) -> None:
        line = self._bar(request) if self.terminal else plain_line(request)
        if line == self._shown:
            return
        self._shown = line
        if self.terminal:
            self.stream.write("\r\x1b[2K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the bar's line, so what follows starts on its own."""
        if self.terminal and self._shown is not None:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = None

    @contextmanager
    def sharing_stderr(self) -> Iterator[None]:
        """While the bar is drawn, whatever else writes to stderr (the run's warnings, notes) clears the bar's
        line first and the bar is drawn again below it; the bar's line is ended on the way out."""
        if not self.terminal or self.stream is not sys.stderr:
            yield
            return
        sys.stderr = _AboveTheBar(self.stream, self)  # type: ignore[assignment]
        try:
            yield
        finally:
            sys.stderr = self.stream
            self.close()

    def _bar(self, request: ExportRequest) -> str:
        rate = None
        if request.state is ExportState.RUNNING:
            now = time.monotonic()
            if self._first is None:
                self._first = (now, request.row_count)
            elif now > self._first[0] and request.row_count > self._first[1]:
                rate = (request.row_count - self._first[1]) / (now - self._first[0])
        width = shutil.get_terminal_size((100, 24)).columns - 1
        return bar_line(request.state.value, request.row_count, request.row_total, request.byte_count / 1e6,
                        rate, width)


class _AboveTheBar:
    """stderr for other writers while a bar is drawn on it."""

    def __init__(self, stream: TextIO, display: ProgressDisplay):
        self._stream, self._display = stream, display
        self._mid_line = False  # print() writes a line and its newline in two calls

    def write(self, text: str) -> int:
        bar = self._display._shown
        if bar is not None and not self._mid_line:
            self._stream.write("\r\x1b[2K")
        written = self._stream.write(text)
        self._mid_line = bool(text) and not text.endswith("\n")
        if bar is not None and not self._mid_line:
            self._stream.write("\r\x1b[2K" + bar)
        self._stream.flush()
        return written

    def __getattr__(self, name: str):
        return getattr(self._stream, name)
