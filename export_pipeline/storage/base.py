"""The storage interface every backend implements, and the key rules they share."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import BinaryIO, Protocol

from export_pipeline.errors import StorageError

DEFAULT_S3_PREFIX = "exports"


class ObjectWriter(Protocol):
    def write(self, data: bytes | memoryview) -> None: ...
    def commit(self) -> None: ...
    def abort(self) -> None: ...


class ExportStorage(Protocol):
    url: str  # redacted, safe for messages

    def open_writer(
        self, key: str, *, content_type: str, tags: Mapping[str, str] | None = None
    ) -> ObjectWriter: ...
    def put_bytes(
        self, key: str, data: bytes, *, content_type: str, tags: Mapping[str, str] | None = None
    ) -> None: ...
    def read_bytes(self, key: str) -> bytes: ...
    def open_reader(self, key: str) -> BinaryIO: ...
    def exists(self, key: str) -> bool: ...
    def list_keys(self, prefix: str) -> list[str]: ...
    def delete_prefix(self, prefix: str, *, keep: Collection[str] = ()) -> int: ...
    def delete_keys(self, keys: list[str]) -> None: ...
    # `filename`: the name a browser saves the file as, where the link can carry it (S3's presigned URL).
    def download_url(self, key: str, *, expires_at: datetime, filename: str | None = None) -> str: ...
    def ensure_lifecycle(self, ttl_hours: int) -> None: ...

    # True when `download_url` is a link anyone may open (S3 presigned); False when the API serves the file
    # to a signed-in caller (a local folder).
    presigns_downloads: bool


def content_disposition(filename: str) -> str:
    """An attachment header for a name of our own making (ids, digits, `-_.`: nothing to quote)."""
    return f'attachment; filename="{filename}"'


def key_parts(key: str) -> list[str]:
    """The segments of a key, refusing anything that could escape the storage root."""
    segments = key.split("/")
    if any(segment in ("", ".", "..") or "\x00" in segment for segment in segments):
        raise StorageError(
            f"Invalid storage key {key!r}.",
            hint="Keys are relative paths without empty, '.' or '..' segments.",
        )
    return segments


def folder_prefix(prefix: str) -> str:
    """A prefix names a folder: 'a/b' and 'a/b/' both mean 'a/b/', '' means everything.

    Callers pass export prefixes like '12/exp_1' without a slash; as a plain string prefix that
    would also match '12/exp_10/...', and delete_prefix would remove another export's files.
    """
    return "/".join(key_parts(prefix.removesuffix("/"))) + "/" if prefix else ""
