"""Personal access tokens: shown once at creation, stored as SHA-256, with expiry and revocation."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from export_pipeline.clock import as_utc, now_utc
from export_pipeline.db import access_tokens
from export_pipeline.errors import InvalidRequest, NotFound

TOKEN_PREFIX = "epat_"


@dataclass(frozen=True)
class TokenInfo:
    id: str
    user: str
    name: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


def token_digest(token: str) -> str:
    """What is stored of a secret token (tokens, share links): its SHA-256, never the token."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(engine: Engine, user: str, *, name: str = "cli", expires_in_days: int | None = 90) -> tuple[str, TokenInfo]:
    """Returns (the token, shown only now, and its stored record)."""
    user = user.strip()
    if not user:
        raise InvalidRequest("A token needs a user.", details={"user": "required"})
    if expires_in_days is not None and expires_in_days < 1:
        raise InvalidRequest("Expiry must be at least one day.", details={"expires_in_days": "must be >= 1"})
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = now_utc()
    info = TokenInfo(
        id=secrets.token_hex(8),
        user=user,
        name=name,
        created_at=now,
        expires_at=now + timedelta(days=expires_in_days) if expires_in_days else None,
        revoked_at=None,
    )
    with engine.begin() as conn:
        conn.execute(
            sa.insert(access_tokens).values(
                id=info.id, user_name=user, name=name, token_sha256=token_digest(token),
                created_at=now, expires_at=info.expires_at,
            )
        )
    return token, info


def authenticate(engine: Engine, token: str) -> str | None:
    """The user a token belongs to, or None if it is unknown, expired or revoked."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    now = now_utc()
    with engine.begin() as conn:
        row = conn.execute(
            sa.select(access_tokens.c.id, access_tokens.c.user_name, access_tokens.c.expires_at,
                      access_tokens.c.revoked_at)
            .where(access_tokens.c.token_sha256 == token_digest(token))
        ).first()
        if row is None or row.revoked_at is not None:
            return None
        expires = as_utc(row.expires_at)
        if expires is not None and expires <= now:
            return None
        conn.execute(sa.update(access_tokens).where(access_tokens.c.id == row.id).values(last_used_at=now))
    return row.user_name


def revoke_token(engine: Engine, token_id: str) -> None:
    with engine.begin() as conn:
        revoked = conn.execute(
            sa.update(access_tokens)
            .where(access_tokens.c.id == token_id, access_tokens.c.revoked_at.is_(None))
            .values(revoked_at=now_utc())
        ).rowcount
    if not revoked:
        raise NotFound(f"No active token {token_id!r}.")


def list_tokens(engine: Engine, user: str) -> list[TokenInfo]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(access_tokens).where(access_tokens.c.user_name == user).order_by(access_tokens.c.created_at)
        ).all()
    return [
        TokenInfo(r.id, r.user_name, r.name, as_utc(r.created_at), as_utc(r.expires_at), as_utc(r.revoked_at))  # type: ignore[arg-type]
        for r in rows
    ]
