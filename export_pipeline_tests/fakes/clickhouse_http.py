"""ClickHouse's HTTP interface on loopback, served by the test session's embedded engine (chDB).

No ClickHouse server package reaches the test machines, yet production talks to ClickHouse over HTTP. This
server speaks the part of the protocol clickhouse-connect uses, so the production client path (settings and
`param_*` values in the URL, the query in the body or the `query` parameter, `database`, `default_format`,
compressed requests and responses, streamed results, errors as status + `X-ClickHouse-Exception-Code`) runs
against real SQL and real bytes: every result is the bytes chDB produced in the requested format.

- Requests run under the engine's cross-process lease (the `clickhouse` fixture's; held across a burst of
  requests, see _Lease), each on a chDB handle of its own with the URL settings applied by SET, closed after
  the request, so settings never leak between requests.
  Sessions (`session_id`) are accepted but not kept: the production client does not use them.
- Formats whose chDB blocks concatenate into one valid stream (Native, RowBinary, TSV, CSV, JSONEachRow) are
  streamed block by block with chunked transfer encoding; ArrowStream is streamed too, each block's record
  batches written into one Arrow stream (chDB frames every block as a whole stream of its own). Other formats
  (Arrow, JSON, Parquet…) are one result, like ClickHouse's own buffering of formats with a footer.
- An error before the first byte is ClickHouse's: the HTTP status ClickHouse maps the error to, the
  `X-ClickHouse-Exception-Code` header and `Code: N. DB::Exception: …` as the body. An error mid-stream writes
  the message and drops the connection without the last chunk, so the client sees a truncated response.
- Inserts with data (`INSERT … FORMAT X` followed by the rows) are written to a temporary file and run as
  `INSERT … FROM INFILE`, chDB having no input stream for a query.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import re
import tempfile
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import chdb
import pyarrow as pa
import pytest
import zstandard

from export_pipeline.clickhouse.connection import ClickHouse
from export_pipeline.settings import Settings

# URL parameters the HTTP layer consumes itself; everything else not named param_* is a setting.
_TRANSPORT_PARAMS = frozenset({
    "query", "database", "default_format", "user", "password", "query_id", "session_id", "session_timeout",
    "session_check", "compress", "decompress", "buffer_size", "wait_end_of_query", "client_protocol_version",
    "quota_key", "stacktrace", "close_session", "role", "add_http_cors_header",
})
_STREAMED_FORMATS = frozenset({"Native", "RowBinary", "TabSeparated", "TSV", "CSV", "JSONEachRow"})
_CONTENT_TYPES = {"JSON": "application/json; charset=UTF-8", "JSONEachRow": "application/x-ndjson; charset=UTF-8",
                  "TabSeparated": "text/tab-separated-values; charset=UTF-8", "TSV": "text/tab-separated-values; charset=UTF-8",
                  "CSV": "text/csv; charset=UTF-8; header=absent"}
_TRAILING_FORMAT = re.compile(rb"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
_INSERT_WITH_DATA = re.compile(rb"^\s*(INSERT\s+INTO\s+.+?)\s+FORMAT\s+(\w+)[ \t]*(?:\r?\n|$)", re.IGNORECASE | re.DOTALL)
_RESULT_STATEMENT = re.compile(rb"^\s*\(*\s*(SELECT|WITH|SHOW|DESC|DESCRIBE|EXISTS|EXPLAIN)\b", re.IGNORECASE)
_STREAMABLE = re.compile(rb"^\s*\(*\s*(SELECT|WITH)\b", re.IGNORECASE)  # chDB streams queries only
_ERROR_CODE = re.compile(r"Code: (\d+)\.")
_ERROR_NAME = re.compile(r"\(([A-Z_0-9]+)\)\s*$")
_CHUNK = 1 << 20

# ClickHouse's own mapping (src/Server/HTTP/exceptionCodeToHTTPStatus.cpp), by error name.
_STATUS_BY_ERROR = {
    **dict.fromkeys(["REQUIRED_PASSWORD"], 401),
    **dict.fromkeys(["UNKNOWN_USER", "WRONG_PASSWORD", "AUTHENTICATION_FAILED", "SET_NON_GRANTED_ROLE",
                     "ACCESS_DENIED"], 403),
    **dict.fromkeys(["BAD_ARGUMENTS", "CANNOT_COMPILE_REGEXP", "CANNOT_PARSE_TEXT", "CANNOT_PARSE_ESCAPE_SEQUENCE",
                     "CANNOT_PARSE_QUOTED_STRING", "CANNOT_PARSE_DATE", "CANNOT_PARSE_DATETIME", "CANNOT_PARSE_NUMBER",
                     "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING", "CANNOT_PARSE_IPV4", "CANNOT_PARSE_IPV6",
                     "CANNOT_PARSE_INPUT_ASSERTION_FAILED", "CANNOT_PARSE_UUID", "DUPLICATE_COLUMN", "ILLEGAL_COLUMN",
                     "UNKNOWN_ELEMENT_IN_AST", "UNKNOWN_TYPE_OF_AST_NODE", "THERE_IS_NO_COLUMN", "TOO_DEEP_AST",
                     "TOO_BIG_AST", "UNEXPECTED_AST_STRUCTURE", "SYNTAX_ERROR", "INCORRECT_DATA", "TYPE_MISMATCH",
                     "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE"], 400),
    **dict.fromkeys(["UNKNOWN_TABLE", "UNKNOWN_FUNCTION", "UNKNOWN_IDENTIFIER", "UNKNOWN_TYPE", "UNKNOWN_STORAGE",
                     "UNKNOWN_DATABASE", "UNKNOWN_SETTING", "UNKNOWN_DIRECTION_OF_SORTING",
                     "UNKNOWN_AGGREGATE_FUNCTION", "UNKNOWN_FORMAT", "UNKNOWN_DATABASE_ENGINE",
                     "UNKNOWN_TYPE_OF_QUERY", "UNKNOWN_ROLE"], 404),
    "QUERY_IS_TOO_LARGE": 413, "NOT_IMPLEMENTED": 501, "SOCKET_TIMEOUT": 503, "CANNOT_OPEN_FILE": 503,
    "HTTP_LENGTH_REQUIRED": 411, "TIMEOUT_EXCEEDED": 408, "CANNOT_SCHEDULE_TASK": 503, "UNSUPPORTED_MEDIA_TYPE": 415,
}


class QueryError(Exception):
    """A ClickHouse exception: `Code: N. DB::Exception: … (NAME)`."""

    def __init__(self, message: str):
        super().__init__(message)
        code = _ERROR_CODE.search(message)
        name = _ERROR_NAME.search(message.strip())
        self.code = int(code.group(1)) if code else 1001  # STD_EXCEPTION
        self.status = _STATUS_BY_ERROR.get(name.group(1) if name else "", 500)
        self.message = message[message.find("Code: "):] if "Code: " in message else message

    @classmethod
    def of(cls, exc: Exception) -> QueryError:
        return exc if isinstance(exc, QueryError) else cls(str(exc).strip())


def _decompress(data: bytes, encoding: str) -> bytes:
    """A request body; clickhouse-connect compresses an insert block by block, so lz4 and zstd bodies are
    several frames one after another."""
    if encoding in ("", "identity"):
        return data
    if encoding == "gzip":
        return gzip.decompress(data)
    if encoding == "deflate":
        return zlib.decompress(data)
    if encoding == "zstd":
        return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True).read()
    if encoding == "lz4":
        import lz4.frame

        out = []
        while data:
            frame = lz4.frame.LZ4FrameDecompressor()
            out.append(frame.decompress(data))
            data = frame.unused_data
        return b"".join(out)
    raise QueryError(f"Code: 415. DB::Exception: Unknown Content-Encoding {encoding!r}. (UNSUPPORTED_MEDIA_TYPE)")


class _Compressor:
    """Streaming response compression for one Content-Encoding."""

    SUPPORTED = ("gzip", "deflate", "zstd", "lz4")

    def __init__(self, encoding: str):
        self.encoding = encoding
        if encoding == "gzip":
            self._obj = zlib.compressobj(wbits=31)
        elif encoding == "deflate":
            self._obj = zlib.compressobj()
        elif encoding == "zstd":
            self._obj = zstandard.ZstdCompressor().compressobj()
        else:
            import lz4.frame

            self._obj = lz4.frame.LZ4FrameCompressor()
            self._header = self._obj.begin()

    def compress(self, data: bytes) -> bytes:
        out = self._obj.compress(data)
        if self.encoding == "lz4" and self._header:
            out, self._header = self._header + out, b""
        return out

    def flush(self) -> bytes:
        return (self._header if self.encoding == "lz4" else b"") + self._obj.flush()


def _arrow_stream(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """chDB frames each block as a complete Arrow stream; a client wants one stream of all their batches."""
    buffer = io.BytesIO()
    writer = None
    for chunk in chunks:
        reader = pa.ipc.open_stream(chunk)
        if writer is None:
            writer = pa.ipc.new_stream(pa.PythonFile(buffer, mode="w"), reader.schema)
        for batch in reader:
            writer.write_batch(batch)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if writer is not None:
        writer.close()  # the end-of-stream marker
        yield buffer.getvalue()


@dataclass
class ServerCredentials:
    user: str
    password: str


class _Lease:
    """The engine's cross-process lease, kept across a burst of requests.

    Opening the lease's client costs ~0.1 s (the engine plus clickhouse-connect's start-up queries), too much per
    request. So the lease is held while requests keep coming, handed over at the next request when another
    process or thread queues for it (`Session.checkpoint`), and released after a short idle time. Requests are
    served one at a time, as the embedded engine is.
    """

    IDLE_SECONDS = 0.1

    def __init__(self, engine: ClickHouse):
        self._engine = engine
        self._lock = threading.Lock()
        self._block = None
        self._session = None
        self._generation = 0

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._lock:
            self._generation += 1
            if self._session is None:
                self._block = self._engine.session("clickhouse http server")
                self._session = self._block.__enter__()
                self._session.client  # noqa: B018 - takes the lease and opens the engine
            else:
                self._session.checkpoint()
            try:
                yield
            finally:
                generation = self._generation
                timer = threading.Timer(self.IDLE_SECONDS, self._release_if_idle, args=(generation,))
                timer.daemon = True
                timer.start()

    def _release_if_idle(self, generation: int) -> None:
        with self._lock:
            if generation == self._generation:
                self._close()

    def release(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._block is not None:
            block, self._block, self._session = self._block, None, None
            block.__exit__(None, None, None)


class ClickHouseHTTPServer:
    """The HTTP interface on a loopback port; `url` is what CLICKHOUSE_URL would be in production."""

    def __init__(self, engine: ClickHouse, credentials: ServerCredentials):
        if not engine.is_embedded:
            raise ValueError("the HTTP interface serves the embedded engine")
        self.engine = engine
        self.path = urlsplit(engine.url).path
        self.credentials = credentials
        self.requests = 0
        self._timezone: str | None = None
        self._lease = _Lease(engine)
        handler = type("Handler", (_Handler,), {"server_state": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="clickhouse-http", daemon=True)

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def url(self, *, user: str | None = None, password: str | None = None, database: str = "") -> str:
        user = self.credentials.user if user is None else user
        password = self.credentials.password if password is None else password
        return f"http://{user}:{password}@127.0.0.1:{self.port}/{database}"

    def start(self) -> ClickHouseHTTPServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._lease.release()

    @contextmanager
    def handle(self) -> Iterator[Any]:
        """A chDB handle of its own, under the engine's lease (see _Lease)."""
        with self._lease.held():
            conn = chdb.connect(self.path)
            try:
                if self._timezone is None:
                    self._timezone = conn.query("SELECT timezone()", "TabSeparated").bytes().decode().strip()
                yield conn
            finally:
                conn.close()

    @property
    def timezone(self) -> str:
        return self._timezone or "UTC"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stall
    server_state: ClickHouseHTTPServer

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's signature
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._serve()

    def do_POST(self) -> None:  # noqa: N802
        self._serve()

    def _serve(self) -> None:
        state = self.server_state
        state.requests += 1
        parts = urlsplit(self.path)
        body = self._read_body()
        if parts.path in ("/ping", "/") and not body and "query=" not in parts.query:
            self._send(200, {"Content-Type": "text/plain; charset=UTF-8"}, b"Ok.\n")
            return
        if parts.path != "/":
            self._send(404, {"Content-Type": "text/plain; charset=UTF-8"}, b"There is no handle " + parts.path.encode() + b"\n")
            return
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        query_id = params.get("query_id") or str(uuid.uuid4())
        try:
            self._authenticate(params)
            body = _decompress(body, self.headers.get("Content-Encoding", "").strip().lower())
            sql = params.get("query", "").encode()
            if body:
                sql = sql + b"\n" + body if sql else body
            self._execute(sql, params, query_id)
        except Exception as exc:  # every failure before the first byte is ClickHouse's error response
            error = QueryError.of(exc)
            self._send(error.status, {"Content-Type": "text/plain; charset=UTF-8",
                                      "X-ClickHouse-Exception-Code": str(error.code),
                                      "X-ClickHouse-Query-Id": query_id},
                       (error.message + "\n").encode())

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _authenticate(self, params: dict[str, str]) -> None:
        user, password = params.get("user", "default"), params.get("password", "")
        authorization = self.headers.get("Authorization", "")
        if authorization.startswith("Basic "):
            user, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
        elif "X-ClickHouse-User" in self.headers:
            user, password = self.headers["X-ClickHouse-User"], self.headers.get("X-ClickHouse-Key", "")
        expected = self.server_state.credentials
        if (user, password) != (expected.user, expected.password):
            raise QueryError(f"Code: 516. DB::Exception: {user}: Authentication failed: password is incorrect, "
                             "or there is no user with such name. (AUTHENTICATION_FAILED)")

    def _execute(self, sql: bytes, params: dict[str, str], query_id: str) -> None:
        state = self.server_state
        bound = {name[6:]: value for name, value in params.items() if name.startswith("param_")}
        settings = {name: value for name, value in params.items()
                    if name not in _TRANSPORT_PARAMS and not name.startswith("param_")}
        trailing = _TRAILING_FORMAT.search(sql[-200:])
        fmt = trailing.group(1).decode() if trailing else params.get("default_format", "TabSeparated")
        started = time.monotonic()
        with state.handle() as conn, tempfile.TemporaryDirectory(prefix="clickhouse-http-") as scratch:
            try:
                if params.get("database"):
                    conn.query(f"USE `{params['database'].replace('`', '')}`", "TabSeparated")
                for name, value in settings.items():
                    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                        raise QueryError(f"Code: 115. DB::Exception: Unknown setting '{name}'. (UNKNOWN_SETTING)")
                    literal = value.replace("\\", "\\\\").replace("'", "\\'")
                    conn.query(f"SET {name} = '{literal}'", "TabSeparated")
                insert = _INSERT_WITH_DATA.match(sql)
                if insert and insert.group(2).decode().lower() != "values" and sql[insert.end():]:
                    data = Path(scratch) / "insert.data"
                    data.write_bytes(sql[insert.end():])
                    statement = f"{insert.group(1).decode()} FROM INFILE '{data}' FORMAT {insert.group(2).decode()}"
                    result = conn.query(statement, "TabSeparated")
                    summary = {"written_rows": str(result.rows_read()), "written_bytes": str(result.bytes_read())}
                    self._respond_whole(b"", None, summary, query_id, started)
                    return
                if (fmt in _STREAMED_FORMATS or fmt == "ArrowStream") and _STREAMABLE.match(sql):
                    stream = conn.send_query(sql.decode(), fmt, params=bound)
                    self._respond_stream(stream, fmt, query_id, sql)
                    return
                result = conn.query(sql.decode(), fmt, params=bound)
                summary = {"read_rows": str(result.rows_read()), "read_bytes": str(result.bytes_read())}
                output = result.bytes() or b""
                self._respond_whole(output, fmt if output or _RESULT_STATEMENT.match(sql) else None, summary,
                                    query_id, started)
            except QueryError:
                raise
            except Exception as exc:
                raise QueryError.of(exc) from None

    def _headers(self, fmt: str | None, query_id: str, summary: dict[str, str]) -> dict[str, str]:
        headers = {"Content-Type": _CONTENT_TYPES.get(fmt or "", "application/octet-stream") if fmt
                   else "text/plain; charset=UTF-8",
                   "X-ClickHouse-Query-Id": query_id, "X-ClickHouse-Timezone": self.server_state.timezone,
                   "X-ClickHouse-Summary": json.dumps(summary)}
        if fmt:
            headers["X-ClickHouse-Format"] = fmt
        return headers

    def _compressor(self, params_enabled: bool) -> _Compressor | None:
        if not params_enabled:
            return None
        accepted = [name.strip().split(";")[0] for name in self.headers.get("Accept-Encoding", "").split(",")]
        chosen = next((name for name in accepted if name in _Compressor.SUPPORTED), None)
        return _Compressor(chosen) if chosen else None

    def _compression_enabled(self) -> bool:
        return dict(parse_qsl(urlsplit(self.path).query)).get("enable_http_compression") == "1"

    def _respond_whole(self, output: bytes, fmt: str | None, summary: dict, query_id: str, started: float) -> None:
        summary = {"read_rows": "0", "read_bytes": "0", "written_rows": "0", "written_bytes": "0", **summary,
                   "elapsed_ns": str(int((time.monotonic() - started) * 1e9))}
        self._write_chunked(self._headers(fmt, query_id, summary), iter([output]) if output else iter(()))

    def _respond_stream(self, stream, fmt: str, query_id: str, sql: bytes) -> None:
        def blocks() -> Iterator[bytes]:
            for block in stream:
                data = block.bytes() if hasattr(block, "bytes") else bytes(block)
                if data:
                    yield data

        chunks = _arrow_stream(blocks()) if fmt == "ArrowStream" else blocks()
        try:
            first = next(chunks, b"")  # an error at the start of the query is still a proper error response
        except Exception:
            stream.close()
            raise
        try:
            headers = self._headers(fmt, query_id, {"read_rows": "0", "read_bytes": "0"})

            def rest() -> Iterator[bytes]:
                if first:
                    yield first
                yield from chunks

            self._write_chunked(headers, rest())
        finally:
            stream.close()

    def _write_chunked(self, headers: dict[str, str], chunks: Iterator[bytes]) -> None:
        compressor = self._compressor(self._compression_enabled())
        self.send_response(200)
        for name, value in headers.items():
            self.send_header(name, value)
        if compressor:
            self.send_header("Content-Encoding", compressor.encoding)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for chunk in chunks:
                for start in range(0, len(chunk), _CHUNK):
                    self._chunk(compressor.compress(chunk[start:start + _CHUNK]) if compressor
                                else chunk[start:start + _CHUNK])
        except Exception as exc:  # mid-stream: ClickHouse appends the error and the response is cut short
            self._chunk(f"\n{QueryError.of(exc).message}\n".encode())
            self.wfile.flush()
            self.close_connection = True
            return
        if compressor:
            self._chunk(compressor.flush())
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="session")
def clickhouse_http() -> Iterator[ClickHouseHTTPServer]:
    """The session's embedded engine behind ClickHouse's HTTP interface, with a password.

    Built from the environment's settings rather than the `clickhouse` fixture, which the HTTP test modules
    override with a client of this server.
    """
    engine = ClickHouse.from_settings(Settings())
    server = ClickHouseHTTPServer(engine, ServerCredentials("exporter", "s3cret pass")).start()
    try:
        yield server
    finally:
        server.stop()
