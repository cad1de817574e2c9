"""A stored file as an HTTP answer: streamed, with `Content-Length`, one byte `Range` (RFC 9110 §14) and `HEAD`.

A download that broke can resume where it stopped, and a client can read part of a file (a Parquet footer)
without fetching it whole. One range per request: a list of ranges gets the whole file (allowed by the RFC,
and what no download client asks for), as does a `Range` we cannot read or one sent with `If-Range` (we give no
validator it could match).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from export_pipeline.api.errors import error_body

CHUNK_BYTES = 1 << 20
_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)", re.IGNORECASE)


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive, as in Content-Range

    @property
    def length(self) -> int:
        return self.end - self.start + 1


class RangeNotSatisfiable(Exception):
    """The range starts past the end of the file."""


def requested_range(request: Request, size: int) -> ByteRange | None:
    """The one range to answer with 206, or None for the whole file; RangeNotSatisfiable when it starts past
    the end (a `bytes=-0` suffix included)."""
    header = request.headers.get("range")
    if header is None or "if-range" in request.headers:
        return None
    found = _RANGE.fullmatch(header.strip())
    if found is None:  # another unit, several ranges, or garbled: ignored, as the RFC allows
        return None
    first, last = found.groups()
    if not first:
        if not last:
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable
        return ByteRange(max(size - suffix, 0), size - 1)
    start = int(first)
    if last and int(last) < start:
        return None  # not a valid range: ignored
    if start >= size:
        raise RangeNotSatisfiable
    return ByteRange(start, min(int(last), size - 1) if last else size - 1)


def file_response(request: Request, open_file: BinaryIO, *, media_type: str,
                  headers: dict[str, str]) -> Response:
    """`open_file` (seekable; this takes it over and closes it) as the whole file or the requested range; for
    HEAD only the headers. `headers` are added to every answer but a 416."""
    size = open_file.seek(0, io.SEEK_END)
    try:
        byte_range = requested_range(request, size)
    except RangeNotSatisfiable:
        open_file.close()
        return not_satisfiable(size)
    answer = {**headers, "Accept-Ranges": "bytes"}
    if byte_range is None:
        status, start, length = 200, 0, size
    else:
        status, start, length = 206, byte_range.start, byte_range.length
        answer["Content-Range"] = f"bytes {byte_range.start}-{byte_range.end}/{size}"
    answer["Content-Length"] = str(length)
    if request.method == "HEAD":
        open_file.close()
        return Response(status_code=status, media_type=media_type, headers=answer)
    return StreamingResponse(_chunks(open_file, start, length), status_code=status, media_type=media_type,
                             headers=answer)


def not_satisfiable(size: int) -> JSONResponse:
    """416, saying how long the file is (`Content-Range: bytes */size`), in the one error shape."""
    body = error_body("range_not_satisfiable", f"The requested range starts past the end of the file ({size:,} "
                      "bytes).", {"size": size}, hint="Ask for bytes 0 to the size minus 1, or send no Range "
                      "header for the whole file.")
    return JSONResponse(body, status_code=416, headers={"Content-Range": f"bytes */{size}"})


def _chunks(open_file: BinaryIO, start: int, length: int) -> Iterator[bytes]:
    """At most CHUNK_BYTES in memory at once; the file closes when the answer ends or the client goes."""
    with open_file:
        open_file.seek(start)
        while length > 0:
            chunk = open_file.read(min(CHUNK_BYTES, length))
            if not chunk:  # shorter than it was a moment ago: end here rather than send padding
                return
            length -= len(chunk)
            yield chunk
