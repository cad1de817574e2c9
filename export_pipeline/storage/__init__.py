"""Object storage for export files: a local folder or an S3 bucket, behind one interface chosen by URL.

Keys are relative POSIX paths such as ``12/exp_20261123_ab12/part-00000.ndjson.gz``; each backend maps
them under its root (a folder, or a bucket plus a prefix, ``exports`` unless the URL names one). Writers stream, so an
export never has to fit in memory, and an object only appears under its real key once committed.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from export_pipeline.errors import StorageError
from export_pipeline.settings import redact_url
from export_pipeline.storage.base import ExportStorage, ObjectWriter
from export_pipeline.storage.local import LocalStorage

__all__ = ["ExportStorage", "LocalStorage", "ObjectWriter", "S3Storage", "storage_from_url"]


def __getattr__(name: str) -> object:
    # S3Storage loads boto3, 8 MB of memory a process storing in a folder need not pay.
    if name == "S3Storage":
        from export_pipeline.storage.s3 import S3Storage

        return S3Storage
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def storage_from_url(url: str) -> ExportStorage:
    """`file:///abs/folder` or `s3://bucket/optional/prefix`."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        root = parts.netloc + parts.path
        if not os.path.isabs(root):
            # A relative root would silently depend on the working directory of each process.
            raise StorageError(
                f"Storage URL {redact_url(url)} does not name an absolute folder.",
                hint="Use file:///absolute/path/to/folder.",
            )
        return LocalStorage(root)
    if parts.scheme == "s3":
        if not parts.netloc:
            raise StorageError(
                f"Storage URL {redact_url(url)} names no bucket.", hint="Use s3://bucket/optional/prefix."
            )
        from export_pipeline.storage.s3 import S3Storage

        return S3Storage(parts.netloc, parts.path)
    raise StorageError(
        f"Unsupported storage URL {redact_url(url)}.",
        hint="Use file:///absolute/path/to/folder or s3://bucket/prefix in EXPORT_STORAGE_URL.",
    )
