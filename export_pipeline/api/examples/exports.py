"""Examples of exports, events, persons, groups, cohorts, recordings, the caller and Service Ping."""

CURRENT_USER = {"user": "alice", "email": "alice@example.com"}

_EXPORT_ID = "exp_20261102091500_574419cb52"
_EXPORT_URL = f"/api/v1/projects/1/exports/{_EXPORT_ID}"
_FILES = f"https://exports.example.com{_EXPORT_URL}/files"

EXPORT_CREATE = {"format": "csv", "compression": "gzip", "date_from": "2026-10-01", "date_to": "2026-10-31",
                 "events": ["$pageview", "signed_up"], "notify_email": "alice@example.com"}

EXPORT_QUEUED = {
    "export_id": _EXPORT_ID, "id": _EXPORT_ID, "project_id": 1, "resource": "events", "format": "csv",
    "compression": "gzip", "date_from": "2026-10-01T00:00:00Z", "date_to": "2026-11-01T00:00:00Z",
    "events": ["$pageview", "signed_up"], "target_id": None, "width": None, "properties": None, "cohort_id": None,
    "group_type": None, "distinct_id": None, "person_id": None, "min_duration": None, "requested_by": "alice",
    "status": "queued", "row_count": 0, "row_total": None, "byte_count": 0, "files": [], "manifest_url": None,
    "created_at": "2026-11-02T09:15:00.429011Z", "started_at": None, "finished_at": None, "expires_at": None,
    "error": None, "notification": {"email": "alice@example.com", "sent_at": None, "error": None},
    "url": _EXPORT_URL, "hint": None,
}

EXPORT_SUCCEEDED = {
    **EXPORT_QUEUED, "status": "succeeded", "row_count": 1_250_000, "row_total": 1_250_000, "byte_count": 48_213_977,
    "files": [{"name": "part-00000.csv.gz", "download_name": f"1-{_EXPORT_ID}-events-part-00000.csv.gz",
               "rows": 1_250_000, "bytes": 48_213_977,
               "sha256": "cb3223662843e329ee2abd78f80df06693109346c25ced0ee9e15eea3b477954",
               "url": f"{_FILES}/part-00000.csv.gz"}],
    "manifest_url": f"{_FILES}/manifest.json", "started_at": "2026-11-02T09:15:01.541554Z",
    "finished_at": "2026-11-02T09:15:42.659385Z", "expires_at": "2026-11-09T09:15:42.659385Z",
    "notification": {"email": "alice@example.com", "sent_at": "2026-11-02T09:15:43.164550Z", "error": None},
}

EXPORT_CANCELED = {**EXPORT_QUEUED, "status": "canceled", "finished_at": "2026-11-02T09:16:10.002311Z"}

EXPORT_PAGE = {"data": [EXPORT_SUCCEEDED], "next_cursor": "eyJjcmVhdGVkX2F0IjoiMjAyNi0xMS0wMlQwOToxNTowMC40MjkwMTEr"
                                                          "MDA6MDAiLCJpZCI6ImV4cF8yMDI2MTEwMjA5MTUwMF81NzQ0MTljYjUyIn0"}

EVENT_PAGE = {"data": [{
    "project_id": 1, "uuid": "7a85c406-5f1a-4d55-80db-2acdb3cda147", "event": "$pageview",
    "timestamp": "2026-10-01T00:02:48.323219Z", "distinct_id": "user276@example.com",
    "person_id": "834bd4e2-fe27-476d-906c-92c30b3497d4", "created_at": "2026-10-01T00:02:49.133282Z",
    "properties": {"$current_url": "https://app.example.com/pricing", "$browser": "Chrome", "$os": "Android",
                   "$session_id": "f76249dc6444b6c8", "plan": "startup", "$groups": {"organization": "org-6"}},
}], "next_cursor": "eyJhc19vZiI6IjIwMjYtMTEtMDJUMDk6MTU6MDArMDA6MDAiLCJ0cyI6IjIwMjYtMTAtMDFUMDA6MDI6NDguMzIzMjE5KzAw"
                   "OjAwIiwidXVpZCI6IjdhODVjNDA2LTVmMWEtNGQ1NS04MGRiLTJhY2RiM2NkYTE0NyJ9"}

