"""Examples of batch exports: a destination, its interval runs and a backfill."""

BATCH_EXPORT_CREATE = {"url": "s3://customer-bucket/events", "endpoint_url": "https://minio.example.com",
                       "credentials_ref": "ACME_S3_CREDENTIALS", "start_at": "2026-10-01", "interval": "day",
                       "timezone": "Europe/Berlin", "format": "parquet", "key_template": "{model}/{year}/{month}/{day}"}

DESTINATION = {
    "id": "be_58640d24ae43", "project_id": 1, "name": "events to s3://customer-bucket/events", "model": "events",
    "url": "s3://customer-bucket/events", "endpoint_url": "https://minio.example.com",
    "credentials_ref": "ACME_S3_CREDENTIALS", "key_template": "{model}/{year}/{month}/{day}", "format": "parquet",
    "compression": "zstd", "file_size_bytes": 268435456, "split_by_event": False, "interval": "day",
    "timezone": "Europe/Berlin", "start_at": "2026-09-30T22:00:00Z", "settle_seconds": 900, "max_failures": 3,
    "paused": False, "paused_reason": None, "consecutive_failures": 0, "created_by": "alice", "notify_email": None,
    "slack_workspace": None, "slack_channel": None, "created_at": "2026-11-02T10:02:24.249624Z",
}
PAUSED_DESTINATION = {**DESTINATION, "paused": True, "paused_reason": "Paused by alice."}
DESTINATION_LIST = {"data": [DESTINATION]}

RUN_LIST = {"data": [
    {"data_interval_start": "2026-09-30T22:00:00Z", "data_interval_end": "2026-10-01T22:00:00Z", "state": "succeeded",
     "rows": 182_344, "bytes": 9_871_203, "files": 1, "attempts": 1,
     "manifest_key": "events/2026/10/01/20260930T220000Z-20261001T220000Z/manifest.json", "error": None,
     "run_id": "6c1f0a2e-93d4-4b8e-a1c7-55e2d0b9f3a1", "started_at": "2026-10-01T22:15:02.118000Z",
     "finished_at": "2026-10-01T22:15:19.604000Z"},
    {"data_interval_start": "2026-10-01T22:00:00Z", "data_interval_end": "2026-10-02T22:00:00Z", "state": "failed",
     "rows": 0, "bytes": 0, "files": 0, "attempts": 3, "manifest_key": None,
     "error": "S3 refused the upload: AccessDenied. Check the keys in ACME_S3_CREDENTIALS.",
     "run_id": "0b7e9d44-1f2c-4a6b-8e3d-7c5a9f1e2d60", "started_at": "2026-10-02T22:15:01.930000Z",
     "finished_at": "2026-10-02T22:16:44.271000Z"},
]}

BACKFILL_CREATE = {"start": "2026-10-01", "end": "2026-10-04"}
BACKFILL = {"destination_id": "be_58640d24ae43", "backfill_id": "rjkfxbth",
            "partitions": ["be_58640d24ae43|2026-09-30-22:00", "be_58640d24ae43|2026-10-01-22:00"],
            "skipped_empty": 1}
