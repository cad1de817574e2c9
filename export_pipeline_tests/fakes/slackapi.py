"""A fake Slack Web API on loopback, for tests that talk real HTTP (slack_sdk.WebClient(base_url=...)).

It implements what subscriptions use, the way slack.com does:

* `POST /api/<method>` with form (`application/x-www-form-urlencoded`, multipart) or JSON bodies, and the token
  in `Authorization: Bearer xoxb-…` (or a `token` field). Answers are JSON with `ok`, like Slack: errors are
  HTTP 200 `{"ok": false, "error": "<code>"}`.
* `auth.test`, `chat.postMessage` (a channel by `#name`, `name` or ID; answers the channel ID and a `ts`),
  `conversations.info`, and the three steps of `files_upload_v2` as slack-sdk 3.47 sends them:
  `files.getUploadURLExternal` (form `filename`, `length`) -> `POST <upload_url>` (raw bytes, no token) ->
  `files.completeUploadExternal` (form `files` as a JSON string of `{"id", "title"}`, `channel_id` (an ID),
  optional `thread_ts` of a message in that channel, `initial_comment`).

Usage::

    with FakeSlack({"xoxb-acme": {"general": "C0GENERAL"}}) as slack:
        client = WebClient(token="xoxb-acme", base_url=slack.api_url)
        slack.rate_limit("chat.postMessage", retry_after=2)     # the next call answers 429 once
        ...
        slack.calls()      # ["chat.postMessage", "chat.postMessage"]
        slack.requests     # every request, in arrival order (`Recorded`)
        slack.messages     # messages posted; slack.shared_files(): files shared, in order, with their bytes

Faults (`fail`, or the helpers `rate_limit`, `server_error`, `slack_error`, `drop_connection`) apply to the
next matching requests of one API method, `"upload"` meaning the POST to an upload URL; `revoke(token)` makes
every later call with that token answer `token_revoked`. A request answered with a fault changes nothing.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

UPLOAD = "upload"  # the API name recorded for POSTs to an upload URL


@dataclass
class Recorded:
    """One HTTP request as received. `api` is the Slack method (`chat.postMessage`) or `"upload"`."""

    api: str
    http_method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    params: dict[str, Any]  # query string + form fields (strings) or the JSON body's top-level keys
    body: bytes
    token: str | None
    status: int | None = None  # what was answered; None when the connection was dropped


@dataclass
class Fault:
    """What the next `times` requests of `api` get (after letting `after` through)."""

    api: str
    times: int = 1
    status: int = 200
    error: str | None = None  # Slack error code -> JSON {"ok": false, "error": ...}
    retry_after: float | None = None  # Retry-After header
    drop: bool = False  # close the connection without answering
    after: int = 0
    token: str | None = None  # only requests with this token (None: any)


@dataclass
class FakeFile:
    id: str
    token: str
    filename: str
    length: int
    alt_txt: str | None = None
    data: bytes | None = None  # set by the upload POST
    title: str | None = None
    channel_id: str | None = None
    thread_ts: str | None = None
    completed: bool = False


@dataclass
class FakeMessage:
    token: str
    channel_id: str
    ts: str
    text: str | None
    blocks: list[dict[str, Any]] | None
    thread_ts: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


class FakeSlack:
    """Slack's Web API for some workspaces: `workspaces` maps each bot token to its channels {name: ID}."""

    def __init__(self, workspaces: dict[str, dict[str, str]] | None = None, *, host: str = "127.0.0.1"):
        self.workspaces = {token: dict(channels) for token, channels in (workspaces or {}).items()}
        self.archived: set[str] = set()  # channel IDs answering is_archived
        self.not_member: set[str] = set()  # channel IDs where the bot is not a member (not_in_channel)
        self.revoked: set[str] = set()
        self._requests: list[Recorded] = []
        self._faults: list[Fault] = []
        self._messages: list[FakeMessage] = []
        self._files: dict[str, FakeFile] = {}
        self._shared: list[str] = []  # file IDs in the order they were shared
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._server = ThreadingHTTPServer((host, 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------------------- lifecycle

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def api_url(self) -> str:
        """What to pass as WebClient(base_url=...) or SLACK_API_URL."""
        return f"{self.base_url}/api/"

    def start(self) -> FakeSlack:
        if self._thread is None:
            # A short poll interval makes stop() quick (shutdown waits for the loop to notice).
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                            name="fake-slack", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---------------------------------------------------------------------------------------- faults

    def fail(self, api: str, *, times: int = 1, status: int = 200, error: str | None = None,
             retry_after: float | None = None, drop: bool = False, after: int = 0,
             token: str | None = None) -> None:
        with self._lock:
            self._faults.append(Fault(api, times, status, error, retry_after, drop, after, token))

    def rate_limit(self, api: str, *, times: int = 1, retry_after: float = 1, after: int = 0) -> None:
        """HTTP 429 with `Retry-After` and `{"ok": false, "error": "ratelimited"}`, as Slack answers."""
        self.fail(api, times=times, status=429, error="ratelimited", retry_after=retry_after, after=after)

    def server_error(self, api: str, *, times: int = 1, status: int = 500, after: int = 0) -> None:
        """An HTML-less plain-text 5xx, like a load balancer in trouble."""
        self.fail(api, times=times, status=status, after=after)

    def slack_error(self, api: str, error: str, *, times: int = 1, after: int = 0) -> None:
        """HTTP 200 `{"ok": false, "error": error}`, e.g. "internal_error"."""
        self.fail(api, times=times, error=error, after=after)

    def drop_connection(self, api: str, *, times: int = 1, after: int = 0) -> None:
        """Read the request, then close the connection without answering."""
        self.fail(api, times=times, drop=True, after=after)

    def revoke(self, token: str) -> None:
        with self._lock:
            self.revoked.add(token)

    # -------------------------------------------------------------------------------------- recorded

    @property
    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._requests)

    def calls(self) -> list[str]:
        """The API names of every request, in order (`"upload"` for upload URL POSTs)."""
        return [recorded.api for recorded in self.requests]

    def requests_for(self, api: str) -> list[Recorded]:
        return [recorded for recorded in self.requests if recorded.api == api]

    @property
    def messages(self) -> list[FakeMessage]:
        with self._lock:
            return list(self._messages)

    def shared_files(self) -> list[FakeFile]:
        """Files shared by files.completeUploadExternal, in order."""
        with self._lock:
            return [self._files[file_id] for file_id in self._shared]

    # -------------------------------------------------------------------------------------- handling

    def _take_fault(self, api: str, token: str | None) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.api != api or fault.times <= 0 or (fault.token is not None and fault.token != token):
                    continue
                if fault.after > 0:
                    fault.after -= 1
                    return None
                fault.times -= 1
                return fault
        return None

    def _record(self, recorded: Recorded) -> None:
        with self._lock:
            self._requests.append(recorded)

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}0FAKE{next(self._ids):06d}"

    def _new_ts(self) -> str:
        return f"{1_700_000_000 + next(self._ids)}.{next(self._ids):06d}"

    def _dispatch(self, api: str, token: str | None, params: dict[str, Any]) -> dict[str, Any]:
        """The JSON answer of a Slack method (HTTP 200)."""
        if not token:
            return _error("not_authed")
        with self._lock:
            if token in self.revoked:
                return _error("token_revoked")
            if token not in self.workspaces:
                return _error("invalid_auth")
            handler = getattr(self, "_api_" + api.replace(".", "_"), None)
            if handler is None:
                return _error("unknown_method")
            return handler(token, params)

    def _channel_id(self, token: str, value: Any, *, ids_only: bool = False) -> str | None:
        channels = self.workspaces[token]
        value = str(value or "")
        if value in channels.values():
            return value
        if ids_only:
            return None
        return channels.get(value[1:] if value.startswith("#") else value)

    def _channel_problem(self, channel_id: str) -> dict[str, Any] | None:
        if channel_id in self.archived:
            return _error("is_archived")
        if channel_id in self.not_member:
            return _error("not_in_channel")
        return None

    # Slack methods: called under the lock with a valid token.

    def _api_auth_test(self, token: str, params: dict[str, Any]) -> dict[str, Any]:
        number = list(self.workspaces).index(token) + 1
        return {"ok": True, "url": f"https://workspace-{number}.slack.com/", "team": f"Workspace {number}",
                "user": "reports", "team_id": f"T0FAKE{number:04d}", "user_id": f"U0FAKE{number:04d}",
                "bot_id": f"B0FAKE{number:04d}"}

    def _api_chat_postMessage(self, token: str, params: dict[str, Any]) -> dict[str, Any]:
        channel_id = self._channel_id(token, params.get("channel"))
        if channel_id is None:
            return _error("channel_not_found")
        if problem := self._channel_problem(channel_id):
            return problem
        blocks = params.get("blocks")
        if isinstance(blocks, str):
            try:
                blocks = json.loads(blocks)
            except ValueError:
                return _error("invalid_blocks_format")
        if blocks is not None and not isinstance(blocks, list):
            return _error("invalid_blocks_format")
        text = params.get("text")
        if not text and not blocks:
            return _error("no_text")
        ts = self._new_ts()
        thread_ts = params.get("thread_ts") or None
        self._messages.append(FakeMessage(token, channel_id, ts, text, blocks, thread_ts, dict(params)))
        message = {"type": "message", "text": text or "", "ts": ts, "bot_id": "B0FAKE0001"}
        if blocks:
            message["blocks"] = blocks
        return {"ok": True, "channel": channel_id, "ts": ts, "message": message}

    def _api_conversations_info(self, token: str, params: dict[str, Any]) -> dict[str, Any]:
        channel_id = self._channel_id(token, params.get("channel"), ids_only=True)
        if channel_id is None:
            return _error("channel_not_found")
        name = next(name for name, cid in self.workspaces[token].items() if cid == channel_id)
        return {"ok": True, "channel": {"id": channel_id, "name": name, "is_channel": True,
                                        "is_archived": channel_id in self.archived,
                                        "is_member": channel_id not in self.not_member}}

    def _api_files_getUploadURLExternal(self, token: str, params: dict[str, Any]) -> dict[str, Any]:
        filename = str(params.get("filename") or "")
        try:
            length = int(params.get("length", ""))
        except ValueError:
            return _error("invalid_arguments")
        if not filename or length <= 0:
            return _error("invalid_arguments")
        file_id = self._new_id("F")
        self._files[file_id] = FakeFile(file_id, token, filename, length, params.get("alt_txt"))
        return {"ok": True, "upload_url": f"{self.base_url}/upload/v1/{file_id}", "file_id": file_id}

    def _api_files_completeUploadExternal(self, token: str, params: dict[str, Any]) -> dict[str, Any]:
        files = params.get("files")
        try:
            entries = json.loads(files) if isinstance(files, str) else files
        except ValueError:
            return _error("invalid_arguments")
        if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) and e.get("id")
                                                                   for e in entries):
            return _error("invalid_arguments")
        channel_id = None
        if params.get("channel_id"):
            channel_id = self._channel_id(token, params["channel_id"], ids_only=True)  # Slack wants an ID here
            if channel_id is None:
                return _error("channel_not_found")
            if problem := self._channel_problem(channel_id):
                return problem
        thread_ts = params.get("thread_ts") or None
        if thread_ts is not None:
            parents = {m.ts for m in self._messages if m.channel_id == channel_id and m.thread_ts is None}
            if channel_id is None or thread_ts not in parents:
                return _error("invalid_thread_ts")
        chosen: list[FakeFile] = []
        for entry in entries:
            fake = self._files.get(str(entry["id"]))
            # Unknown, another workspace's, never uploaded, or completed already ("can only be called once").
            if fake is None or fake.token != token or fake.data is None or fake.completed:
                return _error("file_not_found")
            chosen.append(fake)
        answer = []
        for entry, fake in zip(entries, chosen, strict=True):
            fake.title = str(entry.get("title") or fake.filename)
            fake.channel_id, fake.thread_ts, fake.completed = channel_id, thread_ts, True
            self._shared.append(fake.id)
            answer.append({"id": fake.id, "name": fake.filename, "title": fake.title, "size": len(fake.data or b"")})
        return {"ok": True, "files": answer}

    def _upload(self, file_id: str, data: bytes) -> tuple[int, str]:
        with self._lock:
            fake = self._files.get(file_id)
            if fake is None or fake.completed:
                return 404, "Not Found"
            fake.data = data
        return 200, f"OK - {len(data)}"