PERSON = {"id": "8833eb0c-dc8f-473d-8005-1906eb1abaf1", "created_at": "2026-07-03T18:55:47.952982Z",
          "is_identified": True, "version": 3, "distinct_ids": ["user1186@example.com", "device-3f2a91"],
          "properties": {"email": "user1186@example.com", "name": "Ana Müller", "plan": "enterprise", "visits": 18}}

PERSON_PAGE = {"data": [PERSON], "next_cursor": "eyJhc19vZiI6IjIwMjYtMTEtMDJUMDk6MTU6MDArMDA6MDAiLCJpZCI6Ijg4MzNlYjBjL"
                                                "WRjOGYtNDczZC04MDA1LTE5MDZlYjFhYmFmMSJ9"}

GROUP_PAGE = {"data": [{"key": "org-6", "group_type": "organization", "group_type_index": 0,
                        "created_at": "2026-05-11T22:48:18.655852Z",
                        "properties": {"name": "Acme Ltd", "employees": 702, "industry": "retail"}}],
              "next_cursor": None}

COHORT_CREATE = {"name": "Engaged enterprise users", "kind": "dynamic", "definition": {"match": "any", "filters": [
    {"type": "property", "key": "plan", "operator": "exact", "value": "enterprise"},
    {"type": "behavioral", "event": "$pageview", "min_count": 5, "days": 30}]}}

COHORT = {"id": 2, **COHORT_CREATE, "person_count": 284, "created_by": "alice",
          "created_at": "2026-11-02T09:20:08.590725Z", "updated_at": "2026-11-02T09:20:08.590725Z"}

COHORT_PAGE = {"data": [COHORT], "next_cursor": None}

COHORT_UPDATE = {"name": "Engaged enterprise users (EU)"}

STATIC_COHORT = {"id": 1, "name": "Hand-picked customers", "kind": "static", "definition": None, "person_count": 3,
                 "created_by": "alice", "created_at": "2026-11-02T09:18:00.588155Z",
                 "updated_at": "2026-11-02T09:25:41.120334Z"}

COHORT_CSV = ("person_id\n8833eb0c-dc8f-473d-8005-1906eb1abaf1\n2a0598fe-c5a4-439e-8014-cb68edd31c08\n"
              "834bd4e2-fe27-476d-906c-92c30b3497d4\n")

RECORDING = {"session_id": "0117b85b69e1b108", "distinct_id": "user638@example.com",
             "person_id": "2a0598fe-c5a4-439e-8014-cb68edd31c08", "start_time": "2026-09-03T16:33:55.770000Z",
             "end_time": "2026-09-03T16:34:55.770000Z", "duration_seconds": 60.0,
             "first_url": "https://app.example.com/pricing", "click_count": 19, "keypress_count": 9,
             "mouse_activity_count": 83, "active_seconds": 36.0, "console_log_count": 0, "console_warn_count": 1,
             "console_error_count": 0, "size": 25462, "event_count": 114, "person_properties": {"plan": "scale"}}

RECORDING_PAGE = {"data": [RECORDING], "next_cursor": None}

RECORDING_FILE = {"version": "2023-04-28", "data": {
    "id": "0117b85b69e1b108",
    "person": {"uuid": "2a0598fe-c5a4-439e-8014-cb68edd31c08", "distinct_ids": ["user638@example.com"],
               "properties": {"plan": "scale"}},
    "snapshots": [
        {"type": 4, "data": {"href": "https://app.example.com/pricing", "width": 1440, "height": 900},
         "timestamp": 1788453235770, "windowId": "0192f1c4-4b7e-7c2a-9d1e-3f6a8b2c1d40"},
        {"type": 3, "data": {"source": 2, "type": 2, "id": 42, "x": 512, "y": 300},
         "timestamp": 1788453237100, "windowId": "0192f1c4-4b7e-7c2a-9d1e-3f6a8b2c1d40"},
    ],
}}

SERVICE_PING = {"recorded_at": "2026-11-02T00:00:00.000000Z", "version": "0.1.0",
                "counts": {"exports_requested": 412},
                "counts_monthly": {"exports_requested": 37, "exports_succeeded": 35, "exports_failed": 2,
                                   "rows_exported": 48_210_775, "bytes_exported": 2_093_112_084,
                                   "api_requests": 5_120, "api_unique_users": 9},
                "counts_weekly": {"exports_requested": 8}}
