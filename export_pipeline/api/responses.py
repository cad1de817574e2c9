"""What a route declares besides its success: its error answers, all in the one error shape.

Routers pass `responses=error_responses(401, 403, …)` (the APIRouter's own, or a route's extra ones); a
declared 422 also replaces FastAPI's default validation-error schema, which is not what we answer.
"""

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(description="Stable and machine-readable, e.g. `not_found`, `too_many_exports`")
    message: str = Field(description="What failed, in a sentence")
    hint: str | None = Field(description="What to do next, when we know")
    details: dict[str, Any] = Field(description="For 422, one message per invalid field; else facts of the error")


class ErrorBody(BaseModel):
    """Every error of the API."""

    model_config = ConfigDict(extra="forbid")

    error: ErrorDetail


_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before asking again", "schema": {"type": "integer"}}}

ERRORS: dict[int, str] = {
    401: "No valid personal access token (`Authorization: Bearer <token>`)",
    403: "A member of the project below the role this needs (the message names the role)",
    404: "Not found, or a project the caller is not a member of (its existence is not revealed)",
    409: "Conflicts with the resource's state (Retry-After when waiting helps)",
    410: "Gone: expired, revoked or deleted",
    413: "The request body is larger than EXPORT_API_MAX_BODY_BYTES",
    416: "The byte range asked for starts past the end of the file (`Content-Range: bytes */size`)",
    422: "Invalid input: `details` maps each invalid field to its message",
    429: "Too many requests in flight (Retry-After)",
    503: "ClickHouse, the storage or the role source is unavailable (Retry-After when busy)",
}
_WITH_RETRY_AFTER = {409, 429, 503}

# What every route behind a project role can answer.
MEMBER_ERRORS = (401, 403, 404, 422, 503)


def error_responses(*statuses: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses for `statuses` with the error shape; `descriptions` (`e409="…"`) say what a route
    means by one."""
    return {
        status: {
            "model": ErrorBody,
            "description": descriptions.get(f"e{status}", ERRORS[status]),
            **({"headers": _RETRY_AFTER} if status in _WITH_RETRY_AFTER else {}),
        }
        for status in statuses
    }


def declare_body_limit(app: FastAPI) -> None:
    """413 on every operation that takes a body: the limit is a middleware's (api/body_limit.py), which no
    route declares, so the document gets it once built."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        document = build()  # cached by FastAPI: the setdefault below runs on the same dict each time
        too_large = {"description": ERRORS[413], "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
        for operations in document["paths"].values():
            for operation in operations.values():
                if "requestBody" in operation:
                    operation["responses"].setdefault("413", too_large)
        return document

    app.openapi = openapi  # type: ignore[method-assign]
