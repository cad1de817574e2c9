"""Project members with GitLab access levels, and the export permission check."""

from __future__ import annotations

import threading
import time
from enum import IntEnum
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from export_pipeline.clock import now_utc
from export_pipeline.db import access_refusals, project_members
from export_pipeline.errors import AccessDenied, InvalidRequest, NotFound, RoleSourceUnavailable
from export_pipeline.settings import Settings


class Role(IntEnum):
    """GitLab access levels (lib/gitlab/access.rb)."""

    GUEST = 10
    PLANNER = 15
    REPORTER = 20
    DEVELOPER = 30
    MAINTAINER = 40
    OWNER = 50

    @classmethod
    def parse(cls, name: str) -> Role:
        try:
            return cls[name.strip().upper()]
        except KeyError:
            choices = ", ".join(role.name.lower() for role in cls)
            raise InvalidRequest(f"Unknown role {name!r}.", hint=f"Use one of: {choices}.") from None

    @property
    def label(self) -> str:
        return f"{self.name.capitalize()} ({self.value})"


EXPORT_ROLE = Role.MAINTAINER


def add_member(engine: Engine, project_id: int, user: str, role: Role) -> None:
    """Add a member or change their role."""
    user = _valid_user(user)
    with engine.begin() as conn:
        updated = conn.execute(
            sa.update(project_members)
            .where(project_members.c.project_id == project_id, project_members.c.user_name == user)
            .values(access_level=int(role))
        ).rowcount
        if not updated:
            conn.execute(
                sa.insert(project_members).values(
                    project_id=project_id, user_name=user, access_level=int(role), added_at=now_utc()
                )
            )


def remove_member(engine: Engine, project_id: int, user: str) -> None:
    with engine.begin() as conn:
        deleted = conn.execute(
            sa.delete(project_members).where(
                project_members.c.project_id == project_id, project_members.c.user_name == user
            )
        ).rowcount
    if not deleted:
        raise NotFound(f"{user!r} is not a member of project {project_id}.")


def list_members(engine: Engine, project_id: int) -> list[tuple[str, Role]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(project_members.c.user_name, project_members.c.access_level)
            .where(project_members.c.project_id == project_id)
            .order_by(project_members.c.access_level.desc(), project_members.c.user_name)
        ).all()
    return [(user, Role(level)) for user, level in rows]


def access_level(engine: Engine, project_id: int, user: str) -> Role | None:
    with engine.connect() as conn:
        level = conn.execute(
            sa.select(project_members.c.access_level).where(
                project_members.c.project_id == project_id, project_members.c.user_name == user
            )
        ).scalar_one_or_none()
    return Role(level) if level is not None else None


class RoleSource(Protocol):
    """Where a user's role on a project comes from."""

    def role_of(self, project_id: int, user: str) -> Role | None: ...


class MemberTable:
    """The built-in `project_members` table (the default)."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def role_of(self, project_id: int, user: str) -> Role | None:
        return access_level(self.engine, project_id, user)


class GitLabMembers:
    """Roles from a GitLab instance: `GET /api/v4/projects/:id/members/all/:user_id` -> `access_level`
    (inherited memberships included). Users are GitLab usernames, resolved to ids with
    `GET /api/v4/users?username=`. Answers are cached for `cache_seconds`."""

    def __init__(self, base_url: str, token: str, *, cache_seconds: float = 60.0, timeout: float = 5.0):
        import httpx  # 4 MB of memory that every process checking roles in the app database would pay

        self.base_url = base_url.rstrip("/")
        self._http_error = httpx.HTTPError
        self._client = httpx.Client(
            base_url=f"{self.base_url}/api/v4", headers={"PRIVATE-TOKEN": token}, timeout=timeout
        )
        self._cache_seconds = cache_seconds
        self._cache: dict[tuple[str, object], tuple[float, object]] = {}
        self._lock = threading.Lock()

    def role_of(self, project_id: int, user: str) -> Role | None:
        user_id = self._cached(("user", user), lambda: self._user_id(user))
        if user_id is None:
            return None
        level = self._cached(("member", (project_id, user_id)), lambda: self._access_level(project_id, user_id))
        return _closest_role(level) if level is not None else None  # type: ignore[arg-type]

    def _user_id(self, user: str) -> int | None:
        found = self._get("/users", params={"username": user})
        return found[0]["id"] if found else None

    def _access_level(self, project_id: int, user_id: int) -> int | None:
        member = self._get(f"/projects/{project_id}/members/all/{user_id}")
        return int(member["access_level"]) if member else None

    def _get(self, path: str, params: dict | None = None):
        try:
            response = self._client.get(path, params=params)
        except self._http_error as exc:
            raise RoleSourceUnavailable(
                f"Cannot reach GitLab at {self.base_url} to check roles: {exc}.",
                hint="Check GITLAB_URL and that GitLab is up.",
                retryable=True,
            ) from None
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise RoleSourceUnavailable(
                f"GitLab at {self.base_url} answered {response.status_code} to a role check.",
                hint="Check that GITLAB_TOKEN is valid and may read project members (read_api scope).",
                retryable=response.status_code >= 500,
            )
        return response.json()

    def _cached(self, key: tuple[str, object], load):
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit and hit[0] > now:
                return hit[1]
        value = load()
        with self._lock:
            self._cache[key] = (now + self._cache_seconds, value)
        return value


def role_source(settings: Settings, engine: Engine) -> RoleSource:
    """The configured role source: the member table, or GitLab when EXPORT_ROLE_SOURCE=gitlab."""
    if settings.role_source == "gitlab":
        if not settings.gitlab_url or not settings.gitlab_token:
            raise InvalidRequest(
                "EXPORT_ROLE_SOURCE=gitlab needs GITLAB_URL and GITLAB_TOKEN.",
                hint="Set both, or unset EXPORT_ROLE_SOURCE to use the built-in member table.",
            )
        return GitLabMembers(settings.gitlab_url, settings.gitlab_token, cache_seconds=settings.gitlab_cache_seconds)
    return MemberTable(engine)


def _closest_role(level: int) -> Role | None:
    """The highest known role not above a GitLab level; None below Guest (e.g. Minimal Access, 5)."""
    known = [role for role in Role if role.value <= level]
    return max(known) if known else None


def require_role(
    roles: RoleSource,
    audit: Engine,
    project_id: int,
    user: str,
    *,
    action: str,
    required: Role = EXPORT_ROLE,
    export_id: str | None = None,
) -> Role:
    """Return the user's role, or record the refusal (in `audit`) and raise AccessDenied."""
    role = roles.role_of(project_id, user)
    if role is not None and role >= required:
        return role
    with audit.begin() as conn:
        conn.execute(
            sa.insert(access_refusals).values(
                project_id=project_id,
                user_name=user,
                action=action,
                access_level=int(role) if role is not None else None,
                required_level=int(required),
                export_id=export_id,
                occurred_at=now_utc(),
            )
        )
    has = f"is {role.label} on" if role is not None else "is not a member of"
    raise AccessDenied(
        f"{user!r} {has} project {project_id}; {action} needs {required.label} or higher.",
        hint=f"Ask a project Owner to grant the role: export-pipeline members add --project-id {project_id} "
        f"--user {user} --role {required.name.lower()}",
        details={"required_access_level": int(required), "access_level": int(role) if role else None},
    )


def _valid_user(user: str) -> str:
    user = user.strip()
    if not user or len(user) > 255:
        raise InvalidRequest("A user name must be 1 to 255 characters.", details={"user": "invalid"})
    return user
