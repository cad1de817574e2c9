"""Storage backends against real things: a temp folder, and a moto S3 server on loopback."""

from __future__ import annotations

import os
import random
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from botocore.client import BaseClient
from botocore.config import Config
from moto.server import ThreadedMotoServer

from export_pipeline.errors import StorageError
from export_pipeline.storage import LocalStorage, ObjectWriter, S3Storage, storage_from_url
from export_pipeline.storage.s3 import LIFECYCLE_RULE_ID
from export_pipeline.storage.s3_client import s3_client

MIB = 1024 * 1024
PART = 5 * MIB


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def write_in_uneven_chunks(
    writer: ObjectWriter, data: bytes, sizes: tuple[int, ...] = (1, 7, 65_536, 3 * MIB + 7, 777_777)
) -> None:
    """Writes bytes and memoryviews alternately, cycling through chunk sizes that straddle part borders."""
    view = memoryview(data)
    offset, i = 0, 0
    while offset < len(data):
        chunk = view[offset : offset + sizes[i % len(sizes)]]
        writer.write(chunk if i % 2 else bytes(chunk))
        offset += len(chunk)
        i += 1


# ------------------------------------------------------------------------------------------- local


@pytest.fixture
def local(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "root")


def all_files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_local_streamed_write_is_invisible_until_commit_then_exact(local: LocalStorage) -> None:
    key = "exports/12/exp_20261123_ab12/part-00000.ndjson.gz"
    data = payload(5 * MIB + 3)
    writer = local.open_writer(key, content_type="application/gzip")
    write_in_uneven_chunks(writer, data)

    assert not local.exists(key)
    assert local.list_keys("") == []
    [temp] = all_files(local.root)
    assert temp.startswith("exports/12/exp_20261123_ab12/.part-00000.ndjson.gz.partial-")

    writer.commit()
    assert local.read_bytes(key) == data
    assert (local.root / key).read_bytes() == data
    assert all_files(local.root) == [key]
    assert local.list_keys("exports/") == [key]
    with local.open_reader(key) as reader:
        assert reader.read() == data
    with pytest.raises(ValueError):
        writer.write(b"more")


def test_local_abort_leaves_nothing(local: LocalStorage) -> None:
    key = "exports/1/x/part-00000.csv"
    writer = local.open_writer(key, content_type="text/csv")
    writer.write(b"a,b\n1,2\n")
    writer.abort()
    writer.abort()  # idempotent

    assert not local.exists(key)
    assert all_files(local.root) == []


def test_local_abort_after_commit_keeps_the_object(local: LocalStorage) -> None:
    writer = local.open_writer("a/b", content_type="text/plain")
    writer.write(b"kept")
    writer.commit()
    writer.abort()
    assert local.read_bytes("a/b") == b"kept"


def test_local_put_bytes_replaces_atomically(local: LocalStorage) -> None:
    local.put_bytes("exports/manifest.json", b"{}", content_type="application/json")
    local.put_bytes("exports/manifest.json", b'{"v": 2}', content_type="application/json")
    assert local.read_bytes("exports/manifest.json") == b'{"v": 2}'
    assert all_files(local.root) == ["exports/manifest.json"]


@pytest.mark.parametrize("key", ["../x", "/abs", "a/../../x", "a//b", "a/./b", "", "a/", "a/.."])
def test_local_keys_cannot_escape_the_root(local: LocalStorage, tmp_path: Path, key: str) -> None:
    with pytest.raises(StorageError):
        local.put_bytes(key, b"x", content_type="text/plain")
    with pytest.raises(StorageError):
        local.open_writer(key, content_type="text/plain")
    with pytest.raises(StorageError):
        local.read_bytes(key)
    with pytest.raises(StorageError):
        local.exists(key)
    assert all_files(tmp_path) == []


@pytest.mark.parametrize("prefix", ["../", "/", "a//", "..", "/abs/"])
def test_local_prefixes_cannot_escape_the_root(local: LocalStorage, tmp_path: Path, prefix: str) -> None:
    (tmp_path / "outside.txt").write_bytes(b"keep")
    with pytest.raises(StorageError):
        local.delete_prefix(prefix)
    with pytest.raises(StorageError):
        local.list_keys(prefix)
    assert (tmp_path / "outside.txt").read_bytes() == b"keep"


