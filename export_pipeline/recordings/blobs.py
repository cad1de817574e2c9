"""Snapshot blobs: each session's rrweb events as numbered blocks under `<project>/<session>/`, each a
zstd-compressed JSON-lines file of `[windowId, rrwebEvent]`, in event order. Read back one line at a time, so
a recording of any size streams in bounded memory."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import zstandard

from export_pipeline.errors import InvalidRequest
from export_pipeline.storage import ExportStorage

BLOCK_SUFFIX = ".jsonl.zst"
# Session ids become storage keys and file names: plain ids only (PostHog's are UUIDs).
SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


def check_session_id(session_id: str) -> str:
    if not SESSION_ID.match(session_id):
        raise InvalidRequest(f"{session_id[:140]!r} is not a session id.",
                             details={"session_id": "letters, digits, '-' and '_', at most 128"})
    return session_id


@dataclass(frozen=True)
class BlockStats:
    events: int
    uncompressed_bytes: int


class RecordingBlobs:
    def __init__(self, storage: ExportStorage):
        self.storage = storage

    def prefix(self, project_id: int, session_id: str) -> str:
        return f"{project_id}/{check_session_id(session_id)}"

    def write_block(self, project_id: int, session_id: str, index: int, events: Iterable[tuple[str, dict]]) -> BlockStats:
        """Store block `index` of a session (blocks are read back in index order)."""
        lines = b"".join(json.dumps([window, event], ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
                         for window, event in events)
        self.storage.put_bytes(f"{self.prefix(project_id, session_id)}/{index:08d}{BLOCK_SUFFIX}",
                               zstandard.ZstdCompressor(level=3).compress(lines), content_type="application/zstd")
        return BlockStats(lines.count(b"\n"), len(lines))

    def block_keys(self, project_id: int, session_id: str) -> list[str]:
        return sorted(k for k in self.storage.list_keys(self.prefix(project_id, session_id)) if k.endswith(BLOCK_SUFFIX))

    def lines(self, project_id: int, session_id: str) -> Iterator[bytes]:
        """Every stored `[windowId, rrwebEvent]` line of the session, in order, one block open at a time."""
        for key in self.block_keys(project_id, session_id):
            with self.storage.open_reader(key) as raw, \
                    zstandard.ZstdDecompressor().stream_reader(raw) as decompressed:
                for line in io.BufferedReader(decompressed, buffer_size=1 << 20):  # type: ignore[arg-type]
                    if line.strip():
                        yield line
