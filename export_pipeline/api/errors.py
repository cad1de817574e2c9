"""How an error answers: one HTTP status table for the API's JSON errors and the HTML pages, one JSON error
body, and one message (with its hint) for the pages."""

from export_pipeline.errors import (
    AccessDenied,
    BackfillRefused,
    ClickHouseUnavailable,
    EngineBusy,
    ExportConflict,
    ExportPipelineError,
    IntervalBusy,
    InvalidRequest,
    NotFound,
    NotLoggedIn,
    RoleSourceUnavailable,
    ShareLinkGone,
    StorageError,
)


class ApiError(ExportPipelineError):
    """An error only the HTTP API raises, with its own status and code (and optional Retry-After)."""

    def __init__(self, status: int, code: str, message: str, *, hint: str | None = None,
                 retry_after: int | None = None, details=None):
        super().__init__(message, hint=hint, details=details)
        self.status = status
        self.code = code
        self.retry_after = retry_after


STATUS_FOR: dict[type[ExportPipelineError], int] = {
    NotLoggedIn: 401,
    InvalidRequest: 422,
    AccessDenied: 403,
    NotFound: 404,
    ExportConflict: 409,
    ShareLinkGone: 410,
    ClickHouseUnavailable: 503,
    EngineBusy: 503,
    StorageError: 503,
    RoleSourceUnavailable: 503,
    BackfillRefused: 503,
    IntervalBusy: 409,
}


def status_of(error: ExportPipelineError) -> int:
    """500 for anything unexpected."""
    if isinstance(error, ApiError):
        return error.status
    return next((status for kind, status in STATUS_FOR.items() if isinstance(error, kind)), 500)


def message_of(error: ExportPipelineError) -> str:
    """What failed, then what to do next."""
    return f"{error.message} {error.hint}" if error.hint else error.message


def error_body(code: str, message: str, details: dict | None = None, *, hint: str | None = None) -> dict:
    """The one error shape (api/responses.py ErrorBody)."""
    return {"error": {"code": code, "message": message, "hint": hint, "details": details or {}}}
