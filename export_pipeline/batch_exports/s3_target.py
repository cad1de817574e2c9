"""A destination in an S3 bucket, or an S3-compatible store at its own `endpoint_url`: `s3://bucket/prefix`,
with the credentials its `credentials_ref` names (read from the environment when a run starts, never stored)."""

from __future__ import annotations

import json
import os
from urllib.parse import SplitResult, urlsplit

from export_pipeline.batch_exports.destinations import Destination
from export_pipeline.batch_exports.target import StorageTarget
from export_pipeline.errors import StorageError
from export_pipeline.settings import redact_url
from export_pipeline.storage import ExportStorage

# Retries of one S3 request inside an attempt at an interval; the interval's own backoff (run.py) does the rest.
REQUEST_RETRIES = 2


class S3Target(StorageTarget):
    name = "S3"
    example = "s3://bucket/prefix"
    takes_endpoint = True

    def __init__(self, storage: ExportStorage, description: str):
        super().__init__(storage)
        self._description = description

    @classmethod
    def check_url(cls, parts: SplitResult) -> str | None:
        if parts.username or parts.password or parts.query:
            return "must not hold credentials or parameters: give credentials_ref instead"
        if not parts.netloc:
            return "names no bucket: use s3://bucket/prefix"
        return None

    @classmethod
    def open(cls, destination: Destination) -> S3Target:
        # Imported here: with boto3, 8 MB that folder destinations need not pay (storage/__init__.py).
        from export_pipeline.storage.s3 import S3Storage
        from export_pipeline.storage.s3_client import s3_client

        parts = urlsplit(destination.url)
        client = s3_client(endpoint_url=destination.endpoint_url, credentials=_credentials(destination),
                           max_retries=REQUEST_RETRIES)
        storage = S3Storage(parts.netloc, parts.path, client=client)
        where = client.meta.region_name
        if destination.endpoint_url:
            where += f", {redact_url(destination.endpoint_url)}"
        return cls(storage, f"{storage.url} ({where})")

    def describe(self) -> str:
        return self._description


def _credentials(destination: Destination) -> dict[str, str]:
    """From the variable `credentials_ref` names; without a reference, the standard AWS credential chain."""
    ref = destination.credentials_ref
    if not ref:
        return {}
    hint = (f"Set {ref} to a JSON object with aws_access_key_id and aws_secret_access_key (and optionally "
            "aws_session_token) in the environment of the Dagster runs.")
    raw = os.environ.get(ref)
    if not raw:
        raise StorageError(f"The credentials of batch export {destination.id} ({ref}) are not set.", hint=hint)
    try:
        found = json.loads(raw)
        keys = {name: str(found[name]) for name in ("aws_access_key_id", "aws_secret_access_key")}
    except (ValueError, KeyError, TypeError):
        raise StorageError(f"The credentials in {ref} are not a JSON object with the AWS keys.", hint=hint) from None
    if found.get("aws_session_token"):
        keys["aws_session_token"] = str(found["aws_session_token"])
    return keys