def test_local_read_missing_is_a_storage_error(local: LocalStorage) -> None:
    with pytest.raises(StorageError, match="No object 'nope/x'"):
        local.read_bytes("nope/x")


def test_local_delete_prefix_removes_exactly_that_prefix(local: LocalStorage) -> None:
    keys = [
        "exports/1/exp_a/part-00000.csv",
        "exports/1/exp_a/part-00001.csv",
        "exports/1/exp_b/manifest.json",
        "exports/10/exp_c/part-00000.csv",
        "exports/2/exp_d/part-00000.csv",
        "other.txt",
    ]
    for key in keys:
        local.put_bytes(key, key.encode(), content_type="text/plain")
    unfinished = local.open_writer("exports/1/exp_e/part-00000.csv", content_type="text/csv")
    unfinished.write(b"half")

    # A prefix names a folder: "exports/1" must not reach into "exports/10".
    assert local.list_keys("exports/1") == keys[:3]
    assert local.list_keys("exports/1/") == keys[:3]
    assert local.list_keys("exports/1/exp") == []

    assert local.delete_prefix("exports/1") == 3  # the unfinished temp file goes too, uncounted
    assert local.list_keys("") == keys[3:]
    assert all_files(local.root) == keys[3:]
    assert not (local.root / "exports" / "1").exists()
    assert (local.root / "exports" / "10" / "exp_c").is_dir()

    assert local.delete_prefix("exports/1/") == 0
    assert local.delete_prefix("") == 3
    assert local.root.is_dir()
    assert list(local.root.iterdir()) == []


def test_local_download_url_is_the_files_uri(local: LocalStorage) -> None:
    key = "exports/3/exp x/part-00000.csv"
    local.put_bytes(key, b"id\n1\n", content_type="text/csv")
    url = local.download_url(key, expires_at=datetime.now(UTC) + timedelta(hours=1))

    assert url == (local.root / key).as_uri()
    assert url.startswith("file:///")
    assert urllib.request.url2pathname(urlsplit(url).path) == str(local.root / key)
    with urllib.request.urlopen(url) as response:
        assert response.read() == b"id\n1\n"


def test_storage_from_url(tmp_path: Path) -> None:
    storage = storage_from_url(f"file://{tmp_path}/exports")
    assert isinstance(storage, LocalStorage)
    assert storage.root == tmp_path / "exports"
    assert storage.url == f"file://{tmp_path}/exports"

    s3 = storage_from_url("s3://my-bucket/some/prefix/")
    assert isinstance(s3, S3Storage)
    assert (s3.bucket, s3.prefix, s3.url) == ("my-bucket", "some/prefix", "s3://my-bucket/some/prefix")
    bare = storage_from_url("s3://my-bucket")
    # a bare bucket gets the `exports` prefix, so the lifecycle rule never covers the whole bucket
    assert (bare.bucket, bare.prefix, bare.url) == ("my-bucket", "exports", "s3://my-bucket/exports")

    for bad in ("file://relative/path", "ftp://host/x", "s3:///no-bucket", "/plain/path"):
        with pytest.raises(StorageError):
            storage_from_url(bad)


# ---------------------------------------------------------------------------------------------- S3


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    with pytest.MonkeyPatch.context() as env:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_REGION"):
            env.delenv(name, raising=False)
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        env.setenv("AWS_ENDPOINT_URL", endpoint)
        env.setenv("AWS_CONFIG_FILE", os.devnull)
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        yield endpoint
    server.stop()


@pytest.fixture
def client(moto_endpoint: str) -> BaseClient:
    # SigV4, as our default client uses: botocore would otherwise presign S3 URLs with SigV2.
    return boto3.client(
        "s3", endpoint_url=moto_endpoint, region_name="us-east-1", config=Config(signature_version="s3v4")
    )


