"""The storage of a destination: its folder, or its bucket with its own endpoint and the credentials its
reference names (read from the environment when a run starts, never stored)."""

from __future__ import annotations

import json
import os
from urllib.parse import urlsplit

from export_pipeline.batch_exports.destinations import Destination
from export_pipeline.errors import StorageError
from export_pipeline.storage import ExportStorage, LocalStorage


def destination_storage(destination: Destination) -> ExportStorage:
    parts = urlsplit(destination.url)
    if parts.scheme == "file":
        return LocalStorage(parts.path)
    import boto3  # with S3Storage: 8 MB that folder destinations need not pay (storage/__init__.py)
    from botocore.config import Config

    from export_pipeline.storage.s3 import S3Storage

    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    config = Config(signature_version="s3v4", retries={"max_attempts": 2, "mode": "standard"})
    if destination.endpoint_url:
        config = config.merge(Config(s3={"addressing_style": "path"}))
    client = boto3.client("s3", region_name=region, endpoint_url=destination.endpoint_url or None, config=config,
                          **_credentials(destination))
    return S3Storage(parts.netloc, parts.path, client=client)


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
