"""Read a model's rows for an export from ClickHouse in bounded chunks.

One streamed query per export, `ORDER BY key` (events: timestamp, uuid), read block by block as the
serializer consumes it (`Session.arrow_stream`). ClickHouse reads each part once in key order, so the cost
does not grow with the number of parts, as keyset pages (`ORDER BY key LIMIT n WITH TIES`, one query per
chunk, each re-reading every part) did: measured at 1M rows in 18 parts, 5.8 s paged against 1.7 s streamed.

Chunks of about `chunk_bytes` are cut from the blocks at key boundaries only: every row equal to a chunk's
last key (even exact duplicates of the full key) is in that chunk. So "after the last key of a chunk" is an
exact place to resume: when another process waits for the embedded engine, the stream ends after a chunk,
the engine is handed over (`Session.checkpoint`) and a new query starts strictly after that key; an
export resumed after its last recorded key (`after`) does the same. Nothing is skipped or read twice.

A model whose table is partitioned by a function of its first key column (events: by month) declares it
as its `window`. A first query counts the rows per window (the export's total, for progress), and the stream
then reads one window after the other, each in key order. ClickHouse opens a reader for every part a query
touches and holds a block and read buffers in each: measured at 10M events in 30 parts, streaming
`properties` in key order peaked 538 MB above the engine for the whole table and 136 MB for one month.
Windows follow each other in key order, so chunks and resumption cross them unchanged.

Paged queries (`chunk_sql`) remain for callers that serve one page per request (the events API).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from uuid import UUID

import pyarrow as pa
import pyarrow.compute as pc

from export_pipeline.clickhouse.connection import Session
from export_pipeline.clock import as_utc, ch_time
from export_pipeline.engine.csv_blocks import KeyReader, csv_chunks, csv_key_reader
from export_pipeline.engine.encode_sql import ENCODE_SETTINGS, csv_cells
from export_pipeline.engine.model import ExportModel
from export_pipeline.engine.spec import ExportSpec

# Rows per ClickHouse block, from the chunk size: 2,048 rows for the default 8 MiB. A single part read in key order
# comes in blocks of a granule (~1,800 events, 1 MiB) whatever this says, but parts merged in key order come in
# blocks of exactly this many rows, each one fetch with a fixed cost, and ClickHouse holds a block per part.
# Measured at 10M events in 60 parts, Parquet (run_export in one process): 1,024-row blocks 20.3-21.5 s and
# 641-646 MB peak, 2,048 17.1-19.2 s and 652-662 MB, 4,096 17.9-18.5 s and 700-714 MB; the same table merged
# reads 5,529 blocks either way, in 15-17 s. Events as NDJSON or JSON take 1,024: with their lines built before
# the merge (SELECT_BEFORE_MERGE), 2,048 was 2 s faster at 10M events but peaked 19 MB higher. Persons (one join,
# windows of rows) gain from 2,048 in every format: NDJSON at 1M persons 2.93 s against 3.36 s.
CHUNK_BYTES_PER_BLOCK_ROW = 4096
JSON_LINES_CHUNK_BYTES_PER_BLOCK_ROW = 8192
MIN_BLOCK_ROWS = 1_024
MAX_BLOCK_ROWS = 65_536
KEY_PREFIX = "_key_"
CARRY_PREFIX = "_carry_"


@dataclass(frozen=True)
class Window:
    """The rows whose first key column lies in [start, end) in ClickHouse's order; None leaves that side open.
    Bounds are key values: datetimes for events, UUID text for persons (which Python cannot order as
    ClickHouse does)."""

    start: object | None = None
    end: object | None = None


EVERY_ROW = Window()
WHOLE = (EVERY_ROW,)


@dataclass(frozen=True)
class ExportPlan:
    """How many rows an export reads, and the windows it reads them in, in key order."""

    total: int
    windows: tuple[Window, ...] = WHOLE


@dataclass(frozen=True)
class ExportQuery:
    """The SQL and bound parameters reading one model's rows for a spec as of a moment; only values from the
    request are parameters."""

    model: ExportModel
    spec: ExportSpec
    as_of: datetime
    escape_formulas: bool = True  # CSV built by ClickHouse: neutralise formula-like text (encode_sql.py)
    # Output columns the caller reads from each chunk itself, beside the lines ClickHouse built (recordings
    # fetch each session's snapshots by its row).
    carry: tuple[str, ...] = ()

    @property
    def encoded(self) -> bool:
        """Whether ClickHouse builds the output lines (the text formats): chunks then hold the key values and
        a `line` column, not the output columns."""
        return self.spec.format.line is not None

    @property
    def csv_block_keys(self) -> KeyReader | None:
        """How to read each row's key back from ClickHouse's own CSV, if this export's CSV may come from its
        CSV writer where the engine streams whole blocks (csv_blocks.py, `Session.streams_rows`)."""
        if self.spec.format.native is None or self.carry:
            return None
        return csv_key_reader(self.model)

    @property
    def key_names(self) -> list[str]:
        """The chunk columns holding the key values: the output columns themselves when chunks hold those
        (Parquet), else columns of their own beside the lines."""
        if not self.encoded:
            return [key.name for key in self.model.key]
        return [f"{KEY_PREFIX}{key.name}" for key in self.model.key]

    @cached_property
    def uuid_bytes(self) -> frozenset[str]:
        """The output columns chunks hold as a UUID's 16 bytes (Parquet's UUID logical type), not its text.
        ClickHouse converts them: decoding the text in Polars took 1.4 s of a 4.4 s Parquet export at 1M events."""
        if self.encoded:
            return frozenset()
        return frozenset(column.name for column in self.model.columns if column.arrow == pa.uuid())

    def stream_select(self, *, csv_blocks: bool = False) -> str:
        if csv_blocks:
            return csv_cells(self.model, escape_formulas=self.escape_formulas)
        if not self.encoded:
            # The key is read from these columns (`last_key`): a copy of it as text cost the merge of a month's
            # parts 44 bytes a row (events).
            columns = [f"UUIDStringToNum({column.sql}) AS {column.name}" if column.name in self.uuid_bytes
                       else f"{column.sql} AS {column.name}" for column in self.model.columns]
            return ", ".join(columns)
        output = {column.name: column.sql for column in self.model.columns}
        keys = [f"{output[key.name]} AS {name}" for key, name in zip(self.model.key, self.key_names, strict=True)]
        assert self.spec.format.line is not None
        line = self.spec.format.line(self.model, escape_formulas=self.escape_formulas)
        # Aliased apart: the line's own cells already use the output names (a CSV cell may differ from the value).
        carried = [f"{output[name]} AS {CARRY_PREFIX}{name}" for name in self.carry]
        return ", ".join([*keys, line, *carried])

    def where(self, *, after: tuple | None, window: Window = EVERY_ROW) -> tuple[str, dict]:
        clauses, params = self.model.filters(self.spec, self.as_of)
        first = self.model.key[0]
        for name, bound, op in (("window_start", window.start, ">="), ("window_end", window.end, "<")):
            if bound is not None:
                clauses = [*clauses, f"{first.sql} {op} {{{name}:{first.type}}}"]
                params = {**params, name: ch_time(bound) if isinstance(bound, datetime) else bound}
        if after is not None:
            after_clauses, after_params = self.model.after(after)
            clauses, params = [*clauses, *after_clauses], {**params, **after_params}
        return " AND ".join(clauses), params

    def chunk_sql(self, *, after: tuple | None, limit: int) -> tuple[str, dict]:
        """The next `limit` rows (and their ties) after the key values `after`, or from the start."""
        where, params = self.where(after=after)
        sql = (
            f"SELECT {self.model.select_list()} FROM {self.model.source} WHERE {where} "
            f"ORDER BY {self.model.order_by()} LIMIT {{limit:UInt64}} WITH TIES"
        )
        return sql, {**params, "limit": limit}

    def stream_sql(self, *, after: tuple | None, window: Window = EVERY_ROW, csv_blocks: bool = False) -> tuple[str, dict]:
        """Every row of `window` after the key values `after` (or from the start), in key order."""
        where, params = self.where(after=after, window=window)
        source = self.model.stream_source or self.model.source
        select = self.stream_select(csv_blocks=csv_blocks)
        sql = f"SELECT {select} FROM {source} WHERE {where} ORDER BY {self.model.order_by()}"
        return sql, params

    def count_sql(self) -> tuple[str, dict]:
        where, params = self.where(after=None)
        return f"SELECT count() FROM {self.model.count_source or self.model.source} WHERE {where}", params

    def windows_sql(self) -> tuple[str, dict]:
        """Rows per window, in key order (the model must declare its `window`)."""
        where, params = self.where(after=None)
        sql = (f"SELECT toDateTime64({self.model.window}, 6, 'UTC') AS window_start, count() "
               f"FROM {self.model.count_source or self.model.source} WHERE {where} "
               "GROUP BY window_start ORDER BY window_start")
        return sql, params

    def bounds_sql(self, every: int) -> tuple[str, dict]:
        """The count's rows and every `every`-th value of the first key column in key order: where windows of
        `every` rows start (the model must declare `window_rows`). One row: (count, starts)."""
        where, params = self.where(after=None)
        first = self.model.key[0]
        numbered = (f"SELECT {first.sql} AS window_start, row_number() OVER (ORDER BY {self.model.order_by()}) AS n "
                    f"FROM {self.model.count_source or self.model.source} WHERE {where}")
        starts = "n % {every:UInt64} = 0"
        sql = (f"SELECT count(), arraySort((start, n) -> n, groupArrayIf(window_start, {starts}), groupArrayIf(n, {starts})) "
               f"FROM ({numbered})")
        return sql, {**params, "every": every}

    def last_key(self, chunk: pa.Table) -> tuple:
        """The key values of a chunk's last row, as bound in SQL: where the next chunk starts."""
        last = chunk.slice(chunk.num_rows - 1, 1).select(self.key_names).to_pylist()[0]
        return tuple(str(UUID(bytes=value)) if name in self.uuid_bytes else value for name, value in last.items())


