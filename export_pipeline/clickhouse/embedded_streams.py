"""Queries streamed from the embedded engine block by block, each on a chDB handle of its own.

clickhouse-connect's chDB client buffers a whole result, so a streamed query runs through chDB's own
streaming API (`send_query`), its values bound as server-side parameters exactly as clickhouse-connect binds
them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import pyarrow as pa
from clickhouse_connect.driver.binding import bind_query


class EmbeddedStreams:
    """The streamed queries of one session on the engine in `data_path`. A handle left open would keep the
    engine open after the session's lease: `close_all` closes them before the lease is released."""

    def __init__(self, data_path: str):
        self._data_path = data_path
        self._handles: set = set()

    @contextmanager
    def query(self, sql: str, parameters: dict, settings: dict, fmt: str) -> Iterator:
        """A chDB streaming result in `fmt` on a handle of its own, closed (with the handle) when the block ends."""
        import chdb  # only the embedded engine needs it

        final, bound = bind_query(sql, parameters)
        clause = ", ".join(f"{name} = {_setting_literal(value)}" for name, value in settings.items())
        handle = chdb.connect(os.path.realpath(self._data_path))
        self._handles.add(handle)
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
                self._handles.discard(handle)
                handle.close()

    def close_all(self) -> None:
        for handle in list(self._handles):
            self._handles.discard(handle)
            handle.close()


def _setting_literal(value: object) -> str:
    """A setting's value in a SETTINGS clause; settings are the code's own constants, never request values."""
    if isinstance(value, bool | int):
        return str(int(value))
    text = str(value)
    if text and not text.replace("_", "").isalnum():
        raise ValueError(f"unexpected setting value {text!r}")
    return f"'{text}'"


def arrow_blocks(stream) -> Iterator[pa.Table]:
    """The tables of a chDB streaming result in Arrow format: each fetched block is one Arrow IPC file."""
    while (block := stream.fetch()) is not None:
        # Copied once into memory Python owns: uncompressed Arrow arrays would point into the result's buffer,
        # which chDB frees or reuses after the next fetch (seen as corrupt strings), while the chunks built
        # from them live on. One copy is cheaper than the LZ4 round trip that hid this (`Session.arrow_stream`).
        table = pa.ipc.open_file(pa.py_buffer(bytes(block.get_memview().view()))).read_all()
        if table.num_rows:
            yield table


def row_blocks(stream) -> Iterator[tuple[bytes, int]]:
    """Each fetched block's output (copied: chDB reuses its buffer) and its row count."""
    while (block := stream.fetch()) is not None:
        yield block.bytes(), block.rows_read()
