"""The one place a boto3 S3 client is built: for the exports' bucket and for batch export destinations alike.

Kept apart from `s3.py` so that callers choosing credentials or an endpoint (a batch export destination) build
the client the same way as the exports' own storage does.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import boto3
from botocore.client import BaseClient
from botocore.config import Config


def s3_client(*, endpoint_url: str | None = None, credentials: Mapping[str, str] | None = None,
              max_retries: int | None = None) -> BaseClient:
    """Region from AWS_REGION / AWS_DEFAULT_REGION (us-east-1 without either); `endpoint_url`, else
    AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, else AWS itself; `credentials` (aws_access_key_id,
    aws_secret_access_key, optionally aws_session_token), else the standard credential chain; `max_retries`
    of a failed request (after its first try) in botocore's standard retry mode, else botocore's default."""
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    # The precedence boto3 applies natively, made explicit so we know whether to use path-style.
    endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
    # SigV4: botocore may still presign with SigV2, which newer regions reject and which has no 7-day cap.
    config = Config(signature_version="s3v4")
    if max_retries is not None:  # botocore's "max_attempts" counts retries, not tries
        config = config.merge(Config(retries={"max_attempts": max_retries, "mode": "standard"}))
    if endpoint:  # S3-compatible servers (MinIO, Ceph, moto) rarely resolve bucket subdomains.
        config = config.merge(Config(s3={"addressing_style": "path"}))
    return boto3.client("s3", region_name=region, endpoint_url=endpoint, config=config, **dict(credentials or {}))
