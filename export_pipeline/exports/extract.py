"""Read the events of an export from ClickHouse in bounded chunks.

Keyset pagination over the sort key (timestamp, uuid): each chunk is `ORDER BY timestamp, uuid LIMIT n
WITH TIES` after the last key of the previous chunk. WITH TIES keeps every row equal to the chunk's last
key in that chunk, so rows sharing a key (even exact duplicates) are never split across a boundary, and
`> last key` then skips nothing and repeats nothing. Rows ingested after the request (`created_at >
as_of`) are excluded, so the export is the table as of the request.

Chunk sizes adapt to the bytes per row seen so far, keeping each chunk near `chunk_bytes` in memory.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa

from export_pipeline.clickhouse.connection import Session
from export_pipeline.clickhouse.schema import EventsTable
from export_pipeline.clock import ch_time
from export_pipeline.exports.spec import ExportSpec

MIN_CHUNK_ROWS = 1_000
MAX_CHUNK_ROWS = 1_000_000
FIRST_CHUNK_ROWS = 10_000
CH_TIME = "DateTime64(6, 'UTC')"



@dataclass(frozen=True)
class EventQuery:
    """The SQL and bound parameters for one export; only values from the request are parameters."""

    table: EventsTable
    spec: ExportSpec
    as_of: datetime

    def select_list(self) -> str:
        c = self.table.col
        return ", ".join(
            [
                f"{c('project_id')} AS project_id",
                f"toString({c('uuid')}) AS uuid",
                f"toString({c('event')}) AS event",
                f"{c('timestamp')} AS timestamp",
                f"{c('distinct_id')} AS distinct_id",
                f"toString({c('person_id')}) AS person_id",
                f"{c('properties')} AS properties",
                # Whether the stored text is a JSON object, so JSON outputs can embed it verbatim. The
                # cheap prefix test short-circuits, so each text is parsed at most once.
                f"toBool(startsWith(trimLeft({c('properties')}, ' \\t\\n\\r'), '{{') "
                f"AND isValidJSON({c('properties')})) AS properties_is_object",
                f"{c('created_at')} AS created_at",
            ]
        )

    def where(self, *, after: tuple[datetime, str] | None) -> tuple[str, dict]:
        c = self.table.col
        clauses = [f"{c('project_id')} = {{project_id:UInt64}}", f"{c('created_at')} <= {{as_of:{CH_TIME}}}"]
        params: dict = {"project_id": self.spec.project_id, "as_of": ch_time(self.as_of)}
        if self.spec.date_from:
            clauses.append(f"{c('timestamp')} >= {{date_from:{CH_TIME}}}")
            params["date_from"] = ch_time(self.spec.date_from)
        if self.spec.date_to:
            clauses.append(f"{c('timestamp')} < {{date_to:{CH_TIME}}}")
            params["date_to"] = ch_time(self.spec.date_to)
        if self.spec.events:
            clauses.append(f"{c('event')} IN {{events:Array(String)}}")
            params["events"] = list(self.spec.events)
        if after is not None:
            # The plain range lets the primary key prune; the tuple comparison is the exact keyset step.
            clauses.append(f"{c('timestamp')} >= {{after_ts:{CH_TIME}}}")
            clauses.append(f"({c('timestamp')}, {c('uuid')}) > ({{after_ts:{CH_TIME}}}, {{after_uuid:UUID}})")
            params["after_ts"] = ch_time(after[0])
            params["after_uuid"] = after[1]
        return " AND ".join(clauses), params

    def chunk_sql(self, *, after: tuple[datetime, str] | None, limit: int) -> tuple[str, dict]:
        where, params = self.where(after=after)
        c = self.table.col
        sql = (
            f"SELECT {self.select_list()} FROM {self.table.qualified_name} WHERE {where} "
            f"ORDER BY {c('timestamp')}, {c('uuid')} LIMIT {{limit:UInt64}} WITH TIES"
        )
        return sql, {**params, "limit": limit}

    def count_sql(self) -> tuple[str, dict]:
        where, params = self.where(after=None)
        return f"SELECT count() FROM {self.table.qualified_name} WHERE {where}", params


QUERY_SETTINGS = {
    # Select-list aliases reuse column names; make WHERE/ORDER BY mean the table's columns, not the aliases.
    "prefer_column_name_to_alias": 1,
    # Reading in key order, ClickHouse otherwise buffers ahead of LIMIT: measured -20% time, -200 MiB RSS.
    "read_in_order_use_buffering": 0,
}


def iter_chunks(session: Session, query: EventQuery, *, chunk_bytes: int) -> Iterator[pa.Table]:
    """Yield Arrow tables of consecutive events in export order; never more than one chunk ahead."""
    after: tuple[datetime, str] | None = None
    limit = FIRST_CHUNK_ROWS
    while True:
        sql, params = query.chunk_sql(after=after, limit=limit)
        chunk = session.client.query_arrow(sql, parameters=params, settings=QUERY_SETTINGS)
        if chunk.num_rows == 0:
            return
        last = chunk.slice(chunk.num_rows - 1, 1).select(["timestamp", "uuid"]).to_pylist()[0]
        after = (last["timestamp"], last["uuid"])
        # Fewer rows than asked means this was the last chunk (WITH TIES can only add rows).
        exhausted = chunk.num_rows < limit
        bytes_per_row = max(1, chunk.nbytes // chunk.num_rows)
        limit = max(MIN_CHUNK_ROWS, min(MAX_CHUNK_ROWS, chunk_bytes // bytes_per_row))
        session.checkpoint()
        yield chunk
        if exhausted:
            return


def prefetched(chunks: Iterator[pa.Table], depth: int = 1) -> Iterator[pa.Table]:
    """Run the producer on a thread so the next query overlaps with serializing the current chunk."""
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for chunk in chunks:
                while not stop.is_set():
                    try:
                        handoff.put(chunk, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            handoff.put(done)
        except BaseException as exc:  # re-raised in the consumer
            handoff.put(exc)

    producer = threading.Thread(target=produce, name="export-extract", daemon=True)
    producer.start()
    try:
        while True:
            item = handoff.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while producer.is_alive():
            try:
                handoff.get_nowait()
            except queue.Empty:
                pass
            producer.join(timeout=0.05)
        close = getattr(chunks, "close", None)
        if close:
            close()
