"""Signed download links for exports in a local folder: what a presigned URL is for an S3 bucket.

`/downloads/{export_id}/{name}?expires=<unix seconds>&signature=<HMAC>` opens one file of one export, without
signing in, until `expires`. The signature is the unpadded base64url of HMAC-SHA256(key, the JSON array
`[export_id, name, expires]` after a context line), the key being `Settings.secret_key` (EXPORT_SECRET_KEY, or
the one kept in the data folder), which the API and the runs that write the emails share.

Decisions:

* Short-lived (EXPORT_DOWNLOAD_LINK_HOURS, 24 h by default) and never past the export's expiry: a forwarded
  email stops working soon. Links are not stored: expiring or deleting the export revokes them (the API
  checks the export on every download), and rotating the key revokes every link at once.
* The link names the export and the file, not the storage key, so it says nothing about where files live.
* Only the exact string we issued is accepted (the signature compared in constant time, as text, and
  `expires` as canonical digits), and nothing of a link is looked up before its signature matched.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from datetime import datetime
from urllib.parse import quote, urlencode

# The route of the API that serves these links; here so that the link and the route are written once.
DOWNLOAD_PATH = "/downloads/{export_id}/{name}"
# Domain separation: the same key may sign other things; a signature made for them never verifies here.
_CONTEXT = b"export-pipeline/download/v1\n"
_SIGNATURE = re.compile(r"[A-Za-z0-9_-]{43}")  # 32 bytes, unpadded base64url
_EXPIRES = re.compile(r"[1-9][0-9]{0,11}")


def download_signature(key: bytes, *, export_id: str, name: str, expires: int) -> str:
    """The signature of a link to file `name` of `export_id` that opens until `expires` (unix seconds)."""
    if not key:
        raise ValueError("Cannot sign a download link with an empty key; set EXPORT_SECRET_KEY.")
    claims = json.dumps([export_id, name, expires], ensure_ascii=False, separators=(",", ":")).encode()
    digest = hmac.new(key, _CONTEXT + claims, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def signed_download_url(base_url: str, key: bytes, *, export_id: str, name: str, expires_at: datetime) -> str:
    """The link under our web app's `base_url`; it opens until `expires_at`, rounded down to the second."""
    expires = int(expires_at.timestamp())
    path = DOWNLOAD_PATH.format(export_id=quote(export_id, safe=""), name=quote(name, safe=""))
    query = urlencode({"expires": expires, "signature": download_signature(
        key, export_id=export_id, name=name, expires=expires)})
    return f"{base_url.rstrip('/')}{path}?{query}"


def verified_expiry(key: bytes, *, export_id: str, name: str, expires: str, signature: str) -> int | None:
    """The link's expiry (unix seconds) when we signed exactly this link, else None (changed, cut short or
    made up). Whether it has passed is the caller's to check."""
    if not _EXPIRES.fullmatch(expires) or not _SIGNATURE.fullmatch(signature):
        return None
    expected = download_signature(key, export_id=export_id, name=name, expires=int(expires))
    return int(expires) if hmac.compare_digest(expected.encode(), signature.encode()) else None
