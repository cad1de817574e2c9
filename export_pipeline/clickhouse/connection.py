"""Sessions on ClickHouse through clickhouse-connect: a server over HTTP(S), or the embedded chDB engine.

chDB locks its data folder: only one process may have the engine open, and a process may only ever open
one path. So for `chdb://` every session takes a cross-process lease (two `flock` files) and closes the
engine when it ends, letting the API, Dagster runs and the CLI take turns. A long reader (an export)
calls `Session.checkpoint()` between queries: it hands the engine over when another process is waiting.

The lease is two locks. A waiter first takes the *queue* lock and keeps it while it waits for the
*engine* lock. The holder, at a checkpoint, tries the queue lock without blocking: if it cannot get it,
somebody is waiting, so it closes the engine, releases it, and queues up behind them.

A process that opens the data folder without the lease (another checkout, another EXPORT_PIPELINE_HOME, a
bare chDB script) holds ClickHouse's own lock, the folder's `status` file. Opening then fails with a driver
error that reads like a connection problem, so that lock is probed and the holder named instead.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import clickhouse_connect
import pyarrow as pa
from clickhouse_connect.driver.binding import bind_query
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from export_pipeline.errors import ClickHouseUnavailable, EngineBusy
from export_pipeline.settings import Settings, redact_url, scrub_secret

_POLL_SECONDS = 0.02
_HANDOVER_POLL_SECONDS = 0.05


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


# The embedded engine merges parts inside the process that opens it, from the moment it loads the tables. A
# short session (a run, the CLI) would abandon those merges unfinished when it closes the engine, after they
# competed with its own work: opening 10M events in 60 parts started 4 merges of ~110 MB each on both cores,
# and even `SYSTEM STOP MERGES` as the first query came after they had taken memory (a process that only opens
# the engine and runs `SELECT 1` on that table peaked at 466 MB that way, 401 MB this way). So short sessions
# start the engine with no slot for background merges or mutations; an explicit OPTIMIZE still runs, in the
# query's own thread. Only the long-lived session of a server process (`keep_open`) and bulk loads merge.
NO_BACKGROUND_MERGES = {"background_pool_size": 1, "background_merges_mutations_concurrency_ratio": 0}


class Session:
    """One client on ClickHouse, valid for the duration of a `ClickHouse.session()` block."""

    def __init__(self, owner: ClickHouse, purpose: str, *, merges: bool = False):
        self._owner = owner
        self._purpose = purpose
        self._merges = merges
        self._client: Client | None = None
        self._engine = _FileLock(owner.lock_dir / "clickhouse.engine.lock") if owner.is_embedded else None
        self._queue = _FileLock(owner.lock_dir / "clickhouse.queue.lock") if owner.is_embedded else None
        self._streams: set = set()  # chDB handles of open `arrow_stream`s: closed before the engine is released

    @property
    def client(self) -> Client:
        if self._client is None:
            self._open()
        assert self._client is not None
        return self._client

    def checkpoint(self) -> None:
        """Between queries of a long read: let a waiting process use the embedded engine, then resume."""
        if self._engine is None or self._client is None:
            return
        assert self._queue is not None
        if self._queue.try_acquire():
            self._queue.release()  # nobody is queued
            return
        self.close()
        self._open()

    def is_wanted(self) -> bool:
        """Whether another process waits for the embedded engine (a long reader then ends its query at a row
        it can resume after, and calls `checkpoint`)."""
        if self._engine is None or self._client is None:
            return False
        assert self._queue is not None
        if self._queue.try_acquire():
            self._queue.release()
            return False
        return True

    def release_freed_memory(self) -> None:
        """Return what the embedded engine has freed to the OS; its allocator (jemalloc) keeps freed pages for
        reuse, and after each window of a long read it held 25-40 MB more (persons at 1M: 404 -> 492 MB over
        four windows; purged before each, at most 436 MB, 15 ms a purge). Over HTTP nothing is done: a server's
        memory is its own."""
        if self._engine is None:
            return
        try:
            self.client.command("SYSTEM JEMALLOC PURGE")
        except DatabaseError as error:
            if "SUPPORT_IS_DISABLED" not in str(error):  # an engine built without jemalloc has nothing to purge
                raise

    @contextmanager
    def arrow_stream(self, sql: str, parameters: dict, settings: dict) -> Iterator[Iterator[pa.Table]]:
        """One query's rows as Arrow tables, one per ClickHouse block, produced as the caller reads them: memory
        holds a few blocks whatever the result's size, and the engine reads its parts once, in one pass.

        Over HTTP this is clickhouse-connect's `query_arrow_stream` (ArrowStream). clickhouse-connect's chDB
        client buffers a whole Arrow result, so for the embedded engine the query runs on a chDB handle of its
        own through chDB's streaming API (`send_query`), its values bound as server-side parameters exactly
        as clickhouse-connect binds them."""
        client = self.client
        if self._engine is None:
            with client.query_arrow_stream(sql, parameters=parameters, settings=settings) as batches:
                yield _tables(batches)
            return
        # ClickHouse LZ4-compresses Arrow output by default: in one process that only costs CPU on both sides
        # (measured at 1M events: 0.5 s of ClickHouse's 4.4 s for the CSV lines, and pyarrow's decompression).
        options = {"output_format_arrow_string_as_string": 1, "output_format_arrow_compression_method": "none",
                   **settings}
        with self._embedded_stream(sql, parameters, options, "Arrow") as stream:
            yield _arrow_blocks(stream)

    @property
    def streams_rows(self) -> bool:
        """Whether `row_stream` is available: the embedded engine hands over its output block by block, each
        whole rows; a server's HTTP response is cut anywhere."""
        return self._engine is not None

    @contextmanager
    def row_stream(self, sql: str, parameters: dict, settings: dict, fmt: str) -> Iterator[Iterator[tuple[bytes, int]]]:
        """One query's output in a row format (`CSV`) as ClickHouse's own writer produces it, one ClickHouse
        block at a time: (the block's bytes, its number of rows). Embedded engine only (`streams_rows`)."""
        if self._engine is None:
            raise ValueError("row_stream needs the embedded engine")
        with self._embedded_stream(sql, parameters, settings, fmt) as stream:
            yield _row_blocks(stream)

    @contextmanager
    def _embedded_stream(self, sql: str, parameters: dict, settings: dict, fmt: str) -> Iterator:
        """A chDB streaming result on a handle of its own, closed (with the handle) when the block ends."""
        import chdb  # only the embedded engine needs it

        if self._client is None:
            self._open()  # the session's lease first, as for its first query
        final, bound = bind_query(sql, parameters)
        clause = ", ".join(f"{name} = {_setting_literal(value)}" for name, value in settings.items())
        handle = chdb.connect(os.path.realpath(urlsplit(self._owner.url).path))
        self._streams.add(handle)
        stream = None
        try:
            stream = handle.send_query(
                f"{final} SETTINGS {clause}", fmt, params={k.removeprefix("param_"): v for k, v in bound.items()}
            )
            yield stream
        finally:
            try:
                if stream is not None:
                    stream.close()
            finally:
                self._streams.discard(handle)
                handle.close()

    def release_if_waited(self) -> None:
        """Close the engine if another process (or session) is queued for it; the next query reopens it,
        queuing behind them."""
        if self.is_wanted():
            self.close()

    def _open(self) -> None:
        if self._engine is not None:
            self._acquire_engine()
        try:
            self._client = self._owner.connect(merges=self._merges)
        except BaseException:
            if self._client is not None:
                self.close()
            elif self._engine is not None:
                self._engine.release()
            raise

    def _acquire_engine(self) -> None:
        assert self._engine is not None and self._queue is not None
        self._owner.lock_dir.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self._owner.busy_timeout
        if not self._queue.acquire(deadline):
            raise self._busy()
        try:
            if not self._engine.acquire(deadline):
                raise self._busy()
        finally:
            self._queue.release()
        assert self._engine.fd is not None
        os.ftruncate(self._engine.fd, 0)
        os.pwrite(self._engine.fd, f"pid {os.getpid()}: {self._purpose}".encode(), 0)

    def _busy(self) -> EngineBusy:
        lock = self._owner.lock_dir / "clickhouse.engine.lock"
        # A holder names itself right after taking the lock; in between it is anonymous.
        holder = lock.read_text(errors="replace").strip() or "a process that has not named itself yet"
        return EngineBusy(
            f"The embedded ClickHouse ({self._owner.display_url}) stayed busy for "
            f"{self._owner.busy_timeout:g} s, held by {holder} (lock {lock}).",
            hint="It serves one process at a time. Try again when that work finishes, raise "
            "CLICKHOUSE_BUSY_TIMEOUT_SECONDS, or point CLICKHOUSE_URL at a ClickHouse server.", retryable=True,
        )

    def close(self) -> None:
        for handle in list(self._streams):  # an unclosed handle would keep the engine open after the lease
            self._streams.discard(handle)
            handle.close()
        if self._client is not None:
            try:
                self._client.close()
            finally:
                self._client = None
                if self._engine is not None:
                    self._engine.release()