def _error(code: str) -> dict[str, Any]:
    return {"ok": False, "error": code}


def _parse_params(content_type: str, query: str, body: bytes) -> dict[str, Any]:
    params: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/json":
        loaded = json.loads(body or b"{}")
        if isinstance(loaded, dict):
            params.update(loaded)
    elif kind == "multipart/form-data":
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + body
        )
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True) or b""
            params[str(name)] = payload if part.get_filename() else payload.decode("utf-8")
    elif body:
        params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    return params


def _handler_for(fake: FakeSlack) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "FakeSlack/1.0"

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            pass

        def do_GET(self) -> None:
            self.do_POST()  # Slack accepts GET for many methods; slack-sdk always POSTs

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {name.lower(): value for name, value in self.headers.items()}
            upload = re.fullmatch(r"/upload/v1/([A-Z0-9]+)", url.path)
            api = UPLOAD if upload else url.path.removeprefix("/api/")
            params: dict[str, Any] = {}
            if not upload:
                try:
                    params = _parse_params(headers.get("content-type", ""), url.query, body)
                except ValueError:
                    params = {}
            auth = headers.get("authorization", "")
            token = auth[len("Bearer "):].strip() if auth.startswith("Bearer ") else params.pop("token", None)
            recorded = Recorded(api, self.command, self.path, headers, params, body, token)
            fake._record(recorded)

            fault = fake._take_fault(api, token)
            if fault is not None:
                if fault.drop:
                    self.close_connection = True
                    return  # no status line at all: the client sees the connection close
                extra = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
                if fault.error:
                    self._answer(recorded, fault.status, json.dumps(_error(fault.error)), "application/json", extra)
                else:
                    self._answer(recorded, fault.status, f"{fault.status} fake failure", "text/plain", extra)
                return
            if upload:
                status, text = fake._upload(upload.group(1), body)
                self._answer(recorded, status, text, "text/plain")
                return
            if not url.path.startswith("/api/"):
                self._answer(recorded, 404, "Not Found", "text/plain")
                return
            answer = fake._dispatch(api, token, params)
            self._answer(recorded, 200, json.dumps(answer), "application/json")

        def _answer(self, recorded: Recorded, status: int, text: str, content_type: str,
                    extra: dict[str, str] | None = None) -> None:
            data = text.encode("utf-8")
            recorded.status = status
            self.send_response(status)
            self.send_header("Content-Type", f"{content_type}; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler
