"""Project members with GitLab access levels, and the export permission check."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import IntEnum

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from export_pipeline.db import access_refusals, project_members
from export_pipeline.errors import AccessDenied, InvalidRequest, NotFound


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


def now_utc() -> datetime:
    return datetime.now(UTC)


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


def require_role(
    engine: Engine,
    project_id: int,
    user: str,
    *,
    action: str,
    required: Role = EXPORT_ROLE,
    export_id: str | None = None,
) -> Role:
    """Return the user's role, or record the refusal and raise AccessDenied."""
    role = access_level(engine, project_id, user)
    if role is not None and role >= required:
        return role
    with engine.begin() as conn:
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
