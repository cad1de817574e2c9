"""Every kind of destination, by URL scheme: a new kind is its module (see `target.py`) plus one line here."""

from __future__ import annotations

from urllib.parse import urlsplit

from export_pipeline.batch_exports.destinations import Destination
from export_pipeline.batch_exports.folder_target import FolderTarget
from export_pipeline.batch_exports.s3_target import S3Target
from export_pipeline.batch_exports.target import Target

TARGETS: dict[str, type[Target]] = {
    "file": FolderTarget,
    "s3": S3Target,
}


def open_target(destination: Destination) -> Target:
    """The destination, connected (its URL was checked at create, so its kind is known)."""
    return TARGETS[urlsplit(destination.url).scheme].open(destination)


def validate_url(url: str, endpoint_url: str | None, errors: dict[str, str]) -> str:
    """The URL to store (a bare absolute path names a folder); problems go to `errors` by field."""
    text = url.strip()
    if text.startswith("/"):
        text = f"file://{text}"
    parts = urlsplit(text)
    kind = TARGETS.get(parts.scheme)
    if kind is None:
        errors["url"] = f"must be {' or '.join(k.example for k in TARGETS.values())}, got {url!r}"
    elif problem := kind.check_url(parts):
        errors["url"] = problem
    if endpoint_url:
        endpoint = urlsplit(endpoint_url)
        if endpoint.scheme not in ("http", "https") or not endpoint.netloc:
            errors["endpoint_url"] = "must be an http(s) URL"
        elif endpoint.username or endpoint.password:
            errors["endpoint_url"] = "must not hold credentials: give credentials_ref instead"
        if kind is None or not kind.takes_endpoint:
            takers = " and ".join(k.name for k in TARGETS.values() if k.takes_endpoint)
            errors["endpoint_url"] = f"only {takers} destinations take an endpoint"
    return text