def _setting_literal(value: object) -> str:
    """A setting's value in a SETTINGS clause; settings are the code's own constants, never request values."""
    if isinstance(value, bool | int):
        return str(int(value))
    text = str(value)
    if text and not text.replace("_", "").isalnum():
        raise ValueError(f"unexpected setting value {text!r}")
    return f"'{text}'"


def _tables(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.Table]:
    """clickhouse-connect's Arrow stream yields a record batch per block."""
    for batch in batches:
        if batch.num_rows:
            yield pa.Table.from_batches([batch])


def _arrow_blocks(stream) -> Iterator[pa.Table]:
    """The tables of a chDB streaming result in Arrow format: each fetched block is one Arrow IPC file."""
    while (block := stream.fetch()) is not None:
        # Copied once into memory Python owns: uncompressed Arrow arrays would point into the result's buffer,
        # which chDB frees or reuses after the next fetch (seen as corrupt strings), while the chunks built
        # from them live on. One copy is cheaper than the LZ4 round trip that hid this (connection options).
        table = pa.ipc.open_file(pa.py_buffer(bytes(block.get_memview().view()))).read_all()
        if table.num_rows:
            yield table


def _row_blocks(stream) -> Iterator[tuple[bytes, int]]:
    """Each fetched block's output (copied: chDB reuses its buffer) and its row count."""
    while (block := stream.fetch()) is not None:
        yield block.bytes(), block.rows_read()