@pytest.fixture
def bucket(client: BaseClient) -> str:
    name = f"test-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3(client: BaseClient, bucket: str) -> S3Storage:
    return S3Storage(bucket, "tenant-a", client=client, part_size=PART)


def count_calls(client: BaseClient, operation: str) -> list[dict]:
    """Records the API parameters of every `operation` call the client makes (botocore's event hook)."""
    calls: list[dict] = []
    client.meta.events.register(
        f"before-parameter-build.s3.{operation}", lambda params, **_: calls.append(dict(params))
    )
    return calls


def uploads(client: BaseClient, bucket: str) -> list[str]:
    return [u["Key"] for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


def object_keys(client: BaseClient, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", []))


def test_s3_streams_large_object_as_multipart(s3: S3Storage, client: BaseClient, bucket: str) -> None:
    key = "exports/12/exp_20261123_ab12/part-00000.ndjson.gz"
    full_key = f"tenant-a/{key}"
    data = payload(12 * MIB + 12_345, seed=1)
    puts = count_calls(client, "PutObject")
    writer = s3.open_writer(key, content_type="application/gzip", tags={"export_id": "exp_1", "org": "12"})

    write_in_uneven_chunks(writer, data[: 11 * MIB])
    # Full parts are uploaded while writing (memory stays bounded), but nothing is visible yet.
    [upload] = client.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert upload["Key"] == full_key
    parts = client.list_parts(Bucket=bucket, Key=full_key, UploadId=upload["UploadId"])["Parts"]
    assert [p["Size"] for p in parts] == [PART, PART]
    assert not s3.exists(key)

    write_in_uneven_chunks(writer, data[11 * MIB :], sizes=(999_999, 1))
    writer.commit()

    assert s3.read_bytes(key) == data
    head = client.head_object(Bucket=bucket, Key=full_key)
    assert head["ETag"].strip('"').endswith("-3")
    assert head["ContentLength"] == len(data)
    assert head["ContentType"] == "application/gzip"
    tags = client.get_object_tagging(Bucket=bucket, Key=full_key)["TagSet"]
    assert sorted((t["Key"], t["Value"]) for t in tags) == [("export_id", "exp_1"), ("org", "12")]
    assert uploads(client, bucket) == []
    assert puts == []
    assert s3.list_keys("exports/") == [key]
    body = s3.open_reader(key)
    assert b"".join(body.iter_chunks(1 * MIB)) == data
    body.close()


def test_s3_exactly_one_part_is_a_one_part_multipart(s3: S3Storage, client: BaseClient, bucket: str) -> None:
    data = payload(PART, seed=2)
    writer = s3.open_writer("exports/1/p", content_type="text/csv")
    writer.write(data)
    writer.commit()
    assert s3.read_bytes("exports/1/p") == data
    assert client.head_object(Bucket=bucket, Key="tenant-a/exports/1/p")["ETag"].strip('"').endswith("-1")


def test_s3_small_object_is_a_single_put(s3: S3Storage, client: BaseClient, bucket: str) -> None:
    creates = count_calls(client, "CreateMultipartUpload")
    puts = count_calls(client, "PutObject")
    data = payload(PART - 1, seed=3)
    tags = {"export_id": "exp 1=2+3", "kind": "data/part"}  # characters S3 allows in tags
    writer = s3.open_writer("exports/1/small.csv", content_type="text/csv", tags=tags)
    write_in_uneven_chunks(writer, data, sizes=(4096, 1, 1 * MIB))
    assert not s3.exists("exports/1/small.csv")
    writer.commit()

    assert creates == []
    assert len(puts) == 1
    assert puts[0]["Tagging"] == "export_id=exp+1%3D2%2B3&kind=data%2Fpart"
    assert s3.read_bytes("exports/1/small.csv") == data
    head = client.head_object(Bucket=bucket, Key="tenant-a/exports/1/small.csv")
    assert "-" not in head["ETag"]
    assert head["ContentType"] == "text/csv"
    tag_set = client.get_object_tagging(Bucket=bucket, Key="tenant-a/exports/1/small.csv")["TagSet"]
    assert {t["Key"]: t["Value"] for t in tag_set} == tags


def test_s3_empty_object_and_put_bytes(s3: S3Storage, client: BaseClient, bucket: str) -> None:
    s3.open_writer("exports/empty", content_type="text/plain").commit()
    s3.put_bytes("exports/m.json", b'{"a": 1}', content_type="application/json", tags={"t": "v"})
    assert s3.read_bytes("exports/empty") == b""
    assert s3.read_bytes("exports/m.json") == b'{"a": 1}'
    assert client.get_object_tagging(Bucket=bucket, Key="tenant-a/exports/m.json")["TagSet"] == [
        {"Key": "t", "Value": "v"}
    ]
    assert object_keys(client, bucket) == ["tenant-a/exports/empty", "tenant-a/exports/m.json"]


def test_s3_abort_leaves_no_object_and_no_upload(s3: S3Storage, client: BaseClient, bucket: str) -> None:
    writer = s3.open_writer("exports/1/big", content_type="text/csv")
    write_in_uneven_chunks(writer, payload(11 * MIB, seed=4))
    assert len(uploads(client, bucket)) == 1

    writer.abort()
    writer.abort()  # idempotent
    assert uploads(client, bucket) == []
    assert object_keys(client, bucket) == []
    assert not s3.exists("exports/1/big")
    with pytest.raises(ValueError):
        writer.write(b"x")
    with pytest.raises(ValueError):
        writer.commit()


def test_s3_abort_before_any_part_is_a_no_op(s3: S3Storage, client: BaseClient, bucket: str) -> None:
    writer = s3.open_writer("exports/1/small", content_type="text/csv")
    writer.write(b"not yet uploaded")
    writer.abort()
    assert uploads(client, bucket) == []
    assert object_keys(client, bucket) == []


def test_s3_keys_and_listing(s3: S3Storage, client: BaseClient, bucket: str) -> None:
    client.put_object(Bucket=bucket, Key="tenant-ab/exports/x", Body=b"not ours")
    for key in ("exports/2/b", "exports/10/a", "exports/1/c"):
        s3.put_bytes(key, key.encode(), content_type="text/plain")
    assert s3.list_keys("") == ["exports/1/c", "exports/10/a", "exports/2/b"]
    assert s3.list_keys("exports/1") == ["exports/1/c"]  # a folder: not "exports/10"
    assert s3.list_keys("exports/1/") == ["exports/1/c"]
    assert s3.list_keys("exports/1/c") == []
    assert s3.exists("exports/1/c")
    assert not s3.exists("exports/1/zzz")
    with pytest.raises(StorageError, match="No object 'exports/1/zzz'"):
        s3.read_bytes("exports/1/zzz")
    for bad in ("../x", "/abs", "a//b"):
        with pytest.raises(StorageError):
            s3.put_bytes(bad, b"x", content_type="text/plain")


def test_s3_without_prefix_keeps_keys_under_exports(client: BaseClient, bucket: str) -> None:
    storage = S3Storage(bucket, "", client=client)
    storage.put_bytes("1/a", b"a", content_type="text/plain")
    assert object_keys(client, bucket) == ["exports/1/a"]
    assert storage.list_keys("1/") == ["1/a"]


def test_s3_delete_prefix_removes_only_that_prefix(s3: S3Storage, client: BaseClient, bucket: str) -> None:
    keys = ("exports/1/exp_a/p0", "exports/1/exp_a/p1", "exports/1/exp_b/m", "exports/10/exp_c/p0", "other")
    for key in keys:
        s3.put_bytes(key, b"x", content_type="text/plain")
    client.put_object(Bucket=bucket, Key="tenant-b/exports/1/exp_a/p0", Body=b"other tenant")
    inside = client.create_multipart_upload(Bucket=bucket, Key="tenant-a/exports/1/exp_d/p0")
    outside = client.create_multipart_upload(Bucket=bucket, Key="tenant-a/exports/10/exp_e/p0")

    assert s3.delete_prefix("exports/1") == 3

    assert object_keys(client, bucket) == [
        "tenant-a/exports/10/exp_c/p0",
        "tenant-a/other",
        "tenant-b/exports/1/exp_a/p0",
    ]
    remaining = client.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert [u["UploadId"] for u in remaining] == [outside["UploadId"]]
    assert inside["UploadId"] != outside["UploadId"]
    assert s3.delete_prefix("exports/1/") == 0


def test_s3_delete_prefix_batches_over_1000(s3: S3Storage, client: BaseClient, bucket: str) -> None:
    for i in range(1003):  # ~8 s against moto, but the only way to cross delete_objects' limit
        client.put_object(Bucket=bucket, Key=f"tenant-a/exports/9/p{i:05d}")
    deletes = count_calls(client, "DeleteObjects")
    assert s3.delete_prefix("exports/9/") == 1003
    assert [len(call["Delete"]["Objects"]) for call in deletes] == [1000, 3]  # S3's limit per request
    assert object_keys(client, bucket) == []


def expires_param(url: str) -> int:
    return int(parse_qs(urlsplit(url).query)["X-Amz-Expires"][0])


def test_s3_presigned_url_downloads_exact_bytes(s3: S3Storage, moto_endpoint: str) -> None:
    data = payload(300_000, seed=5)
    s3.put_bytes("exports/1/exp_a/part-00000.csv", data, content_type="text/csv")
    in_an_hour = datetime.now(UTC) + timedelta(hours=1)
    url = s3.download_url("exports/1/exp_a/part-00000.csv", expires_at=in_an_hour)

    assert url.startswith(f"{moto_endpoint}/{s3.bucket}/tenant-a/exports/1/exp_a/part-00000.csv?")
    assert 3590 <= expires_param(url) <= 3600
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == data
        assert response.headers["Content-Disposition"] is None

    named = s3.download_url("exports/1/exp_a/part-00000.csv", expires_at=in_an_hour, filename="1-exp_a-events-part-00000.csv")
    with urllib.request.urlopen(named, timeout=10) as response:
        assert response.headers["Content-Disposition"] == 'attachment; filename="1-exp_a-events-part-00000.csv"'
        assert response.read() == data


def test_s3_presigned_url_expiry_is_clamped(s3: S3Storage) -> None:
    now = datetime.now(UTC)
    assert expires_param(s3.download_url("k", expires_at=now - timedelta(days=1))) == 1
    assert expires_param(s3.download_url("k", expires_at=now)) == 1
    assert expires_param(s3.download_url("k", expires_at=now + timedelta(days=30))) == 604800
    naive_utc = datetime.now(UTC).replace(tzinfo=None) + timedelta(hours=2)
    assert 7190 <= expires_param(s3.download_url("k", expires_at=naive_utc)) <= 7200


KEEP_LOGS = {
    "ID": "keep-logs",
    "Filter": {"Prefix": "logs/"},
    "Status": "Enabled",
    "Expiration": {"Days": 30},
}


def our_rule(prefix: str, days: int) -> dict:
    return {
        "ID": LIFECYCLE_RULE_ID,
        "Filter": {"Prefix": prefix},
        "Status": "Enabled",
        "Expiration": {"Days": days},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
    }


def lifecycle_rules(client: BaseClient, bucket: str) -> dict[str, dict]:
    return {r["ID"]: r for r in client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}


def test_s3_lifecycle_merges_with_existing_rules(s3: S3Storage, client: BaseClient, bucket: str) -> None:
    client.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [KEEP_LOGS]})
    keep_logs_as_stored = lifecycle_rules(client, bucket)["keep-logs"]
    writes = count_calls(client, "PutBucketLifecycleConfiguration")

    s3.ensure_lifecycle(168)
    rules = lifecycle_rules(client, bucket)
    assert set(rules) == {"keep-logs", LIFECYCLE_RULE_ID}
    assert rules[LIFECYCLE_RULE_ID] == our_rule("tenant-a/", 7)
    assert rules["keep-logs"] == keep_logs_as_stored
    assert rules["keep-logs"]["Expiration"] == {"Days": 30}
    assert len(writes) == 1

    s3.ensure_lifecycle(168)  # identical rule present: no write
    assert len(writes) == 1

    s3.ensure_lifecycle(48)
    rules = lifecycle_rules(client, bucket)
    assert set(rules) == {"keep-logs", LIFECYCLE_RULE_ID}
    assert rules[LIFECYCLE_RULE_ID] == our_rule("tenant-a/", 2)
    assert rules["keep-logs"] == keep_logs_as_stored
    assert len(writes) == 2

    s3.ensure_lifecycle(25)  # partial days round up
    assert lifecycle_rules(client, bucket)[LIFECYCLE_RULE_ID]["Expiration"] == {"Days": 2}
    s3.ensure_lifecycle(49)
    assert lifecycle_rules(client, bucket)[LIFECYCLE_RULE_ID]["Expiration"] == {"Days": 3}


