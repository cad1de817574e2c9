"""Exports in an S3 bucket (or an S3-compatible store): streamed multipart uploads, presigned downloads,
and a lifecycle rule that expires them."""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import BinaryIO, cast
from urllib.parse import urlencode

from botocore.client import BaseClient
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from export_pipeline.errors import StorageError
from export_pipeline.settings import MIB, redact_url
from export_pipeline.storage.base import (
    DEFAULT_S3_PREFIX,
    ObjectWriter,
    content_disposition,
    folder_prefix,
    key_parts,
)
from export_pipeline.storage.s3_client import s3_client

log = logging.getLogger(__name__)

MIN_PART_SIZE = 5 * MIB  # S3 rejects smaller parts, except the last one
DEFAULT_PART_SIZE = 8 * MIB
MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # SigV4 presigned URLs cannot live longer
LIFECYCLE_RULE_ID = "export-pipeline-expire-exports"

_ENDPOINT_HINT = "Check AWS_ENDPOINT_URL (unset it for AWS itself) and that the endpoint is reachable."
_CREDENTIALS_HINT = (
    "Check the AWS credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or the instance role) "
    "and that they are allowed to use this bucket."
)
_DENIED_CODES = frozenset(
    {"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled"}
)
# Per-object errors of delete_objects that S3 documents as "try again".
_RETRYABLE_CODES = frozenset({"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout"})


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _tagging(tags: Mapping[str, str] | None) -> dict[str, str]:
    """The `Tagging` argument of put_object / create_multipart_upload (URL-encoded), or nothing."""
    return {"Tagging": urlencode(dict(tags))} if tags else {}