def _status_lock_holder(status: Path) -> str | None:
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


def _hand_over_while_idle(owner_ref: weakref.ref[ClickHouse]) -> None:
    """Between requests nobody reaches a checkpoint: poll for a waiter while the kept session is idle. Ends
    with its owner."""
    while (owner := owner_ref()) is not None:
        kept = owner._kept
        if kept is not None and owner._kept_lock.acquire(blocking=False):
            try:
                kept.release_if_waited()
            finally:
                owner._kept_lock.release()
        del owner
        time.sleep(_HANDOVER_POLL_SECONDS)


class ClickHouse:
    """Factory of ClickHouse sessions for one configured URL."""

    def __init__(
        self,
        url: str,
        *,
        lock_dir: Path,
        busy_timeout: float = 60.0,
        connect_timeout: float = 3.0,
        send_receive_timeout: float = 600.0,
    ):
        self.url = url
        self.lock_dir = lock_dir
        self.busy_timeout = busy_timeout
        self.connect_timeout = connect_timeout
        self.send_receive_timeout = send_receive_timeout
        self.is_embedded = url.startswith("chdb:")
        self.display_url = redact_url(url)
        self._kept: Session | None = None
        self._kept_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, *, url: str | None = None) -> ClickHouse:
        return cls(
            url or settings.clickhouse_url,
            lock_dir=settings.lock_dir,
            busy_timeout=settings.clickhouse_busy_timeout_seconds,
            connect_timeout=settings.clickhouse_connect_timeout_seconds,
        )

    @property
    def cluster_name(self) -> str:
        """Short name of the target for messages and run tags: `embedded` or host:port."""
        if self.is_embedded:
            return "embedded"
        parts = urlsplit(self.url)
        return f"{parts.hostname}:{parts.port or (8443 if parts.scheme == 'https' else 8123)}"

    @contextmanager
    def session(self, purpose: str = "query", *, merges: bool = False) -> Iterator[Session]:
        """A client for a block of work; for chDB the engine is held only inside the block, unless it is kept
        open (`keep_open`): then every block shares the one kept session, one block at a time. `merges` lets
        the embedded engine merge parts while the block runs (a bulk load, which a server would merge as it
        goes); other short blocks start it without (NO_BACKGROUND_MERGES).

        Each lease opens its own lock descriptors, so threads of one process queue like processes do.
        """
        if self._kept is not None:
            with self._kept_lock:
                try:
                    yield self._kept
                finally:
                    self._kept.release_if_waited()
            return
        session = Session(self, purpose, merges=merges)
        try:
            yield session
        finally:
            session.close()

    def keep_open(self, purpose: str) -> None:
        """For a long-lived process serving many short reads (the API): keep one embedded session open
        instead of opening the engine per block; each open/close of chDB leaks a few MB for good. Runs still
        get their turn: the engine is handed over after the current block, or by a watcher thread while idle,
        as soon as another process queues for it."""
        if not self.is_embedded or self._kept is not None:
            return
        self._kept = Session(self, purpose, merges=True)
        threading.Thread(target=_hand_over_while_idle, args=(weakref.ref(self),), name="chdb handover",
                         daemon=True).start()

    def close(self) -> None:
        """Close the kept session (if any); later blocks open the engine each, as without `keep_open`."""
        if self._kept is not None:
            with self._kept_lock:
                kept, self._kept = self._kept, None
                kept.close()

    def _held_without_lease(self) -> EngineBusy | None:
        status = Path(urlsplit(self.url).path) / "status"
        holder = _status_lock_holder(status)
        if holder is None:
            return None
        return EngineBusy(
            f"The embedded ClickHouse ({self.display_url}) is held by {holder} (lock {status}), a process "
            f"that did not take this service's lease ({self.lock_dir}).",
            hint="It serves one process at a time. Stop that process, or give it the same EXPORT_PIPELINE_HOME "
            "so the two take turns, or point CLICKHOUSE_URL at a ClickHouse server.",
            details={"cluster": self.cluster_name, "lock": str(status)}, retryable=True,
        )

    def connect(self, *, merges: bool) -> Client:
        """Open a client, translating connection failures into a message that names the cluster. Without
        `merges`, the embedded engine starts with no background merges (a server's are its own business)."""
        if self.is_embedded:
            Path(urlsplit(self.url).path).mkdir(parents=True, exist_ok=True)
            transport: dict = {} if merges else {"chdb_options": NO_BACKGROUND_MERGES}
        else:
            transport = {
                "connect_timeout": self.connect_timeout,
                "send_receive_timeout": self.send_receive_timeout,
                "query_retries": 1,
                "autogenerate_session_id": False,
            }
        try:
            return clickhouse_connect.get_client(dsn=self.url, **transport)
        except Exception as exc:  # the driver raises several unrelated types for "cannot reach"
            if self.is_embedded and (busy := self._held_without_lease()):
                raise busy from None
            reason = scrub_secret(str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc), self.url)
            raise ClickHouseUnavailable(
                f"Cannot reach ClickHouse at {self.display_url}: {reason}",
                hint="Check CLICKHOUSE_URL (host, port, credentials) and that the server is up; "
                "unset it to use the embedded engine.",
                details={"cluster": self.cluster_name}, retryable=True,
            ) from None