QUERY_SETTINGS = {
    # Select-list aliases reuse column names; make WHERE/ORDER BY mean the table's columns, not the aliases.
    "prefer_column_name_to_alias": 1,
    # Reading in key order, ClickHouse otherwise buffers ahead: measured -200 MB RSS for the same CPU time.
    "read_in_order_use_buffering": 0,
}


def plan(session: Session, query: ExportQuery) -> ExportPlan:
    """Count the export's rows, and cut them into windows if the model reads in windows: its partitions
    (`window`), or runs of `window_rows` rows. The windows cover every value of the key (the first is open
    below, the last above), so rows need not have been counted to be read."""
    model = query.model
    if model.window is not None:
        sql, params = query.windows_sql()
        counted = session.client.query(sql, parameters=params, settings=QUERY_SETTINGS).result_rows
        return ExportPlan(sum(int(rows) for _, rows in counted),
                          _windows([as_utc(start) for start, _ in counted[1:]]))
    if model.window_rows is not None:  # counted while numbering: one pass
        sql, params = query.bounds_sql(model.window_rows)
        total, starts = session.client.query(sql, parameters=params, settings=QUERY_SETTINGS).result_rows[0]
        return ExportPlan(int(total), _windows(list(starts)))
    sql, params = query.count_sql()
    return ExportPlan(int(session.client.command(sql, parameters=params, settings=QUERY_SETTINGS)))


