"""The HTTP status of each error a user can act on: one table for the API's JSON errors and the HTML pages."""

from export_pipeline.accounts.roles import RoleSourceUnavailable
from export_pipeline.embed.share import ShareLinkGone
from export_pipeline.errors import (
    AccessDenied,
    ClickHouseUnavailable,
    EngineBusy,
    ExportPipelineError,
    InvalidRequest,
    NotFound,
    NotLoggedIn,
    StorageError,
)
from export_pipeline.exports.requests import ExportConflict

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
}


def status_of(error: ExportPipelineError) -> int:
    """500 for anything unexpected."""
    return next((status for kind, status in STATUS_FOR.items() if isinstance(error, kind)), 500)
