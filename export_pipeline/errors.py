"""Errors a user can act on: each says what failed, why, and what to do next. Every error the API or a page
answers with its own status lives here, so `api/errors.py` maps statuses from this floor alone."""

from __future__ import annotations

from pydantic import ValidationError


class ExportPipelineError(Exception):
    """Base for failures we explain to the user; `code` is stable and machine-readable.

    `retryable`: the same call may succeed if tried again (an outage, not a mistake). False unless the code that
    raises knows better and says so (an S3 5xx or an unreachable cluster is retryable, a missing bucket is not)."""

    code = "export_pipeline_error"
    retryable = False

    def __init__(self, message: str, *, hint: str | None = None, details: dict | None = None,
                 retryable: bool | None = None):
        self.message = message
        self.hint = hint
        self.details = details or {}
        if retryable is not None:
            self.retryable = retryable
        super().__init__(f"{message} {hint}" if hint else message)


def is_retryable(exc: BaseException) -> bool:
    """Our errors say so themselves; of the others, only a dropped or timed-out connection is worth another try."""
    if isinstance(exc, ExportPipelineError):
        return exc.retryable
    return isinstance(exc, ConnectionError | TimeoutError)


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


class RoleSourceUnavailable(ExportPipelineError):
    """The role source (GitLab) did not answer or refused our token."""

    code = "role_source_unavailable"


class ExportConflict(ExportPipelineError):
    """The export is owned by another run, or was canceled, while this one tried to change it."""

    code = "export_conflict"


class ShareLinkGone(ExportPipelineError):
    """The link existed but was revoked or has expired."""

    code = "share_link_gone"


class IntervalBusy(ExportPipelineError):
    """Another run is exporting the same batch-export interval."""

    code = "interval_busy"


class IntervalFailed(ExportPipelineError):
    """A batch-export interval failed for good (after its retries)."""

    code = "batch_interval_failed"


class BackfillRefused(ExportPipelineError):
    """Dagster's GraphQL API did not take a batch-export backfill."""

    code = "backfill_refused"


def invalid_fields(error: ValidationError, what: str, *, default: str, details_prefix: str = "") -> InvalidRequest:
    """A pydantic error as InvalidRequest: one message per field (`default` names a whole-object error), with
    pydantic's "Value error, " dropped; `details_prefix` places the fields inside a larger body."""
    fields = {".".join(str(p) for p in e["loc"]) or default: e["msg"].removeprefix("Value error, ")
              for e in error.errors()}
    return InvalidRequest(f"Invalid {what}: " + "; ".join(f"{k}: {v}" for k, v in fields.items()) + ".",
                          details={f"{details_prefix}{k}": v for k, v in fields.items()})
