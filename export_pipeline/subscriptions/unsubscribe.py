"""Unsubscribe links that work without logging in, and reveal nothing.

A token is 32 random URL-safe characters (`secrets.token_urlsafe(24)`, 192 bits): it carries no address, no
subscription id, nothing to decode. The app database keeps only its SHA-256 with what it stands for (the
subscription, the normalized address and the subscription's unsubscribe-key `version`), so a leaked
database gives no working link, and a link gives nothing without the database.

Decisions:

* One new token per email sent (a hash cannot give the raw token back for the next email): one small row
  per delivery and recipient (a daily report to 10 people: 3,650 a year). Rows are kept, also for revoked
  versions and deleted subscriptions, so an old link answers "revoked" or "nothing to unsubscribe from",
  never "invalid".
* No expiry. Unsubscribe links in old emails must keep working (people unsubscribe from mail they received
  months ago, and the law and mailbox providers expect a link to work long after sending). Links are revoked
  instead: bumping the subscription's `version` makes every link sent before answer "revoked".
* The address is normalized (surrounding whitespace removed, lowercased), so the claim matches the stored
  address whatever its case.
* The token's shape is checked before any lookup; the lookup is by hash, so its timing says nothing about
  how close a guess was.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from export_pipeline.clock import now_utc
from export_pipeline.db import unsubscribe_tokens
from export_pipeline.errors import InvalidRequest

TOKEN_BYTES = 24
_SHAPE = re.compile(r"[A-Za-z0-9_-]{32}")


@dataclass(frozen=True)
class UnsubscribeClaim:
    """Who asked to unsubscribe from what. The caller checks `version` against the subscription's."""

    subscription_id: str
    email: str
    version: int


class InvalidUnsubscribeToken(InvalidRequest):
    """The unsubscribe link is not one we sent: garbled, truncated or made up."""

    code = "invalid_unsubscribe_link"

    def __init__(self, reason: str):
        super().__init__(
            "This unsubscribe link is invalid.",
            hint=(
                "Open the link exactly as it appears in the report email (some mail apps cut long links), "
                "or use the unsubscribe link in the latest report email. If it still fails, ask the owner "
                "of the subscription to remove your address."
            ),
            details={"token": reason},
        )


def normalize_email(email: str) -> str:
    return email.strip().lower()


def issue_unsubscribe(engine: Engine, *, subscription_id: str, email: str, version: int) -> str:
    """A new token letting `email` unsubscribe from `subscription_id` (while its key is at `version`)."""
    address = normalize_email(email)
    if not subscription_id or not address:
        raise ValueError(f"An unsubscribe link needs a subscription id and an email, got "
                         f"{subscription_id!r} and {email!r}.")
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ValueError(f"The unsubscribe key version must be an integer >= 0, got {version!r}.")
    token = secrets.token_urlsafe(TOKEN_BYTES)
    with engine.begin() as conn:
        conn.execute(sa.insert(unsubscribe_tokens).values(
            token_sha256=_digest(token), subscription_id=subscription_id, email=address, version=version,
            created_at=now_utc()))
    return token


def resolve_unsubscribe(engine: Engine, token: str) -> UnsubscribeClaim:
    """What `token` stands for, or InvalidUnsubscribeToken when we never issued it."""
    if not isinstance(token, str) or not _SHAPE.fullmatch(token):
        raise InvalidUnsubscribeToken("not an unsubscribe token")
    with engine.connect() as conn:
        row = conn.execute(sa.select(unsubscribe_tokens).where(
            unsubscribe_tokens.c.token_sha256 == _digest(token))).first()
    if row is None:
        raise InvalidUnsubscribeToken("no such token")
    return UnsubscribeClaim(subscription_id=row.subscription_id, email=row.email, version=row.version)


def unsubscribe_url(base_url: str, token: str) -> str:
    """The public page (and RFC 8058 one-click POST target) for `token` under our web app's `base_url`."""
    return f"{base_url.rstrip('/')}/unsubscribe/{quote(token, safe='')}"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()
