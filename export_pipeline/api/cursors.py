"""Opaque page cursors: a small JSON object in URL-safe base64.

A cursor comes back from the client, so it is input like any other: every field is checked for its type and
range before it reaches a query, and a forged one answers 422 `invalid_request`, never 500.
"""

import base64
import binascii
import json
import re
import uuid
from collections.abc import Callable
from datetime import datetime

from export_pipeline.clock import FIRST_YEAR, LAST_YEAR
from export_pipeline.errors import InvalidRequest

_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")


def encode_cursor(state: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, fields: dict[str, Callable[[str], object]]) -> dict:
    """The cursor's fields, each parsed by its parser (which raises ValueError on a value it refuses)."""
    try:
        state = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(state, dict) or set(state) != set(fields) or not all(isinstance(v, str) for v in state.values()):
            raise ValueError
        return {name: parse(state[name]) for name, parse in fields.items()}
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise invalid_cursor() from None


def aware_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.utcoffset() is None or not FIRST_YEAR <= moment.year <= LAST_YEAR:
        raise ValueError(text)
    return moment


def uuid_text(text: str) -> str:
    return str(uuid.UUID(text))


def identifier(text: str) -> str:
    if not _ID.fullmatch(text):
        raise ValueError(text)
    return text


def invalid_cursor() -> InvalidRequest:
    return InvalidRequest("Invalid cursor.", details={"cursor": "not a cursor from this API"})
