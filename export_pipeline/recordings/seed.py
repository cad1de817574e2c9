"""Deterministic, realistic recordings for a sample of the seeded sessions (the events' `$session_id`):
an rrweb stream per session (meta, full snapshot, then incremental mouse moves, clicks, scrolls, inputs and
console logs, sometimes a second window), stored as blocks, with its `session_replay_events` row computed
from the stream. Same seed, same recordings."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from datetime import datetime

from clickhouse_connect.driver.client import Client

from export_pipeline.clickhouse.schema import EventsTable
from export_pipeline.clock import as_utc
from export_pipeline.recordings.blobs import RecordingBlobs

BLOCK_EVENTS = 500
COLUMNS = ["project_id", "session_id", "distinct_id", "first_timestamp", "last_timestamp", "first_url", "click_count",
           "keypress_count", "mouse_activity_count", "active_milliseconds", "console_log_count", "console_warn_count",
           "console_error_count", "size", "event_count", "_timestamp"]


def _node(ids: Iterator[int], tag: str, children: list[dict] | None = None, **attributes: str) -> dict:
    return {"type": 2, "tagName": tag, "attributes": attributes, "childNodes": children or [], "id": next(ids)}


def _text(ids: Iterator[int], text: str) -> dict:
    return {"type": 3, "textContent": text, "id": next(ids)}


def full_snapshot(url: str, rng: random.Random) -> dict:
    ids = iter(range(1, 10_000))
    items = [_node(ids, "li", [_text(ids, f"Item {n} — «ünïcödé» \"quoted\"")]) for n in range(rng.randint(3, 12))]
    body = _node(ids, "body", [
        _node(ids, "h1", [_text(ids, "Dashboard")]),
        _node(ids, "ul", items, **{"class": "items"}),
        _node(ids, "input", type="text", name="search", placeholder="Search…"),
        _node(ids, "button", [_text(ids, "Save")], id="save"),
    ])
    html = _node(ids, "html", [_node(ids, "head", [_node(ids, "title", [_text(ids, url)])]), body])
    return {"type": 0, "childNodes": [{"type": 1, "name": "html", "publicId": "", "systemId": "", "id": next(ids)}, html],
            "id": next(ids)}


def rrweb_stream(session_id: str, url: str, start_ms: int, end_ms: int, seed: int) -> Iterator[tuple[str, dict]]:
    """(windowId, rrweb event) in time order."""
    rng = random.Random(f"{seed}:{session_id}")
    windows = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(1 + (rng.random() < 0.2))]
    t = start_ms
    for window in windows:
        yield window, {"type": 4, "data": {"href": url, "width": 1440, "height": 900}, "timestamp": t}
        yield window, {"type": 2, "data": {"node": full_snapshot(url, rng), "initialOffset": {"left": 0, "top": 0}},
                       "timestamp": t + 1}
    budget = rng.randint(50, 1500)
    step = max(1, (end_ms - start_ms) // budget)
    for _ in range(budget):
        t = min(end_ms, t + rng.randint(1, 2 * step))
        window = rng.choice(windows)
        kind = rng.random()
        if kind < 0.55:
            data = {"source": 1, "positions": [{"x": rng.randint(0, 1440), "y": rng.randint(0, 900), "id": 5,
                                                "timeOffset": -k * 16} for k in range(rng.randint(1, 6))]}
        elif kind < 0.7:
            data = {"source": 2, "type": 2, "id": rng.randint(5, 20), "x": rng.randint(0, 1440), "y": rng.randint(0, 900)}
        elif kind < 0.85:
            data = {"source": 3, "id": 1, "x": 0, "y": rng.randint(0, 5000)}
        elif kind < 0.95:
            data = {"source": 5, "text": rng.choice(["a", "ab", "abc 日本", 'say "hi"', "line\nbreak"]), "isChecked": False,
                    "id": 30}
        else:
            level = rng.choice(["log", "log", "warn", "error"])
            yield window, {"type": 6, "data": {"plugin": "rrweb/console@1", "payload": {
                "level": level, "payload": [json.dumps(f"{level}: something ✓")], "trace": []}}, "timestamp": t}
            continue
        yield window, {"type": 3, "data": data, "timestamp": t}


def metadata(events: list[tuple[str, dict]]) -> dict:
    """The session_replay_events counters of a stream."""
    counts = {"click_count": 0, "keypress_count": 0, "mouse_activity_count": 0, "console_log_count": 0,
              "console_warn_count": 0, "console_error_count": 0}
    for _, event in events:
        data = event.get("data", {})
        if event["type"] == 3:
            source = data.get("source")
            counts["click_count"] += source == 2
            counts["keypress_count"] += source == 5
            counts["mouse_activity_count"] += source in (1, 2)
        elif event["type"] == 6:
            counts[f"console_{data['payload']['level']}_count"] += 1
    return counts


def seed_recordings(client: Client, table: EventsTable, blobs: RecordingBlobs, *, project_id: int, sessions: int,
                    seed: int = 0) -> int:
    """Recordings for up to `sessions` of the project's seeded sessions (the first by id); returns how many."""
    c = table.col
    rows = client.query(
        f"SELECT JSONExtractString({c('properties')}, '$session_id') AS sid, any({c('distinct_id')}), "
        f"min({c('timestamp')}), max({c('timestamp')}), argMin(JSONExtractString({c('properties')}, '$current_url'), "
        f"{c('timestamp')}) FROM {table.qualified_name} WHERE {c('project_id')} = {{p:UInt64}} AND sid != '' "
        f"GROUP BY sid ORDER BY sid LIMIT {{n:UInt64}}", parameters={"p": project_id, "n": sessions}).result_rows
    for session_id, distinct_id, first, last, url in rows:
        store_recording(client, table, blobs, project_id=project_id, session_id=session_id, distinct_id=distinct_id,
                        url=url, start=first, end=max(last, first), seed=seed)
    return len(rows)


def store_recording(client: Client, table: EventsTable, blobs: RecordingBlobs, *, project_id: int, session_id: str,
                    distinct_id: str, url: str, start: datetime, end: datetime, seed: int) -> list[tuple[str, dict]]:
    """Generate, store as blocks and describe one session's recording; returns its events."""
    start, end = as_utc(start), as_utc(end)  # the driver may hand back naive UTC times
    start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000) + 60_000
    events = list(rrweb_stream(session_id, url, start_ms, end_ms, seed))
    size = 0
    for index in range(0, len(events), BLOCK_EVENTS):
        size += blobs.write_block(project_id, session_id, index // BLOCK_EVENTS, events[index:index + BLOCK_EVENTS]).uncompressed_bytes
    first_ms, last_ms = events[0][1]["timestamp"], events[-1][1]["timestamp"]
    row = {"project_id": project_id, "session_id": session_id, "distinct_id": distinct_id,
           "first_timestamp": datetime.fromtimestamp(first_ms / 1000, start.tzinfo),
           "last_timestamp": datetime.fromtimestamp(last_ms / 1000, start.tzinfo), "first_url": url,
           **metadata(events), "active_milliseconds": (last_ms - first_ms) * 6 // 10, "size": size,
           "event_count": len(events), "_timestamp": datetime.fromtimestamp(first_ms / 1000, start.tzinfo)}
    client.insert(table.tables.get("session_replay_events", "session_replay_events"), [[row[k] for k in COLUMNS]],
                  column_names=COLUMNS, database=table.database)
    return events
