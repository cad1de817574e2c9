"""A recording in PostHog's export file format, which PostHog's file playback imports:
`{"version": "2023-04-28", "data": {"id", "person", "snapshots": [rrwebEvent + "windowId", ...]}}`,
produced as a stream of byte pieces, one stored line at a time."""

from __future__ import annotations

import json
from collections.abc import Iterator

from export_pipeline.recordings.blobs import RecordingBlobs

FORMAT_VERSION = "2023-04-28"


def snapshot(line: bytes) -> bytes:
    """`[windowId, event]` as the event object with its `windowId`."""
    window, event = json.loads(line)
    return json.dumps({**event, "windowId": window}, ensure_ascii=False, separators=(",", ":")).encode()


def recording_document(blobs: RecordingBlobs, project_id: int, session_id: str, person: dict | None) -> Iterator[bytes]:
    head = {"version": FORMAT_VERSION, "data": {"id": session_id, "person": person}}
    # The head without its two closing braces, then the snapshots array, then the braces.
    yield json.dumps(head, ensure_ascii=False, separators=(",", ":")).encode()[:-2] + b',"snapshots":['
    first = True
    for line in blobs.lines(project_id, session_id):
        yield (b"" if first else b",\n") + snapshot(line)
        first = False
    yield b"]}}\n"
