"""A recording in PostHog's export file format, which PostHog's file playback imports:
`{"version": "2023-04-28", "data": {"id", "person", "snapshots": [rrwebEvent + "windowId", ...]}}`,
produced as a stream of byte pieces, one stored line at a time."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator

from export_pipeline.recordings.blobs import RecordingBlobs

FORMAT_VERSION = "2023-04-28"


_DECODER = json.JSONDecoder()


def snapshot(line: bytes) -> bytes:
    """`[windowId, event]` as the event object with its `windowId` (last, as `{**event, "windowId": …}`).

    Only the window id is decoded; the event's stored text is kept and the key appended to it. Parsing and
    re-encoding every event was most of a recordings export's CPU (measured on 200 seeded recordings: 6.1 s
    of a 13.3 s profiled export). An event whose text mentions `windowId` takes the full parse, so a key it
    already has is replaced rather than repeated."""
    text = line.decode().strip()
    if text.startswith("[") and text.endswith("]") and '"windowId"' not in text:
        window, end = _DECODER.raw_decode(text, _skip_space(text, 1))
        rest = text[end:-1].strip()
        if isinstance(window, str) and rest.startswith(","):
            event = rest[1:].strip()
            if event.startswith("{") and event.endswith("}"):
                key = _window_key(window)
                body = event[1:-1].strip()
                return (f"{{{body},{key}" if body else f"{{{key}").encode()
    window, event = json.loads(text)
    return json.dumps({**event, "windowId": window}, ensure_ascii=False, separators=(",", ":")).encode()


@functools.lru_cache(maxsize=64)  # a recording has a window or two: encode each once
def _window_key(window: str) -> str:
    return f'"windowId":{json.dumps(window, ensure_ascii=False)}}}'


def _skip_space(text: str, index: int) -> int:
    while text[index] in " \t\r\n":
        index += 1
    return index


def recording_document(blobs: RecordingBlobs, project_id: int, session_id: str, person: dict | None) -> Iterator[bytes]:
    head = {"version": FORMAT_VERSION, "data": {"id": session_id, "person": person}}
    # The head without its two closing braces, then the snapshots array, then the braces.
    yield json.dumps(head, ensure_ascii=False, separators=(",", ":")).encode()[:-2] + b',"snapshots":['
    first = True
    for line in blobs.lines(project_id, session_id):
        yield (b"" if first else b",\n") + snapshot(line)
        first = False
    yield b"]}}\n"