class S3Storage:
    """Exports in `s3://bucket/prefix`; large objects are streamed as multipart uploads.

    An injected `client` should use signature_version="s3v4", or download URLs may be SigV2.
    """

    presigns_downloads = True

    def __init__(
        self,
        bucket: str,
        prefix: str = DEFAULT_S3_PREFIX,
        client: BaseClient | None = None,
        part_size: int = DEFAULT_PART_SIZE,
    ):
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (an S3 limit)")
        self.bucket = bucket
        # The lifecycle rule expires everything under the prefix: it must never be the whole bucket.
        self.prefix = prefix.strip("/") or DEFAULT_S3_PREFIX
        self.part_size = part_size
        self.url = redact_url(f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}")
        self._client = client or s3_client()
        self._endpoint = redact_url(self._client.meta.endpoint_url)

    def _full(self, key: str) -> str:
        key_parts(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _full_prefix(self, prefix: str) -> str:
        folder = folder_prefix(prefix)
        return f"{self.prefix}/{folder}" if self.prefix else folder

    def _relative(self, full_key: str) -> str:
        return full_key[len(self.prefix) + 1 :] if self.prefix else full_key

    @contextmanager
    def _s3_errors(
        self, action: str, key: str | None = None, denied_hint: str = _CREDENTIALS_HINT
    ) -> Iterator[None]:
        """Turn boto errors into StorageError naming bucket and endpoint, never credentials."""
        try:
            yield
        except (ClientError, BotoCoreError) as exc:
            raise self._storage_error(exc, action, key, denied_hint) from exc

    def _storage_error(
        self,
        exc: ClientError | BotoCoreError,
        action: str,
        key: str | None = None,
        denied_hint: str = _CREDENTIALS_HINT,
    ) -> StorageError:
        """`action` completes "Could not ...", e.g. "write 'exports/1/a.csv'"."""
        where = f"bucket {self.bucket!r} at {self._endpoint}"
        if isinstance(exc, ClientError):
            code = _error_code(exc)
            if code == "NoSuchBucket":
                return StorageError(
                    f"Could not {action}: bucket {self.bucket!r} does not exist at {self._endpoint}.",
                    hint=f"Check the bucket name in EXPORT_STORAGE_URL, or create it. {_ENDPOINT_HINT}",
                )
            if code in ("NoSuchKey", "404") and key is not None:
                return StorageError(f"No object {key!r} in {self.url}.")
            if code in _DENIED_CODES:
                return StorageError(f"Could not {action} in {where}: denied ({code}).", hint=denied_hint)
            message = f"{code} {exc.response.get('Error', {}).get('Message', '')}".strip().rstrip(".")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            failed = status >= 500
            hint = "The S3 service failed; try again later." if failed else None
            return StorageError(f"Could not {action} in {where}: {message}.", hint=hint, retryable=failed)
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return StorageError(f"Could not {action} in {where}: no AWS credentials.", hint=_CREDENTIALS_HINT)
        if isinstance(exc, EndpointConnectionError | ConnectTimeoutError | ReadTimeoutError):
            return StorageError(
                f"Could not {action} in bucket {self.bucket!r}: S3 endpoint {self._endpoint} is unreachable.",
                hint=_ENDPOINT_HINT,
                retryable=True,
            )
        return StorageError(
            f"Could not {action} in {where}: {str(exc).rstrip('.')}.",
            hint=_ENDPOINT_HINT,
            retryable=isinstance(exc, ConnectionClosedError),  # reset mid-request; a TLS or proxy error is not
        )

    def open_writer(
        self, key: str, *, content_type: str, tags: Mapping[str, str] | None = None
    ) -> ObjectWriter:
        return _S3Writer(self, key, content_type=content_type, tags=tags)

    def put_bytes(
        self, key: str, data: bytes, *, content_type: str, tags: Mapping[str, str] | None = None
    ) -> None:
        full_key = self._full(key)
        with self._s3_errors(f"write {key!r}", key):
            self._client.put_object(
                Bucket=self.bucket, Key=full_key, Body=data, ContentType=content_type, **_tagging(tags)
            )

    def read_bytes(self, key: str) -> bytes:
        full_key = self._full(key)
        with self._s3_errors(f"read {key!r}", key):
            return self._client.get_object(Bucket=self.bucket, Key=full_key)["Body"].read()

    def open_reader(self, key: str) -> BinaryIO:
        """A botocore StreamingBody: file-like enough (read, iter_chunks, close) for our readers."""
        full_key = self._full(key)
        with self._s3_errors(f"read {key!r}", key):
            return cast(BinaryIO, self._client.get_object(Bucket=self.bucket, Key=full_key)["Body"])

    def exists(self, key: str) -> bool:
        full_key = self._full(key)
        with self._s3_errors(f"look up {key!r}"):
            try:
                self._client.head_object(Bucket=self.bucket, Key=full_key)
            except ClientError as exc:
                if _error_code(exc) in ("404", "NoSuchKey"):
                    return False
                raise
        return True

    def list_keys(self, prefix: str) -> list[str]:
        full_prefix = self._full_prefix(prefix)
        with self._s3_errors(f"list {prefix!r}"):
            return sorted(self._relative(obj["Key"]) for obj in self._objects(full_prefix))

    def _objects(self, full_prefix: str) -> Iterator[dict]:
        pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full_prefix)
        for page in pages:
            yield from page.get("Contents", [])

    def delete_prefix(self, prefix: str, *, keep: Collection[str] = ()) -> int:
        """Abort every unfinished upload under `prefix` and delete its objects but the keys in `keep`."""
        full_prefix = self._full_prefix(prefix)
        kept = {self._full(key) for key in keep}
        deleted = 0
        with self._s3_errors(f"delete {prefix!r}"):
            # Uploads first: one completing meanwhile becomes an object, which the listing below sees.
            uploads = self._client.get_paginator("list_multipart_uploads")
            for page in uploads.paginate(Bucket=self.bucket, Prefix=full_prefix):
                for upload in page.get("Uploads", []):
                    self._client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
            batch: list[dict[str, str]] = []
            for obj in self._objects(full_prefix):
                if obj["Key"] in kept:
                    continue
                batch.append({"Key": obj["Key"]})
                if len(batch) == 1000:  # the most delete_objects takes at once
                    deleted += self._delete_batch(batch)
                    batch = []
            if batch:
                deleted += self._delete_batch(batch)
        return deleted

    def delete_keys(self, keys: list[str]) -> None:
        """Delete exactly these objects, 1,000 per request; a missing one is no error."""
        with self._s3_errors(f"delete {len(keys)} objects"):
            for start in range(0, len(keys), 1000):
                self._delete_batch([{"Key": self._full(key)} for key in keys[start:start + 1000]])

    def _delete_batch(self, batch: list[dict[str, str]]) -> int:
        response = self._client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        if errors := response.get("Errors"):
            first = errors[0]
            raise StorageError(
                f"Could not delete {len(errors)} objects in {self.url}, e.g. {first.get('Key')!r}: "
                f"{first.get('Code')} {first.get('Message', '')}".strip().rstrip(".") + ".",
                hint="Check that the credentials may delete objects (s3:DeleteObject).",
                retryable=all(error.get("Code") in _RETRYABLE_CODES for error in errors),
            )
        return len(batch)

    def download_url(self, key: str, *, expires_at: datetime, filename: str | None = None) -> str:
        """Presigned GET valid until `expires_at` (naive means UTC), within SigV4's 1 s .. 7 days; with
        `filename`, S3 answers with `Content-Disposition: attachment; filename="…"`."""
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        # Rounded down, so the URL never outlives what it points to.
        seconds = int((expires_at - datetime.now(UTC)).total_seconds())
        expires_in = min(max(seconds, 1), MAX_PRESIGN_SECONDS)
        params = {"Bucket": self.bucket, "Key": self._full(key)}
        if filename:
            params["ResponseContentDisposition"] = content_disposition(filename)
        with self._s3_errors(f"sign a download URL for {key!r}"):
            return self._client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_in)

    def ensure_lifecycle(self, ttl_hours: int) -> None:
        """Merge our expiry rule into the bucket's lifecycle configuration, keeping every other rule.

        With it S3 deletes expired exports and abandoned multipart uploads even if our own cleanup
        never runs. put_bucket_lifecycle_configuration replaces the whole configuration, hence
        read-merge-write; concurrent callers race harmlessly since they all write the same rule.
        """
        if ttl_hours < 1:
            raise ValueError("ttl_hours must be at least 1")
        ours = {
            "ID": LIFECYCLE_RULE_ID,
            "Filter": {"Prefix": self._full_prefix("")},
            "Status": "Enabled",
            "Expiration": {"Days": math.ceil(ttl_hours / 24)},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
        }
        denied_hint = (
            "Grant s3:GetLifecycleConfiguration and s3:PutLifecycleConfiguration on the bucket "
            "(or check the AWS credentials)."
        )
        with self._s3_errors("configure the bucket lifecycle", denied_hint=denied_hint):
            try:
                current = self._client.get_bucket_lifecycle_configuration(Bucket=self.bucket)
            except ClientError as exc:
                if _error_code(exc) != "NoSuchLifecycleConfiguration":
                    raise
                current = {}
            rules = current.get("Rules", [])
            if ours in rules:
                return
            merged = [rule for rule in rules if rule.get("ID") != LIFECYCLE_RULE_ID] + [ours]
            # Part of the configuration too; omitting it would reset it to the default.
            keep = {k: current[k] for k in ("TransitionDefaultMinimumObjectSize",) if k in current}
            self._client.put_bucket_lifecycle_configuration(
                Bucket=self.bucket, LifecycleConfiguration={"Rules": merged}, **keep
            )