def test_s3_lifecycle_on_bucket_without_configuration(client: BaseClient, bucket: str) -> None:
    S3Storage(bucket, "", client=client).ensure_lifecycle(1)
    rules = client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert rules == [our_rule("exports/", 1)]


def test_s3_missing_bucket_is_a_storage_error(client: BaseClient, moto_endpoint: str) -> None:
    storage = S3Storage("no-such-bucket-here", "p", client=client, part_size=PART)
    with pytest.raises(StorageError) as caught:
        storage.put_bytes("exports/a", b"x", content_type="text/plain")
    assert "'no-such-bucket-here'" in caught.value.message
    assert moto_endpoint in caught.value.message
    assert "EXPORT_STORAGE_URL" in (caught.value.hint or "")
    with pytest.raises(StorageError, match="no-such-bucket-here"):
        storage.ensure_lifecycle(24)

    writer = storage.open_writer("exports/big", content_type="text/csv")
    with pytest.raises(StorageError, match="does not exist"):
        writer.write(payload(PART))  # a full part starts the multipart upload, which fails
    writer.abort()  # after a failure: must not raise


def test_s3_storage_from_url_uses_the_environment(
    moto_endpoint: str, client: BaseClient, bucket: str
) -> None:
    storage = storage_from_url(f"s3://{bucket}/tenant-c")
    storage.put_bytes("exports/1/a", b"hello", content_type="text/plain")
    assert object_keys(client, bucket) == ["tenant-c/exports/1/a"]
    assert storage.read_bytes("exports/1/a") == b"hello"
    url = storage.download_url("exports/1/a", expires_at=datetime.now(UTC) + timedelta(days=1))
    assert url.startswith(f"{moto_endpoint}/{bucket}/tenant-c/exports/1/a?")  # path-style
    assert 86390 <= expires_param(url) <= 86400  # SigV4, which the default client must use
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == b"hello"


