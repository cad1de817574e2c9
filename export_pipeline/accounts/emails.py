"""Who gets an export's email: the address on the request, else the requester's stored address, else the
requester's user name when it is itself an email address. Addresses are checked with one strict pattern."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

import sqlalchemy as sa
from pydantic import AfterValidator
from pydantic_core import PydanticCustomError
from sqlalchemy.engine import Engine

from export_pipeline.clock import now_utc
from export_pipeline.db import user_emails
from export_pipeline.errors import InvalidRequest

MAX_EMAIL_LENGTH = 254  # RFC 5321 path limit
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# Deliberately strict: dot-atom local part (no quoting, no leading, trailing or doubled dots) and a domain of
# at least two DNS labels with an alphabetic top level. No spaces or line breaks, so nothing reaches a header.
_EMAIL = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    rf"@(?:{_LABEL}\.)+[A-Za-z]{{2,63}}"
)
EMAIL_MESSAGE = "must be an email address like name@example.com"


def is_email(value: str) -> bool:
    local, _, _ = value.partition("@")
    return len(value) <= MAX_EMAIL_LENGTH and len(local) <= 64 and _EMAIL.fullmatch(value) is not None


def valid_email(value: object, *, field: str = "notify_email") -> str:
    """The address without surrounding whitespace, or InvalidRequest naming the field."""
    text = str(value or "").strip()
    if not is_email(text):
        raise InvalidRequest(
            f"Invalid {field}: {EMAIL_MESSAGE}, got {str(value)[:300]!r}.",
            details={field: f"{EMAIL_MESSAGE}, got {str(value)[:300]!r}"},
        )
    return text


def optional_email(value: object, *, field: str = "notify_email") -> str | None:
    """None for a missing or blank value, else `valid_email`."""
    if value is None or not str(value).strip():
        return None
    return valid_email(value, field=field)


def _pydantic_email(value: str | None) -> str | None:
    try:
        return optional_email(value)
    except InvalidRequest:
        raise PydanticCustomError("email", EMAIL_MESSAGE + ", got {value}", {"value": repr(str(value)[:300])}) from None


# For request bodies: a 422 with the field's own message, in the same pass as the other field checks.
OptionalEmail = Annotated[str | None, AfterValidator(_pydantic_email)]


# ------------------------------------------------------------------------------------------ stored


@dataclass(frozen=True)
class UserEmail:
    user: str
    email: str
    updated_at: datetime


def set_user_email(engine: Engine, user: str, email: str) -> UserEmail:
    """Store (or replace) where the user's export emails go."""
    user = str(user or "").strip()
    if not user or len(user) > 255:
        raise InvalidRequest("Invalid user: must be a user name of 1 to 255 characters.",
                             details={"user": "must be a user name of 1 to 255 characters"})
    address = valid_email(email, field="email")
    now = now_utc()
    with engine.begin() as conn:
        updated = conn.execute(
            sa.update(user_emails).where(user_emails.c.user_name == user).values(email=address, updated_at=now)
        ).rowcount
        if not updated:
            conn.execute(sa.insert(user_emails).values(user_name=user, email=address, updated_at=now))
    return UserEmail(user, address, now)


def get_user_email(engine: Engine, user: str) -> UserEmail | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(user_emails).where(user_emails.c.user_name == user)).first()
    if row is None:
        return None
    updated = row.updated_at if row.updated_at.tzinfo else row.updated_at.replace(tzinfo=UTC)
    return UserEmail(row.user_name, row.email, updated)


@dataclass(frozen=True)
class Recipient:
    email: str
    source: str  # "request", "stored" or "user name": said in logs


def recipient_for(engine: Engine, requested_by: str, notify_email: str | None) -> Recipient | None:
    """The request's address, else the requester's stored one, else their user name if it is an address."""
    if notify_email:
        return Recipient(notify_email, "request")
    stored = get_user_email(engine, requested_by)
    if stored is not None:
        return Recipient(stored.email, "stored")
    if is_email(requested_by):
        return Recipient(requested_by, "user name")
    return None
