"""How an export's files are compressed: each `Compression` names its file suffix and builds its streaming
compressor, for part files (serialize.py) and for files written whole (a recording, exports/recordings.py)."""

from __future__ import annotations

import zlib
from enum import StrEnum
from typing import Protocol

import zstandard


class Compressor(Protocol):
    def compress(self, data: bytes | memoryview) -> bytes | memoryview: ...
    def flush(self) -> bytes: ...


class _Identity:
    def compress(self, data: bytes | memoryview) -> bytes | memoryview:
        return data

    def flush(self) -> bytes:
        return b""


class Compression(StrEnum):
    GZIP = "gzip"
    ZSTD = "zstd"
    NONE = "none"

    @property
    def suffix(self) -> str:
        """What a file compressed this way adds to its name."""
        return {Compression.GZIP: ".gz", Compression.ZSTD: ".zst", Compression.NONE: ""}[self]

    def compressor(self, *, gzip_level: int, zstd_level: int) -> Compressor:
        if self is Compression.GZIP:
            return zlib.compressobj(gzip_level, zlib.DEFLATED, 31)  # wbits 31: gzip container
        if self is Compression.ZSTD:
            return zstandard.ZstdCompressor(level=zstd_level, write_content_size=False).compressobj()
        return _Identity()
