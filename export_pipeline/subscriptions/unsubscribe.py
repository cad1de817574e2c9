"""Signed unsubscribe links that work without logging in.

A token is `v1.<payload>.<signature>`: `payload` is the base64url (unpadded) of compact JSON
`{"e": email, "s": subscription id, "v": version}` with sorted keys, and `signature` the base64url of
HMAC-SHA256(secret, "export-pipeline/unsubscribe/v1." + payload). Every character is URL-safe
(`A-Z a-z 0-9 - _ .`), so the token goes into a URL path as it is.

Decisions:

* No expiry. Unsubscribe links in old emails must keep working (people unsubscribe from mail they received
  months ago, and the law and mailbox providers expect a link to work long after sending). Links are revoked
  instead: the caller stores an unsubscribe-key `version` per subscription and compares it with the token's;
  bumping it invalidates every link sent before. Rotating `EXPORT_SECRET_KEY` revokes all links everywhere.
* Signed, not encrypted: the payload (address and subscription id) is readable by whoever holds the link.
  Only the recipient receives it, and it names nothing they do not already know.
* The address is normalized (surrounding whitespace removed, lowercased) before signing, so the claim
  matches the stored address whatever its case.
* The signature is checked (constant time, against its canonical encoding) before the payload is decoded:
  nothing from an unverified token is ever parsed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from urllib.parse import quote

from export_pipeline.errors import InvalidRequest

VERSION_PREFIX = "v1"
# Domain separation: the same secret may sign other things; a signature made for them never verifies here.
_CONTEXT = b"export-pipeline/unsubscribe/v1."
# Real tokens are ~150 characters; refuse absurd input before doing any work on it.
MAX_TOKEN_LENGTH = 2048
_SHAPE = re.compile(r"v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class UnsubscribeClaim:
    """Who asked to unsubscribe from what. The caller checks `version` against the subscription's."""

    subscription_id: str
    email: str
    version: int


class InvalidUnsubscribeToken(InvalidRequest):
    """The unsubscribe link was not made by us with this secret: garbled, truncated or altered."""

    code = "invalid_unsubscribe_link"

    def __init__(self, reason: str):
        super().__init__(
            "This unsubscribe link is invalid or was tampered with.",
            hint=(
                "Open the link exactly as it appears in the report email (some mail apps cut long links), "
                "or use the unsubscribe link in the latest report email. If it still fails, ask the owner "
                "of the subscription to remove your address."
            ),
            details={"token": reason},
        )


def normalize_email(email: str) -> str:
    return email.strip().lower()


def sign_unsubscribe(secret: bytes, *, subscription_id: str, email: str, version: int) -> str:
    """A URL-safe token proving that `email` may unsubscribe from `subscription_id` (at key `version`)."""
    address = normalize_email(email)
    if not secret:
        raise ValueError("Cannot sign an unsubscribe link with an empty secret; set EXPORT_SECRET_KEY.")
    if not subscription_id or not address:
        raise ValueError(f"An unsubscribe link needs a subscription id and an email, got "
                         f"{subscription_id!r} and {email!r}.")
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ValueError(f"The unsubscribe key version must be an integer >= 0, got {version!r}.")
    claims = {"e": address, "s": subscription_id, "v": version}
    payload = _b64encode(json.dumps(claims, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode())
    return f"{VERSION_PREFIX}.{payload}.{_signature(secret, payload)}"


def verify_unsubscribe(secret: bytes, token: str) -> UnsubscribeClaim:
    """The claim inside `token`, or InvalidUnsubscribeToken when it is garbled or was not signed with `secret`."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        raise InvalidUnsubscribeToken("not a token of a plausible length")
    if not _SHAPE.fullmatch(token):  # also keeps non-ASCII and stray characters away from the decoders
        raise InvalidUnsubscribeToken(f"not a {VERSION_PREFIX} unsubscribe token")
    _, payload, signature = token.split(".")
    # Compare encodings, not decoded bytes: base64 ignores some trailing bits, so a different string could
    # decode to the same signature. Only the exact string we issued is accepted.
    if not hmac.compare_digest(_signature(secret, payload).encode(), signature.encode()):
        raise InvalidUnsubscribeToken("the signature does not match")
    try:
        claims = json.loads(_b64decode(payload))
    except ValueError:  # binascii.Error, UnicodeDecodeError and JSONDecodeError are all ValueErrors
        raise InvalidUnsubscribeToken("the payload is not readable") from None
    # Reached only with our own signature, i.e. only if we signed something malformed; checked all the same.
    if not (
        isinstance(claims, dict)
        and isinstance(claims.get("s"), str) and claims["s"]
        and isinstance(claims.get("e"), str) and claims["e"]
        and isinstance(claims.get("v"), int) and not isinstance(claims["v"], bool) and claims["v"] >= 0
    ):
        raise InvalidUnsubscribeToken("the payload lacks a subscription, an email or a version")
    return UnsubscribeClaim(subscription_id=claims["s"], email=normalize_email(claims["e"]), version=claims["v"])


def unsubscribe_url(base_url: str, token: str) -> str:
    """The public page (and RFC 8058 one-click POST target) for `token` under our web app's `base_url`."""
    return f"{base_url.rstrip('/')}/unsubscribe/{quote(token, safe='')}"


def _signature(secret: bytes, payload: str) -> str:
    return _b64encode(hmac.new(secret, _CONTEXT + payload.encode("ascii"), hashlib.sha256).digest())


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