def _windows(starts: list) -> tuple[Window, ...]:
    """Windows from each start to the next, open below the first and above the last."""
    bounds = [None, *starts, None]
    return tuple(Window(start, end) for start, end in zip(bounds, bounds[1:], strict=False))


def iter_chunks(
    session: Session, query: ExportQuery, *, chunk_bytes: int, after: tuple | None = None,
    windows: tuple[Window, ...] = WHOLE,
) -> Iterator[pa.Table]:
    """Yield Arrow tables of consecutive rows in key order, strictly after the key values `after` if given,
    each ending at a key boundary; holds about one chunk and one block. A CSV chunk on the embedded engine
    holds whole ClickHouse blocks, one per table row (csv_blocks.py)."""
    settings = stream_settings(query, chunk_bytes)
    read_key = query.csv_block_keys if session.streams_rows else None
    while True:
        handed_over = False
        blocks = _window_blocks(session, query, windows, after, settings, csv_blocks=read_key is not None)
        with closing(blocks):
            cut = (csv_chunks(blocks, query.key_names, read_key, chunk_bytes) if read_key is not None
                   else _key_aligned(blocks, query.key_names, chunk_bytes))
            for chunk in cut:
                after = query.last_key(chunk)
                if query.carry and query.encoded:
                    chunk = chunk.rename_columns([name.removeprefix(CARRY_PREFIX) for name in chunk.column_names])
                yield chunk
                if session.is_wanted():
                    handed_over = True
                    break
        if not handed_over:
            return
        session.checkpoint()


