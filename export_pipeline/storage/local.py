"""Exports in a local folder: writes go to a hidden temp file and appear under their key once committed."""

from __future__ import annotations

import logging
import os
import re
import secrets
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from export_pipeline.errors import StorageError
from export_pipeline.settings import redact_url
from export_pipeline.storage.base import ObjectWriter, folder_prefix, key_parts

log = logging.getLogger(__name__)

# Temp files of in-progress local writes: `.<name>.partial-<random>` next to the target.
_PARTIAL_NAME = re.compile(r"^\..+\.partial-[0-9a-f]{16}$")
# How often a writer hands what it wrote to the disk (see `_LocalWriter.write`).
_WRITEBACK_BYTES = 32 << 20


class LocalStorage:
    """Exports in a folder; writes go to a hidden temp file that is renamed into place on commit."""

    presigns_downloads = False

    def __init__(self, root: str | os.PathLike[str]):
        # abspath, not resolve(): keep the path the user configured, even through symlinks.
        self.root = Path(os.path.abspath(root))
        self.url = redact_url(f"file://{self.root}")

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*key_parts(key))

    @contextmanager
    def _os_errors(self, action: str, key: str) -> Iterator[None]:
        try:
            yield
        except FileNotFoundError as exc:
            raise StorageError(f"No object {key!r} in {self.url}.") from exc
        except OSError as exc:
            raise StorageError(
                f"Cannot {action} {key!r} in {self.url}: {exc.strerror or exc}.",
                hint="Check that EXPORT_STORAGE_URL points to a writable folder with free space.",
            ) from exc

    def open_writer(
        self, key: str, *, content_type: str, tags: Mapping[str, str] | None = None
    ) -> ObjectWriter:
        """`content_type` and `tags` have no meaning on a file system and are ignored."""
        path = self._path(key)
        with self._os_errors("write", key):
            path.parent.mkdir(parents=True, exist_ok=True)
            return _LocalWriter(self, key, path)

    def put_bytes(
        self, key: str, data: bytes, *, content_type: str, tags: Mapping[str, str] | None = None
    ) -> None:
        writer = self.open_writer(key, content_type=content_type, tags=tags)
        try:
            writer.write(data)
            writer.commit()
        except BaseException:
            writer.abort()
            raise

    def read_bytes(self, key: str) -> bytes:
        with self._os_errors("read", key):
            return self._path(key).read_bytes()

    def open_reader(self, key: str) -> BinaryIO:
        with self._os_errors("read", key):
            return self._path(key).open("rb")

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def _files_under(self, prefix: str) -> list[Path]:
        """Every file in the prefix's folder, at any depth, temp files included."""
        folder = self.root / folder_prefix(prefix)
        return [Path(dirpath, name) for dirpath, _dirs, names in os.walk(folder) for name in names]

    def list_keys(self, prefix: str) -> list[str]:
        return sorted(
            path.relative_to(self.root).as_posix()
            for path in self._files_under(prefix)
            if not _PARTIAL_NAME.match(path.name)
        )

    def delete_prefix(self, prefix: str, *, keep: Collection[str] = ()) -> int:
        """Delete committed files (but the keys in `keep`) and unfinished temp files; count only the former,
        like S3 does."""
        deleted = 0
        with self._os_errors("delete", prefix):
            for path in self._files_under(prefix):
                if path.relative_to(self.root).as_posix() in keep:
                    continue
                path.unlink(missing_ok=True)
                deleted += not _PARTIAL_NAME.match(path.name)
                self._remove_empty_parents(path.parent)
        return deleted

    def delete_keys(self, keys: list[str]) -> None:
        """Delete exactly these files; a missing one is no error (as on S3)."""
        for key in keys:
            with self._os_errors("delete", key):
                path = self._path(key)
                path.unlink(missing_ok=True)
                self._remove_empty_parents(path.parent)

    def _remove_empty_parents(self, folder: Path) -> None:
        while folder != self.root:
            try:
                folder.rmdir()
            except OSError:  # not empty (or already gone): stop climbing
                return
            folder = folder.parent

    def download_url(self, key: str, *, expires_at: datetime, filename: str | None = None) -> str:
        """A file:// URL; a folder cannot enforce expiry nor a file name, so both are ignored."""
        return self._path(key).as_uri()

    def ensure_lifecycle(self, ttl_hours: int) -> None:
        """Nothing to configure for a folder."""


class _LocalWriter:
    """Writes a hidden temp file next to the target; commit renames it into place."""

    def __init__(self, storage: LocalStorage, key: str, path: Path):
        self._storage = storage
        self._key = key
        self._path = path
        self._temp = path.with_name(f".{path.name}.partial-{secrets.token_hex(8)}")
        self._file = self._temp.open("xb")
        self._closed = False
        self._written = 0
        # [_previous_step, _handed_to_disk): the bytes the last `_hand_to_disk` started writing to disk.
        self._previous_step = self._handed_to_disk = 0

    def write(self, data: bytes | memoryview) -> None:
        if self._closed:
            raise ValueError("write to a committed or aborted writer")
        with self._storage._os_errors("write", self._key):
            self._file.write(data)
            self._written += len(data)
            if self._written - self._handed_to_disk >= _WRITEBACK_BYTES:
                self._hand_to_disk()

    def _hand_to_disk(self) -> None:
        """Start writing the new bytes to disk now, and drop from the page cache what an earlier call already
        wrote. Left to the kernel, writeback starts only once 10% of memory is dirty and then throttles the
        writer, and a large export evicts the page cache other work (ClickHouse's parts) lives on: measured
        8 GB in 16 MiB writes, 17.7-24.6 s plain, 14.0-14.1 s this way (POSIX_FADV_DONTNEED starts writeback
        of dirty pages and drops clean ones)."""
        self._file.flush()
        start = self._previous_step
        os.posix_fadvise(self._file.fileno(), start, self._written - start, os.POSIX_FADV_DONTNEED)
        self._previous_step, self._handed_to_disk = self._handed_to_disk, self._written

    def commit(self) -> None:
        if self._closed:
            raise ValueError("commit of a committed or aborted writer")
        with self._storage._os_errors("write", self._key):
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self._temp, self._path)
            _fsync_dir(self._path.parent)  # make the rename itself survive a crash
        self._closed = True

    def abort(self) -> None:
        """Best effort: it runs while handling another failure, which must not be masked."""
        if self._closed:
            return
        self._closed = True
        try:
            self._file.close()
            self._temp.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("Could not remove temp file %s: %s", self._temp, exc)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
