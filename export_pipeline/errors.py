"""Errors a user can act on: each says what failed, why, and what to do next."""

from __future__ import annotations

from pydantic import ValidationError


class ExportPipelineError(Exception):
    """Base for failures we explain to the user; `code` is stable and machine-readable."""

    code = "export_pipeline_error"

    def __init__(self, message: str, *, hint: str | None = None, details: dict | None = None):
        self.message = message
        self.hint = hint
        self.details = details or {}
        super().__init__(f"{message} {hint}" if hint else message)


class InvalidRequest(ExportPipelineError):
    """One or more fields of a request are invalid; `details` maps field -> message."""

    code = "invalid_request"


class AccessDenied(ExportPipelineError):
    code = "access_denied"


class NotFound(ExportPipelineError):
    code = "not_found"


class NotLoggedIn(ExportPipelineError):
    """A page or endpoint for members, asked without credentials."""

    code = "unauthorized"


class ClickHouseUnavailable(ExportPipelineError):
    code = "analytics_cluster_unavailable"


class EngineBusy(ExportPipelineError):
    """The embedded (single-process) ClickHouse is held by another process for too long."""

    code = "analytics_engine_busy"


class StorageError(ExportPipelineError):
    code = "storage_error"


def invalid_fields(error: ValidationError, what: str, *, default: str, details_prefix: str = "") -> InvalidRequest:
    """A pydantic error as InvalidRequest: one message per field (`default` names a whole-object error), with
    pydantic's "Value error, " dropped; `details_prefix` places the fields inside a larger body."""
    fields = {".".join(str(p) for p in e["loc"]) or default: e["msg"].removeprefix("Value error, ")
              for e in error.errors()}
    return InvalidRequest(f"Invalid {what}: " + "; ".join(f"{k}: {v}" for k, v in fields.items()) + ".",
                          details={f"{details_prefix}{k}": v for k, v in fields.items()})