class _S3Writer:
    """Streams one object, holding at most one part in memory whatever the chunk sizes.

    The multipart upload starts only once a full part exists, so an object smaller than a part is a
    single put_object.
    """

    def __init__(self, storage: S3Storage, key: str, *, content_type: str, tags: Mapping[str, str] | None):
        self._storage = storage
        self._client = storage._client
        self._key = key
        self._full_key = storage._full(key)
        self._content_type = content_type
        self._tags = tags
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, str | int]] = []
        self._closed = False

    def write(self, data: bytes | memoryview) -> None:
        if self._closed:
            raise ValueError("write to a committed or aborted writer")
        view = memoryview(data).cast("B")
        part_size = self._storage.part_size
        while view:
            room = part_size - len(self._buffer)
            self._buffer += view[:room]
            view = view[room:]
            if len(self._buffer) == part_size:
                self._upload_part()

    def _upload_part(self) -> None:
        bucket = self._storage.bucket
        with self._storage._s3_errors(f"write {self._key!r}"):
            if self._upload_id is None:
                self._upload_id = self._client.create_multipart_upload(
                    Bucket=bucket, Key=self._full_key, ContentType=self._content_type, **_tagging(self._tags)
                )["UploadId"]
            number = len(self._parts) + 1
            response = self._client.upload_part(
                Bucket=bucket,
                Key=self._full_key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=self._buffer,
            )
        self._parts.append({"PartNumber": number, "ETag": response["ETag"]})
        self._buffer = bytearray()

    def commit(self) -> None:
        if self._closed:
            raise ValueError("commit of a committed or aborted writer")
        if self._upload_id is None:
            data = bytes(self._buffer)
            self._storage.put_bytes(self._key, data, content_type=self._content_type, tags=self._tags)
        else:
            if self._buffer:
                self._upload_part()
            with self._storage._s3_errors(f"write {self._key!r}"):
                self._client.complete_multipart_upload(
                    Bucket=self._storage.bucket,
                    Key=self._full_key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts},
                )
        self._buffer = bytearray()
        self._closed = True

    def abort(self) -> None:
        """Best effort: it runs while handling another failure, which must not be masked.

        An upload we fail to abort is still removed by the lifecycle rule's AbortIncompleteMultipartUpload.
        """
        if self._closed:
            return
        self._closed = True
        self._buffer = bytearray()
        if self._upload_id is None:
            return
        try:
            self._client.abort_multipart_upload(
                Bucket=self._storage.bucket, Key=self._full_key, UploadId=self._upload_id
            )
        except (ClientError, BotoCoreError) as exc:
            error = self._storage._storage_error(exc, f"abort the upload of {self._key!r}")
            log.warning("%s", error)
