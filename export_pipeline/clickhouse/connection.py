"""Sessions on ClickHouse through clickhouse-connect: a server over HTTP(S), or the embedded chDB engine.

For `chdb://` every session takes the cross-process lease on the engine (lease.py) and closes the engine when
it ends, letting the API, Dagster runs and the CLI take turns. A long reader (an export) calls
`Session.checkpoint()` between queries: it hands the engine over when another process is waiting.

A process that opens the data folder without the lease holds ClickHouse's own lock on it. Opening then fails
with a driver error that reads like a connection problem, so that lock is probed and the holder named instead.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import clickhouse_connect
import pyarrow as pa
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from export_pipeline.clickhouse.embedded_streams import EmbeddedStreams, arrow_blocks, row_blocks
from export_pipeline.clickhouse.lease import EngineLease, status_lock_holder
from export_pipeline.errors import ClickHouseUnavailable, EngineBusy
from export_pipeline.settings import Settings, redact_url, scrub_secret

_HANDOVER_POLL_SECONDS = 0.05


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
        self._lease = EngineLease(owner.lock_dir) if owner.is_embedded else None
        self._streams = EmbeddedStreams(owner.data_path) if owner.is_embedded else None

    @property
    def client(self) -> Client:
        if self._client is None:
            self._open()
        assert self._client is not None
        return self._client

    def checkpoint(self) -> None:
        """Between queries of a long read: let a waiting process use the embedded engine, then resume."""
        if self._lease is None or self._client is None or not self._lease.is_wanted():
            return
        self.close()
        self._open()

    def is_wanted(self) -> bool:
        """Whether another process waits for the embedded engine (a long reader then ends its query at a row
        it can resume after, and calls `checkpoint`)."""
        if self._lease is None or self._client is None:
            return False
        return self._lease.is_wanted()

    def release_freed_memory(self) -> None:
        """Return what the embedded engine has freed to the OS; its allocator (jemalloc) keeps freed pages for
        reuse, and after each window of a long read it held 25-40 MB more (persons at 1M: 404 -> 492 MB over
        four windows; purged before each, at most 436 MB, 15 ms a purge). Over HTTP nothing is done: a server's
        memory is its own."""
        if self._lease is None:
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
        if self._lease is None:
            with client.query_arrow_stream(sql, parameters=parameters, settings=settings) as batches:
                yield _tables(batches)
            return
        # ClickHouse LZ4-compresses Arrow output by default: in one process that only costs CPU on both sides
        # (measured at 1M events: 0.5 s of ClickHouse's 4.4 s for the CSV lines, and pyarrow's decompression).
        options = {"output_format_arrow_string_as_string": 1, "output_format_arrow_compression_method": "none",
                   **settings}
        with self._embedded_stream(sql, parameters, options, "Arrow") as stream:
            yield arrow_blocks(stream)

    @property
    def streams_rows(self) -> bool:
        """Whether `row_stream` is available: the embedded engine hands over its output block by block, each
        whole rows; a server's HTTP response is cut anywhere."""
        return self._lease is not None

    @contextmanager
    def row_stream(self, sql: str, parameters: dict, settings: dict, fmt: str) -> Iterator[Iterator[tuple[bytes, int]]]:
        """One query's output in a row format (`CSV`) as ClickHouse's own writer produces it, one ClickHouse
        block at a time: (the block's bytes, its number of rows). Embedded engine only (`streams_rows`)."""
        if self._lease is None:
            raise ValueError("row_stream needs the embedded engine")
        with self._embedded_stream(sql, parameters, settings, fmt) as stream:
            yield row_blocks(stream)

    @contextmanager
    def _embedded_stream(self, sql: str, parameters: dict, settings: dict, fmt: str) -> Iterator:
        assert self._streams is not None
        if self._client is None:
            self._open()  # the session's lease first, as for its first query
        with self._streams.query(sql, parameters, settings, fmt) as stream:
            yield stream

    def release_if_waited(self) -> None:
        """Close the engine if another process (or session) is queued for it; the next query reopens it,
        queuing behind them."""
        if self.is_wanted():
            self.close()

    def _open(self) -> None:
        if self._lease is not None:
            self._lease.acquire(self._purpose, timeout=self._owner.busy_timeout, engine_name=self._owner.display_url)
        try:
            self._client = self._owner.connect(merges=self._merges)
        except BaseException:
            if self._client is not None:
                self.close()
            elif self._lease is not None:
                self._lease.release()
            raise

    def close(self) -> None:
        if self._streams is not None:
            self._streams.close_all()
        if self._client is not None:
            try:
                self._client.close()
            finally:
                self._client = None
                if self._lease is not None:
                    self._lease.release()


def _tables(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.Table]:
    """clickhouse-connect's Arrow stream yields a record batch per block."""
    for batch in batches:
        if batch.num_rows:
            yield pa.Table.from_batches([batch])


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
        self.data_path = urlsplit(url).path if self.is_embedded else ""  # the embedded engine's folder
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
        status = Path(self.data_path) / "status"
        holder = status_lock_holder(status)
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
            Path(self.data_path).mkdir(parents=True, exist_ok=True)
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
