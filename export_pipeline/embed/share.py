"""Share links: an unguessable token that lets anyone view one insight or dashboard's embed page.

Tokens are 256-bit random (`secrets.token_urlsafe(32)`), shown once when the link is created (the caller
keeps the URL), stored only as SHA-256. A link stops working when it is revoked, when it expires, when its
insight or dashboard is deleted, or while sharing is disabled for the whole service (EXPORT_SHARING_ENABLED).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from export_pipeline.accounts.tokens import token_digest
from export_pipeline.clock import as_utc, iso_utc, now_utc
from export_pipeline.db import share_links
from export_pipeline.errors import InvalidRequest, NotFound, ShareLinkGone

RESOURCES = ("insight", "dashboard")


@dataclass(frozen=True)
class ShareLink:
    id: str
    project_id: int
    resource: str
    target_id: str
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now_utc())

    def to_json(self) -> dict:
        return {
            "id": self.id, "project_id": self.project_id, "resource": self.resource, "target_id": self.target_id,
            "created_by": self.created_by, "created_at": iso_utc(self.created_at), "expires_at": iso_utc(self.expires_at),
            "revoked_at": iso_utc(self.revoked_at), "active": self.active,
        }


def embed_path(resource: str, token: str) -> str:
    return f"/embed/{resource}s/{token}"


def member_path(project_id: int, resource: str, target_id: str) -> str:
    """The members' page of an insight or dashboard: it opens with a personal access token or the host
    product's cookie, never with a share token."""
    return f"/projects/{project_id}/embed/{resource}s/{target_id}"


class ShareLinks:
    def __init__(self, engine: Engine):
        self.engine = engine

    def create(self, project_id: int, resource: str, target_id: str, *, created_by: str,
               expires_at: datetime | None = None) -> tuple[str, ShareLink]:
        """(the token, shown only now, and the stored link). The caller checks that the target exists."""
        if resource not in RESOURCES:
            raise InvalidRequest(f"Cannot share a {resource!r}: only insights and dashboards.",
                                 details={"resource": "insight or dashboard"})
        if expires_at is not None and as_utc(expires_at) <= now_utc():
            raise InvalidRequest("expires_at is in the past: give a future time, or none for a link without expiry.",
                                 details={"expires_at": "must be in the future"})
        token = secrets.token_urlsafe(32)
        link = ShareLink(secrets.token_hex(8), project_id, resource, target_id, created_by, now_utc(),
                         None if expires_at is None else as_utc(expires_at), None)
        with self.engine.begin() as conn:
            conn.execute(share_links.insert().values(
                id=link.id, project_id=project_id, resource=resource, target_id=target_id,
                token_sha256=token_digest(token), created_by=created_by, created_at=link.created_at,
                expires_at=link.expires_at,
            ))
        return token, link

    def resolve(self, resource: str, token: str) -> ShareLink:
        """The active link of `token` for this kind of page: NotFound (unknown, or a token of another kind of
        page) or ShareLinkGone (revoked or expired)."""
        with self.engine.connect() as conn:
            row = conn.execute(share_links.select().where(share_links.c.token_sha256 == token_digest(token))).first()
        if row is None or row.resource != resource:
            raise NotFound("This share link does not exist.",
                           hint="Check that the whole link was copied, or ask its owner for a new one.")
        link = _link(row)
        if link.revoked_at is not None:
            raise ShareLinkGone("This share link was revoked by a member of the project.",
                                hint="Ask a member of the project for a new link.")
        if not link.active:
            raise ShareLinkGone(f"This share link expired at {iso_utc(link.expires_at)}.",
                                hint="Ask a member of the project for a new link.")
        return link

    def list(self, project_id: int, resource: str, target_id: str) -> list[ShareLink]:
        with self.engine.connect() as conn:
            rows = conn.execute(share_links.select().where(
                share_links.c.project_id == project_id, share_links.c.resource == resource,
                share_links.c.target_id == target_id,
            ).order_by(share_links.c.created_at.desc(), share_links.c.id)).all()
        return [_link(row) for row in rows]

    def revoke(self, project_id: int, link_id: str) -> ShareLink:
        with self.engine.begin() as conn:
            conn.execute(share_links.update().where(
                share_links.c.project_id == project_id, share_links.c.id == link_id,
                share_links.c.revoked_at.is_(None),
            ).values(revoked_at=now_utc()))
            row = conn.execute(share_links.select().where(
                share_links.c.project_id == project_id, share_links.c.id == link_id)).first()
        if row is None:
            raise NotFound(f"Share link {link_id} not found in project {project_id}.")
        return _link(row)


def _link(row: sa.Row) -> ShareLink:
    return ShareLink(row.id, row.project_id, row.resource, row.target_id, row.created_by, as_utc(row.created_at),
                     None if row.expires_at is None else as_utc(row.expires_at),
                     None if row.revoked_at is None else as_utc(row.revoked_at))