# ClickHouse merges a window's parts in key order, and by default computes the select list after that merge, so
# the merge moves the table's columns, LowCardinality ones the dearest. Computed in each part's stream before the
# merge (and on both cores), the output columns are what it moves: for JSON lines one string, for Parquet plain
# columns (the events model casts `event` to String). Measured at 10M events in 60 parts, in one process, after
# against before: JSON 31.7-33.0 s against 25.1-26.2 s, NDJSON 31.2-33.6 against 28.3-29.8, Parquet 19.2-19.3
# against 17.7-18.0; on the same table merged it changes nothing. Peak +35-44 MB for JSON lines, paid for by
# keeping pandas out (__init__.py). CSV, which ClickHouse's CSV writer writes as fast as the disk takes it, gained
# nothing (18.4-21.7 s against 18.3-21.4 s) for 10-15 MB more, so it keeps the default.
SELECT_BEFORE_MERGE = {"query_plan_execute_functions_after_sorting": 0}


def stream_settings(query: ExportQuery, chunk_bytes: int) -> dict:
    """The settings of the streamed queries: the model's own last."""
    merges_parts = query.model.window is not None  # events: a month's parts per query
    json_lines = query.spec.format.json_objects
    per_row = JSON_LINES_CHUNK_BYTES_PER_BLOCK_ROW if merges_parts and json_lines else CHUNK_BYTES_PER_BLOCK_ROW
    block_rows = max(MIN_BLOCK_ROWS, min(MAX_BLOCK_ROWS, chunk_bytes // per_row))
    before_merge = merges_parts and query.spec.format.native is None  # CSV: see SELECT_BEFORE_MERGE
    return {**QUERY_SETTINGS, **ENCODE_SETTINGS, "max_block_size": block_rows,
            **(SELECT_BEFORE_MERGE if before_merge else {}), **query.model.stream_settings}


def _window_blocks(session: Session, query: ExportQuery, windows: tuple[Window, ...], after: tuple | None,
                   settings: dict, *, csv_blocks: bool) -> Iterator:
    """The blocks of each window in turn, from the one holding the row after `after`; one query at a time.
    Arrow tables, or with `csv_blocks` ClickHouse's CSV output as (bytes, rows) per block."""
    for window in windows:
        # Time bounds compare in Python as in ClickHouse. Others (UUIDs) compare only in ClickHouse, where a
        # window before `after` reads nothing: a resumed or handed-over persons export runs those queries again.
        if after is not None and isinstance(window.end, datetime) and window.end <= after[0]:
            continue  # every row of the window is at or before `after`
        if len(windows) > 1:
            session.release_freed_memory()  # the plan's or the last window's, so windows do not pile up
        sql, params = query.stream_sql(after=after, window=window, csv_blocks=csv_blocks)
        stream = (session.row_stream(sql, params, settings, query.spec.format.native) if csv_blocks
                  else session.arrow_stream(sql, params, settings))
        with stream as blocks:
            yield from blocks


def _key_aligned(blocks: Iterator[pa.Table], key: list[str], chunk_bytes: int) -> Iterator[pa.Table]:
    """Regroup key-ordered blocks into chunks of about `chunk_bytes`, each cut where the key changes."""
    pending: list[pa.Table] = []
    size = 0
    for block in blocks:
        pending.append(block)
        size += block.nbytes
        while size >= chunk_bytes:
            table = pa.concat_tables(pending)
            wanted = max(1, table.num_rows * chunk_bytes // size)
            cut = _group_end(table, key, wanted - 1)
            if cut is None:  # the key at the cut runs on into the next block
                break
            yield table.slice(0, cut)
            rest = table.slice(cut)
            pending, size = ([rest], rest.nbytes) if rest.num_rows else ([], 0)
    if pending:
        yield pa.concat_tables(pending)


def _group_end(table: pa.Table, key: list[str], row: int) -> int | None:
    """The index of the first row after `row` whose key differs from row `row`'s, or None if none in `table`.
    Rows are in key order, so the rows equal to it that follow are contiguous."""
    following = table.slice(row)
    same = None
    for name in key:
        values = following.column(name)
        equal = pc.equal(values, values[0])
        same = equal if same is None else pc.and_(same, equal)
    first_different = pc.index(same, False).as_py()
    return None if first_different < 0 else row + first_different


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
