"""The GitLab role source against a local HTTP endpoint that answers like GitLab's REST API."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from export_pipeline.accounts.roles import GitLabMembers, Role
from export_pipeline.errors import RoleSourceUnavailable
from export_pipeline_tests.fakes.net import free_port

USERS = {"alice": 11, "bob": 12, "min": 13}
MEMBERS = {(7, 11): 40, (7, 12): 30, (7, 13): 5}  # 5 = Minimal Access, below Guest
TOKEN = "glpat-test-token"


@pytest.fixture()
def gitlab() -> Iterator[dict]:
    seen: list[str] = []

    class GitLab(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            seen.append(self.path)
            if self.headers.get("PRIVATE-TOKEN") != TOKEN:
                return self._send(401, {"message": "401 Unauthorized"})
            url = urlsplit(self.path)
            parts = url.path.strip("/").split("/")
            if parts == ["api", "v4", "users"]:
                name = parse_qs(url.query)["username"][0]
                return self._send(200, [{"id": USERS[name], "username": name}] if name in USERS else [])
            if parts[:3] == ["api", "v4", "projects"] and parts[4:6] == ["members", "all"]:
                level = MEMBERS.get((int(parts[3]), int(parts[6])))
                if level is None:
                    return self._send(404, {"message": "404 Not found"})
                return self._send(200, {"id": int(parts[6]), "access_level": level})
            return self._send(404, {"message": "404 Not found"})

        def _send(self, status: int, body: object) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), GitLab)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield {"url": f"http://127.0.0.1:{server.server_address[1]}", "seen": seen}
    server.shutdown()


def test_roles_come_from_gitlab_access_levels(gitlab):
    roles = GitLabMembers(gitlab["url"], TOKEN)
    assert roles.role_of(7, "alice") is Role.MAINTAINER
    assert roles.role_of(7, "bob") is Role.DEVELOPER
    assert roles.role_of(7, "min") is None  # Minimal Access is not a role that can see anything here
    assert roles.role_of(8, "alice") is None  # not a member of that project
    assert roles.role_of(7, "nobody") is None  # unknown user
    assert "/api/v4/projects/7/members/all/11" in gitlab["seen"]


def test_answers_are_cached_briefly(gitlab):
    roles = GitLabMembers(gitlab["url"], TOKEN, cache_seconds=60)
    for _ in range(5):
        roles.role_of(7, "alice")
    assert len(gitlab["seen"]) == 2  # one user lookup, one membership lookup
    fresh = GitLabMembers(gitlab["url"], TOKEN, cache_seconds=0)
    fresh.role_of(7, "alice")
    fresh.role_of(7, "alice")
    assert len(gitlab["seen"]) == 6


def test_a_bad_token_is_a_clear_error(gitlab):
    with pytest.raises(RoleSourceUnavailable, match="answered 401") as failure:
        GitLabMembers(gitlab["url"], "wrong").role_of(7, "alice")
    assert "GITLAB_TOKEN" in (failure.value.hint or "")
    assert failure.value.retryable is False  # a 401 stays a 401


def test_an_unreachable_gitlab_is_worth_another_try():
    with pytest.raises(RoleSourceUnavailable, match="Cannot reach GitLab") as failure:
        GitLabMembers(f"http://127.0.0.1:{free_port()}", TOKEN).role_of(7, "alice")
    assert failure.value.retryable is True