def test_s3_unreachable_endpoint_is_a_storage_error_without_secrets() -> None:
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY"
    client = boto3.client(
        "s3",
        endpoint_url="http://127.0.0.1:9",  # discard port: nothing listens
        region_name="us-east-1",
        aws_access_key_id="AKIATESTUNREACHABLE",
        aws_secret_access_key=secret,
        config=Config(connect_timeout=1, read_timeout=1, retries={"max_attempts": 1, "mode": "standard"}),
    )
    storage = S3Storage("exports-bucket", "p", client=client)
    started = time.monotonic()
    for attempt in (
        lambda: storage.put_bytes("exports/a", b"x", content_type="text/plain"),
        lambda: storage.list_keys("exports/"),
        lambda: storage.ensure_lifecycle(24),
        lambda: storage.delete_prefix("exports/"),
    ):
        with pytest.raises(StorageError) as caught:
            attempt()
        error = caught.value
        assert "http://127.0.0.1:9" in error.message
        assert "'exports-bucket'" in error.message
        assert "AWS_ENDPOINT_URL" in (error.hint or "")
        assert secret not in f"{error} {error.message} {error.hint} {error.details}"
    assert time.monotonic() - started < 10


def test_delete_keys_removes_exactly_those_keys(local: LocalStorage, s3: S3Storage) -> None:
    for storage in (local, s3):
        for key in ("a/1/part-00000.csv", "a/1/part-00001.csv", "a/1/manifest.json", "a/10/part-00000.csv"):
            storage.put_bytes(key, b"x", content_type="text/csv")
        storage.delete_keys(["a/1/part-00001.csv", "a/1/part-00000.csv", "a/1/missing.csv"])
        assert storage.list_keys("a") == ["a/1/manifest.json", "a/10/part-00000.csv"]


