"""Opaque page cursors: a small JSON object in URL-safe base64, checked for the keys of the list it pages."""

import base64
import binascii
import json

from export_pipeline.errors import InvalidRequest


def encode_cursor(state: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, keys: tuple[str, ...]) -> dict:
    try:
        state = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(state, dict) or set(state) != set(keys) or not all(isinstance(v, str) for v in state.values()):
            raise ValueError
        return state
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise invalid_cursor() from None


def invalid_cursor() -> InvalidRequest:
    return InvalidRequest("Invalid cursor.", details={"cursor": "not a cursor from this API"})
