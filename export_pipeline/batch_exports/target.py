"""Where a batch export's intervals go: the `Target` interface every kind of destination implements, and
`StorageTarget`, which implements it over an object store (`storage.ExportStorage`).

To add a kind of destination, say `gs://bucket/prefix`:

1. Write one module, `batch_exports/gcs_target.py`, with a `Target` subclass: `name` and `example` (for
   messages), `takes_endpoint`, `check_url` (what a valid URL of the kind is, checked at create), `open`
   (connect from the stored destination: its `url`, `endpoint_url`, and the credentials `credentials_ref`
   names, read at run time), `describe`, and `replace_interval`, `clear_interval` and `probe`. Over an object
   store, subclass `StorageTarget` instead and hand it an `ExportStorage`: it brings those last three.
2. Register it with one line in `TARGETS` (`batch_exports/targets.py`): `"gs": GcsTarget`.

Validation at create, the connection test (`probe`), runs, retries and cleanup then take the new kind as they
take the others; an error it raises says whether another try may succeed (`ExportPipelineError.retryable`).
"""

from __future__ import annotations

import json
import secrets
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import SplitResult

from export_pipeline.batch_exports.destinations import Destination
from export_pipeline.engine.serialize import WrittenFile
from export_pipeline.errors import StorageError
from export_pipeline.storage import ExportStorage

MANIFEST_NAME = "manifest.json"
PROBE_KEY = ".export-pipeline-probe"

# Writes an interval's data files into the storage it is given and returns them.
WriteFiles = Callable[[ExportStorage], list[WrittenFile]]


@dataclass(frozen=True)
class ReplacedInterval:
    files: list[WrittenFile]
    manifest_key: str
    stale_removed: int  # files of an earlier run that the new set does not have


class Target(ABC):
    """One destination, connected: where its intervals' files are written and replaced."""

    name: ClassVar[str]  # the kind, in messages: "folder", "S3"
    example: ClassVar[str]  # a URL of the kind, in messages: "s3://bucket/prefix"
    takes_endpoint: ClassVar[bool] = False

    @classmethod
    @abstractmethod
    def check_url(cls, parts: SplitResult) -> str | None:
        """What is wrong with this URL of the kind (the `url` field's error at create), or None."""

    @classmethod
    @abstractmethod
    def open(cls, destination: Destination) -> Target:
        """Connect to the place the stored destination names, with the credentials its reference names now."""

    @abstractmethod
    def replace_interval(self, prefix: str, write_files: WriteFiles,
                         manifest: Callable[[list[WrittenFile]], dict]) -> ReplacedInterval:
        """Make the interval's folder `prefix` hold the files `write_files` writes, their `manifest` (written
        last, listing exactly them) and nothing else, whatever an earlier run left there. A reader never sees
        a partial file, and once the manifest is written it names the complete new set."""

    @abstractmethod
    def clear_interval(self, prefix: str) -> None:
        """Remove everything under the interval's folder (a run that failed for good leaves no files)."""

    @abstractmethod
    def probe(self) -> None:
        """The connection test: raise an error saying what failed when the destination cannot be written."""

    @abstractmethod
    def describe(self) -> str:
        """One line for people and logs, never a secret: `s3://bucket/prefix (eu-west-1)`."""


class StorageTarget(Target, ABC):
    """A destination in an object store. Each object write is atomic (an S3 PUT or completed multipart upload,
    a file renamed into place), which is what makes the replace below safe to read during."""

    def __init__(self, storage: ExportStorage):
        self.storage = storage

    def replace_interval(self, prefix: str, write_files: WriteFiles,
                         manifest: Callable[[list[WrittenFile]], dict]) -> ReplacedInterval:
        # Files under deterministic names first, then the manifest, then the keys it does not list (parts of
        # an earlier run that split differently).
        files = write_files(self.storage)
        manifest_key = f"{prefix}/{MANIFEST_NAME}"
        self.storage.put_bytes(manifest_key, json.dumps(manifest(files), indent=2).encode(),
                               content_type="application/json")
        keep = {f.key for f in files} | {manifest_key}
        stale = [key for key in self.storage.list_keys(prefix) if key not in keep]
        if stale:
            self.storage.delete_keys(stale)
        return ReplacedInterval(files, manifest_key, len(stale))

    def clear_interval(self, prefix: str) -> None:
        self.storage.delete_prefix(prefix)

    def probe(self) -> None:
        """Write and delete one empty object: what a run needs (listing alone would pass read-only keys)."""
        key = f"{PROBE_KEY}-{secrets.token_hex(4)}"
        try:
            self.storage.put_bytes(key, b"", content_type="text/plain")
            self.storage.delete_keys([key])
        except StorageError as failed:
            raise StorageError(f"The connection test of {self.describe()} failed: {failed.message}",
                               hint=failed.hint, details=failed.details, retryable=failed.retryable) from failed