def test_the_s3_client_factory_takes_endpoint_credentials_and_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    keys = {"aws_access_key_id": "AKIAFACTORY", "aws_secret_access_key": "secret"}
    given = s3_client(endpoint_url="https://minio.example.com", credentials=keys, max_retries=2)
    assert (given.meta.region_name, given.meta.endpoint_url) == ("eu-west-1", "https://minio.example.com")
    assert given.meta.config.signature_version == "s3v4"
    assert given.meta.config.s3 == {"addressing_style": "path"}
    assert given.meta.config.retries == {"mode": "standard", "total_max_attempts": 3}
    signed = given.generate_presigned_url("get_object", Params={"Bucket": "b", "Key": "k"}, ExpiresIn=60)
    assert parse_qs(urlsplit(signed).query)["X-Amz-Credential"][0].startswith("AKIAFACTORY/")
    from_environment = s3_client()
    assert from_environment.meta.endpoint_url == "http://127.0.0.1:9"
    assert from_environment.meta.config.s3 == {"addressing_style": "path"}
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    aws = s3_client()
    assert aws.meta.endpoint_url == "https://s3.eu-west-1.amazonaws.com" and aws.meta.config.s3 is None


class _FailingS3(BaseHTTPRequestHandler):
    """Answers every request as its bucket (the first path segment) says: 503 SlowDown, 403 AccessDenied, a
    connection closed without an answer, or a delete_objects that failed for each key with the code after
    `delete-`."""

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        bucket = self.path.split("?")[0].split("/")[1]
        if bucket == "reset":
            self.close_connection = True
            return
        if bucket.startswith("delete-"):
            status, code = 200, bucket.removeprefix("delete-")
            body = (f"<?xml version='1.0'?><DeleteResult><Error><Key>p/k</Key><Code>{code}</Code>"
                    f"<Message>No.</Message></Error></DeleteResult>").encode()
        else:
            status, code = {"slowdown": (503, "SlowDown"), "denied": (403, "AccessDenied")}[bucket]
            body = f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>No.</Message></Error>".encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def failing_s3() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FailingS3)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()
    server.server_close()


