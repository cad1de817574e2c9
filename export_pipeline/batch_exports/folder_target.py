"""A destination in a local (or mounted) folder: `file:///absolute/path`."""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

from export_pipeline.batch_exports.destinations import Destination
from export_pipeline.batch_exports.target import StorageTarget
from export_pipeline.storage import LocalStorage


class FolderTarget(StorageTarget):
    name = "folder"
    example = "file:///folder"

    @classmethod
    def check_url(cls, parts: SplitResult) -> str | None:
        if not parts.path.startswith("/") or parts.netloc:
            return "a local folder must be absolute: file:///path or /path"
        return None

    @classmethod
    def open(cls, destination: Destination) -> FolderTarget:
        return cls(LocalStorage(urlsplit(destination.url).path))

    def describe(self) -> str:
        return self.storage.url
