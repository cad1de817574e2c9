"""The cross-process lease on the embedded engine, and who holds its data folder without one.

chDB locks its data folder: only one process may have the engine open, and a process may only ever open
one path. So every `chdb://` session takes this lease (two `flock` files) and closes the engine when it ends,
letting the API, Dagster runs and the CLI take turns.

The lease is two locks. A waiter first takes the *queue* lock and keeps it while it waits for the
*engine* lock. The holder, at a checkpoint, tries the queue lock without blocking: if it cannot get it,
somebody is waiting, so it closes the engine, releases it, and queues up behind them.

A process that opens the data folder without the lease (another checkout, another EXPORT_PIPELINE_HOME, a
bare chDB script) holds ClickHouse's own lock, the folder's `status` file: `status_lock_holder` names it.
"""

from __future__ import annotations

import fcntl
import os
import time
from dataclasses import dataclass
from pathlib import Path

from export_pipeline.errors import EngineBusy

_POLL_SECONDS = 0.02


@dataclass
class _FileLock:
    path: Path
    fd: int | None = None

    def try_acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self.fd = fd
        return True

    def acquire(self, deadline: float) -> bool:
        while not self.try_acquire():
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_SECONDS)
        return True

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None


class EngineLease:
    """One session's lease on the embedded engine. Each lease opens its own lock descriptors, so threads of
    one process queue like processes do."""

    def __init__(self, lock_dir: Path):
        self.lock_dir = lock_dir
        self._engine = _FileLock(lock_dir / "clickhouse.engine.lock")
        self._queue = _FileLock(lock_dir / "clickhouse.queue.lock")

    def is_wanted(self) -> bool:
        """Whether another process (or session) is queued for the engine."""
        if self._queue.try_acquire():
            self._queue.release()  # nobody is queued
            return False
        return True

    def acquire(self, purpose: str, *, timeout: float, engine_name: str) -> None:
        """Queue for the engine, then hold it under `purpose` (the lock file names its holder); EngineBusy
        naming the holder after `timeout` seconds."""
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + timeout
        if not self._queue.acquire(deadline):
            raise self._busy(timeout, engine_name)
        try:
            if not self._engine.acquire(deadline):
                raise self._busy(timeout, engine_name)
        finally:
            self._queue.release()
        assert self._engine.fd is not None
        os.ftruncate(self._engine.fd, 0)
        os.pwrite(self._engine.fd, f"pid {os.getpid()}: {purpose}".encode(), 0)

    def release(self) -> None:
        self._engine.release()

    def _busy(self, timeout: float, engine_name: str) -> EngineBusy:
        lock = self._engine.path
        # A holder names itself right after taking the lock; in between it is anonymous.
        holder = lock.read_text(errors="replace").strip() or "a process that has not named itself yet"
        return EngineBusy(
            f"The embedded ClickHouse ({engine_name}) stayed busy for {timeout:g} s, held by {holder} (lock {lock}).",
            hint="It serves one process at a time. Try again when that work finishes, raise "
            "CLICKHOUSE_BUSY_TIMEOUT_SECONDS, or point CLICKHOUSE_URL at a ClickHouse server.", retryable=True,
        )


def status_lock_holder(status: Path) -> str | None:
    """Who holds ClickHouse's lock on its data folder (`pid N (command), started at …`), or None if free."""
    try:
        fd = os.open(status, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pass
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)  # free: the failure was something else
            return None
        fields = dict(line.split(": ", 1) for line in os.read(fd, 4096).decode(errors="replace").splitlines()
                      if ": " in line)
    finally:
        os.close(fd)
    pid = fields.get("PID", "").strip()
    if not pid.isdigit():
        return "an unknown process"
    try:
        command = " ".join(Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").replace("\0", " ").split())
    except OSError:
        command = ""
    described = f"pid {pid}" + (f" ({command[:200]})" if command else "")
    started = fields.get("Started at", "").strip()
    return described + (f", started at {started}" if started else "")