def test_s3_errors_say_whether_another_try_may_succeed(failing_s3: str, client: BaseClient) -> None:
    keys = {"aws_access_key_id": "AKIATEST", "aws_secret_access_key": "secret"}
    failing = s3_client(endpoint_url=failing_s3, credentials=keys, max_retries=0)
    outcomes = {}
    for bucket in ("slowdown", "denied", "reset"):
        with pytest.raises(StorageError) as caught:
            S3Storage(bucket, "p", client=failing).put_bytes("k", b"x", content_type="text/plain")
        outcomes[bucket] = (caught.value.retryable, caught.value.message)
    for code, retryable in (("InternalError", True), ("AccessDenied", False)):
        with pytest.raises(StorageError) as caught:
            S3Storage(f"delete-{code}", "p", client=failing).delete_keys(["k"])
        assert caught.value.retryable is retryable
        assert caught.value.message == f"Could not delete 1 objects in s3://delete-{code}/p, e.g. 'p/k': {code} No."
    missing = S3Storage("no-such-bucket-here", "p", client=client)
    with pytest.raises(StorageError) as caught:
        missing.put_bytes("k", b"x", content_type="text/plain")
    assert caught.value.retryable is False
    assert outcomes == {
        "slowdown": (True, f"Could not write 'k' in bucket 'slowdown' at {failing_s3}: SlowDown No."),
        "denied": (False, f"Could not write 'k' in bucket 'denied' at {failing_s3}: denied (AccessDenied)."),
        "reset": (True, f"Could not write 'k' in bucket 'reset' at {failing_s3}: Connection was closed before we "
                        f'received a valid response from endpoint URL: "{failing_s3}/reset/p/k".'),
    }
