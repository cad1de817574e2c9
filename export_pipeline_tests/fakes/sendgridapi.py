"""A fake SendGrid v3 `mail/send` on loopback: checks the key and the content type like SendGrid, records each
JSON payload, and answers `script` statuses first, then `always` (202)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ERROR_MESSAGES = {429: "too many requests", 500: "internal error", 400: "The from address is not verified"}


@dataclass
class FakeSendGrid:
    key: str
    url: str = ""
    received: list[dict] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)
    script: list[int] = field(default_factory=list)
    always: int = 202
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self) -> int:
        with self.lock:
            return self.script.pop(0) if self.script else self.always

    def to(self, address: str) -> list[dict]:
        """The mails received for `address`, in order."""
        return [mail for mail in self.received if mail["personalizations"][0]["to"][0]["email"] == address]


@contextmanager
def fake_sendgrid(key: str) -> Iterator[FakeSendGrid]:
    fake = FakeSendGrid(key)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    # A short poll interval: shutdown() waits for the next poll (0.5 s by default) at every teardown.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


def _handler(fake: FakeSendGrid) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path != "/v3/mail/send":
                return self._reply(404, {"errors": [{"message": f"no route {self.path}"}]})
            if self.headers.get("Authorization") != f"Bearer {fake.key}":
                return self._reply(401, {"errors": [{"message": "The provided authorization grant is invalid"}]})
            if self.headers.get("Content-Type") != "application/json":
                return self._reply(415, {"errors": [{"message": "Content-Type must be application/json"}]})
            with fake.lock:
                fake.received.append(json.loads(body))
                fake.authorizations.append(self.headers.get("Authorization"))
            status = fake.answer()
            if status == 202:
                return self._reply(202, None)
            return self._reply(status, {"errors": [{"message": ERROR_MESSAGES.get(status, "error"), "field": None}]})

        def _reply(self, status: int, body: dict | None) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            if data:
                self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    return Handler
